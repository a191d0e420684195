"""The old home of the layer constructors, now one module per family under :mod:`funcnn.nn`.

Every name that was public here is re-exported, the same object as in :mod:`funcnn.nn`.
"""

from funcnn.nn.activation import (  # noqa: F401
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
from funcnn.nn.conv import Conv1D, Conv2D  # noqa: F401
from funcnn.nn.dense import Dense  # noqa: F401
from funcnn.nn.dropout import Dropout  # noqa: F401
from funcnn.nn.layer import Layer  # noqa: F401
from funcnn.nn.normalization import BatchNorm  # noqa: F401
from funcnn.nn.pooling import AvgPool1D, AvgPool2D, MaxPool1D, MaxPool2D  # noqa: F401
from funcnn.nn.reshape import Flatten  # noqa: F401

__all__ = [
    "ACTIVATION_NAMES", "Activation", "AvgPool1D", "AvgPool2D", "BatchNorm", "Conv1D", "Conv2D", "Dense",
    "Dropout", "Elu", "Flatten", "Gelu", "HardLogistic", "HardTanh", "LeakyRelu", "LogSoftmax", "Logistic",
    "MaxPool1D", "MaxPool2D", "PReLU", "Relu", "Softmax", "Softplus", "Swish", "Tanh",
]
