"""Tests for funcnn.normalization: batch norm's three-term rule against its twin."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from funcnn import normalization as bn
from funcnn.reference import normalization as ref


def _randn(shape, dtype=jnp.float64, seed=0, scale=1.0, shift=0.0):
    # numpy's generator: jax.random would compile a kernel per shape and dtype (slow tests)
    return jnp.asarray(shift + scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def _args(x_shape, dtype=jnp.float64):
    c = x_shape[-1]
    x = _randn(x_shape, dtype, seed=0, scale=3.0, shift=1.5)
    gamma = _randn((c,), dtype, seed=1, shift=1.0)
    beta = _randn((c,), dtype, seed=2)
    return x, gamma, beta


def _tol(dtype):
    return {jnp.float32: 2e-5, jnp.float64: 1e-12}[dtype]


@pytest.mark.parametrize(
    "x_shape,dtype",
    [
        ((8, 3), jnp.float64),
        ((8, 3), jnp.float32),
        ((2, 3, 3, 2), jnp.float64),
        ((4, 5, 3), jnp.float32),
    ],
)
def test_forward_and_vjp_match_twin(x_shape, dtype):
    x, gamma, beta = _args(x_shape, dtype)
    g = _randn(x_shape, dtype, seed=5)  # random cotangent

    @jax.jit
    def value_and_vjp(x, gamma, beta, g):
        (y, vjp), (y_ref, vjp_ref) = jax.vjp(bn.batch_norm, x, gamma, beta), jax.vjp(
            ref.batch_norm, x, gamma, beta
        )
        return y, y_ref, vjp(g), vjp_ref(g)

    y, y_ref, cts, cts_ref = value_and_vjp(x, gamma, beta, g)
    assert y.shape == x_shape and y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, rtol=_tol(dtype), atol=_tol(dtype))
    for got, want, a in zip(cts, cts_ref, (x, gamma, beta)):
        assert got.shape == a.shape and got.dtype == a.dtype
        np.testing.assert_allclose(got, want, rtol=10 * _tol(dtype), atol=10 * _tol(dtype))


@pytest.mark.parametrize("x_shape", [(6, 2), (2, 2, 3, 2)])
def test_check_grads_float64(x_shape):
    x, gamma, beta = _args(x_shape)
    # jitted: one compile for the many evaluations of the finite-difference check
    check_grads(jax.jit(bn.batch_norm), (x, gamma, beta), order=2, modes=("rev",))


def test_three_term_rule_exact_values_and_identities():
    x, gamma, beta = _args((6, 3))
    g = _randn((6, 3), seed=9)
    m = 6
    mu, var = x.mean(0), x.var(0)
    inv_std = 1 / np.sqrt(var + 1e-5)
    xhat = (x - mu) * inv_std
    dx, dgamma, dbeta = jax.vjp(bn.batch_norm, x, gamma, beta)[1](g)
    # the textbook formula, written out in numpy
    want_dx = gamma * inv_std / m * (m * g - g.sum(0) - xhat * (g * xhat).sum(0))
    np.testing.assert_allclose(dx, want_dx, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dgamma, (g * xhat).sum(0), rtol=1e-13)
    np.testing.assert_allclose(dbeta, g.sum(0), rtol=1e-13)
    # with eps = 0, dx is orthogonal to what normalization removes: shifts and rescalings
    (dx0,) = jax.vjp(lambda x: bn.batch_norm(x, gamma, beta, eps=0.0), x)[1](g)
    np.testing.assert_allclose(dx0.sum(0), 0, atol=1e-12)
    np.testing.assert_allclose((dx0 * (x - mu)).sum(0), 0, atol=1e-12)


def test_forward_normalizes_each_channel():
    x, _, _ = _args((4, 5, 5, 3))
    y = bn.batch_norm(x, jnp.ones(3), jnp.zeros(3), eps=0.0)
    np.testing.assert_allclose(y.mean((0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var((0, 1, 2)), 1, rtol=1e-12)
    y = bn.batch_norm(x, 2 * jnp.ones(3), jnp.arange(3.0))
    np.testing.assert_allclose(y.mean((0, 1, 2)), [0.0, 1.0, 2.0], atol=1e-12)


def test_stats_and_inference():
    x, gamma, beta = _args((4, 2, 3))
    mean, var = bn.batch_norm_stats(x)
    np.testing.assert_allclose(mean, np.asarray(x).reshape(-1, 3).mean(0), rtol=1e-13)
    np.testing.assert_allclose(var, np.asarray(x).reshape(-1, 3).var(0), rtol=1e-13)  # biased
    # eval mode with the batch's own statistics reproduces train mode
    y_eval = bn.batch_norm_inference(x, mean, var, gamma, beta, eps=1e-3)
    np.testing.assert_allclose(
        y_eval, bn.batch_norm(x, gamma, beta, eps=1e-3), rtol=1e-12, atol=1e-12
    )
    # fixed statistics: the gradient w.r.t. x is the per-channel scale gamma / sqrt(var + eps)
    dx = jax.grad(lambda x: jnp.sum(bn.batch_norm_inference(x, mean, var, gamma, beta)))(x)
    np.testing.assert_allclose(
        dx, jnp.broadcast_to(gamma / jnp.sqrt(var + 1e-5), x.shape), rtol=1e-12
    )
    # the twins are functions of their own and agree: values, and every cotangent of inference
    np.testing.assert_allclose(ref.batch_norm_stats(x)[1], var, rtol=1e-12)
    args = (x, mean, var + 0.5, gamma, beta)
    g = jnp.asarray(np.random.default_rng(5).standard_normal(x.shape))
    for a, b in zip(jax.vjp(bn.batch_norm_inference, *args)[1](g), jax.vjp(ref.batch_norm_inference, *args)[1](g)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert ref.batch_norm_inference is not bn.batch_norm_inference


def test_jit_vmap_and_eps():
    x, gamma, beta = _args((3, 6, 2))  # vmap over the leading axis: three independent batches
    f = jax.jit(
        jax.vmap(
            jax.value_and_grad(lambda x, g, b: jnp.sum(bn.batch_norm(x, g, b, 1e-3) ** 3), (0, 1)),
            in_axes=(0, None, None),
        )
    )
    f_ref = jax.jit(
        jax.value_and_grad(lambda x, g, b: jnp.sum(ref.batch_norm(x, g, b, 1e-3) ** 3), (0, 1))
    )
    vals, (dxs, dgs) = f(x, gamma, beta)
    for i in range(3):
        val, (dx, dg) = f_ref(x[i], gamma, beta)
        np.testing.assert_allclose(vals[i], val, rtol=1e-12)
        np.testing.assert_allclose(dxs[i], dx, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dgs[i], dg, rtol=1e-10, atol=1e-12)
    # eps is a static setting: another eps is another (correct) function
    assert not np.allclose(bn.batch_norm(x[0], gamma, beta, 1.0), bn.batch_norm(x[0], gamma, beta))


# bfloat16 keeps 8 significant bits (~2.4 decimal digits): rounding to nearest moves a value
# by at most U = 2**-8 (0.4%) of itself.
BF16_U = 2.0**-8


@pytest.mark.parametrize("x_shape", [(8, 3), (4, 5, 5, 3)])
def test_bfloat16_matches_float32_twin(x_shape):
    """batch_norm in bfloat16: bfloat16 outputs and cotangents whose values are the float32
    twin's on float32 copies of the same inputs, to bfloat16's accuracy."""
    x, gamma, beta = _args(x_shape, jnp.bfloat16)
    g = _randn(x_shape, jnp.bfloat16, seed=5)  # random cotangent
    up = tuple(a.astype(jnp.float32) for a in (x, gamma, beta, g))  # exact copies

    @jax.jit
    def run(x, gamma, beta, g, x32, gamma32, beta32, g32):
        (y, vjp), (y_ref, vjp_ref) = jax.vjp(bn.batch_norm, x, gamma, beta), jax.vjp(
            ref.batch_norm, x32, gamma32, beta32
        )
        return y, vjp(g), y_ref, vjp_ref(g32)

    y, cts, y_ref, cts_ref = run(x, gamma, beta, g, *up)
    assert y.dtype == jnp.bfloat16 and y.shape == x_shape
    for ct, a in zip(cts, (x, gamma, beta)):
        assert ct.dtype == jnp.bfloat16 and ct.shape == a.shape
    # The longest path is ~10 bfloat16 roundings of <= U each (mean, x - mean, square, sum,
    # / M, rsqrt, xhat, gamma xhat + beta; the backward's three terms and their sums), of
    # quantities no larger than about the largest |entry|. Rounding errors of independent
    # sign add like a random walk, ~sqrt(10) ~ 3 of them: |err| <= k U (|ref| + max|ref|)
    # with k = 4 (measured <= 1.3 in those units). At the largest entry that allows 8U = 3.1%,
    # so a result 10% off fails.
    k = 4
    for got, want in zip((y, *cts), (y_ref, *cts_ref)):
        want = np.asarray(want)
        np.testing.assert_allclose(
            np.asarray(got, np.float32), want, rtol=k * BF16_U, atol=k * BF16_U * np.abs(want).max()
        )


def test_nan_propagates_within_its_channel():
    x, gamma, beta = _args((5, 3))
    x = x.at[2, 1].set(jnp.nan)
    y, vjp = jax.vjp(bn.batch_norm, x, gamma, beta)
    assert np.isnan(y[:, 1]).all()
    assert np.isfinite(y[:, jnp.array([0, 2])]).all()
    dx, dgamma, _ = vjp(jnp.ones_like(y))
    assert np.isnan(dx[:, 1]).all() and np.isnan(dgamma[1])
    assert np.isfinite(dx[:, jnp.array([0, 2])]).all()


def test_zero_channels():
    y, vjp = jax.vjp(bn.batch_norm, jnp.zeros((4, 0)), jnp.zeros(0), jnp.zeros(0))
    assert y.shape == (4, 0)
    assert [c.shape for c in vjp(y)] == [(4, 0), (0,), (0,)]


@pytest.mark.parametrize("op", [bn.batch_norm, ref.batch_norm])
def test_bad_input(op):
    x, gamma, beta = _args((4, 3))
    with pytest.raises(
        ValueError,
        match=r"batch_norm: gamma must have shape \(C,\) = \(3,\) for x's 3 channels, "
        r"got gamma.shape=\(4,\) \(x.shape=\(4, 3\)\)",
    ):
        op(x, jnp.ones(4), beta)
    with pytest.raises(ValueError, match=r"batch_norm: beta must have shape \(C,\) = \(3,\)"):
        op(x, gamma, jnp.ones((1, 3)))
    with pytest.raises(ValueError, match=r"batch_norm: x must have rank >= 2 \(N, ..., C\)"):
        op(x[0], gamma, beta)
    with pytest.raises(
        TypeError, match=r"batch_norm: x must have a floating-point dtype, got int32"
    ):
        op(jnp.ones((4, 3), jnp.int32), gamma, beta)
    with pytest.raises(TypeError, match=r"batch_norm: arrays must share one dtype"):
        op(x.astype(jnp.float32), gamma, beta)
    with pytest.raises(ValueError, match=r"batch_norm: eps must be a non-negative float, got -1"):
        op(x, gamma, beta, -1e-5)
    with pytest.raises(TypeError, match=r"batch_norm: eps must be a non-negative float, got Array"):
        op(x, gamma, beta, jnp.array(1e-5))


def test_bad_input_stats_and_inference():
    x, gamma, beta = _args((4, 3))
    with pytest.raises(ValueError, match=r"batch_norm_stats: x must have rank >= 2"):
        bn.batch_norm_stats(x[0])
    with pytest.raises(TypeError, match=r"batch_norm_stats: x must have a floating-point dtype"):
        bn.batch_norm_stats(jnp.ones((4, 3), jnp.int32))
    mean, var = bn.batch_norm_stats(x)
    with pytest.raises(
        ValueError, match=r"batch_norm_inference: var must have shape \(C,\) = \(3,\)"
    ):
        bn.batch_norm_inference(x, mean, var[:2], gamma, beta)
    with pytest.raises(
        ValueError, match=r"batch_norm_inference: mean must have shape \(C,\) = \(3,\)"
    ):
        bn.batch_norm_inference(x, mean[None], var, gamma, beta)
    with pytest.raises(ValueError, match=r"batch_norm_inference: eps must be a non-negative float"):
        bn.batch_norm_inference(x, mean, var, gamma, beta, eps=-1.0)
