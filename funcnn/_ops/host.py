"""Host values onto the device without compiling anything.

In jax 0.10, ``jnp.asarray`` of a NumPy array (or a Python scalar with a dtype) compiles a
small XLA program per shape and dtype (``stage``, ``convert_element_type``); at a grid's
start-up that is dozens of programs. ``jax.device_put`` of a NumPy array converted on the
host gives the same array (JAX's canonical dtype) and compiles nothing.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

__all__ = ["to_device"]


def to_device(a: Any, dtype: Any = None) -> jax.Array:
    """``jnp.asarray(a, dtype)`` for host values (NumPy arrays, lists, scalars), without an
    XLA program; a ``jax.Array`` of the asked dtype is returned as it is."""
    if isinstance(a, jax.Array) and (dtype is None or a.dtype == np.dtype(dtype)):
        return a
    if isinstance(a, jax.Array):
        a = np.asarray(jax.device_get(a))
    return jax.device_put(np.asarray(a, dtype))
