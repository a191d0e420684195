"""Autodiff twins of funcnn.conv: the same forwards through lax.conv_general_dilated, no custom rule.

Validation (ranks, channels, bias, padding resolution; :mod:`funcnn._ops.validation`) is shared with the hand-ruled
version, so both accept and reject exactly the same inputs; ``jax.grad`` differentiates
these forwards with XLA's generic convolution transpose rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from jax import lax

from funcnn._ops.checks import check_precision
from funcnn._ops.geometry import Padding, conv_macs, conv_output_size
from funcnn._ops.conv_algorithms import FORWARD, conv_algorithm
from funcnn._ops.validation import _prepare_conv

__all__ = ["conv1d", "conv2d", "conv_output_size", "conv_macs"]


# Channels-last layouts per number of spatial dims: (input, kernel, output).
_DIMENSION_NUMBERS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def _conv_twin(fn, ndim, x, w, b, stride, padding, dilation, precision, algorithm):
    """The forward both twins share: validate, then one ``lax.conv_general_dilated``
    (``algorithm="plain"``) or the forward sum of the hand op's algorithm, and the bias."""
    x, w, b, strides, pads, dilations = _prepare_conv(fn, x, w, b, stride, padding, dilation, ndim)
    precision = check_precision(fn, precision)
    if isinstance(algorithm, str) and algorithm == "plain":
        y = lax.conv_general_dilated(
            x, w, window_strides=strides, padding=pads, rhs_dilation=dilations,
            dimension_numbers=_DIMENSION_NUMBERS[ndim], precision=precision,
        )
        return y if b is None else y + b
    if ndim == 1:  # as the hand op: the 2-D forward on a height-1 image
        x, w, strides, pads, dilations = x[:, None], w[None], (1, *strides), ((0, 0), *pads), (1, *dilations)
    try:
        plan = conv_algorithm(w.shape, strides, dilations, algorithm, fn=fn, x_shape=x.shape, pads=pads, dtype=x.dtype)
    except ValueError as e:
        raise ValueError(f"{e} (or 'plain', the twin's own forward)") from None
    y = FORWARD[plan.forward](x, w, strides, pads, dilations, precision)
    y = y[:, 0] if ndim == 1 else y
    return y if b is None else y + b


def conv2d(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "VALID",
    dilation: int | Sequence[int] = 1,
    precision: Any = None,
    algorithm: str = "plain",
) -> jax.Array:
    """Autodiff twin of :func:`funcnn.conv.conv2d`: x (N, H, W, C_in), w (KH, KW, C_in, C_out) -> (N, H', W', C_out).

    ``algorithm="plain"`` (default): one ``lax.conv_general_dilated``. Any name the hand op
    takes (``"auto"``, ``"textbook"``, ``"taps"``, ``"space_to_depth"``) runs that algorithm's
    forward sum instead, so hand rule and autodiff share the forward and a comparison
    isolates the backward rule.
    """
    return _conv_twin("conv2d", 2, x, w, b, stride, padding, dilation, precision, algorithm)


def conv1d(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Padding = "VALID",
    dilation: int | Sequence[int] = 1,
    precision: Any = None,
    algorithm: str = "plain",
) -> jax.Array:
    """Autodiff twin of :func:`funcnn.conv.conv1d`: x (N, W, C_in), w (K, C_in, C_out) -> (N, W', C_out).

    ``algorithm``: as :func:`conv2d` (``"plain"`` or a hand algorithm's forward).
    """
    return _conv_twin("conv1d", 1, x, w, b, stride, padding, dilation, precision, algorithm)
