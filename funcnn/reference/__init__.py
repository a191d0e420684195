"""Autodiff twins of every hand-ruled op: the same forwards, no custom rules.

Each name here has the same signature as its counterpart in :mod:`funcnn`; ``jax.grad``
differentiates these plainly, which is what the hand-written rules are checked against.
"""

from funcnn.reference.activations import (
    elu,
    gelu,
    hard_logistic,
    hard_tanh,
    leaky_relu,
    log_softmax,
    logistic,
    prelu,
    relu,
    softmax,
    softplus,
    swish,
    tanh,
)
from funcnn.reference.combinators import fan_in_concat, fan_in_sum, fan_out
from funcnn.reference.conv import conv1d, conv2d, conv_macs, conv_output_size
from funcnn.reference.linear import dense
from funcnn.reference.losses import (
    binary_cross_entropy,
    logistic_mse,
    mse,
    softmax_cross_entropy,
    softmax_mse,
)
from funcnn.reference.normalization import batch_norm, batch_norm_inference, batch_norm_stats
from funcnn.reference.pooling import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d

__all__ = [
    "elu", "gelu", "hard_logistic", "hard_tanh", "leaky_relu", "log_softmax", "logistic",
    "prelu", "relu", "softmax", "softplus", "swish", "tanh",
    "dense", "conv1d", "conv2d", "conv_macs", "conv_output_size",
    "fan_out", "fan_in_sum", "fan_in_concat",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "mse", "logistic_mse", "binary_cross_entropy", "softmax_cross_entropy", "softmax_mse",
    "batch_norm", "batch_norm_stats", "batch_norm_inference",
]
