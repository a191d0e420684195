"""Max and average pooling (1-D and 2-D, channels-last) with hand-written backward rules.

Layouts: 2-D inputs ``(N, H, W, C)``, 1-D inputs ``(N, W, C)``. ``window`` and ``stride`` are
an int or one int per spatial dim (``stride`` defaults to ``window``); ``padding`` is
``"VALID"``, ``"SAME"``, an int, or ``(lo, hi)`` pairs (see :mod:`funcnn._ops.geometry`).
Windows may overlap (stride < window) or leave gaps (stride > window).

The backward rules are the textbook ones, written without scatters:

- **max pooling routes the error to the arg-max.** Each window's error goes, whole, to
  the element that won the max. *Ties*: the FIRST maximum of the window in row-major
  order takes the whole error (PyTorch's convention); padding is ``-inf`` and never wins;
  a NaN is the maximum of its window (NaN propagates forward) and the first NaN takes the
  error.
- **average pooling spreads the error evenly**: every element of a window gets the
  window's error divided by the window size (or, with ``count_include_pad=False``, by the
  number of non-padding elements in that window).

Both are written as a loop over the ``KH * KW`` window offsets ("taps"): tap ``(i, j)`` of
output ``(a, b)`` is padded-input element ``(i + sh*a, j + sw*b)``, so a tap's map of
errors goes back into input coordinates with one strided ``lax.pad`` (interior padding
``stride - 1``) and the taps are summed: the ``"textbook"`` algorithm. When ``stride ==
window`` the windows tile the input and the ``"blocks"`` algorithm (the ``"auto"`` choice
there) uses a reshape into ``(N, H', KH, W', KW, C)`` blocks instead; ``algorithm=`` forces
either (:data:`POOL_ALGORITHMS`, in :mod:`funcnn._ops.pool_algorithms` with the shared forward).
Max pooling's forward saves only which element won each window, found by a row-major scan
over the taps: for "blocks" a boolean mask in the block layout (the backward is one
select), otherwise the int8 index of each window's first maximum (a ``fori_loop`` when
windows overlap, so XLA stores the index once instead of recomputing the scan inside every
tap's placement). fwd+bwd measured over 10x faster than ``jax.grad`` of
``reduce_window`` for 2x2/2, 3x3/2 and 3x3/1 windows (BENCHMARKS.md).

The 1-D ops are the 2-D code with a unit spatial dim. The autodiff twins live in
:mod:`funcnn.reference.pooling` and share the validation in :mod:`funcnn._ops.geometry`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn._ops.rules import hand_rule
from funcnn._ops.geometry import Padding, PoolGeometry, check_count_include_pad, pool_geometry
from funcnn._ops.pool_algorithms import (  # noqa: F401 - the table is public here too
    POOL_ALGORITHMS,
    _divisor,
    _neg_inf,
    _pad_spatial,
    _taps_of,
    _tile_pads,
    avg_pool_taps,
    max_pool_taps,
    pool_algorithm,
)

# The ops (same names as the twins); POOL_ALGORITHMS and pool_algorithm are public attributes too.
__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d"]


# --------------------------------------------------------------------------- geometry
def _valid_taps(geo: PoolGeometry, i: int, j: int) -> np.ndarray:
    """Static ``(H', W')`` mask: where tap ``(i, j)`` of a window is a real input element."""
    masks = []
    for off, n, s, (lo, _), out in zip((i, j), geo.in_sizes, geo.strides, geo.pads, geo.out_sizes):
        pos = off + np.arange(out) * s  # padded coordinate of the tap
        masks.append((pos >= lo) & (pos < lo + n))
    return np.outer(masks[0], masks[1])


# ------------------------------------------------------------------ taps (strided views)

def _untap(t: jax.Array, geo: PoolGeometry, i: int, j: int, hp: int, wp: int) -> jax.Array:
    """Transpose of :func:`_tap`: ``t[:, a, b]`` goes to padded ``(i + sh*a, j + sw*b)``, zeros elsewhere.

    One strided ``lax.pad``: interior padding ``stride - 1`` spreads the outputs ``stride``
    apart; edge padding shifts them by the offset and fills the rest of ``(Hp, Wp)``.
    """
    (sh, sw), (ho, wo) = geo.strides, geo.out_sizes
    cfg = (
        (0, 0, 0),
        (i, hp - i - (ho - 1) * sh - 1, sh - 1),
        (j, wp - j - (wo - 1) * sw - 1, sw - 1),
        (0, 0, 0),
    )
    return lax.pad(t, jnp.array(0, t.dtype), cfg)


def _padded_sizes(geo: PoolGeometry) -> tuple[int, int]:
    return tuple(n + lo + hi for n, (lo, hi) in zip(geo.in_sizes, geo.pads))



def _untile_pads(geo: PoolGeometry) -> tuple[tuple[int, int], tuple[int, int]]:
    """Inverse of :func:`_tile_pads`: crop the padding, zero-fill what no window reached."""
    return tuple((-lo, -hi) for lo, hi in _tile_pads(geo))


def _blocks(xt: jax.Array, geo: PoolGeometry) -> jax.Array:
    """View a tiled ``(N, H'*KH, W'*KW, C)`` array as ``(N, H', KH, W', KW, C)`` windows."""
    (kh, kw), (ho, wo) = geo.window, geo.out_sizes
    return xt.reshape(xt.shape[0], ho, kh, wo, kw, xt.shape[-1])


def _unblocks(b: jax.Array) -> jax.Array:
    n, ho, kh, wo, kw, c = b.shape
    return b.reshape(n, ho * kh, wo * kw, c)



# ------------------------------------------------------------------------ max pooling
@partial(hand_rule, nondiff_argnums=(0, 1))
def _max_pool(geo: PoolGeometry, algorithm: str, x: jax.Array) -> jax.Array:
    """Max pooling on a validated ``x``; ``algorithm`` (resolved) picks the backward's layout.

    Unpadded tiling windows over few channels (:func:`_few_channel_tiles`) take the maxima
    from ``lax.reduce_window``, elsewhere the tap loop :func:`max_pool_taps` (the same
    values: a max is exact, NaN propagates in both). XLA fuses no producer into a
    reduce-window, so the layer below's output (bias, activation, a convolution's 2x2 block
    unfold) is computed once and stored, where with the tap loop every consumer of the
    pooled map (the next convolution's forward and kernel gradient, the first-max index)
    computed it again: the LeNet-5 ReLU+max train step about 10% faster on CPU. Over wider channel
    axes reduce-window is the slower loop (2-3x at 32 channels; benchmarks/NOTES.md, part L).
    """
    if _few_channel_tiles(geo, x):
        dims, strides = (1, *geo.window, 1), (1, *geo.strides, 1)
        return lax.reduce_window(x, _neg_inf(x.dtype), lax.max, dims, strides, "VALID")
    return max_pool_taps(geo, x)


def _tap_keys(geo: PoolGeometry, dtype) -> np.ndarray:
    """Static ``(K, 1, H', W', 1)`` keys: tap k of a window is k, or K (no tap) where it is padding."""
    kh, kw = geo.window
    n_taps = kh * kw
    keys = [np.where(_valid_taps(geo, i, j), i * kw + j, n_taps) for i in range(kh) for j in range(kw)]
    return np.stack(keys).astype(dtype)[:, None, :, :, None]


def _first_max_index(geo: PoolGeometry, x: jax.Array, y: jax.Array) -> jax.Array:
    """Index ``i*KW + j`` of each window's FIRST maximum in row-major order (K: no winner).

    Scanning the taps in row-major order, tap k claims a window iff it is real, equals the
    window max ``y`` (or is NaN: the max of a NaN window is NaN) and no earlier tap has
    claimed it. Padding taps carry key K, so padding never wins; a window wholly in padding
    keeps K. Returns int8 ``(N, H', W', C)`` (int32 for windows of more than 126 taps).
    """
    kh, kw = geo.window
    n_taps = kh * kw
    key_dtype = np.int8 if n_taps < 127 else np.int32
    keys = _tap_keys(geo, key_dtype)
    none = jnp.array(n_taps, key_dtype)

    def claim(t, key, idx):
        hit = ((t == y) | jnp.isnan(t)) & (idx == none)
        return jnp.where(hit, key, idx)

    idx = jnp.full(y.shape, n_taps, key_dtype)
    if all(s >= k for s, k in zip(geo.strides, geo.window)):
        # Disjoint windows: an unrolled elementwise scan. XLA fuses it into the backward's
        # select, which touches each element once, so nothing is recomputed.
        for k, t in _taps_of(geo, x, _neg_inf(x.dtype)):
            idx = claim(t, jnp.asarray(keys[k]), idx)
        return idx
    # Overlapping windows: the same scan as a real loop. Unrolled, XLA would fuse the whole
    # K-tap scan into each of the backward's K placements (K^2 work per element, ~30x slower
    # at 3x3 stride 1); the loop boundary stores the index once.
    (sh, sw), (ho, wo) = geo.strides, geo.out_sizes
    xp = _pad_spatial(x, _neg_inf(x.dtype), geo.pads)
    n, c = xp.shape[0], xp.shape[-1]
    keys = jnp.asarray(keys)

    def body(k, idx):
        block = lax.dynamic_slice(xp, (0, k // kw, k % kw, 0), (n, (ho - 1) * sh + 1, (wo - 1) * sw + 1, c))
        t = lax.slice(block, (0, 0, 0, 0), block.shape, (1, sh, sw, 1))  # tap (k // KW, k % KW)
        return claim(t, lax.dynamic_index_in_dim(keys, k, 0, keepdims=False), idx)

    return lax.fori_loop(0, n_taps, body, idx)


#: Per backend: tiling, unpadded max-pool windows over at most this many channels find
#: their first maximum with ``jnp.argmax`` (see :func:`_first_max_blocks`) and their maxima
#: with ``lax.reduce_window`` (see :func:`_max_pool`); wider ones, and backends not listed,
#: with the unrolled scan and the tap loop. CPU, measured (benchmarks/NOTES.md, parts K and
#: L): the argmax made fwd+bwd of 2x2 pools 2.6x faster at 6 channels, 1.1x at 16, 1.2x
#: slower at 32 (the LeNet-5 ReLU + max-pool train step 9% faster); reduce-window 1.4-1.7x
#: faster at 6-16 channels, 1.3-1.9x slower at 32.
ARGMAX_MAX_CHANNELS: dict[str, int] = {"cpu": 16}


def _few_channel_tiles(geo: PoolGeometry, x: jax.Array) -> bool:
    """Unpadded tiling windows over at most :data:`ARGMAX_MAX_CHANNELS` channels."""
    return geo.tiles and not geo.padded and x.shape[-1] <= ARGMAX_MAX_CHANNELS.get(jax.default_backend(), 0)


def _first_max_blocks(geo: PoolGeometry, x: jax.Array, y: jax.Array) -> jax.Array:
    """Tiling windows: bool ``(N, H', KH, W', KW, C)``, True at each window's FIRST maximum.

    The same row-major scan as :func:`_first_max_index` (a real tap equal to ``y``, or NaN,
    that no earlier tap has claimed), kept as one boolean mask per tap and stacked into the
    block layout of :func:`_blocks`, so the backward is a single select against a broadcast
    of ``g``. Over few channels (:data:`ARGMAX_MAX_CHANNELS`) the mask is instead each block
    element's tap compared with the window's stored ``jnp.argmax`` index: XLA fused the
    scan's stacked masks into the backward and evaluated them per element, which costs most
    where the channel axis is too short to fill a vector.
    """
    kh, kw = geo.window
    if _few_channel_tiles(geo, x):
        # jnp.argmax over the stacked taps is the same scan (the first maximum, the first
        # NaN), and a reduction XLA does not fuse into its consumers: the index is stored
        # once, and the backward compares it with each block element's tap, instead of
        # recomputing the scan's masks there per element. Padding needs the scan: -inf
        # padding must lose even to a real -inf.
        taps = [t for _, t in _taps_of(geo, x, _neg_inf(x.dtype))]
        idx = jnp.argmax(jnp.stack(taps, axis=3), axis=3).astype(np.int8 if kh * kw < 127 else np.int32)
        keys = np.arange(kh * kw, dtype=idx.dtype).reshape(1, 1, kh, 1, kw, 1)
        return idx[:, :, None, :, None, :] == keys
    claimed, hits = None, []
    for k, t in _taps_of(geo, x, _neg_inf(x.dtype)):
        hit = (t == y) | jnp.isnan(t)
        if geo.padded:  # padding (-inf) never wins, even in a window whose real max is -inf
            hit = hit & jnp.asarray(_valid_taps(geo, k // kw, k % kw)[None, :, :, None])
        if claimed is None:
            claimed = hit
        else:
            hit = hit & ~claimed
            claimed = claimed | hit
        hits.append(hit)
    rows = [jnp.stack(hits[i * kw : (i + 1) * kw], axis=3) for i in range(kh)]  # (N, H', W', KW, C)
    return jnp.stack(rows, axis=2)


def _max_pool_fwd(geo, algorithm, x):
    # Residual: which element won each window, not (x, y); the backward is then a pure
    # select-and-place. Tiling windows keep a block-shaped boolean mask (one byte per input
    # element), the others the int8 index of the winning tap (one byte per output element).
    # Both are piecewise constant in x, hence the stop_gradients.
    y = _max_pool(geo, algorithm, x)
    xs, ys = lax.stop_gradient(x), lax.stop_gradient(y)
    if algorithm == "blocks":
        return y, _first_max_blocks(geo, xs, ys)
    return y, _first_max_index(geo, xs, ys)


# dL/dx[p] = sum over the windows w whose arg-max is p of dL/dy[w]  (the error goes to the arg-max)
# ties: the FIRST tap of w in row-major order equal to max(w) takes it all (a tap wins if it
#       equals the max and no earlier tap does); -inf padding never wins; the first NaN wins
def _max_pool_bwd(geo, algorithm, idx, g):
    kh, kw = geo.window
    zero = jnp.zeros((), g.dtype)
    if algorithm == "blocks":
        # Blocks (N, H', KH, W', KW, C): block element (i, j) of window (a, b) gets g[a, b] iff
        # it won (idx is the boolean block mask); one select, a reshape, and a pad that
        # crops/zero-fills the edges.
        db = jnp.where(idx, g[:, :, None, :, None, :], zero)
        return (_pad_spatial(_unblocks(db), 0, _untile_pads(geo)),)
    # Overlapping (or gapped) windows: tap k's first-max mask times g, placed back with a
    # strided pad; the taps' maps add up (windows sharing an arg-max accumulate), then the
    # padding is cropped.
    hp, wp = _padded_sizes(geo)
    dxp = None
    for i in range(kh):
        for j in range(kw):
            part = _untap(jnp.where(idx == i * kw + j, g, zero), geo, i, j, hp, wp)
            dxp = part if dxp is None else dxp + part
    (ht, hb), (wl, wr) = geo.pads
    return (_pad_spatial(dxp, 0, ((-ht, -hb), (-wl, -wr))),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool2d(
    x: jax.typing.ArrayLike, window, stride=None, padding: Padding = "VALID", *, algorithm: str = "auto"
) -> jax.Array:
    """2-D max pooling with a hand-written backward rule (the error goes to the arg-max).

    ``y[n, a, b, c] = max_{0<=i<KH, 0<=j<KW} xp[n, a*sh + i, b*sw + j, c]``, where ``xp`` is
    ``x`` padded with ``-inf`` (padding never wins a max).

    Args:
        x: ``(N, H, W, C)`` floating-point array.
        window: ``KH`` = ``KW`` as an int, or ``(KH, KW)``.
        stride: int or ``(sh, sw)``; defaults to ``window`` (non-overlapping windows).
        padding: ``"VALID"``, ``"SAME"`` (``H' = ceil(H / sh)``), an int, or
            ``((lo, hi), (lo, hi))``.
        algorithm: ``"auto"`` (``"blocks"`` for tiling windows, else ``"textbook"``),
            ``"textbook"`` or ``"blocks"``; see :data:`POOL_ALGORITHMS`. Same result.

    Returns:
        ``(N, H', W', C)`` with ``H' = floor((H + lo + hi - KH) / sh) + 1``.

    Backward: ``dL/dx`` is ``dL/dy`` of each window placed at its arg-max. Ties go to the
    FIRST maximum of the window in row-major order (PyTorch's convention); overlapping
    windows sharing an arg-max add their errors there. NaN propagates: a window holding a
    NaN outputs NaN, and its error goes to the first NaN.
    """
    geo = pool_geometry("max_pool2d", x, window, stride, padding, 2)
    return _max_pool(geo, pool_algorithm(geo, algorithm, fn="max_pool2d"), jnp.asarray(x))


def max_pool1d(
    x: jax.typing.ArrayLike, window, stride=None, padding: Padding = "VALID", *, algorithm: str = "auto"
) -> jax.Array:
    """1-D max pooling: :func:`max_pool2d` over ``(N, W, C)`` with a unit height.

    Args:
        x: ``(N, W, C)`` floating-point array.
        window: ``K`` (int or ``(K,)``).
        stride: int or ``(s,)``; defaults to ``window``.
        padding: ``"VALID"``, ``"SAME"``, an int, or ``((lo, hi),)``.
        algorithm: as :func:`max_pool2d`.

    Returns:
        ``(N, W', C)``. Same tie and NaN conventions as :func:`max_pool2d`.
    """
    geo = pool_geometry("max_pool1d", x, window, stride, padding, 1)
    return _max_pool(geo, pool_algorithm(geo, algorithm, fn="max_pool1d"), jnp.asarray(x)[:, None])[:, 0]


# -------------------------------------------------------------------- average pooling

@partial(hand_rule, nondiff_argnums=(0, 1, 2))
def _avg_pool(geo: PoolGeometry, count_include_pad: bool, algorithm: str, x: jax.Array) -> jax.Array:
    """Average pooling on a validated ``x``; ``algorithm`` (resolved) picks the backward's layout."""
    return avg_pool_taps(geo, count_include_pad, x)


def _avg_pool_fwd(geo, count_include_pad, algorithm, x):
    return _avg_pool(geo, count_include_pad, algorithm, x), None


# dL/dx[p] = sum over the windows w containing p of dL/dy[w] / |w|
#   (|w| = KH*KW, or w's count of non-padding elements when count_include_pad=False)
# no kinks or ties: the map is linear; padding positions receive their share and are cropped
def _avg_pool_bwd(geo, count_include_pad, algorithm, _, g):
    e = g / _divisor(geo, count_include_pad, g.dtype)  # each window's error per element
    kh, kw = geo.window
    if algorithm == "blocks":
        n, ho, wo, c = e.shape
        eb = jnp.broadcast_to(e[:, :, None, :, None, :], (n, ho, kh, wo, kw, c))
        return (_pad_spatial(_unblocks(eb), 0, _untile_pads(geo)),)
    hp, wp = _padded_sizes(geo)
    dxp = None
    for i in range(kh):
        for j in range(kw):
            part = _untap(e, geo, i, j, hp, wp)
            dxp = part if dxp is None else dxp + part
    (ht, hb), (wl, wr) = geo.pads
    return (_pad_spatial(dxp, 0, ((-ht, -hb), (-wl, -wr))),)


_avg_pool.defvjp(_avg_pool_fwd, _avg_pool_bwd)


def avg_pool2d(
    x: jax.typing.ArrayLike,
    window,
    stride=None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
    *,
    algorithm: str = "auto",
) -> jax.Array:
    """2-D average pooling with a hand-written backward rule (the error is spread evenly).

    ``y[n, a, b, c] = sum_{i, j} xp[n, a*sh + i, b*sw + j, c] / |w|``, with ``xp`` zero-padded
    and ``|w| = KH*KW`` (``count_include_pad=True``) or the number of non-padding elements of
    the window (``False``; a window wholly in padding gives 0).

    Args:
        x: ``(N, H, W, C)`` floating-point array.
        window: int or ``(KH, KW)``.
        stride: int or ``(sh, sw)``; defaults to ``window``.
        padding: ``"VALID"``, ``"SAME"``, an int, or ``((lo, hi), (lo, hi))``.
        count_include_pad: whether padding counts in the divisor.
        algorithm: as :func:`max_pool2d`.

    Returns:
        ``(N, H', W', C)``.

    Backward: every element of window ``w`` receives ``dL/dy[w] / |w|``; overlapping windows add.
    """
    check_count_include_pad("avg_pool2d", count_include_pad)
    geo = pool_geometry("avg_pool2d", x, window, stride, padding, 2)
    algorithm = pool_algorithm(geo, algorithm, fn="avg_pool2d")
    return _avg_pool(geo, bool(count_include_pad), algorithm, jnp.asarray(x))


def avg_pool1d(
    x: jax.typing.ArrayLike,
    window,
    stride=None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
    *,
    algorithm: str = "auto",
) -> jax.Array:
    """1-D average pooling: :func:`avg_pool2d` over ``(N, W, C)`` with a unit height.

    Args:
        x: ``(N, W, C)`` floating-point array.
        window: ``K`` (int or ``(K,)``).
        stride: int or ``(s,)``; defaults to ``window``.
        padding: ``"VALID"``, ``"SAME"``, an int, or ``((lo, hi),)``.
        count_include_pad: whether padding counts in the divisor.
        algorithm: as :func:`max_pool2d`.

    Returns:
        ``(N, W', C)``.
    """
    check_count_include_pad("avg_pool1d", count_include_pad)
    geo = pool_geometry("avg_pool1d", x, window, stride, padding, 1)
    algorithm = pool_algorithm(geo, algorithm, fn="avg_pool1d")
    return _avg_pool(geo, bool(count_include_pad), algorithm, jnp.asarray(x)[:, None])[:, 0]
