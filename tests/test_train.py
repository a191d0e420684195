"""Tests of funcnn.train: the step, fit, grids, divergence, checkpoints/resume, results."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn.train import (
    Checkpointer,
    ExperimentConfig,
    RunDir,
    TrainSpec,
    band,
    first_reach,
    fit,
    get_hyperparam,
    make_eval_fn,
    make_optimizer,
    make_train_step,
    markdown_table,
    open_run,
    parse_config,
    plot_bands,
    plot_bars,
    run_grid,
    set_hyperparam,
    summarize,
    time_interleaved,
    with_clipping,
)
from funcnn.study.plots import pyplot
from funcnn.study import runs as runs_mod
from _tiny import mlp, xent

HERE = Path(__file__).parent


# --------------------------------------------------------------------------- tiny problems


_rng = np.random.default_rng(0)
X = _rng.normal(size=(128, 5)).astype(np.float32)
Y = ((X[:, 0] > 0).astype(np.int32) + (X[:, 1] > 0.3)).astype(np.int32)


def np_norm(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.square(np.asarray(v, np.float64))) for v in jax.tree.leaves(tree))))


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(u), np.asarray(v), equal_nan=True)
               for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


# --------------------------------------------------------------------------- the step


def test_step_equals_manual_optax_update_and_loss_decreases():
    model, opt = mlp(), optax.adam(1e-2)
    x, y, key = jnp.asarray(X[:32]), jnp.asarray(Y[:32]), jax.random.PRNGKey(1)
    evaluate = make_eval_fn(model, xent, batch_size=24, jit=False)  # 32 = 24 + 8 padded, masked

    # One jitted reference (eager ops would each compile on their own: slow on a busy CPU).
    @jax.jit
    def reference(key0):
        _, params, state = model.init(key0, (32, 5))
        opt_state = opt.init(params)

        def loss_of(p):
            return xent(model.apply(p, state, x, train=True)[0], y)

        loss, grads = jax.value_and_grad(loss_of)(params)
        updates, new_opt_state = opt.update(grads, opt_state, params)
        logits = model.apply(params, state, x)[0]
        return {
            "start": (params, state, opt_state),
            "loss": loss, "grads": grads, "updates": updates,
            "after": (optax.apply_updates(params, updates), new_opt_state),
            "eval": evaluate(params, state, x, y), "loss_all": xent(logits, y),
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == y),
        }

    ref = reference(jax.random.PRNGKey(0))
    params, state, opt_state = ref["start"]
    step = make_train_step(model, xent, opt)
    p1, o1, s1, m = step(params, opt_state, state, x, y, key)
    for a, b in zip(jax.tree.leaves((p1, o1)), jax.tree.leaves(ref["after"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m["loss"], ref["loss"], rtol=1e-6)
    np.testing.assert_allclose(m["grad_norm"], np_norm(ref["grads"]), rtol=1e-5)
    np.testing.assert_allclose(m["update_norm"], np_norm(ref["updates"]), rtol=1e-5)
    lean = make_train_step(model, xent, opt, norms=False)
    p2, o2, _, m2 = lean(params, opt_state, state, x, y, key)
    assert set(m2) == {"loss"}
    for a, b in zip(jax.tree.leaves((p2, o2)), jax.tree.leaves((p1, o1)), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="make_train_step: norms must be True or False"):
        make_train_step(model, xent, opt, norms="yes")
    np.testing.assert_allclose(ref["eval"]["loss"], ref["loss_all"], rtol=1e-5)
    np.testing.assert_allclose(ref["eval"]["accuracy"], ref["accuracy"])

    losses = []
    p, o, s = params, opt_state, state
    for _ in range(60):
        p, o, s, m = step(p, o, s, x, y, key)
        losses.append(float(m["loss"]))
    assert losses[-1] < 0.5 * losses[0]


def test_optimizer_helpers_clip_and_inject_hyperparams():
    g = {"w": jnp.full((4,), 10.0)}

    @jax.jit
    def updates(g):
        clipped = with_clipping(optax.sgd(1.0), global_norm=1.0)
        by_value = with_clipping(optax.sgd(1.0), value=0.5)
        return clipped.update(g, clipped.init(g), g)[0], by_value.update(g, by_value.init(g), g)[0]

    by_norm, by_value = updates(g)
    np.testing.assert_allclose(np.linalg.norm(by_norm["w"]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(by_value["w"], -0.5)

    opt = make_optimizer("adam", 1e-3, clip_global_norm=1.0)

    @jax.jit
    def hyperparams(g):
        state = opt.init(g)
        changed = set_hyperparam(state, "learning_rate", 0.5)
        # stacked (vmapped) optimizer states: one learning rate per member
        stacked = jax.vmap(opt.init)({"w": jnp.ones((3, 4))})
        stacked = set_hyperparam(stacked, "learning_rate", jnp.array([1e-3, 1e-2, 1e-1]))
        return get_hyperparam(state), get_hyperparam(changed), get_hyperparam(stacked)

    before, after, stacked = hyperparams(g)
    np.testing.assert_allclose(before, 1e-3, rtol=1e-6)
    np.testing.assert_allclose(after, 0.5)
    np.testing.assert_allclose(stacked, [1e-3, 1e-2, 1e-1], rtol=1e-6)
    with pytest.raises(ValueError, match="make_optimizer: unknown optimizer name 'adamm'"):
        make_optimizer("adamm")
    with pytest.raises(KeyError, match="get_hyperparam: no hyperparameter"):
        get_hyperparam(optax.adam(1e-3).init({}))


# --------------------------------------------------------------------------- argument errors


def test_clear_errors():
    model, opt = mlp(), optax.sgd(0.1)
    with pytest.raises(ValueError, match=r"fit: batch_size=200 is larger than the training set \(128"):
        fit(model, xent, opt, (X, Y), steps=1, batch_size=200, progress=False)
    with pytest.raises(ValueError, match="fit: train_data has mismatched lengths: x has 128 examples, y has 100"):
        fit(model, xent, opt, (X, Y[:100]), steps=1, progress=False)
    with pytest.raises(ValueError, match="fit: unknown loss name 'hinge'"):
        fit(model, "hinge", opt, (X, Y), steps=1, progress=False)
    with pytest.raises(ValueError, match="fit: give exactly one of steps or epochs"):
        fit(model, xent, opt, (X, Y), steps=1, epochs=1, progress=False)
    with pytest.raises(TypeError, match="fit: optimizer must be an optax GradientTransformation"):
        fit(model, xent, "adam", (X, Y), steps=1, progress=False)
    with pytest.raises(TypeError, match="fit: model must be a funcnn Layer"):
        fit(object(), xent, opt, (X, Y), steps=1, progress=False)
    with pytest.raises(ValueError, match="fit: resume=True needs a checkpoint_dir"):
        fit(model, xent, opt, (X, Y), steps=1, resume=True, progress=False)
    with pytest.raises(ValueError, match="run_grid: batched key 'lr' is not a grid key"):
        run_grid(lambda c: (model, xent, opt), {"seed": [0]}, (X, Y), steps=1, batched=["lr"])
    with pytest.raises(TypeError, match=r"expand_grid: grid\['lr'\] must be a list of values"):
        run_grid(lambda c: (model, xent, opt), {"lr": 0.1}, (X, Y), steps=1)


# --------------------------------------------------------------------------- grids

ACTS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
BATCH = 16
TRAIN_TRACES = []  # batch sizes of the loss calls traced by train steps


def counting_mse(outputs, labels):
    # Python side effect: runs once per trace, never per step.
    if outputs.shape[0] == BATCH:
        TRAIN_TRACES.append(outputs.shape)
    return jnp.mean(jnp.sum((outputs - jax.nn.one_hot(labels, 3, dtype=outputs.dtype)) ** 2, -1))


MODELS = {name: mlp(act) for name, act in ACTS.items()}


def build(cfg):
    # lr arrives as a traced scalar inside the compiled step: one program for all lrs
    return TrainSpec(MODELS[cfg["act"]], counting_mse, optax.sgd(cfg["lr"]))


GRID = {"act": ["tanh", "relu"], "lr": [0.05, 1e4], "seed": [0, 1, 2, 3]}
GRID_KW = dict(steps=48, batch_size=BATCH, eval_every=16, progress=False, eval_train=True)


@pytest.fixture(scope="module")
def grid_result():
    TRAIN_TRACES.clear()
    result = run_grid(build, GRID, (X, Y), **GRID_KW)
    return result, len(TRAIN_TRACES)


def test_grid_of_seeds_compiles_once_per_structure(grid_result):
    result, n_traces = grid_result
    assert result.batched_keys == ["lr"] and result.static_keys == ["act"]
    assert [g.name for g in result.groups] == ["act=tanh", "act=relu"]
    assert [len(g.members) for g in result.groups] == [8, 8]  # 2 lrs x 4 seeds, vmapped
    assert [g.traces for g in result.groups] == [1, 1]
    assert n_traces == 2  # the train step was traced once per group, not once per member
    assert [m.config for m in result.members[:3]] == [
        {"act": "tanh", "lr": 0.05, "seed": 0},
        {"act": "tanh", "lr": 0.05, "seed": 1},
        {"act": "tanh", "lr": 0.05, "seed": 2},
    ]


def test_divergence_recorded_and_others_unaffected(grid_result):
    result, _ = grid_result
    for m in result.members:
        if m.config["lr"] > 1:
            assert m.diverged is not None, m.config
            assert m.diverged.endswith(f"at step {m.diverged_step}")
            assert m.diverged.split(" at ")[0] in (
                "loss became nan", "loss became inf", "gradient norm became non-finite")
            loss = m.history.step_metrics["loss"]
            assert np.all(np.isfinite(loss[: m.diverged_step]))
            assert np.all(np.isnan(loss[m.diverged_step + 1 :]))
            assert len(loss) == GRID_KW["steps"]  # the study went on
            # evaluations after the divergence report no numbers of the frozen params
            after = m.history.eval_steps > m.diverged_step
            assert after.any()
            for k in ("train_loss", "train_accuracy"):
                assert np.all(np.isnan(m.history.eval_metrics[k][after])), (k, m.config)
        else:
            assert m.diverged is None and m.diverged_step is None
            assert np.all(np.isfinite(m.history.step_metrics["loss"]))
            assert m.final["train_loss"] < m.history.eval_metrics["train_loss"][0]
    rows = result.summary()
    assert [(r["act"], r["lr"], r["n"], r["n_diverged"]) for r in rows] == [
        ("tanh", 0.05, 4, 0), ("tanh", 1e4, 4, 4), ("relu", 0.05, 4, 0), ("relu", 1e4, 4, 4)]
    assert np.isnan(rows[1]["train_loss_mean"]) and np.isfinite(rows[0]["train_loss_mean"])

    # That the others are unaffected: test_grid_member_equals_the_member_run_alone.


def test_grid_member_equals_the_member_run_alone(grid_result):
    result, _ = grid_result
    member = next(m for m in result.members if m.config == {"act": "tanh", "lr": 0.05, "seed": 2})
    alone = fit(MODELS["tanh"], counting_mse, optax.sgd(0.05), (X, Y), seed=2, **GRID_KW)
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(member.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alone.history.step_metrics["loss"], member.history.step_metrics["loss"], rtol=1e-5)
    np.testing.assert_array_equal(alone.history.eval_steps, [0, 16, 32, 48])
    for k in ("train_loss", "train_accuracy"):
        np.testing.assert_allclose(alone.history.eval_metrics[k], member.history.eval_metrics[k], rtol=1e-5)


# --------------------------------------------------------------------------- determinism, resume


def _load_script():
    spec = importlib.util.spec_from_file_location("_train_resume_script", HERE / "_train_resume_script.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module", autouse=True)
def hung_subprocess(tmp_path_factory):
    """The run that test_sigkill_... kills: started first so that its start-up (imports,
    compilation) overlaps with the other tests; it hangs at step HANG_AT until killed."""
    root = tmp_path_factory.mktemp("killed")
    ckpt, out, marker = root / "ckpt", root / "out", root / "hung"
    with open(root / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "_train_resume_script.py"), str(ckpt), str(out), str(marker)],
            stdout=subprocess.DEVNULL, stderr=err,
        )
    proc.stderr_path = root / "stderr.txt"
    yield proc, ckpt, out, marker
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def reference(script, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    result, run = script.train(str(root / "ckpt"), str(root / "out"))
    return result, run.read_metrics()


def assert_same_run(a, b):
    assert a.step == b.step == a.total_steps
    assert leaves_equal(a.params, b.params)
    assert leaves_equal(a.opt_state, b.opt_state)
    for k in a.history.step_metrics:
        assert np.array_equal(a.history.step_metrics[k], b.history.step_metrics[k], equal_nan=True), k
    np.testing.assert_array_equal(a.history.eval_steps, b.history.eval_steps)
    for k in a.history.eval_metrics:
        assert np.array_equal(a.history.eval_metrics[k], b.history.eval_metrics[k], equal_nan=True), k


def test_same_config_and_seed_is_bitwise_identical(script, reference, tmp_path):
    again, _ = script.train(str(tmp_path / "ckpt"), str(tmp_path / "out"))
    assert_same_run(reference[0], again)
    assert reference[0].final["test_accuracy"] > 0.6


def test_sigkill_then_resume_is_bitwise_identical(script, reference, hung_subprocess):
    proc, ckpt, out, marker = hung_subprocess
    deadline = time.monotonic() + 90
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"training subprocess exited early: {proc.stderr_path.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail("training subprocess did not reach the kill point in time")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    ck = Checkpointer(ckpt)
    killed_at = ck.latest_step()
    ck.close()
    assert killed_at is not None and 0 < killed_at < script.STEPS  # killed mid-way
    logged = RunDir(out, "resume", "run", resume=True)
    assert max(r["step"] for r in logged.read_metrics()) == killed_at
    # As if killed between flushing metrics.jsonl and writing the checkpoint: resume drops it.
    logged.append_metrics([{"group": "fit", "step": killed_at + 20, "test_loss": 0.0}])

    resumed, run = script.train(str(ckpt), str(out), resume=True)
    assert not resumed.interrupted
    assert_same_run(reference[0], resumed)
    assert run.read_metrics() == reference[1]


def test_keyboard_interrupt_keeps_finished_work_and_resumes(script, reference, tmp_path):
    ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "out")

    def ctrl_c(info):
        if info["step"] >= 70:
            raise KeyboardInterrupt

    partial, run = script.train(ckpt, out, callback=ctrl_c)
    assert partial.interrupted and partial.step == 70 and partial.diverged is None
    assert len(partial.history.step_metrics["loss"]) == 70
    np.testing.assert_array_equal(partial.history.step_metrics["loss"], reference[0].history.step_metrics["loss"][:70])
    ck = Checkpointer(ckpt)
    assert ck.latest_step() == 70  # the interrupted step was checkpointed
    ck.close()
    assert [r["step"] for r in run.read_metrics()] == [0, 20, 40, 60]  # flushed

    resumed, run = script.train(ckpt, out, resume=True)
    assert_same_run(reference[0], resumed)
    assert run.read_metrics() == reference[1]


# --------------------------------------------------------------------------- results


def test_run_dir_files_and_overwrite_protection(tmp_path):
    run = RunDir(tmp_path, "exp", "r1")
    run.write_config({"lr": 0.1, "seeds": (0, 1)}, defaults={"lr": 0.01})
    cfg = json.loads((tmp_path / "exp" / "r1" / "config.json").read_text())
    assert cfg["config"] == {"lr": 0.1, "seeds": [0, 1]} and cfg["defaults"] == {"lr": 0.01}
    for lib in ("jax", "jaxlib", "optax", "numpy", "funcnn", "python", "platform"):
        assert cfg["versions"][lib]

    run.append_metrics([{"step": 0, "loss": 1.0}, {"step": 1, "loss": float("nan")}])
    run.append_metrics([{"step": 2, "loss": np.float32(0.5)}])
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln) for ln in lines] == [
        {"step": 0, "loss": 1.0}, {"step": 1, "loss": None}, {"step": 2, "loss": 0.5}]

    records = [
        {"config": {"act": "relu", "seed": s}, "metrics": {"test_accuracy": a, "test_loss": l}, "diverged": None}
        for s, a, l in [(0, 0.8, 0.5), (1, 0.9, 0.3)]
    ] + [{"config": {"act": "tanh", "seed": 0}, "metrics": {"test_accuracy": 0.7, "test_loss": 0.6},
          "diverged": None},
         {"config": {"act": "tanh", "seed": 1}, "metrics": {"test_accuracy": None, "test_loss": None},
          "diverged": "loss became nan at step 3"}]
    rows = summarize(records)
    assert rows[0]["act"] == "relu" and rows[0]["n"] == 2 and rows[0]["n_diverged"] == 0
    np.testing.assert_allclose(rows[0]["test_accuracy_mean"], 0.85)
    np.testing.assert_allclose(rows[0]["test_accuracy_std"], np.std([0.8, 0.9], ddof=1))
    assert rows[1]["n_diverged"] == 1 and rows[1]["test_accuracy_mean"] == 0.7
    run.write_summary(rows, title="demo")
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["rows"][0]["test_loss_mean"] == pytest.approx(0.4)
    md = (run.path / "summary.md").read_text()
    assert "# demo" in md and "| act | n | n_diverged | test_accuracy | test_loss |" in md
    assert "| relu | 2 | 0 | 0.85 ± 0.07071 | 0.4 ± 0.1414 |" in md
    assert markdown_table(rows) in md

    fig = plot_bands(np.arange(4), {"relu": np.ones((3, 4)), "tanh": np.arange(4.0)}, ylabel="loss")
    png = run.save_figure(fig, "curves")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run.save_figure(plot_bars(["a", "b"], [1.0, 2.0], errors=[0.1, 0.2]), "bars.png")
    assert sorted(p.name for p in run.path.iterdir()) == [
        "bars.png", "config.json", "curves.png", "metrics.jsonl", "summary.json", "summary.md"]

    with pytest.raises(FileExistsError, match="RunDir: run directory .*r1' already exists"):
        RunDir(tmp_path, "exp", "r1")
    again = RunDir(tmp_path, "exp", "r1", resume=True)  # reused: metrics kept
    assert len(again.read_metrics()) == 3
    fresh = RunDir(tmp_path, "exp", "r1", overwrite=True)  # replaced
    assert list(fresh.path.iterdir()) == []


def test_writes_are_atomic(tmp_path, monkeypatch):
    run = RunDir(tmp_path, "exp", "atomic")
    run.write_json("summary.json", {"a": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(runs_mod.os, "replace", broken_replace)  # the os.replace of atomic writes
    with pytest.raises(OSError, match="disk full"):
        run.write_json("summary.json", {"a": 2})
    monkeypatch.undo()
    assert json.loads((run.path / "summary.json").read_text()) == {"a": 1}  # old content intact
    assert [p.name for p in run.path.iterdir()] == ["summary.json"]  # no temp file left behind


def test_a_script_without_checkpoints_has_no_resume_flag(capsys):
    @dataclasses.dataclass
    class Config(ExperimentConfig, resumable=False):
        width: int = 32

    cfg = parse_config(Config, ["--width", "8"])
    assert (cfg.width, cfg.resume) == (8, False) and isinstance(cfg, ExperimentConfig)
    with pytest.raises(SystemExit):
        parse_config(Config, ["--resume"])
    assert "--resume" in capsys.readouterr().err
    assert parse_config(ExperimentConfig, ["--resume"]).resume is True  # the default keeps it


def test_band_first_reach_and_interleaved_timing():
    plt = pyplot()
    fig, ax = plt.subplots()
    ys = np.array([[1.0, 2.0, np.nan], [3.0, 4.0, np.nan]])
    line = band(ax, [0, 1, 2], ys, label="a")
    np.testing.assert_allclose(line.get_ydata(), [2.0, 3.0, np.nan])  # all-NaN point: NaN, no warning
    line = band(ax, [0, 1, 2], ys, spread="range", logy=True, linestyle="--")
    assert line.get_linestyle() == "--" and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="band: spread must be 'std' or 'range', got 'iqr'"):
        band(ax, [0, 1, 2], ys, spread="iqr")
    with pytest.raises(ValueError, match=r"band: 'a' has 3 points but x has 2"):
        band(ax, [0, 1], ys, label="a")
    plt.close(fig)

    steps = np.array([0, 10, 20, 30])
    assert first_reach(steps, [0.1, 0.5, 0.9, 0.95], 0.9) == 20
    assert first_reach(steps, [2.0, np.nan, 0.5, 0.1], 0.5, below=True) == 20
    assert first_reach(steps, [0.1, np.nan, 0.2, 0.3], 0.9) is None

    samples = time_interleaved({"a": lambda: jnp.ones(3), "b": lambda: jnp.zeros(3)}, rounds=3, min_time=1e-4)
    assert set(samples) == {"a", "b"} and all(v.shape == (3,) and (v > 0).all() for v in samples.values())
    with pytest.raises(ValueError, match="time_interleaved: rounds must be an int >= 1, got 0"):
        time_interleaved({"a": lambda: 1}, rounds=0)


def test_time_interleaved_shuffles_the_order_and_settles_before_each_sample():
    calls = []

    def make(name):
        def f():
            calls.append(name)
            return jnp.zeros(())
        return f

    names = "abcd"
    time_interleaved({n: make(n) for n in names}, rounds=12, warmup=1, min_time=1e-9, max_inner=1)
    timed = calls[len(names) * 2:]  # after each callable's warm-up and sizing call
    # each sample: one untimed call, then one timed call (max_inner=1), of the same callable
    pairs = [timed[i:i + 2] for i in range(0, len(timed), 2)]
    assert len(pairs) == 12 * len(names) and all(p[0] == p[1] for p in pairs)
    rounds = ["".join(p[0] for p in pairs[r * 4:(r + 1) * 4]) for r in range(12)]
    assert all(sorted(r) == list(names) for r in rounds)  # every callable once per round
    # not a fixed rotation: some callable is preceded by different ones across rounds
    before = {(r[i - 1], r[i]) for r in rounds for i in range(1, 4)}
    assert len(before) > 4


def test_experiment_config_with_tyro(tmp_path):
    @dataclasses.dataclass
    class Config(ExperimentConfig):
        width: int = 32

    # --no-compile-cache: open_run would turn JAX's persistent cache on for the whole test
    # process, and later tests that count compilations would find their programs in it.
    cfg = parse_config(Config, ["--out-dir", str(tmp_path), "--seeds", "4", "5", "--smoke", "--width", "8",
                                "--no-compile-cache"])
    assert (cfg.seeds, cfg.smoke, cfg.width, cfg.progress, cfg.compile_cache) == ((4, 5), True, 8, True, False)
    run = open_run(cfg, "demo")
    assert run.path == tmp_path / "demo" / "smoke"
    written = json.loads((run.path / "config.json").read_text())
    assert written["config"]["width"] == 8 and written["defaults"]["width"] == 32
    with pytest.raises(FileExistsError):
        open_run(cfg, "demo")
    open_run(dataclasses.replace(cfg, overwrite=True), "demo")
