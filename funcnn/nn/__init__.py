"""Layers and what is built from them: the layer contract, one module per layer family,
combinators, ``Choice``, initializers, models and diagnostics.

- :mod:`funcnn.nn.layer`: the :class:`Layer` contract (``init``/``apply`` pairs) and
  :func:`switches_rule`, which gives a constructor's layers ``with_rule``.
- :mod:`funcnn.nn.dense`, :mod:`~funcnn.nn.conv`, :mod:`~funcnn.nn.pooling`,
  :mod:`~funcnn.nn.activation`, :mod:`~funcnn.nn.normalization`, :mod:`~funcnn.nn.dropout`,
  :mod:`~funcnn.nn.reshape`: the layer families, each over its op in :mod:`funcnn` (hand rule)
  or :mod:`funcnn.reference` (autodiff twin).
- :mod:`funcnn.nn.combinators`: ``serial``, ``Residual``, ``FanOut``/``FanIn*``, ``Parallel``.
- :mod:`funcnn.nn.choice`: :class:`Choice`, a grid option picked by data.
- :mod:`funcnn.nn.initializers`, :mod:`funcnn.nn.models`, :mod:`funcnn.nn.diagnostics`.

Layer contract (every layer and combinator):

- ``out_shape, params, state = layer.init(key, in_shape)``: ``in_shape`` includes the batch
  dimension (``-1`` for an unknown batch size passes through); ``params`` and ``state`` are
  plain pytrees (``()`` when empty).
- ``y, state = layer.apply(params, state, x, *, key=None, train=False)``: pure; ``key`` feeds
  randomness (dropout), ``train`` (a Python bool, static under ``jax.jit``) selects batch
  norm's batch statistics and dropout's mask.

Rules: every layer built on a hand-ruled op takes ``rule="hand"`` or ``rule="autodiff"``;
``layer.with_rule(rule)`` and ``serial(..., rule=...)`` switch a whole model. Weights default
to LeCun-normal, biases to zeros, params to float32. Constructors check their settings, ``init``
checks ``in_shape`` and ``apply`` checks ``x``, raising errors that name the layer, e.g.
``Conv2D(16, 3): in_shape must be (N, H, W, C), got (8, 32, 32)``.
"""

from funcnn.nn.layer import KINDS, RULES, Layer, check_rule, switches_rule
from funcnn.nn.choice import Choice
from funcnn.nn import initializers
from funcnn.nn.dense import Dense
from funcnn.nn.conv import Conv1D, Conv2D
from funcnn.nn.pooling import AvgPool1D, AvgPool2D, MaxPool1D, MaxPool2D
from funcnn.nn.reshape import Flatten
from funcnn.nn.dropout import Dropout
from funcnn.nn.normalization import BatchNorm
from funcnn.nn.activation import (
    ACTIVATION_NAMES,
    Activation,
    Elu,
    Gelu,
    HardLogistic,
    HardTanh,
    LeakyRelu,
    Logistic,
    LogSoftmax,
    PReLU,
    Relu,
    Softmax,
    Softplus,
    Swish,
    Tanh,
)
from funcnn.nn.combinators import (
    Combinator,
    FanInConcat,
    FanInSum,
    FanOut,
    Parallel,
    Residual,
    fan_in_concat,
    fan_in_sum,
    fan_out,
    leaf_layers,
    serial,
)
from funcnn.nn import _builtins  # noqa: F401  (declares the built-in activations in the registry)
from funcnn.nn import models
from funcnn.nn import diagnostics

__all__ = [
    "ACTIVATION_NAMES", "KINDS", "RULES", "Choice", "Layer", "check_rule", "switches_rule",
    "initializers", "models", "diagnostics",
    "Activation", "AvgPool1D", "AvgPool2D", "BatchNorm", "Conv1D", "Conv2D", "Dense", "Dropout", "Elu",
    "Flatten", "Gelu", "HardLogistic", "HardTanh", "LeakyRelu", "Logistic", "LogSoftmax", "MaxPool1D",
    "MaxPool2D", "PReLU", "Relu", "Softmax", "Softplus", "Swish", "Tanh",
    "Combinator", "FanInConcat", "FanInSum", "FanOut", "Parallel", "Residual", "fan_in_concat",
    "fan_in_sum", "fan_out", "leaf_layers", "serial",
]
