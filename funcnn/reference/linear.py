"""Autodiff twin of :mod:`funcnn.linear`: the same forward, no custom rule.

``jax.grad`` differentiates this plain ``jnp`` forward; tests and
:mod:`funcnn.gradcheck` compare it with the hand-written rule of :func:`funcnn.linear.dense`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from funcnn._ops.checks import check_precision
from funcnn._ops.validation import _validate_dense

__all__ = ["dense"]


def dense(x: ArrayLike, w: ArrayLike, b: ArrayLike | None = None, *, precision: Any = None) -> jax.Array:
    """Affine map ``y = x w + b`` over the last axis (autodiff twin).

    Args:
      x: inputs, shape ``(..., D_in)``.
      w: weights, shape ``(D_in, D_out)``.
      b: optional bias, shape ``(D_out,)``.
      precision: lax's ``precision`` for the product (and so for jax.grad's transposes).

    Returns:
      ``y`` of shape ``(..., D_out)``.

    Raises the same errors as :func:`funcnn.linear.dense`.
    """
    _validate_dense("dense", x, w, b)
    y = jnp.matmul(jnp.asarray(x), jnp.asarray(w), precision=check_precision("dense", precision))
    return y if b is None else y + jnp.asarray(b)
