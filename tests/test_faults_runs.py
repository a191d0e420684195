"""Faults in runs: SIGTERM, --resume of what cannot resume, unwritable --out-dir, damaged
checkpoints, metrics of a group that restarts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optax
import pytest

from funcnn.nn.models import mlp
from funcnn.train import CheckpointError, Checkpointer, RunDir, TrainSpec, run_grid

REPO = Path(__file__).resolve().parents[1]
AA = REPO / "experiments" / "activation_ablation.py"
LONG = ["--archs", "mlp", "--activations", "relu", "--mlp-widths", "8", "--mlp-steps", "200000", "--mlp-evals", "2",
        "--seeds", "0", "--high-lr", "0", "--no-compare-rules", "--timing-rounds", "1", "--timing-shape", "16", "64",
        "--probe-size", "16", "--no-progress", "--no-compile-cache"]


def _script(args, **kw):
    return subprocess.run([sys.executable, str(AA), *args], cwd=REPO, capture_output=True, text=True, timeout=300, **kw)


def test_sigterm_checkpoints_summarizes_and_exits_143(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(AA), *LONG, "--checkpoint", "--out-dir", str(out), "--run-name", "r"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    run = out / "activation_ablation" / "r"
    deadline = time.monotonic() + 240
    # Training has begun once the first evaluation (at step 0) is in metrics.jsonl.
    while not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run did not start training in time"
        time.sleep(0.2)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is True
    steps = [int(p.name) for p in (run / "checkpoints" / "mnist1d_mlp").glob("*/*") if p.name.isdigit()]
    every = 200000 // 4  # the script's periodic checkpoints
    assert steps and max(steps) % every != 0  # a checkpoint at the stop step, not only periodic ones
    assert "interrupted" in (run / "summary.md").read_text()


def test_resume_of_what_cannot_resume_is_one_clear_line(tmp_path):
    out = _script(["--smoke", "--resume", "--run-name", "nope", "--out-dir", str(tmp_path)])
    assert out.returncode != 0 and "there is no run" in out.stderr and "Traceback" not in out.stderr
    done = _script(["--smoke", "--out-dir", str(tmp_path), "--no-progress"])
    assert done.returncode == 0, done.stderr[-2000:]
    again = _script(["--smoke", "--resume", "--run-name", "smoke", "--out-dir", str(tmp_path)])
    assert again.returncode != 0 and "has no checkpoints" in again.stderr and "Traceback" not in again.stderr
    other = subprocess.run([sys.executable, str(REPO / "experiments" / "init_ablation.py"), "--smoke", "--resume",
                            "--out-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and other.stderr.strip() == "init_ablation: unrecognized arguments: --resume (see --help)"  # no such flag there


def test_out_dir_that_is_a_file_is_one_clear_line(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    out = _script(["--smoke", "--out-dir", str(f)])
    assert out.returncode != 0 and "cannot create the run directory" in out.stderr and "--out-dir" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path):
    ck = Checkpointer(tmp_path / "ck", max_to_keep=3)
    ck.save(1, {"a": np.arange(4.0)})
    ck.save(2, {"a": np.arange(4.0) + 10})
    ck.close()
    # Damage every data file of step 2.
    for p in (tmp_path / "ck" / "2").rglob("*"):
        if p.is_file() and p.stat().st_size > 0 and "METADATA" not in p.name.upper() and p.suffix != ".json":
            p.write_bytes(b"\0" * 7)
    ck = Checkpointer(tmp_path / "ck", max_to_keep=3)
    lines = []
    step, tree, _ = ck.restore_newest({"a": np.zeros(4)}, warn=lines.append)
    assert step == 1 and np.array_equal(tree["a"], np.arange(4.0))
    assert len(lines) == 1 and "skipped checkpoint step 2" in lines[0] and "\n" not in lines[0]
    # Every checkpoint damaged: one clear error.
    for p in (tmp_path / "ck" / "1").rglob("*"):
        if p.is_file() and p.stat().st_size > 0 and "METADATA" not in p.name.upper() and p.suffix != ".json":
            p.write_bytes(b"\0" * 7)
    with pytest.raises(CheckpointError, match="no checkpoint in .* restores"):
        ck.restore_newest({"a": np.zeros(4)}, warn=lambda m: None)
    ck.close()


def test_a_group_without_checkpoint_restarts_its_metrics(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)

    def build(c):
        return TrainSpec(mlp((4,), 2), "softmax_cross_entropy", optax.sgd(c["lr"]))

    run = RunDir(tmp_path, "exp", "r")
    # Records left by a run killed before its first checkpoint.
    run.append_metrics([{"group": "all", "member": 0, "step": 0, "test_loss": 9.0}] * 3)
    kw = dict(steps=8, batch_size=16, eval_every=4, progress=False, checkpoint_dir=str(tmp_path / "ck"))
    res = run_grid(build, {"lr": [0.1], "seed": [0]}, (x, y), test_data=(x, y), run_dir=RunDir(tmp_path, "exp", "r", resume=True),
                   resume=True, **kw)
    assert not res.interrupted
    recs = RunDir(tmp_path, "exp", "r", resume=True).read_metrics()
    assert [r["step"] for r in recs] == [0, 4, 8] and all(r["test_loss"] != 9.0 for r in recs)


def test_a_failed_save_is_one_line_without_shutdown_noise(tmp_path):
    """A checkpoint that cannot be written: CheckpointError, one line with step, folder and cause,
    and nothing else on stderr when the process exits (no asyncio shutdown noise)."""
    code = f"""
import shutil, numpy as np
from funcnn.train import Checkpointer, CheckpointError
d = {str(tmp_path / 'c')!r}
ck = Checkpointer(d)
ck.save(1, {{"a": np.arange(3.0)}})
shutil.rmtree(d); open(d, "w").write("not a folder")
try:
    ck.save(2, {{"a": np.arange(3.0)}})
except CheckpointError as e:
    print(e)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1 and "could not write step 2 to" in lines[0] and "NotADirectoryError" in lines[0]
    assert "Event loop is closed" not in p.stderr and "meta_path" not in p.stderr and "Traceback" not in p.stderr


class _FakeGrid:
    """Stands in for a PreparedGrid: ``compile`` may raise, ``run`` returns a finished result."""

    def __init__(self, name, compile_raises=None):
        self.name, self.compile_raises, self.ran = name, compile_raises, False

    def compile(self):
        if self.compile_raises is not None:
            raise self.compile_raises

    def run(self, stop=None):
        from funcnn.train.grid import GridResult

        self.ran = True
        return GridResult(members=[], groups=[], batched_keys=[], static_keys=[], interrupted=False, seconds=0.0)


def test_run_grids_keeps_finished_grids_when_ctrl_c_lands_while_the_next_compiles():
    from funcnn.train import run_grids

    for workers in (1,):  # one grid at a time (side by side: tests/test_run_grids.py)
        a, b, c = _FakeGrid("a"), _FakeGrid("b", KeyboardInterrupt()), _FakeGrid("c")
        done = run_grids([a, b, c], workers=workers)
        assert len(done) == 1 and done[0].interrupted  # the finished grid comes back, marked as the last one
        assert a.ran and not b.ran and not c.ran
        # before any grid trained there is nothing to return: the interrupt is raised
        with pytest.raises(KeyboardInterrupt):
            run_grids([_FakeGrid("x", KeyboardInterrupt()), _FakeGrid("y")], workers=workers)
