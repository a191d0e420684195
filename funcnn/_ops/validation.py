"""Argument validation of the ops, shared by the hand-ruled modules and their autodiff twins.

Both versions of an op (``funcnn.<module>`` and ``funcnn.reference.<module>``) call the same
validator before any array work, so they accept and reject exactly the same inputs with
the same messages; the twins import nothing from the hand-ruled modules. Geometry
(padding, output sizes, conv and pooling settings) lives in :mod:`funcnn._ops.geometry`.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops.checks import check_array, check_float, check_same_dtype, dtype_of, label_out_of_range, shape_of
from funcnn._ops.geometry import conv_geometry


def _check_x(fn: str, x: Any) -> jax.Array:
    """Require a floating-point array (or Python float) ``x``; return it as a JAX array."""
    check_float(fn, "x", x)
    return jnp.asarray(x)


def _check_static_real(fn: str, name: str, value: Any) -> float:
    """Require a static real number (a setting, not an array); return it as a float."""
    is_real = isinstance(value, (Real, np.integer, np.floating))
    if isinstance(value, (bool, np.bool_)) or not is_real:
        raise TypeError(
            f"{fn}: {name} must be a Python float (a static setting, not an array), "
            f"got {type(value).__name__} {value!r}"
        )
    if not np.isfinite(float(value)):
        raise ValueError(f"{fn}: {name} must be a finite number, got {float(value)!r}")
    return float(value)


def _check_static_bool(fn: str, name: str, value: Any) -> bool:
    """Require a Python bool setting; return it."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def _check_axis(fn: str, x: jax.Array, axis: Any) -> int:
    """Require an int axis within ``x``'s rank; return it as a non-negative int."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: axis must be an int, got {type(axis).__name__} {axis!r}")
    ndim = x.ndim
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{fn}: axis {int(axis)} is out of range for x of rank {ndim} "
            f"(x.shape={tuple(x.shape)}); expected -{ndim} <= axis < {ndim}"
        )
    return int(axis) % ndim


def _check_param(fn: str, name: str, value: Any, x: jax.Array) -> jax.Array:
    """Require a floating-point parameter array (or a Python number); return it as an array.

    Python numbers become arrays of ``x``'s dtype; arrays keep their own dtype (the rule
    computes in ``x``'s dtype and returns the parameter's gradient in the parameter's).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return jnp.asarray(value, dtype=x.dtype)
    check_array(fn, name, value)
    check_float(fn, name, value)
    return jnp.asarray(value)


def _check_prelu_alpha(fn: str, x: jax.Array, alpha: Any) -> jax.Array:
    """Require prelu's ``alpha`` of shape ``()``, ``(1,)`` or ``(C,)`` with C = x.shape[-1]."""
    alpha = _check_param(fn, "alpha", alpha, x)
    shape = shape_of(alpha)
    if x.ndim == 0:
        if shape != ():
            raise ValueError(
                f"{fn}: x is a scalar (x.shape=()), so alpha must be a scalar of shape (), "
                f"got alpha.shape={shape}"
            )
        return alpha
    channels = x.shape[-1]
    if shape not in ((), (1,), (channels,)):
        raise ValueError(
            f"{fn}: alpha must have shape (), (1,) or ({channels},) to match the last axis of x "
            f"(x.shape={tuple(x.shape)}), got alpha.shape={shape}"
        )
    return alpha


def _check_swish_beta(fn: str, x: jax.Array, beta: Any) -> jax.Array:
    """Require swish's ``beta`` to broadcast to ``x.shape`` (without enlarging it)."""
    beta = _check_param(fn, "beta", beta, x)
    shape = shape_of(beta)
    try:
        broadcast = np.broadcast_shapes(tuple(x.shape), shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(x.shape):
        raise ValueError(
            f"{fn}: beta must be a scalar or broadcastable to x.shape={tuple(x.shape)}, "
            f"got beta.shape={shape}"
        )
    return beta


def _validate_dense(fn: str, x: Any, w: Any, b: Any) -> None:
    """Check dense's arguments in Python, before any array work (shared with the twin)."""
    check_float(fn, "x", x)
    check_float(fn, "w", w)
    if b is not None:
        check_float(fn, "b", b)
    xs, ws = shape_of(x), shape_of(w)
    if len(xs) < 1:
        raise ValueError(f"{fn}: x must have rank >= 1 (..., D_in), got rank 0 (x.shape={xs})")
    if len(ws) != 2:
        raise ValueError(
            f"{fn}: w must have rank 2 (D_in, D_out), got rank {len(ws)} (w.shape={ws})"
        )
    if xs[-1] != ws[0]:
        raise ValueError(
            f"{fn}: x has {xs[-1]} input features but w expects {ws[0]} "
            f"(x.shape={xs}, w.shape={ws})"
        )
    if b is not None and shape_of(b) != (ws[1],):
        raise ValueError(
            f"{fn}: b must have shape (D_out,) = ({ws[1]},), got b.shape={shape_of(b)} "
            f"(w.shape={ws})"
        )
    check_same_dtype(fn, ("x", "w", "b"), (x, w, b))


def _check_logits(fn: str, name: str, logits: Any, ndims: str = ">=1") -> None:
    """``logits`` must be floating, of rank >= 1 (or exactly 2 for ``ndims="2"``)."""
    check_float(fn, name, logits)
    shape = shape_of(logits)
    if ndims == "2" and len(shape) != 2:
        raise ValueError(
            f"{fn}: {name} must have rank 2 (N, K), got rank {len(shape)} ({name}.shape={shape})"
        )
    if len(shape) < 1:
        raise ValueError(
            f"{fn}: {name} must have rank >= 1 (N, ...) with the batch on axis 0, "
            f"got rank 0 ({name}.shape={shape})"
        )


def _check_real(fn: str, name: str, x: Any) -> np.dtype:
    """``x`` must be an array of a real (bool, integer or floating) dtype; return the dtype."""
    check_array(fn, name, x)
    dt = dtype_of(x)
    if not (
        jnp.issubdtype(dt, jnp.floating)
        or jnp.issubdtype(dt, jnp.integer)
        or jnp.issubdtype(dt, jnp.bool_)
    ):
        raise TypeError(
            f"{fn}: {name} must have a real dtype, got {dt} ({name}.shape={shape_of(x)})"
        )
    return dt


def _float_target(fn: str, name: str, logits: Any, lname: str, target: Any) -> jax.Array:
    """Validate a target of exactly ``logits``' shape; return it in ``logits``' dtype."""
    _check_real(fn, name, target)
    ls, ts = shape_of(logits), shape_of(target)
    if ts != ls:
        raise ValueError(
            f"{fn}: {name} must have the same shape as {lname} (no broadcasting), "
            f"got {lname}.shape={ls}, {name}.shape={ts}"
        )
    return jnp.asarray(target).astype(dtype_of(logits))


def _check_unit_interval(fn: str, name: str, target: Any, what: str = "targets") -> None:
    """Concrete floating ``target`` values must lie in [0, 1] (under jit they cannot be read:
    there out-of-range targets give a meaningless loss, as documented)."""
    if not _is_concrete(target) or not jnp.issubdtype(dtype_of(target), jnp.floating):
        return
    t = np.asarray(target)
    if t.size == 0:
        return
    bad = t[~((t >= 0) & (t <= 1))]
    if bad.size:
        raise ValueError(
            f"{fn}: {what} must lie in [0, 1] (probabilities), got {name} value {float(bad.flat[0])!r} "
            f"({name}.shape={t.shape})"
        )


def _is_concrete(x: Any) -> bool:
    """Whether ``x``'s values can be read in Python (False for tracers under jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def _target_rows(fn: str, logits: Any, labels: Any) -> jax.Array:
    """Turn integer labels ``(N,)`` or target rows ``(N, K)`` into rows in logits' dtype.

    Integer labels become one-hot rows. Labels outside ``[0, K)`` raise ValueError when
    concrete; under a transformation (tracers) they become rows of NaN instead.
    """
    dt = _check_real(fn, "labels", labels)
    (n, k), ls = shape_of(logits), shape_of(labels)
    if jnp.issubdtype(dt, jnp.bool_):
        raise TypeError(
            f"{fn}: labels must be integer class indices (N,) or floating target rows (N, K), "
            f"got dtype bool (labels.shape={ls})"
        )
    if jnp.issubdtype(dt, jnp.integer):
        if ls != (n,):
            raise ValueError(
                f"{fn}: integer labels must have shape (N,) = ({n},), got labels.shape={ls} "
                f"(logits.shape={(n, k)})"
            )
        if _is_concrete(labels) and n > 0:
            bad = label_out_of_range(labels, k)
            if bad is not None:
                raise ValueError(
                    f"{fn}: labels must lie in [0, {k}) for {k} classes, got label {bad} "
                    f"(labels.shape={ls}, logits.shape={(n, k)})"
                )
        labels = jnp.asarray(labels)
        ldt = dtype_of(logits)
        rows = (labels[:, None] == jnp.arange(k, dtype=labels.dtype)).astype(ldt)
        valid = (labels >= 0) & (labels < k)
        return jnp.where(valid[:, None], rows, jnp.asarray(jnp.nan, ldt))
    if ls != (n, k):
        raise ValueError(
            f"{fn}: target rows must have the same shape as logits (N, K) = {(n, k)} "
            f"(no broadcasting), got labels.shape={ls}; integer labels must have shape (N,)"
        )
    _check_unit_interval(fn, "labels", labels, what="target rows' entries")
    return jnp.asarray(labels).astype(dtype_of(logits))


def _check_bn_x(fn: str, x: Any) -> tuple[int, ...]:
    """``x`` must be floating of rank >= 2 ``(N, ..., C)``; return its shape."""
    check_float(fn, "x", x)
    xs = shape_of(x)
    if len(xs) < 2:
        raise ValueError(
            f"{fn}: x must have rank >= 2 (N, ..., C) with channels last, "
            f"got rank {len(xs)} (x.shape={xs})"
        )
    return xs


def _check_channel_vectors(fn: str, xs: tuple[int, ...], named: dict[str, Any]) -> None:
    """Each array in ``named`` must be floating with shape ``(C,)``, ``C = xs[-1]``."""
    c = xs[-1]
    for name, v in named.items():
        check_float(fn, name, v)
        if shape_of(v) != (c,):
            raise ValueError(
                f"{fn}: {name} must have shape (C,) = ({c},) for x's {c} channels, "
                f"got {name}.shape={shape_of(v)} (x.shape={xs})"
            )


def _check_eps(fn: str, eps: Any) -> float:
    """``eps`` must be a non-negative Python/NumPy real (a static setting, not an array)."""
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"{fn}: eps must be a non-negative float, got {eps!r}")
    if not eps >= 0:
        raise ValueError(f"{fn}: eps must be a non-negative float, got {eps!r}")
    return float(eps)


def _validate_batch_norm_inference(x: Any, mean: Any, var: Any, gamma: Any, beta: Any, eps: Any) -> float:
    """Check batch_norm_inference's arguments (shared with the twin); return ``eps``."""
    fn = "batch_norm_inference"
    xs = _check_bn_x(fn, x)
    named = {"mean": mean, "var": var, "gamma": gamma, "beta": beta}
    _check_channel_vectors(fn, xs, named)
    check_same_dtype(fn, ("x", *named), (x, *named.values()))
    return _check_eps(fn, eps)


def _validate_batch_norm(fn: str, x: Any, gamma: Any, beta: Any, eps: Any) -> float:
    xs = _check_bn_x(fn, x)
    _check_channel_vectors(fn, xs, {"gamma": gamma, "beta": beta})
    check_same_dtype(fn, ("x", "gamma", "beta"), (x, gamma, beta))
    if math.prod(xs[:-1]) < 2:
        raise ValueError(
            f"{fn}: needs more than one value per channel to estimate the batch variance "
            f"(with one, every output is beta), got x.shape={xs}; use batch_norm_inference with "
            f"running statistics for single examples"
        )
    return _check_eps(fn, eps)


def _prepare_conv(
    fn: str, x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, nd: int
) -> tuple[jax.Array, jax.Array, Optional[jax.Array], tuple[int, ...], tuple[tuple[int, int], ...], tuple[int, ...]]:
    """Validate a conv call (types, ranks, channels, bias, geometry) before any array work.

    Returns ``(x, w, b, strides, pads, dilations)`` with arrays converted to ``jax.Array``
    and settings as tuples of ints (hashable, ready for ``nondiff_argnums``).
    """
    check_float(fn, "x", x)
    check_float(fn, "w", w)
    if b is not None:
        check_float(fn, "b", b)
    x_shape, w_shape = shape_of(x), shape_of(w)
    strides, pads, dilations, _ = conv_geometry(fn, x_shape, w_shape, stride, padding, dilation, nd)
    if b is not None and shape_of(b) != (w_shape[-1],):
        raise ValueError(
            f"{fn}: b must have shape ({w_shape[-1]},) (w's C_out), got b.shape={shape_of(b)} "
            f"(w.shape={w_shape})"
        )
    x, w = jnp.asarray(x), jnp.asarray(w)
    b = None if b is None else jnp.asarray(b)
    check_same_dtype(fn, ("x", "w", "b"), (x, w, b))
    return x, w, b, strides, pads, dilations
