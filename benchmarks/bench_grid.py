"""Grid throughput: M vmapped members (seeds) vs the same M members run one after another.

Usage (one process; prints markdown)::

    python -m benchmarks.bench_grid [--rounds 9] [--members 8,32] [--steps 64]

Model: MLP 784-256-256-10 (ReLU), batch 128, softmax cross-entropy, Adam, on 4096 random
examples. Both sides run the training engine's real program (``funcnn.train.engine``), the
one :func:`funcnn.train.run_grid` and :func:`funcnn.train.fit` call:

- **vmapped**: the group program of ``run_grid`` (``batched=True``): one call trains all M
  members for K steps (``fori_loop`` of the vmapped step, batches gathered on device);
- **sequential**: ``fit``'s program (``batched=False``) called once per member, K steps each.

Throughput is member-steps per second (M * K / wall time of one call or one pass of M calls),
timed interleaved; the ratio is vmapped / sequential per round (target >= 1.5x for 8 members).

Breakdown (to see *where* the time goes, same process, same rounds): the bare jitted
train step (:func:`funcnn.train.make_train_step`, no loop) for 1 member and vmapped over M, and
the forward+backward alone (no optimizer), so engine overhead, optimizer cost and the
vmapped matmuls can be told apart.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
from collections.abc import Callable
from typing import Any

import funcnn  # noqa: F401  (applies funcnn's XLA defaults before the backend starts)
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._timing import ratio_stats, summarize, time_interleaved
from funcnn.nn.models import mlp
from funcnn.train.engine import EngineConfig, compiled_programs, init_carry, make_plan
from funcnn.train.engine.carry import auto_parts, cpu_cores
from funcnn.train.step import make_objective, make_train_step

__all__ = ["run", "to_markdown", "engine_chunk_case", "main"]

LOSS = "softmax_cross_entropy"
BATCH = 128
N_TRAIN = 4096
WIDTHS = (256, 256)


def _spec_fn(model):
    opt = optax.adam(1e-3)

    def spec_fn(hp):
        return model, LOSS, opt, None

    return spec_fn


def _plan(n_train: int, steps: int):
    return make_plan(
        "bench_grid", n_train, batch_size=BATCH, steps=steps * 1000, epochs=None, eval_every=0,
        checkpoint_every=None, steps_per_call=steps,
    )


def _engine_program(model, x_shape, *, members: int | None, steps: int):
    """(jitted chunk, carry, hp, plan) of the engine for ``members`` seeds (None: fit's)."""
    spec_fn = _spec_fn(model)
    plan = _plan(x_shape[0], steps)
    in_shape = (BATCH, *x_shape[1:])
    batched = members is not None
    seeds = list(range(members)) if batched else [0]
    carry = init_carry(None, spec_fn, hps=[{"seed": s} for s in seeds], seeds=seeds, in_shape=in_shape, batched=batched)
    hp = {"seed": jnp.asarray(seeds)} if batched else {}
    prog = compiled_programs(None, spec_fn, EngineConfig(plan=plan, batched=batched, classification=None,
                                                         eval_batch_size=1024))
    return prog.chunk, carry, hp, plan


def engine_chunk_case(label: str, case, *, members: int | None, steps: int = 64):
    """A compile-time case (label, factory of a fresh jitted chunk, args) for bench_train."""
    model = case.build("hand")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(N_TRAIN, *case.in_shape[1:])).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, size=N_TRAIN).astype(np.int32))
    _, carry, hp, plan = _engine_program(model, x.shape, members=members, steps=steps)

    def make_fn():
        return _engine_program(model, x.shape, members=members, steps=steps)[0]

    return label, make_fn, (carry, hp, plan.steps_per_call, 0, x, y)


def _with_cpu(fns: dict[str, Callable[[], Any]], cpu: dict[str, list[float]]) -> dict[str, Callable[[], Any]]:
    """Wrap callables so each call blocks and appends its process CPU seconds to ``cpu[name]``.

    On a shared, oversubscribed CPU the wall time of multi-threaded XLA ops stretches with other
    processes' load (a descheduled worker thread stalls the op); CPU seconds per member-step are
    a load-robust measure of the work done, so the report gives both.
    """
    import time

    def wrap(name, f):
        def g():
            c0 = time.process_time()
            out = jax.block_until_ready(f())
            cpu[name].append(time.process_time() - c0)
            return out

        return g

    for n in fns:
        cpu[n] = []
    return {n: wrap(n, f) for n, f in fns.items()}


def _threaded(fn: Callable, carry: Any, *rest) -> Callable[[], Any]:
    """A zero-arg callable running ``carry, out = fn(carry, *rest)`` and keeping the carry."""
    box = [carry]

    def f():
        c, out = fn(box[0], *rest)
        box[0] = c
        return c, out

    return f


def _chunk_callables(model, x, y, members: int, steps: int
                     ) -> tuple[dict[str, Callable[[], Any]], concurrent.futures.ThreadPoolExecutor | None]:
    """The timed callables, and the thread pool the sliced variant runs on (None without one;
    the caller shuts it down after timing)."""
    vchunk, vcarry, vhp, plan = _engine_program(model, x.shape, members=members, steps=steps)
    K = plan.steps_per_call
    vm = _threaded(lambda c, hp: vchunk(c, hp, K, 0, x, y), vcarry, vhp)

    schunk, _, shp, _ = _engine_program(model, x.shape, members=None, steps=steps)
    spec_fn = _spec_fn(model)
    in_shape = (BATCH, *x.shape[1:])
    carries = [init_carry(None, spec_fn, hps=[{}], seeds=[s], in_shape=in_shape, batched=False) for s in range(members)]

    def seq():
        out = None
        for m in range(members):
            carries[m], out = schunk(carries[m], shp, K, 0, x, y)
        return carries[-1], out

    fns = {"vmapped": vm, "sequential": seq}
    pool = None
    P = auto_parts(members, None)
    if P > 1:  # what run_grid does on a multi-core CPU: equal slices, side by side, one thread each
        pchunk, pcarry, php, _ = _engine_program(model, x.shape, members=members // P, steps=steps)
        slices = [_threaded(lambda c, hp: pchunk(c, hp, K, 0, x, y), pcarry, php) for _ in range(P)]
        pool = concurrent.futures.ThreadPoolExecutor(P)

        def sliced():
            return list(pool.map(lambda f: jax.block_until_ready(f()), slices))[-1]

        fns[f"vmapped, {P} slices"] = sliced
    return fns, pool


def _bare_callables(model, x, y, members: int) -> dict[str, Callable[[], Any]]:
    """Bare jitted train step / fwd+bwd for 1 member and vmapped over ``members``."""
    opt = optax.adam(1e-3)
    step = make_train_step(model, LOSS, opt, jit=False)
    grad = jax.value_and_grad(make_objective(model, LOSS), has_aux=True)
    in_shape = (BATCH, *x.shape[1:])
    xb, yb, key = x[:BATCH], y[:BATCH], jax.random.PRNGKey(0)

    def init(seed):
        _, p, s = model.init(jax.random.PRNGKey(seed), in_shape)
        return p, opt.init(p), s

    p1, o1, s1 = init(0)
    pm, om, sm = jax.vmap(init)(jnp.arange(members))
    step1 = jax.jit(step)
    stepm = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, None, None, None)))
    grad1 = jax.jit(lambda p, s: grad(p, s, xb, yb, key))
    gradm = jax.jit(jax.vmap(lambda p, s: grad(p, s, xb, yb, key)))
    box1, boxm = [p1, o1, s1], [pm, om, sm]

    def run1():
        box1[:] = step1(*box1, xb, yb, key)[:3]
        return box1[0]

    def runm():
        boxm[:] = stepm(*boxm, xb, yb, key)[:3]
        return boxm[0]

    return {
        "step x1": run1,
        f"step vmap x{members}": runm,
        "fwd+bwd x1": lambda: grad1(p1, s1),
        f"fwd+bwd vmap x{members}": lambda: gradm(pm, sm),
    }


# --------------------------------------------------------------------------- profile

_CATEGORIES = (
    ("matmul (dot)", ("dot", "gemm", "matmul", "conv")),
    ("reductions", ("reduce",)),
    ("copies/transposes", ("copy", "transpose")),
    ("gather/scatter/slices", ("gather", "scatter", "dynamic", "slice")),
    ("elementwise fusions", ("fusion", "wrapped_", "add", "multiply", "select", "divide", "subtract")),
)


def _category(name: str) -> str:
    low = name.lower()
    for cat, keys in _CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other ops"


def profile_chunks(model, x, y, members: int, steps: int, reps: int = 2) -> dict[str, Any] | None:
    """Per member-step microseconds by op category, from a ``jax.profiler`` trace of the engine's
    single-member chunk and its M-member vmapped chunk (CPU only; None if tracing fails).

    Leaf XLA thunks are matched to the compiled HLO's instruction names (control-flow thunks
    such as the ``while`` loop are left out, they contain the others); "executor wait" is the
    wall time of the executions, so wall minus the ops is dispatch/loop overhead and idle time.
    """
    import glob
    import gzip
    import json
    import re
    import shutil
    import tempfile

    out = {}
    try:
        for tag, m in (("x1", None), (f"vmap x{members}", members)):
            ch, c, hp, plan = _engine_program(model, x.shape, members=m, steps=steps)
            K = plan.steps_per_call
            c, _ = ch(c, hp, K, 0, x, y)
            jax.block_until_ready(c)
            hlo = ch.lower(c, hp, K, 0, x, y).compile().as_text()
            names = set(re.findall(r"%([\w.\-]+) = ", hlo))
            d = tempfile.mkdtemp(prefix="funcnn_prof_")
            try:
                with jax.profiler.trace(d, create_perfetto_trace=True):
                    for _ in range(reps):
                        c, _ = ch(c, hp, K, 0, x, y)
                        jax.block_until_ready(c)
                f = glob.glob(d + "/**/*.trace.json.gz", recursive=True)[0]
                ev = json.load(gzip.open(f))
            finally:
                shutil.rmtree(d, ignore_errors=True)
            evs = ev["traceEvents"] if isinstance(ev, dict) else ev
            per = {}
            wall = 0.0
            for e in evs:
                if e.get("ph") != "X":
                    continue
                n = e.get("name", "")
                if n == "ThunkExecutor::Execute (wait for completion)":
                    wall += e.get("dur", 0)
                elif n in names and not n.startswith(("while", "conditional", "call")):
                    cat = _category(n)
                    per[cat] = per.get(cat, 0.0) + e.get("dur", 0)
            ms = reps * K * (m or 1)
            row = {k: v / ms for k, v in per.items()}
            row["ops total"] = sum(per.values()) / ms
            row["wall"] = wall / ms
            out[tag] = row
    except Exception as e:  # profiler formats differ across jax versions/backends: report, don't fail
        return {"error": f"{type(e).__name__}: {e}"}
    return out


def profile_markdown(prof: dict[str, Any] | None) -> str:
    if not prof:
        return ""
    if "error" in prof:
        return f"Profile: not available ({prof['error']})."
    tags = list(prof)
    cats = [c for c, _ in _CATEGORIES] + ["other ops", "ops total", "wall"]
    lines = [
        "Profile of the engine programs (`jax.profiler` trace; microseconds per member-step by op kind):",
        "",
        "| op kind | " + " | ".join(tags) + " |",
        "|---|" + "---|" * len(tags),
    ]
    for c in cats:
        if any(c in prof[t] for t in tags):
            lines.append(f"| {c} | " + " | ".join(f"{prof[t].get(c, 0.0):.1f}" for t in tags) + " |")
    return "\n".join(lines)


def run(
    *, members: tuple[int, ...] = (8, 32), steps: int = 64, rounds: int = 9, breakdown: bool = True,
    profile: bool = True, verbose: bool = True,
) -> dict[str, Any]:
    """Throughput of vmapped vs sequential members (and the breakdown) for each M."""
    model = mlp(WIDTHS, 10, rule="hand")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(N_TRAIN, 784)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, size=N_TRAIN).astype(np.int32))
    rows = []
    for M in members:
        cpu: dict[str, list[float]] = {}
        chunks, pool = _chunk_callables(model, x, y, M, steps)
        fns = _with_cpu(chunks, cpu)
        try:
            stats, raw = time_interleaved(fns, rounds=rounds, min_time=0.1, max_inner=1)
        finally:
            if pool is not None:
                pool.shutdown()
        warm = 3  # time_interleaved's warm-up and sizing calls
        cpu_arr = {n: np.asarray(v[warm:]) for n, v in cpu.items()}
        n = min(len(v) for v in cpu_arr.values())
        sliced = next((k for k in fns if k.startswith("vmapped, ")), None)
        row = {
            "members": M, "steps": steps, "rounds": rounds, "stats": stats,
            "ratio": ratio_stats(raw, "sequential", "vmapped"),
            "sliced": sliced, "sliced_ratio": ratio_stats(raw, "sequential", sliced) if sliced else None,
            "cpu": {k: summarize(v) for k, v in cpu_arr.items()},
            "cpu_ratio": summarize(cpu_arr["sequential"][:n] / cpu_arr["vmapped"][:n]),
        }
        if breakdown:
            bst, braw = time_interleaved(_bare_callables(model, x, y, M), rounds=rounds, min_time=0.05)
            row["breakdown"] = bst
        rows.append(row)
        if verbose:
            print(f"[bench_grid] M={M}: vmapped {stats['vmapped'].median * 1e3:.1f} ms, sequential "
                  f"{stats['sequential'].median * 1e3:.1f} ms per {steps} steps, ratio {row['ratio'].median:.2f}",
                  file=sys.stderr, flush=True)
    prof = None
    if profile and jax.default_backend() == "cpu" and members:
        prof = profile_chunks(model, x, y, members[0], steps)
    return {"rows": rows, "model": f"MLP 784-{'-'.join(map(str, WIDTHS))}-10", "n_train": N_TRAIN, "profile": prof,
            "cores": cpu_cores(), "bound": flop_bound(model, x, y)}


def flop_bound(model, x, y) -> dict[str, float]:
    """One member's train step in FLOPs (XLA's cost analysis of the compiled step) and this
    process's fp32 matmul rate (:func:`benchmarks.bench_ops.matmul_gflops`, measured now):
    their ratio is the fastest a member-step can be on this machine, vmapped or not."""
    from benchmarks._timing import train_step_flops
    from benchmarks.bench_ops import matmul_gflops

    flops = train_step_flops(model, LOSS, optax.adam(1e-3), x[:BATCH], y[:BATCH])
    rate = matmul_gflops() * 1e9
    return {"step_flops": flops, "matmul_flops_per_s": rate, "member_step_s": flops / rate}


def to_markdown(res: dict[str, Any], analysis: str | None = None) -> str:
    lines = [
        "## Grid throughput: vmapped members vs sequential",
        "",
        f"{res['model']} (ReLU), batch {BATCH}, Adam, {res['n_train']} random examples; both sides run the "
        "training engine's program (`run_grid`'s vmapped group chunk vs `fit`'s chunk once per member), "
        f"K = {res['rows'][0]['steps'] if res['rows'] else 0} steps per call.",
        "",
        "| members | vmapped ms per K steps (median ± IQR) | sequential ms | vmapped member-steps/s | "
        "sequential member-steps/s | vmapped / sequential [q25, q75] | CPU s per K steps, vmapped / sequential "
        "| CPU-time ratio seq / vmapped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    targets = []
    sliced_rows: list[str] = []
    for row in res["rows"]:
        st, M, K = row["stats"], row["members"], row["steps"]
        v, s, r = st["vmapped"], st["sequential"], row["ratio"]
        lines.append(
            f"| {M} | {v.median * 1e3:.1f} ± {v.iqr * 1e3:.1f} | {s.median * 1e3:.1f} ± {s.iqr * 1e3:.1f} "
            f"| {M * K / v.median:.0f} | {M * K / s.median:.0f} | {r.median:.2f} [{r.q25:.2f}, {r.q75:.2f}] "
            f"| {row['cpu']['vmapped'].median:.2f} / {row['cpu']['sequential'].median:.2f} "
            f"| {row['cpu_ratio'].median:.2f} [{row['cpu_ratio'].q25:.2f}, {row['cpu_ratio'].q75:.2f}] |"
        )
        if row.get("sliced"):
            sl, sr = st[row["sliced"]], row["sliced_ratio"]
            sliced_rows.append(f"| {M} | {row['sliced']} | {sl.median * 1e3:.1f} ± {sl.iqr * 1e3:.1f} | "
                               f"{M * K / sl.median:.0f} | {sr.median:.2f} [{sr.q25:.2f}, {sr.q75:.2f}] |")
        if M == 8:
            best = max([r.median] + ([row["sliced_ratio"].median] if row.get("sliced") else []))
            how = f"; {row['sliced']}: {row['sliced_ratio'].median:.2f}x" if row.get("sliced") else ""
            b = res.get("bound")
            ceiling = ""
            if b:
                seq = s.median / (M * K)
                ceiling = (f"; the bound: one member-step is {b['step_flops'] / 1e6:.0f} MFLOP, "
                           f"{b['member_step_s'] * 1e3:.3f} ms at this process's matmul rate "
                           f"({b['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s), so the sequential fits run at "
                           f"{b['member_step_s'] / seq:.2f}x that rate and no vmapped program can beat them by more "
                           f"than {seq / b['member_step_s']:.2f}x")
            targets.append(f"- 8 seeds vmapped vs sequential (target >= 1.5x, issues 14 and 20; issue 5 asked 2x): "
                           f"one program {r.median:.2f}x in wall time ({row['cpu_ratio'].median:.2f}x in CPU "
                           f"time){how}{ceiling} — {'**met**' if best >= 1.5 else '**missed**'}")
    if sliced_rows:
        lines += [
            "",
            f"The same members in equal slices trained side by side, one thread each on one program (what "
            f"`run_grid` does by default on a CPU with {res.get('cores', '?')} cores, `TrainOptions.parts`), "
            "timed in the same rounds:",
            "",
            "| members | variant | ms per K steps (median ± IQR) | member-steps/s | vs sequential [q25, q75] |",
            "|---|---|---|---|---|",
            *sliced_rows,
        ]
    if any("breakdown" in r for r in res["rows"]):
        lines += [
            "",
            "Breakdown, per member-step (ms; bare jitted `make_train_step` without the engine's loop, and "
            "forward+backward without the optimizer; vmapped times divided by M):",
            "",
            "| members | engine seq | engine vmap | step x1 | step vmap | fwd+bwd x1 | fwd+bwd vmap |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in res["rows"]:
            if "breakdown" not in row:
                continue
            b, M, K, st = row["breakdown"], row["members"], row["steps"], row["stats"]
            lines.append(
                f"| {M} | {st['sequential'].median / (M * K) * 1e3:.3f} | {st['vmapped'].median / (M * K) * 1e3:.3f} "
                f"| {b['step x1'].median * 1e3:.3f} | {b[f'step vmap x{M}'].median / M * 1e3:.3f} "
                f"| {b['fwd+bwd x1'].median * 1e3:.3f} | {b[f'fwd+bwd vmap x{M}'].median / M * 1e3:.3f} |"
            )
    if res.get("profile"):
        lines += ["", profile_markdown(res["profile"])]
    lines += ["", *targets]
    if analysis:
        lines += ["", analysis]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--members", default="8,32")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--no-breakdown", action="store_true")
    p.add_argument("--no-profile", action="store_true")
    a = p.parse_args(argv)
    res = run(members=tuple(int(m) for m in a.members.split(",")), steps=a.steps, rounds=a.rounds,
              breakdown=not a.no_breakdown, profile=not a.no_profile)
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
