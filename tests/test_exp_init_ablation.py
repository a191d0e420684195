"""Smoke test of experiments/init_ablation.py: runs it with --smoke in a subprocess and checks its outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PNGS = ("variance_per_layer.png", "delta_norms.png", "success_grid.png", "training_curves.png", "saturation.png")
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "init_ablation.py"


def test_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--smoke" in out.stdout


@pytest.mark.timeout(600)
def test_smoke(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out-dir", str(tmp_path), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=580,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    run = tmp_path / "init_ablation" / "smoke"
    for f in ("config.json", "metrics.jsonl", "summary.json", "summary.md"):
        assert (run / f).stat().st_size > 0, f
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rows"] and summary["findings"]
    md = (run / "summary.md").read_text()
    assert "| --- |" in md and "## Findings" in md
    for png in PNGS:
        assert (run / png).stat().st_size > 1000, png
    assert str(run) in out.stdout
    row = summary["rows"][0]
    for k in ("init", "activation", "depth", "n_diverged", "success_rate", "test_accuracy_mean", "sat_init_mean"):
        assert k in row
