"""The dense layer: ``Dense(out)``, ``y = x @ w + b`` through :func:`funcnn.dense` or its twin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import funcnn.linear as _dense
import funcnn.nn.initializers as _inits
import funcnn.reference.linear as _ref_dense
from funcnn._ops.checks import check_precision
from funcnn.nn._common import _batch, _check_channels, _check_in_shape, _check_key, _check_tree, _check_x, _fmt, _op
from funcnn.nn.layer import Layer, check_rule, switches_rule


_DENSE = {"hand": _dense, "autodiff": _ref_dense}


@switches_rule
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
        macs=macs,
    )
