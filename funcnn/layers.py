"""Layers: CamelCase constructors returning :class:`funcnn._layer.Layer` (init, apply) pairs.

The layer contract (one contract, for every layer and for :func:`funcnn.combinators.serial`):

- ``out_shape, params, state = layer.init(key, in_shape)``

  ``in_shape`` includes the batch dimension (``-1`` is accepted for an unknown batch size and
  passes through to ``out_shape``). ``params`` and ``state`` are plain pytrees of arrays:
  ``Dense``/``Conv*`` use ``{"w": ..., "b": ...}``, ``PReLU`` ``{"alpha": (C,)}``,
  ``Swish(learnable_beta=True)`` ``{"beta": ()}``, ``BatchNorm`` params
  ``{"gamma": (C,), "beta": (C,)}`` and state ``{"mean": (C,), "var": (C,)}``; layers without
  params or state use ``()``. ``key`` is a ``jax.random`` key (only layers that draw random
  params need one).

- ``y, state = layer.apply(params, state, x, *, key=None, train=False)``

  Pure: returns the output and the new state (the same ``state`` for stateless layers).
  ``key`` feeds randomness (dropout), ``train`` selects training behaviour (batch norm's
  batch statistics, dropout's mask). ``train`` is a Python bool: mark it static under
  ``jax.jit``.

``init, apply = Dense(10)`` unpacks like a stax pair; the :class:`Layer` also carries
``name``, ``kind``, ``rule``, ``activation``, ``config``, ``rebuild`` and ``macs`` (see
:mod:`funcnn._layer`).

Rules: every layer built on a hand-ruled op takes ``rule="hand"`` (the op's hand-written
``custom_vjp``) or ``rule="autodiff"`` (its twin in :mod:`funcnn.reference`, differentiated
by ``jax.grad``). ``layer.with_rule(rule)`` and ``serial(..., rule=...)`` switch a whole model.

Defaults: weights are drawn LeCun-normal (variance 1/fan_in, the classic choice for LeNet and
variance preserving for unit-gain activations; pass ``w_init=he_normal()`` for ReLU nets),
biases are zeros, parameters are float32 unless ``dtype=`` says otherwise.

Validation: constructors check their settings; ``init`` checks ``in_shape`` (rank, channels,
window fit) and ``apply`` checks ``x`` against the params (rank, channel count), raising
``ValueError``/``TypeError`` that name the layer, e.g.
``Conv2D(16, 3): in_shape must be (N, H, W, C), got (8, 32, 32)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import funcnn.conv as _conv
import funcnn.initializers as _inits
import funcnn.linear as _dense
import funcnn.normalization as _norm
import funcnn.pooling as _pool
import funcnn.reference.conv as _ref_conv
import funcnn.reference.linear as _ref_dense
import funcnn.reference.normalization as _ref_norm
import funcnn.reference.pooling as _ref_pool
from funcnn._checks import as_tuple, check_precision, shape_of
from funcnn._conv_forward import CONV_ALGORITHMS as _CONV_ALGORITHMS
from funcnn._pool_forward import POOL_ALGORITHMS as _POOL_ALGORITHMS
from funcnn._geometry import output_sizes, resolve_padding
from funcnn._layer import Layer, check_rule
from funcnn.choice import Choice
from funcnn import registry as _registry
from funcnn.registry import ActivationOp

__all__ = [
    "ACTIVATION_NAMES",
    "Activation",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Elu",
    "Flatten",
    "Gelu",
    "HardLogistic",
    "HardTanh",
    "LeakyRelu",
    "LogSoftmax",
    "Logistic",
    "MaxPool1D",
    "MaxPool2D",
    "PReLU",
    "Relu",
    "Softmax",
    "Softplus",
    "Swish",
    "Tanh",
]

#: Every registered activation name (a live view of :mod:`funcnn.registry`).
ACTIVATION_NAMES = _registry.ACTIVATION_NAMES

# Ops by rule: the hand-ruled module and its autodiff twin share every name and signature.
_DENSE = {"hand": _dense, "autodiff": _ref_dense}
_CONV = {"hand": _conv, "autodiff": _ref_conv}
_POOLING = {"hand": _pool, "autodiff": _ref_pool}
_NORMALIZATION = {"hand": _norm, "autodiff": _ref_norm}

_LAYOUT = {1: "(N, W, C)", 2: "(N, H, W, C)"}


# --------------------------------------------------------------------------- helpers


def _op(modules: dict[str, Any], rule: Any, name: str) -> Callable[..., Any]:
    """The op ``name`` under ``rule`` (hand-ruled module or its autodiff twin).

    For a :class:`Choice` of rules, the op picks by data: ``lax.switch`` between the hand
    rule and the twin (array arguments as operands, settings as constants).
    """
    if not isinstance(rule, Choice):
        return getattr(modules[rule], name)
    ops = {r: getattr(modules[r], name) for r in rule.options}

    def op(*args: Any, **settings: Any) -> Any:
        return rule.switch({r: (lambda *a, f=f: f(*a, **settings)) for r, f in ops.items()}, *args)

    return op


def _fmt(args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> str:
    """``"16, 3, stride=2"``: positional reprs then ``k=v`` pairs."""
    parts = [repr(a) for a in args]
    parts += [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return ", ".join(parts)


def _int_setting(v: Any) -> Any:
    """An int-or-tuple setting as written by the user, normalized for display."""
    return tuple(int(x) for x in v) if isinstance(v, (tuple, list)) else v


def _check_in_shape(
    name: str, in_shape: Any, ranks: Sequence[int] | None, layout: str, *, min_rank: int = 1
) -> tuple[int, ...]:
    """Validate ``in_shape``: a tuple of ints, batch dim ``>= 0`` or ``-1``, others ``>= 1``."""
    if isinstance(in_shape, (str, bytes)) or not isinstance(in_shape, Sequence):
        raise TypeError(f"{name}: in_shape must be a tuple of ints, got {in_shape!r}")
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in in_shape):
        raise TypeError(f"{name}: in_shape must be a tuple of ints, got {tuple(in_shape)!r}")
    shape = tuple(int(d) for d in in_shape)
    if (ranks is not None and len(shape) not in ranks) or len(shape) < min_rank:
        raise ValueError(f"{name}: in_shape must be {layout}, got {shape}")
    if shape and (shape[0] < -1 or any(d < 1 for d in shape[1:])):
        raise ValueError(
            f"{name}: in_shape must have a batch size >= 0 (or -1 for unknown) and positive "
            f"other dims, got {shape}"
        )
    return shape


def _check_x(name: str, x: Any, ranks: Sequence[int] | None, layout: str, *, min_rank: int = 1):
    """Validate the rank of ``x`` at apply time."""
    shape = shape_of(x)
    if (ranks is not None and len(shape) not in ranks) or len(shape) < min_rank:
        raise ValueError(f"{name}: x must be {layout}, got x.shape={shape}")
    return shape


def _check_channels(name: str, x_shape: tuple[int, ...], expected: int, what: str) -> None:
    if x_shape[-1] != expected:
        raise ValueError(
            f"{name}: x has {x_shape[-1]} features on its last axis but the layer's {what} "
            f"expects {expected} (x.shape={x_shape}); init the layer with this input's shape"
        )


def _check_tree(name: str, what: str, tree: Any, expected: Mapping[str, tuple[int, ...] | None]) -> None:
    """``tree`` (the layer's params or state) must be a dict with exactly these arrays; a
    shape of ``None`` only needs the key. The check reads shapes, so it also runs under jit."""
    wanted = ", ".join(f"{k!r}" for k in expected)
    if not isinstance(tree, Mapping):
        raise TypeError(
            f"{name}: {what} must be the dict with keys {wanted} that init returned, got {type(tree).__name__} "
            f"{tree!r:.80}"
        )
    missing = [k for k in expected if k not in tree]
    if missing:
        raise ValueError(f"{name}: {what} lack {', '.join(map(repr, missing))}; expected keys {wanted}, got {sorted(tree)}")
    for k, shp in expected.items():
        if shp is not None and tuple(np.shape(tree[k])) != tuple(shp):
            raise ValueError(
                f"{name}: {what}[{k!r}] has shape {tuple(np.shape(tree[k]))} but this layer expects {tuple(shp)}; "
                f"were these {what} made by another layer's init?"
            )


def _check_key(name: str, key: Any) -> None:
    if key is None:
        raise ValueError(f"{name}: init needs a PRNG key (e.g. jax.random.key(0)) to draw its params")


def _warn_if_channels_first(name: str, shape: tuple[int, ...], layout: str) -> None:
    """Warn when an input looks channels-first: funcnn is channels-last, and a (N, C, H, W)
    batch would otherwise train silently as C x H images of W channels."""
    first, last = shape[1], shape[-1]
    if first <= 4 and all(d >= 2 * first for d in shape[2:]):
        import warnings

        perm = (0, *range(2, len(shape)), 1)
        warnings.warn(
            f"{name}: in_shape {shape} looks channels-first (axis 1 has {first} entries, the last axis {last}); "
            f"funcnn is channels-last {layout}: if axis 1 holds the channels, use x.transpose{perm}",
            UserWarning,
            stacklevel=3,
        )


def _batch(n: int) -> int:
    """Batch size for MAC counts: an unknown batch (-1) counts one example."""
    return 1 if n < 0 else n


def _check_padding_form(name: str, padding: Any, n: int) -> None:
    """Reject a malformed padding at construction (sizes are only known at init)."""
    resolve_padding(name, padding, (1 << 20,) * n, (1,) * n, (1,) * n)


# --------------------------------------------------------------------------- dense


def Dense(
    out: int,
    w_init: Callable[..., jax.Array] | None = None,
    b_init: Callable[..., jax.Array] | None = None,
    rule: str = "hand",
    *,
    dtype: Any = jnp.float32,
    precision: Any = None,
) -> Layer:
    """Fully connected layer: ``y = x @ w + b`` on the last axis.

    Args:
        out: number of output features ``D_out``.
        w_init: initializer for ``w`` of shape ``(D_in, D_out)``: a function
            ``(key, shape, dtype) -> array``, a name of :data:`funcnn.initializers.INITIALIZER_NAMES`
            (``"he_normal"``) or a :class:`funcnn.Choice` among names (a grid choice: each
            member's weights drawn by its own pick); default LeCun-normal.
        b_init: initializer for ``b`` of shape ``(D_out,)``, in the same forms; default zeros.
        rule: ``"hand"`` or ``"autodiff"``.
        dtype: dtype of the params.
        precision: lax's ``precision`` for the product and its backward products
            (see :func:`funcnn.dense`; ``None`` follows ``jax_default_matmul_precision``).

    Shapes: ``(N, ..., D_in) -> (N, ..., D_out)``. MACs: ``N * ... * D_in * D_out``.
    """
    name = f"Dense({_fmt([out], {'rule': rule} if rule != 'hand' else None)})"
    if isinstance(out, bool) or not isinstance(out, (int, np.integer)) or out < 1:
        raise ValueError(f"Dense: out must be a positive int, got {out!r}")
    out = int(out)
    check_rule(name, rule)
    precision = check_precision(name, precision)
    w_spec, b_spec = w_init, b_init
    w_init = _inits.resolve(w_spec, _inits.lecun_normal, fn=name, arg="w_init")
    b_init = _inits.resolve(b_spec, _inits.zeros, fn=name, arg="b_init")
    dense = _op(_DENSE, rule, "dense")

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, "(N, ..., D_in) with rank >= 2", min_rank=2)
        _check_key(name, key)
        k_w, k_b = jax.random.split(key)
        params = {
            "w": w_init(k_w, (shape[-1], out), dtype),
            "b": b_init(k_b, (out,), dtype),
        }
        return shape[:-1] + (out,), params, ()

    def apply(params, state, x, *, key=None, train=False):
        x_shape = _check_x(name, x, None, "(N, ..., D_in) with rank >= 2", min_rank=2)
        _check_tree(name, "params", params, {"w": None, "b": (out,)})
        _check_tree(name, "params", params, {"w": (np.shape(params["w"])[0], out)})
        _check_channels(name, x_shape, params["w"].shape[0], f"w {tuple(params['w'].shape)}")
        return dense(x, params["w"], params["b"], precision=precision), state

    def macs(in_shape, out_shape):
        return _batch(in_shape[0]) * math.prod(in_shape[1:-1]) * in_shape[-1] * out

    return Layer(
        init,
        apply,
        name=name,
        kind="dense",
        rule=rule,
        config={"out": out, "w_init": w_init, "b_init": b_init, "dtype": jnp.dtype(dtype).name,
                "precision": precision},
        rebuild=lambda r: Dense(out, w_spec, b_spec, r, dtype=dtype, precision=precision),
        macs=macs,
    )


def _check_algorithm(name: str, algorithm: Any, rule: Any, table: Any) -> str:
    """A layer's ``algorithm`` setting: ``"auto"``, a name in ``table`` or, for the autodiff
    rule alone, ``"plain"`` (the twin's own forward)."""
    allowed = ("auto", *table) + (("plain",) if rule == "autodiff" else ())
    if not isinstance(algorithm, str) or algorithm not in allowed:
        raise ValueError(f"{name}: algorithm must be None or one of {allowed}, got {algorithm!r}")
    return algorithm


# --------------------------------------------------------------------------- convolution


def _conv_layer(
    nd: int,
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
        rebuild=lambda r: _conv_layer(
            nd, out_channels, kernel, stride, padding, dilation, w_spec, b_spec, r, dtype, precision, algorithm
        ),
        macs=macs,
    )


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
    return _conv_layer(
        1, out_channels, kernel, stride, padding, dilation, w_init, b_init, rule, dtype, precision, algorithm
    )


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
    return _conv_layer(
        2, out_channels, kernel, stride, padding, dilation, w_init, b_init, rule, dtype, precision, algorithm
    )


# --------------------------------------------------------------------------- pooling


def _pool_layer(
    kind: str, nd: int, window: Any, stride: Any, padding: Any, count_include_pad: bool, rule: str,
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
        rebuild=lambda r: _pool_layer(kind, nd, window, stride, padding, count_include_pad, r, algorithm),
        macs=None,
    )


def MaxPool1D(window: int | tuple[int], stride: int | tuple[int] | None = None, padding: Any = "VALID",
              rule: str = "hand", *, algorithm: str | None = None) -> Layer:
    """1-D max pooling: ``(N, W, C) -> (N, W', C)``; ``stride`` defaults to ``window``.

    The error goes to the first maximum of each window; padding never wins a max.
    """
    return _pool_layer("max", 1, window, stride, padding, True, rule, algorithm)


def MaxPool2D(window: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
              padding: Any = "VALID", rule: str = "hand", *, algorithm: str | None = None) -> Layer:
    """2-D max pooling: ``(N, H, W, C) -> (N, H', W', C)``; ``stride`` defaults to ``window``.

    ``algorithm``: ``None`` (the op's default) or a name of
    :data:`funcnn.pooling.POOL_ALGORITHMS` / ``"auto"``, passed to whichever op the rule
    picks (with ``rule="autodiff"`` the twin then differentiates the hand op's forward).
    """
    return _pool_layer("max", 2, window, stride, padding, True, rule, algorithm)


def AvgPool1D(window: int | tuple[int], stride: int | tuple[int] | None = None, padding: Any = "VALID",
              count_include_pad: bool = True, rule: str = "hand", *, algorithm: str | None = None) -> Layer:
    """1-D average pooling: ``(N, W, C) -> (N, W', C)``; ``stride`` defaults to ``window``.

    ``count_include_pad=True`` divides by the full window size, else by the number of
    in-bounds elements.
    """
    return _pool_layer("avg", 1, window, stride, padding, count_include_pad, rule, algorithm)


def AvgPool2D(window: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
              padding: Any = "VALID", count_include_pad: bool = True, rule: str = "hand", *,
              algorithm: str | None = None) -> Layer:
    """2-D average pooling: ``(N, H, W, C) -> (N, H', W', C)``; ``stride`` defaults to ``window``.

    ``algorithm``: as :func:`MaxPool2D`.
    """
    return _pool_layer("avg", 2, window, stride, padding, count_include_pad, rule, algorithm)


# --------------------------------------------------------------------------- flatten


def Flatten() -> Layer:
    """Flatten every axis but the batch axis: ``(N, d1, d2, ...) -> (N, d1*d2*...)``."""
    name = "Flatten()"

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, "(N, ...) with rank >= 2", min_rank=2)
        return (shape[0], math.prod(shape[1:])), (), ()

    def apply(params, state, x, *, key=None, train=False):
        x_shape = _check_x(name, x, None, "(N, ...) with rank >= 2", min_rank=2)
        # explicit size, not -1: reshape(0, -1) is ambiguous for an empty batch
        return jnp.reshape(x, (x_shape[0], math.prod(x_shape[1:]))), state

    return Layer(init, apply, name=name, kind="flatten")


# --------------------------------------------------------------------------- activations

_SETTING_TYPES = (bool, int, float, np.number)


def _activation_fn(op: ActivationOp, rule: Any) -> Callable[..., Any]:
    """The registered activation ``op`` under ``rule``: its hand rule, its twin, or (a
    :class:`Choice` of rules) a pick between them by data (settings stay constants)."""
    fns = {"hand": op.hand, "autodiff": op.reference}
    if not isinstance(rule, Choice):
        return fns[rule]

    def f(*args: Any, **settings: Any) -> Any:
        return rule.switch({r: (lambda *a, g=fns[r]: g(*a, **settings)) for r in rule.options}, *args)

    return f


def _registered(fn: str, name: Any) -> ActivationOp:
    """The registry entry for ``name`` (a name or a registered :class:`ActivationOp`)."""
    if isinstance(name, ActivationOp):
        if _registry.is_registered(name.name) and _registry.get_activation(name.name) is name:
            return name
        raise ValueError(f"{fn}: {name!r} is not (or no longer) the registered activation {name.name!r}")
    return _registry.get_activation(name, fn=fn)


def Activation(name: str | ActivationOp | Choice, rule: str = "hand", **kwargs: Any) -> Layer:
    """An activation layer by registry name: any built-in or user-registered activation.

    Args:
        name: a name in :data:`funcnn.registry.ACTIVATION_NAMES` (or the registered op
            itself), or a :class:`funcnn.Choice` among names (see :func:`_choice_activation`:
            one layer, one program, the pick as data).
        rule: ``"hand"`` or ``"autodiff"`` (or a Choice between them).
        **kwargs: the op's settings, e.g. ``negative_slope=0.2`` for ``"leaky_relu"``,
            ``axis=1`` for ``"softmax"``. Values must be Python numbers or bools. For an
            activation with learnable params, the initial values by param name (and ``dtype``).

    An activation that declares its own layer builds it: ``Activation("prelu", **kw)`` is
    ``PReLU(**kw)`` and ``Activation("swish", **kw)`` is ``Swish(**kw)``, so a grid over
    activation names covers all of them. Other activations with learnable params get a
    generic layer with params ``{name: (C,) or ()}`` initialised at each param's ``init``.

    Shapes: ``x -> y`` of the same shape. No params (unless learnable), no state.
    """
    if isinstance(name, Choice):
        return _choice_activation(name, rule, kwargs)
    op = _registered("Activation", name)
    name = op.name
    if op.layer is not None:
        accepted = [p for p in inspect.signature(op.layer).parameters if p != "rule"]
        for k in kwargs:
            if k not in accepted:
                raise TypeError(
                    f"Activation({name!r}): unexpected setting {k!r} for activation {name!r}; "
                    f"it accepts {', '.join(accepted)} (it builds {op.layer.__name__}(...))"
                )
        return op.layer(rule=rule, **kwargs)
    if op.params:
        return _param_activation(op, rule, kwargs)
    shown = dict(kwargs)
    if rule != "hand":
        shown["rule"] = rule
    lname = f"{op.layer_name}({_fmt((), shown)})"
    settings = op.settings
    for k, v in kwargs.items():
        if k not in settings:
            accepted = ", ".join(settings) if settings else "no settings"
            raise TypeError(
                f"{lname}: unexpected setting {k!r} for activation {name!r}; it accepts {accepted}"
            )
        if not isinstance(v, _SETTING_TYPES):
            raise TypeError(f"{lname}: setting {k} must be a Python number or bool, got {v!r}")
    check_rule(lname, rule)
    fn = _activation_fn(op, rule)
    axis = kwargs.get("axis", settings.get("axis"))
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
        raise TypeError(f"{lname}: axis must be an int, got {axis!r}")

    def check_axis(fn_name: str, rank: int) -> None:
        if axis is not None and not -rank <= axis < rank:
            raise ValueError(f"{lname}: axis {axis} is out of range for {fn_name} of rank {rank}")

    def init(key, in_shape):
        shape = _check_in_shape(lname, in_shape, None, "a shape of rank >= 1")
        check_axis("in_shape", len(shape))
        return shape, (), ()

    def apply(params, state, x, *, key=None, train=False):
        check_axis("x", len(shape_of(x)))
        return fn(x, **kwargs), state

    return Layer(
        init,
        apply,
        name=lname,
        kind="activation",
        rule=rule,
        activation=name,
        config={"name": name, **kwargs},
        rebuild=lambda r: Activation(name, rule=r, **kwargs),
    )


def _param_activation(op: ActivationOp, rule: Any, kwargs: Mapping[str, Any]) -> Layer:
    """The generic layer of a registered activation with learnable params.

    Params ``{p.name: (C,) if p.per_channel else ()}`` for each :class:`ActivationParam`,
    initialised at ``kwargs.get(p.name, p.init)``; the other keywords are the op's settings
    (and ``dtype``, the params' dtype, float32 by default).
    """
    kwargs = dict(kwargs)
    dtype = kwargs.pop("dtype", jnp.float32)
    shown = dict(kwargs)
    if rule != "hand":
        shown["rule"] = rule
    lname = f"{op.layer_name}({_fmt((), shown)})"
    inits = {p.name: kwargs.pop(p.name, p.init) for p in op.params}
    for k, v in {**inits, **kwargs}.items():
        if k not in op.settings and k not in inits:
            accepted = ", ".join((*op.param_names, *op.settings, "dtype"))
            raise TypeError(f"{lname}: unexpected setting {k!r} for activation {op.name!r}; it accepts {accepted}")
        if isinstance(v, bool) and k in inits or not isinstance(v, _SETTING_TYPES):
            raise TypeError(f"{lname}: {k} must be a Python number, got {v!r}")
    check_rule(lname, rule)
    fn = _activation_fn(op, rule)
    per_channel = any(p.per_channel for p in op.params)

    def init(key, in_shape):
        shape = _check_in_shape(lname, in_shape, None, "(N, ..., C) with rank >= 2" if per_channel else "a shape of rank >= 1",
                                min_rank=2 if per_channel else 1)
        params = {p.name: jnp.full((shape[-1],) if p.per_channel else (), inits[p.name], dtype) for p in op.params}
        return shape, params, ()

    def apply(params, state, x, *, key=None, train=False):
        _check_tree(lname, "params", params, {p.name: None for p in op.params})
        x_shape = _check_x(lname, x, None, "a shape of rank >= 1")
        for p in op.params:
            if p.per_channel:
                _check_channels(lname, x_shape, params[p.name].shape[-1], f"{p.name} {tuple(params[p.name].shape)}")
        return fn(x, *(params[p.name] for p in op.params), **kwargs), state

    return Layer(
        init,
        apply,
        name=lname,
        kind="activation",
        rule=rule,
        activation=op.name,
        config={"name": op.name, **inits, **kwargs, "dtype": jnp.dtype(dtype).name},
        rebuild=lambda r: _param_activation(op, r, {**inits, **kwargs, "dtype": dtype}),
    )


def _choice_activation(choice: Choice, rule: str, kwargs: Mapping[str, Any]) -> Layer:
    """``Activation(Choice(names, index))``: the activation ``names[index]``, picked by data.

    Each alternative is ``Activation(name, rule, **its settings)`` with its own hand-written
    rule; ``apply`` is ``choice.switch`` over them. Params are the tuple of every
    alternative's params (``()`` for most; PReLU's ``alpha``, Swish's ``beta``), so members
    that pick different activations share one structure; an alternative's params get a zero
    gradient where it is not picked. ``kwargs`` may hold ``{name: {settings}}`` per option.
    """
    bad = [o for o in choice.options if not _registry.is_registered(o)]
    if bad:
        raise ValueError(
            f"Activation: unknown activation {bad[0]!r} in {choice!r}; expected names among "
            + ", ".join(repr(n) for n in ACTIVATION_NAMES)
        )
    for k, v in kwargs.items():
        if k not in choice.options or not isinstance(v, Mapping):
            raise TypeError(
                f"Activation({choice!r}): settings of a choice go per option, as name={{setting: value}}; "
                f"got {k}={v!r}"
            )
    alts = tuple(Activation(o, rule=rule, **dict(kwargs.get(o, {}))) for o in choice.options)
    lname = f"Activation({choice.label}{'' if rule == 'hand' else f', rule={rule!r}'})"

    def init(key, in_shape):
        outs = [alt.init(key, in_shape) for alt in alts]
        return outs[0][0], tuple(o[1] for o in outs), ()

    def apply(params, state, x, *, key=None, train=False):
        branches = {
            alt.activation: (lambda ps, x, i=i, alt=alt: alt.apply(ps[i], (), x)[0]) for i, alt in enumerate(alts)
        }
        return choice.switch(branches, params, x), state

    return Layer(
        init,
        apply,
        name=lname,
        kind="activation",
        rule=rule,
        activation=choice,
        config={"name": choice.label, **kwargs},
        rebuild=lambda r: _choice_activation(choice, r, kwargs),
    )


def Logistic(rule: str = "hand") -> Layer:
    """Logistic sigmoid ``1 / (1 + exp(-x))``."""
    return Activation("logistic", rule=rule)


def Tanh(rule: str = "hand") -> Layer:
    """Hyperbolic tangent."""
    return Activation("tanh", rule=rule)


def HardLogistic(rule: str = "hand") -> Layer:
    """``max(0, min(1, 0.25 x + 0.5))``, the first-order Taylor expansion of the logistic at 0."""
    return Activation("hard_logistic", rule=rule)


def HardTanh(rule: str = "hand") -> Layer:
    """``max(-1, min(1, x))``."""
    return Activation("hard_tanh", rule=rule)


def Relu(rule: str = "hand") -> Layer:
    """``max(0, x)``."""
    return Activation("relu", rule=rule)


def LeakyRelu(negative_slope: float = 0.01, rule: str = "hand") -> Layer:
    """``x`` for ``x > 0`` else ``negative_slope * x``."""
    return Activation("leaky_relu", rule=rule, negative_slope=negative_slope)


def Elu(alpha: float = 1.0, rule: str = "hand") -> Layer:
    """``x`` for ``x > 0`` else ``alpha * (exp(x) - 1)`` (Clevert et al., 2016)."""
    return Activation("elu", rule=rule, alpha=alpha)


def Softplus(rule: str = "hand") -> Layer:
    """``log(1 + exp(x))``."""
    return Activation("softplus", rule=rule)


def Gelu(approximate: bool = False, rule: str = "hand") -> Layer:
    """``x * Phi(x)`` (Hendrycks & Gimpel, 2016); ``approximate=True`` uses the tanh form."""
    return Activation("gelu", rule=rule, approximate=approximate)


def Softmax(axis: int = -1, rule: str = "hand") -> Layer:
    """``exp(x) / sum(exp(x))`` along ``axis``."""
    return Activation("softmax", rule=rule, axis=axis)


def LogSoftmax(axis: int = -1, rule: str = "hand") -> Layer:
    """``x - logsumexp(x)`` along ``axis``."""
    return Activation("log_softmax", rule=rule, axis=axis)


def PReLU(init: float | Callable[..., jax.Array] = 0.25, rule: str = "hand", *,
          dtype: Any = jnp.float32) -> Layer:
    """Parametric ReLU with a learnable slope per channel (He et al., 2015).

    ``y = x`` for ``x > 0`` else ``alpha[c] * x``, ``c`` the last axis.

    Args:
        init: the initial slope (a number), or an initializer ``(key, (C,), dtype) -> array``.
        rule: ``"hand"`` or ``"autodiff"``.
        dtype: dtype of ``alpha``.

    Params ``{"alpha": (C,)}``. Shapes: ``(N, ..., C) -> (N, ..., C)``.
    """
    shown: dict[str, Any] = {}
    if rule != "hand":
        shown["rule"] = rule
    name = f"PReLU({_fmt([init] if not callable(init) else [], shown)})"
    if isinstance(init, (str, Choice)):
        init_value = _inits.resolve(init, _inits.zeros, fn=name, arg="init")
    elif not callable(init) and (isinstance(init, bool) or not isinstance(init, _SETTING_TYPES)):
        raise TypeError(f"{name}: init must be a number, an initializer or an initializer name, got {init!r}")
    else:
        init_value = init
    check_rule(name, rule)
    prelu = _activation_fn(_registry.get_activation("prelu"), rule)

    def init_fn(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, "(N, ..., C) with rank >= 2", min_rank=2)
        c = shape[-1]
        if callable(init_value):
            _check_key(name, key)
            alpha = init_value(key, (c,), dtype)
        else:
            alpha = jnp.full((c,), init_value, dtype)
        return shape, {"alpha": alpha}, ()

    def apply(params, state, x, *, key=None, train=False):
        x_shape = _check_x(name, x, None, "(N, ..., C) with rank >= 2", min_rank=2)
        alpha = params["alpha"]
        _check_channels(name, x_shape, alpha.shape[-1], f"alpha {tuple(alpha.shape)}")
        return prelu(x, alpha), state

    return Layer(
        init_fn,
        apply,
        name=name,
        kind="activation",
        rule=rule,
        activation="prelu",
        config={"init": init, "dtype": jnp.dtype(dtype).name},
        rebuild=lambda r: PReLU(init, r, dtype=dtype),
    )


def Swish(learnable_beta: bool = True, beta: float = 1.0, rule: str = "hand", *,
          dtype: Any = jnp.float32) -> Layer:
    """Swish ``x * logistic(beta * x)`` (Ramachandran et al., 2017).

    Args:
        learnable_beta: if True, ``beta`` is a learnable scalar param ``{"beta": ()}``
            initialized to ``beta``; else a fixed setting and params are ``()``.
        beta: the (initial) value of beta.
        rule: ``"hand"`` or ``"autodiff"``.
        dtype: dtype of the learnable ``beta``.

    Shapes: ``x -> y`` of the same shape.
    """
    shown: dict[str, Any] = {"learnable_beta": learnable_beta}
    if beta != 1.0:
        shown["beta"] = beta
    if rule != "hand":
        shown["rule"] = rule
    name = f"Swish({_fmt((), shown)})"
    if not isinstance(learnable_beta, (bool, np.bool_)):
        raise TypeError(f"{name}: learnable_beta must be a bool, got {learnable_beta!r}")
    if isinstance(beta, bool) or not isinstance(beta, _SETTING_TYPES):
        raise TypeError(f"{name}: beta must be a number, got {beta!r}")
    check_rule(name, rule)
    swish = _activation_fn(_registry.get_activation("swish"), rule)

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, "a shape of rank >= 1")
        params = {"beta": jnp.asarray(beta, dtype)} if learnable_beta else ()
        return shape, params, ()

    def apply(params, state, x, *, key=None, train=False):
        b = params["beta"] if learnable_beta else beta
        return swish(x, b), state

    return Layer(
        init,
        apply,
        name=name,
        kind="activation",
        rule=rule,
        activation="swish",
        config={"learnable_beta": bool(learnable_beta), "beta": beta, "dtype": jnp.dtype(dtype).name},
        rebuild=lambda r: Swish(learnable_beta, beta, r, dtype=dtype),
    )




# --------------------------------------------------------------------------- batch norm


def BatchNorm(momentum: float = 0.9, eps: float = 1e-5, rule: str = "hand", *,
              dtype: Any = jnp.float32) -> Layer:
    """Batch normalization over every axis but the last (Ioffe & Szegedy, 2015).

    ``y = gamma * (x - mean) / sqrt(var + eps) + beta``, per channel (last axis).

    - ``train=True``: ``mean``/``var`` are the batch statistics (biased variance, via the
      ``batch_norm`` op and its hand-written three-term backward rule), and the running
      averages in ``state`` are updated as
      ``new = momentum * old + (1 - momentum) * batch``, where the running variance uses
      the *unbiased* batch variance ``var * n / (n - 1)`` (``n`` values per channel), as in
      PyTorch. Gradients do not flow into the state. Needs ``n >= 2``.
    - ``train=False``: normalizes with the running ``state["mean"]``/``state["var"]``
      (``batch_norm_inference``); the state is returned unchanged.

    Params ``{"gamma": (C,) ones, "beta": (C,) zeros}``; state
    ``{"mean": (C,) zeros, "var": (C,) ones}``. Shapes: ``(N, ..., C) -> (N, ..., C)``.
    """
    shown: dict[str, Any] = {}
    if momentum != 0.9:
        shown["momentum"] = momentum
    if eps != 1e-5:
        shown["eps"] = eps
    if rule != "hand":
        shown["rule"] = rule
    name = f"BatchNorm({_fmt((), shown)})"
    for arg, v in (("momentum", momentum), ("eps", eps)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
            raise TypeError(f"{name}: {arg} must be a number, got {v!r}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{name}: momentum must be in [0, 1], got {momentum!r}")
    if not eps > 0:
        raise ValueError(f"{name}: eps must be > 0, got {eps!r}")
    check_rule(name, rule)
    batch_norm = _op(_NORMALIZATION, rule, "batch_norm")
    batch_norm_stats = _op(_NORMALIZATION, rule, "batch_norm_stats")
    batch_norm_inference = _op(_NORMALIZATION, rule, "batch_norm_inference")
    layout = "(N, ..., C) with rank >= 2"

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, layout, min_rank=2)
        c = shape[-1]
        params = {"gamma": jnp.ones((c,), dtype), "beta": jnp.zeros((c,), dtype)}
        state = {"mean": jnp.zeros((c,), dtype), "var": jnp.ones((c,), dtype)}
        return shape, params, state

    def apply(params, state, x, *, key=None, train=False):
        x_shape = _check_x(name, x, None, layout, min_rank=2)
        _check_tree(name, "params", params, {"gamma": None, "beta": None})
        _check_tree(name, "state", state, {"mean": None, "var": None})
        gamma, beta = params["gamma"], params["beta"]
        _check_channels(name, x_shape, gamma.shape[-1], f"gamma {tuple(gamma.shape)}")
        if not train:
            y = batch_norm_inference(x, state["mean"], state["var"], gamma, beta, eps)
            return y, state
        n = math.prod(x_shape[:-1])
        if n < 2:
            raise ValueError(
                f"{name}: train mode needs more than one value per channel to estimate the "
                f"batch variance, got x.shape={x_shape}"
            )
        y = batch_norm(x, gamma, beta, eps)
        mean, var = batch_norm_stats(jax.lax.stop_gradient(x))
        unbiased = var * (n / (n - 1))
        new_state = {
            "mean": (momentum * state["mean"] + (1 - momentum) * mean).astype(state["mean"].dtype),
            "var": (momentum * state["var"] + (1 - momentum) * unbiased).astype(state["var"].dtype),
        }
        return y, new_state

    return Layer(
        init,
        apply,
        name=name,
        kind="norm",
        rule=rule,
        config={"momentum": momentum, "eps": eps, "dtype": jnp.dtype(dtype).name},
        rebuild=lambda r: BatchNorm(momentum, eps, r, dtype=dtype),
    )


# --------------------------------------------------------------------------- dropout


def Dropout(rate: float) -> Layer:
    """Inverted dropout: zero each element with probability ``rate``, scale the rest by ``1/(1-rate)``.

    ``train=True`` needs ``key``; ``train=False`` is the identity (the scaling at train time
    keeps the expected activation unchanged, so nothing is rescaled at eval). No rule: the
    mask multiply is differentiated by ``jax.grad`` under either rule.

    Args:
        rate: probability of dropping an element, in ``[0, 1)``.
    """
    name = f"Dropout({rate!r})"
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)):
        raise TypeError(f"{name}: rate must be a number in [0, 1), got {rate!r}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: rate (probability of dropping) must be in [0, 1), got {rate!r}")
    rate = float(rate)

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, "a shape of rank >= 1")
        return shape, (), ()

    def apply(params, state, x, *, key=None, train=False):
        if not train:
            return x, state
        if key is None:
            raise ValueError(
                f"{name}: train=True needs a PRNG key for the dropout mask; pass key=... "
                f"(or train=False for evaluation)"
            )
        if rate == 0.0:
            return x, state
        keep = jax.random.bernoulli(key, 1.0 - rate, shape_of(x))
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x)), state

    return Layer(init, apply, name=name, kind="dropout", config={"rate": rate})
