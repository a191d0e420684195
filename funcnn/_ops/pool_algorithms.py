"""Pooling algorithms: the named table and the forward sums, shared by the hand rules and twins.

The backward of a pooling op routes each window's error back to its inputs. Two ways are
named in :data:`POOL_ALGORITHMS`:

- ``"textbook"``: window by window, tap by tap. Tap ``(i, j)`` of output ``(a, b)`` is
  padded-input element ``(i + sh*a, j + sw*b)``; a tap's map of errors (masked to the
  arg-max for max pooling) goes back with one strided ``lax.pad`` and the taps add up.
  Works for every geometry.
- ``"blocks"``: when the windows tile the input (stride == window), a reshape into
  ``(N, H', KH, W', KW, C)`` blocks and one select/broadcast. Tiling windows only.

``algorithm="auto"`` (the default) is ``"blocks"`` for tiling windows and ``"textbook"``
otherwise, on every backend (the choice follows the geometry, not a measured threshold).
The forward is the same tap loop for both (:func:`max_pool_taps`, :func:`avg_pool_taps`);
the autodiff twins run it with ``algorithm`` set to any of these names (by default they
run ``lax.reduce_window`` / a stacked max, ``"plain"``). This module carries no custom rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn._ops.geometry import PoolGeometry, window_counts

__all__ = ["POOL_ALGORITHMS", "pool_algorithm", "max_pool_taps", "avg_pool_taps"]

#: name -> what it does (module docstring); the hand rules dispatch on the name.
POOL_ALGORITHMS: Mapping[str, str] = {
    "textbook": "window by window: each tap's error map placed back with a strided pad",
    "blocks": "tiling windows (stride == window): one select on (N, H', KH, W', KW, C) blocks",
}


def pool_algorithm(geo: PoolGeometry, algorithm: object = "auto", *, fn: str = "max_pool2d") -> str:
    """The algorithm name a pooling call with geometry ``geo`` runs (``"auto"`` resolved).

    Raises:
        ValueError: an unknown name, or ``"blocks"`` for windows that do not tile the input.
    """
    names = ("auto", *POOL_ALGORITHMS)
    if not isinstance(algorithm, str) or algorithm not in names:
        raise ValueError(f"{fn}: algorithm must be one of {names}, got {algorithm!r}")
    if algorithm == "auto":
        return "blocks" if geo.tiles else "textbook"
    if algorithm == "blocks" and not geo.tiles:
        raise ValueError(
            f"{fn}: algorithm 'blocks' needs windows that tile the input (stride == window), "
            f"got window={geo.window}, stride={geo.strides}"
        )
    return algorithm


def _pad_spatial(x: jax.Array, value, pads) -> jax.Array:
    """Pad (or, for negative amounts, crop) the two spatial dims of ``(N, H, W, C)``."""
    (ht, hb), (wl, wr) = pads
    return lax.pad(x, jnp.array(value, x.dtype), ((0, 0, 0), (ht, hb, 0), (wl, wr, 0), (0, 0, 0)))


def _tap(xp: jax.Array, geo: PoolGeometry, i: int, j: int) -> jax.Array:
    """Tap ``(i, j)`` of every window: ``xp[:, i + sh*a, j + sw*b, :]``, shape ``(N, H', W', C)``."""
    (sh, sw), (ho, wo) = geo.strides, geo.out_sizes
    n, _, _, c = xp.shape
    return lax.slice(xp, (0, i, j, 0), (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c), (1, sh, sw, 1))


def _tile_pads(geo: PoolGeometry) -> tuple[tuple[int, int], tuple[int, int]]:
    """Edge padding taking ``(H, W)`` exactly to the tiled ``(H' * KH, W' * KW)`` region.

    The high side may be negative: the part of the input no window reaches is cropped.
    """
    return tuple(
        (lo, out * k - n - lo) for n, k, (lo, _), out in zip(geo.in_sizes, geo.window, geo.pads, geo.out_sizes)
    )


def _neg_inf(dtype) -> jax.Array:
    return jnp.array(-jnp.inf, dtype)


def _taps_of(geo: PoolGeometry, x: jax.Array, fill):
    """Pad ``x`` with ``fill`` and yield ``(k, tap)`` for the taps ``k = i*KW + j`` in row-major order.

    Tiling windows are padded to exactly ``(H' * KH, W' * KW)`` (cropping what no window
    reaches); the taps are the same strided views either way.
    """
    xp = _pad_spatial(x, fill, _tile_pads(geo) if geo.tiles else geo.pads)
    kw = geo.window[1]
    for i in range(geo.window[0]):
        for j in range(kw):
            yield i * kw + j, _tap(xp, geo, i, j)


def _divisor(geo: PoolGeometry, count_include_pad: bool, dtype):
    """What each window's sum is divided by: ``KH*KW``, or its non-padding count.

    A window lying wholly in explicit padding has count 0 under ``count_include_pad=False``;
    it is divided by 1 instead (output 0, no error flows), as the twin does.
    """
    if count_include_pad or not geo.padded:
        return jnp.array(geo.window[0] * geo.window[1], dtype)
    return jnp.asarray(np.maximum(window_counts(geo), 1)[None, :, :, None], dtype)



def max_pool_taps(geo: PoolGeometry, x: jax.Array) -> jax.Array:
    """``y = max over the window taps`` of the ``-inf``-padded input (NaN propagates)."""
    y = None
    for _, t in _taps_of(geo, x, _neg_inf(x.dtype)):
        y = t if y is None else lax.max(y, t)  # lax.max propagates NaN
    return y


def avg_pool_taps(geo: PoolGeometry, count_include_pad: bool, x: jax.Array) -> jax.Array:
    """``y = sum over the window taps`` of the zero-padded input, divided by :func:`_divisor`."""
    s = None
    for _, t in _taps_of(geo, x, 0):
        s = t if s is None else s + t
    return s / _divisor(geo, count_include_pad, x.dtype)
