"""The registry of gradcheck cases: every op with a hand-written rule, over a grid of shapes,
settings and (for convolution and pooling) every algorithm the op can dispatch to.

Each :class:`~funcnn.gradcheck.engine.Case` draws its point away from kinks and ties.
Convolution cases run each algorithm of :data:`funcnn.conv.CONV_ALGORITHMS` and ``"auto"``
with 1, 3, 6, 16 and 64 input channels (the channel counts that reach every path of the
CPU dispatch), pooling cases each algorithm of :data:`funcnn.pooling.POOL_ALGORITHMS` that
applies; the table names the algorithm of every sum a row ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.gradcheck.engine import Case

__all__ = ["CASES", "activation_cases", "activation_point", "op_cases"]


def _f(dtype: Any, a: np.ndarray) -> jax.Array:
    return jnp.asarray(a, dtype)


def _away(x: np.ndarray, kinks: Sequence[float], margin: float = 0.1) -> np.ndarray:
    """Move every entry within ``margin`` of a kink to distance ``margin`` from it."""
    x = np.array(x, np.float64)
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, margin, -margin)
    return x


def _distinct(rng: np.random.Generator, shape: tuple[int, ...], gap: float = 0.1) -> np.ndarray:
    """Values with no ties: a random permutation of a grid spaced ``gap`` apart, centred."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * gap).reshape(shape)


def _act(shape: tuple[int, ...] = (4, 5), kinks: Sequence[float] = (), scale: float = 3.0):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        return (_f(dtype, _away(rng.uniform(-scale, scale, shape), kinks)),)

    return make


def _act_param(shape: tuple[int, ...], pshape: tuple[int, ...], kinks: Sequence[float], lo, hi):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        x = _away(rng.uniform(-3, 3, shape), kinks)
        return _f(dtype, x), _f(dtype, rng.uniform(lo, hi, pshape))

    return make


#: Where the sampled point of an activation lies: entries in the central range, a wide
#: range of both signs, and both sides of every kink (never closer than ``KINK_MARGIN``).
CENTRAL, WIDE, KINK_SIDE, KINK_MARGIN = 3.0, (3.0, 20.0), (0.02, 0.5), 0.02


def activation_point(kinks: Sequence[float] = (), params: Sequence[Any] = (), per_channel: bool = False,
                     width: int = 8):
    """``make_args`` for an activation: one point that covers every region of its input.

    ``x`` has shape ``(rows, width)`` and holds 16 entries uniform on ``[-3, 3]``, 8 of
    magnitude 3 to 20 (4 of each sign), 4 on each side of every kink (0.02 to 0.5 away) and
    standard-normal fill; no entry lies within 0.02 of a kink. Each learnable param is drawn
    uniformly from its ``check_range``, a scalar or (``per_channel``) one value per column.
    """
    kinks = tuple(kinks)

    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        signs = np.array([-1.0] * 4 + [1.0] * 4)
        parts = [rng.uniform(-CENTRAL, CENTRAL, 16), signs * rng.uniform(*WIDE, 8)]
        for k in kinks:
            parts.append(k + signs * rng.uniform(*KINK_SIDE, 8))
        x = np.concatenate(parts)
        rows = -(-x.size // width)
        x = np.concatenate([x, rng.standard_normal(rows * width - x.size)])
        rng.shuffle(x)
        x = _away(x, kinks, KINK_MARGIN).reshape(rows, width)
        ps = [rng.uniform(*p.check_range, (width,) if per_channel and p.per_channel else ()) for p in params]
        return (_f(dtype, x), *(_f(dtype, v) for v in ps))

    return make


#: Built-in activations in the ``--quick`` subset (about one per family).
_QUICK_ACTIVATIONS = ("logistic", "relu", "softmax")


def activation_cases(names: Sequence[str] | None = None) -> list[Case]:
    """One case per registered activation and each of its ``check_settings`` (plus one with
    per-channel params where it has them), read from :mod:`funcnn._ops.registry` when called, so
    a user's activation is checked exactly like the built-ins."""
    from funcnn._ops import registry

    cases = []
    for name in registry.activation_names() if names is None else names:
        op = registry.get_activation(name, fn="gradcheck")
        module = "activations" if op.builtin else "user"
        variants = [False] + ([True] if any(p.per_channel for p in op.params) else [])
        for j, settings in enumerate(op.check_settings):
            for per_channel in variants:
                quick = j == 0 and not per_channel and (op.name in _QUICK_ACTIVATIONS or not op.builtin)
                cases.append(Case(op.name, module, activation_point(op.kinks, op.params, per_channel), settings,
                                  quick=quick, hand=op.hand, reference=op.reference))
    return cases


def _extra_activation_cases() -> list[Case]:
    """Shapes the registry's sampled points do not reach: rank 3, and broadcast params."""
    return [
        Case("relu", "activations", _act((2, 3, 4), kinks=(0.0,))),
        Case("swish", "activations", _act_param((2, 3, 5), (5,), (), 0.5, 2.0)),
        Case("softmax", "activations", _act((3, 4, 5)), {"axis": 1}),
    ]


def _dense_args(x_shape: tuple[int, ...], d_out: int, bias: bool = True):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        d_in = x_shape[-1]
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)
        b = rng.standard_normal(d_out) if bias else None
        return _f(dtype, x), _f(dtype, w), (None if b is None else _f(dtype, b))

    return make


def _dense_cases() -> list[Case]:
    return [
        Case("dense", "linear", _dense_args((5, 4), 3), quick=True),
        Case("dense", "linear", _dense_args((5, 4), 3, bias=False)),
        Case("dense", "linear", _dense_args((2, 3, 4), 6)),
    ]


def _conv_args(x_shape: tuple[int, ...], k_shape: tuple[int, ...], c_out: int, bias: bool = True):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        c_in = x_shape[-1]
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal((*k_shape, c_in, c_out)) / np.sqrt(np.prod(k_shape) * c_in)
        b = rng.standard_normal(c_out) if bias else None
        return _f(dtype, x), _f(dtype, w), (None if b is None else _f(dtype, b))

    return make


# (stride, padding, dilation): covers every stride 1-3, every padding form, dilation 1-2.
_CONV_GRID_1D = [
    (1, "VALID", 1),
    (1, "SAME", 2),
    (2, "VALID", 2),
    (2, "SAME", 1),
    (3, 1, 1),
    (3, "SAME", 2),
    (1, ((2, 1),), 1),
    (2, ((0, 3),), 2),
    (3, "VALID", 1),
]
_CONV_GRID_2D = [
    (1, "VALID", 1),
    (1, "SAME", 2),
    (2, "SAME", 1),
    (2, 1, 2),
    (3, "VALID", 1),
    (3, "SAME", 1),
    (1, ((1, 2), (0, 1)), 1),
    ((1, 2), ((2, 0), (1, 1)), (2, 1)),
    ((3, 1), 2, (1, 2)),
]


_SHORT = {"textbook": "textbook", "taps": "taps", "space_to_depth": "s2d", "patches": "patches"}


def _conv_algorithm(args: tuple[Any, ...], kwargs: Any) -> str:
    """The algorithm of each sum a conv case runs, e.g. ``auto(fwd=s2d dx=taps dw=s2d)``."""
    from funcnn.conv import conv_plan

    x, w = args[0], args[1]
    plan = conv_plan(x, w, stride=kwargs.get("stride", 1), padding=kwargs.get("padding", "VALID"),
                     dilation=kwargs.get("dilation", 1), algorithm=kwargs.get("algorithm", "auto"))
    if plan.name != "auto":
        return plan.name  # the table fixes each sum's algorithm
    parts = " ".join(f"{k}={_SHORT[v]}" for k, v in
                     (("fwd", plan.forward), ("dx", plan.input_grad), ("dw", plan.kernel_grad)))
    return f"auto({parts})"


def _pool_algorithm(args: tuple[Any, ...], kwargs: Any) -> str:
    """The algorithm a pooling case runs: ``auto(blocks)``, ``textbook``, ..."""
    from funcnn._ops.geometry import pool_geometry
    from funcnn.pooling import pool_algorithm

    (x,) = args
    geo = pool_geometry("gradcheck", x, kwargs["window"], kwargs.get("stride"), kwargs.get("padding", "VALID"),
                        x.ndim - 2)
    asked = kwargs.get("algorithm", "auto")
    ran = pool_algorithm(geo, asked)
    return f"auto({ran})" if asked == "auto" else ran


# Channel counts that reach every path of the CPU dispatch (funcnn.conv.AUTO_THRESHOLDS):
# C_in 1 and 3 (tap forward / patch-scatter dx), 6 -> 16 5x5 (LeNet's conv2: 2x2 blocks
# for all three sums), 16 and 64 (one XLA convolution per sum).
_CHANNELS = ((1, 6, (3, 3)), (3, 8, (3, 3)), (6, 16, (5, 5)), (16, 16, (3, 3)), (64, 64, (3, 3)))
_CONV_ALGORITHMS = ("auto", "textbook", "taps", "space_to_depth", "patches")


def _conv_cases() -> list[Case]:
    cases = []
    for i, (s, p, d) in enumerate(_CONV_GRID_1D):
        cases.append(
            Case(
                "conv1d",
                "conv",
                _conv_args((2, 11, 3), (3,), 4),
                {"stride": s, "padding": p, "dilation": d},
                quick=(i == 0),
            )
        )
    cases += [
        Case("conv1d", "conv", _conv_args((2, 9, 2), (3,), 3, bias=False),
             {"stride": 2, "padding": "SAME"}),
        # kernel = input size: one output position
        Case("conv1d", "conv", _conv_args((3, 5, 2), (5,), 3), {"padding": "VALID"}),
    ]
    for i, (s, p, d) in enumerate(_CONV_GRID_2D):
        cases.append(
            Case(
                "conv2d",
                "conv",
                _conv_args((2, 8, 7, 2), (3, 3), 3),
                {"stride": s, "padding": p, "dilation": d},
                quick=(i == 0),
            )
        )
    cases += [
        Case("conv2d", "conv", _conv_args((2, 7, 6, 3), (2, 3), 2, bias=False),
             {"stride": 2, "padding": "SAME"}),
        Case("conv2d", "conv", _conv_args((2, 5, 4, 2), (5, 4), 3), {"padding": "VALID"}),
        Case("conv2d", "conv", _conv_args((1, 5, 5, 1), (1, 1), 2), {"stride": 2}),
        # stride 1 with a 2x2 kernel: no 2x2 blocks, no patches (2-D, stride 1): the tap forward
        Case("conv2d", "conv", _conv_args((2, 6, 5, 2), (2, 2), 3), {"padding": "VALID"}),
    ]
    # Every algorithm, forced, at every channel count (stride 1, SAME: all of them apply).
    # "taps" unrolls KH*KW*C_in products in the forward (auto picks it for C_in <= 4):
    # forced where that sum stays small (3x3 kernels, C_in <= 3; strided with C_in 6 below).
    for c_in, c_out, k in _CHANNELS:
        for name in _CONV_ALGORITHMS:
            if name != "taps" or c_in <= 3:
                cases.append(Case("conv2d", "conv", _conv_args((2, 7, 6, c_in), k, c_out),
                                  {"padding": "SAME", "algorithm": name}))
    # Strided, dilated and 1-D convolutions under the algorithms that apply to them.
    for c_in, c_out, _ in _CHANNELS[1:4]:
        for name in _CONV_ALGORITHMS[:2] + ("patches",) + (("taps",) if c_in <= 6 else ()):
            cases.append(Case("conv2d", "conv", _conv_args((2, 9, 8, c_in), (3, 3), c_out),
                              {"stride": 2, "padding": 1, "dilation": (1, 2), "algorithm": name}))
    for name in _CONV_ALGORITHMS:
        cases.append(Case("conv1d", "conv", _conv_args((2, 11, 4), (3,), 8), {"padding": "SAME", "algorithm": name}))
    # MNIST-1D's CNN layer shape (5 taps, stride 2, padding 1), where auto picks the patches
    for name in ("auto", "patches", "textbook"):
        cases.append(Case("conv1d", "conv", _conv_args((2, 13, 5), (5,), 6), {"stride": 2, "padding": 1, "algorithm": name}))
    return [dataclasses.replace(c, algorithm=_conv_algorithm) for c in cases]


def _pool_args(x_shape: tuple[int, ...]):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        return (_f(dtype, _distinct(rng, x_shape)),)

    return make


def _pool_cases() -> list[Case]:
    cases = []
    grid_1d = [
        {"window": 2},
        {"window": 3, "stride": 1},  # overlapping windows
        {"window": 3, "stride": 2, "padding": "SAME"},
        {"window": 2, "stride": 3, "padding": 1},
        {"window": 4, "stride": 2, "padding": ((1, 2),)},
    ]
    grid_2d = [
        {"window": 2},
        {"window": 3, "stride": 1},  # overlapping windows
        {"window": (2, 3), "stride": (1, 2), "padding": "SAME"},
        {"window": 3, "stride": 2, "padding": 1},
        {"window": (3, 2), "stride": 3, "padding": ((1, 1), (0, 1))},
    ]
    for kind in ("max", "avg"):
        for i, kw in enumerate(grid_1d):
            x1 = _pool_args((2, 10, 3))
            cases.append(Case(f"{kind}_pool1d", "pooling", x1, kw, quick=i == 1))
        for i, kw in enumerate(grid_2d):
            x2 = _pool_args((2, 7, 8, 2))
            cases.append(Case(f"{kind}_pool2d", "pooling", x2, kw, quick=i == 1))
    cases += [
        Case("avg_pool1d", "pooling", _pool_args((2, 10, 3)),
             {"window": 3, "stride": 2, "padding": "SAME", "count_include_pad": False}),
        Case("avg_pool2d", "pooling", _pool_args((2, 7, 8, 2)),
             {"window": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
        Case("avg_pool2d", "pooling", _pool_args((2, 6, 5, 2)),
             {"window": (3, 2), "stride": 1, "padding": ((2, 0), (1, 1)),
              "count_include_pad": False}),
    ]
    # Tiling windows run "blocks" under auto: force the textbook algorithm there too, with
    # and without padding.
    for kind in ("max", "avg"):
        cases.append(Case(f"{kind}_pool1d", "pooling", _pool_args((2, 10, 3)), {"window": 2, "algorithm": "textbook"}))
        for pad in ("VALID", 1):
            for name in ("auto", "textbook"):
                cases.append(Case(f"{kind}_pool2d", "pooling", _pool_args((2, 7, 8, 2)),
                                  {"window": 2, "padding": pad, "algorithm": name}))
    return [dataclasses.replace(c, algorithm=_pool_algorithm) for c in cases]


def _regression(target: str):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        pred = rng.standard_normal((4, 3)) * 2
        if target == "real":
            y = rng.standard_normal((4, 3))
        else:  # probabilities in (0, 1)
            y = rng.uniform(0.05, 0.95, (4, 3))
        return _f(dtype, pred), _f(dtype, y)

    return make


def _classification(labels: str, n: int = 4, k: int = 5):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        logits = rng.standard_normal((n, k)) * 2
        if labels == "int":
            y = jnp.asarray(rng.integers(0, k, n), jnp.int32)
        else:
            y = _f(dtype, rng.dirichlet(np.ones(k), n))
        return _f(dtype, logits), y

    return make


def _loss_cases() -> list[Case]:
    # Targets are constants by design (the hand rules return a zero cotangent for them and
    # the twins stop their gradient), so only the prediction/logits are differentiated.
    p = (0,)
    return [
        Case("mse", "losses", _regression("real"), argnums=p, quick=True),
        Case("logistic_mse", "losses", _regression("prob"), argnums=p),
        Case("binary_cross_entropy", "losses", _regression("prob"), argnums=p),
        Case("softmax_cross_entropy", "losses", _classification("int"), argnums=p, quick=True),
        Case("softmax_cross_entropy", "losses", _classification("rows"), argnums=p),
        Case("softmax_mse", "losses", _classification("int"), argnums=p),
        Case("softmax_mse", "losses", _classification("rows"), argnums=p),
    ]


def _bn_args(shape: tuple[int, ...]):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        c = shape[-1]
        x = rng.standard_normal(shape) * 2 + 1
        gamma = rng.uniform(0.5, 1.5, c)
        beta = rng.standard_normal(c)
        return _f(dtype, x), _f(dtype, gamma), _f(dtype, beta)

    return make


def _bn_inference_args(shape: tuple[int, ...]):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        c = shape[-1]
        x = rng.standard_normal(shape)
        mean = rng.standard_normal(c) * 0.1
        var = rng.uniform(0.5, 2.0, c)
        gamma = rng.uniform(0.5, 1.5, c)
        beta = rng.standard_normal(c)
        return tuple(_f(dtype, a) for a in (x, mean, var, gamma, beta))

    return make


def _norm_cases() -> list[Case]:
    return [
        Case("batch_norm", "normalization", _bn_args((6, 4)), quick=True),
        Case("batch_norm", "normalization", _bn_args((3, 4, 4, 2))),
        Case("batch_norm", "normalization", _bn_args((5, 3)), {"eps": 1e-3}),
        Case("batch_norm_inference", "normalization", _bn_inference_args((5, 3))),
    ]


def _combinator_cases() -> list[Case]:
    """The fan-out / fan-in rules, and whole residual and branching layers built on them."""
    from funcnn.gradcheck.combinator_cases import COMBINATOR_CASES, combinator_checks

    layers = [Case(name.split("(")[0].lower() + " layer", "combinators", make, config=name, hand=hand, reference=ref)
              for name, (hand, ref), make in combinator_checks()]
    return list(COMBINATOR_CASES) + layers


def op_cases() -> list[Case]:
    """The cases of every built-in op that is not a registered activation."""
    return (_extra_activation_cases() + _dense_cases() + _conv_cases() + _pool_cases() + _loss_cases()
            + _norm_cases() + _combinator_cases())


#: Every case at import: the registry's activations (those registered by then) and the other
#: built-in ops. :func:`funcnn.gradcheck.all_cases` reads the registry anew and adds the
#: user's registered cases.
CASES: tuple[Case, ...] = tuple(activation_cases() + op_cases())


