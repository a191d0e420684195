"""Initializers as names and grid choices: Dense/Conv/PReLU take a name or a Choice of names,
and run_grid(choices=("init", ...)) trains members that differ in their initializer in one
program, each member's weights drawn by its own initializer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn
from funcnn import Choice, Conv2D, Dense, PReLU, initializers as init
from funcnn.train import TrainSpec, run_grid


def test_a_name_is_the_factory_with_its_defaults():
    key = jax.random.key(3)
    for name in ("he_normal", "glorot_uniform", "orthogonal", "zeros"):
        w = Dense(7, w_init=name).init(key, (2, 5))[1]["w"]
        expected = Dense(7, w_init=getattr(init, name)()).init(key, (2, 5))[1]["w"]
        np.testing.assert_array_equal(w, expected)
    w = Conv2D(4, 3, w_init="he_uniform").init(key, (1, 6, 6, 2))[1]["w"]
    np.testing.assert_array_equal(w, Conv2D(4, 3, w_init=init.he_uniform()).init(key, (1, 6, 6, 2))[1]["w"])
    alpha = PReLU(init="zeros").init(key, (2, 3))[1]["alpha"]
    np.testing.assert_array_equal(alpha, np.zeros(3))
    assert "he_normal" in init.INITIALIZER_NAMES and "constant" not in init.INITIALIZER_NAMES


def test_a_traced_choice_draws_each_members_weights_by_its_pick():
    opts = ("glorot_normal", "he_normal", "zeros")
    key = jax.random.key(0)

    def draw(i):
        return Dense(64, w_init=Choice(opts, i)).init(key, (1, 100))[1]["w"]

    ws = jax.jit(jax.vmap(draw))(jnp.arange(3))
    for i, name in enumerate(opts):
        np.testing.assert_allclose(ws[i], Dense(64, w_init=name).init(key, (1, 100))[1]["w"], rtol=1e-6)
    np.testing.assert_allclose(Dense(64, w_init=Choice(opts, 1)).init(key, (1, 100))[1]["w"], ws[1], rtol=1e-6)


def test_bad_initializer_specs_are_named():
    with pytest.raises(ValueError, match=r"Dense\(3\): w_init 'foo' is not an initializer name; expected one of zeros"):
        Dense(3, w_init="foo")
    with pytest.raises(ValueError, match=r"w_init Choice\(foo\) has unknown initializer 'foo'"):
        Dense(3, w_init=Choice(("foo", "he_normal"), 0))
    with pytest.raises(TypeError, match="b_init must be an initializer .* got 3"):
        Conv2D(3, 3, b_init=3)
    with pytest.raises(ValueError, match="the initializer name 'he_normal' is taken"):
        init.register_initializer("he_normal", init.he_normal)


def test_a_users_initializer_is_a_name_too():
    init.register_initializer("twice_lecun", lambda: init.lecun_normal(gain=2.0))
    try:
        key = jax.random.key(1)
        np.testing.assert_allclose(Dense(5, w_init="twice_lecun").init(key, (1, 4))[1]["w"],
                                   2 * Dense(5).init(key, (1, 4))[1]["w"], rtol=1e-6)
    finally:
        init._NAMED.pop("twice_lecun")


def test_an_init_choice_grid_is_one_program_with_each_members_own_draw():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 64)).astype(np.float32), (np.arange(64) % 4).astype(np.int32)

    def build(c):
        model = funcnn.nn.models.mlp((256,), 4, c["activation"], w_init=c["init"])
        return TrainSpec(model, "softmax_cross_entropy", optax.sgd(1e-7))

    grid = {"init": ["glorot_normal", "he_normal"], "activation": ["relu", "tanh"], "seed": [0, 1]}
    res = run_grid(build, grid, (x, y), steps=1, batch_size=32, choices=("init", "activation"), progress=False)
    assert len(res.groups) == 1  # one structure, one compiled program
    for m in res.members:
        w = np.asarray(m.params[1]["w"])  # serial(Flatten, Dense(256), act, Dense(4))
        fan_in, fan_out = 64, 256
        want = np.sqrt(2 / fan_in) if m.config["init"] == "he_normal" else np.sqrt(2 / (fan_in + fan_out))
        assert np.std(w) == pytest.approx(want, rel=0.05), m.config
    by = {(m.config["init"], m.config["seed"]): np.asarray(m.params[1]["w"]) for m in res.members}
    assert not np.allclose(by[("he_normal", 0)], by[("he_normal", 1)])  # seeds still differ
