"""Autodiff twins of :mod:`funcnn.pooling`: the same forwards via ``lax.reduce_window``, no custom rules.

Same names, signatures, validation (shared with :mod:`funcnn.pooling`) and conventions;
``jax.grad`` differentiates them. Max-pool padding is ``-inf``; average-pool padding is 0 and
``count_include_pad=False`` divides by a ``reduce_window``-counted array of ones (at least 1).
Which tied element ``jax.grad`` credits is XLA's choice, not the hand rule's first-max rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn._geometry import Padding
from funcnn.pooling import PoolGeometry, check_count_include_pad, pool_geometry

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d"]


def _window_args(geo: PoolGeometry):
    return (1, *geo.window, 1), (1, *geo.strides, 1), ((0, 0), *geo.pads, (0, 0))


def _max_pool(geo: PoolGeometry, x: jax.Array) -> jax.Array:
    dims, strides, pads = _window_args(geo)
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, dims, strides, pads)


def _avg_pool(geo: PoolGeometry, count_include_pad: bool, x: jax.Array) -> jax.Array:
    dims, strides, pads = _window_args(geo)
    zero = np.array(0, x.dtype)
    s = lax.reduce_window(x, zero, lax.add, dims, strides, pads)
    if count_include_pad:
        return s / (geo.window[0] * geo.window[1])
    ones = jnp.ones((1, *geo.in_sizes, 1), x.dtype)
    count = lax.reduce_window(ones, zero, lax.add, dims, strides, pads)
    return s / jnp.maximum(count, 1)


def max_pool2d(x: jax.typing.ArrayLike, window, stride=None, padding: Padding = "VALID") -> jax.Array:
    """Twin of :func:`funcnn.pooling.max_pool2d`: ``lax.reduce_window`` max; ``(N, H, W, C) -> (N, H', W', C)``."""
    geo = pool_geometry("max_pool2d", x, window, stride, padding, 2)
    return _max_pool(geo, jnp.asarray(x))


def max_pool1d(x: jax.typing.ArrayLike, window, stride=None, padding: Padding = "VALID") -> jax.Array:
    """Twin of :func:`funcnn.pooling.max_pool1d`; ``(N, W, C) -> (N, W', C)``."""
    geo = pool_geometry("max_pool1d", x, window, stride, padding, 1)
    return _max_pool(geo, jnp.asarray(x)[:, None])[:, 0]


def avg_pool2d(
    x: jax.typing.ArrayLike,
    window,
    stride=None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
) -> jax.Array:
    """Twin of :func:`funcnn.pooling.avg_pool2d`: ``lax.reduce_window`` sum, divided; ``(N, H', W', C)``."""
    check_count_include_pad("avg_pool2d", count_include_pad)
    geo = pool_geometry("avg_pool2d", x, window, stride, padding, 2)
    return _avg_pool(geo, bool(count_include_pad), jnp.asarray(x))


def avg_pool1d(
    x: jax.typing.ArrayLike,
    window,
    stride=None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
) -> jax.Array:
    """Twin of :func:`funcnn.pooling.avg_pool1d`; ``(N, W, C) -> (N, W', C)``."""
    check_count_include_pad("avg_pool1d", count_include_pad)
    geo = pool_geometry("avg_pool1d", x, window, stride, padding, 1)
    return _avg_pool(geo, bool(count_include_pad), jnp.asarray(x)[:, None])[:, 0]
