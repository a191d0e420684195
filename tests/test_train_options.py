"""Tests of funcnn.train.options: one TrainOptions for fit and run_grid, keywords and options= alike."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import optax
import pytest

from funcnn.train import TrainOptions, TrainSpec, fit, prepare_grid, run_grid
from funcnn.train.options import FIELDS, resolve_options
from _tiny import mlp, xent

_rng = np.random.default_rng(0)
X = _rng.normal(size=(64, 5)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int32)
MODEL = mlp()


def build(cfg):
    return TrainSpec(MODEL, xent, optax.sgd(cfg["lr"]))


GRID = {"lr": [0.05, 0.1], "seed": [0, 1]}
OPTS = TrainOptions(steps=6, batch_size=16, eval_every=3, progress=False, steps_per_call=2)
KW = dict(steps=6, batch_size=16, eval_every=3, progress=False, steps_per_call=2)


def test_fit_and_run_grid_share_one_set_of_defaults():
    defaults = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    for fn in (fit, run_grid, prepare_grid):
        params = inspect.signature(fn).parameters
        assert {k: params[k].default for k in FIELDS} == defaults, fn.__name__
        assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in FIELDS)
        assert params["options"].default is None
    assert defaults["keep_checkpoints"] == 3 and defaults["batch_size"] == 128
    # and what the functions use when a keyword is left out is that same set
    assert resolve_options("fit", None, {}) == resolve_options("run_grid", None, {}) == TrainOptions()
    # the signature binds like the old explicit one
    inspect.signature(fit).bind(MODEL, xent, optax.sgd(0.1), (X, Y), steps=1, keep_checkpoints=2)
    with pytest.raises(TypeError):
        inspect.signature(run_grid).bind(build, GRID, (X, Y), stepz=1)


def test_fit_takes_options_and_keywords_alike():
    a = fit(MODEL, xent, optax.sgd(0.1), (X, Y), options=OPTS)
    b = fit(MODEL, xent, optax.sgd(0.1), (X, Y), **KW)
    c = fit(MODEL, xent, optax.sgd(0.1), (X, Y), options=OPTS, steps=6)  # agreeing keyword: fine
    for r in (b, c):
        np.testing.assert_array_equal(a.history.step_metrics["loss"], r.history.step_metrics["loss"])
        np.testing.assert_array_equal(a.history.eval_steps, r.history.eval_steps)
    assert a.step == 6 and list(a.history.eval_steps) == [0, 3, 6]


def test_run_grid_takes_options_and_keywords_alike():
    a = run_grid(build, GRID, (X, Y), options=OPTS)
    b = run_grid(build, GRID, (X, Y), **KW)
    for ma, mb in zip(a.members, b.members, strict=True):
        np.testing.assert_array_equal(ma.history.step_metrics["loss"], mb.history.step_metrics["loss"])
    assert prepare_grid(build, GRID, (X, Y), options=OPTS).run().members[0].step == 6


def test_checkpoint_options_reach_the_checkpointer(tmp_path):
    opts = dataclasses.replace(OPTS, checkpoint_dir=str(tmp_path / "fit"), checkpoint_every=1, keep_checkpoints=2)
    fit(MODEL, xent, optax.sgd(0.1), (X, Y), options=opts)
    assert sorted(int(p.name) for p in (tmp_path / "fit").iterdir() if p.name.isdigit()) == [5, 6]
    run_grid(build, GRID, (X, Y), options=dataclasses.replace(opts, checkpoint_dir=tmp_path / "grid"))
    (group,) = (tmp_path / "grid").iterdir()
    assert sorted(int(p.name) for p in group.iterdir() if p.name.isdigit()) == [5, 6]


def test_a_keyword_that_contradicts_options_is_an_error():
    with pytest.raises(ValueError, match=r"fit: steps=7 conflicts with options.steps=6; give each setting once"):
        fit(MODEL, xent, optax.sgd(0.1), (X, Y), options=OPTS, steps=7)
    with pytest.raises(ValueError, match=r"run_grid: epochs=1 conflicts with options.epochs=None"):
        run_grid(build, GRID, (X, Y), options=OPTS, epochs=1)
    with pytest.raises(TypeError, match="run_grid: options must be a funcnn.train.TrainOptions, got dict"):
        run_grid(build, GRID, (X, Y), options=KW)
    with pytest.raises(TypeError, match=r"fit\(\) got an unexpected keyword argument 'stepz'"):
        fit(MODEL, xent, optax.sgd(0.1), (X, Y), stepz=3)


@pytest.mark.parametrize("kw, err, msg", [
    (dict(keep_checkpoints=0), ValueError, "keep_checkpoints must be an int >= 1, got 0"),
    (dict(batch_size=2.5), ValueError, "batch_size must be an int >= 1, got 2.5"),
    (dict(eval_every=-1), ValueError, "eval_every must be an int >= 0, got -1"),
    (dict(eval_batch_size=0), ValueError, "eval_batch_size must be an int >= 1, got 0"),
    (dict(progress="yes"), TypeError, "progress must be True or False, got 'yes'"),
    (dict(classification=1), TypeError, r"classification must be True or False or None, got 1"),
    (dict(diagnostics=3), TypeError, "diagnostics must be a function or None, got int"),
    (dict(checkpoint_dir=3), TypeError, r"checkpoint_dir must be a path \(str or os.PathLike\) or None, got int"),
    (dict(run_dir="out"), TypeError, "run_dir must be a funcnn.train.RunDir or None, got str"),
    (dict(jit_kwargs=[1]), TypeError, "jit_kwargs must be a dict of jax.jit arguments or None, got list"),
    (dict(mesh="grid=2"), TypeError, "mesh must be a jax.sharding.Mesh"),
    (dict(resume=True), ValueError, "resume=True needs a checkpoint_dir"),
])
def test_bad_values_name_the_function_and_the_keyword(kw, err, msg):
    with pytest.raises(err, match="fit: " + msg):
        fit(MODEL, xent, optax.sgd(0.1), (X, Y), steps=1, **kw)
    with pytest.raises(err, match="run_grid: " + msg):
        run_grid(build, GRID, (X, Y), steps=1, **kw)
    with pytest.raises(err, match="TrainOptions: " + msg):
        TrainOptions(**kw)


def test_options_are_frozen_and_plain():
    o = TrainOptions(steps=np.int64(5), progress=np.bool_(False))
    assert type(o.steps) is int and o.progress is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.steps = 3  # type: ignore[misc]
    assert dataclasses.replace(o, steps=9).steps == 9
