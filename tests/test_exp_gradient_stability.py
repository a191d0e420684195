"""Smoke test of experiments/gradient_stability.py: runs it with --smoke in a subprocess and checks its outputs."""

import pytest

from _experiment_smoke import run_help, run_smoke

NAME = "gradient_stability"
PNGS = ("loss_curves.png", "grad_norms.png")


def test_help():
    run_help(NAME)


@pytest.mark.timeout(600)
def test_smoke(tmp_path):
    run, summary = run_smoke(NAME, tmp_path, PNGS)
    row = summary["rows"][0]
    for k in ("scenario", "variant", "n_diverged", "grad_norm_max_mean", "train_loss_mean"):
        assert k in row
    assert {r["variant"] for r in summary["rows"]} == {"no clip", "clip", "no clip + BN", "clip + BN"}
