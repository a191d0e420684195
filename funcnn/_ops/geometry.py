"""Window geometry shared by convolution and pooling: padding resolution and output sizes.

One piece of code per idea: every op that slides a window over spatial dims resolves its
padding and predicts its output size here.

Padding forms accepted everywhere:

- ``"VALID"``: no padding; output = floor((n - k_eff) / stride) + 1.
- ``"SAME"``: output = ceil(n / stride); total padding max((out - 1) * stride + k_eff - n, 0),
  split with the extra element on the high side (TensorFlow/XLA convention).
- an int ``p``: ``p`` on both sides of every spatial dim.
- a sequence of ``(lo, hi)`` pairs, one per spatial dim.

``k_eff = dilation * (k - 1) + 1`` is the extent of a dilated window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Union

import numpy as np

from funcnn._ops.checks import as_tuple, check_float, check_ndim, shape_of

Padding = Union[str, int, Sequence[tuple[int, int]]]


def effective_size(k: int, dilation: int = 1) -> int:
    """Extent of a window of ``k`` taps spaced ``dilation`` apart: ``dilation*(k-1)+1``."""
    return dilation * (k - 1) + 1


def resolve_padding(
    fn: str,
    padding: Any,
    in_sizes: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int] | None = None,
) -> tuple[tuple[int, int], ...]:
    """Turn any accepted padding form into explicit ``(lo, hi)`` pairs, one per spatial dim.

    Raises:
        ValueError: unknown padding string, wrong number of pairs, negative padding.
        TypeError: padding of an unsupported type.
    """
    n = len(in_sizes)
    dilations = tuple(dilations) if dilations is not None else (1,) * n
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0),) * n
        if mode == "SAME":
            pads = []
            for size, k, s, d in zip(in_sizes, window, strides, dilations):
                out = -(-size // s)
                total = max((out - 1) * s + effective_size(k, d) - size, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            f"{fn}: unknown padding {padding!r}; expected 'VALID', 'SAME', an int, "
            f"or a sequence of {n} (lo, hi) pairs"
        )
    if isinstance(padding, (bool, np.bool_)):
        raise TypeError(f"{fn}: padding must be 'VALID', 'SAME', an int or (lo, hi) pairs, got {padding!r}")
    if isinstance(padding, (int, np.integer)):
        if padding < 0:
            raise ValueError(f"{fn}: padding must be >= 0, got {padding}")
        return ((int(padding), int(padding)),) * n
    if isinstance(padding, Sequence):
        pairs = tuple(padding)
        if len(pairs) != n or not all(
            isinstance(p, Sequence) and len(p) == 2 and all(isinstance(v, (int, np.integer)) for v in p)
            for p in pairs
        ):
            raise ValueError(
                f"{fn}: explicit padding must be {n} (lo, hi) pair(s) of ints, one per spatial "
                f"dim, got {padding!r}"
            )
        out = tuple((int(lo), int(hi)) for lo, hi in pairs)
        if any(v < 0 for p in out for v in p):
            raise ValueError(f"{fn}: padding must be >= 0, got {padding!r}")
        return out
    raise TypeError(f"{fn}: padding must be 'VALID', 'SAME', an int or (lo, hi) pairs, got {padding!r}")


def output_size(n: int, k: int, stride: int, pad: tuple[int, int], dilation: int = 1) -> int:
    """Output length of one spatial dim given explicit padding: floor((n+lo+hi-k_eff)/s)+1."""
    return (n + pad[0] + pad[1] - effective_size(k, dilation)) // stride + 1


def output_sizes(
    fn: str,
    in_sizes: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilations: Sequence[int] | None = None,
    *,
    what: str = "kernel",
) -> tuple[int, ...]:
    """Output sizes per spatial dim; ValueError if a window does not fit the padded input."""
    dilations = tuple(dilations) if dilations is not None else (1,) * len(in_sizes)
    outs = []
    for i, (size, k, s, p, d) in enumerate(zip(in_sizes, window, strides, pads, dilations)):
        k_eff = effective_size(k, d)
        padded = size + p[0] + p[1]
        if k_eff > padded:
            raise ValueError(
                f"{fn}: {what} of effective size {k_eff} (size {k}, dilation {d}) is larger than "
                f"the padded input {padded} (input {size} + padding {p}) in spatial dim {i}"
            )
        outs.append(output_size(size, k, s, p, d))
    return tuple(outs)


_CONV_LAYOUTS = {1: ("(N, W, C_in)", "(K, C_in, C_out)"), 2: ("(N, H, W, C_in)", "(KH, KW, C_in, C_out)")}


def _check_shape(fn: str, name: str, shape: Any) -> tuple[int, ...]:
    """A shape given as a sequence of non-negative ints, as a tuple."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"{fn}: {name} must be a tuple of ints, got {shape!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in shape) or any(v < 0 for v in shape):
        raise ValueError(f"{fn}: {name} must be a tuple of non-negative ints, got {tuple(shape)!r}")
    return tuple(shape)


def conv_geometry(
    fn: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: Any,
    padding: Any,
    dilation: Any,
    nd: int,
) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...], tuple[int, ...], tuple[int, ...]]:
    """Validate an ``nd``-D conv's shapes and settings.

    Returns ``(strides, pads, dilations, out_sizes)``, each with one entry per spatial dim.
    Raises ValueError/TypeError naming ``fn``, the argument and the shapes that arrived.
    """
    x_layout, w_layout = _CONV_LAYOUTS[nd]
    if len(x_shape) != nd + 2:
        raise ValueError(
            f"{fn}: x must have rank {nd + 2} {x_layout}, got rank {len(x_shape)} (x.shape={x_shape})"
        )
    if len(w_shape) != nd + 2:
        raise ValueError(
            f"{fn}: w must have rank {nd + 2} {w_layout}, got rank {len(w_shape)} (w.shape={w_shape})"
        )
    if x_shape[-1] != w_shape[-2]:
        raise ValueError(
            f"{fn}: x has {x_shape[-1]} channels but w expects {w_shape[-2]} "
            f"(x.shape={x_shape}, w.shape={w_shape})"
        )
    window = tuple(w_shape[:nd])
    if any(k < 1 for k in window):
        raise ValueError(f"{fn}: w's spatial (kernel) sizes must be >= 1, got w.shape={w_shape}")
    strides = as_tuple(fn, "stride", stride, nd, minimum=1)
    dilations = as_tuple(fn, "dilation", dilation, nd, minimum=1)
    in_sizes = tuple(x_shape[1:-1])
    pads = resolve_padding(fn, padding, in_sizes, window, strides, dilations)
    try:
        outs = output_sizes(fn, in_sizes, window, strides, pads, dilations, what="kernel")
    except ValueError as e:
        raise ValueError(f"{e} (x.shape={x_shape}, w.shape={w_shape})") from None
    return strides, pads, dilations, outs


def conv_output_size(n: int, k: int, stride: int = 1, padding: Padding = "VALID", dilation: int = 1) -> int:
    """Output length of one spatial dim of a convolution.

    Args:
        n: input length (>= 1).
        k: kernel length (>= 1).
        stride: step between windows (>= 1).
        padding: ``"VALID"``, ``"SAME"``, an int (both sides) or one ``(lo, hi)`` pair
            (``[(lo, hi)]`` is accepted too).
        dilation: spacing between kernel taps (>= 1).

    Returns:
        ``floor((n + lo + hi - k_eff) / stride) + 1`` with ``k_eff = dilation * (k - 1) + 1``;
        ``"SAME"`` gives ``ceil(n / stride)`` and ``"VALID"`` ``floor((n - k_eff) / stride) + 1``.

    Raises:
        ValueError: non-positive sizes/stride/dilation, unknown padding, or a (dilated)
            kernel larger than the padded input.
    """
    fn = "conv_output_size"
    (n_,) = as_tuple(fn, "n", n, 1, minimum=1)
    (k_,) = as_tuple(fn, "k", k, 1, minimum=1)
    strides = as_tuple(fn, "stride", stride, 1, minimum=1)
    dilations = as_tuple(fn, "dilation", dilation, 1, minimum=1)
    # A bare (lo, hi) pair is the natural way to write one dim's padding.
    if (
        isinstance(padding, Sequence)
        and not isinstance(padding, str)
        and len(padding) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in padding)
    ):
        padding = (tuple(padding),)
    pads = resolve_padding(fn, padding, (n_,), (k_,), strides, dilations)
    (out,) = output_sizes(fn, (n_,), (k_,), strides, pads, dilations, what="kernel")
    return out


def conv_macs(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Padding = "VALID",
    dilation: int | Sequence[int] = 1,
) -> int:
    """Multiply-accumulate count of one forward convolution, for the whole batch.

    Works for 1-D (``x_shape=(N, W, C_in)``, ``w_shape=(K, C_in, C_out)``) and 2-D
    (``(N, H, W, C_in)``, ``(KH, KW, C_in, C_out)``); the rank of ``w_shape`` decides.

    Returns:
        ``N * prod(out spatial) * prod(kernel spatial) * C_in * C_out`` (direct convolution;
        padding taps are counted, bias adds are not). FLOPs are ``2 *`` this.
    """
    fn = "conv_macs"
    x_shape = _check_shape(fn, "x_shape", x_shape)
    w_shape = _check_shape(fn, "w_shape", w_shape)
    nd = len(w_shape) - 2
    if nd not in _CONV_LAYOUTS:
        raise ValueError(
            f"{fn}: w_shape must have rank 3 (K, C_in, C_out) or 4 (KH, KW, C_in, C_out), "
            f"got rank {len(w_shape)} (w_shape={w_shape})"
        )
    _, _, _, outs = conv_geometry(fn, x_shape, w_shape, stride, padding, dilation, nd)
    return x_shape[0] * math.prod(outs) * math.prod(w_shape)


_POOL_LAYOUTS = {1: "(N, W, C)", 2: "(N, H, W, C)"}


class PoolGeometry(NamedTuple):
    """Static, hashable 2-D pooling settings (1-D pools carry a unit leading spatial dim).

    ``pads`` are explicit ``(lo, hi)`` pairs; ``in_sizes``/``out_sizes`` are ``(H, W)`` and
    ``(H', W')``. It is passed to the ``custom_vjp`` primals as a ``nondiff_argnums`` entry.
    """

    window: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    in_sizes: tuple[int, int]
    out_sizes: tuple[int, int]

    @property
    def tiles(self) -> bool:
        """True when the windows tile the input (stride == window): the reshape path."""
        return self.strides == self.window

    @property
    def padded(self) -> bool:
        return any(p != (0, 0) for p in self.pads)


def pool_geometry(fn: str, x, window, stride, padding: Padding, ndim: int) -> PoolGeometry:
    """Validate a pooling call (before any array work) and resolve its geometry.

    Shared with :mod:`funcnn.reference.pooling`. Raises ``TypeError`` for non-float ``x`` or
    malformed settings and ``ValueError`` for a wrong rank, non-positive window/stride, an
    unknown padding or a window larger than the padded input; messages name ``fn``.
    """
    check_float(fn, "x", x)
    check_ndim(fn, "x", x, ndim + 2, _POOL_LAYOUTS[ndim])
    win = as_tuple(fn, "window", window, ndim)
    strides = win if stride is None else as_tuple(fn, "stride", stride, ndim)
    in_sizes = shape_of(x)[1:-1]
    pads = resolve_padding(fn, padding, in_sizes, win, strides)
    outs = output_sizes(fn, in_sizes, win, strides, pads, what="window")
    for i, (n, k, s, (lo, hi), out) in enumerate(zip(in_sizes, win, strides, pads, outs)):
        start = np.arange(out) * s  # window starts in padded coordinates
        overlap = np.minimum(start + k, lo + n) - np.maximum(start, lo)
        if np.any(overlap <= 0):
            raise ValueError(
                f"{fn}: padding {(lo, hi)} in spatial dim {i} leaves {int(np.sum(overlap <= 0))} window(s) "
                f"entirely in the padding (window {k}, stride {s}, input {n}); such a window has no input "
                f"to pool: use padding < window on each side (x.shape={tuple(shape_of(x))})"
            )
    lift = 2 - ndim  # 1-D pools run as 2-D pools over a unit height
    return PoolGeometry(
        window=(1,) * lift + win,
        strides=(1,) * lift + strides,
        pads=((0, 0),) * lift + pads,
        in_sizes=(1,) * lift + tuple(in_sizes),
        out_sizes=(1,) * lift + outs,
    )


def check_count_include_pad(fn: str, value) -> None:
    """``count_include_pad`` is a static switch: it must be a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: count_include_pad must be a bool, got {value!r}")


def window_counts(geo: PoolGeometry) -> np.ndarray:
    """Number of non-padding elements in each window, as a static ``(H', W')`` array."""
    per_dim = []
    for n, k, s, (lo, _), out in zip(geo.in_sizes, geo.window, geo.strides, geo.pads, geo.out_sizes):
        start = np.arange(out) * s  # window starts in padded coordinates
        per_dim.append(np.clip(np.minimum(start + k, lo + n) - np.maximum(start, lo), 0, None))
    return np.outer(per_dim[0], per_dim[1])
