"""The gradcheck table and command line: ``python -m funcnn.gradcheck [--op NAME] [--quick]``
runs every registered case in float64, prints one table row per case and a summary line,
and exits 1 if any case fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.gradcheck.engine import GradcheckReport, run

__all__ = ["format_table", "main"]


_COLUMNS = ("op", "config", "algorithm", "vs autodiff (rel / abs)", "vs finite diff (rel)", "result")


def _fmt(v: float) -> str:
    return "-" if np.isnan(v) else f"{v:.1e}"


def _row(r: GradcheckReport) -> tuple[str, ...]:
    if r.error:
        return (r.op, r.config, r.algorithm or "-", "error", "-", "FAIL  " + r.error)
    ad = f"{_fmt(r.max_rel_err)} / {_fmt(r.max_abs_err)}"
    fd = _fmt(r.max_fd_rel_err) + ("" if r.fd_passed else " check_grads: FAIL")
    verdict = "PASS" if r.passed else "FAIL"
    if not r.passed and r.fd_message:
        verdict += "  " + r.fd_message[:200]
    return (r.op, r.config, r.algorithm or "-", ad, fd, verdict)


_WIDTHS = (21, 80, 42, 23, 20)


def _line(cells: Sequence[str]) -> str:
    head = [c if len(c) <= w else c[: w - 1] + "~" for c, w in zip(cells[:-1], _WIDTHS)]
    return "  ".join(c.ljust(w) for c, w in zip(head, _WIDTHS)) + "  " + cells[-1]


def format_table(reports: Sequence[GradcheckReport]) -> str:
    """A plain-text table, one row per report, and a summary line."""
    lines = [_line(_COLUMNS), _line(["-" * w for w in _WIDTHS] + ["------"])]
    lines += [_line(_row(r)) for r in reports]
    lines.append(_summary(reports))
    return "\n".join(lines)


def _summary(reports: Sequence[GradcheckReport], seconds: float | None = None) -> str:
    failed = [r for r in reports if not r.passed]
    took = "" if seconds is None else f" in {seconds:.1f}s"
    status = "all passed" if not failed else f"{len(failed)} FAILED"
    return f"gradcheck: {len(reports)} cases, {len(reports) - len(failed)} passed, {status}{took}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m funcnn.gradcheck``: check every registered case in float64.

    Prints one row per case (op, config, max relative / absolute error vs autodiff,
    max directional error vs finite differences, PASS/FAIL) and a summary line; returns
    (exits with) 1 if any case fails, else 0.
    """
    parser = argparse.ArgumentParser(
        prog="python -m funcnn.gradcheck",
        description="Check every hand-written backward rule against jax.grad of its autodiff "
        "twin and against central finite differences, in float64.",
    )
    parser.add_argument(
        "--op", action="append", help="only this op (or op module, e.g. 'conv'); repeatable"
    )
    parser.add_argument("--quick", action="store_true", help="about one case per op family")
    parser.add_argument("--seed", type=int, default=0, help="seed for points and directions")
    ns = parser.parse_args(argv)

    jax.config.update("jax_enable_x64", True)
    # Each case compiles a few tiny programs; XLA's optimizations cost more than they save.
    # (Restored afterwards, so calling main() in-process leaves the config as it was.)
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        start = time.perf_counter()
        print(_line(_COLUMNS))
        print(_line(["-" * w for w in _WIDTHS] + ["------"]), flush=True)
        reports = run(
            op=ns.op, quick=ns.quick, seed=ns.seed, dtype=jnp.float64,
            callback=lambda r: print(_line(_row(r)), flush=True),
        )
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    if not reports:
        print(f"gradcheck: no case matches --op {ns.op}", file=sys.stderr)
        return 1
    print(_summary(reports, time.perf_counter() - start))
    return 0 if all(r.passed for r in reports) else 1


