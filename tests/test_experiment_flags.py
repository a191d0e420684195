"""The experiment scripts' shared flags: ``--import MODULE`` (the user's own activations),
``--smoke`` next to explicit flags (it shrinks only what the command line did not set), and
init_ablation's ``--optimizer``.

Each script run is a subprocess, a smoke-sized one, whose flags pick the smallest grid that
shows the point; a test makes its own runs (a module fixture shared by several tests would run
again on every xdist worker that gets one of them).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from pathlib import Path

import pytest

from _experiment_smoke import read_json, run_script, run_script_smoke

from funcnn.train import ExperimentConfig, parse_config
from funcnn.study.cli import apply_smoke, explicit_fields, replace_config

#: A user's module: mish with its hand-written backward, registered through the public path.
MISH_MODULE = textwrap.dedent('''
    import jax
    import jax.numpy as jnp

    import funcnn


    def mish_forward(x):
        return x * jnp.tanh(jnp.logaddexp(x, 0.0))


    # d/dx mish(x) = tanh(sp) + x * sigmoid(x) * (1 - tanh(sp)^2),  sp = softplus(x)
    def mish_backward(x, y, g):
        t = jnp.tanh(jnp.logaddexp(x, 0.0))
        return g * (t + x * jax.nn.sigmoid(x) * (1 - t * t))


    funcnn.define_activation("mish", mish_forward, mish_backward)
''')


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("user_acts")
    (d / "my_acts.py").write_text(MISH_MODULE)
    return d


# ----------------------------------------------------------------------------- (a) --import, (b) --smoke


@pytest.mark.timeout(600)
def test_activation_ablation_user_activation_and_explicit_flags_under_smoke(user_dir, tmp_path):
    """--import a file registering mish; --smoke next to explicit --activations and --seeds."""
    run, _ = run_script_smoke(
        "activation_ablation", tmp_path, "--import", str(user_dir / "my_acts.py"), "--activations", "relu", "mish",
        "--seeds", "5", "--no-compare-rules", "--high-lr", "0", "--timing-rounds", "1",
    )
    config = read_json(run / "config.json")
    c = config["config"]
    # (a) the user's activation ran, and config.json says so
    assert c["activations"] == ["relu", "mish"]
    assert c["imports"] == [str(user_dir / "my_acts.py")]
    assert config["hidden_activations"][-1] == "mish" and "relu" in config["hidden_activations"]  # as registered
    excluded = config["excluded_output_nonlinearities"]
    assert "softmax" in excluded and "mish" not in excluded
    summary = read_json(run / "summary.json")
    assert {r["activation"] for r in summary["rows"]} == {"relu", "mish"}
    assert {r["activation"] for r in summary["activation_costs"]} == {"relu", "mish"}
    metrics = _metrics(run)
    mish = [r for r in metrics if r["config"]["activation"] == "mish"]
    assert mish and all(0.0 <= r["test_accuracy"] <= 1.0 for r in mish)
    # (b) --smoke shrank only what the command line did not set
    assert c["smoke"] is True and c["seeds"] == [5]
    assert c["compare_rules"] is False and c["high_lr"] == 0
    assert c["mlp_steps"] == 8 and c["mlp_widths"] == [16] and c["archs"] == ["mlp"]  # smoke values
    assert {"seeds", "activations", "imports"} <= set(config["set_on_command_line"])
    assert all(r["n"] == 1 for r in summary["rows"])
    assert {r["config"]["seed"] for r in metrics} == {5}


@pytest.mark.timeout(600)
def test_gradient_stability_user_activation_by_name_and_explicit_flags_under_smoke(user_dir, tmp_path):
    """--import a module name found in the current directory; --smoke with explicit --depth, --steps."""
    run, _ = run_script_smoke(
        "gradient_stability", tmp_path, "--import", "my_acts", "--activation", "mish", "--depth", "3", "--steps", "4",
        cwd=user_dir,
    )
    c = read_json(run / "config.json")["config"]
    assert c["imports"] == ["my_acts"] and c["activation"] == "mish"
    assert "3 hidden layers of 8 mish units" in (run / "summary.md").read_text()
    assert (c["depth"], c["steps"]) == (3, 4)
    assert (c["width"], c["seeds"], c["batch_size"]) == (8, [0], 32)  # smoke values
    rows = read_json(run / "summary.json")["rows"]
    assert len(rows) == 12 and all(r["n_diverged"] == 0 and r["steps_done_mean"] == 4 for r in rows)


@pytest.mark.timeout(600)
def test_cnn_ablation_explicit_flags_under_smoke(tmp_path):
    run, _ = run_script_smoke("cnn_ablation", tmp_path, "--variants", "valid", "--steps", "6", "--no-baselines",
                              "--seeds", "3")
    c = read_json(run / "config.json")["config"]
    assert (c["variants"], c["steps"], c["seeds"], c["baselines"]) == (["valid"], 6, [3], False)
    assert c["evals"] == 2  # smoke value
    rows = read_json(run / "summary.json")["rows"]
    assert [r["model"] for r in rows] == ["valid"] and rows[0]["n"] == 1


# ----------------------------------------------------------------------------- (d) errors, and the helpers


def test_bad_import_exits_2_with_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("import funcnn\nraise RuntimeError('no such\\nthing')\n")
    module = str(tmp_path / "broken.py")
    out = run_script("universal_approximation", "--import", module, "--out-dir", str(tmp_path / "out"), timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines == [f"universal_approximation.py: error: --import {module}: cannot import it: "
                     f"RuntimeError: no such thing"], out.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_activation_names_the_registry_and_import(tmp_path):
    out = run_script("activation_ablation", "--activations", "relu", "mish", "--out-dir", str(tmp_path), timeout=120)
    assert out.returncode != 0
    assert "'mish' is not a hidden-layer activation" in out.stderr and "--import MODULE" in out.stderr
    assert not (tmp_path / "activation_ablation").exists()


def test_parse_config_records_explicit_fields_and_apply_smoke_keeps_them(tmp_path, monkeypatch, capsys):
    @dataclasses.dataclass
    class Config(ExperimentConfig, resumable=False, imports=True):
        steps: int = 100
        run_fast: bool = False
        widths: tuple[int, ...] = (64, 64)

    smoke = dict(steps=5, run_fast=True, widths=(8,), seeds=lambda cfg: cfg.seeds[:1])
    cfg = parse_config(Config, ["--smoke", "--steps=7", "--no-run-fast", "--run_name", "x", "--no-progress"])
    assert explicit_fields(cfg) == {"smoke", "steps", "run_fast", "run_name", "progress"}
    small = apply_smoke(cfg, smoke)
    assert (small.steps, small.run_fast, small.widths, small.seeds, small.run_name) == (7, False, (8,), (0,), "x")
    assert explicit_fields(small) == explicit_fields(cfg)
    assert explicit_fields(replace_config(small, widths=(4,))) == explicit_fields(cfg)
    assert apply_smoke(parse_config(Config, ["--seeds", "3", "4"]), smoke).seeds == (3, 4)  # no --smoke: unchanged
    assert apply_smoke(parse_config(Config, ["--smoke", "--seeds", "3", "4"]), smoke).seeds == (3, 4)
    with pytest.raises(TypeError, match="apply_smoke: Config has no field 'epochs'"):
        apply_smoke(cfg, {"epochs": 1})

    # --import: repeatable, a file or a module name found in the current directory; no activation is
    # registered here (the test process's registry stays as it is)
    (tmp_path / "plain_mod_a.py").write_text("VALUE = 1\n")
    (tmp_path / "plain_mod_b.py").write_text("VALUE = 2\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        cfg = parse_config(Config, ["--import", str(tmp_path / "plain_mod_a.py"), "--import", "plain_mod_b"])
        assert cfg.imports == (str(tmp_path / "plain_mod_a.py"), "plain_mod_b") and "imports" in explicit_fields(cfg)
        assert sys.modules["plain_mod_a"].VALUE == 1 and sys.modules["plain_mod_b"].VALUE == 2
    finally:
        for name in ("plain_mod_a", "plain_mod_b"):
            sys.modules.pop(name, None)
    assert parse_config(ExperimentConfig, []).__class__ is ExperimentConfig
    assert not hasattr(parse_config(ExperimentConfig, []), "imports")  # only scripts that ask for it
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        parse_config(Config, ["--import", "no_such_module_here"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("error: --import no_such_module_here: cannot import it: "
                                             "ModuleNotFoundError: No module named 'no_such_module_here'")


# ----------------------------------------------------------------------------- (c) init_ablation --optimizer


@pytest.mark.timeout(600)
def test_init_ablation_optimizer_is_used(tmp_path):
    """--optimizer adam trains with Adam (it used to run plain SGD); the grid has PReLU, whose
    slopes the init must supply (init_ablation used to accept logistic, tanh and relu only)."""
    init_runs = {}
    for opt in ("sgd", "adam"):
        init_runs[opt], _ = run_script_smoke("init_ablation", tmp_path / opt, "--optimizer", opt, "--inits", "glorot",
                                             "he", "--activations", "logistic", "prelu")
    finals = {}
    for opt, run in init_runs.items():
        config = read_json(run / "config.json")["config"]
        assert config["optimizer"] == opt and config["activations"] == ["logistic", "prelu"]
        recs = _metrics(run)
        assert {r["config"]["activation"] for r in recs} == {"logistic", "prelu"}
        assert all(r["alive"] for r in recs)
        finals[opt] = {(r["group"], r["member"]): r["train_loss"] for r in recs if r["step"] == 10}
        assert len(finals[opt]) == 4
    # Adam's normalized steps (lr 0.05) move every member far from where SGD's take it
    for k in finals["sgd"]:
        assert abs(finals["adam"][k] - finals["sgd"][k]) > 1e-3, (k, finals["adam"][k], finals["sgd"][k])
    assert (init_runs["adam"] / "summary.md").read_text().startswith("# Initialization ablation (deep MLPs, adam)")


def test_init_ablation_refuses_unknown_optimizer(tmp_path):
    out = run_script("init_ablation", "--smoke", "--optimizer", "foo", "--out-dir", str(tmp_path), timeout=120)
    assert out.returncode == 2
    assert "foo" in out.stderr and "adam" in out.stderr
    assert not (tmp_path / "init_ablation").exists()
