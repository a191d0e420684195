"""Activation functions, each with a hand-written backward rule (``jax.custom_vjp``).

Every activation is laid out the same way:

* ``op(x, ...)`` -- the public function: validates its arguments in Python (before any
  array work) and calls the rule-carrying core;
* ``_op`` -- the primal under ``@jax.custom_vjp`` (static settings such as
  ``negative_slope``, ``approximate`` or ``axis`` in ``nondiff_argnums``; arrays, such as
  prelu's ``alpha`` and swish's ``beta``, are differentiable inputs);
* ``_op_fwd`` -- evaluates the primal and saves only what the backward pass needs;
* ``_op_bwd`` -- the textbook derivative, one cotangent per differentiable input, with a
  comment giving the rule as maths and one giving the convention at kinks;
* ``_op.defvjp(_op_fwd, _op_bwd)``.

Conventions shared by every rule:

* Derivatives at kinks follow PyTorch: ``relu'(0) = 0``, ``leaky_relu'(0) = negative_slope``,
  ``prelu'(0) = alpha``, ``hard_tanh'(+-1) = 0``, ``hard_logistic'(+-2) = 0``,
  ``elu'(0) = alpha``.
* NaN propagates: a NaN input gives a NaN output and a NaN input-gradient, and a NaN
  cotangent gives a NaN gradient -- no mask turns a NaN into a number.
* Numerically stable for ``|x|`` up to ``1e4`` in float32; ``+-inf`` inputs give the
  limit of the function (and of its derivative) where that limit exists.
* Every first derivative comes from the hand rule; no rule is obtained by differentiating
  its own forward. The rules are plain ``jax.numpy`` code and each ``_fwd`` evaluates the
  undecorated primal (``_op.fun``), so both can be differentiated again: reverse over
  reverse (``jax.grad(jax.grad(f))``) and forward over reverse (``jax.hessian``,
  ``jax.jvp`` of ``jax.grad``) work. For that, each primal is written so that autodiff of
  it also follows the kink conventions (a ``jnp.where`` that sends the kink point to the
  branch with the wanted slope; ``jnp.clip``/``jnp.maximum`` would split it 1/2-1/2).
  Forward mode applied to an op directly (``jax.jvp(relu, ...)``, ``jax.jacfwd``) is not
  available: ``jax.custom_vjp`` defines reverse mode only.
* The output (and the input-gradient) has ``x``'s dtype; a parameter array (prelu's
  ``alpha``, swish's ``beta``) is used in ``x``'s dtype and its gradient comes back in the
  parameter's own dtype and shape.

The autodiff twins of these functions (same names, same signatures) live in
:mod:`funcnn.reference.activations`, which shares the validation helpers below.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from funcnn._ops.rules import hand_rule
from funcnn._ops.registry import ACTIVATION_NAMES
from funcnn._ops.validation import (
    _check_axis,
    _check_prelu_alpha,
    _check_static_bool,
    _check_static_real,
    _check_swish_beta,
    _check_x,
)
from funcnn._ops.reduce import sum_to_shape as _sum_to_shape

__all__ = [
    "ACTIVATION_NAMES",
    "elu",
    "gelu",
    "hard_logistic",
    "hard_tanh",
    "leaky_relu",
    "log_softmax",
    "logistic",
    "prelu",
    "relu",
    "softmax",
    "softplus",
    "swish",
    "tanh",
]


# ---------------------------------------------------------------------------------------
# Small helpers used inside the rules (plain jnp, so they are differentiable too).
# ---------------------------------------------------------------------------------------


def _keep_nan(x: jax.Array, d: jax.Array) -> jax.Array:
    """``d``, but NaN wherever ``x`` is NaN.

    Masks built from comparisons (``x > 0``) are False at NaN, so a derivative read off
    such a mask would turn a NaN input into a finite number; this puts the NaN back.
    """
    return jnp.where(jnp.isnan(x), x, d)


def _times_vanishing(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a * b`` for a factor ``b`` that decays faster than ``a`` grows: 0 where ``b == 0``.

    Used where ``a`` may be infinite (``x`` at ``+-inf``) while ``b`` is an exponential
    tail that has reached 0, so the limit of the product is 0, not ``inf * 0 = NaN``.
    ``a`` is zeroed *before* the product, so no branch ever forms ``inf * 0`` (not even in
    a second derivative). NaN in ``b`` still propagates.
    """
    return jnp.where(b == 0, 0, a) * b


def _shift_by_max(x: jax.Array, axis: int) -> jax.Array:
    """``x - max(x)`` along ``axis``: exp of the result never overflows.

    The max is a constant shift (softmax is shift-invariant), so it carries no gradient.
    Rows whose max is infinite would give ``inf - inf = NaN``; there the entries equal to
    the max become 0 (so a row with one ``+inf`` gives a one-hot, the limit) and the others
    ``-inf``. A NaN anywhere in a row makes the max NaN and the whole row NaN.
    """
    m = jnp.max(x, axis=axis, keepdims=True, initial=-jnp.inf)
    z = x - lax.stop_gradient(m)
    return jnp.where(jnp.isinf(m) & (x == m), 0, z)


# ---------------------------------------------------------------------------------------
# logistic
# ---------------------------------------------------------------------------------------


def logistic(x: ArrayLike) -> jax.Array:
    """Logistic sigmoid, elementwise.

    ``logistic(x) = 1 / (1 + exp(-x))``, computed with ``lax.logistic`` (stable for any
    ``|x|``: 0 at ``-inf``, 1 at ``+inf``).

    Derivative: ``logistic'(x) = y * (1 - y)`` with ``y = logistic(x)``. Smooth: no kinks.

    Args:
        x: floating-point array of any shape ``(...)``.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype, values in ``[0, 1]``.
    """
    x = _check_x("logistic", x)
    return _logistic(x)


@hand_rule
def _logistic(x):
    return lax.logistic(x)


def _logistic_fwd(x):
    y = _logistic.fun(x)
    return y, y


# d/dx logistic(x) = y * (1 - y): reuse the output, no second exp
# kinks: none (smooth); y saturates to exactly 0 or 1 for large |x|, giving derivative 0
def _logistic_bwd(y, g):
    return (g * y * (1 - y),)


_logistic.defvjp(_logistic_fwd, _logistic_bwd)


# ---------------------------------------------------------------------------------------
# tanh
# ---------------------------------------------------------------------------------------


def tanh(x: ArrayLike) -> jax.Array:
    """Hyperbolic tangent, elementwise.

    ``tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x)) = 2 * logistic(2x) - 1``.

    Derivative: ``tanh'(x) = 1 - y**2`` with ``y = tanh(x)``. Smooth: no kinks.

    Args:
        x: floating-point array of any shape ``(...)``.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype, values in ``[-1, 1]``.
    """
    x = _check_x("tanh", x)
    return _tanh(x)


@hand_rule
def _tanh(x):
    return jnp.tanh(x)


def _tanh_fwd(x):
    y = _tanh.fun(x)
    return y, y


# d/dx tanh(x) = 1 - y^2: reuse the output
# kinks: none (smooth)
def _tanh_bwd(y, g):
    return (g * (1 - y * y),)


_tanh.defvjp(_tanh_fwd, _tanh_bwd)


# ---------------------------------------------------------------------------------------
# hard_logistic
# ---------------------------------------------------------------------------------------


def hard_logistic(x: ArrayLike) -> jax.Array:
    """Hard logistic: the logistic's first-order Taylor expansion at 0, clipped to [0, 1].

    ``hard_logistic(x) = max(0, min(1, 0.25 * x + 0.5))``.

    Derivative: ``0.25`` for ``-2 < x < 2``, else ``0``. Kink convention (PyTorch's, as for
    ``hardsigmoid``): ``hard_logistic'(-2) = hard_logistic'(2) = 0``.

    Args:
        x: floating-point array of any shape ``(...)``.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype, values in ``[0, 1]``.
    """
    x = _check_x("hard_logistic", x)
    return _hard_logistic(x)


@hand_rule
def _hard_logistic(x):
    # where, not clip: a NaN fails both tests and falls through to 0.25 * NaN + 0.5 = NaN
    return jnp.where(x <= -2, 0, jnp.where(x >= 2, 1, 0.25 * x + 0.5)).astype(x.dtype)


def _hard_logistic_fwd(x):
    return _hard_logistic.fun(x), x


# d/dx hard_logistic(x) = 0.25 * 1[-2 < x < 2]
# kinks: the derivative at x = -2 and x = 2 is 0 (strict inequalities, as PyTorch)
def _hard_logistic_bwd(x, g):
    d = jnp.where((x > -2) & (x < 2), 0.25, 0).astype(x.dtype)
    return (g * _keep_nan(x, d),)


_hard_logistic.defvjp(_hard_logistic_fwd, _hard_logistic_bwd)


# ---------------------------------------------------------------------------------------
# hard_tanh
# ---------------------------------------------------------------------------------------


def hard_tanh(x: ArrayLike) -> jax.Array:
    """Hard tanh: the identity clipped to [-1, 1].

    ``hard_tanh(x) = max(-1, min(1, x))``.

    Derivative: ``1`` for ``-1 < x < 1``, else ``0``. Kink convention (PyTorch's
    ``hardtanh``): ``hard_tanh'(-1) = hard_tanh'(1) = 0``.

    Args:
        x: floating-point array of any shape ``(...)``.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype, values in ``[-1, 1]``.
    """
    x = _check_x("hard_tanh", x)
    return _hard_tanh(x)


@hand_rule
def _hard_tanh(x):
    # where, not clip: a NaN fails both tests and falls through to x = NaN
    return jnp.where(x <= -1, -1, jnp.where(x >= 1, 1, x)).astype(x.dtype)


def _hard_tanh_fwd(x):
    return _hard_tanh.fun(x), x


# d/dx hard_tanh(x) = 1[-1 < x < 1]
# kinks: the derivative at x = -1 and x = 1 is 0 (strict inequalities, as PyTorch)
def _hard_tanh_bwd(x, g):
    d = ((x > -1) & (x < 1)).astype(x.dtype)
    return (g * _keep_nan(x, d),)


_hard_tanh.defvjp(_hard_tanh_fwd, _hard_tanh_bwd)


# ---------------------------------------------------------------------------------------
# relu
# ---------------------------------------------------------------------------------------


def relu(x: ArrayLike) -> jax.Array:
    """Rectified linear unit, elementwise.

    ``relu(x) = max(0, x)``.

    Derivative: ``1`` for ``x > 0``, else ``0``. Kink convention (PyTorch's):
    ``relu'(0) = 0``.

    Reference: Nair & Hinton, "Rectified Linear Units Improve Restricted Boltzmann
    Machines", ICML 2010; Glorot, Bordes & Bengio, "Deep Sparse Rectifier Neural
    Networks", AISTATS 2011.

    Args:
        x: floating-point array of any shape ``(...)``.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype.
    """
    x = _check_x("relu", x)
    return _relu(x)


@hand_rule
def _relu(x):
    # x <= 0 is False at NaN, so NaN passes through (jnp.maximum would too; this says so)
    return jnp.where(x <= 0, 0, x).astype(x.dtype)


def _relu_fwd(x):
    return _relu.fun(x), x


# d/dx relu(x) = 1[x > 0]
# kink: relu'(0) = 0 (PyTorch)
def _relu_bwd(x, g):
    d = (x > 0).astype(x.dtype)
    return (g * _keep_nan(x, d),)


_relu.defvjp(_relu_fwd, _relu_bwd)


# ---------------------------------------------------------------------------------------
# leaky_relu
# ---------------------------------------------------------------------------------------


def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> jax.Array:
    """Leaky rectified linear unit, elementwise.

    ``leaky_relu(x) = x`` for ``x > 0``, ``negative_slope * x`` otherwise.

    Derivative: ``1`` for ``x > 0``, ``negative_slope`` otherwise. Kink convention
    (PyTorch's): ``leaky_relu'(0) = negative_slope``.

    Reference: Maas, Hannun & Ng, "Rectifier Nonlinearities Improve Neural Network
    Acoustic Models", ICML 2013.

    Args:
        x: floating-point array of any shape ``(...)``.
        negative_slope: static Python float, the slope for ``x <= 0``.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype.
    """
    x = _check_x("leaky_relu", x)
    negative_slope = _check_static_real("leaky_relu", "negative_slope", negative_slope)
    return _leaky_relu(x, negative_slope)


@partial(hand_rule, nondiff_argnums=(1,))
def _leaky_relu(x, negative_slope):
    return jnp.where(x > 0, x, negative_slope * x).astype(x.dtype)


def _leaky_relu_fwd(x, negative_slope):
    return _leaky_relu.fun(x, negative_slope), x


# d/dx leaky_relu(x) = 1 if x > 0 else negative_slope
# kink: leaky_relu'(0) = negative_slope (PyTorch)
def _leaky_relu_bwd(negative_slope, x, g):
    d = jnp.where(x > 0, 1, negative_slope).astype(x.dtype)
    return (g * _keep_nan(x, d),)


_leaky_relu.defvjp(_leaky_relu_fwd, _leaky_relu_bwd)


# ---------------------------------------------------------------------------------------
# prelu
# ---------------------------------------------------------------------------------------


def prelu(x: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """Parametric rectified linear unit: a leaky relu whose slope ``alpha`` is learned.

    ``prelu(x) = x`` for ``x > 0``, ``alpha * x`` otherwise, with ``alpha`` a scalar or one
    slope per channel (broadcast along the last axis of ``x``).

    Derivatives: ``d/dx = 1`` for ``x > 0``, ``alpha`` otherwise; ``d/dalpha = 0`` for
    ``x > 0``, ``x`` otherwise, summed over every position sharing that ``alpha``. Kink
    convention (PyTorch's): at ``x = 0`` the x-derivative is ``alpha`` (and the
    alpha-derivative ``x = 0``).

    Reference: He, Zhang, Ren & Sun, "Delving Deep into Rectifiers: Surpassing
    Human-Level Performance on ImageNet Classification", ICCV 2015.

    Args:
        x: floating-point array of shape ``(..., C)`` (or a scalar ``()``).
        alpha: floating-point slope(s) of shape ``()``, ``(1,)`` or ``(C,)`` (a Python
            number becomes a scalar of ``x``'s dtype); differentiable.

    Returns:
        Array of shape ``(..., C)`` and ``x``'s dtype. ``jax.grad`` w.r.t. ``alpha``
        returns ``alpha``'s shape and dtype.
    """
    x = _check_x("prelu", x)
    alpha = _check_prelu_alpha("prelu", x, alpha)
    return _prelu(x, alpha)


@hand_rule
def _prelu(x, alpha):
    a = alpha.astype(x.dtype)
    return jnp.where(x > 0, x, a * x)


def _prelu_fwd(x, alpha):
    return _prelu.fun(x, alpha), (x, alpha)


# d/dx prelu = 1 if x > 0 else alpha;  d/dalpha prelu = 0 if x > 0 else x (summed to alpha's shape)
# kink: at x = 0 the x-derivative is alpha (PyTorch); the alpha-derivative is x = 0
def _prelu_bwd(res, g):
    x, alpha = res
    a = alpha.astype(x.dtype)
    dx = g * _keep_nan(x, jnp.where(x > 0, 1, a).astype(x.dtype))
    dalpha = _sum_to_shape(g * jnp.where(x > 0, 0, x), alpha.shape)
    return dx, dalpha.astype(alpha.dtype)


_prelu.defvjp(_prelu_fwd, _prelu_bwd)


# ---------------------------------------------------------------------------------------
# elu
# ---------------------------------------------------------------------------------------


def elu(x: ArrayLike, alpha: float = 1.0) -> jax.Array:
    """Exponential linear unit, elementwise.

    ``elu(x) = x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise (computed with
    ``expm1``; tends to ``-alpha`` as ``x -> -inf``).

    Derivative: ``1`` for ``x > 0``, ``alpha * exp(x)`` (= ``elu(x) + alpha``) otherwise.
    Kink convention (PyTorch's): ``elu'(0) = alpha * exp(0) = alpha`` (so the derivative
    is continuous when ``alpha = 1``).

    Reference: Clevert, Unterthiner & Hochreiter, "Fast and Accurate Deep Network
    Learning by Exponential Linear Units (ELUs)", ICLR 2016 (arXiv:1511.07289, 2015).

    Args:
        x: floating-point array of any shape ``(...)``.
        alpha: static Python float, the saturation value ``-alpha`` for ``x -> -inf``.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype.
    """
    x = _check_x("elu", x)
    alpha = _check_static_real("elu", "alpha", alpha)
    return _elu(x, alpha)


def _elu_negative_part(x):
    # x clamped to (-inf, 0] *before* the exponential, keeping NaN: the unused branch of
    # the where never computes exp(1e4) = inf (which would poison a second derivative)
    return jnp.where(x > 0, 0, x)


@partial(hand_rule, nondiff_argnums=(1,))
def _elu(x, alpha):
    return jnp.where(x > 0, x, alpha * jnp.expm1(_elu_negative_part(x))).astype(x.dtype)


def _elu_fwd(x, alpha):
    return _elu.fun(x, alpha), x


# d/dx elu(x) = 1 if x > 0 else alpha * exp(x)
# kink: elu'(0) = alpha * exp(0) = alpha (PyTorch: the x <= 0 branch owns 0)
def _elu_bwd(alpha, x, g):
    d = jnp.where(x > 0, 1, alpha * jnp.exp(_elu_negative_part(x))).astype(x.dtype)
    return (g * d,)


_elu.defvjp(_elu_fwd, _elu_bwd)


# ---------------------------------------------------------------------------------------
# swish
# ---------------------------------------------------------------------------------------


def swish(x: ArrayLike, beta: ArrayLike = 1.0) -> jax.Array:
    """Swish: the input gated by its own logistic, ``x * logistic(beta * x)``.

    With ``beta = 1`` this is the SiLU. ``beta`` may be a learnable scalar or an array
    broadcastable to ``x``. Limits: ``0`` as ``beta * x -> -inf``, ``x`` as
    ``beta * x -> +inf`` (no ``inf * 0 = NaN`` at ``x = +-inf``).

    Derivatives, with ``s = logistic(beta * x)``:
    ``d/dx = s + beta * x * s * (1 - s)``, ``d/dbeta = x**2 * s * (1 - s)`` (summed to
    ``beta``'s shape). Smooth: no kinks.

    Reference: Ramachandran, Zoph & Le, "Searching for Activation Functions",
    arXiv:1710.05941, 2017 (and Elfwing, Uchibe & Doya, 2017, for the SiLU).

    Args:
        x: floating-point array of any shape ``(...)``.
        beta: floating-point scalar or array broadcastable to ``x.shape`` (a Python number
            becomes a scalar of ``x``'s dtype); differentiable.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype. ``jax.grad`` w.r.t. ``beta`` returns
        ``beta``'s shape and dtype.
    """
    x = _check_x("swish", x)
    beta = _check_swish_beta("swish", x, beta)
    return _swish(x, beta)


@hand_rule
def _swish(x, beta):
    s = lax.logistic(beta.astype(x.dtype) * x)
    return _times_vanishing(x, s)


def _swish_fwd(x, beta):
    return _swish.fun(x, beta), (x, beta)


# d/dx swish = s + beta*x*s*(1-s),  d/dbeta swish = x^2*s*(1-s),  s = logistic(beta*x)
# kinks: none (smooth); the s*(1-s) tail is exactly 0 for large |beta*x|, so +-inf gives 0
def _swish_bwd(res, g):
    x, beta = res
    b = beta.astype(x.dtype)
    s = lax.logistic(b * x)
    ds = s * (1 - s)
    dx = g * (s + _times_vanishing(b * x, ds))
    dbeta = _sum_to_shape(g * _times_vanishing(x * x, ds), beta.shape)
    return dx, dbeta.astype(beta.dtype)


_swish.defvjp(_swish_fwd, _swish_bwd)


# ---------------------------------------------------------------------------------------
# softplus
# ---------------------------------------------------------------------------------------


def softplus(x: ArrayLike) -> jax.Array:
    """Softplus, a smooth relu, elementwise.

    ``softplus(x) = log(1 + exp(x))``, computed stably as
    ``max(x, 0) + log1p(exp(-|x|))`` (never overflows; ``x`` at ``+inf``, 0 at ``-inf``).

    Derivative: ``softplus'(x) = logistic(x)``. Smooth: no kinks.

    Reference: Dugas, Bengio, Belisle, Nadeau & Garcia, "Incorporating Second-Order
    Functional Knowledge for Better Option Pricing", NIPS 2000.

    Args:
        x: floating-point array of any shape ``(...)``.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype, values ``>= 0``.
    """
    x = _check_x("softplus", x)
    return _softplus(x)


@hand_rule
def _softplus(x):
    # -|x| written as a where so NaN stays NaN; max(x, 0) likewise (x > 0 is False at NaN)
    minus_abs = jnp.where(x > 0, -x, x)
    return jnp.where(x > 0, x, 0) + jnp.log1p(jnp.exp(minus_abs))


def _softplus_fwd(x):
    return _softplus.fun(x), x


# d/dx softplus(x) = logistic(x)
# kinks: none (smooth)
def _softplus_bwd(x, g):
    return (g * lax.logistic(x),)


_softplus.defvjp(_softplus_fwd, _softplus_bwd)


# ---------------------------------------------------------------------------------------
# gelu
# ---------------------------------------------------------------------------------------

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def gelu(x: ArrayLike, approximate: bool = False) -> jax.Array:
    """Gaussian error linear unit: the input weighted by the standard normal CDF.

    Exact (``approximate=False``): ``gelu(x) = x * Phi(x)`` with
    ``Phi(x) = 0.5 * erfc(-x / sqrt(2)) = 0.5 * (1 + erf(x / sqrt(2)))`` (erfc keeps
    ``Phi`` accurate in the left tail).

    Approximate (``approximate=True``, the tanh form):
    ``gelu(x) = 0.5 * x * (1 + tanh(u))``, ``u = sqrt(2/pi) * (x + 0.044715 * x**3)``,
    computed as the equal ``x * logistic(2u)`` (no cancellation in ``1 + tanh(u)``).

    Derivatives: exact ``Phi(x) + x * phi(x)``, ``phi(x) = exp(-x**2/2) / sqrt(2 pi)``;
    approximate ``s + x * 2 s (1 - s) * sqrt(2/pi) * (1 + 3 * 0.044715 * x**2)``,
    ``s = logistic(2u)``. Smooth: no kinks. Limits: ``0`` at ``-inf``, ``x`` at ``+inf``.

    Reference: Hendrycks & Gimpel, "Gaussian Error Linear Units (GELUs)",
    arXiv:1606.08415, 2016.

    Args:
        x: floating-point array of any shape ``(...)``.
        approximate: static bool; ``True`` for the tanh approximation.

    Returns:
        Array of shape ``(...)`` and ``x``'s dtype.
    """
    x = _check_x("gelu", x)
    approximate = _check_static_bool("gelu", "approximate", approximate)
    return _gelu(x, approximate)


def _gelu_gate(x, approximate):
    """The factor multiplying x: Phi(x) (exact) or logistic(2u) (tanh form)."""
    if approximate:
        return lax.logistic(2 * _GELU_C * (x + _GELU_A * x * x * x))
    return 0.5 * lax.erfc(-x * _SQRT_HALF)


@partial(hand_rule, nondiff_argnums=(1,))
def _gelu(x, approximate):
    return _times_vanishing(x, _gelu_gate(x, approximate))


def _gelu_fwd(x, approximate):
    return _gelu.fun(x, approximate), x


# d/dx gelu = Phi(x) + x*phi(x)  (exact);  s + x*2s(1-s)*c*(1 + 3a x^2), s = logistic(2u)  (tanh)
# kinks: none (smooth); the Gaussian / logistic tails are exactly 0 far out, so +-inf is exact
def _gelu_bwd(approximate, x, g):
    if approximate:
        s = lax.logistic(2 * _GELU_C * (x + _GELU_A * x * x * x))
        slope = 2 * _GELU_C * x * (1 + 3 * _GELU_A * x * x)
        d = s + _times_vanishing(slope, s * (1 - s))
    else:
        cdf = 0.5 * lax.erfc(-x * _SQRT_HALF)
        pdf = _INV_SQRT_2PI * jnp.exp(-0.5 * x * x)
        d = cdf + _times_vanishing(x, pdf)
    return (g * d.astype(x.dtype),)


_gelu.defvjp(_gelu_fwd, _gelu_bwd)


# ---------------------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------------------


def softmax(x: ArrayLike, axis: int = -1) -> jax.Array:
    """Softmax along one axis: ``exp(x_i) / sum_j exp(x_j)``.

    Computed as ``exp(x - max(x)) / sum(exp(x - max(x)))``, which never overflows.
    ``-inf`` entries get probability 0; a row with ``+inf`` entries gives equal mass to
    them and 0 elsewhere (one ``+inf``: the one-hot limit); a row of all ``-inf`` is
    uniform (its entries treated as equal); a NaN makes its whole row NaN.

    Jacobian-vector rule: with ``y = softmax(x)`` and cotangent ``g``,
    ``dL/dx = g * y - y * sum(g * y)`` (the sum along ``axis``), i.e. the Jacobian is
    ``diag(y) - y y^T``. Smooth: no kinks.

    Reference: Bridle, "Probabilistic Interpretation of Feedforward Classification
    Network Outputs, with Relationships to Statistical Pattern Recognition", 1990.

    Args:
        x: floating-point array of shape ``(..., K, ...)`` with at least one axis.
        axis: static int, the axis normalized over (negative counts from the end).

    Returns:
        Array of ``x``'s shape and dtype; non-negative, summing to 1 along ``axis``.
    """
    x = _check_x("softmax", x)
    axis = _check_axis("softmax", x, axis)
    return _softmax(x, axis)


@partial(hand_rule, nondiff_argnums=(1,))
def _softmax(x, axis):
    e = jnp.exp(_shift_by_max(x, axis))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def _softmax_fwd(x, axis):
    y = _softmax.fun(x, axis)
    return y, y


# d/dx softmax: dL/dx = y * (g - sum(g*y))   (Jacobian diag(y) - y y^T applied to g)
# kinks: none (smooth). Written with g*y used only inside the sum, so XLA fuses the product
# into the reduction instead of materializing it for a second consumer (one kernel fewer).
def _softmax_bwd(axis, y, g):
    return (y * (g - jnp.sum(g * y, axis=axis, keepdims=True)),)


_softmax.defvjp(_softmax_fwd, _softmax_bwd)


# ---------------------------------------------------------------------------------------
# log_softmax
# ---------------------------------------------------------------------------------------


def log_softmax(x: ArrayLike, axis: int = -1) -> jax.Array:
    """Log of the softmax along one axis: ``x_i - log(sum_j exp(x_j))``.

    Computed as ``z - log(sum(exp(z)))`` with ``z = x - max(x)`` (never overflows; for
    ``x = [0, 1e4]`` in float32 it gives ``[-1e4, 0]``). Infinite and NaN entries behave
    as in :func:`softmax` (``-inf`` for probability 0).

    Jacobian-vector rule: with ``y = log_softmax(x)``, ``p = exp(y) = softmax(x)`` and
    cotangent ``g``, ``dL/dx = g - p * sum(g)`` (the sum along ``axis``). Smooth: no kinks.

    Args:
        x: floating-point array of shape ``(..., K, ...)`` with at least one axis.
        axis: static int, the axis normalized over (negative counts from the end).

    Returns:
        Array of ``x``'s shape and dtype; ``<= 0``, with ``exp`` summing to 1 along ``axis``.
    """
    x = _check_x("log_softmax", x)
    axis = _check_axis("log_softmax", x, axis)
    return _log_softmax(x, axis)


@partial(hand_rule, nondiff_argnums=(1,))
def _log_softmax(x, axis):
    z = _shift_by_max(x, axis)
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True))


def _log_softmax_fwd(x, axis):
    # The forward already has exp(z) and its sum: save p = softmax(x) so the backward needs
    # no second exp (the same forward as the primal, written out to keep p).
    z = _shift_by_max(x, axis)
    e = jnp.exp(z)
    s = jnp.sum(e, axis=axis, keepdims=True)
    return z - jnp.log(s), e / s


# d/dx log_softmax: dL/dx = g - p * sum(g),  p = softmax(x) = exp(y)
# kinks: none (smooth)
def _log_softmax_bwd(axis, p, g):
    return (g - p * jnp.sum(g, axis=axis, keepdims=True),)


_log_softmax.defvjp(_log_softmax_fwd, _log_softmax_bwd)
