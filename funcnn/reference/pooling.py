"""Autodiff twins of :mod:`funcnn.pooling`: the same forwards written plainly, no custom rules.

Same names, signatures, validation (:mod:`funcnn._ops.geometry`, shared with :mod:`funcnn.pooling`) and conventions;
``jax.grad`` differentiates them. Max pooling is the max over the stacked window taps of the
``-inf``-padded input (``jax.grad`` splits a tie evenly among the tied elements, where the
hand rule's credits the first maximum); average pooling is a ``lax.reduce_window`` sum with 0
padding, and ``count_include_pad=False`` divides by a ``reduce_window``-counted array of ones
(at least 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn._ops.geometry import Padding, PoolGeometry, check_count_include_pad, pool_geometry
from funcnn._ops.pool_algorithms import avg_pool_taps, max_pool_taps, pool_algorithm

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d"]


def _window_args(geo: PoolGeometry):
    return (1, *geo.window, 1), (1, *geo.strides, 1), ((0, 0), *geo.pads, (0, 0))


def _max_pool(geo: PoolGeometry, x: jax.Array) -> jax.Array:
    # The max over the window's taps (strided views of the -inf-padded input), stacked: the
    # plainest statement of the forward. Not lax.reduce_window: its second derivative on GPUs
    # (select_and_gather_add) packs value and tangent into one 64-bit word and so rounds a
    # float64 computation to float32 precision; jax.grad of a max over an axis stays exact.
    (kh, kw), (sh, sw), (ho, wo) = geo.window, geo.strides, geo.out_sizes
    xp = jnp.pad(x, ((0, 0), *geo.pads, (0, 0)), constant_values=-jnp.inf)
    n, c = xp.shape[0], xp.shape[-1]
    taps = [
        lax.slice(xp, (0, i, j, 0), (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c), (1, sh, sw, 1))
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.max(jnp.stack(taps), axis=0)


def _avg_pool(geo: PoolGeometry, count_include_pad: bool, x: jax.Array) -> jax.Array:
    dims, strides, pads = _window_args(geo)
    zero = np.array(0, x.dtype)
    s = lax.reduce_window(x, zero, lax.add, dims, strides, pads)
    if count_include_pad:
        return s / (geo.window[0] * geo.window[1])
    ones = jnp.ones((1, *geo.in_sizes, 1), x.dtype)
    count = lax.reduce_window(ones, zero, lax.add, dims, strides, pads)
    return s / jnp.maximum(count, 1)


def _forward(fn: str, geo: PoolGeometry, algorithm: object, plain, shared):
    """The twin's own forward (``algorithm="plain"``) or, for a hand algorithm's name, the
    hand op's tap-loop forward (shared, so hand vs autodiff compares backward rules only; on
    CPU the hand max pool takes few-channel tiling windows' maxima, the same values, from a
    reduce-window instead: :func:`funcnn.pooling._max_pool`)."""
    if isinstance(algorithm, str) and algorithm == "plain":
        return plain
    try:
        pool_algorithm(geo, algorithm, fn=fn)
    except ValueError as e:
        raise ValueError(f"{e} (or 'plain', the twin's own forward)") from None
    return shared


def max_pool2d(
    x: jax.typing.ArrayLike, window, stride=None, padding: Padding = "VALID", *, algorithm: str = "plain"
) -> jax.Array:
    """Twin of :func:`funcnn.pooling.max_pool2d`: max over stacked window taps; ``(N, H, W, C) -> (N, H', W', C)``.

    ``algorithm``: ``"plain"`` (default, the stacked max) or a name the hand op takes, to
    differentiate the hand op's forward (a tap-by-tap ``lax.max``) instead.
    """
    geo = pool_geometry("max_pool2d", x, window, stride, padding, 2)
    return _forward("max_pool2d", geo, algorithm, _max_pool, max_pool_taps)(geo, jnp.asarray(x))


def max_pool1d(
    x: jax.typing.ArrayLike, window, stride=None, padding: Padding = "VALID", *, algorithm: str = "plain"
) -> jax.Array:
    """Twin of :func:`funcnn.pooling.max_pool1d`; ``(N, W, C) -> (N, W', C)``; ``algorithm`` as :func:`max_pool2d`."""
    geo = pool_geometry("max_pool1d", x, window, stride, padding, 1)
    return _forward("max_pool1d", geo, algorithm, _max_pool, max_pool_taps)(geo, jnp.asarray(x)[:, None])[:, 0]


def avg_pool2d(
    x: jax.typing.ArrayLike,
    window,
    stride=None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
    *,
    algorithm: str = "plain",
) -> jax.Array:
    """Twin of :func:`funcnn.pooling.avg_pool2d`: ``lax.reduce_window`` sum, divided; ``(N, H', W', C)``.

    ``algorithm``: ``"plain"`` (default) or a name the hand op takes (its tap-sum forward).
    """
    check_count_include_pad("avg_pool2d", count_include_pad)
    geo = pool_geometry("avg_pool2d", x, window, stride, padding, 2)
    forward = _forward("avg_pool2d", geo, algorithm, _avg_pool, avg_pool_taps)
    return forward(geo, bool(count_include_pad), jnp.asarray(x))


def avg_pool1d(
    x: jax.typing.ArrayLike,
    window,
    stride=None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
    *,
    algorithm: str = "plain",
) -> jax.Array:
    """Twin of :func:`funcnn.pooling.avg_pool1d`; ``(N, W, C) -> (N, W', C)``; ``algorithm`` as :func:`avg_pool2d`."""
    check_count_include_pad("avg_pool1d", count_include_pad)
    geo = pool_geometry("avg_pool1d", x, window, stride, padding, 1)
    forward = _forward("avg_pool1d", geo, algorithm, _avg_pool, avg_pool_taps)
    return forward(geo, bool(count_include_pad), jnp.asarray(x)[:, None])[:, 0]
