"""Forward+backward of every hand-ruled op vs its autodiff twin, on LeNet-sized and 64-channel shapes.

Usage (one process, one run; prints a markdown table, optionally writes it)::

    python -m benchmarks.bench_ops [--rounds 9] [--only conv2d,max_pool2d] [--out results.md]

Each row times ``y, vjp = jax.vjp(op, *args); vjp(g)`` under ``jax.jit`` with a random
cotangent ``g``, for the hand rule (``funcnn.<module>.<op>``) and the autodiff twin
(``funcnn.reference.<module>.<op>``), *interleaved* in the same process (see
``benchmarks/_timing.py``). Reported: median and IQR per rule, the median of per-round
ratios hand/twin (< 1: the hand rule is faster), and GFLOP/s for conv (direct-convolution
FLOPs, 2 * MACs * 3 for fwd+bwd) and dense (2 * N * D_in * D_out * 3).

For convolution and pooling each row names the forward each rule ran (the hand op's
algorithm per sum, e.g. ``auto(fwd=space_to_depth dx=taps dw=space_to_depth)``, and the
twin's ``plain`` ``lax.conv`` / ``reduce_window``). ``--twin-forward hand`` makes the twin
differentiate the hand op's own forward (``algorithm="auto"``), so hand/twin compares the
backward rules alone; ``--algorithm NAME`` forces one algorithm on the hand op (and on the
twin's forward with ``--twin-forward hand``).

Ops whose module has not landed yet are reported as skipped rows, not errors.
"""

from __future__ import annotations

import argparse
import importlib
import math
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from funcnn._ops.xla import configure_xla_cpu_defaults

# `import funcnn` applies its XLA defaults before jax starts; report what it did. (Calling
# again is harmless: it then answers "user-set", the flag being present.)
import funcnn

XLA_DEFAULTS = getattr(funcnn, "XLA_DEFAULTS", None) or configure_xla_cpu_defaults()


import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import ratio_stats, time_interleaved

__all__ = ["OpCase", "CASES", "run", "to_markdown", "machine_info"]


@dataclass(frozen=True)
class OpCase:
    """One benchmark row: ``module.op(*diff_args, *fixed_args, **kwargs)``.

    ``diff_args`` are the shapes of the float arrays differentiated (cotangents returned for
    each); ``fixed`` builds non-differentiated arrays (targets, labels) from an rng.
    """

    module: str
    op: str
    label: str
    diff_shapes: tuple[tuple[int, ...], ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    fixed: Callable[[np.random.Generator], tuple] | None = None
    flops: int | None = None  # fwd+bwd FLOPs, for GFLOP/s


def _conv_case(label, x_shape, w_shape, **kw) -> OpCase:
    from funcnn.conv import conv_macs

    op = "conv2d" if len(w_shape) == 4 else "conv1d"
    macs = conv_macs(x_shape, w_shape, **kw)
    return OpCase("conv", op, label, (x_shape, w_shape, (w_shape[-1],)), kw, flops=6 * macs)


def _dense_case(label, n, d_in, d_out) -> OpCase:
    return OpCase("linear", "dense", label, ((n, d_in), (d_in, d_out), (d_out,)), flops=6 * n * d_in * d_out)


def _targets(shape):
    return lambda rng: (jnp.asarray(rng.uniform(size=shape), jnp.float32),)


def _labels(n, k):
    return lambda rng: (jnp.asarray(rng.integers(0, k, size=(n,)), jnp.int32),)


# LeNet-5 on 28x28x1 (batch 128), a CIFAR-like first layer, the 64-channel 32x32 case, MLP.
_LENET_ACT = (128, 24, 24, 6)
_BIG_ACT = (64, 32, 32, 64)
_ACTS = ("logistic", "tanh", "hard_logistic", "hard_tanh", "relu", "leaky_relu", "elu", "softplus", "gelu")

CASES: list[OpCase] = [
    _conv_case("LeNet conv1 128x28x28x1, 5x5->6", (128, 28, 28, 1), (5, 5, 1, 6)),
    _conv_case("LeNet conv2 128x12x12x6, 5x5->16", (128, 12, 12, 6), (5, 5, 6, 16)),
    _conv_case("CIFAR conv1 64x32x32x3, 3x3->32 SAME", (64, 32, 32, 3), (3, 3, 3, 32), padding="SAME"),
    _conv_case("64x32x32x64, 3x3->64 SAME", (64, 32, 32, 64), (3, 3, 64, 64), padding="SAME"),
    _conv_case("64x32x32x64, 3x3->128 SAME s2", (64, 32, 32, 64), (3, 3, 64, 128), padding="SAME", stride=2),
    _conv_case("conv1d 128x40x1, 5->32 SAME", (128, 40, 1), (5, 1, 32), padding="SAME"),
    _conv_case("conv1d 128x40x32, 5->32 SAME", (128, 40, 32), (5, 32, 32), padding="SAME"),
    _dense_case("LeNet fc1 128x400->120", 128, 400, 120),
    _dense_case("MLP 128x784->256", 128, 784, 256),
    _dense_case("MLP 128x256->10", 128, 256, 10),
    *[OpCase("activations", a, f"{a} {s}", (s,)) for a in _ACTS for s in (_LENET_ACT, _BIG_ACT)],
    *[OpCase("activations", "prelu", f"prelu {s}", (s, (s[-1],))) for s in (_LENET_ACT, _BIG_ACT)],
    *[OpCase("activations", "swish", f"swish(beta) {s}", (s, ())) for s in (_LENET_ACT, _BIG_ACT)],
    *[OpCase("activations", a, f"{a} {s}", (s,)) for a in ("softmax", "log_softmax") for s in ((128, 10), (256, 1000))],
    OpCase("pooling", "max_pool2d", "max 2x2 128x24x24x6", (_LENET_ACT,), {"window": 2}),
    OpCase("pooling", "max_pool2d", "max 2x2 128x28x28x32", ((128, 28, 28, 32),), {"window": 2}),
    OpCase("pooling", "max_pool2d", "max 3x3 s2 64x32x32x64", (_BIG_ACT,), {"window": 3, "stride": 2}),
    OpCase("pooling", "avg_pool2d", "avg 2x2 128x24x24x6", (_LENET_ACT,), {"window": 2}),
    OpCase("pooling", "avg_pool2d", "avg 3x3 s2 SAME 64x32x32x64", (_BIG_ACT,), {"window": 3, "stride": 2, "padding": "SAME"}),
    OpCase("pooling", "max_pool1d", "max 2 128x40x32", ((128, 40, 32),), {"window": 2}),
    OpCase("pooling", "avg_pool1d", "avg 2 128x40x32", ((128, 40, 32),), {"window": 2}),
    OpCase("normalization", "batch_norm", "bn 128x24x24x6", (_LENET_ACT, (6,), (6,))),
    OpCase("normalization", "batch_norm", "bn 64x32x32x64", (_BIG_ACT, (64,), (64,))),
    OpCase("normalization", "batch_norm", "bn 128x256", ((128, 256), (256,), (256,))),
    OpCase("losses", "mse", "mse 128x10", ((128, 10),), fixed=_targets((128, 10))),
    OpCase("losses", "logistic_mse", "logistic_mse 128x10", ((128, 10),), fixed=_targets((128, 10))),
    OpCase("losses", "binary_cross_entropy", "bce 128x10", ((128, 10),), fixed=_targets((128, 10))),
    OpCase("losses", "softmax_cross_entropy", "softmax_ce 128x10 int", ((128, 10),), fixed=_labels(128, 10)),
    OpCase("losses", "softmax_cross_entropy", "softmax_ce 256x1000 int", ((256, 1000),), fixed=_labels(256, 1000)),
    OpCase("losses", "softmax_mse", "softmax_mse 128x10 int", ((128, 10),), fixed=_labels(128, 10)),
]


def _resolve(case: OpCase):
    """(hand, twin) callables, or None if the module/op has not landed."""
    try:
        hand = getattr(importlib.import_module(f"funcnn.{case.module}"), case.op)
        twin = getattr(importlib.import_module(f"funcnn.reference.{case.module}"), case.op)
    except (ImportError, AttributeError):
        return None
    return hand, twin


_ALGORITHM_MODULES = ("conv", "pooling")


def forward_names(case: OpCase, args, hand_kw: dict[str, Any], twin_kw: dict[str, Any]) -> str:
    """``"hand: <algorithm per sum>; twin: <forward>"`` for conv and pooling rows, else ``""``."""
    if case.module == "conv":
        from funcnn.conv import conv_plan

        def name(alg, twin=False):
            if alg == "plain":
                return "plain lax.conv forward"
            plan = conv_plan(args[0], args[1], stride=case.kwargs.get("stride", 1),
                             padding=case.kwargs.get("padding", "VALID"), dilation=case.kwargs.get("dilation", 1),
                             algorithm=alg)
            return f"{plan.forward} forward ({alg})" if twin else str(plan)
    elif case.module == "pooling":
        from funcnn._ops.geometry import pool_geometry
        from funcnn.pooling import pool_algorithm

        nd = args[0].ndim - 2
        geo = pool_geometry("bench", args[0], case.kwargs["window"], case.kwargs.get("stride"),
                            case.kwargs.get("padding", "VALID"), nd)

        from funcnn.pooling import _few_channel_tiles

        # the hand max pool's own forward: reduce-window over few-channel tiling windows
        fwd = "reduce-window" if case.op.startswith("max_pool") and _few_channel_tiles(geo, args[0]) else "taps"

        def name(alg, twin=False):
            if alg == "plain":
                return "plain forward (stacked max / reduce_window)"
            return "taps forward" if twin else f"{fwd} forward, {pool_algorithm(geo, alg)} backward"
    else:
        return ""
    return f"hand: {name(hand_kw.get('algorithm', 'auto'))}; twin: {name(twin_kw.get('algorithm', 'plain'), True)}"


def _fwd_bwd(op, fixed, kwargs):
    def f(args, g):
        y, vjp = jax.vjp(lambda *a: op(*a, *fixed, **kwargs), *args)
        return y, vjp(g)

    return jax.jit(f)


def run(
    cases: list[OpCase] | None = None, *, rounds: int = 9, only: set[str] | None = None, seed: int = 0,
    verbose: bool = True, twin_forward: str = "plain", algorithm: str = "auto",
) -> list[dict[str, Any]]:
    """Time every case; returns one dict per row (times in seconds).

    ``twin_forward="hand"`` runs the twin on the hand op's forward (conv, pooling);
    ``algorithm`` is the hand op's algorithm for conv and pooling rows (a row it does not
    apply to is skipped).
    """
    if twin_forward not in ("plain", "hand"):
        raise ValueError(f"bench_ops.run: twin_forward must be 'plain' or 'hand', got {twin_forward!r}")
    rows = []
    for case in cases if cases is not None else CASES:
        if only and case.op not in only and case.module not in only:
            continue
        pair = _resolve(case)
        if pair is None:
            rows.append({"op": case.op, "case": case.label, "skipped": "not implemented yet"})
            continue
        rng = np.random.default_rng(seed)
        args = tuple(jnp.asarray(rng.normal(size=s), jnp.float32) for s in case.diff_shapes)
        fixed = case.fixed(rng) if case.fixed else ()
        y = jax.jit(lambda *a: pair[1](*a, *fixed, **case.kwargs))(*args)
        g = jnp.asarray(rng.normal(size=y.shape), y.dtype)
        hand_kw, twin_kw = dict(case.kwargs), dict(case.kwargs)
        if case.module in _ALGORITHM_MODULES:
            hand_kw["algorithm"] = algorithm
            twin_kw["algorithm"] = algorithm if twin_forward == "hand" else "plain"
        try:
            forward = forward_names(case, args, hand_kw, twin_kw)
        except ValueError as e:  # a forced algorithm that does not apply to this geometry
            rows.append({"op": case.op, "case": case.label, "skipped": str(e)})
            continue
        fh, ft = _fwd_bwd(pair[0], fixed, hand_kw), _fwd_bwd(pair[1], fixed, twin_kw)
        stats, raw = time_interleaved({"hand": lambda: fh(args, g), "twin": lambda: ft(args, g)}, rounds=rounds)
        r = ratio_stats(raw, "hand", "twin")
        row = {
            "op": case.op, "case": case.label,
            "hand_s": stats["hand"].median, "hand_iqr_s": stats["hand"].iqr,
            "twin_s": stats["twin"].median, "twin_iqr_s": stats["twin"].iqr,
            "ratio": r.median, "ratio_q25": r.q25, "ratio_q75": r.q75, "rounds": rounds,
            "forward": forward,
        }
        if case.flops:
            row["hand_gflops"] = case.flops / stats["hand"].median / 1e9
            row["twin_gflops"] = case.flops / stats["twin"].median / 1e9
        rows.append(row)
        if verbose:
            print(_row_md(row), file=sys.stderr, flush=True)
    return rows


def _ms(s: float) -> str:
    return f"{s * 1e3:.3g}"


def _row_md(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"| {row['op']} | {row['case']} | — | — | — | {row['skipped']} | | |"
    gf = ""
    if "hand_gflops" in row:
        gf = f"{row['hand_gflops']:.0f} / {row['twin_gflops']:.0f}"
    flag = " **slower**" if row["ratio"] > 1.1 else ""
    return (
        f"| {row['op']} | {row['case']} | {_ms(row['hand_s'])} ± {_ms(row['hand_iqr_s'])} "
        f"| {_ms(row['twin_s'])} ± {_ms(row['twin_iqr_s'])} "
        f"| {row['ratio']:.2f} [{row['ratio_q25']:.2f}, {row['ratio_q75']:.2f}]{flag} | {gf} "
        f"| {row.get('forward', '')} |"
    )


def machine_info() -> str:
    """One line: CPU, cores, load, versions, XLA_FLAGS as seen by this process."""
    import os

    from funcnn.conv_autotune import cpu_model

    cpu = cpu_model()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = math.nan
    return (
        f"{cpu}, {os.cpu_count()} cores, load avg {load:.1f}; python {platform.python_version()}, "
        f"jax {jax.__version__}, devices {jax.devices()}; funcnn XLA defaults: {XLA_DEFAULTS}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )


def matmul_gflops(n: int = 2048, rounds: int = 5) -> float:
    """fp32 n^3 matmul throughput now, in this process: the machine's state for the table.

    A row's GFLOP/s divided by this figure is its fraction of what the CPU does for a plain
    matmul right now (comparable across loaded and idle runs).
    """
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    stats, _ = time_interleaved({"mm": lambda: mm(a, a)}, rounds=rounds)
    return 2 * n**3 / stats["mm"].median / 1e9


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """The table: times in ms as median ± IQR, ratio = median of per-round hand/twin [IQR]."""
    head = (
        "| op | case | hand ms (median ± IQR) | twin ms (median ± IQR) | hand/twin [q25, q75] | GFLOP/s hand / twin "
        "| forward |\n"
        "|---|---|---|---|---|---|---|"
    )
    return "\n".join([head, *(_row_md(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--only", default="", help="comma-separated op or module names")
    p.add_argument("--out", default="", help="also write the markdown here")
    p.add_argument("--twin-forward", choices=("plain", "hand"), default="plain",
                   help="the twin's forward for conv/pooling: its own (plain) or the hand op's")
    p.add_argument("--algorithm", default="auto", help="the hand op's conv/pooling algorithm (default auto)")
    a = p.parse_args(argv)
    only = {s for s in a.only.split(",") if s} or None
    info = f"{machine_info()}; fp32 matmul 2048^3 now: {matmul_gflops():.0f} GFLOP/s"
    print(info, file=sys.stderr)
    rows = run(rounds=a.rounds, only=only, twin_forward=a.twin_forward, algorithm=a.algorithm)
    return emit(f"{info}\n\n{to_markdown(rows)}\n", a.out)


def emit(md: str, out: str = "") -> int:
    """Print a benchmark's markdown and, given a path, write it there too; returns 0."""
    print(md)
    if out:
        with open(out, "w") as f:
            f.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
