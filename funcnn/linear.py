"""The affine map of a fully connected layer, with its hand-written backward rule.

``dense(x, w, b) = x @ w + b`` over the last axis of ``x``. Backpropagation through it is
the heart of the textbook derivation: the error terms of the layer below are the
weighted sums of this layer's error terms, ``dx = g w^T``; the weight gradient is the
outer product of the input with the error term, summed over the examples,
``dw = x^T g``; and the bias gradient is the summed error term, ``db = sum_n g``.

The autodiff twin is :func:`funcnn.reference.dense.dense`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from funcnn._ops.rules import hand_rule
from funcnn._ops.checks import check_precision
from funcnn._ops.validation import _validate_dense

__all__ = ["dense"]



def dense(x: ArrayLike, w: ArrayLike, b: ArrayLike | None = None, *, precision: Any = None) -> jax.Array:
    """Affine map ``y = x w + b`` over the last axis, with the textbook backward rule.

    Args:
      x: inputs, shape ``(..., D_in)`` (any number of leading axes, e.g. ``(N, D_in)``).
      w: weights, shape ``(D_in, D_out)``.
      b: optional bias, shape ``(D_out,)``.
      precision: lax's ``precision`` for the product and both backward products (``None``
        follows ``jax_default_matmul_precision``; on GPUs float32 then runs in TF32).

    Returns:
      ``y`` of shape ``(..., D_out)``: ``y[..., j] = sum_i x[..., i] w[i, j] + b[j]``.

    Backward rule (hand-written ``custom_vjp``), for the error term ``g = dL/dy``:
    ``dx = g w^T``, ``dw = x^T g`` and ``db = sum g``, the last two summed over every
    leading axis of ``x``. The rule is itself differentiable (gradient of a gradient works).

    Raises:
      TypeError: a non-floating or mixed-dtype argument.
      ValueError: ``w`` not rank 2, ``x.shape[-1] != w.shape[0]``, or ``b.shape != (D_out,)``.
    """
    _validate_dense("dense", x, w, b)
    x, w = jnp.asarray(x), jnp.asarray(w)
    b = None if b is None else jnp.asarray(b)
    return _dense(x, w, b, check_precision("dense", precision))


@partial(hand_rule, nondiff_argnums=(3,))
def _dense(x: jax.Array, w: jax.Array, b: jax.Array | None, precision: Any) -> jax.Array:
    y = jnp.matmul(x, w, precision=precision)
    return y if b is None else y + b


def _dense_fwd(x, w, b, precision):
    # The rule needs both factors of the product; the bias only as a flag (a static bool).
    return _dense(x, w, b, precision), (x, w, b is not None)


# dx = g w^T ;  dw = x^T g = sum_n x_n (outer) g_n ;  db = sum_n g_n  (sums over leading axes)
def _dense_bwd(precision, res, g):
    x, w, has_bias = res
    lead = tuple(range(g.ndim - 1))
    # Contract the named axes directly (no transposes or reshapes for XLA to materialize).
    # Both products run at the caller's precision, as jax.grad's transposes of the twin do.
    dx = lax.dot_general(g, w, (((g.ndim - 1,), (1,)), ((), ())), precision=precision)
    dw = lax.dot_general(x, g, ((lead, lead), ((), ())), precision=precision)
    # A plain sum over the batch rows: as fast as sum_leading's folding here, and in the same
    # order as jax.grad's, so hand-rule and autodiff MLP training stay bitwise identical.
    db = g.sum(axis=lead) if has_bias else None
    return dx, dw, db


_dense.defvjp(_dense_fwd, _dense_bwd)
