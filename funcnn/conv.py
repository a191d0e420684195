"""Convolution (1-D and 2-D, channels-last) with hand-written backward rules.

Layout: 2-D inputs ``x`` are ``(N, H, W, C_in)``, kernels ``w`` are ``(KH, KW, C_in, C_out)``,
bias ``b`` is ``(C_out,)``; 1-D inputs are ``(N, W, C_in)`` with kernels ``(K, C_in, C_out)``.
Like every deep-learning "convolution", the forward is a cross-correlation:

    y[n, i, j, o] = b[o] + sum_{p, q, c} x_pad[n, i*sh + p*dh, j*sw + q*dw, c] * w[p, q, c, o]

where ``x_pad`` is ``x`` with ``(lo, hi)`` zeros around each spatial dim, ``(sh, sw)`` the
stride and ``(dh, dw)`` the dilation. Padding is resolved once, in ``funcnn._geometry``.

The backward rule (``_conv2d_bwd``) is the textbook one, written as three explicit
convolutions/reductions of the error map ``g = dL/dy``:

- input gradient: the *full* convolution of ``g`` (dilated by the stride) with the
  spatially flipped kernel whose in/out channels are swapped;
- kernel gradient: the correlation of the (padded) input with ``g`` (dilated by the stride);
- bias gradient: ``g`` summed over batch and space.

1-D convolution reuses the 2-D code by adding a unit spatial dim (height 1).

Each of these sums is computed by the algorithm that measured fastest for its shape on CPU,
chosen at trace time (same sums, other orders of additions): stride-1 convolutions with at
most 8 channels on one side run on 2x2 pixel blocks (space-to-depth: a convolution with 4x
the channels; forward and dw, and dx when there are more than 4 input channels); with at
most 4 input channels dx is a patch scatter and any other forward a fused sum over kernel
taps; bias gradients fold rows (``funcnn._reduce``).
Every path is checked against the autodiff twin in the tests. BENCHMARKS.md has the timings.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from funcnn._rules import hand_rule
from funcnn._checks import check_precision
from funcnn._geometry import Padding, conv_macs, conv_output_size
from funcnn._validation import _prepare_conv
from funcnn._reduce import sum_leading

__all__ = ["conv1d", "conv2d", "conv_output_size", "conv_macs"]

# Dimension numbers of the forward: input NHWC, kernel HWIO, output NHWC.
_FWD_DIMS = ("NHWC", "HWIO", "NHWC")


# --------------------------------------------------------------------------------------
# The 2-D core: primal, _fwd, _bwd, defvjp
# --------------------------------------------------------------------------------------

# Forward algorithm, chosen at trace time: stride-1 convolutions with few channels on one
# side run on 2x2 pixel blocks (below); otherwise, with at most this many input channels,
# the forward is a fused sum over taps (:func:`_conv2d_forward_taps`), else one XLA
# convolution.
_TAPS_MAX_C_IN = 4
# Stride-1 convolutions with at most this many channels on one side (and 3x3 or larger
# kernels) run on 2x2 pixel blocks (:func:`_space_to_depth_correlation`): forward, dx, dw.
_S2D_MAX_MIN_C = 8


def _in_batch_halves(f, x):
    """``f(x)`` computed as ``f`` on the two halves of ``x``'s batch, in a 2-step loop.

    ``f`` maps a batch ``(B, ...)`` to ``(B, ...)`` example by example (an odd batch gets one
    zero example, dropped after). The loop boundary keeps ``f``'s fused sums apart from the
    ops that consume the result, which XLA CPU would otherwise fuse with them: fused with
    tanh, the tap-sum loop below loses its vectorization (LeNet conv1 forward: 7-8 ms
    instead of 0.8 + 0.4 ms). The price is one copy of the result.
    """
    n = x.shape[0]
    if n % 2:
        x = jnp.pad(x, ((0, 1),) + ((0, 0),) * (x.ndim - 1))
    _, y = lax.scan(lambda _, xh: (None, f(xh)), None, x.reshape(2, -1, *x.shape[1:]))
    return y.reshape(-1, *y.shape[2:])[:n]


def _conv2d_forward_taps(x, w, strides, pads, dilations):
    """The forward as a sum over kernel taps and input channels, for few input channels.

    y[n, i, j, :] = sum_{p, q, c} x_pad[n, i*sh + p*dh, j*sw + q*dw, c] * w[p, q, c, :]

    Each term is a strided slice of the padded input times one kernel row, broadcast over
    the output channels; XLA fuses all KH*KW*C_in terms into one pass over the output. With
    1-4 input channels a convolution kernel has a contraction of only KH*KW*C_in and
    vectorizes badly; this pass measured 2-8x faster on LeNet's and CIFAR's first layers
    (BENCHMARKS.md).
    """
    kh, kw, c_in, _ = w.shape
    x_pad = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out_sizes = tuple(
        (m - d * (k - 1) - 1) // s + 1
        for m, k, s, d in zip(x_pad.shape[1:3], (kh, kw), strides, dilations)
    )
    taps = _tap_slices((kh, kw), strides, dilations, out_sizes)

    def tap_sum(xp):
        y = None
        for t, ((h0, h1, hs), (v0, v1, vs)) in enumerate(taps):
            xs = xp[:, h0:h1:hs, v0:v1:vs]
            for c in range(c_in):
                term = xs[..., c:c + 1] * w[t // kw, t % kw, c]
                y = term if y is None else y + term
        return y

    return _in_batch_halves(tap_sum, x_pad)


def _use_space_to_depth(w_shape, strides, dilations) -> bool:
    """Whether a stride-1 correlation with kernel ``w_shape`` runs as a 2x2 space-to-depth one."""
    kh, kw, c_in, c_out = w_shape
    return (
        tuple(strides) == (1, 1) and tuple(dilations) == (1, 1)
        and kh >= 3 and kw >= 3 and min(c_in, c_out) <= _S2D_MAX_MIN_C
    )


def _space_to_depth_correlation(x, w, pads, precision):
    """``y = x_pad (*) w`` (stride 1, dilation 1) as a correlation on 2x2 pixel blocks.

    Output pixel (2a+u, 2b+v) reads input rows 2a+u+i (i < KH), i.e. rows 2(a+p)+r of the
    blocks a+p with u+i = 2p+r. Folding each 2x2 block of the input into its channels
    (``(N, H/2, W/2, 4 C_in)``, block offsets (r, s) major) and each 2x2 block of the output
    into its channels gives a stride-1 correlation with a ceil((K+1)/2)-tap kernel

        W2[p, q, (r, s, c), (u, v, o)] = w[2p + r - u, 2q + s - v, c, o]   (0 outside w)

    with 4x the channels on both sides. It does ~1.4x (5x5) to 1.8x (3x3) the multiplies,
    but XLA's CPU convolution runs 4x wider channel dimensions so much faster that, with
    at most 8 channels on one side, it measured 1.3-4x faster (LeNet conv2: forward
    1.57 -> 1.08 ms, dx 5.97 -> 2.76 ms; BENCHMARKS.md). The padding ``pads`` may be
    negative (a crop), as in :func:`lax.pad`.
    """
    kh, kw, c_in, c_out = w.shape
    (ho, wo), (kh2, kw2), (ho2, wo2) = _s2d_sizes(x.shape[1:3], (kh, kw), pads)
    x2 = _fold_2x2(x, pads, (ho2 + kh2 - 1, wo2 + kw2 - 1))
    shifted = [
        jnp.pad(w, ((u, 2 * kh2 - kh - u), (v, 2 * kw2 - kw - v), (0, 0), (0, 0))).reshape(kh2, 2, kw2, 2, c_in, c_out)
        for u in (0, 1) for v in (0, 1)
    ]
    w2 = jnp.stack(shifted, axis=-2)  # (p, r, q, s, c, (u, v), o)
    w2 = w2.transpose(0, 2, 1, 3, 4, 5, 6).reshape(kh2, kw2, 4 * c_in, 4 * c_out)
    y2 = lax.conv_general_dilated(x2, w2, (1, 1), "VALID", dimension_numbers=_FWD_DIMS, precision=precision)
    return _unfold_2x2(y2)[:, :ho, :wo]


def _s2d_sizes(in_sizes, k_sizes, pads):
    """Output sizes, kernel taps in blocks ceil((K+1)/2), and output blocks, per spatial dim."""
    outs = tuple(n + lo + hi - k + 1 for n, k, (lo, hi) in zip(in_sizes, k_sizes, pads))
    k2 = tuple((k + 2) // 2 for k in k_sizes)
    o2 = tuple(-(-o // 2) for o in outs)
    return outs, k2, o2


def _fold_2x2(a, pads, blocks):
    """``a`` (N, H, W, C) padded by ``pads`` at the start (the end padded or cropped to
    exactly ``2 * blocks``), each 2x2 pixel block folded into the channels: (N, bh, bw, 4C)
    with block offsets (r, s) major."""
    n, h, wd, c = a.shape
    (bh, bw), (lo_h, _), (lo_w, _) = blocks, *pads
    config = ((0, 0, 0), (lo_h, 2 * bh - h - lo_h, 0), (lo_w, 2 * bw - wd - lo_w, 0), (0, 0, 0))
    a = lax.pad(a, jnp.zeros((), a.dtype), config)
    return a.reshape(n, bh, 2, bw, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, bh, bw, 4 * c)


def _unfold_2x2(a2):
    """Inverse of the fold: (N, bh, bw, 4C) -> (N, 2 bh, 2 bw, C)."""
    n, bh, bw, c4 = a2.shape
    a = a2.reshape(n, bh, bw, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
    return a.reshape(n, 2 * bh, 2 * bw, c4 // 4)


def _space_to_depth_kernel_grad(x, g, k_sizes, pads, precision):
    """dL/dw of :func:`_space_to_depth_correlation`: the kernel gradient on 2x2 blocks.

    With x and g folded into blocks, dW2 = sum_{n,a,b} x2[n, a+p, b+q, :] (outer) g2[n, a, b, :]
    is one convolution with the batch contracted (as in :func:`_conv2d_kernel_grad`, with 4x
    the channels on both sides), and dw[i, j, c, o] collects the entries of dW2 that hold
    w[i, j, c, o]: those with 2p + r - u = i and 2q + s - v = j (the transpose of building
    W2 from w). LeNet conv1 (1 -> 6, 5x5): 0.84 vs 1.64 ms.
    """
    kh, kw = k_sizes
    c_in, c_out = x.shape[-1], g.shape[-1]
    (ho, wo), (kh2, kw2), (ho2, wo2) = _s2d_sizes(x.shape[1:3], k_sizes, pads)
    x2 = _fold_2x2(x, pads, (ho2 + kh2 - 1, wo2 + kw2 - 1))
    g2 = _fold_2x2(g, ((0, 0), (0, 0)), (ho2, wo2))
    dw2 = lax.conv_general_dilated(
        x2, g2, (1, 1), "VALID", dimension_numbers=("CHWN", "IHWO", "HWNC"), precision=precision
    )
    dw2 = dw2.reshape(kh2, kw2, 2, 2, c_in, 2, 2, c_out)  # (p, q, r, s, c, u, v, o)
    dw2 = dw2.transpose(5, 6, 0, 2, 1, 3, 4, 7).reshape(2, 2, 2 * kh2, 2 * kw2, c_in, c_out)
    dw = None
    for u in (0, 1):
        for v in (0, 1):
            part = dw2[u, v, u:u + kh, v:v + kw]
            dw = part if dw is None else dw + part
    return dw


@partial(hand_rule, nondiff_argnums=(3, 4, 5, 6))
def _conv2d_core(x, w, b, strides, pads, dilations, precision):
    """conv2d on validated arrays; ``strides, pads, dilations`` are static tuples, ``precision``
    lax's (every convolution and dot of the forward and backward runs at it)."""
    if _use_space_to_depth(w.shape, strides, dilations):
        y = _space_to_depth_correlation(x, w, pads, precision)
    elif w.shape[2] <= _TAPS_MAX_C_IN:
        y = _conv2d_forward_taps(x, w, strides, pads, dilations)
    else:
        y = lax.conv_general_dilated(
            x, w, window_strides=strides, padding=pads, rhs_dilation=dilations, dimension_numbers=_FWD_DIMS,
            precision=precision,
        )
    return y if b is None else y + b


def _conv2d_fwd(x, w, b, strides, pads, dilations, precision):
    # dx needs w, dw needs x; b is kept only to know whether a bias gradient is due.
    return _conv2d_core(x, w, b, strides, pads, dilations, precision), (x, w, b)


# dL/dx is computed by one of two algorithms, chosen per call at trace time (shapes are
# static). Both are the same sum; they differ only in which loops XLA's CPU kernels like:
# - "scatter" (few input channels, C_in <= _SCATTER_MAX_C_IN): the error of every patch is
#   g @ w^T (one matmul), and each patch entry is sent back to the input pixel it was read
#   from (col2im: KH*KW zero-interleaved shifted copies, summed). A convolution whose output
#   has 1-3 channels vectorizes badly (LeNet conv1: ~4-8x slower than this, BENCHMARKS.md).
# - "conv" (otherwise): the full convolution with the flipped kernel, as one XLA convolution.
_SCATTER_MAX_C_IN = 4


def _tap_slices(k_sizes, strides, dilations, out_sizes):
    """Per kernel tap (p, q): (start, stop, step) per spatial dim of the padded input it reads.

    Tap (p, q) of output (i, j) reads x_pad[i*sh + p*dh, j*sw + q*dw], so over all outputs it
    reads rows p*dh, p*dh + sh, ..., p*dh + (H'-1)*sh (and likewise columns).
    """
    taps = []
    for p in range(k_sizes[0]):
        for q in range(k_sizes[1]):
            taps.append(tuple(
                (t * d, t * d + s * (o - 1) + 1, s)
                for t, d, s, o in zip((p, q), dilations, strides, out_sizes)
            ))
    return taps


def _conv2d_input_grad_scatter(g, w, in_sizes, strides, pads, dilations, precision):
    """dL/dx by scattering each patch's error back to the pixels the patch read (col2im).

    dpatch[n, i, j, p, q, c] = sum_o g[n, i, j, o] * w[p, q, c, o]      (one matmul: g @ w^T)
    dx_pad[n, i*sh + p*dh, j*sw + q*dw, c] += dpatch[n, i, j, p, q, c]  (for every tap p, q)

    The "+=" for tap (p, q) is a zero padding of dpatch[..., p, q, :] with s-1 zeros between
    entries (lax.pad interior padding) and p*dh (q*dw) zeros in front; XLA fuses the KH*KW
    padded copies and their sum into one pass. Cropping the forward padding gives dx; the
    rows the forward never read receive only zeros.
    """
    kh, kw, c_in, c_out = w.shape
    out_sizes = g.shape[1:3]
    dpatch = lax.dot_general(g, w.reshape(kh * kw * c_in, c_out), (((3,), (1,)), ((), ())), precision=precision)
    dpatch = dpatch.reshape(*g.shape[:3], kh * kw, c_in)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(in_sizes, pads))
    zero = jnp.zeros((), g.dtype)
    dx_pad = None
    for t, tap in enumerate(_tap_slices((kh, kw), strides, dilations, out_sizes)):
        config = [(0, 0, 0)]
        for (start, stop, step), size in zip(tap, padded):
            config.append((start, size - stop, step - 1))
        config.append((0, 0, 0))
        part = lax.pad(dpatch[:, :, :, t], zero, config)
        dx_pad = part if dx_pad is None else dx_pad + part
    (lo_h, _), (lo_w, _) = pads
    return dx_pad[:, lo_h:lo_h + in_sizes[0], lo_w:lo_w + in_sizes[1]]


def _conv2d_input_grad(g, w, in_sizes, strides, pads, dilations, precision):
    """dL/dx: full convolution of the stride-dilated error map with the flipped kernel.

    dx[n, h, v, c] = sum_{i, j, p, q, o : i*sh + p*dh - lo_h = h, j*sw + q*dw - lo_w = v}
                         g[n, i, j, o] * w[p, q, c, o]

    Per spatial dim (size n, kernel k, stride s, dilation d, padding (lo, hi)), write
    k_eff = d*(k-1)+1, out = (n+lo+hi-k_eff)//s + 1 and r = (n+lo+hi-k_eff) % s, the
    rows at the high end the forward never read. Dilating g by s (s-1 zeros between
    entries, lhs_dilation) gives length (out-1)*s+1. Correlating it with the flipped
    kernel (taps d apart) padded by (lo', hi') puts, at output index h, the sum over
    taps p of g_dil[h + (k-1-p)*d - lo'] w[p]; matching the forward's h = i*s + p*d - lo
    requires lo' = k_eff - 1 - lo. The output length (out-1)*s+1 + lo' + hi' - k_eff + 1
    must be n, which gives hi' = k_eff - 1 - hi + r: the r unread rows get zero gradient.
    lo'/hi' are negative when the forward padding exceeds k_eff - 1; XLA then crops.

    With few input channels the same sum is computed by :func:`_conv2d_input_grad_scatter`.
    """
    pads_t = []
    for n, k, s, d, (lo, hi), out in zip(in_sizes, w.shape[:2], strides, dilations, pads, g.shape[1:3]):
        k_eff = d * (k - 1) + 1
        r = n + lo + hi - k_eff - (out - 1) * s
        pads_t.append((k_eff - 1 - lo, k_eff - 1 - hi + r))
    c_in = w.shape[2]
    if c_in <= _SCATTER_MAX_C_IN:
        return _conv2d_input_grad_scatter(g, w, in_sizes, strides, pads, dilations, precision)
    w_flipped = w[::-1, ::-1]  # spatial flip: correlation -> convolution
    if _use_space_to_depth(w.shape, strides, dilations):
        # flipped, in/out swapped: HWIO for g
        return _space_to_depth_correlation(g, jnp.swapaxes(w_flipped, 2, 3), tuple(pads_t), precision)
    if strides == (1, 1):
        # In/out swap materialized (the kernel is tiny): the standard NHWC/HWIO layout is
        # XLA CPU's fastest convolution path; on 64->64 3x3 SAME it measured ~1.2-1.3x faster
        # than the "HWOI" spec below (BENCHMARKS.md).
        w_t, dims = jnp.swapaxes(w_flipped, 2, 3), _FWD_DIMS
    else:
        # Kernel spec "HWOI": axis 2 (C_in of w) is the *output* feature, axis 3 (C_out of w)
        # the *input* feature, i.e. the in/out-swapped kernel without a transpose (for
        # stride-dilated error maps this form was not slower than XLA's own transpose rule).
        w_t, dims = w_flipped, ("NHWC", "HWOI", "NHWC")
    return lax.conv_general_dilated(
        g,
        w_t,
        window_strides=(1, 1),
        padding=tuple(pads_t),
        lhs_dilation=strides,
        rhs_dilation=dilations,
        dimension_numbers=dims,
        precision=precision,
    )


def _conv2d_kernel_grad(x, g, k_sizes, strides, pads, dilations, precision):
    """dL/dw: correlation of the padded input with the stride-dilated error map.

    dw[p, q, c, o] = sum_{n, i, j} x_pad[n, i*sh + p*dh, j*sw + q*dw, c] * g[n, i, j, o]

    This is a convolution in which the *batch* is contracted: x is read as
    (feature=N, spatial, batch=C_in) -- spec "CHWN" -- and g as a kernel
    (in=N, spatial, out=C_out) -- spec "IHWO" -- dilated by the stride (rhs_dilation)
    and stepped by the dilation (window_strides), so output index p reads
    x_pad[p*d + i*s]. The result's "batch" is C_in and its feature C_out: spec "HWNC"
    lays it out as (KH, KW, C_in, C_out). Padding per dim is (lo, hi - r): the same low
    padding as the forward; the high side drops the r rows the forward never read, so
    the output length (n + lo + hi - r - ((out-1)*s + 1)) // d + 1 = (k_eff - 1)//d + 1 = k.
    """
    if _use_space_to_depth((*k_sizes, x.shape[-1], g.shape[-1]), strides, dilations):
        return _space_to_depth_kernel_grad(x, g, k_sizes, pads, precision)
    pads_k = []
    for n, k, s, d, (lo, hi), out in zip(x.shape[1:3], k_sizes, strides, dilations, pads, g.shape[1:3]):
        k_eff = d * (k - 1) + 1
        r = n + lo + hi - k_eff - (out - 1) * s
        pads_k.append((lo, hi - r))
    return lax.conv_general_dilated(
        x,
        g,
        window_strides=dilations,
        padding=tuple(pads_k),
        rhs_dilation=strides,
        dimension_numbers=("CHWN", "IHWO", "HWNC"),
        precision=precision,
    )


# Backprop through y = x (*) w + b with error map g = dL/dy:
#   dL/dx = full_conv(dilate_s(g), flip(w)^T),  dL/dw = x_pad (*) dilate_s(g),  dL/db = sum_{n,i,j} g
def _conv2d_bwd(strides, pads, dilations, precision, res, g):
    x, w, b = res
    dx = _conv2d_input_grad(g, w, x.shape[1:3], strides, pads, dilations, precision)
    dw = _conv2d_kernel_grad(x, g, w.shape[:2], strides, pads, dilations, precision)
    # The bias error map is also the kernel gradient's input; see sum_leading on min_channels.
    db = None if b is None else sum_leading(g, min_channels=16).astype(b.dtype)
    return dx.astype(x.dtype), dw.astype(w.dtype), db


_conv2d_core.defvjp(_conv2d_fwd, _conv2d_bwd)


# --------------------------------------------------------------------------------------
# Public ops
# --------------------------------------------------------------------------------------


def conv2d(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "VALID",
    dilation: int | Sequence[int] = 1,
    precision: Any = None,
) -> jax.Array:
    """2-D convolution (cross-correlation), channels-last, with a hand-written backward rule.

    Args:
        x: input, ``(N, H, W, C_in)``, floating dtype.
        w: kernel, ``(KH, KW, C_in, C_out)``, same dtype as ``x``.
        b: optional bias, ``(C_out,)``.
        stride: int or ``(sh, sw)``, >= 1.
        padding: ``"VALID"``, ``"SAME"`` (output ``ceil(n / stride)``), an int (both sides of
            both dims) or ``((lo_h, hi_h), (lo_w, hi_w))``.
        dilation: int or ``(dh, dw)``, >= 1; spacing between kernel taps.
        precision: lax's ``precision`` for every convolution and dot of the forward and the
            backward rule (``None`` follows ``jax_default_matmul_precision``; on GPUs float32
            then runs in TF32). Tap-sum paths are elementwise and always exact.

    Returns:
        ``(N, H', W', C_out)`` with ``H' = conv_output_size(H, KH, sh, pad_h, dh)`` (same for W'):

            y[n, i, j, o] = b[o] + sum_{p, q, c} x_pad[n, i*sh + p*dh, j*sw + q*dw, c] w[p, q, c, o]

    Backward (``_conv2d_bwd``): ``dx`` is the full convolution of the stride-dilated error
    map with the flipped, in/out-swapped kernel; ``dw`` the correlation of the padded input
    with the stride-dilated error map; ``db`` the error summed over batch and space.

    Raises:
        TypeError: non-float arrays, mixed dtypes, malformed stride/dilation/padding.
        ValueError: wrong rank, channel mismatch, bad bias shape, non-positive
            stride/dilation, unknown padding, kernel larger than the padded input.
    """
    x, w, b, strides, pads, dilations = _prepare_conv("conv2d", x, w, b, stride, padding, dilation, 2)
    return _conv2d_core(x, w, b, strides, pads, dilations, check_precision("conv2d", precision))


def conv1d(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "VALID",
    dilation: int | Sequence[int] = 1,
    precision: Any = None,
) -> jax.Array:
    """1-D convolution (cross-correlation), channels-last, with a hand-written backward rule.

    Args:
        x: input, ``(N, W, C_in)``, floating dtype.
        w: kernel, ``(K, C_in, C_out)``, same dtype as ``x``.
        b: optional bias, ``(C_out,)``.
        stride: int or ``(s,)``, >= 1.
        padding: ``"VALID"``, ``"SAME"`` (output ``ceil(W / s)``), an int or ``[(lo, hi)]``.
        dilation: int or ``(d,)``, >= 1.
        precision: as :func:`conv2d`.

    Returns:
        ``(N, W', C_out)`` with ``W' = conv_output_size(W, K, s, padding, d)``:

            y[n, i, o] = b[o] + sum_{p, c} x_pad[n, i*s + p*d, c] w[p, c, o]

    The op runs as the 2-D core on a height-1 image (x -> (N, 1, W, C_in),
    w -> (1, K, C_in, C_out)), so it shares conv2d's forward and backward rule.

    Raises:
        TypeError / ValueError: as :func:`conv2d`.
    """
    x, w, b, strides, pads, dilations = _prepare_conv("conv1d", x, w, b, stride, padding, dilation, 1)
    precision = check_precision("conv1d", precision)
    y = _conv2d_core(x[:, None], w[None], b, (1,) + strides, ((0, 0),) + pads, (1,) + dilations, precision)
    return y[:, 0]
