"""Shape-only layers: ``Flatten``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from funcnn.nn._common import _check_in_shape, _check_x
from funcnn.nn.layer import Layer



def Flatten() -> Layer:
    """Flatten every axis but the batch axis: ``(N, d1, d2, ...) -> (N, d1*d2*...)``."""
    name = "Flatten()"

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, "(N, ...) with rank >= 2", min_rank=2)
        return (shape[0], math.prod(shape[1:])), (), ()

    def apply(params, state, x, *, key=None, train=False):
        x_shape = _check_x(name, x, None, "(N, ...) with rank >= 2", min_rank=2)
        # explicit size, not -1: reshape(0, -1) is ambiguous for an empty batch
        return jnp.reshape(x, (x_shape[0], math.prod(x_shape[1:]))), state

    return Layer(init, apply, name=name, kind="flatten")
