"""Proof of the rules: each hand-written backward rule against ``jax.grad`` and finite differences.

For an op ``f`` with a hand-written rule (``jax.custom_vjp``) and its autodiff twin ``f_ref``
(:mod:`funcnn.reference`), :func:`check` evaluates, at one point ``args``:

1. **vs autodiff** -- the forwards, then the vector-Jacobian products of both rules for one
   *random* cotangent ``u`` (never an all-ones ``.sum()``, which hides sign and permutation
   errors): per differentiable input ``i``, ``a_i = vjp(f)(u)_i`` and ``r_i = vjp(f_ref)(u)_i``,

   - ``max_abs_err = max |a_i - r_i|``,
   - ``max_rel_err = max |a_i - r_i| / max |r_i|`` (norm-wise: relative to the largest
     entry of the reference gradient, so entries near zero do not blow it up).

2. **vs finite differences** -- per differentiable input, the directional check of
   ``jax.test_util.check_vjp``: for a random tangent ``t_i``,
   ``<t_i, vjp(f)(u)_i>`` against ``<(f(x_i + eps t_i) - f(x_i - eps t_i)) / (2 eps), u>``
   (central differences), reported as a relative error ``fd_rel_err``; and the verdict of
   ``jax.test_util.check_grads(f, diff_args, order=1, modes=("rev",))`` on all
   differentiable inputs at once (pass/fail plus the message it raised).

Finite differences are only meaningful in float64 (``jax.config.update("jax_enable_x64",
True)``, which ``python -m funcnn.gradcheck`` does); points must avoid kinks and ties, which
the registered :data:`CASES` do by construction.

``python -m funcnn.gradcheck [--import MODULE] [--op NAME] [--quick]`` runs every registered
case, prints one table row per case and a summary line, and exits 1 if any case fails.

User ops are checked like the built-ins. An activation registered with
:func:`funcnn.define_activation` gets its rows from the registry: one point per settings
variant that covers the central range, a wide range of both signs and both sides of every
declared kink. Any other op joins with :func:`register_case`. ``--import MODULE`` imports the
user's module (a module name importable from the current directory, or a ``.py`` path)
before the cases are built, so ``python -m funcnn.gradcheck --import my_ops --op mish``
checks ``mish``. A wrong rule, a backward of the wrong shape or dtype, or an exception is a
failing row with a one-line reason that names the input, the worst entry and the hand, twin
and finite-difference values there.

The package: :mod:`~funcnn.gradcheck.engine` (:func:`check`, :func:`check_case`,
:func:`run`), :mod:`~funcnn.gradcheck.cases` (the registry, :data:`CASES`) and
:mod:`~funcnn.gradcheck.report` (the table and the command line).
"""

from __future__ import annotations

from funcnn.gradcheck.cases import CASES
from funcnn.gradcheck.engine import (
    OP_MODULES, Case, GradcheckReport, InputError, all_cases, check, check_case, register_case, run,
)
from funcnn.gradcheck.report import format_table, main

__all__ = [
    "CASES",
    "OP_MODULES",
    "Case",
    "GradcheckReport",
    "InputError",
    "all_cases",
    "check",
    "check_case",
    "format_table",
    "main",
    "register_case",
    "run",
]
