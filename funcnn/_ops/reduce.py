"""Per-channel sums over the batch (and space): bias, batch-norm and PReLU gradients.

``sum_leading(t)`` is ``jnp.sum(t, axis=all but the last)``, the sum behind every bias
gradient (``db = sum over n, h, w of g``) and batch statistic. XLA's CPU reduction of the
leading axes of a channels-last array is slow when the kept (channel) axis is short: it
walks ``C`` values per row. Folding ``k`` consecutive rows into one row of ``k * C`` values
(a free reshape) makes the first sum run over wide rows; the ``k`` partial sums per channel
are then added. Same sum, another order of additions (float rounding differs at the last
bits). It measured 4-20x faster for both narrow and wide channel counts
(BENCHMARKS.md).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Target width (in elements) of a folded row: 128 was as fast for a plain sum but 2-3x
# slower than 512 when an elementwise producer is fused in (PReLU's g * x on 6 channels).
_ROW = 512
# Channel axes at least this wide are summed as they are (folding measured no faster, and
# slower for batch norm on (128, 256)).
_WIDE = 128


def fold_factor(rows: int, channels: int) -> int:
    """The number ``k`` of rows folded into one: the largest divisor of ``rows`` with
    ``k * channels <= _ROW`` (1 when the channel axis is already ``_WIDE``)."""
    if channels >= _WIDE:
        return 1
    k = max(1, min(rows, _ROW // max(channels, 1)))
    while k > 1 and rows % k:
        k -= 1
    return k


def sum_leading(t: jax.Array, *, min_channels: int = 1) -> jax.Array:
    """``t`` summed over every axis but the last: shape ``(..., C) -> (C,)``.

    Rows are folded only when ``C >= min_channels``. The fold changes the layout in which
    XLA evaluates an elementwise producer fused into the sum; when that producer is
    expensive to index and also feeds other ops, the fold can cost more than it saves (a
    convolution's bias gradient on LeNet's 6-channel first layer made the step slower;
    BENCHMARKS.md).
    """
    c = t.shape[-1]
    rows = math.prod(t.shape[:-1])
    k = fold_factor(rows, c) if c >= min_channels else 1
    if k == 1:
        return jnp.sum(t.reshape(rows, c), axis=0)
    return jnp.sum(t.reshape(rows // k, k * c), axis=0).reshape(k, c).sum(axis=0)


def sum_to_shape(t: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Sum a broadcast gradient ``t`` back down to a parameter's ``shape``."""
    if len(shape) == 1 and t.ndim > 1 and shape[0] == t.shape[-1]:
        return sum_leading(t)  # per-channel parameter: the common case, a fast path
    lead = t.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and t.shape[lead + i] != 1
    )
    return jnp.sum(t, axis=axes).reshape(shape)
