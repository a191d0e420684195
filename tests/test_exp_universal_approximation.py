"""Smoke test of experiments/universal_approximation.py: runs it with --smoke in a subprocess and checks its outputs."""

import math

import pytest

from _experiment_smoke import members, run_help, run_smoke

NAME = "universal_approximation"
PNGS = ("max_error_vs_width.png", "fits.png")


def _members(run):
    return members(run, ("member",))


def test_help():
    assert "--import MODULE" in run_help(NAME)


@pytest.mark.timeout(600)
def test_smoke(tmp_path):
    run, summary = run_smoke(NAME, tmp_path, PNGS)
    row = summary["rows"][0]
    for k in ("target", "activation", "width", "max_error_mean", "test_mse_mean"):
        assert k in row
    assert summary["slopes"]

    # The smoke grid: targets sin and abs x relu x widths 1 and 8, 20 full-batch Adam steps
    # (lr 0.01) on 32 samples, one seed.
    rows = {(r["target"], r["width"]): r for r in summary["rows"]}
    assert set(rows) == {("sin", 1), ("sin", 8), ("abs", 1), ("abs", 8)}
    for r in rows.values():
        assert r["n"] == 1 and r["n_diverged"] == 0
        e, mse = r["max_error_mean"], r["test_mse_mean"]
        assert math.isfinite(e) and e > 0 and math.isfinite(mse) and mse > 0
        # the mean of the squared errors is at most the largest squared error
        assert mse <= e * e * (1 + 1e-9), (r, e * e)
    # More units fit better, the experiment's point, already after 20 steps: measured max
    # error 1.24 -> 0.915 (sin) and 0.550 -> 0.509 (abs), test MSE 0.496 -> 0.262 and
    # 0.083 -> 0.068 from width 1 to 8, so both fitted log-log slopes are negative (-0.14, -0.04).
    for t in ("sin", "abs"):
        assert rows[(t, 8)]["max_error_mean"] < rows[(t, 1)]["max_error_mean"], t
        assert rows[(t, 8)]["test_mse_mean"] < rows[(t, 1)]["test_mse_mean"], t
        assert summary["slopes"][f"{t}/relu"] < 0, summary["slopes"]

    # Per member (metrics.jsonl, steps 0, 10, 20): the full-batch training loss finite and
    # falling at every evaluation, to at most 0.9 of its start (measured 0.49, 0.60, 0.80 and
    # 0.22 of it); the final test loss (funcnn.losses.mse = 1/2 the mean squared error) is
    # half the test MSE that the summary computes from the trained net's predictions.
    targets = ("sin", "abs")
    members = _members(run)
    assert len(members) == 4
    for recs in members.values():
        assert [r["step"] for r in recs] == [0, 10, 20]
        losses = [r["train_loss"] for r in recs]
        assert all(math.isfinite(v) and v > 0 for v in losses), losses
        assert all(b < a for a, b in zip(losses, losses[1:])), losses
        assert losses[-1] <= 0.9 * losses[0], losses
        c = recs[-1]["config"]
        r = rows[(targets[int(c["target_id"])], int(c["width"]))]
        assert math.isclose(2 * recs[-1]["test_loss"], r["test_mse_mean"], rel_tol=1e-4), (recs[-1], r)
