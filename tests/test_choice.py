"""funcnn.Choice and choices as grid axes: one compiled program for same-shaped alternatives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn
from funcnn import Activation, Choice
from funcnn.nn.diagnostics import activation_stats
from funcnn.nn.models import mlp
from funcnn.train import TrainSpec, prepare_grid, run_grid
from funcnn.study.compilation import CompileStats, compile_cache_dir, enable_compilation_cache

ACTS = ("relu", "prelu", "swish", "tanh")


# ------------------------------------------------------------------------------ Choice
def test_choice_validates_its_arguments():
    with pytest.raises(TypeError, match="options must be a non-empty sequence of names"):
        Choice("relu", 0)
    with pytest.raises(ValueError, match="distinct strings"):
        Choice(("relu", "relu"), 0)
    with pytest.raises(ValueError, match="index 2 is out of range for 2 options"):
        Choice(("relu", "tanh"), 2)
    with pytest.raises(TypeError, match="index must be an int or an integer scalar array"):
        Choice(("relu", "tanh"), 0.5)
    with pytest.raises(TypeError, match="index must be an int"):
        Choice(("relu", "tanh"), True)
    with pytest.raises(ValueError, match="'gelu' is not one of the options"):
        Choice.of(("relu", "tanh"), "gelu")
    c = Choice.of(("relu", "tanh"), "tanh")
    assert c.concrete and c.value == "tanh" and c.index == 1 and c.label == "tanh"
    with pytest.raises(ValueError, match=r"no branch for \['tanh'\]"):
        c.switch({"relu": lambda x: x}, 1.0)


def test_traced_choice_switches_by_data():
    def f(i, x):
        c = Choice(("relu", "tanh"), i)
        assert not c.concrete and c.label == "relu|tanh"
        with pytest.raises(TypeError, match="is traced"):
            c.value
        return c.switch({"relu": funcnn.relu, "tanh": funcnn.tanh}, x), c.pick([jnp.float32(10), jnp.float32(20)])

    x = jnp.array([-1.0, 0.5])
    for i, (fn, v) in enumerate(((funcnn.relu, 10), (funcnn.tanh, 20))):
        y, p = jax.jit(f)(jnp.int32(i), x)
        np.testing.assert_array_equal(y, fn(x))
        assert float(p) == v


def test_choice_activation_params_are_the_union_and_unpicked_ones_get_no_gradient():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 6)), jnp.float32)
    for i, name in enumerate(ACTS):
        layer = Activation(Choice(ACTS, i))
        _, params, _ = layer.init(jax.random.key(0), x.shape)
        assert [jax.tree.structure(p).num_leaves for p in params] == [0, 1, 1, 0]
        y, _ = layer.apply(params, (), x)
        plain = Activation(name)
        _, pp, _ = plain.init(jax.random.key(0), x.shape)
        np.testing.assert_array_equal(y, plain.apply(pp, (), x)[0])

        def loss(params, i):
            return jnp.sum(Activation(Choice(ACTS, i)).apply(params, (), x)[0] ** 2)

        g = jax.jit(jax.grad(loss))(params, jnp.int32(i))
        if name != "prelu":
            np.testing.assert_array_equal(g[1]["alpha"], 0.0)
        if name != "swish":
            assert float(g[2]["beta"]) == 0.0
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        Activation(Choice(("relu", "nope"), 0))
    with pytest.raises(TypeError, match="settings of a choice go per option"):
        Activation(Choice(("relu", "leaky_relu"), 0), negative_slope=0.2)


def test_rule_choice_matches_each_rule():
    x = jnp.asarray(np.random.default_rng(1).standard_normal((8, 5)), jnp.float32)
    y = jnp.arange(8) % 3

    def grads(rule):
        model = mlp((7,), 3, "tanh", rule=rule)
        _, params, state = model.init(jax.random.key(0), x.shape)
        return jax.grad(lambda p: funcnn.softmax_cross_entropy(model.apply(p, state, x)[0], y))(params)

    for i, r in enumerate(("hand", "autodiff")):
        got = jax.jit(lambda i: grads(Choice(("hand", "autodiff"), i)))(jnp.int32(i))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(grads(r))):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="unknown rule 'fast'"):
        mlp((7,), 3, rule=Choice(("hand", "fast"), 0))


def test_activation_stats_of_a_choice_pick_the_option():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((16, 5)) * 4, jnp.float32)
    for name in ("relu", "tanh"):
        i = ("relu", "tanh").index(name)
        model = mlp((6,), 2, Choice(("relu", "tanh"), i))
        _, params, state = model.init(jax.random.key(0), x.shape)
        traced = jax.jit(lambda p, i: activation_stats(mlp((6,), 2, Choice(("relu", "tanh"), i)), p, state, x))(params, i)
        plain_model = mlp((6,), 2, name)
        _, pp, _ = plain_model.init(jax.random.key(0), x.shape)
        plain = activation_stats(plain_model, pp, state, x)
        for f in ("dead_fraction", "saturated_fraction", "mean"):
            np.testing.assert_allclose(getattr(traced, f), getattr(plain, f), rtol=1e-6, equal_nan=True)
        assert traced.activations == ("relu|tanh",)


# ------------------------------------------------------------------------- choices in grids
def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 6)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int32)


def _build(c):
    return TrainSpec(mlp((8,), 2, c["activation"]), "softmax_cross_entropy", optax.adam(c["lr"]))


GRID = {"activation": list(ACTS), "lr": [1e-2, 5e-2], "seed": [0, 1]}
OPTS = dict(steps=24, batch_size=16, eval_every=12, steps_per_call=8, progress=False)


@pytest.fixture(scope="module")
def static_grid():
    x, y = _data()
    return run_grid(_build, GRID, (x, y), test_data=(x, y), **OPTS)


@pytest.mark.parametrize("mode", ["blocks", "select"])
def test_a_choice_grid_is_one_program_and_matches_one_program_per_activation(mode, static_grid):
    x, y = _data()
    static = static_grid
    stats = CompileStats.start()
    chosen = run_grid(_build, GRID, (x, y), test_data=(x, y), choices=("activation",), choice_mode=mode, **OPTS)
    assert len(static.groups) == len(ACTS) and len(chosen.groups) == 1
    g = chosen.groups[0]
    assert g.traces == 1 and g.compilations == 2 and g.compile_seconds > 0  # the chunk and the evaluation
    assert stats.read().compilations >= 2
    for a, b in zip(chosen.members, static.members):
        assert a.config == b.config
        np.testing.assert_allclose(a.history.step_metrics["loss"], b.history.step_metrics["loss"], rtol=1e-5, atol=1e-6)
        assert a.final["test_accuracy"] == pytest.approx(b.final["test_accuracy"], abs=1.5 / len(x))
        for layer in (1, 3):  # the Dense layers' trained weights
            for k in ("w", "b"):
                np.testing.assert_allclose(a.params[layer][k], b.params[layer][k], rtol=1e-5, atol=1e-6)
    prelu = [m for m in chosen.members if m.config["activation"] == "prelu"][0]
    relu = [m for m in chosen.members if m.config["activation"] == "relu"][0]
    assert not np.all(prelu.params[2][1]["alpha"] == 0.25)  # the picked slope trained
    np.testing.assert_array_equal(relu.params[2][1]["alpha"], 0.25)  # an unpicked one did not move


def test_choices_are_validated():
    x, y = _data()
    with pytest.raises(ValueError, match="choice key 'act' is not a grid key"):
        run_grid(_build, GRID, (x, y), choices=("act",), **OPTS)
    with pytest.raises(TypeError, match="choice key 'lr' must have string values"):
        run_grid(_build, GRID, (x, y), choices=("lr",), batched=(), **OPTS)
    with pytest.raises(ValueError, match="choice_mode must be 'blocks' or 'select'"):
        run_grid(_build, GRID, (x, y), choices=("activation",), choice_mode="fast", **OPTS)


def test_a_prepared_grid_compiles_ahead_and_then_trains_without_compiling():
    x, y = _data()

    def build(c):  # a build of its own: programs are cached per build function
        return _build(c)

    p = prepare_grid(build, GRID, (x, y), choices=("activation",), **OPTS)
    p.compile()
    assert p.compilations == 2
    p.compile()  # a no-op once done
    assert p.compilations == 2
    stats = CompileStats.start()
    res = p.run()
    assert not res.interrupted and res.groups[0].compilations == 2
    assert stats.read().compilations <= 2  # host-side helpers at most, no member program


# --------------------------------------------------------------------- compilation cache
def test_compilation_cache_folder_and_opt_out(monkeypatch, tmp_path):
    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv("FUNCNN_NO_COMPILE_CACHE", "1")
        assert enable_compilation_cache() is None
        monkeypatch.delenv("FUNCNN_NO_COMPILE_CACHE")
        assert enable_compilation_cache(False) is None
        monkeypatch.setenv("FUNCNN_COMPILE_CACHE_DIR", str(tmp_path / "c"))
        assert compile_cache_dir() == tmp_path / "c"
        assert enable_compilation_cache() == str(tmp_path / "c")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
        monkeypatch.delenv("FUNCNN_COMPILE_CACHE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
        assert compile_cache_dir() == tmp_path / "x" / "funcnn" / "jax-compile"
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
