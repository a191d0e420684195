"""The old home of the layer constructors, now one module per family under :mod:`funcnn.nn`.

Every name that was public here is re-exported, the same object as in :mod:`funcnn.nn`.
"""

from funcnn.nn import (  # noqa: F401
    ACTIVATION_NAMES,
    Activation,
    AvgPool1D,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Elu,
    Flatten,
    Gelu,
    HardLogistic,
    HardTanh,
    Layer,
    LeakyRelu,
    Logistic,
    LogSoftmax,
    MaxPool1D,
    MaxPool2D,
    PReLU,
    Relu,
    Softmax,
    Softplus,
    Swish,
    Tanh,
)

__all__ = [
    "ACTIVATION_NAMES", "Activation", "AvgPool1D", "AvgPool2D", "BatchNorm", "Conv1D", "Conv2D", "Dense",
    "Dropout", "Elu", "Flatten", "Gelu", "HardLogistic", "HardTanh", "LeakyRelu", "LogSoftmax", "Logistic",
    "MaxPool1D", "MaxPool2D", "PReLU", "Relu", "Softmax", "Softplus", "Swish", "Tanh",
]
