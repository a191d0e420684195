"""The built-in activations, declared through the public registry exactly as a user's op is.

Each entry pairs a hand-ruled function of :mod:`funcnn.activations` with its twin in
:mod:`funcnn.reference.activations` and says what the rest of funcnn needs to know: kinks
(gradcheck samples both sides), learnable params (PReLU's alpha, Swish's beta), the dead and
saturated regions (diagnostics), the gain (closed forms, :func:`funcnn.nn.initializers.builtin_gain`)
and the layer ``Activation(name)`` builds. Nothing elsewhere keeps a list of activation names.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

import funcnn.activations as _act
import funcnn.reference.activations as _ref
from funcnn import layers as _layers
from funcnn.nn.initializers import builtin_gain
from funcnn._ops.registry import ActivationOp, ActivationParam, register_activation


def _off(pre):  # the ReLU family: a unit is off where its input is <= 0
    return pre <= 0


def _logistic_saturated(pre, post, tol):
    return (post <= tol) | (post >= 1 - tol)


def _tanh_saturated(pre, post, tol):
    return jnp.abs(post) >= 1 - tol


def _hard_logistic_flat(pre, post, tol):  # max(0, min(1, x/4 + 1/2)): flat for |x| >= 2
    return jnp.abs(pre) >= 2


def _hard_tanh_flat(pre, post, tol):  # flat for |x| >= 1
    return jnp.abs(pre) >= 1


def _declare(name, *, layer_name, **kw):
    register_activation(
        ActivationOp(
            name,
            getattr(_act, name),
            getattr(_ref, name),
            gain=functools.partial(builtin_gain, name),
            layer_name=layer_name,
            builtin=True,
            **kw,
        )
    )


_declare("logistic", layer_name="Logistic", saturated=_logistic_saturated)
_declare("tanh", layer_name="Tanh", saturated=_tanh_saturated)
_declare("hard_logistic", layer_name="HardLogistic", kinks=(-2.0, 2.0), saturated=_hard_logistic_flat)
_declare("hard_tanh", layer_name="HardTanh", kinks=(-1.0, 1.0), saturated=_hard_tanh_flat)
_declare("relu", layer_name="Relu", kinks=(0.0,), dead=_off)
_declare("leaky_relu", layer_name="LeakyRelu", kinks=(0.0,), dead=_off,
         check_settings=({}, {"negative_slope": 0.2}))
_declare("prelu", layer_name="PReLU", kinks=(0.0,), dead=_off,
         params=(ActivationParam("alpha", 0.25, per_channel=True, check_range=(0.1, 0.5)),),
         layer=_layers.PReLU)
_declare("elu", layer_name="Elu", kinks=(0.0,), dead=_off, check_settings=({}, {"alpha": 0.5}))
_declare("swish", layer_name="Swish",
         params=(ActivationParam("beta", 1.0, check_range=(0.5, 2.0)),),
         layer=_layers.Swish)
_declare("softplus", layer_name="Softplus")
_declare("gelu", layer_name="Gelu", check_settings=({}, {"approximate": True}))
_declare("softmax", layer_name="Softmax", elementwise=False)
_declare("log_softmax", layer_name="LogSoftmax", elementwise=False, check_settings=({}, {"axis": 0}))
