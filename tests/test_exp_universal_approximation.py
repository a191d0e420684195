"""Smoke test of experiments/universal_approximation.py: runs it with --smoke in a subprocess and checks its outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PNGS = ("max_error_vs_width.png", "fits.png")
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "universal_approximation.py"


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
    run = tmp_path / "universal_approximation" / "smoke"
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
    for k in ("target", "activation", "width", "max_error_mean", "test_mse_mean"):
        assert k in row
    assert summary["slopes"]
