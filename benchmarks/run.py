"""The one benchmark command: every measurement in one process, written to BENCHMARKS.md.

Usage::

    python -m benchmarks.run                   # full run, writes ./BENCHMARKS.md (~10 min on 2 cores)
    python -m benchmarks.run --quick           # fewer repeats, for a smoke test
    python -m benchmarks.run --only train,grid --out /tmp/b.md
    python -m benchmarks.run --xla-flags       # also compare funcnn's XLA CPU default vs off (subprocesses)
    python -m benchmarks.run --notes-only      # re-attach an edited benchmarks/NOTES.md, measure nothing

Sections (each produced by its own module, assembled here; ``--only`` picks some):

- ``ops``: every hand-ruled op fwd+bwd vs its autodiff twin (``benchmarks/bench_ops.py``);
- ``train``: LeNet-5 and MLP train steps, funcnn hand / autodiff / PyTorch (``bench_train.py``);
- ``compile``: compile time of each train step (``bench_train.py``);
- ``grid``: vmapped vs sequential members (``bench_grid.py``);
- ``conv-algorithms``: each sum of conv2d under every algorithm on a channel sweep, and
  whether ``auto`` (thresholds, autotune) picks the fastest on this CPU
  (``bench_conv_algorithms.py``);
- ``main-job``: ``experiments/activation_ablation.py`` cold and warm in fresh processes, its
  phases, programs and each grid against its FLOP bound (``bench_main_job.py``);
- ``xla-flags`` (opt-in): funcnn's XLA default vs off, one subprocess per setting
  (``bench_xla_flags.py``; XLA reads flags once per process, so this one cannot share it).

BENCHMARKS.md is *generated*: a header (machine, versions, command, load), a summary of the
issue-5 targets (met / missed), the sections, then ``benchmarks/NOTES.md`` verbatim — the
hand-written record of what each change predicted and what it gave. Edit NOTES.md, not
BENCHMARKS.md. PyTorch is optional (``pip install torch==2.13.0``); without it the PyTorch rows
are skipped with a note. Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import funcnn  # noqa: F401  (applies funcnn's XLA defaults before the JAX backend starts)
import jax

ROOT = Path(__file__).resolve().parent.parent
NOTES = Path(__file__).resolve().parent / "NOTES.md"
SECTIONS = ("ops", "train", "compile", "grid", "conv-algorithms", "autotune-trap", "main-job")

__all__ = ["main", "header_markdown", "targets_from_ops"]


def _load_avg() -> str:
    try:
        return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def _version(mod: str) -> str:
    try:
        return importlib.import_module(mod).__version__
    except Exception:
        return "absent"


def _cpu_name() -> str:
    from funcnn.conv_autotune import cpu_model

    return cpu_model()


def header_markdown(argv: list[str], started: float, load_start: str, extra: list[str]) -> str:
    """Machine, versions, command, date and load: what a reader needs to trust the numbers."""
    dev = jax.devices()[0]
    lines = [
        "# BENCHMARKS",
        "",
        f"{MARKER} — do not edit by hand; notes live in "
        "`benchmarks/NOTES.md` (included at the end).",
        "",
        f"- command: `{' '.join(['python -m benchmarks.run', *map(shlex.quote, argv)])}`",
        f"- date: {datetime.datetime.fromtimestamp(started).isoformat(timespec='seconds')}, "
        f"took {(time.time() - started) / 60:.1f} min",
        f"- machine: {_cpu_name()}, {os.cpu_count()} cores; load average (1/5/15 min) at start "
        f"{load_start}, at end {_load_avg()} (the CPU is shared: compare ratios measured in one run, "
        "not absolute times across runs)",
        f"- JAX backend: {jax.default_backend()} ({dev.device_kind}); "
        f"funcnn XLA defaults: {getattr(funcnn, 'XLA_DEFAULTS', 'n/a')}; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
        f"- versions: python {platform.python_version()}, jax {jax.__version__}, jaxlib {_version('jaxlib')}, "
        f"optax {_version('optax')}, numpy {_version('numpy')}, torch {_version('torch')} (optional extra)",
        "- statistics: every timing is the median over interleaved rounds with its IQR (± or [q25, q75]); "
        "ratios are medians of per-round ratios (same round, same machine load)",
        *extra,
    ]
    return "\n".join(lines)


def targets_from_ops(rows: list[dict[str, Any]], matmul_gflops: float | None = None) -> list[str]:
    """Op targets (issue 5: hand <= twin everywhere, max-pool speedups, conv GFLOP/s; issue 20:
    the 64-channel conv against ``matmul_gflops``, the same process's plain-matmul rate)."""
    out = []
    timed = [r for r in rows if "ratio" in r]
    if not timed:
        return out
    worst = max(timed, key=lambda r: r["ratio"])
    above1 = [r for r in timed if r["ratio"] > 1.0]
    above11 = [r for r in timed if r["ratio"] > 1.1]
    ok = not above11 and not above1
    out.append(
        f"- every hand rule <= its autodiff twin (ratio <= 1.0, none > 1.1): {len(above1)} of {len(timed)} rows "
        f"above 1.0, {len(above11)} above 1.1; worst {worst['ratio']:.2f} ({worst['op']}, {worst['case']}) — "
        f"{'**met**' if ok else '**missed**'}"
    )
    for r in timed:
        if r["op"] != "max_pool2d":
            continue
        overlapping = "3x3" in r["case"] and "s2" in r["case"]
        need = 4.0 if overlapping else 10.0
        speed = 1.0 / r["ratio"]
        out.append(f"- max_pool2d backward {r['case']}: {speed:.1f}x vs jax.grad (target >= {need:g}x; "
                   f"timed fwd+bwd) — {'**met**' if speed >= need else '**missed**'}")
    for r in timed:
        if r["op"] == "conv2d" and r["case"].startswith("64x32x32x64, 3x3->64") and "hand_gflops" in r:
            g = r["hand_gflops"]
            verdict = "**met (goal)**" if g >= 350 else ("**met (minimum)**" if g >= 250 else "**missed**")
            out.append(f"- conv2d fwd+bwd 64-channel case: {g:.0f} GFLOP/s (target >= 250, goal >= 350) — {verdict}")
            if matmul_gflops:
                frac = g / matmul_gflops
                out.append(f"- conv2d fwd+bwd 64-channel case against this process's 2048^3 matmul "
                           f"({matmul_gflops:.0f} GFLOP/s): {frac:.2f}x (target >= 0.9x, issue 20) — "
                           f"{'**met**' if frac >= 0.9 else '**missed**'}")
    return out


def _targets_in(md: str) -> list[str]:
    """Target lines a section wrote (``- ... — **met**/**missed**``)."""
    return [line for line in md.splitlines() if line.startswith("- ") and ("**met" in line or "**missed**" in line)]


def _section_ops(quick: bool) -> tuple[str, list[str]]:
    try:
        bench_ops = importlib.import_module("benchmarks.bench_ops")
    except ImportError as e:
        return f"## Ops: hand rules vs autodiff twins\n\nSkipped: benchmarks/bench_ops.py not importable ({e}).\n", []
    rows = bench_ops.run(rounds=5 if quick else 21)
    gf, rate = "", None
    if hasattr(bench_ops, "matmul_gflops"):
        rate = bench_ops.matmul_gflops()
        gf = f"fp32 matmul 2048^3 in this process now: {rate:.0f} GFLOP/s (the CPU's plain-matmul rate now; the 64-channel conv target of 250 assumed ~440).\n\n"
    md = (
        "## Ops: hand rules vs autodiff twins (forward + backward)\n\n"
        "Each row: `y, vjp = jax.vjp(op, ...); vjp(g)` jitted, random cotangent; hand rule vs twin "
        "interleaved; hand/twin < 1 means the hand rule is faster. GFLOP/s count direct-convolution / "
        "dense FLOPs (fwd+bwd = 6 x MACs).\n\n" + gf + bench_ops.to_markdown(rows) + "\n"
    )
    targets = []
    try:
        targets = targets_from_ops(rows, rate)
    except Exception as e:  # the ops table's schema is another module's: never fail the run on it
        targets = [f"- op targets: could not be read from the ops rows ({type(e).__name__}: {e})"]
    return md, targets


def _section_xla_flags(quick: bool) -> str:
    try:
        mod = importlib.import_module("benchmarks.bench_xla_flags")
    except ImportError as e:
        return f"## XLA CPU flags\n\nSkipped ({e}).\n"
    res = mod.run(reps=2 if quick else 3, rounds=5 if quick else 7)
    return ("## XLA CPU flags: funcnn's default vs off\n\n"
            "One subprocess per setting (XLA reads its flags once per process), alternating.\n\n"
            + mod.to_markdown(res) + "\n")


MARKER = "Generated by `python -m benchmarks.run`"


def _notes(out: Path) -> str:
    """The hand-written notes: ``benchmarks/NOTES.md``; failing that, a hand-written file already
    at ``out`` (no generator marker) is kept verbatim rather than overwritten and lost."""
    if NOTES.exists():
        return "\n---\n\n" + NOTES.read_text().strip() + "\n"
    if out.exists():
        old = out.read_text()
        if MARKER not in old:
            print(f"[benchmarks.run] {out} is hand-written and benchmarks/NOTES.md does not exist: its text is "
                  "kept verbatim at the end; move it to benchmarks/NOTES.md", file=sys.stderr)
            return ("\n---\n\n_Hand-written notes (previous content of this file; they belong in "
                    "benchmarks/NOTES.md):_\n\n" + old.strip() + "\n")
    return "\n---\n\n_No benchmarks/NOTES.md yet (hand-written notes: what each change predicted and gave)._\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="where to write (default: repo BENCHMARKS.md)")
    p.add_argument("--only", default="", help=f"comma-separated sections of {','.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="fewer repeats (smoke test, noisier)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    p.add_argument("--xla-flags", action="store_true", help="also run the XLA flag comparison (CPU)")
    p.add_argument("--members", default="8,32", help="grid sizes (default 8,32)")
    p.add_argument("--notes-only", action="store_true",
                   help="measure nothing: re-attach benchmarks/NOTES.md to the generated file at --out")
    a = p.parse_args(argv)
    if a.notes_only:
        out = Path(a.out)
        text = out.read_text() if out.exists() else ""
        if MARKER not in text or "\n---\n\n" not in text:
            p.error(f"--notes-only: {out} is not a file written by this command")
        out.write_text(text[: text.index("\n---\n\n")] + _notes(out))
        print(f"[benchmarks.run] notes re-attached to {out}", file=sys.stderr)
        return 0
    only = [s for s in a.only.split(",") if s] or list(SECTIONS)
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        p.error(f"unknown section(s) {bad}; choose from {SECTIONS}")

    started, load_start = time.time(), _load_avg()
    parts: list[str] = []
    targets: list[str] = []

    def section(name: str, fn) -> None:
        print(f"[benchmarks.run] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            md, tg = fn()
        except Exception:  # one broken section must not lose the others
            md, tg = f"## {name}\n\nFailed:\n\n```\n{traceback.format_exc()[-3000:]}\n```\n", [f"- {name}: failed (see section)"]
        parts.append(md)
        targets.extend(tg)
        print(f"[benchmarks.run] {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    if "ops" in only:
        section("ops", lambda: _section_ops(a.quick))
    if "train" in only or "compile" in only:
        from benchmarks import bench_train

        def train():
            steps = (bench_train.run_steps(rounds=7 if a.quick else 15, use_torch=not a.no_torch)
                     if "train" in only else None)
            comp = bench_train.run_compile(reps=2 if a.quick else 5) if "compile" in only else None
            md = bench_train.to_markdown(steps, comp)
            return md, _targets_in(md)

        section("train/compile", train)
    if "grid" in only:
        from benchmarks import bench_grid

        def grid():
            res = bench_grid.run(members=tuple(int(m) for m in a.members.split(",")),
                                 rounds=5 if a.quick else 9, steps=32)
            md = bench_grid.to_markdown(res)
            return md, _targets_in(md)

        section("grid", grid)
    if "conv-algorithms" in only:
        from benchmarks import bench_conv_algorithms

        def conv_algorithms():
            rows = bench_conv_algorithms.run(rounds=3 if a.quick else 7)
            worst = max(rows, key=lambda r: r["total_tuned_over_best"])
            worst_thr = max(rows, key=lambda r: r["total_thresholds_over_best"])
            md = ("## Convolution algorithms: does `auto` pick the fastest on this CPU?\n\n"
                  + bench_conv_algorithms.__doc__.split("\n\n", 2)[2].strip() + "\n\n"
                  + bench_conv_algorithms.to_markdown(rows) + "\n")
            target = (f"- conv algorithm choice on this CPU: autotuned auto within {worst['total_tuned_over_best']:.2f}x "
                      f"of the fastest per-sum choice on every swept shape (worst: {worst['case']}); the fixed "
                      f"thresholds within {worst_thr['total_thresholds_over_best']:.2f}x (worst: {worst_thr['case']})")
            return md, [target]

        section("conv-algorithms", conv_algorithms)
    if "autotune-trap" in only:
        from benchmarks import bench_autotune_trap

        section("autotune-trap", lambda: bench_autotune_trap.to_markdown(bench_autotune_trap.run()))
    if "main-job" in only:
        from benchmarks import bench_main_job

        def main_job():
            md = bench_main_job.to_markdown(bench_main_job.run())
            return md, _targets_in(md)

        section("main-job", main_job)
    if a.xla_flags and jax.default_backend() == "cpu":
        section("xla-flags", lambda: (_section_xla_flags(a.quick), []))

    head = header_markdown(argv, started, load_start, [])
    summary = ["## Targets (issues 5, 14 and 20)", "", *(targets or ["- none measured in this run"]), ""]
    out = Path(a.out)
    text = "\n".join([head, "", *summary, *parts]) + _notes(out)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"[benchmarks.run] wrote {out}", file=sys.stderr)
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
