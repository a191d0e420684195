"""``Dropout``: inverted dropout, its mask drawn from the ``key`` passed to ``apply``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops.checks import shape_of
from funcnn.nn._common import _check_in_shape
from funcnn.nn.layer import Layer



def Dropout(rate: float) -> Layer:
    """Inverted dropout: zero each element with probability ``rate``, scale the rest by ``1/(1-rate)``.

    ``train=True`` needs ``key``; ``train=False`` is the identity (the scaling at train time
    keeps the expected activation unchanged, so nothing is rescaled at eval). No rule: the
    mask multiply is differentiated by ``jax.grad`` under either rule.

    Args:
        rate: probability of dropping an element, in ``[0, 1)``.
    """
    name = f"Dropout({rate!r})"
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)):
        raise TypeError(f"{name}: rate must be a number in [0, 1), got {rate!r}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: rate (probability of dropping) must be in [0, 1), got {rate!r}")
    rate = float(rate)

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, "a shape of rank >= 1")
        return shape, (), ()

    def apply(params, state, x, *, key=None, train=False):
        if not train:
            return x, state
        if key is None:
            raise ValueError(
                f"{name}: train=True needs a PRNG key for the dropout mask; pass key=... "
                f"(or train=False for evaluation)"
            )
        if rate == 0.0:
            return x, state
        keep = jax.random.bernoulli(key, 1.0 - rate, shape_of(x))
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x)), state

    return Layer(init, apply, name=name, kind="dropout", config={"rate": rate})
