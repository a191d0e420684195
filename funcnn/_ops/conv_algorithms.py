"""Convolution algorithms: the named table, the per-backend choice, and the forward sums.

A 2-D convolution is three sums: the forward ``y = x (*) w``, the input gradient ``dx`` (the
full convolution of the error map with the flipped kernel) and the kernel gradient ``dw``
(the correlation of the input with the error map). Each can be computed in more than one
order of additions. :data:`CONV_ALGORITHMS` names the ways funcnn knows:

================  ===============================  ==============================  ========================
name              forward                          dx                              dw
================  ===============================  ==============================  ========================
``"textbook"``    one XLA convolution              full convolution of the         correlation of the input
                                                   stride-dilated error map with   with the stride-dilated
                                                   the flipped kernel (the seed's  error map (batch
                                                   derivation)                     contracted)
``"taps"``        fused sum over kernel taps and   every patch's error ``g w^T``   textbook
                  input channels                   placed back tap by tap (col2im)
``"space_to_depth"`` a stride-1 correlation on 2x2  the same on the error map        the same on 2x2 blocks
                  pixel blocks (4x the channels)
``"patches"``     one matmul of the patch matrix   taps (``g w^T``, placed back)   one matmul: patch matrix^T
                  (im2col: the KH*KW tap slices                                    times the error map
                  side by side) with the kernel
================  ===============================  ==============================  ========================

``"space_to_depth"`` needs stride 1 and dilation 1. ``algorithm="auto"`` (the default of
:func:`funcnn.conv2d`) picks per sum by shape. On CPU it measures: the first time a shape
is traced, each sum is timed under every algorithm that computes it on this CPU and the
fastest is kept, in memory and in a JSON file per CPU model (:mod:`funcnn._ops.conv_autotune`;
``FUNCNN_CONV_AUTOTUNE=0`` turns it off). Without a measurement (turned off, or a call that
gives no input shape) the CPU uses fixed thresholds (:data:`AUTO_THRESHOLDS`); other
backends (GPU, TPU) run ``"textbook"``, one vendor convolution per sum.
:func:`conv_algorithm` says what a call will run.

This module holds the table, the choice and the forward sums; it carries no custom rule,
so the autodiff twins (``funcnn.reference.conv2d(..., algorithm=...)``) can differentiate
the very forward the hand rule runs. The backward sums live next to the rule in
:mod:`funcnn.conv`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["CONV_ALGORITHMS", "AUTO_THRESHOLDS", "ConvPlan", "conv_algorithm", "FORWARD"]


@dataclasses.dataclass(frozen=True)
class ConvPlan:
    """Which algorithm computes each of a convolution's three sums (names in :data:`FORWARD`,
    :data:`funcnn.conv.INPUT_GRAD`, :data:`funcnn.conv.KERNEL_GRAD`); ``name`` is what was asked."""

    name: str
    forward: str
    input_grad: str
    kernel_grad: str

    def __str__(self) -> str:
        parts = f"forward={self.forward}, dx={self.input_grad}, dw={self.kernel_grad}"
        return f"{self.name} ({parts})" if self.name == "auto" else self.name


#: name -> (forward, dx, dw) algorithm per sum; see the module docstring.
CONV_ALGORITHMS: Mapping[str, tuple[str, str, str]] = {
    "textbook": ("textbook", "textbook", "textbook"),
    "taps": ("taps", "taps", "textbook"),
    "space_to_depth": ("space_to_depth", "space_to_depth", "space_to_depth"),
    "patches": ("patches", "taps", "patches"),
}

#: Thresholds of ``algorithm="auto"`` per backend (``jax.default_backend()``); a backend not
#: listed runs ``"textbook"``. CPU, measured (BENCHMARKS.md, "Convolution algorithms"):
#: stride-1 convolutions with 3x3 or larger kernels and at most ``s2d_max_min_c`` channels on
#: one side run on 2x2 blocks (forward, dw, and dx when it is not "taps"); with at most
#: ``taps_max_c_in`` input channels any other forward is a tap sum; with at most
#: ``scatter_max_c_in`` input channels dx is placed back tap by tap. Strided, dilated and
#: 1-D convolutions (where 2x2 blocks never apply) whose patch holds at most
#: ``patches_max_k`` values (KH*KW*C_in), the forward and dw are patch-matrix matmuls and dx
#: is placed back tap by tap: under vmap over grid members these are batched matmuls, where
#: XLA's convolutions become grouped convolutions (MNIST-1D's CNN, 33 members: 3-9x faster
#: per layer; BENCHMARKS.md).
AUTO_THRESHOLDS: dict[str, dict[str, int]] = {
    "cpu": {"s2d_max_min_c": 8, "taps_max_c_in": 4, "scatter_max_c_in": 4, "patches_max_k": 128},
}


def _space_to_depth_applies(strides, dilations) -> bool:
    return tuple(strides) == (1,) * len(strides) and tuple(dilations) == (1,) * len(dilations)


#: Set by :mod:`funcnn._ops.conv_autotune`: ``(key) -> (forward, dx, dw)`` or ``None`` (no
#: measurement: use the thresholds). ``key`` is :func:`autotune_key`'s.
AUTOTUNER: list[Any] = [None]


def autotune_key(x_shape, w_shape, strides, pads, dilations, dtype) -> str:
    """The shape key of a measured choice (one 2-D convolution, NHWC / HWIO)."""
    return (f"x{tuple(x_shape)} w{tuple(w_shape)} s{tuple(strides)} p{tuple(map(tuple, pads))} "
            f"d{tuple(dilations)} {jnp.dtype(dtype).name}")


def conv_algorithm(
    w_shape: tuple[int, ...],
    strides: tuple[int, ...] = (1, 1),
    dilations: tuple[int, ...] = (1, 1),
    algorithm: Any = "auto",
    *,
    backend: str | None = None,
    fn: str = "conv2d",
    x_shape: tuple[int, ...] | None = None,
    pads: tuple[tuple[int, int], ...] | None = None,
    dtype: Any = None,
) -> ConvPlan:
    """The :class:`ConvPlan` a 2-D convolution with kernel ``w_shape`` (KH, KW, C_in, C_out) runs.

    Args:
        w_shape: the kernel's shape (a 1-D convolution's kernel ``(K, C_in, C_out)`` runs as
            ``(1, K, C_in, C_out)``).
        strides, dilations: per spatial dim.
        algorithm: ``"auto"`` or a name in :data:`CONV_ALGORITHMS`.
        backend: whose thresholds ``"auto"`` uses; default ``jax.default_backend()``.
        fn: the op named in errors.
        x_shape, pads, dtype: the input's 2-D shape ``(N, H, W, C_in)``, the resolved padding
            and the dtype; given, ``"auto"`` on CPU uses (or makes) the autotuned choice
            for exactly this convolution.

    Raises:
        ValueError: an unknown name, or ``"space_to_depth"`` with a stride or dilation > 1.
    """
    names = ("auto", *CONV_ALGORITHMS)
    if not isinstance(algorithm, str) or algorithm not in names:
        raise ValueError(f"{fn}: algorithm must be one of {names}, got {algorithm!r}")
    if len(w_shape) == 3:
        w_shape = (1, *w_shape)
    kh, kw, c_in, c_out = w_shape
    s2d_ok = _space_to_depth_applies(strides, dilations)
    if algorithm != "auto":
        if algorithm == "space_to_depth" and not s2d_ok:
            raise ValueError(
                f"{fn}: algorithm 'space_to_depth' needs stride 1 and dilation 1, "
                f"got stride={tuple(strides)}, dilation={tuple(dilations)}"
            )
        return ConvPlan(algorithm, *CONV_ALGORITHMS[algorithm])
    backend = backend or jax.default_backend()
    t = AUTO_THRESHOLDS.get(backend)
    if t is None:
        return ConvPlan("auto", *CONV_ALGORITHMS["textbook"])
    tuner = AUTOTUNER[0]
    if backend == "cpu" and tuner is not None and x_shape is not None and pads is not None:
        key = autotune_key(x_shape, w_shape, strides, pads, dilations, dtype or jnp.float32)
        parts = tuner(key, tuple(x_shape), tuple(w_shape), tuple(strides), tuple(pads), tuple(dilations),
                      jnp.dtype(dtype or jnp.float32))
        if parts is not None:
            return ConvPlan("auto", *parts)
    return ConvPlan("auto", *threshold_parts(w_shape, strides, dilations, t))


def threshold_parts(w_shape, strides, dilations, t: dict | None = None) -> tuple[str, str, str]:
    """``(forward, dx, dw)`` algorithms the fixed thresholds ``t`` (default: CPU's) pick."""
    t = AUTO_THRESHOLDS["cpu"] if t is None else t
    kh, kw, c_in, c_out = w_shape if len(w_shape) == 4 else (1, *w_shape)
    s2d = _space_to_depth_applies(strides, dilations) and kh >= 3 and kw >= 3 and min(c_in, c_out) <= t["s2d_max_min_c"]
    # measured where 2x2 blocks never apply (so never with s2d): strided, dilated or 1-D
    patches = (kh == 1 or kw == 1 or not _space_to_depth_applies(strides, dilations)) \
        and kh * kw * c_in <= t.get("patches_max_k", 0)
    forward = ("space_to_depth" if s2d else "patches" if patches
               else "taps" if c_in <= t["taps_max_c_in"] else "textbook")
    dx = "taps" if c_in <= t["scatter_max_c_in"] or patches else "space_to_depth" if s2d else "textbook"
    return forward, dx, "space_to_depth" if s2d else "patches" if patches else "textbook"


def forward_textbook(x, w, strides, pads, dilations, precision):
    """The forward as one XLA convolution (NHWC input, HWIO kernel)."""
    return lax.conv_general_dilated(
        x, w, window_strides=strides, padding=pads, rhs_dilation=dilations, dimension_numbers=FWD_DIMS,
        precision=precision,
    )


def forward_space_to_depth(x, w, strides, pads, dilations, precision):
    """The forward on 2x2 pixel blocks (stride 1, dilation 1): :func:`space_to_depth_correlation`."""
    return space_to_depth_correlation(x, w, pads, precision)


# Dimension numbers of the forward: input NHWC, kernel HWIO, output NHWC.
# Dimension numbers of the forward: input NHWC, kernel HWIO, output NHWC.
FWD_DIMS = ("NHWC", "HWIO", "NHWC")


def _in_batch_halves(f, x):
    """``f(x)`` computed as ``f`` on the two halves of ``x``'s batch, in a 2-step loop.

    ``f`` maps a batch ``(B, ...)`` to ``(B, ...)`` example by example (an odd batch gets one
    zero example, dropped after). The loop boundary keeps ``f``'s fused sums apart from the
    ops that consume the result, which XLA CPU would otherwise fuse with them: fused with
    tanh, the tap-sum loop below loses its vectorization (LeNet conv1's forward measured
    about 6x slower fused; BENCHMARKS.md). The price is one copy of the result.
    """
    n = x.shape[0]
    if n % 2:
        x = jnp.pad(x, ((0, 1),) + ((0, 0),) * (x.ndim - 1))
    _, y = lax.scan(lambda _, xh: (None, f(xh)), None, x.reshape(2, -1, *x.shape[1:]))
    return y.reshape(-1, *y.shape[2:])[:n]


def forward_taps(x, w, strides, pads, dilations, precision=None):
    """The forward as a sum over kernel taps and input channels, for few input channels.

    Elementwise multiplies and adds: exact at any ``precision`` (accepted for a uniform
    signature, not used).

    y[n, i, j, :] = sum_{p, q, c} x_pad[n, i*sh + p*dh, j*sw + q*dw, c] * w[p, q, c, :]

    Each term is a strided slice of the padded input times one kernel row, broadcast over
    the output channels; XLA fuses all KH*KW*C_in terms into one pass over the output. With
    1-4 input channels a convolution kernel has a contraction of only KH*KW*C_in and
    vectorizes badly; this pass measured 2-8x faster on LeNet's and CIFAR's first layers
    (BENCHMARKS.md).
    """
    kh, kw, c_in, _ = w.shape
    x_pad, taps = padded_taps(x, (kh, kw), strides, pads, dilations)

    def tap_sum(xp):
        y = None
        for t, ((h0, h1, hs), (v0, v1, vs)) in enumerate(taps):
            xs = xp[:, h0:h1:hs, v0:v1:vs]
            for c in range(c_in):
                term = xs[..., c:c + 1] * w[t // kw, t % kw, c]
                y = term if y is None else y + term
        return y

    return _in_batch_halves(tap_sum, x_pad)


def space_to_depth_correlation(x, w, pads, precision):
    """``y = x_pad (*) w`` (stride 1, dilation 1) as a correlation on 2x2 pixel blocks.

    Output pixel (2a+u, 2b+v) reads input rows 2a+u+i (i < KH), i.e. rows 2(a+p)+r of the
    blocks a+p with u+i = 2p+r. Folding each 2x2 block of the input into its channels
    (``(N, H/2, W/2, 4 C_in)``, block offsets (r, s) major) and each 2x2 block of the output
    into its channels gives a stride-1 correlation with a ceil((K+1)/2)-tap kernel

        W2[p, q, (r, s, c), (u, v, o)] = w[2p + r - u, 2q + s - v, c, o]   (0 outside w)

    with 4x the channels on both sides. It does ~1.4x (5x5) to 1.8x (3x3) the multiplies,
    but XLA's CPU convolution runs 4x wider channel dimensions so much faster that, with
    at most 8 channels on one side, it measured 1.3-4x faster (LeNet conv2's forward and
    dx; BENCHMARKS.md). The padding ``pads`` may be
    negative (a crop), as in :func:`lax.pad`.
    """
    kh, kw, c_in, c_out = w.shape
    (ho, wo), (kh2, kw2), (ho2, wo2) = s2d_sizes(x.shape[1:3], (kh, kw), pads)
    x2 = fold_2x2(x, pads, (ho2 + kh2 - 1, wo2 + kw2 - 1))
    shifted = [
        jnp.pad(w, ((u, 2 * kh2 - kh - u), (v, 2 * kw2 - kw - v), (0, 0), (0, 0))).reshape(kh2, 2, kw2, 2, c_in, c_out)
        for u in (0, 1) for v in (0, 1)
    ]
    w2 = jnp.stack(shifted, axis=-2)  # (p, r, q, s, c, (u, v), o)
    w2 = w2.transpose(0, 2, 1, 3, 4, 5, 6).reshape(kh2, kw2, 4 * c_in, 4 * c_out)
    y2 = lax.conv_general_dilated(x2, w2, (1, 1), "VALID", dimension_numbers=FWD_DIMS, precision=precision)
    return unfold_2x2(y2)[:, :ho, :wo]


def s2d_sizes(in_sizes, k_sizes, pads):
    """Output sizes, kernel taps in blocks ceil((K+1)/2), and output blocks, per spatial dim."""
    outs = tuple(n + lo + hi - k + 1 for n, k, (lo, hi) in zip(in_sizes, k_sizes, pads))
    k2 = tuple((k + 2) // 2 for k in k_sizes)
    o2 = tuple(-(-o // 2) for o in outs)
    return outs, k2, o2


def fold_2x2(a, pads, blocks):
    """``a`` (N, H, W, C) padded by ``pads`` at the start (the end padded or cropped to
    exactly ``2 * blocks``), each 2x2 pixel block folded into the channels: (N, bh, bw, 4C)
    with block offsets (r, s) major."""
    n, h, wd, c = a.shape
    (bh, bw), (lo_h, _), (lo_w, _) = blocks, *pads
    config = ((0, 0, 0), (lo_h, 2 * bh - h - lo_h, 0), (lo_w, 2 * bw - wd - lo_w, 0), (0, 0, 0))
    a = lax.pad(a, jnp.zeros((), a.dtype), config)
    return a.reshape(n, bh, 2, bw, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, bh, bw, 4 * c)


def unfold_2x2(a2):
    """Inverse of the fold: (N, bh, bw, 4C) -> (N, 2 bh, 2 bw, C)."""
    n, bh, bw, c4 = a2.shape
    a = a2.reshape(n, bh, bw, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
    return a.reshape(n, 2 * bh, 2 * bw, c4 // 4)


def tap_slices(k_sizes, strides, dilations, out_sizes):
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


def padded_taps(x, k_sizes, strides, pads, dilations):
    """``x`` zero-padded by ``pads`` and the :func:`tap_slices` of its output positions."""
    x_pad = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out_sizes = tuple(
        (m - d * (k - 1) - 1) // s + 1 for m, k, s, d in zip(x_pad.shape[1:3], k_sizes, strides, dilations)
    )
    return x_pad, tap_slices(k_sizes, strides, dilations, out_sizes)


def patch_matrix(x, k_sizes, strides, pads, dilations):
    """The patches of the padded input side by side (im2col): ``(N, H', W', KH*KW*C_in)``,
    entry ``[n, i, j, (p, q, c)] = x_pad[n, i*sh + p*dh, j*sw + q*dw, c]``, taps major, so
    ``y = patches @ w.reshape(KH*KW*C_in, C_out)``."""
    x_pad, taps = padded_taps(x, k_sizes, strides, pads, dilations)
    cols = [x_pad[:, h0:h1:hs, v0:v1:vs] for (h0, h1, hs), (v0, v1, vs) in taps]
    return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def forward_patches(x, w, strides, pads, dilations, precision):
    """The forward as one matmul of the patch matrix with the kernel:

        y[n, i, j, o] = sum_{(p, q, c)} patches[n, i, j, (p, q, c)] w[p, q, c, o]

    The patch matrix costs KH*KW copies of the input; in exchange the sum is a plain matmul,
    which vmap over grid members turns into a batched matmul (an XLA convolution with a
    member-batched kernel becomes a grouped convolution, several times slower on CPU)."""
    kh, kw, c_in, c_out = w.shape
    pm = patch_matrix(x, (kh, kw), strides, pads, dilations)
    return lax.dot_general(pm, w.reshape(kh * kw * c_in, c_out), (((3,), (0,)), ((), ())), precision=precision)


#: The forward sum per algorithm name: ``(x, w, strides, pads, dilations, precision) -> y``.
#: The tap sum is elementwise (exact at any precision; ``precision`` does not apply).
FORWARD = {
    "textbook": forward_textbook,
    "taps": forward_taps,
    "space_to_depth": forward_space_to_depth,
    "patches": forward_patches,
}
