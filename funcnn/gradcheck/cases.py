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

__all__ = ["CASES"]


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


def _activation_cases() -> list[Case]:
    c = [
        Case("logistic", "activations", _act(), quick=True),
        Case("tanh", "activations", _act()),
        Case("hard_logistic", "activations", _act(kinks=(-2.0, 2.0), scale=4.0)),
        Case("hard_tanh", "activations", _act(kinks=(-1.0, 1.0))),
        Case("relu", "activations", _act(kinks=(0.0,)), quick=True),
        Case("relu", "activations", _act((2, 3, 4), kinks=(0.0,))),
        Case("leaky_relu", "activations", _act(kinks=(0.0,))),
        Case("leaky_relu", "activations", _act(kinks=(0.0,)), {"negative_slope": 0.2}),
        Case("prelu", "activations", _act_param((4, 5), (), (0.0,), 0.1, 0.5)),
        Case("prelu", "activations", _act_param((2, 3, 5), (5,), (0.0,), 0.1, 0.5)),
        Case("elu", "activations", _act(kinks=(0.0,))),
        Case("elu", "activations", _act(kinks=(0.0,)), {"alpha": 0.5}),
        Case("swish", "activations", _act()),
        Case("swish", "activations", _act_param((4, 5), (), (), 0.5, 2.0)),
        Case("swish", "activations", _act_param((2, 3, 5), (5,), (), 0.5, 2.0)),
        Case("softplus", "activations", _act()),
        Case("gelu", "activations", _act()),
        Case("gelu", "activations", _act(), {"approximate": True}),
        Case("softmax", "activations", _act(), quick=True),
        Case("softmax", "activations", _act((3, 4, 5)), {"axis": 1}),
        Case("log_softmax", "activations", _act()),
        Case("log_softmax", "activations", _act((4, 5)), {"axis": 0}),
    ]
    return c


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


_SHORT = {"textbook": "textbook", "taps": "taps", "space_to_depth": "s2d"}


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
    from funcnn._geometry import pool_geometry
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
_CONV_ALGORITHMS = ("auto", "textbook", "taps", "space_to_depth")


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
        for name in _CONV_ALGORITHMS[:2] + (("taps",) if c_in <= 6 else ()):
            cases.append(Case("conv2d", "conv", _conv_args((2, 9, 8, c_in), (3, 3), c_out),
                              {"stride": 2, "padding": 1, "dilation": (1, 2), "algorithm": name}))
    for name in _CONV_ALGORITHMS:
        cases.append(Case("conv1d", "conv", _conv_args((2, 11, 4), (3,), 8), {"padding": "SAME", "algorithm": name}))
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


#: Every registered case: all ops, over a representative grid of shapes and settings.
CASES: tuple[Case, ...] = tuple(
    _activation_cases() + _dense_cases() + _conv_cases() + _pool_cases() + _loss_cases()
    + _norm_cases()
)


