"""Convolution layers: ``Conv1D`` and ``Conv2D`` (channels-last), over :mod:`funcnn.conv` or its twin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import funcnn.conv as _conv
import funcnn.nn.initializers as _inits
import funcnn.reference.conv as _ref_conv
from funcnn._ops.checks import as_tuple, check_precision
from funcnn._ops.conv_algorithms import CONV_ALGORITHMS as _CONV_ALGORITHMS
from funcnn._ops.geometry import output_sizes, resolve_padding
from funcnn.nn._common import (
    _LAYOUT,
    _batch,
    _check_algorithm,
    _check_channels,
    _check_in_shape,
    _check_key,
    _check_padding_form,
    _check_tree,
    _check_x,
    _fmt,
    _int_setting,
    _op,
    _warn_if_channels_first,
)
from funcnn.nn.layer import Layer, check_rule, switches_rule


_CONV = {"hand": _conv, "autodiff": _ref_conv}


def _conv_layer(
    nd: int,
    *,
    out_channels: int,
    kernel: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    w_init: Any,
    b_init: Any,
    rule: str,
    dtype: Any,
    precision: Any = None,
    algorithm: str | None = None,
) -> Layer:
    cls = f"Conv{nd}D"
    shown: dict[str, Any] = {}
    if stride != 1:
        shown["stride"] = _int_setting(stride)
    if not (isinstance(padding, str) and padding.upper() == "VALID"):
        shown["padding"] = padding
    if dilation != 1:
        shown["dilation"] = _int_setting(dilation)
    if rule != "hand":
        shown["rule"] = rule
    if algorithm is not None:
        shown["algorithm"] = algorithm
    name = f"{cls}({_fmt([out_channels, _int_setting(kernel)], shown)})"
    if isinstance(out_channels, bool) or not isinstance(out_channels, (int, np.integer)) or out_channels < 1:
        raise ValueError(f"{cls}: out_channels must be a positive int, got {out_channels!r}")
    out_channels = int(out_channels)
    kernel_t = as_tuple(name, "kernel", kernel, nd)
    stride_t = as_tuple(name, "stride", stride, nd)
    dilation_t = as_tuple(name, "dilation", dilation, nd)
    _check_padding_form(name, padding, nd)
    check_rule(name, rule)
    precision = check_precision(name, precision)
    op_settings = {} if algorithm is None else {"algorithm": _check_algorithm(name, algorithm, rule, _CONV_ALGORITHMS)}
    w_spec, b_spec = w_init, b_init
    w_init = _inits.resolve(w_spec, _inits.lecun_normal, fn=name, arg="w_init")
    b_init = _inits.resolve(b_spec, _inits.zeros, fn=name, arg="b_init")
    conv = _op(_CONV, rule, f"conv{nd}d")
    layout = _LAYOUT[nd]

    def out_shape_of(shape):
        pads = resolve_padding(name, padding, shape[1:-1], kernel_t, stride_t, dilation_t)
        spatial = output_sizes(name, shape[1:-1], kernel_t, stride_t, pads, dilation_t)
        return (shape[0],) + spatial + (out_channels,)

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, (nd + 2,), layout)
        _warn_if_channels_first(name, shape, layout)
        out_shape = out_shape_of(shape)
        _check_key(name, key)
        k_w, k_b = jax.random.split(key)
        params = {
            "w": w_init(k_w, kernel_t + (shape[-1], out_channels), dtype),
            "b": b_init(k_b, (out_channels,), dtype),
        }
        return out_shape, params, ()

    def apply(params, state, x, *, key=None, train=False):
        x_shape = _check_x(name, x, (nd + 2,), layout)
        _check_tree(name, "params", params, {"w": None, "b": (out_channels,)})
        w = params["w"]
        if tuple(np.shape(w)[:nd]) != kernel_t or np.shape(w)[-1] != out_channels:
            raise ValueError(
                f"{name}: params['w'] has shape {tuple(np.shape(w))} but this layer expects "
                f"{kernel_t + ('C_in', out_channels)}; were these params made by another layer's init?"
            )
        _check_channels(name, x_shape, w.shape[-2], f"kernel {tuple(w.shape)}")
        y = conv(x, w, params["b"], stride=stride_t, padding=padding, dilation=dilation_t, precision=precision,
                 **op_settings)
        return y, state

    def macs(in_shape, out_shape):
        n = _batch(in_shape[0])
        w_shape = kernel_t + (in_shape[-1], out_channels)
        per_example = _conv.conv_macs(
            (1,) + tuple(in_shape[1:]), w_shape, stride_t, padding, dilation_t
        )
        return n * per_example

    return Layer(
        init,
        apply,
        name=name,
        kind="conv",
        rule=rule,
        config={
            "out_channels": out_channels,
            "kernel": kernel_t,
            "stride": stride_t,
            "padding": padding,
            "dilation": dilation_t,
            "w_init": w_init,
            "b_init": b_init,
            "dtype": jnp.dtype(dtype).name,
            "precision": precision,
            **({} if algorithm is None else {"algorithm": algorithm}),
        },
        macs=macs,
    )


@switches_rule
def Conv1D(
    out_channels: int,
    kernel: int | tuple[int],
    stride: int | tuple[int] = 1,
    padding: Any = "VALID",
    dilation: int | tuple[int] = 1,
    w_init: Callable[..., jax.Array] | None = None,
    b_init: Callable[..., jax.Array] | None = None,
    rule: str = "hand",
    *,
    dtype: Any = jnp.float32,
    precision: Any = None,
    algorithm: str | None = None,
) -> Layer:
    """1-D convolution (cross-correlation) layer, channels-last.

    Shapes: ``(N, W, C_in) -> (N, W', C_out)``, kernel ``w`` of shape ``(K, C_in, C_out)``,
    ``W' = floor((W + pad_lo + pad_hi - (dilation*(K-1)+1)) / stride) + 1``.
    ``padding``: ``"VALID"``, ``"SAME"``, an int, or one ``(lo, hi)`` pair in a sequence.
    Default ``w_init`` LeCun-normal (fan_in = K * C_in), ``b_init`` zeros; either may be an
    initializer, an initializer name or a :class:`funcnn.Choice` of names (as for :func:`Dense`).
    MACs: ``N * W' * K * C_in * C_out``. ``precision``: lax's, for every convolution and dot
    of the forward and backward (see :func:`funcnn.conv2d`). ``algorithm``: as
    :func:`Conv2D`.
    """
    return _conv_layer(1, **locals())  # every argument, by name


@switches_rule
def Conv2D(
    out_channels: int,
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: Any = "VALID",
    dilation: int | tuple[int, int] = 1,
    w_init: Callable[..., jax.Array] | None = None,
    b_init: Callable[..., jax.Array] | None = None,
    rule: str = "hand",
    *,
    dtype: Any = jnp.float32,
    precision: Any = None,
    algorithm: str | None = None,
) -> Layer:
    """2-D convolution (cross-correlation) layer, channels-last.

    Shapes: ``(N, H, W, C_in) -> (N, H', W', C_out)``, kernel ``w`` of shape
    ``(KH, KW, C_in, C_out)``; each output size as for :func:`Conv1D`.
    Default ``w_init`` LeCun-normal (fan_in = KH * KW * C_in), ``b_init`` zeros; either may be an
    initializer, an initializer name or a :class:`funcnn.Choice` of names (as for :func:`Dense`).
    MACs: ``N * H' * W' * KH * KW * C_in * C_out``. ``precision``: lax's, for every
    convolution and dot of the forward and backward (see :func:`funcnn.conv2d`).
    ``algorithm``: ``None`` (the op's default: ``"auto"`` for the hand rule, ``"plain"``
    ``lax.conv`` for the autodiff twin) or a name of :data:`funcnn.conv.CONV_ALGORITHMS` /
    ``"auto"``, passed to whichever op the rule picks. With ``rule="autodiff"`` a hand
    algorithm name makes the twin differentiate the hand op's own forward, so hand vs
    autodiff compares backward rules only.
    """
    return _conv_layer(2, **locals())  # every argument, by name
