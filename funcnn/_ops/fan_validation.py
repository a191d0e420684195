"""Argument validation of the fan-out / fan-in ops, shared by the hand-ruled ops
(:mod:`funcnn.nn.combinators`) and their autodiff twins (:mod:`funcnn.reference.combinators`).

Both versions call the same validator before any array work, so they accept and reject the
same inputs with the same messages; the twins import nothing from the hand-ruled module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops.checks import check_array, check_same_dtype, shape_of


def check_count(fn: str, name: str, n: Any) -> int:
    """Require a positive Python int (a static setting); return it."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be a positive int (a static setting), got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"{fn}: {name} must be a positive int, got {n!r}")
    return int(n)


def check_fan_out(fn: str, x: Any, n: Any) -> tuple[Any, int]:
    """``x`` (an array, or a pytree of arrays) as JAX arrays, and ``n`` as an int."""
    n = check_count(fn, "n", n)
    leaves = jax.tree_util.tree_leaves(x)
    if not leaves:
        raise TypeError(f"{fn}: x must be an array (or a pytree of arrays), got {x!r}")
    for leaf in leaves:
        check_array(fn, "x", leaf)
    return jax.tree_util.tree_map(jnp.asarray, x), n


def check_fan_in(fn: str, xs: Sequence[Any]) -> tuple[jax.Array, ...]:
    """``xs``: at least one array, all of one dtype; returned as JAX arrays."""
    if not xs:
        raise TypeError(f"{fn}: expected at least one input array, got none")
    for i, x in enumerate(xs):
        if isinstance(x, (tuple, list)):
            raise TypeError(
                f"{fn}: input {i} is a {type(x).__name__}, expected an array; pass the arrays "
                f"themselves, {fn}(*xs), not the tuple"
            )
        check_array(fn, f"xs[{i}]", x)
    check_same_dtype(fn, [f"xs[{i}]" for i in range(len(xs))], xs)
    return tuple(jnp.asarray(x) for x in xs)


def _shapes(xs: Sequence[Any]) -> str:
    return ", ".join(str(shape_of(x)) for x in xs)


def check_fan_in_sum(fn: str, xs: Sequence[Any]) -> tuple[jax.Array, ...]:
    """``xs`` as for :func:`check_fan_in`, and all of one shape (no broadcasting)."""
    xs = check_fan_in(fn, xs)
    if len({x.shape for x in xs}) > 1:
        raise ValueError(f"{fn}: every input must have the same shape to be summed, got shapes {_shapes(xs)}")
    return xs


def check_axis(fn: str, axis: Any, ndim: int) -> int:
    """``axis`` (an int in ``[-ndim, ndim)``) as a non-negative int."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: axis must be an int, got {type(axis).__name__} {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fn}: axis {axis} is out of range for inputs of rank {ndim}")
    return int(axis) % ndim


def check_fan_in_concat(fn: str, xs: Sequence[Any], axis: Any) -> tuple[tuple[jax.Array, ...], int]:
    """``xs`` as for :func:`check_fan_in`, of one rank and equal sizes off ``axis``; the
    non-negative axis."""
    xs = check_fan_in(fn, xs)
    ranks = {x.ndim for x in xs}
    if len(ranks) > 1:
        raise ValueError(f"{fn}: every input must have the same rank to be concatenated, got shapes {_shapes(xs)}")
    ndim = ranks.pop()
    if ndim == 0:
        raise ValueError(f"{fn}: cannot concatenate scalars (rank 0), got shapes {_shapes(xs)}")
    ax = check_axis(fn, axis, ndim)
    off = {x.shape[:ax] + x.shape[ax + 1 :] for x in xs}
    if len(off) > 1:
        raise ValueError(
            f"{fn}: every input must have the same size on every axis but axis {axis}, got shapes {_shapes(xs)}"
        )
    return xs, ax
