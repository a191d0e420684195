"""A damaged newest checkpoint never stops a run: resume moves it aside, continues from the
newest good one and finishes bitwise equal to an uninterrupted run; later saves succeed."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from funcnn.train import Checkpointer, CheckpointError

HERE = Path(__file__).resolve().parent


def _load_script():
    spec = importlib.util.spec_from_file_location("_train_resume_script", HERE / "_train_resume_script.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def reference(script, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    result, run = script.train(str(root / "ckpt"), str(root / "out"))
    return result, run.read_metrics()


def _largest_data_file(folder: Path) -> Path:
    files = [p for p in (folder / "tree").rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(files, key=lambda p: p.stat().st_size)


def _damage(folder: Path, how: str) -> None:
    if how == "truncate":
        p = _largest_data_file(folder)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif how == "zero":
        p = _largest_data_file(folder)
        p.write_bytes(b"\0" * p.stat().st_size)
    elif how == "flip":
        p = _largest_data_file(folder)
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x01
        p.write_bytes(bytes(data))
    elif how == "no_tree_metadata":
        (folder / "tree" / "_METADATA").unlink()
    elif how == "no_meta":
        (folder / "meta" / "metadata").unlink()
    elif how == "empty":
        shutil.rmtree(folder)
        folder.mkdir()
    else:
        raise AssertionError(how)


def _leaves_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(la, lb))


@pytest.mark.parametrize("how", ["truncate", "zero", "flip", "no_tree_metadata", "no_meta", "empty"])
def test_resume_past_a_damaged_newest_checkpoint_is_bitwise_equal(script, reference, tmp_path, how, capfd):
    ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "out")

    def ctrl_c(info):
        if info["step"] >= 130:
            raise KeyboardInterrupt

    partial, _ = script.train(ckpt, out, callback=ctrl_c)
    assert partial.interrupted and partial.step == 130
    ck = Checkpointer(ckpt)
    assert ck.all_steps() == [120, 130]
    ck.close()
    _damage(Path(ckpt) / "130", how)
    capfd.readouterr()

    resumed, run = script.train(ckpt, out, resume=True)
    err = capfd.readouterr().err
    skipped = [ln for ln in err.splitlines() if "skipped" in ln]
    assert len(skipped) == 1 and "step 130" in skipped[0], err
    assert not resumed.interrupted and resumed.step == resumed.total_steps
    assert _leaves_equal(resumed.params, reference[0].params)
    assert _leaves_equal(resumed.opt_state, reference[0].opt_state)
    for k in reference[0].history.eval_metrics:
        assert np.array_equal(resumed.history.eval_metrics[k], reference[0].history.eval_metrics[k], equal_nan=True)
    assert run.read_metrics() == reference[1]
    assert (Path(ckpt + ".damaged") / "130").exists()  # kept aside, not deleted
    ck = Checkpointer(ckpt)
    assert ck.latest_step() == script.STEPS  # saving steps past the damaged one worked
    ck.close()


def test_a_flipped_byte_is_caught_by_the_manifest(tmp_path):
    ck = Checkpointer(tmp_path / "ck")
    ck.save(1, {"a": np.arange(64.0)})
    ck.save(2, {"a": np.arange(64.0) + 1})
    _damage(tmp_path / "ck" / "2", "flip")
    with pytest.raises(CheckpointError, match="checkpoint step 2: file tree/.* does not match its saved checksum"):
        ck.verify(2)
    lines = []
    step, tree, _ = ck.restore_newest({"a": np.zeros(64)}, warn=lines.append)
    assert step == 1 and np.array_equal(tree["a"], np.arange(64.0))
    assert len(lines) == 1 and "skipped checkpoint step 2" in lines[0]
    ck.save(2, {"a": np.arange(64.0) + 5})  # the step can be written again
    assert ck.all_steps() == [1, 2]
    ck.close()
