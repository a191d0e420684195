"""Tests for funcnn.dense (module funcnn.linear): the hand rule against its autodiff twin and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from funcnn.linear import dense
from funcnn.reference.linear import dense as ref_dense


def _args(x_shape, d_out, dtype=jnp.float64, bias=True, seed=0):
    # numpy's generator: jax.random would compile a kernel per shape and dtype (slow tests)
    rng = np.random.default_rng(seed)
    d_in = x_shape[-1]
    x = jnp.asarray(rng.standard_normal(x_shape), dtype)
    w = jnp.asarray(rng.standard_normal((d_in, d_out)), dtype)
    b = jnp.asarray(rng.standard_normal(d_out), dtype) if bias else None
    return x, w, b


def _randn(shape, dtype=jnp.float64, seed=7):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _tol(dtype):
    return {jnp.float32: 1e-5, jnp.float64: 1e-12}[dtype]


@pytest.mark.parametrize(
    "x_shape,d_out,bias,dtype",
    [
        ((5, 3), 4, True, jnp.float64),
        ((5, 3), 4, False, jnp.float32),
        ((2, 4, 3), 2, True, jnp.float32),
        ((3,), 2, True, jnp.float64),
        ((1, 1), 1, False, jnp.float64),
    ],
)
def test_forward_and_vjp_match_twin(x_shape, d_out, bias, dtype):
    x, w, b = _args(x_shape, d_out, dtype, bias)
    args = (x, w) if b is None else (x, w, b)
    y, vjp = jax.vjp(dense, *args)
    y_ref, vjp_ref = jax.vjp(ref_dense, *args)
    assert y.shape == (*x_shape[:-1], d_out) and y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, rtol=_tol(dtype), atol=_tol(dtype))
    g = _randn(y.shape, dtype)  # random cotangent
    for got, want, a in zip(vjp(g), vjp_ref(g), args):
        assert got.shape == a.shape and got.dtype == a.dtype
        np.testing.assert_allclose(got, want, rtol=_tol(dtype), atol=_tol(dtype))


@pytest.mark.parametrize("x_shape,d_out", [((5, 3), 4), ((2, 4, 3), 2), ((3,), 2)])
def test_check_grads_first_and_second_order(x_shape, d_out):
    x, w, b = _args(x_shape, d_out)
    check_grads(dense, (x, w, b), order=2, modes=("rev",))
    check_grads(lambda x, w: dense(x, w), (x, w), order=1, modes=("rev",))


def test_rule_textbook_values_exact():
    x = jnp.array([[1.0, 2.0], [3.0, -1.0]])
    w = jnp.array([[1.0, 0.5, -1.0], [2.0, 0.0, 1.0]])
    b = jnp.array([0.5, -0.5, 0.0])
    g = jnp.array([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]])
    _, vjp = jax.vjp(dense, x, w, b)
    dx, dw, db = vjp(g)
    np.testing.assert_array_equal(dx, g @ w.T)
    np.testing.assert_array_equal(dw, x.T @ g)
    np.testing.assert_array_equal(db, g.sum(0))
    np.testing.assert_array_equal(dense(x, w, b), x @ w + b)


def test_leading_axes_are_summed_in_dw_db():
    x, w, b = _args((2, 3, 4), 5)
    g = _randn((2, 3, 5))
    _, vjp = jax.vjp(dense, x, w, b)
    _, dw, db = vjp(g)
    np.testing.assert_allclose(dw, jnp.einsum("abi,abj->ij", x, g), rtol=1e-12)
    np.testing.assert_allclose(db, g.sum((0, 1)), rtol=1e-12)


def test_grad_of_grad_matches_twin():
    x, w, b = _args((4, 3), 2)

    def inner(op):
        # d/dw of a nonlinear loss, then differentiate that again (Hessian-vector product)
        def loss(w):
            return jnp.sum(jnp.tanh(op(x, w, b)) ** 2)

        v = jnp.arange(w.size, dtype=w.dtype).reshape(w.shape) / w.size
        return jax.grad(lambda w: jnp.vdot(jax.grad(loss)(w), v))(w)

    np.testing.assert_allclose(inner(dense), inner(ref_dense), rtol=1e-12, atol=1e-12)
    # second derivative w.r.t. x as well (the rule's dx = g w^T differentiated)
    hx = jax.jacrev(jax.jacrev(lambda x: jnp.sum(jnp.sin(dense(x, w, b)))))(x)
    hx_ref = jax.jacrev(jax.jacrev(lambda x: jnp.sum(jnp.sin(ref_dense(x, w, b)))))(x)
    np.testing.assert_allclose(hx, hx_ref, rtol=1e-12, atol=1e-12)


def test_jit_and_vmap():
    x, w, b = _args((4, 3), 2)
    np.testing.assert_allclose(jax.jit(dense)(x, w, b), ref_dense(x, w, b), rtol=1e-12)
    ws = jnp.stack([w, 2 * w, -w])  # a grid of weight settings, vmapped
    ys = jax.vmap(dense, in_axes=(None, 0, None))(x, ws, b)
    for i in range(3):
        np.testing.assert_allclose(ys[i], ref_dense(x, ws[i], b), rtol=1e-12)
    gws = jax.jit(jax.vmap(jax.grad(lambda w: jnp.sum(dense(x, w, b) ** 2))))(ws)
    gws_ref = jax.vmap(jax.grad(lambda w: jnp.sum(ref_dense(x, w, b) ** 2)))(ws)
    np.testing.assert_allclose(gws, gws_ref, rtol=1e-12)


# bfloat16 keeps 8 significant bits (~2.4 decimal digits): rounding to nearest moves a value
# by at most U = 2**-8 (0.4%) of itself.
BF16_U = 2.0**-8


@pytest.mark.parametrize("x_shape,d_out", [((4, 3), 2), ((2, 8, 32), 16)])
def test_bfloat16_matches_float32_twin(x_shape, d_out):
    """dense in bfloat16: bfloat16 outputs and cotangents whose values are the float32 twin's
    on float32 copies of the same inputs, to bfloat16's accuracy."""
    x, w, b = _args(x_shape, d_out, jnp.bfloat16)
    g = _randn((*x_shape[:-1], d_out), jnp.bfloat16)  # random cotangent
    y, vjp = jax.vjp(dense, x, w, b)
    cts = vjp(g)
    assert y.dtype == jnp.bfloat16 and y.shape == g.shape
    for ct, a in zip(cts, (x, w, b)):
        assert ct.dtype == jnp.bfloat16 and ct.shape == a.shape
    x32, w32, b32, g32 = (a.astype(jnp.float32) for a in (x, w, b, g))  # exact copies
    y_ref, vjp_ref = jax.vjp(lambda *a: ref_dense(*a, precision="highest"), x32, w32, b32)
    # XLA accumulates a bfloat16 product in float32 and rounds once: y = x w + b is rounded
    # twice (product, bias add), dx = g w^T, dw = x^T g and db = sum g once each. A rounding
    # moves a value by <= U of itself, itself <= the largest |entry| (or the summands of the
    # bias add, about as large): |err| <= k U (|ref| + max|ref|) with k = 2 (measured <= 0.6
    # in those units, up to (64, 128) inputs). At the largest entry that allows 4U = 1.6%, so
    # a result 10% off fails.
    k = 2
    for got, want in zip((y, *cts), (y_ref, *vjp_ref(g32))):
        want = np.asarray(want)
        np.testing.assert_allclose(
            np.asarray(got, np.float32), want, rtol=k * BF16_U, atol=k * BF16_U * np.abs(want).max()
        )


def test_zero_size_batch():
    x, w, b = _args((0, 3), 2)
    y, vjp = jax.vjp(dense, x, w, b)
    assert y.shape == (0, 2)
    dx, dw, db = vjp(jnp.zeros((0, 2)))
    assert dx.shape == (0, 3)
    np.testing.assert_array_equal(dw, jnp.zeros((3, 2)))
    np.testing.assert_array_equal(db, jnp.zeros(2))


def test_nan_propagates():
    x, w, b = _args((3, 2), 2)
    x = x.at[1, 0].set(jnp.nan)
    y, vjp = jax.vjp(dense, x, w, b)
    assert np.isnan(y[1]).all() and np.isfinite(y[jnp.array([0, 2])]).all()
    _, dw, _ = vjp(jnp.ones_like(y))
    assert np.isnan(dw[0]).all() and np.isfinite(dw[1]).all()


@pytest.mark.parametrize("op", [dense, ref_dense])
def test_bad_input(op):
    x, w, b = _args((4, 3), 2)
    with pytest.raises(TypeError, match=r"dense: x must have a floating-point dtype, got int"):
        op(jnp.ones((4, 3), jnp.int32), w, b)
    with pytest.raises(TypeError, match=r"dense: w must have a floating-point dtype"):
        op(x, jnp.ones((3, 2), jnp.int32))
    with pytest.raises(TypeError, match=r"dense: x must be an array, got list"):
        op([[1.0, 2.0, 3.0]], w)
    with pytest.raises(ValueError, match=r"dense: w must have rank 2 \(D_in, D_out\), got rank 3"):
        op(x, jnp.ones((3, 2, 1)))
    with pytest.raises(ValueError, match=r"dense: x must have rank >= 1"):
        op(jnp.float64(1.0), w)
    with pytest.raises(
        ValueError,
        match=r"dense: x has 3 input features but w expects 4 "
        r"\(x.shape=\(4, 3\), w.shape=\(4, 2\)\)",
    ):
        op(x, jnp.ones((4, 2)))
    with pytest.raises(
        ValueError, match=r"dense: b must have shape \(D_out,\) = \(2,\), got b.shape=\(3,\)"
    ):
        op(x, w, jnp.ones(3))
    with pytest.raises(TypeError, match=r"dense: arrays must share one dtype"):
        op(x.astype(jnp.float32), w, b)
