"""Autodiff twins of :mod:`funcnn.activations`: the same forwards, no custom rules.

Each function has the name and signature of its hand-ruled counterpart and raises the
same errors (the validation helpers are shared), but is written plainly with
``jax.numpy``/``lax`` so that ``jax.grad`` derives its backward pass. The forwards are
written so that autodiff also lands on PyTorch's kink conventions (``relu'(0) = 0``,
``leaky_relu'(0) = negative_slope``, ``prelu'(0) = alpha``, ``hard_tanh'(+-1) = 0``,
``hard_logistic'(+-2) = 0``, ``elu'(0) = alpha``): each kink is a ``jnp.where`` whose
condition sends the kink point to the branch with the wanted slope (``jnp.clip`` and
``jnp.maximum`` would split ties and give 1/2).

The twins are references for checking the hand rules, not hardened production code: they
are stable for ``|x|`` up to ``1e4`` in float32, but they make no promises about the
derivative at ``+-inf`` or about NaN in the backward pass (autodiff of a ``where`` sends a
NaN input's cotangent down one branch).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from funcnn._ops.registry import ACTIVATION_NAMES
from funcnn._ops.validation import (
    _check_axis,
    _check_prelu_alpha,
    _check_static_bool,
    _check_static_real,
    _check_swish_beta,
    _check_x,
)

__all__ = [
    "ACTIVATION_NAMES", "logistic", "tanh", "hard_logistic", "hard_tanh", "relu", "leaky_relu",
    "prelu", "elu", "swish", "softplus", "gelu", "softmax", "log_softmax",
]


def logistic(x: ArrayLike) -> jax.Array:
    """Logistic sigmoid ``1 / (1 + exp(-x))`` (``lax.logistic``, stable). Shape ``(...)``."""
    x = _check_x("logistic", x)
    return lax.logistic(x)


def tanh(x: ArrayLike) -> jax.Array:
    """Hyperbolic tangent. Shape ``(...)``."""
    x = _check_x("tanh", x)
    return jnp.tanh(x)


def hard_logistic(x: ArrayLike) -> jax.Array:
    """``max(0, min(1, 0.25 x + 0.5))``; autodiff gives 0 at the kinks ``x = +-2``."""
    x = _check_x("hard_logistic", x)
    return jnp.where(x <= -2, 0, jnp.where(x >= 2, 1, 0.25 * x + 0.5)).astype(x.dtype)


def hard_tanh(x: ArrayLike) -> jax.Array:
    """``max(-1, min(1, x))``; autodiff gives 0 at the kinks ``x = +-1``."""
    x = _check_x("hard_tanh", x)
    return jnp.where(x <= -1, -1, jnp.where(x >= 1, 1, x)).astype(x.dtype)


def relu(x: ArrayLike) -> jax.Array:
    """``max(0, x)``; autodiff gives ``relu'(0) = 0``."""
    x = _check_x("relu", x)
    return jnp.where(x <= 0, 0, x).astype(x.dtype)


def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> jax.Array:
    """``x if x > 0 else negative_slope * x``; autodiff gives ``negative_slope`` at 0."""
    x = _check_x("leaky_relu", x)
    negative_slope = _check_static_real("leaky_relu", "negative_slope", negative_slope)
    return jnp.where(x > 0, x, negative_slope * x).astype(x.dtype)


def prelu(x: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """``x if x > 0 else alpha * x``, alpha ``()``/``(1,)``/``(C,)`` on the last axis."""
    x = _check_x("prelu", x)
    alpha = _check_prelu_alpha("prelu", x, alpha)
    return jnp.where(x > 0, x, alpha.astype(x.dtype) * x)


def elu(x: ArrayLike, alpha: float = 1.0) -> jax.Array:
    """``x if x > 0 else alpha * (exp(x) - 1)``; autodiff gives ``elu'(0) = alpha``."""
    x = _check_x("elu", x)
    alpha = _check_static_real("elu", "alpha", alpha)
    # clamp before expm1 so the unused branch never overflows (and never poisons a gradient)
    negative = jnp.where(x > 0, 0, x)
    return jnp.where(x > 0, x, alpha * jnp.expm1(negative)).astype(x.dtype)


def swish(x: ArrayLike, beta: ArrayLike = 1.0) -> jax.Array:
    """``x * logistic(beta * x)``, beta a scalar or broadcastable to ``x``."""
    x = _check_x("swish", x)
    beta = _check_swish_beta("swish", x, beta)
    return x * lax.logistic(beta.astype(x.dtype) * x)


def softplus(x: ArrayLike) -> jax.Array:
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``."""
    x = _check_x("softplus", x)
    # -|x| as a where (not jnp.abs, whose derivative at 0 is 0), so autodiff gives 1/2 at 0
    minus_abs = jnp.where(x > 0, -x, x)
    return jnp.where(x > 0, x, 0) + jnp.log1p(jnp.exp(minus_abs))


def gelu(x: ArrayLike, approximate: bool = False) -> jax.Array:
    """``x * Phi(x)`` (exact, via erfc) or ``0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))``."""
    x = _check_x("gelu", x)
    approximate = _check_static_bool("gelu", "approximate", approximate)
    if approximate:
        u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1 + jnp.tanh(u))
    return x * (0.5 * lax.erfc(-x / math.sqrt(2.0)))


def _shifted(x: jax.Array, axis: int) -> jax.Array:
    # x - max(x): softmax is shift-invariant, so the max is a constant (no gradient)
    m = jnp.max(x, axis=axis, keepdims=True, initial=-jnp.inf)
    return x - lax.stop_gradient(m)


def softmax(x: ArrayLike, axis: int = -1) -> jax.Array:
    """``exp(x - max x) / sum exp(x - max x)`` along ``axis``."""
    x = _check_x("softmax", x)
    axis = _check_axis("softmax", x, axis)
    e = jnp.exp(_shifted(x, axis))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def log_softmax(x: ArrayLike, axis: int = -1) -> jax.Array:
    """``z - log(sum exp(z))`` with ``z = x - max x`` along ``axis``."""
    x = _check_x("log_softmax", x)
    axis = _check_axis("log_softmax", x, axis)
    z = _shifted(x, axis)
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True))
