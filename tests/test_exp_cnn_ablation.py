"""Smoke test of experiments/cnn_ablation.py: runs it with --smoke and checks its outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "cnn_ablation.py"


def test_help():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "MNIST-1D" in r.stdout and "--variants" in r.stdout


@pytest.mark.timeout(300)
def test_smoke(tmp_path):
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out-dir", str(tmp_path), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    run = tmp_path / "cnn_ablation" / "smoke"
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
