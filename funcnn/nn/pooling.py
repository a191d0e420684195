"""Pooling layers: max and average, 1-D and 2-D, over :mod:`funcnn.pooling` or its twin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import funcnn.pooling as _pool
import funcnn.reference.pooling as _ref_pool
from funcnn._ops.checks import as_tuple
from funcnn._ops.geometry import output_sizes, resolve_padding
from funcnn._ops.pool_algorithms import POOL_ALGORITHMS as _POOL_ALGORITHMS
from funcnn.nn._common import _LAYOUT, _check_algorithm, _check_in_shape, _check_padding_form, _check_x, _fmt, _int_setting, _op
from funcnn.nn.layer import Layer, check_rule, switches_rule


_POOLING = {"hand": _pool, "autodiff": _ref_pool}


def _pool_layer(
    kind: str, nd: int, *, window: Any, stride: Any, padding: Any, count_include_pad: bool = True, rule: str,
    algorithm: str | None = None,
) -> Layer:
    cls = f"{'Max' if kind == 'max' else 'Avg'}Pool{nd}D"
    shown: dict[str, Any] = {}
    if stride is not None:
        shown["stride"] = _int_setting(stride)
    if not (isinstance(padding, str) and padding.upper() == "VALID"):
        shown["padding"] = padding
    if kind == "avg" and count_include_pad is not True:
        shown["count_include_pad"] = count_include_pad
    if rule != "hand":
        shown["rule"] = rule
    if algorithm is not None:
        shown["algorithm"] = algorithm
    name = f"{cls}({_fmt([_int_setting(window)], shown)})"
    window_t = as_tuple(name, "window", window, nd)
    stride_t = window_t if stride is None else as_tuple(name, "stride", stride, nd)
    _check_padding_form(name, padding, nd)
    if kind == "avg" and not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(f"{name}: count_include_pad must be a bool, got {count_include_pad!r}")
    check_rule(name, rule)
    op_settings = {} if algorithm is None else {"algorithm": _check_algorithm(name, algorithm, rule, _POOL_ALGORITHMS)}
    pool = _op(_POOLING, rule, f"{kind}_pool{nd}d")
    layout = _LAYOUT[nd]

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, (nd + 2,), layout)
        pads = resolve_padding(name, padding, shape[1:-1], window_t, stride_t)
        spatial = output_sizes(name, shape[1:-1], window_t, stride_t, pads, what="window")
        return (shape[0],) + spatial + (shape[-1],), (), ()

    def apply(params, state, x, *, key=None, train=False):
        _check_x(name, x, (nd + 2,), layout)
        if kind == "max":
            y = pool(x, window_t, stride=stride_t, padding=padding, **op_settings)
        else:
            y = pool(x, window_t, stride=stride_t, padding=padding,
                     count_include_pad=bool(count_include_pad), **op_settings)
        return y, state

    config = {"window": window_t, "stride": stride_t, "padding": padding}
    if kind == "avg":
        config["count_include_pad"] = bool(count_include_pad)
    if algorithm is not None:
        config["algorithm"] = algorithm
    return Layer(
        init,
        apply,
        name=name,
        kind="pool",
        rule=rule,
        config=config,
        macs=None,
    )


@switches_rule
def MaxPool1D(window: int | tuple[int], stride: int | tuple[int] | None = None, padding: Any = "VALID",
              rule: str = "hand", *, algorithm: str | None = None) -> Layer:
    """1-D max pooling: ``(N, W, C) -> (N, W', C)``; ``stride`` defaults to ``window``.

    The error goes to the first maximum of each window; padding never wins a max.
    """
    return _pool_layer("max", 1, window=window, stride=stride, padding=padding, rule=rule, algorithm=algorithm)


@switches_rule
def MaxPool2D(window: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
              padding: Any = "VALID", rule: str = "hand", *, algorithm: str | None = None) -> Layer:
    """2-D max pooling: ``(N, H, W, C) -> (N, H', W', C)``; ``stride`` defaults to ``window``.

    ``algorithm``: ``None`` (the op's default) or a name of
    :data:`funcnn.pooling.POOL_ALGORITHMS` / ``"auto"``, passed to whichever op the rule
    picks (with ``rule="autodiff"`` the twin then differentiates the hand op's forward).
    """
    return _pool_layer("max", 2, window=window, stride=stride, padding=padding, rule=rule, algorithm=algorithm)


@switches_rule
def AvgPool1D(window: int | tuple[int], stride: int | tuple[int] | None = None, padding: Any = "VALID",
              count_include_pad: bool = True, rule: str = "hand", *, algorithm: str | None = None) -> Layer:
    """1-D average pooling: ``(N, W, C) -> (N, W', C)``; ``stride`` defaults to ``window``.

    ``count_include_pad=True`` divides by the full window size, else by the number of
    in-bounds elements.
    """
    return _pool_layer("avg", 1, **locals())


@switches_rule
def AvgPool2D(window: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
              padding: Any = "VALID", count_include_pad: bool = True, rule: str = "hand", *,
              algorithm: str | None = None) -> Layer:
    """2-D average pooling: ``(N, H, W, C) -> (N, H', W', C)``; ``stride`` defaults to ``window``.

    ``algorithm``: as :func:`MaxPool2D`.
    """
    return _pool_layer("avg", 2, **locals())
