"""Argument validation that builds uniform error messages.

Every public function validates its inputs here, in Python, before any array work.
Messages name the function, the argument, what was expected and what arrived, e.g.::

    conv2d: x has 3 channels but w expects 4 (x.shape=(8, 32, 32, 3), w.shape=(3, 3, 4, 16))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array-like (``()`` for Python scalars)."""
    return tuple(np.shape(x))


def dtype_of(x: Any) -> np.dtype:
    """The dtype an array-like would have as a JAX array (Python floats -> weak float)."""
    if hasattr(x, "dtype"):
        return np.dtype(x.dtype)
    return jnp.asarray(x).dtype


def check_array(fn: str, name: str, x: Any) -> None:
    """Raise TypeError unless ``x`` is an array or a Python/NumPy number."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be a floating-point array, got a bool")
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return
    if isinstance(x, (int, float, np.number)):
        return
    raise TypeError(f"{fn}: {name} must be an array, got {type(x).__name__}")


def check_float(fn: str, name: str, x: Any) -> None:
    """Raise TypeError unless ``x`` has a floating dtype (float16/bfloat16/32/64)."""
    check_array(fn, name, x)
    dt = dtype_of(x)
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(
            f"{fn}: {name} must have a floating-point dtype, got {dt} "
            f"({name}.shape={shape_of(x)}); cast it first, e.g. {name}.astype(jnp.float32)"
        )


def check_ndim(fn: str, name: str, x: Any, ndims: int | Sequence[int], meaning: str = "") -> None:
    """Raise ValueError unless ``x.ndim`` is one of ``ndims``.

    ``meaning`` describes the expected layout, e.g. ``"(N, H, W, C)"``.
    """
    allowed = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    shape = shape_of(x)
    if len(shape) not in allowed:
        want = " or ".join(str(d) for d in allowed)
        layout = f" {meaning}" if meaning else ""
        raise ValueError(
            f"{fn}: {name} must have rank {want}{layout}, got rank {len(shape)} "
            f"({name}.shape={shape})"
        )


def check_same_dtype(fn: str, names: Sequence[str], arrays: Sequence[Any]) -> None:
    """Raise TypeError if the floating arrays given have different dtypes.

    Dtypes are compared as JAX will hold them: with x64 off (the default) a NumPy float64
    array becomes float32, so it matches float32 params as it does under ``jax.jit``.
    """
    dts = [
        (n, jax.dtypes.canonicalize_dtype(dtype_of(a)))
        for n, a in zip(names, arrays)
        if a is not None and hasattr(a, "dtype")
    ]
    if len({d for _, d in dts}) > 1:
        desc = ", ".join(f"{n}.dtype={d}" for n, d in dts)
        raise TypeError(f"{fn}: arrays must share one dtype, got {desc}")


def as_tuple(fn: str, name: str, value: Any, n: int, *, minimum: int = 1) -> tuple[int, ...]:
    """Normalize an int-or-sequence setting (stride, dilation, window, kernel) to ``n`` ints.

    Raises TypeError for non-integers and ValueError for the wrong length or values below
    ``minimum``.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if isinstance(value, (int, np.integer)):
        out = (int(value),) * n
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ValueError(
                f"{fn}: {name} must be an int or a tuple of {n} ints (one per spatial dim), "
                f"got {tuple(value)!r} of length {len(value)}"
            )
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            raise TypeError(f"{fn}: {name} must contain ints, got {tuple(value)!r}")
        out = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in out):
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return out


def label_out_of_range(labels: Any, k: int) -> int | None:
    """The first offending value of integer ``labels`` for ``k`` classes (the minimum if it is
    below 0, else the maximum if it is ``>= k``), or None when every label lies in ``[0, k)``."""
    lab = np.asarray(labels)
    lo, hi = int(lab.min()), int(lab.max())
    if lo < 0:
        return lo
    return hi if hi >= k else None


def check_int(fn: str, name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_bool(fn: str, name: str, value: Any) -> bool:
    """Return ``value`` unchanged, raising TypeError unless it is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(fn: str, name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise ValueError unless ``value`` is one of ``choices`` (listing them)."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{fn}: unknown {name} {value!r}; expected one of {listed}")


def check_precision(fn: str, precision: Any) -> Any:
    """``precision`` as lax takes it, in a hashable form (it is a static setting of the rules).

    Accepted, with lax's meaning: ``None`` (follow ``jax_default_matmul_precision``: on GPUs
    float32 dots and convolutions then run in TF32), a :class:`jax.lax.Precision` or its name
    (``"highest"``, ``"float32"``, ...), a pair of those (one per operand), or a
    :class:`jax.lax.DotAlgorithmPreset`.
    """
    from jax import lax

    def one(p: Any) -> Any:
        if isinstance(p, lax.Precision):
            return p
        if isinstance(p, str):
            try:
                return lax.Precision(p)
            except ValueError:
                pass
        raise TypeError(
            f"{fn}: precision must be None, a jax.lax.Precision, one of its names "
            f"('default', 'high', 'highest', 'bfloat16', 'tensorfloat32', 'float32'), a pair of "
            f"those or a jax.lax.DotAlgorithmPreset, got {p!r}"
        )

    if precision is None or isinstance(precision, lax.DotAlgorithmPreset):
        return precision
    if isinstance(precision, (tuple, list)):
        if len(precision) != 2:
            raise TypeError(f"{fn}: precision given as a sequence must have 2 entries (lhs, rhs), got {precision!r}")
        return (one(precision[0]), one(precision[1]))
    return one(precision)
