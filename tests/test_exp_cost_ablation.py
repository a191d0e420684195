"""Smoke test of experiments/cost_ablation.py: runs it with --smoke and checks its outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "cost_ablation.py"


def test_help():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "log-likelihood" in r.stdout and "--smoke" in r.stdout


@pytest.mark.timeout(300)
def test_smoke(tmp_path):
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out-dir", str(tmp_path), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    run = tmp_path / "cost_ablation" / "smoke"
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
