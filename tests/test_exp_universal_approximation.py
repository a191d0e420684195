"""Smoke test of experiments/universal_approximation.py: runs it with --smoke in a subprocess and checks its outputs."""

import pytest

from _experiment_smoke import run_help, run_smoke

NAME = "universal_approximation"
PNGS = ("max_error_vs_width.png", "fits.png")


def test_help():
    run_help(NAME)


@pytest.mark.timeout(600)
def test_smoke(tmp_path):
    run, summary = run_smoke(NAME, tmp_path, PNGS)
    row = summary["rows"][0]
    for k in ("target", "activation", "width", "max_error_mean", "test_mse_mean"):
        assert k in row
    assert summary["slopes"]
