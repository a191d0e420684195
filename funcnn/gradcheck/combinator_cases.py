"""Gradcheck cases for the combinators' hand-written rules (:mod:`funcnn.nn.combinators`).

- :data:`COMBINATOR_CASES`: :class:`~funcnn.gradcheck.engine.Case` rows for the ops
  ``fan_out``, ``fan_in_sum`` and ``fan_in_concat`` (module ``"combinators"``: the hand rule
  from :mod:`funcnn.nn.combinators`, the twin from :mod:`funcnn.reference.combinators`), so
  ``gradcheck.run(COMBINATOR_CASES)`` / :func:`~funcnn.gradcheck.engine.check_case` run them
  like any registered case.
- :func:`combinator_checks`: whole layers built on those rules (residual blocks, fan-out /
  parallel / fan-in graphs), as ``(name, (hand_fn, ref_fn), make_args)`` with
  ``make_args(rng, dtype) -> args``: ``hand_fn(x, *param_leaves)`` is the layer under
  ``rule="hand"``, ``ref_fn`` the same layer under ``rule="autodiff"``; pass them to
  :func:`~funcnn.gradcheck.engine.check` as ``check((hand_fn, ref_fn), make_args(rng, dtype))``.

The fan ops are linear, so any point is away from kinks; the layers use smooth activations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.gradcheck.engine import Case

__all__ = ["COMBINATOR_CASES", "combinator_checks"]


def _arrays(*shapes: tuple[int, ...]) -> Callable[[np.random.Generator, Any], tuple[Any, ...]]:
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        return tuple(jnp.asarray(rng.standard_normal(s), dtype) for s in shapes)

    return make


COMBINATOR_CASES: list[Case] = [
    Case("fan_out", "combinators", _arrays((4, 5)), {"n": 1}),
    Case("fan_out", "combinators", _arrays((4, 5)), {"n": 3}, quick=True),
    Case("fan_out", "combinators", _arrays((2, 3, 3, 2)), {"n": 2}),
    Case("fan_in_sum", "combinators", _arrays((4, 5))),
    Case("fan_in_sum", "combinators", _arrays((4, 5), (4, 5), (4, 5)), quick=True),
    Case("fan_in_sum", "combinators", _arrays((2, 3, 3, 2), (2, 3, 3, 2))),
    Case("fan_in_concat", "combinators", _arrays((4, 2), (4, 5), (4, 1)), quick=True),
    Case("fan_in_concat", "combinators", _arrays((2, 3, 3, 2), (1, 3, 3, 2)), {"axis": 0}),
    Case("fan_in_concat", "combinators", _arrays((2, 3, 4), (2, 1, 4)), {"axis": -2}),
]


def _layer_pair(model: Any, in_shape: tuple[int, ...]) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """``(hand_fn, ref_fn, make_args)`` for a stateless ``model`` at inputs of ``in_shape``."""
    p_struct, state = jax.eval_shape(lambda: model.init(jax.random.key(0), in_shape)[1:])
    if jax.tree_util.tree_leaves(state):
        raise ValueError(f"combinator_checks: {model.name} has state; only stateless models are checked here")
    leaves, treedef = jax.tree_util.tree_flatten(p_struct)
    twin = model.with_rule("autodiff")
    hand = model.with_rule("hand")

    def fn(layer: Any) -> Callable[..., Any]:
        def f(x: Any, *param_leaves: Any) -> Any:
            params = jax.tree_util.tree_unflatten(treedef, param_leaves)
            return layer.apply(params, state, x)[0]

        return f

    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        x = jnp.asarray(rng.standard_normal(in_shape), dtype)
        ps = []
        for leaf in leaves:
            fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) >= 2 else 1
            scale = 1.0 / np.sqrt(fan_in) if len(leaf.shape) >= 2 else 0.5
            ps.append(jnp.asarray(rng.standard_normal(leaf.shape) * scale, dtype))
        return (x, *ps)

    return fn(hand), fn(twin), make


def combinator_checks() -> list[tuple[str, tuple[Callable[..., Any], Callable[..., Any]], Callable[..., Any]]]:
    """Layer-level checks: ``[(name, (hand_fn, ref_fn), make_args), ...]`` (see the module doc)."""
    from funcnn.nn.combinators import FanInConcat, FanInSum, FanOut, Parallel, Residual, serial
    from funcnn.nn import Conv2D, Dense, Tanh

    models = [
        (Residual(Dense(5), Tanh(), Dense(5)), (3, 5)),
        (Residual(Dense(4), Tanh(), shortcut=Dense(4), branch_scale=0.5), (3, 6)),
        (Residual(Conv2D(2, 3, padding="SAME"), Tanh()), (1, 4, 4, 2)),
        (serial(FanOut(2), Parallel(Dense(3), Tanh()), FanInConcat()), (3, 4)),
        (serial(FanOut(3), Parallel(Dense(4), Tanh(), serial(Dense(4), Tanh())), FanInSum()), (3, 4)),
    ]
    out = []
    for model, in_shape in models:
        hand, ref, make = _layer_pair(model, in_shape)
        out.append((model.name, (hand, ref), make))
    return out
