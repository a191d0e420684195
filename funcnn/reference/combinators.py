"""Autodiff twins of the fan-out / fan-in ops of :mod:`funcnn.nn.combinators`.

Same names, signatures and errors (the validation is shared, :mod:`funcnn._ops.fan_validation`),
written plainly, so ``jax.grad`` derives the backward pass: a copied value's cotangents are
accumulated by autodiff, a sum's and a concatenation's are transposed by it.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from funcnn._ops.fan_validation import check_fan_in_concat, check_fan_in_sum, check_fan_out

__all__ = ["fan_in_concat", "fan_in_sum", "fan_out"]


def fan_out(x: Any, n: int) -> tuple[Any, ...]:
    """``n`` copies of ``x``: the plain tuple ``(x, ..., x)``."""
    x, n = check_fan_out("fan_out", x, n)
    return (x,) * n


def fan_in_sum(*xs: ArrayLike) -> jax.Array:
    """``xs[0] + xs[1] + ...`` (one shape, one dtype)."""
    xs = check_fan_in_sum("fan_in_sum", xs)
    return functools.reduce(jnp.add, xs)


def fan_in_concat(*xs: ArrayLike, axis: int = -1) -> jax.Array:
    """``jnp.concatenate(xs, axis)``."""
    xs, ax = check_fan_in_concat("fan_in_concat", xs, axis)
    return jnp.concatenate(xs, axis=ax)
