"""Tests for funcnn.losses: fused output + cost pairs against their twins and the textbook."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from funcnn import losses
from funcnn.reference import losses as ref

NAMES = ["mse", "logistic_mse", "binary_cross_entropy", "softmax_cross_entropy", "softmax_mse"]
SOFTMAX = ["softmax_cross_entropy", "softmax_mse"]
N, K = 5, 4


def _logits(shape=(N, K), dtype=jnp.float64, seed=0, scale=2.0):
    # numpy's generator: jax.random would compile a kernel per shape and dtype (slow tests)
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def _target(name, kind, shape=(N, K), dtype=jnp.float64, seed=1):
    """``kind``: "rows" (floats in [0, 1]; probability rows for softmax losses) or "labels"."""
    rng = np.random.default_rng(seed)
    if kind == "labels":
        return jnp.asarray(rng.integers(0, shape[-1], shape[:1]), jnp.int32)
    u = rng.uniform(size=shape)
    if name in SOFTMAX:
        u = u / u.sum(-1, keepdims=True)
    return jnp.asarray(u, dtype)


def _value_and_grad(f, argnums=0):
    """Jitted value-and-grad: one compile instead of one per eager op (keeps the suite fast)."""
    return jax.jit(jax.value_and_grad(f, argnums=argnums))


CASES = [(n, "rows") for n in NAMES] + [(n, "labels") for n in SOFTMAX]


def _tol(dtype):
    return {jnp.float32: 1e-5, jnp.float64: 1e-12}[dtype]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("name,kind", CASES)
def test_forward_and_vjp_match_twin(name, kind, dtype):
    z, y = _logits(dtype=dtype), _target(name, kind, dtype=dtype)
    hand, twin = getattr(losses, name), getattr(ref, name)
    g = jnp.asarray(np.random.default_rng(3).standard_normal(), dtype)  # random cotangent

    @jax.jit
    def value_and_vjp(z, y, g):
        (loss, vjp), (loss_ref, vjp_ref) = jax.vjp(hand, z, y), jax.vjp(twin, z, y)
        return loss, loss_ref, vjp(g)[0], vjp_ref(g)[0]

    loss, loss_ref, dz, dz_ref = value_and_vjp(z, y, g)
    assert loss.shape == () and loss.dtype == dtype
    np.testing.assert_allclose(loss, loss_ref, rtol=_tol(dtype), atol=_tol(dtype))
    assert dz.shape == z.shape and dz.dtype == dtype
    np.testing.assert_allclose(dz, dz_ref, rtol=_tol(dtype), atol=_tol(dtype))


@pytest.mark.parametrize("name,kind", CASES)
def test_check_grads_float64(name, kind):
    z, y = _logits(), _target(name, kind)
    hand = getattr(losses, name)
    # jitted: one compile for the many evaluations of the finite-difference check
    check_grads(jax.jit(lambda z: hand(z, y)), (z,), order=2, modes=("rev",))


@pytest.mark.parametrize("name", [n for n in NAMES if n not in SOFTMAX])
@pytest.mark.parametrize("shape", [(N,), (3, 2, 2)])
def test_other_ranks_match_twin(name, shape):
    z, y = _logits(shape), _target(name, "rows", shape)
    hand, twin = getattr(losses, name), getattr(ref, name)
    (loss, dz), (loss_ref, dz_ref) = _value_and_grad(hand)(z, y), _value_and_grad(twin)(z, y)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-12)
    np.testing.assert_allclose(dz, dz_ref, rtol=1e-12, atol=1e-15)


# --- textbook error terms at the pre-activation, exactly -----------------------------------


def test_textbook_gradients():
    z = _logits()
    y = _target("mse", "rows")
    h = jax.nn.sigmoid(z)
    close = dict(rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(jax.grad(losses.mse)(z, y), (z - y) / N, **close)
    np.testing.assert_allclose(
        jax.grad(losses.logistic_mse)(z, y), (h - y) * h * (1 - h) / N, **close
    )
    np.testing.assert_allclose(jax.grad(losses.binary_cross_entropy)(z, y), (h - y) / N, **close)

    labels = _target("softmax_cross_entropy", "labels")
    onehot = jax.nn.one_hot(labels, K, dtype=z.dtype)
    p = jax.nn.softmax(z)
    np.testing.assert_allclose(
        jax.grad(losses.softmax_cross_entropy)(z, labels), (p - onehot) / N, **close
    )
    rows = _target("softmax_cross_entropy", "rows")
    np.testing.assert_allclose(
        jax.grad(losses.softmax_cross_entropy)(z, rows), (p - rows) / N, **close
    )
    # softmax + squared error: J^T (h - y) with the explicit Jacobian diag(h) - h h^T
    jac = jax.vmap(lambda h: jnp.diag(h) - jnp.outer(h, h))(p)
    want = jnp.einsum("nkj,nk->nj", jac, p - onehot) / N
    np.testing.assert_allclose(jax.grad(losses.softmax_mse)(z, labels), want, **close)


def test_textbook_values():
    bce, sce = _value_and_grad(losses.binary_cross_entropy), _value_and_grad(
        losses.softmax_cross_entropy
    )
    # BCE at z = 0: loss log 2 per unit, gradient exactly (1/2 - y) / N
    y = jnp.array([[0.0, 1.0, 0.25], [1.0, 0.0, 0.5]])
    loss, dz = bce(jnp.zeros((2, 3)), y)
    np.testing.assert_allclose(loss, 3 * np.log(2), rtol=1e-15)
    np.testing.assert_array_equal(dz, (0.5 - y) / 2)
    # softmax CE with uniform logits: log K
    np.testing.assert_allclose(sce(jnp.zeros((2, 4)), jnp.array([0, 3]))[0], np.log(4), rtol=1e-15)
    np.testing.assert_allclose(losses.mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0])), 2.5)


def test_extreme_values_exact():
    z = jnp.array([[1e4, -1e4]], jnp.float32)
    wrong = jnp.array([[0.0, 1.0]], jnp.float32)
    # confidently wrong: the log-likelihood cost is the full margin, the gradient is 1
    loss, dz = _value_and_grad(losses.binary_cross_entropy)(z, wrong)
    np.testing.assert_allclose(loss, 2e4)
    np.testing.assert_allclose(dz, [[1.0, -1.0]])
    loss, dz = _value_and_grad(losses.softmax_cross_entropy)(z, jnp.array([1]))
    np.testing.assert_allclose(loss, 2e4)
    np.testing.assert_allclose(dz, [[1.0, -1.0]])
    # ... while the saturated squared-error pairs barely learn (the slow-learning contrast)
    np.testing.assert_array_equal(_value_and_grad(losses.logistic_mse)(z, wrong)[1], [[0.0, 0.0]])
    np.testing.assert_array_equal(
        _value_and_grad(losses.softmax_mse)(z, jnp.array([1]))[1], [[0.0, 0.0]]
    )


def test_int_labels_equal_one_hot_rows_and_have_no_cotangent():
    z = _logits()
    labels = _target("softmax_cross_entropy", "labels")
    onehot = jax.nn.one_hot(labels, K, dtype=z.dtype)
    for name in SOFTMAX:
        f = getattr(losses, name)
        np.testing.assert_allclose(f(z, labels), f(z, onehot), rtol=1e-14)
        np.testing.assert_allclose(jax.grad(f)(z, labels), jax.grad(f)(z, onehot), rtol=1e-14)
        # allow_int: the integer labels get a float0 cotangent (no gradient)
        _, dl = jax.grad(f, argnums=(0, 1), allow_int=True)(z, labels)
        assert dl.dtype == jax.dtypes.float0


@pytest.mark.parametrize("name", NAMES)
def test_targets_are_not_differentiated(name):
    z, y = _logits(), _target(name, "rows")
    for mod in (losses, ref):
        dy = jax.grad(getattr(mod, name), argnums=1)(z, y)
        assert dy.shape == y.shape
        np.testing.assert_array_equal(dy, jnp.zeros_like(y))


# --- extremes, NaN, dtypes, transformations, zero-size ---------------------------------------


@pytest.mark.parametrize("name,kind", CASES)
def test_extreme_logits_float32_finite(name, kind):
    z = jnp.array(
        [[1e4, -1e4, 0.0, 1e4], [-1e4, -1e4, -1e4, -1e4], [1e4, 1e4, 1e4, 1e4]], jnp.float32
    )
    y = _target(name, kind, shape=z.shape, dtype=jnp.float32)
    results = [_value_and_grad(getattr(mod, name))(z, y) for mod in (losses, ref)]
    for loss, dz in results:
        assert np.isfinite(loss) and np.isfinite(dz).all(), (name, loss, dz)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-6)


@pytest.mark.parametrize("name,kind", CASES)
def test_nan_propagates(name, kind):
    z = _logits().at[1, 2].set(jnp.nan)
    y = _target(name, kind)
    loss, dz = jax.value_and_grad(getattr(losses, name))(z, y)
    assert np.isnan(loss)
    assert np.isnan(dz[1, 2])
    # other examples' error terms are untouched
    assert np.isfinite(np.delete(np.asarray(dz), 1, axis=0)).all()


@pytest.mark.parametrize("name,kind", CASES)
def test_bfloat16_runs(name, kind):
    z = _logits(dtype=jnp.bfloat16)
    y = _target(name, kind, dtype=jnp.bfloat16)
    loss, dz = _value_and_grad(getattr(losses, name))(z, y)
    assert loss.dtype == jnp.bfloat16 and dz.dtype == jnp.bfloat16
    want = jax.jit(getattr(ref, name))(
        z.astype(jnp.float32), y if kind == "labels" else y.astype(jnp.float32)
    )
    np.testing.assert_allclose(float(loss), float(want), rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize(
    "name,kind",
    [
        ("binary_cross_entropy", "rows"),
        ("softmax_cross_entropy", "labels"),
        ("softmax_mse", "labels"),
    ],
)
def test_jit_and_vmap(name, kind):
    hand, twin = getattr(losses, name), getattr(ref, name)
    zs = _logits((3, N, K))  # e.g. three seeds of a grid, each with its own batch of targets
    ys = jnp.stack([_target(name, kind, seed=s) for s in range(3)])
    got = jax.jit(jax.vmap(jax.value_and_grad(hand)))(zs, ys)
    twin_value_and_grad = _value_and_grad(twin)
    for i in range(3):
        want = twin_value_and_grad(zs[i], ys[i])
        for a, b in zip(got, want):
            np.testing.assert_allclose(a[i], b, rtol=1e-12, atol=1e-15)


def test_out_of_range_labels_under_jit_give_nan():
    z = _logits()
    bad = jnp.array([0, 1, K, 2, -1])
    for f in (losses.softmax_cross_entropy, ref.softmax_cross_entropy, losses.softmax_mse):
        loss, dz = jax.jit(jax.value_and_grad(f))(z, bad)
        assert np.isnan(loss)
        assert np.isnan(dz[2]).all() and np.isnan(dz[4]).all()


@pytest.mark.parametrize("name,kind", CASES)
def test_zero_size_batch(name, kind):
    z = jnp.zeros((0, K))
    y = jnp.zeros((0,), jnp.int32) if kind == "labels" else jnp.zeros((0, K))
    loss, dz = jax.value_and_grad(getattr(losses, name))(z, y)
    assert np.isnan(loss)  # the mean over an empty batch, as jnp.mean
    assert dz.shape == (0, K)


def test_integer_and_lower_precision_targets_are_cast():
    z = _logits()
    y01 = jnp.array(np.random.default_rng(0).integers(0, 2, (N, K)))
    np.testing.assert_allclose(
        losses.binary_cross_entropy(z, y01), losses.binary_cross_entropy(z, y01.astype(z.dtype))
    )
    y32 = _target("mse", "rows", dtype=jnp.float32)
    assert losses.mse(z, y32).dtype == jnp.float64


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("mod", [losses, ref])
@pytest.mark.parametrize("name", NAMES)
def test_bad_input_common(mod, name):
    f = getattr(mod, name)
    arg = "pred" if name == "mse" else "logits"
    z = _logits()
    y = _target(name, "rows")
    with pytest.raises(
        TypeError, match=rf"{name}: {arg} must have a floating-point dtype, got int32"
    ):
        f(jnp.ones((N, K), jnp.int32), y)
    with pytest.raises(TypeError, match=rf"{name}: .* must have a real dtype, got complex"):
        f(z, y.astype(jnp.complex64))
    if name in SOFTMAX:
        with pytest.raises(
            ValueError, match=rf"{name}: logits must have rank 2 \(N, K\), got rank 1"
        ):
            f(z[:, 0], y[:, 0])
        with pytest.raises(
            ValueError, match=rf"{name}: target rows must have the same shape as logits"
        ):
            f(z, y[:, :2])
        with pytest.raises(
            ValueError, match=rf"{name}: target rows must have the same shape as logits"
        ):
            f(z, y[:1])  # (1, K) would broadcast: refused
    else:
        with pytest.raises(
            ValueError,
            match=rf"{name}: target must have the same shape as {arg} \(no broadcasting\), "
            rf"got {arg}.shape=\(5, 4\), target.shape=\(1, 4\)",
        ):
            f(z, y[:1])
        with pytest.raises(ValueError, match=rf"{name}: target must have the same shape as {arg}"):
            f(z, y[:, 0])
        with pytest.raises(ValueError, match=rf"{name}: {arg} must have rank >= 1"):
            f(jnp.float64(1.0), jnp.float64(1.0))


@pytest.mark.parametrize("mod", [losses, ref])
@pytest.mark.parametrize("name", SOFTMAX)
def test_bad_labels(mod, name):
    f = getattr(mod, name)
    z = _logits()
    with pytest.raises(
        ValueError, match=rf"{name}: labels must lie in \[0, 4\) for 4 classes, got label 4"
    ):
        f(z, jnp.array([0, 1, 4, 2, 3]))
    with pytest.raises(
        ValueError, match=rf"{name}: labels must lie in \[0, 4\) for 4 classes, got label -1"
    ):
        f(z, np.array([0, -1, 3, 2, 3]))
    with pytest.raises(
        ValueError,
        match=rf"{name}: integer labels must have shape \(N,\) = \(5,\), got labels.shape=\(5, 1\)",
    ):
        f(z, jnp.zeros((5, 1), jnp.int32))
    with pytest.raises(ValueError, match=rf"{name}: integer labels must have shape \(N,\)"):
        f(z, jnp.zeros((4,), jnp.int32))
    with pytest.raises(
        TypeError,
        match=rf"{name}: labels must be integer class indices \(N,\) or floating target rows",
    ):
        f(z, jnp.zeros((5,), bool))
