"""funcnn._ops.host.to_device: host values onto the device as jnp.asarray would give them,
without compiling an XLA program per shape (jnp.asarray does, in jax 0.10)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops.host import to_device
from funcnn.study.compilation import CompileStats


def test_same_values_and_dtypes_as_jnp_asarray_and_no_program():
    cases = [np.arange(12.0).reshape(3, 4) / 7, [0.1, 0.2, 0.3], [1, 2, 3], True, np.int64(-1),
             np.ones((2, 5, 1), np.float32)]
    stats = CompileStats.start()
    got = [to_device(v) for v in cases] + [to_device(-1, np.int32), to_device([0.5, 2.0], np.float32)]
    assert stats.read().compilations == 0  # nothing compiled for any shape or dtype
    want = [jnp.asarray(v) for v in cases] + [jnp.asarray(-1, jnp.int32), jnp.asarray([0.5, 2.0], jnp.float32)]
    for g, w in zip(got, want):
        assert isinstance(g, jax.Array) and g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_a_device_array_is_returned_as_it_is_unless_another_dtype_is_asked():
    a = jnp.arange(4, dtype=jnp.float32)
    assert to_device(a) is a and to_device(a, np.float32) is a
    b = to_device(a, np.int32)
    assert b.dtype == jnp.int32 and list(np.asarray(b)) == [0, 1, 2, 3]
