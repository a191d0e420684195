"""Residual models: shapes, the inner-serial params, SkipInit's zero branch scale, hand vs
autodiff gradients of a deep residual net, and error terms through every block."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn
from funcnn.nn.models import mlp, residual_cnn1d, residual_mlp


def _x(shape, seed=0, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def test_residual_mlp_shapes_and_one_error_term_per_weighted_layer():
    model = residual_mlp(6, 16, 4, "tanh")
    out, params, state = model.init(jax.random.key(0), (5, 9))
    assert out == (5, 4) and model.apply(params, state, _x((5, 9)))[0].shape == (5, 4)
    terms = funcnn.error_terms(model, params, state, funcnn.softmax_cross_entropy, _x((5, 9)), jnp.arange(5) % 4)
    assert len(terms.names) == 1 + 6 + 1 and all(np.isfinite(terms.delta_norms))


def test_skipinit_blocks_start_as_the_identity():
    model = residual_mlp(4, 8, 3, "relu", branch_scale=0.0)
    plain_head = mlp((8,), 3, "relu")
    _, params, state = model.init(jax.random.key(1), (2, 5))
    # alpha = 0 in every block: the net is the input projection and the classifier alone
    head_params = (params[0], params[1], params[2], params[-1])
    x = _x((2, 5))
    np.testing.assert_allclose(model.apply(params, state, x)[0], plain_head.apply(head_params, ((),) * 4, x)[0], rtol=1e-6)
    alphas = [p["alpha"] for p in params[3:-1]]
    assert len(alphas) == 4 and all(float(a) == 0.0 for a in alphas)


def test_a_deep_residual_net_has_equal_hand_and_autodiff_gradients():
    previous = jax.config.read("jax_enable_x64")  # the suite runs in x64 (conftest); leave it as found
    jax.config.update("jax_enable_x64", True)
    try:
        model = residual_mlp(40, 12, 3, "tanh", branch_scale=0.5)
        _, params, state = model.init(jax.random.key(2), (6, 7))
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x, y = _x((6, 7), dtype=jnp.float64), jnp.arange(6) % 3

        def loss(p, m, cost):
            return cost(m.apply(p, state, x)[0], y)

        g_hand = jax.grad(loss)(params, model, funcnn.softmax_cross_entropy)
        auto = model.with_rule("autodiff")
        g_auto = jax.grad(loss)(params, auto, funcnn.reference.softmax_cross_entropy)
        for a, b in zip(jax.tree.leaves(g_hand), jax.tree.leaves(g_auto)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        jaxpr = str(jax.make_jaxpr(lambda p: jax.grad(loss)(p, auto, funcnn.reference.softmax_cross_entropy))(params))
        assert "custom_vjp_call" not in jaxpr
        assert float(jnp.linalg.norm(g_hand[3]["branch"][0]["w"])) > 0  # the first block learns
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_residual_cnn1d_and_bad_arguments():
    model = residual_cnn1d(3, 6, 10, "gelu", w_init="he_normal")
    out, params, state = model.init(jax.random.key(0), (4, 40, 1))
    assert out == (4, 10) and model.apply(params, state, _x((4, 40, 1)))[0].shape == (4, 10)
    with pytest.raises(ValueError, match="residual_mlp: depth must be a positive int"):
        residual_mlp(0, 8, 2)
    with pytest.raises(TypeError, match="residual_cnn1d: branch_scale must be None or a number"):
        residual_cnn1d(2, 4, 2, branch_scale="zero")
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        residual_mlp(2, 4, 2, "nope")
