"""Output + cost pairs, each fused with a hand-written backward rule.

Every loss returns a scalar: the per-example cost summed over the output dimensions and
averaged over the batch (axis 0, of size ``N``). Each pairs an output nonlinearity with a
cost, so that the error term at the output layer's pre-activation ``z`` is the textbook
one (divided by ``N`` for the batch average):

===========================  ===================================  ==========================
loss                         per-example cost                     dL/dz (times N)
===========================  ===================================  ==========================
``mse``                      1/2 ||h - y||^2, h = z (identity)    h - y
``logistic_mse``             1/2 ||h - y||^2, h = logistic(z)     (h - y) h (1 - h)
``binary_cross_entropy``     -[y log h + (1-y) log(1-h)],         h - y
                             h = logistic(z)
``softmax_cross_entropy``    -sum_k y_k log h_k, h = softmax(z)   h - y (rows summing to 1)
``softmax_mse``              1/2 ||h - y||^2, h = softmax(z)      J_softmax^T (h - y)
===========================  ===================================  ==========================

The squared-error pairs carry the factor ``h (1 - h)`` (or the softmax Jacobian) that
makes a saturated output unit learn slowly; the log-likelihood pairs cancel it. That
contrast is the point of the cost ablation (Nielsen, *Neural Networks and Deep
Learning*, ch. 3; Bishop, *Pattern Recognition and Machine Learning*, sec. 5.3).

Conventions shared by every loss here:

- Shapes must match exactly: ``target.shape == logits.shape`` (no broadcasting). The
  softmax losses take ``logits`` ``(N, K)`` and either integer class labels ``(N,)`` or
  target rows ``(N, K)`` (probabilities, or one-hot).
- Targets are data, not parameters: they are *not differentiated*. The gradient with
  respect to a floating target is zero (the autodiff twins apply ``lax.stop_gradient`` to
  it, so both rules agree); integer labels have no cotangent at all. Non-floating float
  targets (e.g. ``0/1`` integers for ``binary_cross_entropy``) are cast to the logits'
  dtype, as are floating targets of another precision.
- Integer labels must lie in ``[0, K)``. Concrete labels are checked in Python
  (``ValueError``). Under ``jax.jit``/``jax.vmap`` the labels are tracers whose values
  cannot be inspected in Python, so they cannot be checked there: an out-of-range label
  then yields a target row of NaNs, which makes the loss and its gradient NaN (loud, not
  silently wrong).
- Numerically stable for finite logits of any size (tested at ``|z| = 1e4`` in float32):
  the log-likelihoods use the softplus / log-sum-exp forms, never ``log(logistic(z))``.
  NaN inputs propagate to NaN.
- A zero-size batch (``N = 0``) gives a NaN loss (the mean of nothing, as ``jnp.mean``)
  and empty gradients of the right shape.

The autodiff twins live in :mod:`funcnn.reference.losses`.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from funcnn._ops.rules import hand_rule
from funcnn._ops.validation import _check_logits, _check_unit_interval, _float_target, _target_rows

__all__ = [
    "mse",
    "logistic_mse",
    "binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_mse",
]


def _batch_size(x: jax.Array) -> int:
    return x.shape[0]


# ---------------------------------------------------------------------------
# mse: identity output + squared error
# ---------------------------------------------------------------------------


def mse(pred: ArrayLike, target: ArrayLike) -> jax.Array:
    """Mean squared error ``L = 1/N sum_n 1/2 ||pred_n - y_n||^2`` (linear output unit).

    Args:
      pred: predictions ``h = z``, shape ``(N, ...)`` (``(N,)`` allowed: one output each).
      target: targets ``y``, exactly ``pred``'s shape (real dtype; cast to ``pred``'s).

    Returns:
      Scalar in ``pred``'s dtype.

    Backward rule: ``dL/dpred = (h - y) / N``. Targets are not differentiated (zero).

    Raises:
      TypeError: non-floating ``pred`` or non-real ``target``.
      ValueError: rank-0 ``pred`` or a shape mismatch.
    """
    _check_logits("mse", "pred", pred)
    target = _float_target("mse", "target", pred, "pred", target)
    return _mse(jnp.asarray(pred), target)


@hand_rule
def _mse(h: jax.Array, y: jax.Array) -> jax.Array:
    e = h - y
    return 0.5 * jnp.sum(e * e) / _batch_size(h)


def _mse_fwd(h, y):
    e = h - y
    return 0.5 * jnp.sum(e * e) / _batch_size(h), e


# dL/dh = (h - y) / N ;  the target is data: zero cotangent
def _mse_bwd(e, g):
    return g * e / _batch_size(e), jnp.zeros_like(e)


_mse.defvjp(_mse_fwd, _mse_bwd)


# ---------------------------------------------------------------------------
# logistic_mse: logistic output + squared error (the slow-learning pair)
# ---------------------------------------------------------------------------


def logistic_mse(logits: ArrayLike, target: ArrayLike) -> jax.Array:
    """Squared error of logistic outputs: ``L = 1/N sum_n 1/2 ||logistic(z_n) - y_n||^2``.

    Args:
      logits: pre-activations ``z``, shape ``(N, ...)``.
      target: targets ``y`` in ``[0, 1]``, exactly ``logits``' shape.

    Returns:
      Scalar in ``logits``' dtype.

    Backward rule: ``dL/dz = (h - y) h (1 - h) / N`` with ``h = logistic(z)``; the factor
    ``h (1 - h)`` vanishes when the unit saturates (slow learning). Targets: zero cotangent.

    Raises:
      TypeError: non-floating ``logits`` or non-real ``target``.
      ValueError: rank-0 ``logits`` or a shape mismatch.
    """
    _check_logits("logistic_mse", "logits", logits)
    _check_unit_interval("logistic_mse", "target", target)
    target = _float_target("logistic_mse", "target", logits, "logits", target)
    return _logistic_mse(jnp.asarray(logits), target)


@hand_rule
def _logistic_mse(z: jax.Array, y: jax.Array) -> jax.Array:
    e = lax.logistic(z) - y
    return 0.5 * jnp.sum(e * e) / _batch_size(z)


def _logistic_mse_fwd(z, y):
    h = lax.logistic(z)
    e = h - y
    return 0.5 * jnp.sum(e * e) / _batch_size(z), (h, e)


# dL/dz = (h - y) * h (1 - h) / N  (chain rule through the logistic: h' = h (1 - h))
def _logistic_mse_bwd(res, g):
    h, e = res
    return g * e * h * (1 - h) / _batch_size(h), jnp.zeros_like(e)


_logistic_mse.defvjp(_logistic_mse_fwd, _logistic_mse_bwd)


# ---------------------------------------------------------------------------
# binary_cross_entropy: logistic output + log-likelihood
# ---------------------------------------------------------------------------


def binary_cross_entropy(logits: ArrayLike, target: ArrayLike) -> jax.Array:
    """Binary cross-entropy of logistic outputs, computed from the logits.

    ``L = 1/N sum_n sum_i -[y log h + (1 - y) log(1 - h)]`` with ``h = logistic(z)``,
    evaluated stably as ``softplus(z) - y z`` where
    ``softplus(z) = max(z, 0) + log1p(exp(-|z|))``.

    Args:
      logits: pre-activations ``z``, shape ``(N, ...)``.
      target: targets ``y`` in ``[0, 1]`` (probabilities or ``0/1``), exactly ``logits``'
        shape; integer/bool targets are cast to ``logits``' dtype.

    Returns:
      Scalar in ``logits``' dtype.

    Backward rule: ``dL/dz = (h - y) / N`` -- the logistic's ``h (1 - h)`` cancels against
    the log-likelihood's ``1 / (h (1 - h))``. Targets: zero cotangent.

    Raises:
      TypeError: non-floating ``logits`` or non-real ``target``.
      ValueError: rank-0 ``logits`` or a shape mismatch.
    """
    _check_logits("binary_cross_entropy", "logits", logits)
    _check_unit_interval("binary_cross_entropy", "target", target)
    target = _float_target("binary_cross_entropy", "target", logits, "logits", target)
    return _binary_cross_entropy(jnp.asarray(logits), target)


def _bce_sum(z: jax.Array, y: jax.Array) -> jax.Array:
    # -[y log h + (1-y) log(1-h)] = softplus(z) - y z, with softplus in its overflow-free form
    softplus = jnp.maximum(z, 0) + jnp.log1p(jnp.exp(-jnp.abs(z)))
    return jnp.sum(softplus - y * z)


@hand_rule
def _binary_cross_entropy(z: jax.Array, y: jax.Array) -> jax.Array:
    return _bce_sum(z, y) / _batch_size(z)


def _binary_cross_entropy_fwd(z, y):
    return _bce_sum(z, y) / _batch_size(z), lax.logistic(z) - y


# dL/dz = (h - y) / N, h = logistic(z)  (h(1-h) of the logistic cancels the log-likelihood's)
def _binary_cross_entropy_bwd(e, g):
    return g * e / _batch_size(e), jnp.zeros_like(e)


_binary_cross_entropy.defvjp(_binary_cross_entropy_fwd, _binary_cross_entropy_bwd)


# ---------------------------------------------------------------------------
# softmax_cross_entropy: softmax output + log-likelihood
# ---------------------------------------------------------------------------


def _log_softmax_and_softmax(z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(log softmax(z), softmax(z))`` over the last axis, shifted by the row max."""
    shifted = z - jnp.max(z, axis=-1, keepdims=True)
    ez = jnp.exp(shifted)
    s = jnp.sum(ez, axis=-1, keepdims=True)
    return shifted - jnp.log(s), ez / s


def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """Cross-entropy of softmax outputs: ``L = 1/N sum_n -sum_k y_nk log softmax(z_n)_k``.

    Args:
      logits: pre-activations ``z``, shape ``(N, K)``.
      labels: integer class indices ``(N,)`` in ``[0, K)``, or floating target rows
        ``(N, K)`` (probabilities: each row sums to 1; one-hot rows are the classic case).

    Returns:
      Scalar in ``logits``' dtype.

    Backward rule: ``dL/dz = (softmax(z) - y) / N`` for rows summing to 1 -- the softmax
    Jacobian cancels against the log-likelihood. For rows of another total ``s_n`` the
    exact gradient ``(s_n softmax(z_n) - y_n) / N`` is returned. Labels are not
    differentiated (zero cotangent for rows; none for integer labels).

    Raises:
      TypeError: non-floating ``logits``; bool or non-real ``labels``.
      ValueError: ``logits`` not rank 2, labels of the wrong shape, or concrete labels
        outside ``[0, K)`` (under jit they cannot be checked; see the module docstring).
    """
    _check_logits("softmax_cross_entropy", "logits", logits, ndims="2")
    rows = _target_rows("softmax_cross_entropy", logits, labels)
    return _softmax_cross_entropy(jnp.asarray(logits), rows)


def _cross_entropy_sum(y: jax.Array, logp: jax.Array) -> jax.Array:
    """``-sum y log p`` where classes with ``y = 0`` contribute 0, even at ``log p = -inf``
    (a logit masked out with ``-inf``): ``0 * -inf`` would be NaN."""
    return -jnp.sum(jnp.where(y != 0, y * logp, 0))


@hand_rule
def _softmax_cross_entropy(z: jax.Array, y: jax.Array) -> jax.Array:
    logp, _ = _log_softmax_and_softmax(z)
    return _cross_entropy_sum(y, logp) / _batch_size(z)


def _softmax_cross_entropy_fwd(z, y):
    logp, h = _log_softmax_and_softmax(z)
    e = h * jnp.sum(y, axis=-1, keepdims=True) - y
    return _cross_entropy_sum(y, logp) / _batch_size(z), e


# dL/dz = (softmax(z) - y) / N   (rows summing to 1; in general (softmax(z) sum_k y_k - y) / N)
def _softmax_cross_entropy_bwd(e, g):
    return g * e / _batch_size(e), jnp.zeros_like(e)


_softmax_cross_entropy.defvjp(_softmax_cross_entropy_fwd, _softmax_cross_entropy_bwd)


# ---------------------------------------------------------------------------
# softmax_mse: softmax output + squared error (the slow-learning softmax pair)
# ---------------------------------------------------------------------------


def softmax_mse(logits: ArrayLike, target: ArrayLike) -> jax.Array:
    """Squared error of softmax outputs: ``L = 1/N sum_n 1/2 ||softmax(z_n) - y_n||^2``.

    Args:
      logits: pre-activations ``z``, shape ``(N, K)``.
      target: integer class indices ``(N,)`` in ``[0, K)`` (compared as one-hot rows) or
        floating target rows ``(N, K)``.

    Returns:
      Scalar in ``logits``' dtype.

    Backward rule: ``dL/dz = J^T (h - y) / N`` with ``h = softmax(z)`` and the softmax
    Jacobian ``J = diag(h) - h h^T`` (symmetric), i.e. ``h * (e - <h, e>) / N`` for
    ``e = h - y``. Unlike cross-entropy the Jacobian does not cancel, so a saturated softmax
    learns slowly -- the contrast of the cost ablation. Targets are not differentiated.

    Raises:
      TypeError: non-floating ``logits``; bool or non-real ``target``.
      ValueError: ``logits`` not rank 2, a target of the wrong shape, or concrete labels
        outside ``[0, K)``.
    """
    _check_logits("softmax_mse", "logits", logits, ndims="2")
    rows = _target_rows("softmax_mse", logits, target)
    return _softmax_mse(jnp.asarray(logits), rows)


@hand_rule
def _softmax_mse(z: jax.Array, y: jax.Array) -> jax.Array:
    _, h = _log_softmax_and_softmax(z)
    e = h - y
    return 0.5 * jnp.sum(e * e) / _batch_size(z)


def _softmax_mse_fwd(z, y):
    _, h = _log_softmax_and_softmax(z)
    e = h - y
    return 0.5 * jnp.sum(e * e) / _batch_size(z), (h, e)


# dL/dz = J_softmax^T (h - y) / N,  J = diag(h) - h h^T  =>  h * (e - sum_k h_k e_k) / N
def _softmax_mse_bwd(res, g):
    h, e = res
    je = h * (e - jnp.sum(h * e, axis=-1, keepdims=True))
    return g * je / _batch_size(h), jnp.zeros_like(e)


_softmax_mse.defvjp(_softmax_mse_fwd, _softmax_mse_bwd)
