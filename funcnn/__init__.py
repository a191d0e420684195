"""funcnn: pure-function neural-network layers with hand-written backward rules.

Every op (activations, dense, convolution, pooling, the fused output+cost pairs, batch norm)
carries a hand-written ``jax.custom_vjp`` rule implementing the textbook derivation; its
autodiff twin (the same forward, differentiated by ``jax.grad``) lives under the same name in
:mod:`funcnn.reference`. Layers are stax-style ``(init, apply)`` pairs that take
``rule="hand"`` or ``rule="autodiff"``.

The package's folders are its architecture (imports flow one way, ops -> nn -> train -> study):
the ops at the top (:mod:`~funcnn.activations`, :mod:`~funcnn.linear`, :mod:`~funcnn.conv`,
:mod:`~funcnn.pooling`, :mod:`~funcnn.losses`, :mod:`~funcnn.normalization`), their twins in
:mod:`funcnn.reference`, the op machinery in ``funcnn._ops`` (public faces:
:mod:`funcnn.registry`, :mod:`funcnn.conv_autotune`), :mod:`funcnn.gradcheck`, the layers in
:mod:`funcnn.nn`, training in :mod:`funcnn.train`, what experiment scripts share in
:mod:`funcnn.study`, datasets in :mod:`funcnn.data`. The modules' older paths
(``funcnn.layers``, ``funcnn.combinators``, ``funcnn.initializers``, ``funcnn.parallel``, ...)
still import, as the same objects.

On import, funcnn sets one XLA CPU flag that makes convolutions faster on CPU (see
``funcnn/_ops/xla.py`` and BENCHMARKS.md), only if no JAX backend exists yet and the user's
``XLA_FLAGS`` do not mention it; ``FUNCNN_NO_XLA_DEFAULTS=1`` opts out.
"""

from funcnn._ops.xla import configure_xla_cpu_defaults as _configure_xla_cpu_defaults

XLA_DEFAULTS = _configure_xla_cpu_defaults()
"""What funcnn did to XLA_FLAGS on import: "applied", "user-set", "opted-out" or "too-late"."""

from funcnn import reference  # noqa: E402
from funcnn import nn  # noqa: E402
from funcnn.nn import Choice, Layer, initializers  # noqa: E402
from funcnn.activations import (  # noqa: E402
    ACTIVATION_NAMES,
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
from funcnn.nn.combinators import (  # noqa: E402
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
from funcnn.conv import conv1d, conv2d, conv_macs, conv_output_size  # noqa: E402
from funcnn.linear import dense  # noqa: E402
from funcnn.nn.diagnostics import (  # noqa: E402
    ActivationStats,
    ErrorTerms,
    Summary,
    VarianceReport,
    activation_stats,
    error_terms,
    summary,
    variance_report,
)
from funcnn.nn import (  # noqa: E402
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
from funcnn.losses import (  # noqa: E402
    binary_cross_entropy,
    logistic_mse,
    mse,
    softmax_cross_entropy,
    softmax_mse,
)
from funcnn.normalization import batch_norm, batch_norm_inference, batch_norm_stats  # noqa: E402
from funcnn.pooling import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d  # noqa: E402
from funcnn.nn import diagnostics, models  # noqa: E402
from funcnn import conv_autotune, registry  # noqa: E402  (public paths of funcnn._ops modules)
from funcnn import choice, combinators, layers  # noqa: E402,F401  (old paths, kept)
from funcnn._ops.rules import hand_rule  # noqa: E402
from funcnn._ops.registry import (  # noqa: E402
    ActivationOp,
    ActivationParam,
    define_activation,
    get_activation,
    register_activation,
)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATION_NAMES", "XLA_DEFAULTS", "Choice", "Layer", "initializers", "reference",
    # packages and modules: the layers (nn), the op machinery's public faces
    "nn", "conv_autotune", "diagnostics", "models",
    # the open framework: the activation registry and the rule decorator
    "ActivationOp", "ActivationParam", "define_activation", "get_activation", "hand_rule",
    "register_activation", "registry",
    # activations
    "elu", "gelu", "hard_logistic", "hard_tanh", "leaky_relu", "log_softmax", "logistic",
    "prelu", "relu", "softmax", "softplus", "swish", "tanh",
    # dense, conv, pooling, losses, batch norm
    "dense", "conv1d", "conv2d", "conv_macs", "conv_output_size",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "mse", "logistic_mse", "binary_cross_entropy", "softmax_cross_entropy", "softmax_mse",
    "batch_norm", "batch_norm_stats", "batch_norm_inference",
    # layers and combinators
    "Activation", "AvgPool1D", "AvgPool2D", "BatchNorm", "Conv1D", "Conv2D", "Dense",
    "Dropout", "Elu", "Flatten", "Gelu", "HardLogistic", "HardTanh", "LeakyRelu", "Logistic",
    "LogSoftmax", "MaxPool1D", "MaxPool2D", "PReLU", "Relu", "Softmax", "Softplus", "Swish",
    "Tanh", "serial", "leaf_layers", "models",
    "Combinator", "FanOut", "FanInSum", "FanInConcat", "Parallel", "Residual",
    "fan_out", "fan_in_sum", "fan_in_concat",
    # diagnostics
    "ActivationStats", "ErrorTerms", "Summary", "VarianceReport", "activation_stats",
    "error_terms", "summary", "variance_report",
]


def __getattr__(name: str):
    # Heavier submodules load on first use: `python -m funcnn.gradcheck` must not find
    # itself already imported, and the training engine pulls in optax.
    import importlib

    if name in ("gradcheck", "train", "data", "parallel", "study"):
        return importlib.import_module(f"funcnn.{name}")
    raise AttributeError(f"module 'funcnn' has no attribute {name!r}")
