"""Smoke test of experiments/skip_connections.py: plain vs SkipInit at two depths, outputs and
numbers checked; bad settings stop before anything is written."""

import math

import pytest

from _experiment_smoke import read_json, run_help, run_script, run_smoke

NAME = "skip_connections"
PNGS = ("delta_norms.png", "accuracy_depth.png")


def test_help():
    text = run_help(NAME)
    assert "--import MODULE" in text and "--depths" in text


@pytest.mark.timeout(600)
def test_smoke(tmp_path):
    run, summary = run_smoke(NAME, tmp_path, PNGS)
    rows = {(r["arch"], r["depth"]): r for r in summary["rows"]}
    assert set(rows) == {("plain", 2), ("plain", 3), ("skipinit", 2), ("skipinit", 3)}
    for key, r in rows.items():
        assert r["n"] == 1 and r["n_diverged"] == 0, key
        assert 0.0 <= r["test_accuracy_mean"] <= 1.0, key
    members = {(m["config"]["arch"], m["config"]["depth"]): m for m in summary["members"]}
    for (arch, depth), m in members.items():
        assert len(m["delta_init"]) == depth + 2 == len(m["delta_end"])  # one per weighted layer
        assert all(math.isfinite(v) and v >= 0 for v in m["delta_init"] + m["delta_end"])
        assert m["delta_init"][0] > 0  # the input projection gets an error term in every architecture
    # SkipInit: every branch scalar is zero at init, so no error term reaches a branch's layer.
    assert all(v == 0 for v in members[("skipinit", 3)]["delta_init"][1:-1])
    assert all(v > 0 for v in members[("plain", 3)]["delta_init"])
    assert any("consistent with" in f or "short of" in f for f in summary["findings"])
    assert "De & Smith" in (run / "summary.md").read_text()
    cfg = read_json(run / "config.json")
    assert cfg["config"]["depths"] == [2, 3] and cfg["config"]["archs"] == ["plain", "skipinit"]


def test_bad_settings_stop_before_training(tmp_path):
    for args, msg in ((["--depths"], "--depths must list at least one value, got nothing"),
                      (["--archs", "dense"], "--archs must be one of 'plain', 'residual', 'skipinit', got 'dense'"),
                      (["--inits", "he"], "got 'he'"), (["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
                      (["--activations", "softmax"], "is not a hidden-layer activation")):
        out = run_script(NAME, "--smoke", "--out-dir", str(tmp_path), *args)
        assert out.returncode == 2 and msg in out.stderr, (args, out.stderr[-1000:])
        assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith(f"{NAME}: "), out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / NAME).exists()
