"""Autodiff twins of :mod:`funcnn.losses`: the same forwards, no custom rules.

Each twin validates and prepares its targets with the very code of :mod:`funcnn.losses`
and writes the forward in plain ``jnp``/``lax`` for ``jax.grad`` to differentiate. Targets
pass through ``lax.stop_gradient`` so that, like the hand rules, the twins do not
differentiate them. The stable forms matter for autodiff too: ``jnp.logaddexp`` (whose
derivative is the logistic, exactly 1/2 at 0) rather than ``max(z, 0) + log1p(exp(-|z|))``
(whose autodiff derivative at ``z = 0`` is wrong because ``|z|'(0) = 0``), ``lax.logistic``
(stable derivative) and a max-shifted log-sum-exp with the shift under ``stop_gradient``
(the result does not depend on the shift, so its derivative may be dropped).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from funcnn._ops.validation import _check_logits, _check_unit_interval, _float_target, _target_rows

__all__ = [
    "mse",
    "logistic_mse",
    "binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_mse",
]


def _log_softmax(z: jax.Array) -> jax.Array:
    m = lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    shifted = z - m
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))


def mse(pred: ArrayLike, target: ArrayLike) -> jax.Array:
    """``1/N sum_n 1/2 ||pred_n - y_n||^2`` (autodiff twin of :func:`funcnn.losses.mse`)."""
    _check_logits("mse", "pred", pred)
    y = lax.stop_gradient(_float_target("mse", "target", pred, "pred", target))
    h = jnp.asarray(pred)
    return 0.5 * jnp.sum((h - y) ** 2) / h.shape[0]


def logistic_mse(logits: ArrayLike, target: ArrayLike) -> jax.Array:
    """``1/N sum_n 1/2 ||logistic(z_n) - y_n||^2`` (autodiff twin)."""
    _check_logits("logistic_mse", "logits", logits)
    _check_unit_interval("logistic_mse", "target", target)
    y = lax.stop_gradient(_float_target("logistic_mse", "target", logits, "logits", target))
    z = jnp.asarray(logits)
    return 0.5 * jnp.sum((lax.logistic(z) - y) ** 2) / z.shape[0]


def binary_cross_entropy(logits: ArrayLike, target: ArrayLike) -> jax.Array:
    """``1/N sum -[y log h + (1-y) log(1-h)]``, ``h = logistic(z)`` (autodiff twin)."""
    _check_logits("binary_cross_entropy", "logits", logits)
    _check_unit_interval("binary_cross_entropy", "target", target)
    y = lax.stop_gradient(_float_target("binary_cross_entropy", "target", logits, "logits", target))
    z = jnp.asarray(logits)
    # -[y log h + (1-y) log(1-h)] = softplus(z) - y z = logaddexp(z, 0) - y z
    return jnp.sum(jnp.logaddexp(z, jnp.zeros_like(z)) - y * z) / z.shape[0]


def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """``1/N sum_n -sum_k y_nk log softmax(z_n)_k`` (autodiff twin)."""
    _check_logits("softmax_cross_entropy", "logits", logits, ndims="2")
    y = lax.stop_gradient(_target_rows("softmax_cross_entropy", logits, labels))
    z = jnp.asarray(logits)
    logp = _log_softmax(z)
    # Classes with y = 0 add nothing, even where a logit is masked out with -inf (0 * -inf = NaN).
    return -jnp.sum(jnp.where(y != 0, y * logp, 0)) / z.shape[0]


def softmax_mse(logits: ArrayLike, target: ArrayLike) -> jax.Array:
    """``1/N sum_n 1/2 ||softmax(z_n) - y_n||^2`` (autodiff twin)."""
    _check_logits("softmax_mse", "logits", logits, ndims="2")
    y = lax.stop_gradient(_target_rows("softmax_mse", logits, target))
    z = jnp.asarray(logits)
    h = jnp.exp(_log_softmax(z))
    return 0.5 * jnp.sum((h - y) ** 2) / z.shape[0]
