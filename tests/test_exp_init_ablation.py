"""Smoke test of experiments/init_ablation.py: runs it with --smoke in a subprocess and checks its outputs."""

import pytest

from _experiment_smoke import run_help, run_smoke

NAME = "init_ablation"
PNGS = ("variance_per_layer.png", "delta_norms.png", "success_grid.png", "training_curves.png", "saturation.png")


def test_help():
    run_help(NAME)


@pytest.mark.timeout(600)
def test_smoke(tmp_path):
    run, summary = run_smoke(NAME, tmp_path, PNGS)
    row = summary["rows"][0]
    for k in ("init", "activation", "depth", "n_diverged", "success_rate", "test_accuracy_mean", "sat_init_mean"):
        assert k in row
