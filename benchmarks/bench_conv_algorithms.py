"""Does ``algorithm="auto"`` pick the fastest algorithm for each sum of a convolution, on this CPU?

Usage (one process; prints markdown)::

    python -m benchmarks.bench_conv_algorithms [--rounds 7] [--out results.md]

For a sweep of LeNet-, CIFAR- and 64-channel-sized shapes (batch 128), each of the three
sums of :func:`funcnn.conv2d` -- the forward, ``dx`` and ``dw`` -- is timed alone under
every algorithm of :data:`funcnn.conv.CONV_ALGORITHMS` that computes it (``dx`` and ``dw``
alone: ``jax.vjp`` with respect to one argument under ``jax.jit``; XLA drops the forward
output and the other cotangent, so only that sum runs), interleaved in one process. Each row
reports the times, the fastest algorithm, and two choices of ``auto`` with their time over
the fastest (1.00: the fastest was picked): the fixed thresholds
(:data:`funcnn.conv.AUTO_THRESHOLDS`, what ``FUNCNN_CONV_AUTOTUNE=0`` runs) and the
autotune's measurement (:mod:`funcnn.conv_autotune`, the default on CPU; made once per CPU
and cached, so a rerun reports the cached choice). The last columns sum the three sums:
the price of each choice for the whole fwd+bwd on this machine.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import funcnn  # noqa: F401  (applies funcnn's XLA defaults before the backend starts)
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import time_interleaved
from funcnn.conv import CONV_ALGORITHMS, conv2d, conv_algorithm, conv_plan

__all__ = ["SHAPES", "run", "to_markdown", "main"]

# (label, x shape NHWC, kernel (KH, KW), C_out, padding)
SHAPES: list[tuple[str, tuple[int, ...], tuple[int, int], int, str]] = [
    ("LeNet conv1 1->6 5x5 SAME 28x28", (128, 28, 28, 1), (5, 5), 6, "SAME"),
    ("LeNet conv2 6->16 5x5 12x12", (128, 12, 12, 6), (5, 5), 16, "VALID"),
    ("CIFAR conv1 3->32 3x3 SAME 32x32", (64, 32, 32, 3), (3, 3), 32, "SAME"),
    ("4->16 3x3 SAME 28x28", (128, 28, 28, 4), (3, 3), 16, "SAME"),
    ("8->16 3x3 SAME 28x28", (128, 28, 28, 8), (3, 3), 16, "SAME"),
    ("8->32 3x3 SAME 16x16", (128, 16, 16, 8), (3, 3), 32, "SAME"),
    ("12->24 3x3 SAME 16x16", (128, 16, 16, 12), (3, 3), 24, "SAME"),
    ("16->16 3x3 SAME 16x16", (128, 16, 16, 16), (3, 3), 16, "SAME"),
    ("32->32 3x3 SAME 16x16", (128, 16, 16, 32), (3, 3), 32, "SAME"),
    ("64->64 3x3 SAME 32x32", (64, 32, 32, 64), (3, 3), 64, "SAME"),
]

_PARTS = ("forward", "input_grad", "kernel_grad")
_INDEX = {"forward": 0, "input_grad": 1, "kernel_grad": 2}


def _candidates(part: str) -> dict[str, str]:
    """Algorithm implementation name -> one CONV_ALGORITHMS entry that runs it for ``part``."""
    out: dict[str, str] = {}
    for name, parts in CONV_ALGORITHMS.items():
        out.setdefault(parts[_INDEX[part]], name)
    return out


def _fn(part: str, algorithm: str, padding: str, x, w, g):
    """A jitted callable computing one sum alone, and its arguments."""
    def conv(x, w):
        return conv2d(x, w, padding=padding, algorithm=algorithm)

    if part == "forward":
        return jax.jit(conv), (x, w)
    if part == "input_grad":
        return jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)), (x, w, g)
    return jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)), (x, w, g)


def run(rounds: int = 7, verbose: bool = True) -> list[dict[str, Any]]:
    rows = []
    for label, x_shape, k, c_out, padding in SHAPES:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
        w = jnp.asarray(rng.normal(size=(*k, x_shape[-1], c_out)) / np.sqrt(np.prod(k) * x_shape[-1]), jnp.float32)
        y = conv2d(x, w, padding=padding, algorithm="textbook")
        g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
        thresholds = conv_algorithm(w.shape, (1, 1), (1, 1), "auto", backend="cpu")
        tuned = conv_plan(x, w, padding=padding)
        row: dict[str, Any] = {"case": label, "thresholds": str(thresholds), "tuned": str(tuned)}
        for part in _PARTS:
            fns = {}
            for impl, name in _candidates(part).items():
                f, args = _fn(part, name, padding, x, w, g)
                fns[impl] = (lambda f=f, args=args: f(*args))
            stats, _ = time_interleaved(fns, rounds=rounds)
            times = {impl: s.median for impl, s in stats.items()}
            best = min(times, key=times.get)
            row[part] = {"times": times, "best": best, "thresholds": getattr(thresholds, part),
                         "tuned": getattr(tuned, part)}
        for choice in ("thresholds", "tuned"):
            row[f"total_{choice}_over_best"] = sum(row[p]["times"][row[p][choice]] for p in _PARTS) / sum(
                row[p]["times"][row[p]["best"]] for p in _PARTS
            )
        rows.append(row)
        if verbose:
            print(_row_md(row), file=sys.stderr, flush=True)
    return rows


_SHORT = {"textbook": "textbook", "taps": "taps", "space_to_depth": "s2d", "patches": "patches"}


def _cell(d: dict[str, Any]) -> str:
    times = " / ".join(
        f"**{_SHORT[i]} {t * 1e3:.2f}**" if i == d["best"] else f"{_SHORT[i]} {t * 1e3:.2f}"
        for i, t in d["times"].items()
    )
    return f"{times}; thr {_SHORT[d['thresholds']]}, tuned {_SHORT[d['tuned']]}"


def _row_md(row: dict[str, Any]) -> str:
    return (f"| {row['case']} | {_cell(row['forward'])} | {_cell(row['input_grad'])} | "
            f"{_cell(row['kernel_grad'])} | {row['total_thresholds_over_best']:.2f} | "
            f"{row['total_tuned_over_best']:.2f} |")


def to_markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| shape (batch 128; 64 for 32x32) | forward ms (fastest bold) | dx ms | dw ms "
            "| thresholds / best, fwd+dx+dw | tuned / best |\n"
            "|---|---|---|---|---|---|")
    return "\n".join([head, *(_row_md(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bench_ops import emit, machine_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    return emit(f"{machine_info()}\n\n{to_markdown(run(a.rounds))}\n", a.out)


if __name__ == "__main__":
    raise SystemExit(main())
