"""Smoke test of experiments/cost_ablation.py: runs it with --smoke and checks its outputs."""

import json

import pytest

from _experiment_smoke import run_help, run_script_smoke

NAME = "cost_ablation"


def test_help():
    stdout = run_help(NAME)
    assert "log-likelihood" in stdout and "--smoke" in stdout and "--import MODULE" in stdout


@pytest.mark.timeout(300)
def test_smoke(tmp_path):
    run, _ = run_script_smoke(NAME, tmp_path, timeout=300)
    for name in ("config.json", "metrics.jsonl", "summary.json", "summary.md", "cost_ablation.png"):
        assert (run / name).exists(), name
    assert (run / "cost_ablation.png").stat().st_size > 1000
    summary = json.loads((run / "summary.json").read_text())
    rows = summary["rows"]
    parts = {r["part"] for r in rows}
    assert parts == {"neuron", "ovr", "softmax"}
    costs = {r["cost"] for r in rows}
    assert costs == {"logistic_mse", "binary_cross_entropy", "softmax_mse", "softmax_cross_entropy"}
    for row in rows:
        assert "initial_out_grad" in row and "steps_to_threshold" in row and "reached" in row
    # The saturated neuron: squared error's output gradient is far smaller than h - y.
    neuron = {(r["cost"], r["start"]): r for r in rows if r["part"] == "neuron"}
    mse = neuron[("logistic_mse", "w0=2, b0=2")]["initial_out_grad"]
    bce = neuron[("binary_cross_entropy", "w0=2, b0=2")]["initial_out_grad"]
    assert mse < 0.05 * bce
    md = (run / "summary.md").read_text()
    assert "| part | cost |" in md and "## Findings" in md
