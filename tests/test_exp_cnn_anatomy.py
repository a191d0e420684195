"""Smoke test of experiments/cnn_anatomy.py (and its coverage counting) with --smoke."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "cnn_anatomy.py"


def _module():
    spec = importlib.util.spec_from_file_location("cnn_anatomy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cnn_anatomy", mod)  # dataclasses look the module up by name
    spec.loader.exec_module(mod)
    return mod


def test_help():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "convolution" in r.stdout and "--smoke" in r.stdout


@pytest.mark.parametrize("padding", ["VALID", "SAME", "full"])
@pytest.mark.parametrize("size,k", [(8, 3), (7, 5)])
def test_coverage_matches_direct_count(padding, size, k):
    mod = _module()
    got = mod.coverage_map(size, k, padding)
    np.testing.assert_array_equal(got, mod.coverage_direct(size, k, padding))
    if padding == "full":
        assert np.all(got == k * k)
    if padding == "VALID":
        assert got[0, 0] == 1 and got[size // 2, size // 2] == min(k, size - k + 1) ** 2


def test_shift_images_zero_fills():
    mod = _module()
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    s = mod.shift_images(x, 0, 1)
    np.testing.assert_array_equal(s[0, :, 0, 0], 0)
    np.testing.assert_array_equal(s[0, :, 1:, 0], x[0, :, :3, 0])


@pytest.mark.timeout(300)
def test_smoke(tmp_path):
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out-dir", str(tmp_path), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    run = tmp_path / "cnn_anatomy" / "smoke"
    for name in ("config.json", "metrics.jsonl", "summary.json", "summary.md", "cnn_anatomy.png",
                 "feature_maps.png", "coverage.png", "invariance.png"):
        assert (run / name).exists(), name
        if name.endswith(".png"):
            assert (run / name).stat().st_size > 1000
    summary = json.loads((run / "summary.json").read_text())
    assert all(summary["coverage_check"].values())
    assert set(summary["coverage"]) == {"VALID", "SAME", "full"}
    reps = {row["representation"] for row in summary["invariance"]}
    assert {"pixels", "conv1 (+ReLU), no pooling", "conv1 + pool"} <= reps
    convs = [row for row in summary["layers"] if row.get("conv_macs_check")]
    assert convs and all(row["conv_macs_check"] == "ok" for row in convs)
    assert summary["total_macs"] > 0 and summary["total_params"] > 0
    md = (run / "summary.md").read_text()
    assert "| representation |" in md and "floor((" in md and "## Findings" in md
