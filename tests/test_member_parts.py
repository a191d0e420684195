"""A grid group trained as slices side by side (TrainOptions.parts): training bitwise the same as
one vmapped program (params, step losses), evaluations the same up to their last bit, every
record once, and checkpoints that resume under another number of slices."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest

from funcnn import Activation, Dense, serial
from funcnn.train import RunDir, TrainSpec, run_grid
from funcnn.train.engine.carry import MemberParts, auto_parts, slices_of

from _tiny import xent


def _data(n=96, d=6, k=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, size=n).astype(np.int32)


def build(c):
    model = serial(Dense(8), Activation(c["activation"]), Dense(3))  # the activation: a choice, picked by data
    return TrainSpec(model, xent, optax.adam(c["lr"]))


GRID = {"activation": ["relu", "tanh"], "lr": [1e-2, 3e-2], "seed": [0, 1]}  # 2 blocks of 4 members


def _run(parts, **kw):
    x, y = _data()
    return run_grid(build, GRID, (x, y), test_data=(x[:32], y[:32]), steps=24, batch_size=16, eval_every=8,
                    steps_per_call=4, batched=("lr",), choices=("activation",), progress=False, parts=parts, **kw)


def _same(a, b):
    for ma, mb in zip(a.members, b.members):
        assert ma.config == mb.config
        for pa, pb in zip(jax.tree.leaves(ma.params), jax.tree.leaves(mb.params)):
            np.testing.assert_array_equal(np.asarray(pa), np.asarray(pb))
        np.testing.assert_array_equal(ma.history.step_metrics["loss"], mb.history.step_metrics["loss"])
        # the evaluation's reductions run at another vmap width: equal up to float rounding
        np.testing.assert_allclose(ma.history.eval_metrics["test_loss"], mb.history.eval_metrics["test_loss"],
                                   rtol=1e-6)


def test_slices_train_exactly_as_one_program(tmp_path):
    runs = {p: RunDir(tmp_path, "g", f"p{p}") for p in (1, 2, 4)}
    res = {p: _run(p, run_dir=runs[p]) for p in (1, 2, 4)}
    assert [g.traces for g in res[2].groups] == [1]  # the slices share one compiled program
    assert [g.parts for g in res[2].groups] == [2] and [g.parts for g in res[1].groups] == [1]
    _same(res[1], res[2])
    _same(res[1], res[4])
    recs = {p: sorted(json.dumps({k: r[k] for k in ("group", "member", "config", "step")}, sort_keys=True)
                      for r in runs[p].read_metrics()) for p in runs}
    assert recs[1] == recs[2] == recs[4] and len(set(recs[1])) == 8 * 4  # 8 members x 4 evaluations, each once
    for r in runs.values():
        r.close()


def test_a_run_resumes_with_another_number_of_slices(tmp_path):
    full = _run(1)
    ck = tmp_path / "ck"
    stopped = _run(2, checkpoint_dir=str(ck), checkpoint_every=8, callback=_stop_at(8))
    assert stopped.interrupted
    resumed = _run(1, checkpoint_dir=str(ck), checkpoint_every=8, resume=True)
    assert not resumed.interrupted
    _same(full, resumed)


def _stop_at(step):
    def callback(info):
        if info["step"] >= step:
            raise KeyboardInterrupt

    return callback


def test_member_parts_cut_every_block_alike():
    parts = MemberParts.of(8, (2, ("activation",)), 2)
    assert [list(ix) for ix in parts.index] == [[0, 1, 4, 5], [2, 3, 6, 7]]
    tree = {"w": np.arange(16.0).reshape(8, 2)}
    cut = parts.cut(tree)
    np.testing.assert_array_equal(np.asarray(cut[1]["w"]), tree["w"][[2, 3, 6, 7]])
    np.testing.assert_array_equal(parts.join(cut)["w"], tree["w"])
    assert [list(ix) for ix in MemberParts.of(6, None, 3).index] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError, match=r"parts=3 must divide the 4 members of each of the group's 2 choice blocks"):
        MemberParts.of(8, (2, ("activation",)), 3)


def test_auto_parts_follows_the_cores_and_the_blocks(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    assert auto_parts(8, (2, ("a",))) == 4  # blocks of 4: one slice per core
    assert auto_parts(6, (2, ("a",))) == 3  # blocks of 3: 3 slices (4 does not divide them)
    assert auto_parts(7, None) == 1  # a prime group stays whole
    assert auto_parts(8, None, mesh=object()) == 1
    assert slices_of(8, (2, ("a",)), 3) == 2 and slices_of(5, None, 8) == 5
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert auto_parts(8, (2, ("a",))) == 1  # an accelerator wants one wide program


def test_parts_is_at_most_and_checked():
    three, one = _run(3), _run(1)  # blocks of 4 members: at most 3 slices is 2 slices
    _same(one, three)
    with pytest.raises(ValueError, match=r"parts must be an int >= 1, got 0"):
        _run(0)


def test_a_run_in_one_program_resumes_in_slices(tmp_path):
    full = _run(1)
    ck = tmp_path / "ck"
    assert _run(1, checkpoint_dir=str(ck), checkpoint_every=8, callback=_stop_at(8)).interrupted
    resumed = _run(2, checkpoint_dir=str(ck), checkpoint_every=8, resume=True)
    assert not resumed.interrupted
    _same(full, resumed)


def test_grid_stop_names_where_an_interrupted_grid_stopped(tmp_path, capsys):
    from funcnn.study.cli import grid_stop

    run = RunDir(tmp_path, "exp", "r")
    assert grid_stop(run, _run(2), 24, "exp") == ("", "")  # a finished grid: nothing to say
    stopped, suffix = grid_stop(run, _run(2, callback=_stop_at(8)), 24, "exp")
    assert suffix == " (interrupted at step 8 of 24)"
    assert stopped.startswith("Interrupted by Ctrl-C at step 8 of 24 (group ")
    assert "exp: " in capsys.readouterr().err
    run.close()
