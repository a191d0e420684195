"""Batch normalization (Ioffe & Szegedy, 2015), with the classic hand-written backward rule.

Statistics run over every axis but the last (channels-last): for a dense layer's ``(N, C)``
activations over the batch, for a conv layer's ``(N, H, W, C)`` over the batch *and* the
spatial positions. ``M`` below is the number of values per channel
(``N``, or ``N * H * W``).

- :func:`batch_norm`: train mode, normalizes with the batch's own statistics; carries the
  hand-written three-term rule (the batch statistics depend on every input, which is
  what makes its gradient interesting).
- :func:`batch_norm_stats`: the batch mean and biased variance, for a layer's running
  averages.
- :func:`batch_norm_inference`: eval mode, a fixed per-channel affine map using given
  (running) statistics.

The autodiff twins live in :mod:`funcnn.reference.normalization`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from funcnn._ops.rules import hand_rule
from funcnn._ops.validation import _check_bn_x as _check_x
from funcnn._ops.validation import _validate_batch_norm, _validate_batch_norm_inference
from funcnn._ops.reduce import sum_leading

__all__ = ["batch_norm", "batch_norm_stats", "batch_norm_inference"]


# ---------------------------------------------------------------------------
# Statistics and inference (plain jnp: no rule of interest)
# ---------------------------------------------------------------------------


def batch_norm_stats(x: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Per-channel batch mean and biased variance over every axis but the last.

    Args:
      x: activations, shape ``(N, ..., C)``.

    Returns:
      ``(mean, var)``, each of shape ``(C,)``: ``mean = 1/M sum x``,
      ``var = 1/M sum (x - mean)^2`` (biased, the statistic train mode normalizes with).

    Plain ``jnp``: a mean and a variance have no derivation worth a hand rule, so this
    function is its own twin (:mod:`funcnn.reference.normalization` re-exports it).

    Raises:
      TypeError: non-floating ``x``.
      ValueError: ``x`` of rank < 2.
    """
    xs = _check_x("batch_norm_stats", x)
    x = jnp.asarray(x)
    m = math.prod(xs[:-1])
    mean = sum_leading(x) / m
    var = sum_leading(jnp.square(x - mean)) / m
    return mean, var


def batch_norm_inference(
    x: ArrayLike,
    mean: ArrayLike,
    var: ArrayLike,
    gamma: ArrayLike,
    beta: ArrayLike,
    eps: float = 1e-5,
) -> jax.Array:
    """Eval-mode batch norm: ``y = gamma (x - mean) / sqrt(var + eps) + beta``.

    Args:
      x: activations, shape ``(N, ..., C)``.
      mean, var: fixed per-channel statistics (typically the running averages), ``(C,)``.
      gamma, beta: per-channel scale and shift, ``(C,)``.
      eps: added to the variance for stability (a static float).

    Returns:
      ``y`` of ``x``'s shape.

    With fixed statistics this is a per-channel affine map of ``x``. Backward rule (hand-written),
    with ``inv = 1 / sqrt(var + eps)``, ``xhat = (x - mean) inv`` and sums over every axis but
    the last: ``dx = g gamma inv``, ``dmean = -sum g gamma inv``,
    ``dvar = -1/2 inv^2 sum g gamma xhat``, ``dgamma = sum g xhat``, ``dbeta = sum g``.

    Raises:
      TypeError: non-floating or mixed-dtype arrays, or a non-real ``eps``.
      ValueError: ``x`` of rank < 2, any vector not of shape ``(C,)``, or ``eps < 0``.
    """
    eps = _validate_batch_norm_inference(x, mean, var, gamma, beta, eps)
    arrays = (jnp.asarray(a) for a in (x, mean, var, gamma, beta))
    return _batch_norm_inference(*arrays, eps)


@functools.partial(hand_rule, nondiff_argnums=(5,))
def _batch_norm_inference(x, mean, var, gamma, beta, eps):
    return gamma * (x - mean) * lax.rsqrt(var + eps) + beta


def _batch_norm_inference_fwd(x, mean, var, gamma, beta, eps):
    inv = lax.rsqrt(var + eps)
    xhat = (x - mean) * inv
    return gamma * xhat + beta, (xhat, inv, gamma)


# y = gamma xhat + beta, xhat = (x - mean) inv, inv = (var + eps)^(-1/2), d inv / d var = -1/2 inv^3:
# dx = g gamma inv; dmean = -sum g gamma inv; dvar = -1/2 inv^2 sum g gamma xhat; dgamma = sum g xhat; dbeta = sum g
def _batch_norm_inference_bwd(eps, res, g):
    xhat, inv, gamma = res
    axes = tuple(range(g.ndim - 1))
    dx = g * gamma * inv
    dmean = -jnp.sum(dx, axis=axes)
    dvar = -0.5 * inv * inv * jnp.sum(g * gamma * xhat, axis=axes)
    return dx, dmean, dvar, jnp.sum(g * xhat, axis=axes), jnp.sum(g, axis=axes)


_batch_norm_inference.defvjp(_batch_norm_inference_fwd, _batch_norm_inference_bwd)


# ---------------------------------------------------------------------------
# Train-mode batch norm with the three-term rule
# ---------------------------------------------------------------------------


def batch_norm(x: ArrayLike, gamma: ArrayLike, beta: ArrayLike, eps: float = 1e-5) -> jax.Array:
    """Train-mode batch norm: normalize each channel with the batch's own statistics.

    ``mu = 1/M sum x``, ``var = 1/M sum (x - mu)^2`` (biased), over every axis but the
    last; ``xhat = (x - mu) / sqrt(var + eps)``; ``y = gamma xhat + beta``.

    Args:
      x: activations, shape ``(N, ..., C)``.
      gamma: per-channel scale, ``(C,)``.
      beta: per-channel shift, ``(C,)``.
      eps: added to the variance for stability (a static float, not differentiated).

    Returns:
      ``y`` of ``x``'s shape.

    Backward rule (Ioffe & Szegedy 2015, the classic three-term form), for ``g = dL/dy``
    and sums over the ``M`` values of each channel:
    ``dx = gamma / (M sqrt(var + eps)) * (M g - sum g - xhat sum(g xhat))``,
    ``dgamma = sum(g xhat)``, ``dbeta = sum g``. The first term is the direct path, the
    other two the paths through the mean and the variance.

    Raises:
      TypeError: non-floating or mixed-dtype arrays, or a non-real ``eps``.
      ValueError: ``x`` of rank < 2, ``gamma``/``beta`` not of shape ``(C,)``, or ``eps < 0``.
    """
    eps = _validate_batch_norm("batch_norm", x, gamma, beta, eps)
    return _batch_norm(jnp.asarray(x), jnp.asarray(gamma), jnp.asarray(beta), eps)


def _normalize(x: jax.Array, eps: float) -> tuple[jax.Array, jax.Array]:
    """``(xhat, 1/sqrt(var + eps))`` with batch statistics over every axis but the last."""
    m = math.prod(x.shape[:-1])
    mu = sum_leading(x) / m
    xc = x - mu
    inv_std = lax.rsqrt(sum_leading(xc * xc) / m + eps)
    return xc * inv_std, inv_std


@functools.partial(hand_rule, nondiff_argnums=(3,))
def _batch_norm(x: jax.Array, gamma: jax.Array, beta: jax.Array, eps: float) -> jax.Array:
    xhat, _ = _normalize(x, eps)
    return gamma * xhat + beta


def _batch_norm_fwd(x, gamma, beta, eps):
    xhat, inv_std = _normalize(x, eps)
    return gamma * xhat + beta, (xhat, inv_std, gamma)


# dx = gamma / (M sqrt(var+eps)) * (M g - sum g - xhat * sum(g xhat)) ;
# dgamma = sum(g xhat) ;  dbeta = sum g   (sums over the M values of each channel)
def _batch_norm_bwd(eps, res, g):
    xhat, inv_std, gamma = res
    m = math.prod(xhat.shape[:-1])
    sum_g = sum_leading(g)
    sum_gx = sum_leading(g * xhat)
    dx = (gamma * inv_std / m) * (m * g - sum_g - xhat * sum_gx)
    return dx, sum_gx, sum_g


_batch_norm.defvjp(_batch_norm_fwd, _batch_norm_bwd)
