"""Autodiff twins of :mod:`funcnn.normalization`: the same forwards, no custom rules.

:func:`batch_norm` is written in plain ``jnp`` for ``jax.grad`` to differentiate through
the batch mean and variance; :func:`batch_norm_inference` (fixed statistics) and
:func:`batch_norm_stats` likewise. Validation (:mod:`funcnn._ops.validation`) is shared with :mod:`funcnn.normalization`,
so both accept and reject the same inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from funcnn._ops.validation import _check_bn_x as _check_x
from funcnn._ops.validation import _validate_batch_norm, _validate_batch_norm_inference


def batch_norm_stats(x: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Per-channel batch mean and biased variance over every axis but the last (twin)."""
    _check_x("batch_norm_stats", x)
    x = jnp.asarray(x)
    axes = tuple(range(x.ndim - 1))
    return jnp.mean(x, axis=axes), jnp.var(x, axis=axes)


def batch_norm_inference(
    x: ArrayLike, mean: ArrayLike, var: ArrayLike, gamma: ArrayLike, beta: ArrayLike, eps: float = 1e-5
) -> jax.Array:
    """Eval-mode batch norm ``gamma (x - mean) / sqrt(var + eps) + beta`` (autodiff twin)."""
    eps = _validate_batch_norm_inference(x, mean, var, gamma, beta, eps)
    inv = lax.rsqrt(jnp.asarray(var) + eps)
    return jnp.asarray(gamma) * (jnp.asarray(x) - jnp.asarray(mean)) * inv + jnp.asarray(beta)

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
