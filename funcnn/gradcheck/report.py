"""The gradcheck table and command line: ``python -m funcnn.gradcheck [--import MODULE]
[--op NAME] [--quick]`` runs every registered case in float64, prints one table row per case
(readable at 100 columns: long cells wrap, a failing row's reason follows on its own line)
and a summary line, and exits 0 when every case passes, 1 when any fails, 2 on a bad
command line (a module that cannot be imported).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops import conv_autotune
from funcnn._ops.imports import import_module_or_file
from funcnn.gradcheck.engine import GradcheckReport, all_cases, run

__all__ = ["format_table", "import_user_module", "main"]


_COLUMNS = ("op", "config", "algorithm", "autodiff", "fin.diff", "result")
#: Column widths: with two spaces between columns and a 4-letter verdict, a row is 100 wide.
_WIDTHS = (14, 34, 18, 8, 8)
_WIDTH = 100


def _fmt(v: float) -> str:
    return "-" if np.isnan(v) else f"{v:.1e}"


def _row(r: GradcheckReport) -> tuple[str, ...]:
    if r.error:
        return (r.op, r.config, r.algorithm or "-", "error", "-", "FAIL")
    return (r.op, r.config, r.algorithm or "-", _fmt(r.max_rel_err), _fmt(r.max_fd_rel_err),
            "PASS" if r.passed else "FAIL")


def _line(cells: Sequence[str]) -> str:
    """One table row; cells wider than their column wrap onto continuation lines."""
    wrapped = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] for c, w in zip(cells[:-1], _WIDTHS)]
    lines = []
    for k in range(max(len(w) for w in wrapped)):
        cols = [(w[k] if k < len(w) else "").ljust(width) for w, width in zip(wrapped, _WIDTHS)]
        lines.append(("  ".join(cols) + "  " + (cells[-1] if k == 0 else "")).rstrip())
    return "\n".join(lines)


def _report_lines(r: GradcheckReport) -> str:
    text = _line(_row(r))
    if not r.passed:
        text += "\n" + textwrap.fill(r.reason, _WIDTH, initial_indent="    -> ", subsequent_indent="       ")
    return text


def _header() -> str:
    return _line(_COLUMNS) + "\n" + _line(["-" * w for w in _WIDTHS] + ["------"])


def format_table(reports: Sequence[GradcheckReport]) -> str:
    """A plain-text table, one row per report (a failing one followed by its reason), and a summary line."""
    return "\n".join([_header(), *(_report_lines(r) for r in reports), _summary(reports)])


def _summary(reports: Sequence[GradcheckReport], seconds: float | None = None) -> str:
    failed = [r for r in reports if not r.passed]
    took = "" if seconds is None else f" in {seconds:.1f}s"
    status = "all passed" if not failed else f"{len(failed)} FAILED"
    return f"gradcheck: {len(reports)} cases, {len(reports) - len(failed)} passed, {status}{took}"


def import_user_module(spec: str, *, fn: str = "--import") -> object:
    """Import a user's module (:func:`funcnn._ops.imports.import_module_or_file`: a module name
    importable from the current directory, or a ``.py`` path). Raises ``ImportError`` with
    one line naming ``spec``."""
    try:
        return import_module_or_file(spec)
    except Exception as e:  # noqa: BLE001 - any failure of the user's module is reported in one line
        raise ImportError(f"{fn} {spec}: cannot import it: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m funcnn.gradcheck``: check every registered case in float64.

    Prints one row per case (op, config, algorithm, max relative error vs autodiff, max
    directional error vs finite differences, PASS/FAIL; a failing row is followed by its
    reason) and a summary line; returns (exits with) 1 if any case fails, 2 if a module of
    ``--import`` cannot be imported, else 0.
    """
    parser = argparse.ArgumentParser(
        prog="python -m funcnn.gradcheck",
        description="Check every hand-written backward rule against jax.grad of its autodiff "
        "twin and against central finite differences, in float64.",
    )
    parser.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import this module first (a module name or a .py path) so its registered ops and "
        "cases are checked; repeatable",
    )
    parser.add_argument(
        "--op", action="append", help="only this op (or op module, e.g. 'conv', 'user'); repeatable"
    )
    parser.add_argument("--quick", action="store_true", help="about one case per op family")
    parser.add_argument("--seed", type=int, default=0, help="seed for points and directions")
    ns = parser.parse_args(argv)
    for spec in ns.imports:
        try:
            import_user_module(spec)
        except ImportError as e:
            print(f"gradcheck: {e}", file=sys.stderr)
            return 2

    jax.config.update("jax_enable_x64", True)
    # Each case compiles a few tiny programs; XLA's optimizations cost more than they save.
    # (Restored afterwards, so calling main() in-process leaves the config as it was.)
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        start = time.perf_counter()
        print(_header(), flush=True)
        # Every algorithm has forced cases of its own: ``auto`` checks the thresholds' plan
        # (the same on every machine) without timing the alternatives first.
        with conv_autotune.disabled():
            reports = run(
                all_cases(), op=ns.op, quick=ns.quick, seed=ns.seed, dtype=jnp.float64,
                callback=lambda r: print(_report_lines(r), flush=True),
            )
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    if not reports:
        print(f"gradcheck: no case matches --op {ns.op}", file=sys.stderr)
        return 1
    print(_summary(reports, time.perf_counter() - start))
    return 0 if all(r.passed for r in reports) else 1
