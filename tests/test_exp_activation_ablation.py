"""Smoke test of experiments/activation_ablation.py: runs it with --smoke in a subprocess and checks its outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "activation_ablation.py"
PNGS = (
    "accuracy.png", "learning_curves.png", "delta_norms_mnist1d_mlp.png", "dead_saturated.png",
    "high_lr_dead.png", "timing.png", "rule_comparison.png",
)


def test_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for flag in ("--smoke", "--activations", "--datasets", "--high-lr", "--rule", "--import MODULE"):
        assert flag in out.stdout, flag


def test_output_nonlinearity_rejected(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--activations", "relu", "softmax", "--out-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode != 0
    assert "output nonlinearity" in out.stderr
    assert not (tmp_path / "activation_ablation").exists()


def _run_smoke(out_dir: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out-dir", str(out_dir), "--no-progress", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=580, env=env,
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("aa_smoke")
    return tmp_path, _run_smoke(tmp_path)


@pytest.mark.timeout(600)
def test_smoke(smoke_run):
    tmp_path, out = smoke_run
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    run = tmp_path / "activation_ablation" / "smoke"
    for f in ("config.json", "metrics.jsonl", "summary.json", "summary.md", "curves.npz"):
        assert (run / f).stat().st_size > 0, f
    for png in PNGS:
        assert (run / png).stat().st_size > 1000, png
    assert str(run) in out.stdout

    summary = json.loads((run / "summary.json").read_text())
    assert summary["findings"] and not summary["interrupted"]
    # every group says how many slices trained side by side (auto: 1 on one core, more on several)
    assert summary["parts"] and all(isinstance(v, int) and v >= 1 for v in summary["parts"].values())
    assert set(summary["parts"]) == set(summary["compilations"])
    rows = summary["rows"]
    assert {r["activation"] for r in rows} == {"relu", "leaky_relu"}
    for r in rows:
        for k in ("dataset", "arch", "lr", "n", "n_diverged", "test_accuracy_mean", "test_accuracy_std",
                  "dead_mean", "silent_mean"):
            assert k in r, k
        assert r["n"] == 2
        assert 0.0 <= r["test_accuracy_mean"] <= 1.0
    # the high-lr variant trained at a second learning rate
    assert {r["lr"] for r in summary["high_lr_rows"]} and all(r["lr"] != rows[0]["lr"] for r in summary["high_lr_rows"])
    # hand rule vs autodiff: the same curves (float32 rounding at most) and timed steps
    assert summary["rule_comparison"]
    for r in summary["rule_comparison"]:
        assert r["max_abs_diff_train_loss"] < 1e-4
    assert summary["step_costs"]["hand_ms_per_step"] > 0 and summary["step_costs"]["autodiff_ms_per_step"] > 0
    costs = {r["activation"]: r for r in summary["activation_costs"]}
    assert set(costs) == {"relu", "leaky_relu"}
    for r in costs.values():  # measured times, and ratios that a broken timer (0 or inf) would miss
        assert r["hand_us"] > 0 and r["autodiff_us"] > 0
        assert 0.05 < r["hand_vs_autodiff"] < 20 and 0.05 < costs["leaky_relu"]["hand_vs_relu"] < 20
    # one program per rule: every activation shares it (2 activations, 1 trace each)
    assert len(summary["compilations"]) == 2 and all(v == 1 for v in summary["compilations"].values())
    assert {k.rsplit("rule=", 1)[-1] for k in summary["compilations"]} == {"hand", "autodiff"}
    assert summary["run"]["compilations"] + summary["run"]["compile_cache_hits"] > 0 and summary["run"]["compile_seconds"] > 0
    assert summary["run"]["wall_seconds"] >= summary["run"]["compile_seconds"] / 4
    # where the wall went: phases in order, summing to the in-process wall; the first step
    # started after the data, the grids' preparation and the process's own start-up
    rt = summary["runtime_s"]
    assert list(rt["phases"]) == ["data", "prepare", "grids", "timing", "findings"]
    assert all(v >= 0 for v in rt["phases"].values())
    assert abs(sum(rt["phases"].values()) - rt["wall"]) < 0.05 * rt["wall"]
    for g in rt["grids"].values():  # training chunks within the grid's run
        assert 0 < g["train"] <= g["run"] and g["compile"] > 0
    if rt["launch"] is not None:  # Linux: read from /proc
        assert rt["launch"] > 0
        assert rt["launch"] + rt["phases"]["data"] + rt["phases"]["prepare"] < rt["first_step"] < rt["launch"] + rt["wall"]

    md = (run / "summary.md").read_text()
    assert "| --- |" in md and "## Findings" in md and "softmax" in md
    assert "s wall; XLA compiled" in md and "persistent compilation cache" in md
    assert "The first training step started" in md
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["smoke"] is True
    assert "softmax" in config["excluded_output_nonlinearities"]
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert "delta_norms" in first and "dead_fraction" in first


@pytest.mark.timeout(900)
def test_grid_sharded_over_8_devices_matches_unsharded(smoke_run, tmp_path):
    """The same grid with its members split over 8 simulated CPU devices gives the same results.

    The 8 devices are CPU devices on any machine (JAX_PLATFORMS=cpu); where the test process
    runs on an accelerator, the unsharded reference is rerun on the CPU as well, so both
    sides round alike.
    """
    base_dir, base = smoke_run
    assert base.returncode == 0, base.stderr[-4000:]
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    if jax.default_backend() != "cpu":
        base_dir = tmp_path / "plain"
        base = _run_smoke(base_dir, env=env)
        assert base.returncode == 0, base.stderr[-4000:]
        tmp_path = tmp_path / "sharded"
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    out = _run_smoke(tmp_path, "--mesh", "grid=8", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    sharded = json.loads((tmp_path / "activation_ablation" / "smoke" / "summary.json").read_text())
    plain = json.loads((base_dir / "activation_ablation" / "smoke" / "summary.json").read_text())
    assert sharded["mesh"] == {"grid": 8} and plain["mesh"] is None
    for key in ("rows", "high_lr_rows"):
        assert len(sharded[key]) == len(plain[key]) > 0
        for a, b in zip(sharded[key], plain[key]):
            assert (a["dataset"], a["arch"], a["activation"], a["lr"]) == (b["dataset"], b["arch"], b["activation"], b["lr"])
            for metric in ("test_accuracy_mean", "dead_mean"):
                assert a[metric] == pytest.approx(b[metric], abs=1e-6), (key, a["activation"], metric)
            for metric in [m for m in a if m.endswith("loss_mean")]:
                assert a[metric] == pytest.approx(b[metric], rel=1e-5, abs=1e-6), (key, a["activation"], metric)
