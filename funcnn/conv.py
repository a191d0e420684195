"""Convolution (1-D and 2-D, channels-last) with hand-written backward rules.

Layout: 2-D inputs ``x`` are ``(N, H, W, C_in)``, kernels ``w`` are ``(KH, KW, C_in, C_out)``,
bias ``b`` is ``(C_out,)``; 1-D inputs are ``(N, W, C_in)`` with kernels ``(K, C_in, C_out)``.
Like every deep-learning "convolution", the forward is a cross-correlation:

    y[n, i, j, o] = b[o] + sum_{p, q, c} x_pad[n, i*sh + p*dh, j*sw + q*dw, c] * w[p, q, c, o]

where ``x_pad`` is ``x`` with ``(lo, hi)`` zeros around each spatial dim, ``(sh, sw)`` the
stride and ``(dh, dw)`` the dilation. Padding is resolved once, in ``funcnn._ops.geometry``.

The backward rule (``_conv2d_bwd``) is the textbook one, written as three explicit
convolutions/reductions of the error map ``g = dL/dy``:

- input gradient: the *full* convolution of ``g`` (dilated by the stride) with the
  spatially flipped kernel whose in/out channels are swapped;
- kernel gradient: the correlation of the (padded) input with ``g`` (dilated by the stride);
- bias gradient: ``g`` summed over batch and space.

1-D convolution reuses the 2-D code by adding a unit spatial dim (height 1).

Each of these sums can be computed by more than one algorithm (same sums, other orders of
additions), named in one table, :data:`CONV_ALGORITHMS` (:mod:`funcnn._ops.conv_algorithms` holds
the table and the forwards, this module the backward sums :data:`INPUT_GRAD` and
:data:`KERNEL_GRAD`): ``"textbook"`` (the derivation above, one XLA convolution per sum),
``"taps"`` (tap sums and a patch scatter, for few input channels) and ``"space_to_depth"``
(stride-1 convolutions on 2x2 pixel blocks, 4x the channels). ``algorithm="auto"`` (the
default) picks per sum by shape with per-backend thresholds (:data:`AUTO_THRESHOLDS`: the
CPU ones measured on CPUs, other backends run ``"textbook"``); ``algorithm="textbook"`` etc.
forces one, and :func:`conv_algorithm` says which ones a call runs. On CPU the bias gradient
is one more row of the kernel gradient where :data:`BIAS_ROW` lists its algorithm, elsewhere
a sum that folds rows (``funcnn._ops.reduce``). ``python -m funcnn.gradcheck`` checks every algorithm against the
autodiff twin and finite differences; BENCHMARKS.md has the timings.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from funcnn._ops.rules import hand_rule
from funcnn._ops.checks import check_precision
from funcnn._ops.geometry import Padding, conv_geometry, conv_macs, conv_output_size
from funcnn._ops.conv_algorithms import (  # noqa: F401 - the table and choice are public here too
    AUTO_THRESHOLDS,
    CONV_ALGORITHMS,
    FORWARD,
    FWD_DIMS,
    ConvPlan,
    conv_algorithm,
    fold_2x2,
    patch_matrix,
    s2d_sizes,
    space_to_depth_correlation,
    tap_slices,
)
from funcnn._ops.validation import _prepare_conv
from funcnn._ops.reduce import sum_leading

# The ops (same names as the twins in funcnn.reference.conv). The algorithm table and
# choice (CONV_ALGORITHMS, AUTO_THRESHOLDS, ConvPlan, conv_algorithm, conv_plan, INPUT_GRAD,
# KERNEL_GRAD, BIAS_ROW) are public attributes of this module too.
__all__ = ["conv1d", "conv2d", "conv_output_size", "conv_macs"]


# --------------------------------------------------------------------------------------
# The 2-D core: primal, _fwd, the backward sums per algorithm, _bwd, defvjp
# --------------------------------------------------------------------------------------


@partial(hand_rule, nondiff_argnums=(3, 4, 5, 6, 7))
def _conv2d_core(x, w, b, strides, pads, dilations, precision, plan):
    """conv2d on validated arrays; ``strides, pads, dilations`` are static tuples, ``precision``
    lax's (every convolution and dot of the forward and backward runs at it), ``plan`` the
    :class:`ConvPlan` naming the algorithm of each sum."""
    y = FORWARD[plan.forward](x, w, strides, pads, dilations, precision)
    return y if b is None else y + b


def _conv2d_fwd(x, w, b, strides, pads, dilations, precision, plan):
    # dx needs w, dw needs x; b is kept only to know whether a bias gradient is due.
    return _conv2d_core(x, w, b, strides, pads, dilations, precision, plan), (x, w, b)


def _input_grad_pads(in_sizes, k_sizes, strides, pads, dilations, out_sizes):
    """Padding ``(lo', hi')`` per spatial dim of the full convolution that gives dx (see
    :func:`_input_grad_textbook`)."""
    pads_t = []
    for n, k, s, d, (lo, hi), out in zip(in_sizes, k_sizes, strides, dilations, pads, out_sizes):
        k_eff = d * (k - 1) + 1
        r = n + lo + hi - k_eff - (out - 1) * s
        pads_t.append((k_eff - 1 - lo, k_eff - 1 - hi + r))
    return tuple(pads_t)


def _input_grad_textbook(g, w, in_sizes, strides, pads, dilations, precision):
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
    This is the seed's derivation, the ``"textbook"`` algorithm.
    """
    pads_t = _input_grad_pads(in_sizes, w.shape[:2], strides, pads, dilations, g.shape[1:3])
    w_flipped = w[::-1, ::-1]  # spatial flip: correlation -> convolution
    if strides == (1, 1):
        # In/out swap materialized (the kernel is tiny): the standard NHWC/HWIO layout is
        # XLA CPU's fastest convolution path; on 64->64 3x3 SAME it measured ~1.2-1.3x faster
        # than the "HWOI" spec below (BENCHMARKS.md).
        w_t, dims = jnp.swapaxes(w_flipped, 2, 3), FWD_DIMS
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


def _input_grad_taps(g, w, in_sizes, strides, pads, dilations, precision):
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
    for t, tap in enumerate(tap_slices((kh, kw), strides, dilations, out_sizes)):
        config = [(0, 0, 0)]
        for (start, stop, step), size in zip(tap, padded):
            config.append((start, size - stop, step - 1))
        config.append((0, 0, 0))
        part = lax.pad(dpatch[:, :, :, t], zero, config)
        dx_pad = part if dx_pad is None else dx_pad + part
    (lo_h, _), (lo_w, _) = pads
    return dx_pad[:, lo_h:lo_h + in_sizes[0], lo_w:lo_w + in_sizes[1]]


def _input_grad_space_to_depth(g, w, in_sizes, strides, pads, dilations, precision):
    """dL/dx on 2x2 pixel blocks: the textbook full convolution (flipped, in/out-swapped
    kernel) computed as :func:`funcnn._ops.conv_algorithms.space_to_depth_correlation` of ``g``
    (stride 1, dilation 1)."""
    pads_t = _input_grad_pads(in_sizes, w.shape[:2], strides, pads, dilations, g.shape[1:3])
    return space_to_depth_correlation(g, jnp.swapaxes(w[::-1, ::-1], 2, 3), pads_t, precision)


def _kernel_grad_textbook(x, g, k_sizes, strides, pads, dilations, precision):
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


def _kernel_grad_space_to_depth(x, g, k_sizes, strides, pads, dilations, precision):
    """dL/dw of :func:`funcnn._ops.conv_algorithms.space_to_depth_correlation`: the kernel gradient on 2x2 blocks.

    With x and g folded into blocks, dW2 = sum_{n,a,b} x2[n, a+p, b+q, :] (outer) g2[n, a, b, :]
    is one convolution with the batch contracted (as in :func:`_kernel_grad_textbook`, with 4x
    the channels on both sides), and dw[i, j, c, o] collects the entries of dW2 that hold
    w[i, j, c, o]: those with 2p + r - u = i and 2q + s - v = j (the transpose of building
    W2 from w). It measured about twice as fast as textbook on LeNet conv1 (1 -> 6, 5x5;
    BENCHMARKS.md).
    """
    kh, kw = k_sizes
    c_in, c_out = x.shape[-1], g.shape[-1]
    (ho, wo), (kh2, kw2), (ho2, wo2) = s2d_sizes(x.shape[1:3], k_sizes, pads)
    x2 = fold_2x2(x, pads, (ho2 + kh2 - 1, wo2 + kw2 - 1))
    g2 = fold_2x2(g, ((0, 0), (0, 0)), (ho2, wo2))
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


def _kernel_grad_patches(x, g, k_sizes, strides, pads, dilations, precision, *, bias=False):
    """dL/dw as one matmul: the patch matrix (:func:`funcnn._ops.conv_algorithms.patch_matrix`)
    transposed times the error map, batch and output positions contracted:

        dw[(p, q, c), o] = sum_{n, i, j} patches[n, i, j, (p, q, c)] g[n, i, j, o]

    With ``bias=True``, ``(dw, db)``: a column of ones appended to the patch matrix makes the
    bias gradient ``db[o] = sum_{n, i, j} g[n, i, j, o]`` the product's last row. XLA fuses the
    producer of ``g`` (the layer above's input gradient and the activation's derivative) into
    a separate sum and computes it a second time there; as a row of the matmul, ``g`` is read
    once, as the kernel gradient reads it (MNIST-1D's CNN under vmap; benchmarks/NOTES.md,
    part K).
    """
    pm = patch_matrix(x, k_sizes, strides, pads, dilations)
    if bias:
        pm = jnp.concatenate([pm, jnp.ones((*pm.shape[:-1], 1), pm.dtype)], axis=-1)
    dw = lax.dot_general(pm, g, (((0, 1, 2), (0, 1, 2)), ((), ())), precision=precision)
    if bias:
        return dw[:-1].reshape(*k_sizes, x.shape[-1], g.shape[-1]), dw[-1]
    return dw.reshape(*k_sizes, x.shape[-1], g.shape[-1])


#: dL/dx per algorithm name (:data:`funcnn._ops.conv_algorithms.CONV_ALGORITHMS`).
INPUT_GRAD = {
    "textbook": _input_grad_textbook,
    "taps": _input_grad_taps,
    "space_to_depth": _input_grad_space_to_depth,
}
#: dL/dw per algorithm name.
KERNEL_GRAD = {
    "textbook": _kernel_grad_textbook,
    "space_to_depth": _kernel_grad_space_to_depth,
    "patches": _kernel_grad_patches,
}


def _always_read_tap(in_sizes, k_sizes, strides, pads, dilations, out_sizes) -> tuple[int, int] | None:
    """A kernel tap ``(p, q)`` that reads a real (non-padding) input pixel at every output
    position, or None. Per spatial dim, tap ``t`` reads input index ``i*s + t*d - lo`` at
    output ``i``; it is real for every ``i < out`` iff ``t*d >= lo`` and
    ``(out-1)*s + t*d - lo <= n-1`` (VALID and SAME convolutions always have one)."""
    taps = []
    for n, k, s, d, (lo, _), out in zip(in_sizes, k_sizes, strides, dilations, pads, out_sizes):
        t = next((t for t in range(k) if t * d >= lo and (out - 1) * s + t * d - lo <= n - 1), None)
        if t is None:
            return None
        taps.append(t)
    return tuple(taps)


#: Per backend: the kernel-gradient algorithms that also give the bias gradient (see
#: :func:`_kernel_and_bias_grad`). CPU only: elsewhere a matmul's or convolution's default
#: precision could round the bias sum.
BIAS_ROW: dict[str, tuple[str, ...]] = {"cpu": ("patches", "space_to_depth")}


def _kernel_and_bias_grad(name, x, g, k_sizes, strides, pads, dilations, precision):
    """``(dw, db)`` from one kernel-gradient sum of algorithm ``name``, or None where
    :data:`BIAS_ROW` does not list it (or no tap reads real pixels everywhere).

    The bias gradient ``db[o] = sum_{n, i, j} g[n, i, j, o]`` is the kernel gradient of an
    extra input channel of ones, at a tap that reads a real pixel at every output position
    (:func:`_always_read_tap`; zero padding would drop terms elsewhere): the error map is then
    read once, by the kernel gradient. XLA fuses the producer of ``g`` (the layer above's
    input gradient and the activation's derivative) into every sum that reads it and
    computes it again in each; a separate bias sum was one more such recomputation
    (benchmarks/NOTES.md, parts K and L). ``"patches"`` appends a single column of ones to
    the patch matrix instead (:func:`_kernel_grad_patches`).
    """
    if name not in BIAS_ROW.get(jax.default_backend(), ()):
        return None
    if name == "patches":
        return _kernel_grad_patches(x, g, k_sizes, strides, pads, dilations, precision, bias=True)
    tap = _always_read_tap(x.shape[1:3], k_sizes, strides, pads, dilations, g.shape[1:3])
    if tap is None:
        return None
    xe = jnp.concatenate([x, jnp.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)
    dwe = KERNEL_GRAD[name](xe, g, k_sizes, strides, pads, dilations, precision)
    return dwe[:, :, :-1], dwe[tap[0], tap[1], -1]


# Backprop through y = x (*) w + b with error map g = dL/dy:
#   dL/dx = full_conv(dilate_s(g), flip(w)^T),  dL/dw = x_pad (*) dilate_s(g),  dL/db = sum_{n,i,j} g
def _conv2d_bwd(strides, pads, dilations, precision, plan, res, g):
    x, w, b = res
    dx = INPUT_GRAD[plan.input_grad](g, w, x.shape[1:3], strides, pads, dilations, precision)
    both = None if b is None else _kernel_and_bias_grad(
        plan.kernel_grad, x, g, w.shape[:2], strides, pads, dilations, precision)
    if both is not None:
        dw, db = both
        return dx.astype(x.dtype), dw.astype(w.dtype), db.astype(b.dtype)
    dw = KERNEL_GRAD[plan.kernel_grad](x, g, w.shape[:2], strides, pads, dilations, precision)
    # The bias error map is also the kernel gradient's input; see sum_leading on min_channels.
    db = None if b is None else sum_leading(g, min_channels=16).astype(b.dtype)
    return dx.astype(x.dtype), dw.astype(w.dtype), db


_conv2d_core.defvjp(_conv2d_fwd, _conv2d_bwd)


# --------------------------------------------------------------------------------------
# Public ops
# --------------------------------------------------------------------------------------


def conv_plan(
    x: Any,
    w: Any,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "VALID",
    dilation: int | Sequence[int] = 1,
    algorithm: str = "auto",
) -> ConvPlan:
    """The :class:`ConvPlan` :func:`conv1d` / :func:`conv2d` run for ``x`` and ``w`` (arrays or
    ``jax.ShapeDtypeStruct``; the rank of ``w`` picks 1-D or 2-D): the algorithm of each sum,
    with ``"auto"`` resolved as the op resolves it (on CPU, measured: :mod:`funcnn._ops.conv_autotune`)."""
    nd = len(w.shape) - 2
    strides, pads, dilations, _ = conv_geometry(
        "conv_plan", tuple(x.shape), tuple(w.shape), stride, padding, dilation, nd
    )
    lift = (1,) * (2 - nd)  # 1-D convolutions run as 2-D ones of height 1
    return conv_algorithm(
        lift + tuple(w.shape), lift + strides, lift + dilations, algorithm, fn="conv_plan",
        x_shape=tuple(x.shape[:1]) + lift + tuple(x.shape[1:]), pads=((0, 0),) * len(lift) + pads,
        dtype=x.dtype,
    )


def conv2d(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "VALID",
    dilation: int | Sequence[int] = 1,
    precision: Any = None,
    algorithm: str = "auto",
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
        algorithm: ``"auto"`` (per sum by shape and backend), ``"textbook"``, ``"taps"``,
            ``"patches"`` or ``"space_to_depth"`` (stride 1 and dilation 1 only); see :data:`CONV_ALGORITHMS`
            and :func:`conv_algorithm`. Every algorithm computes the same sums.

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
    plan = conv_algorithm(w.shape, strides, dilations, algorithm, fn="conv2d", x_shape=x.shape, pads=pads, dtype=x.dtype)
    return _conv2d_core(x, w, b, strides, pads, dilations, check_precision("conv2d", precision), plan)


def conv1d(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "VALID",
    dilation: int | Sequence[int] = 1,
    precision: Any = None,
    algorithm: str = "auto",
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
        algorithm: as :func:`conv2d` (chosen for the height-1 2-D kernel ``(1, K, C_in, C_out)``).

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
    plan = conv_algorithm(w[None].shape, (1,) + strides, (1,) + dilations, algorithm, fn="conv1d",
                          x_shape=x[:, None].shape, pads=((0, 0),) + pads, dtype=x.dtype)
    y = _conv2d_core(x[:, None], w[None], b, (1,) + strides, ((0, 0),) + pads, (1,) + dilations, precision, plan)
    return y[:, 0]


# On CPU, algorithm="auto" measures each new shape once (funcnn._ops.conv_autotune registers
# itself with conv_algorithm; it needs the backward sums above, hence the import here).
import funcnn._ops.conv_autotune  # noqa: E402, F401
