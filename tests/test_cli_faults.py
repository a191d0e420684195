"""Runs that never lie: every experiment script validates its whole configuration before it
trains or writes anything, and what goes wrong later is one line too.

- A setting that cannot be right: one line on stderr, ``<script>: <flag> must be <expected>,
  got <value>``, exit status 2, no traceback, no run folder (real command lines, and many more
  cases run in one process through each script's ``main``).
- A run name in use (an existing run; another process writing it): one line, exit status 2,
  the other run untouched.
- A write that fails mid-run (disk full, read-only): one line naming the file and the run
  directory, exit status 1, every record written before kept.
- A failed start removes the run folder it created, never a user's run.
- An interrupted summary says how it was stopped (SIGTERM or Ctrl-C), at which step of how many,
  the step each configuration reached, and which groups never started ("not run", not ``nan``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _experiment_smoke import REPO, run_script, script_path

from funcnn.train import ExperimentConfig, RunDir, open_run, parse_config, summarize
from funcnn.study import runs as runs_mod
from funcnn.study.cli import RunExistsError, ScriptError, experiment_main, interrupted_at, stopped_note, validate
from funcnn.study.runs import RunWriteError

# (script, flags after --smoke, a fragment of the one line on stderr): one real command line per
# script (each costs a Python start, ~3.5 s); IN_PROCESS_CASES below has the many others.
CLI_CASES = [
    ("activation_ablation", ["--high-lr", "-1"], "--high-lr must be a finite number >= 0, got -1.0"),
    ("cnn_ablation", ["--kernels"], "--kernels must list at least one value, got nothing"),
    ("cnn_anatomy", ["--coverage-kernel", "20"], "--coverage-kernel must be an int in [1, 8]"),
    ("cost_ablation", ["--positive-class", "99"], "--positive-class must be an int in [0, 9]"),
    ("gradient_stability", ["--activation", "softmax"], "'softmax' (an output nonlinearity) is not a hidden-layer"),
    ("init_ablation", ["--seeds", "0", "0"], "--seeds must not repeat a value, got 0 0 (0 twice)"),
    ("skip_connections", ["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    ("universal_approximation", ["--fit-widths", "3"], "--fit-widths must be one of --widths (1 8)"),
]

# Run in one process, through each script's main(argv) (what the command line runs, past Python's start).
IN_PROCESS_CASES = [
    # values the command-line parser cannot read: one line too, not tyro's box
    ("gradient_stability", ["--depth", "abc"], "--depth (expects INT): invalid literal for int() with base 10: 'abc'"),
    # an optional int: tyro explains each alternative on lines of its own; still one line here
    ("activation_ablation", ["--grid-workers", "x"], "--grid-workers (expects {None}|INT): "),
    ("activation_ablation", ["--grid-workers", "0"], "--grid-workers must be an int >= 1, got 0"),
    ("gradient_stability", ["--depth"], "--depth (expects INT): too few values"),
    ("init_ablation", ["--optimizer", "foo"], "--optimizer must be one of sgd, momentum,"),
    ("cnn_ablation", ["--bogus", "3"], "unrecognized arguments: --bogus 3"),
    ("activation_ablation", ["--mlp-steps", "1.5"], "--mlp-steps (expects INT): invalid literal for int()"),
    # learning rates: negative, zero, NaN, on every script that takes one
    ("activation_ablation", ["--mlp-lr", "-1"], "--mlp-lr must be a finite number > 0, got -1.0"),
    ("activation_ablation", ["--cnn-lr", "0"], "--cnn-lr must be a finite number > 0, got 0.0"),
    ("activation_ablation", ["--mlp-lr", "nan"], "--mlp-lr must be a finite number > 0, got nan"),
    ("cnn_ablation", ["--lr", "-0.5"], "--lr must be a finite number > 0, got -0.5"),
    ("cnn_anatomy", ["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
    ("cost_ablation", ["--neuron-lr", "-1"], "--neuron-lr must be a finite number > 0"),
    ("cost_ablation", ["--ovr-lr", "nan"], "--ovr-lr must be a finite number > 0, got nan"),
    ("cost_ablation", ["--softmax-lr", "0"], "--softmax-lr must be a finite number > 0"),
    ("gradient_stability", ["--base-lr", "-1"], "--base-lr must be a finite number > 0"),
    ("gradient_stability", ["--high-lr", "nan"], "--high-lr must be a finite number > 0, got nan"),
    ("init_ablation", ["--lrs", "0.1", "-0.1"], "--lrs must be a finite number > 0, got -0.1"),
    ("skip_connections", ["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
    ("universal_approximation", ["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
    # step counts, sizes, batches larger than the data
    ("activation_ablation", ["--mlp-batch", "100000"], "--mlp-batch must be an int in [1, 4000]"),
    ("activation_ablation", ["--timing-rounds", "0"], "--timing-rounds must be an int >= 1, got 0"),
    ("gradient_stability", ["--depth", "0"], "--depth must be an int >= 1, got 0"),
    ("activation_ablation", ["--mlp-steps", "0"], "--mlp-steps must be an int >= 1, got 0"),
    ("activation_ablation", ["--cnn-evals", "0"], "--cnn-evals must be an int >= 1, got 0"),
    ("activation_ablation", ["--probe-size", "5000"], "--probe-size must be an int in [1, 4000]"),
    ("activation_ablation", ["--timing-shape", "0", "4"], "--timing-shape must be an int >= 1, got 0"),
    ("cnn_ablation", ["--steps", "0"], "--steps must be an int >= 1, got 0"),
    ("cnn_ablation", ["--batch-size", "4001"], "--batch-size must be an int in [1, 4000]"),
    ("cnn_ablation", ["--channels", "0"], "--channels must be an int >= 1, got 0"),
    ("cnn_anatomy", ["--epochs", "0"], "--epochs must be an int >= 1, got 0"),
    ("cnn_anatomy", ["--batch-size", "100000"], "--batch-size must be an int in [1, 1437]"),
    ("cost_ablation", ["--batch-size", "0"], "--batch-size must be an int in [1, 1437]"),
    ("cost_ablation", ["--evals", "0"], "--evals must be an int >= 1, got 0"),
    ("gradient_stability", ["--width", "0"], "--width must be an int >= 1, got 0"),
    ("gradient_stability", ["--batch-size", "5000"], "--batch-size must be an int in [1, 4000]"),
    ("init_ablation", ["--depths", "0"], "--depths must be an int >= 1, got 0"),
    ("init_ablation", ["--probe-size", "0"], "--probe-size must be an int in [1, 4000]"),
    ("skip_connections", ["--depths", "0"], "--depths must be an int >= 1, got 0"),
    ("universal_approximation", ["--widths", "0", "4"], "--widths must be an int >= 1, got 0"),
    ("universal_approximation", ["--steps", "0"], "--steps must be an int >= 1, got 0"),
    # empty and repeated list flags, repeated seeds
    ("activation_ablation", ["--activations", "relu", "relu"], "--activations must not repeat a value"),
    ("activation_ablation", ["--activations"], "--activations must list at least one value, got nothing"),
    ("activation_ablation", ["--mlp-widths"], "--mlp-widths must list at least one value"),
    ("activation_ablation", ["--seeds"], "--seeds must list at least one value, got nothing"),
    ("cnn_ablation", ["--variants"], "--variants must list at least one value"),
    ("cnn_ablation", ["--mlp-widths"], "--mlp-widths must list at least one value"),
    ("cnn_anatomy", ["--shifts"], "--shifts must list at least one value"),
    ("cnn_anatomy", ["--channels"], "--channels must list at least one value"),
    ("cnn_anatomy", ["--shifts", "1", "1"], "--shifts must not repeat a value"),
    ("cost_ablation", ["--ovr-biases"], "--ovr-biases must list at least one value"),
    ("cost_ablation", ["--out-scales"], "--out-scales must list at least one value"),
    ("cost_ablation", ["--seeds", "3", "3"], "--seeds must not repeat a value, got 3 3 (3 twice)"),
    ("gradient_stability", ["--seeds", "0", "0"], "--seeds must not repeat a value"),
    ("init_ablation", ["--inits"], "--inits must list at least one value"),
    ("init_ablation", ["--activations", "tanh", "tanh"], "--activations must not repeat a value"),
    ("skip_connections", ["--archs"], "--archs must list at least one value"),
    ("universal_approximation", ["--targets"], "--targets must list at least one value"),
    ("universal_approximation", ["--widths"], "--widths must list at least one value"),
    ("universal_approximation", ["--activations"], "--activations must list at least one value"),
    # values outside what the script can do
    ("activation_ablation", ["--compare-arch", "cnn"], "--compare-arch must be among --archs (mlp), got 'cnn'"),
    ("activation_ablation", ["--high-lr-archs", "cnn"], "--high-lr-archs must be among --archs (mlp)"),
    ("activation_ablation", ["--high-lr", "0.003"], "--high-lr must differ from --mlp-lr"),
    ("activation_ablation", ["--activations", "softmax"], "(an output nonlinearity) is not a hidden-layer"),
    ("cnn_ablation", ["--dropout", "1.5"], "--dropout must be a number in [0, 1), got 1.5"),
    ("cnn_anatomy", ["--seeds"], "--seeds must list at least one value, got nothing"),
    ("init_ablation", ["--lrs", "nan"], "--lrs must be a finite number > 0, got nan"),
    ("skip_connections", ["--rule", "foo"], "--rule must be one of 'hand', 'autodiff', got 'foo'"),
    ("universal_approximation", ["--targets", "foo"], "--targets must be one of 'sin', 'abs'"),
    ("cnn_ablation", ["--kernels", "50", "3", "3"], "--kernels must fit the length-40 signals in every variant"),
    ("cnn_ablation", ["--kernels", "0"], "--kernels must be an int >= 1, got 0"),
    ("cnn_ablation", ["--rule", "foo"], "--rule must be one of 'hand', 'autodiff', got 'foo'"),
    ("cnn_ablation", ["--dataset", "foo"], "--dataset must be one of 'mnist1d', 'mnist1d_shuffled', got 'foo'"),
    ("cnn_ablation", ["--variants", "foo"], "--variants must be one of 'paper'"),
    ("cnn_ablation", ["--activation", "log_softmax"], "is not a hidden-layer activation"),
    ("cnn_ablation", ["--no-baselines", "--mlp-widths", "50"], "--mlp-widths sets the MLP baseline"),
    ("cnn_ablation", ["--target", "1.5"], "--target must be a number in (0, 1], got 1.5"),
    ("cnn_ablation", ["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0"),
    ("cnn_anatomy", ["--seeds", "1", "2"], "--seeds must be one seed (the script trains one model), got 1 2"),
    ("cnn_anatomy", ["--channels", "8", "8", "8", "8"], "--channels must give at most 3 conv layers"),
    ("cnn_anatomy", ["--shifts", "8"], "--shifts must be an int in [1, 7]"),
    ("cnn_anatomy", ["--shifts", "0"], "--shifts must be an int in [1, 7]"),
    ("cnn_anatomy", ["--kernel", "20"], "--kernel must be an int in [1, 8]"),
    ("cnn_anatomy", ["--pool", "median"], "--pool must be one of 'max', 'avg', got 'median'"),
    ("cnn_anatomy", ["--coverage-size", "4", "--coverage-kernel", "5"], "--coverage-kernel must be an int in [1, 4]"),
    ("cnn_anatomy", ["--examples", "0"], "--examples must be an int in [1, 360]"),
    ("cost_ablation", ["--positive-class", "-1"], "--positive-class must be an int in [0, 9]"),
    ("cost_ablation", ["--dataset", "mnist1d", "--positive-class", "10"], "(a class of mnist1d), got 10"),
    ("cost_ablation", ["--dataset", "moons"], "--dataset must be one of 'digits', 'mnist1d', got 'moons'"),
    ("cost_ablation", ["--hidden-activation", "softmax"], "is not a hidden-layer activation"),
    ("cost_ablation", ["--ovr-threshold", "0"], "--ovr-threshold must be a number in (0, 1], got 0.0"),
    ("cost_ablation", ["--ovr-biases", "nan"], "--ovr-biases must be a finite number, got nan"),
    ("gradient_stability", ["--bad-gain", "1"], "--bad-gain must be a gain other than 1"),
    ("gradient_stability", ["--high-lr", "0.02"], "--high-lr must be a rate other than --base-lr"),
    ("gradient_stability", ["--clip-norm", "0"], "--clip-norm must be a finite number > 0, got 0.0"),
    ("gradient_stability", ["--dataset", "foo"], "--dataset must be one of 'mnist1d', 'digits', got 'foo'"),
    ("gradient_stability", ["--rule", "foo"], "--rule must be one of 'hand', 'autodiff', got 'foo'"),
    ("init_ablation", ["--inits", "foo"], "--inits must be one of 'normal_1'"),
    ("init_ablation", ["--success-margin", "2"], "--success-margin must be a number in [0, 1), got 2.0"),
    ("init_ablation", ["--activations", "softmax"], "is not a hidden-layer activation"),
    ("skip_connections", ["--batch-size", "4001"], "--batch-size must be an int in [1, 4000]"),
    ("skip_connections", ["--inits", "he"], "--inits must be one of"),
    ("universal_approximation", ["--fit-widths", "1", "1"], "--fit-widths must not repeat a value"),
    ("universal_approximation", ["--n-train", "0"], "--n-train must be an int >= 1, got 0"),
    ("universal_approximation", ["--rule", "foo"], "--rule must be one of 'hand', 'autodiff', got 'foo'"),
    # flags that would do nothing are refused, not ignored
    ("activation_ablation", ["--cnn-lr", "0.1"], "--cnn-lr sets the cnn runs, but --archs (mlp) has no cnn"),
    ("activation_ablation", ["--no-compare-rules", "--compare-activation", "relu"], "which --no-compare-rules turns off"),
    ("activation_ablation", ["--high-lr", "0", "--high-lr-archs", "mlp"], "--high-lr-archs has no effect with --high-lr 0"),
    ("cnn_anatomy", ["--mesh", "grid=2"], "--mesh/--devices must be left out (cnn_anatomy trains one model on one"),
    ("cost_ablation", ["--devices", "2"], "--mesh/--devices must be left out (cost_ablation trains on one device)"),
    # the shared flags
    ("universal_approximation", ["--mesh", "foo"], "--mesh: expected 'axis=size' pairs"),
    ("universal_approximation", ["--mesh", "grid=0"], "--mesh: size of axis 'grid' must be an int >= 1"),
    ("cnn_ablation", ["--devices", "0"], "--devices must be an int >= 1, got 0"),
    ("cost_ablation", ["--run-name", ".."], "--run-name must be a folder name"),
    ("activation_ablation", ["--resume", "--overwrite", "--run-name", "x"], "--overwrite and --resume contradict"),
]

DRIVER = textwrap.dedent("""
    import contextlib, importlib.util, io, json, os, sys, traceback
    cases, out_root = json.loads(sys.stdin.read()), sys.argv[1]
    mods, results = {}, []
    for i, (name, args, _) in enumerate(cases):
        if name not in mods:
            spec = importlib.util.spec_from_file_location(name, os.path.join("experiments", name + ".py"))
            mods[name] = importlib.util.module_from_spec(spec)
            sys.modules[name] = mods[name]
            spec.loader.exec_module(mods[name])
        out_dir = os.path.join(out_root, str(i))
        err, code = io.StringIO(), None
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = mods[name].main(["--smoke", "--out-dir", out_dir, "--no-progress", "--no-compile-cache", *args])
            except SystemExit as e:
                code = e.code
            except BaseException:
                err.write("Traceback (escaped main)\\n" + traceback.format_exc())
        results.append({"code": code, "err": err.getvalue(), "created": os.path.exists(out_dir)})
    print(json.dumps(results))
""")


def _check_one_line(name, args, fragment, code, err, created, *, expect=2):
    what = (name, args, err[-1500:])
    assert code == expect, what
    assert "Traceback" not in err, what
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: "), what
    assert fragment in lines[0], (fragment, what)
    assert not created, ("a run folder was created", what)


def test_bad_settings_are_one_line_and_exit_2_before_anything_is_written(tmp_path):
    """Real command lines, every script: exit status 2, one line naming flag, expectation and
    value, no traceback, no folder under --out-dir."""

    def one(i_case):
        i, (name, args, fragment) = i_case
        out = tmp_path / str(i)
        proc = run_script(name, "--smoke", "--out-dir", str(out), "--no-progress", *args, timeout=300)
        return name, args, fragment, proc.returncode, proc.stderr, out.exists()

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        for name, args, fragment, code, err, created in pool.map(one, enumerate(CLI_CASES)):
            _check_one_line(name, args, fragment, code, err, created)


def test_many_bad_settings_through_each_scripts_main(tmp_path):
    """~90 more settings that cannot be right, run through each script's main(argv) in one
    process (so the suite stays fast): each is refused the same way, before any folder exists."""
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path)], input=json.dumps(IN_PROCESS_CASES),
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(IN_PROCESS_CASES)
    for (name, args, fragment), r in zip(IN_PROCESS_CASES, results):
        _check_one_line(name, args, fragment, r["code"], r["err"], r["created"])


# ----------------------------------------------------------------------------- run names in use

def test_a_run_name_in_use_is_one_line_and_the_other_run_is_untouched(tmp_path):
    """A run another process (this one) is writing: the script says so in one line naming the
    pid, and its --overwrite deletes nothing."""
    held = RunDir(tmp_path, "cnn_ablation", "smoke")
    held.write_text("note.txt", "mine")
    try:
        p = run_script("cnn_ablation", "--smoke", "--no-progress", "--out-dir", str(tmp_path), "--overwrite", timeout=300)
        assert (held.path / "note.txt").read_text() == "mine"
    finally:
        held.close()
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert p.stderr.strip() == (f"cnn_ablation: run directory {str(held.path)!r} is in use by another process (pid "
                                f"{os.getpid()}); wait for it to finish, or choose another --run-name")


# ----------------------------------------------------------------------------- failed starts


@dataclasses.dataclass
class _Cfg(ExperimentConfig, resumable=False):
    width: int = 4


def _demo(fail_with: BaseException | None, write_metrics: bool = False):
    @experiment_main("demo")
    def main(argv=None):
        cfg = parse_config(_Cfg, argv)
        validate(cfg, "demo")
        run = open_run(cfg, "demo")
        if write_metrics:
            run.append_metrics([{"step": 0}])
        if fail_with is not None:
            raise fail_with
        return 0

    return main


def test_a_failed_start_removes_only_the_folder_it_created(tmp_path, capsys):
    base = ["--out-dir", str(tmp_path), "--no-compile-cache", "--run-name"]
    run = tmp_path / "demo"
    # data loading (say) failed after open_run: the error keeps its traceback, the folder goes
    with pytest.raises(RuntimeError, match="no data"):
        _demo(RuntimeError("no data"))([*base, "r1"])
    assert not (run / "r1").exists()
    # Ctrl-C before training wrote anything: one line, exit 130, no folder
    with pytest.raises(SystemExit) as e:
        _demo(KeyboardInterrupt())([*base, "r2"])
    assert e.value.code == 130 and not (run / "r2").exists()
    assert capsys.readouterr().err.strip() == "demo: interrupted (Ctrl-C) before any result was written"
    # something was written: the folder stays
    with pytest.raises(RuntimeError):
        _demo(RuntimeError("late"), write_metrics=True)([*base, "r3"])
    assert (run / "r3" / "metrics.jsonl").exists()
    # a user's run is never removed: neither when it exists (refused) nor when it is replaced and kept
    (run / "mine").mkdir()
    (run / "mine" / "config.json").write_text("{}")
    with pytest.raises(SystemExit) as e:
        _demo(None)([*base, "mine"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err == (f"demo: run directory {str(run / 'mine')!r} already exists and is not empty; "
                                         "pass --overwrite to replace it, or choose another --run-name")
    assert (run / "mine" / "config.json").read_text() == "{}"
    reopened = RunDir(tmp_path, "demo", "mine", resume=True)  # resumed: not this RunDir's to remove
    assert not reopened.discard_if_unused() and (run / "mine" / "config.json").exists()
    # the name of the failed start is free again
    assert _demo(None)([*base, "r1"]) == 0 and (run / "r1" / "config.json").exists()


def test_open_run_errors_are_script_errors(tmp_path):
    """A reused name suggests --resume only where the script can resume that run; --resume of
    what cannot resume is exit status 2 (one line under experiment_main)."""
    cfg = parse_config(_Cfg, ["--out-dir", str(tmp_path), "--no-compile-cache", "--run-name", "x"])
    open_run(cfg, "demo").close()
    with pytest.raises(RunExistsError) as e:
        open_run(cfg, "demo", resumable=True)  # resumable, but this run has no checkpoints
    assert isinstance(e.value, FileExistsError) and e.value.code == 2 and "--resume" not in str(e.value)
    (tmp_path / "demo" / "x" / "checkpoints" / "g").mkdir(parents=True)
    with pytest.raises(RunExistsError, match=r"pass --overwrite to replace it, --resume to continue it, or choose "
                                             r"another --run-name$"):
        open_run(cfg, "demo", resumable=True)
    with pytest.raises(ScriptError, match="--resume needs --run-name") as e:
        open_run(dataclasses.replace(cfg, resume=True, run_name=None), "demo", resumable=True)
    assert e.value.code == 2
    with pytest.raises(ScriptError, match="--resume: there is no run .* to continue"):
        open_run(dataclasses.replace(cfg, resume=True, run_name="nope"), "demo", resumable=True)


# ----------------------------------------------------------------------------- writes that fail


def test_run_dir_writes_that_fail_are_one_clear_error_and_keep_what_was_written(tmp_path, monkeypatch):
    run = RunDir(tmp_path, "exp", "r")
    run.write_json("summary.json", {"a": 1})
    run.append_metrics([{"step": 0}])

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(runs_mod.os, "replace", full)
    writes = {
        "metrics.jsonl": lambda: run.append_metrics([{"step": 1}]),
        "summary.json": lambda: run.write_json("summary.json", {"a": 2}),
        "summary.md": lambda: run.write_summary([{"x": 1}]),  # summary.json first: that one fails
        "notes.md": lambda: run.write_text("notes.md", "x"),
        "curves.npz": lambda: run.save_arrays("curves", a=[1.0]),
    }
    for name, write in writes.items():
        with pytest.raises(RunWriteError) as e:
            write()
        shown = "summary.json" if name == "summary.md" else name
        assert str(e.value) == f"cannot write {shown} in {run.path}: No space left on device (OSError)"
        assert e.value.errno == errno.ENOSPC and e.value.__cause__ is None and e.value.__suppress_context__
    # a read-only folder: the temporary file cannot even be made, nor removed
    monkeypatch.setattr(runs_mod.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(runs_mod.os, "unlink", read_only)
    with pytest.raises(RunWriteError, match=r"^cannot write metrics.jsonl in .*: Read-only file system \(OSError\)$"):
        run.append_metrics([{"step": 2}])
    monkeypatch.undo()
    assert run.read_metrics() == [{"step": 0}]  # every record written before, nothing else
    assert json.loads((run.path / "summary.json").read_text()) == {"a": 1}
    run.append_metrics([{"step": 3}])  # the disk is back: appending goes on from what is on disk
    assert [r["step"] for r in RunDir(tmp_path, "exp", "r", resume=True).read_metrics()] == [0, 3]
    assert sorted(p.name for p in run.path.iterdir()) == ["metrics.jsonl", "summary.json"]  # no temp files


FLAKY = textwrap.dedent("""
    import errno, os, runpy, sys
    from pathlib import Path
    import funcnn.study.runs as runs
    script, out, fail_on, after, err_no = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    real, seen = runs.atomic_write_bytes, [0]

    def flaky(path, data):
        if Path(path).name == fail_on:
            seen[0] += 1
            if seen[0] > after:
                raise OSError(err_no, os.strerror(err_no))
        return real(path, data)

    runs.atomic_write_bytes = flaky
    sys.argv = [script, "--smoke", "--out-dir", out, "--no-progress", "--no-compile-cache"]
    runpy.run_path(script, run_name="__main__")
""")


def test_a_full_disk_mid_run_is_one_line_and_keeps_the_records(tmp_path):
    """universal_approximation --smoke (targets sin, abs; width 1 and 8: 4 members, evaluations at
    steps 0, 10, 20) writes metrics.jsonl at steps 10 and 20; the disk is full at the second."""
    name = "universal_approximation"
    p = subprocess.run([sys.executable, "-c", FLAKY, str(script_path(name)), str(tmp_path), "metrics.jsonl", "1",
                        str(errno.ENOSPC)], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    run = tmp_path / name / "smoke"
    assert p.returncode == 1, p.stderr[-3000:]
    assert p.stderr.strip() == f"{name}: cannot write metrics.jsonl in {run}: No space left on device (OSError)", p.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["step"] for r in records) == [0] * 4 + [10] * 4  # the first write, whole
    assert (run / "config.json").exists() and not (run / "summary.json").exists()  # the run is kept


# ----------------------------------------------------------------------------- interrupted summaries


def _wait_for_metrics(proc, run: Path, deadline_s: float = 240) -> None:
    deadline = time.monotonic() + deadline_s
    while not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run did not start training in time"
        time.sleep(0.1)
    time.sleep(0.5)


def _popen(name, *args):
    return subprocess.Popen([sys.executable, str(script_path(name)), "--smoke", "--no-progress", "--no-compile-cache",
                             *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.timeout(600)
def test_an_interrupted_summary_says_how_where_and_what_never_ran(tmp_path):
    """SIGTERM during activation_ablation's hand-rule group: the autodiff group of the rule
    comparison never starts."""
    aa = tmp_path / "activation_ablation" / "smoke"
    proc = _popen("activation_ablation", "--out-dir", str(tmp_path), "--archs", "mlp", "--activations", "relu",
                  "--mlp-widths", "8", "--mlp-steps", "200000", "--mlp-evals", "400", "--seeds", "0", "--high-lr", "0",
                  "--timing-rounds", "1", "--timing-shape", "16", "64", "--probe-size", "16")
    try:
        _wait_for_metrics(proc, aa)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-3000:]
    # SIGTERM is not Ctrl-C; where it stopped; the step reached; the group that never ran is "not run"
    md, summary = (aa / "summary.md").read_text(), json.loads((aa / "summary.json").read_text())
    assert "Ctrl-C" not in md and "Ctrl-C" not in err and "stopped by SIGTERM" in err
    (row,) = summary["rows"]
    step = row["step"]
    assert 0 < step < 200000
    assert md.startswith(f"# Activation ablation (mnist1d; mlp) (interrupted at step {step} of 200000)")
    assert (f"Interrupted by SIGTERM at step {step} of 200000 (group dataset=mnist1d,arch=mlp,rule=hand). "
            "0 of 2 groups finished; 1 had not started and are not reported (dataset=mnist1d,arch=mlp,rule=autodiff)"
            ) in md
    assert "| step |" in md and f"| {step} |" in md
    assert summary["rule_comparison"] == [] and "nan" not in md.split("## Hand rule vs autodiff")[1]
    assert "Hand rule vs autodiff on mnist1d/mlp/relu: not run" in md
    assert {r["config"]["rule"] for r in map(json.loads, (aa / "metrics.jsonl").read_text().splitlines())} == {"hand"}


def test_stopped_note_says_ctrl_c_or_the_signal_and_what_finished(tmp_path):
    run = RunDir(tmp_path, "exp", "r")
    progress = [("model=a", 3000, 3000), ("model=b", 412, 3000), ("model=c", 0, 3000)]
    assert run.stop_reason == "interrupted (Ctrl-C)" and interrupted_at(progress) == "interrupted at step 412 of 3000"
    assert stopped_note(run, progress) == (
        "Interrupted by Ctrl-C at step 412 of 3000 (group model=b). 1 of 3 groups finished; 1 had not started and are "
        "not reported (model=c). The step column gives the step each configuration reached; its numbers are from its "
        "last evaluation at or before that step.")
    run.stop_signal = signal.SIGTERM
    assert run.stop_reason == "stopped by SIGTERM" and run.exit_code(True) == 143
    assert stopped_note(run, [("fit", 7, 90)], table=False) == "Interrupted by SIGTERM at step 7 of 90 (group fit)."
    assert interrupted_at([("fit", 0, 90)]) == "interrupted before the first step"
    between = [("neuron:mse", 20, 20), ("neuron:bce", 0, 20)]
    assert stopped_note(run, between) == ("Interrupted by SIGTERM before group neuron:bce started. 1 of 2 groups "
                                          "finished; 1 had not started and are not reported (neuron:bce). The step "
                                          "column gives the step each configuration reached; its numbers are from "
                                          "its last evaluation at or before that step.")
    run.close()
    # summarize carries the step members reached (the least of a row's members)
    rows = summarize([{"config": {"a": 1, "seed": s}, "metrics": {"m": 1.0}, "step": st} for s, st in ((0, 9), (1, 7))])
    assert rows[0]["step"] == 7 and list(rows[0])[:4] == ["a", "n", "n_diverged", "step"]
