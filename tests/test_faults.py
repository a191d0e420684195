"""Bad input gets a correct result or a named error; forward mode on a hand rule names the op."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn
from funcnn import BatchNorm, Conv1D, Dense, reference as ref


@pytest.mark.parametrize("mod", [funcnn, ref], ids=["hand", "autodiff"])
def test_softmax_cross_entropy_masks_minus_inf_logits(mod):
    z = jnp.array([[1.0, -jnp.inf, 2.0, 0.5], [-jnp.inf, 0.3, -1.0, 2.0]], jnp.float32)
    labels = jnp.array([0, 3])
    want = optax.softmax_cross_entropy_with_integer_labels(jnp.where(jnp.isinf(z), -1e30, z), labels).mean()
    got = mod.softmax_cross_entropy(z, labels)
    assert np.isfinite(got) and float(got) == pytest.approx(float(want), rel=1e-6)
    g = jax.grad(lambda z: mod.softmax_cross_entropy(z, labels))(z)
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(np.asarray(g)[np.isinf(np.asarray(z))], 0.0)
    # a target on a masked-out class: the loss is +inf, not NaN
    assert float(mod.softmax_cross_entropy(z, jnp.array([1, 3]))) == np.inf


@pytest.mark.parametrize("mod", [funcnn, ref], ids=["hand", "autodiff"])
@pytest.mark.parametrize("op", ["binary_cross_entropy", "logistic_mse"])
@pytest.mark.parametrize("bad", [2.0, -1.0, np.nan])
def test_targets_outside_unit_interval_are_named_errors(mod, op, bad):
    with pytest.raises(ValueError, match=rf"{op}: targets must lie in \[0, 1\].*target value"):
        getattr(mod, op)(jnp.zeros((2, 1)), jnp.array([[bad], [0.0]]))
    getattr(mod, op)(jnp.zeros((2, 1)), jnp.array([[1.0], [0.0]]))  # in range: fine


@pytest.mark.parametrize("mod", [funcnn, ref], ids=["hand", "autodiff"])
def test_softmax_target_rows_outside_unit_interval_are_named_errors(mod):
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: target rows' entries must lie in \[0, 1\].*-1.0"):
        mod.softmax_cross_entropy(jnp.zeros((1, 3)), jnp.array([[-1.0, 2.0, 0.0]]))


def test_layer_params_from_another_layer_are_named_errors():
    x = jnp.ones((2, 3))
    _, p5, _ = Dense(5).init(jax.random.key(0), x.shape)
    with pytest.raises(ValueError, match=r"Dense\(7\): params\['b'\] has shape \(5,\) but this layer expects \(7,\)"):
        Dense(7).apply(p5, (), x)
    with pytest.raises(ValueError, match=r"Dense\(5\): params lack 'b'"):
        Dense(5).apply({"w": p5["w"]}, (), x)
    with pytest.raises(TypeError, match=r"Dense\(5\): params must be the dict with keys 'w', 'b'"):
        Dense(5).apply([p5["w"]], (), x)
    _, pc, _ = Conv1D(4, 3).init(jax.random.key(0), (2, 9, 2))
    with pytest.raises(ValueError, match=r"Conv1D\(4, 5\): params\['w'\] has shape \(3, 2, 4\)"):
        Conv1D(4, 5).apply(pc, (), jnp.ones((2, 9, 2)))


def test_batch_norm_needs_two_values_and_its_state():
    for mod in (funcnn, ref):
        with pytest.raises(ValueError, match=r"batch_norm: needs more than one value per channel.*x.shape=\(1, 4\)"):
            mod.batch_norm(jnp.ones((1, 4)), jnp.ones(4), jnp.zeros(4))
    layer = BatchNorm()
    _, p, s = layer.init(jax.random.key(0), (4, 3))
    with pytest.raises(TypeError, match=r"BatchNorm\(\): state must be the dict with keys 'mean', 'var'.*NoneType"):
        layer.apply(p, None, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=r"BatchNorm\(\): params lack 'beta'"):
        layer.apply({"gamma": p["gamma"]}, s, jnp.ones((4, 3)))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_settings_are_named_errors(value):
    with pytest.raises(ValueError, match="leaky_relu: negative_slope must be a finite number"):
        funcnn.leaky_relu(jnp.ones(3), value)
    with pytest.raises(ValueError, match="elu: alpha must be a finite number"):
        funcnn.elu(jnp.ones(3), value)


CALLS = [
    ("relu", lambda m, x: m.relu(x).sum()),
    ("dense", lambda m, x: m.dense(x, jnp.ones((3, 2), jnp.float32)).sum()),
    ("conv1d/conv2d", lambda m, x: m.conv1d(x[:, :, None], jnp.ones((2, 1, 2), jnp.float32)).sum()),
    ("max_pool1d/2d", lambda m, x: m.max_pool1d(x[:, :, None], 2).sum()),
    ("softmax_cross_entropy", lambda m, x: m.softmax_cross_entropy(x, jnp.array([0, 1]))),
]


@pytest.mark.parametrize("name, call", CALLS, ids=[c[0].split("/")[0] for c in CALLS])
@pytest.mark.parametrize("transform", ["jvp", "jacfwd"])
def test_forward_mode_on_a_hand_rule_names_the_op_and_the_way_out(name, call, transform):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3)), jnp.float32)
    f = {"jvp": lambda: jax.jvp(lambda x: call(funcnn, x), (x,), (x,)),
         "jacfwd": lambda: jax.jacfwd(lambda x: call(funcnn, x))(x)}[transform]
    with pytest.raises(TypeError, match=rf"funcnn.{name}: forward-mode differentiation .*rule=\"autodiff\""):
        f()


@pytest.mark.parametrize("name, call", CALLS, ids=[c[0].split("/")[0] for c in CALLS])
def test_hessian_of_a_hand_rule_equals_the_twins_or_names_the_op(name, call):
    """jax.hessian is forward-over-reverse: JAX runs it through some custom_vjp rules (those
    without static arguments) and refuses the others; either way no wrong number comes out."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3)), jnp.float32)
    want = jax.hessian(lambda x: call(ref, x))(x)
    try:
        got = jax.hessian(lambda x: call(funcnn, x))(x)
    except TypeError as e:
        assert f"funcnn.{name}: forward-mode differentiation" in str(e)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_forward_mode_works_on_the_twins_and_reverse_mode_on_the_hand_rules():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3)), jnp.float32)
    h_twin = jax.hessian(lambda x: ref.softmax_cross_entropy(x, jnp.array([0, 1])))(x)
    h_rev = jax.jacrev(jax.grad(lambda x: funcnn.softmax_cross_entropy(x, jnp.array([0, 1]))))(x)
    np.testing.assert_allclose(h_rev, h_twin, rtol=1e-5, atol=1e-6)
