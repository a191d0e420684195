"""Smoke test of experiments/cnn_ablation.py: runs it with --smoke and checks its outputs."""

import json

import pytest

from _experiment_smoke import run_help, run_script_smoke

NAME = "cnn_ablation"


def test_help():
    stdout = run_help(NAME)
    assert "MNIST-1D" in stdout and "--variants" in stdout and "--import MODULE" in stdout


@pytest.mark.timeout(300)
def test_smoke(tmp_path):
    run, _ = run_script_smoke(NAME, tmp_path, timeout=300)
    for name in ("config.json", "metrics.jsonl", "summary.json", "summary.md", "cnn_ablation.png"):
        assert (run / name).exists(), name
    assert (run / "cnn_ablation.png").stat().st_size > 1000
    summary = json.loads((run / "summary.json").read_text())
    models = {row["model"] for row in summary["rows"]}
    assert {"paper", "stride1_max", "logistic", "mlp"} <= models
    for row in summary["rows"]:
        for key in ("test_accuracy_mean", "test_accuracy_std", "params", "macs_per_example", "n"):
            assert key in row
        assert 0.0 <= row["test_accuracy_mean"] <= 1.0
    assert summary["paper"] == {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94}
    assert {row["model"] for row in summary["ours_vs_paper"]} == {"logistic", "mlp", "paper"}
    md = (run / "summary.md").read_text()
    assert "| model |" in md and "Ours vs the paper" in md and "## Findings" in md
