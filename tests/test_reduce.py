"""funcnn._ops.reduce.sum_leading: the per-channel sum behind bias and batch-norm gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn._ops.reduce import fold_factor, sum_leading


@pytest.mark.parametrize(
    "shape",
    [(7,), (1, 5), (128, 10), (3, 7, 11, 6), (64, 8, 8, 64), (2, 3, 200), (0, 4, 6), (13, 1), (6, 5, 0)],
)
def test_sum_leading_equals_sum_over_leading_axes(shape):
    x = np.random.default_rng(0).normal(size=shape)
    got = jax.jit(sum_leading)(jnp.asarray(x, jnp.float64))
    want = x.sum(axis=tuple(range(len(shape) - 1)))
    assert got.shape == (shape[-1],)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)
    unfolded = jax.jit(lambda t: sum_leading(t, min_channels=10**6))(jnp.asarray(x, jnp.float64))
    np.testing.assert_allclose(np.asarray(unfolded), want, rtol=1e-12, atol=1e-12)


def test_fold_factor_divides_rows_and_bounds_the_width():
    # 100352 = 2**11 * 7**2: its largest divisor with k * 6 <= 512 (k <= 85) is 64
    assert fold_factor(100352, 6) == 64
    assert fold_factor(65536, 64) == 8
    assert fold_factor(97, 6) == 1  # prime: no folding
    assert fold_factor(128, 1024) == 1  # already wide
    assert fold_factor(0, 4) == 1
