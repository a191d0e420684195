"""Batch normalization as a layer: ``BatchNorm``, its running statistics in ``state``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import funcnn.normalization as _norm
import funcnn.reference.normalization as _ref_norm
from funcnn.nn._common import _check_channels, _check_in_shape, _check_tree, _check_x, _fmt, _op
from funcnn.nn.layer import Layer, check_rule, switches_rule


_NORMALIZATION = {"hand": _norm, "autodiff": _ref_norm}


@switches_rule
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
    )
