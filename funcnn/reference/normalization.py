"""Autodiff twins of :mod:`funcnn.normalization`: the same forwards, no custom rules.

:func:`batch_norm` is written in plain ``jnp`` for ``jax.grad`` to differentiate through
the batch mean and variance. :func:`batch_norm_stats` and :func:`batch_norm_inference`
carry no hand rule in :mod:`funcnn.normalization` (a reduction and a fixed affine map),
so they are their own twins and are re-exported from there unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from funcnn.normalization import (
    _validate_batch_norm,
    batch_norm_inference,
    batch_norm_stats,
)

__all__ = ["batch_norm", "batch_norm_stats", "batch_norm_inference"]


def batch_norm(x: ArrayLike, gamma: ArrayLike, beta: ArrayLike, eps: float = 1e-5) -> jax.Array:
    """Train-mode batch norm ``gamma (x - mu) / sqrt(var + eps) + beta`` (autodiff twin).

    Statistics over every axis but the last; see :func:`funcnn.normalization.batch_norm`.
    """
    eps = _validate_batch_norm("batch_norm", x, gamma, beta, eps)
    x = jnp.asarray(x)
    axes = tuple(range(x.ndim - 1))
    mu = jnp.mean(x, axis=axes)
    var = jnp.mean(jnp.square(x - mu), axis=axes)
    return jnp.asarray(gamma) * (x - mu) * lax.rsqrt(var + eps) + jnp.asarray(beta)
