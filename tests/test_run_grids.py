"""run_grids trains several prepared grids side by side on a multi-core CPU (threads, one per
core): the same results as one at a time, every metrics record once, Ctrl-C stops them all."""

from __future__ import annotations

import json
import os
import signal
import time
import types

import jax
import numpy as np
import optax
import pytest

from funcnn.train import RunDir, TrainSpec, grid_workers, prepare_grid, run_grids

from _tiny import mlp, xent


def _data(n=96, d=6, k=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, k, size=n).astype(np.int32)
    return x, y


def _grids(run=None, steps=24, callback=lambda grid: None):
    x, y = _data()
    out = []
    for hidden in (8, 5):  # two structures: two grids
        def build(c, hidden=hidden):
            return TrainSpec(mlp(hidden=hidden), xent, optax.adam(c["lr"]))

        out.append(prepare_grid(build, {"lr": [1e-2, 3e-2], "seed": [0, 1]}, (x, y), test_data=(x[:32], y[:32]),
                                steps=steps, batch_size=16, eval_every=8, steps_per_call=4, run_dir=run,
                                progress=False, callback=callback(hidden), name=f"h{hidden}"))
    return out


def _leaves(res):
    return [np.asarray(a) for m in res.members for a in jax.tree.leaves(m.params)]


def test_side_by_side_equals_one_at_a_time_and_writes_each_record_once(tmp_path):
    runs = {w: RunDir(tmp_path, "g", f"w{w}") for w in (1, 2)}
    results = {w: run_grids(_grids(runs[w]), workers=w) for w in (1, 2)}
    for a, b in zip(results[1], results[2]):
        assert not a.interrupted and not b.interrupted
        for pa, pb in zip(_leaves(a), _leaves(b)):
            np.testing.assert_array_equal(pa, pb)  # bitwise: the same programs, run in a thread
        for ma, mb in zip(a.members, b.members):
            np.testing.assert_array_equal(ma.history.eval_metrics["test_loss"], mb.history.eval_metrics["test_loss"])
            np.testing.assert_array_equal(ma.history.step_metrics["loss"], mb.history.step_metrics["loss"])
    for res in (*results[1], *results[2]):  # when each group's first chunk was dispatched
        assert all(g.first_step_at is not None and g.first_step_at < time.perf_counter() for g in res.groups)
        assert all(0 < g.train_seconds <= res.seconds for g in res.groups)  # its chunks' wall, within the run
    recs = {w: [json.dumps(r, sort_keys=True) for r in runs[w].read_metrics()] for w in (1, 2)}
    assert len(recs[2]) == len(set(recs[2])) == len(recs[1]) > 0  # no record lost or written twice
    assert sorted(recs[1]) == sorted(recs[2])
    for r in runs.values():
        r.close()


def test_side_by_side_a_grid_starts_once_the_one_before_has_run_its_first_step(monkeypatch):
    from funcnn.train.engine import Engine

    grids = _grids()
    compiled_at = {}
    real = Engine.compile

    def spy(self, *args, **kwargs):
        compiled_at.setdefault(id(self), time.perf_counter())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "compile", spy)
    done = run_grids(grids, workers=2)
    assert len(done) == 2 and not any(r.interrupted for r in done)
    first_step = min(e.first_step_at for e in grids[0].engines)
    assert min(compiled_at[id(e)] for e in grids[1].engines) >= first_step


def test_grid_workers_picks_one_per_core_on_cpu_and_one_with_a_mesh():
    def fake(mesh=None):
        return types.SimpleNamespace(engines=[types.SimpleNamespace(mesh=mesh)])

    cores = os.cpu_count() or 1
    if jax.default_backend() == "cpu":
        assert grid_workers([fake(), fake(), fake()]) == min(3, cores)
    assert grid_workers([fake()]) == 1  # one grid: nothing to run beside it
    assert grid_workers([fake(), fake(object())]) == 1  # a mesh: collectives must not interleave
    assert grid_workers([fake(), fake()], 5) == 2 and grid_workers([fake(), fake()], 1) == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="run_grids: workers must be an int >= 1 or None"):
            grid_workers([fake(), fake()], bad)


def test_ctrl_c_stops_every_grid_running_side_by_side():
    reached, sent = set(), []

    def ctrl_c(grid):
        def callback(info):  # called from a worker thread; the signal goes to the main thread
            if info["step"] >= 8:
                reached.add(grid)
            # both grids are training: press Ctrl-C, again every 0.3 s (Python drops a
            # KeyboardInterrupt raised inside a gc callback); a second one while the grids
            # stop must not cut their checkpoints short
            if len(reached) == 2 and (not sent or time.monotonic() - sent[-1] > 0.3):
                sent.append(time.monotonic())
                signal.raise_signal(signal.SIGINT)
        return callback

    done = run_grids(_grids(steps=100_000, callback=ctrl_c), workers=2)
    assert sent and len(done) == 2
    for res in done:
        assert res.interrupted
        assert all(8 <= m.step < 100_000 for m in res.members)


def test_the_first_evaluation_waits_for_no_program_and_reports_the_initial_params(tmp_path):
    """A fresh engine's first chunk starts before its evaluation program is compiled; the
    evaluation at step 0 runs after that chunk, on the initial params (kept), so its numbers
    and records are those of the start, in order."""
    from funcnn.train import fit, make_eval_fn

    x, y = _data()
    model = mlp(hidden=7)
    _, p0, s0 = model.init(jax.random.PRNGKey(3), (16, 6))
    run = RunDir(tmp_path, "g", "first")
    res = fit(model, xent, optax.sgd(0.5), (x, y), test_data=(x[:32], y[:32]), params=p0, state=s0, steps=8,
              batch_size=16, eval_every=4, steps_per_call=4, run_dir=run, progress=False)
    start = make_eval_fn(model, xent)(p0, s0, x[:32], y[:32])
    h = res.history
    assert list(h.eval_steps) == [0, 4, 8]
    np.testing.assert_allclose(h.eval_metrics["test_loss"][0], float(start["loss"]), rtol=1e-6)
    assert h.eval_metrics["test_loss"][2] < h.eval_metrics["test_loss"][0]  # trained after it
    steps = [r["step"] for r in run.read_metrics()]
    assert steps == sorted(steps) and steps[0] == 0 and steps.count(0) == 1
    run.close()
