"""Tests of funcnn.train.parallel and the mesh= path of fit/run_grid.

The multi-device checks run in subprocesses (tests/_parallel_worker.py): the number of
simulated CPU devices (``jax_num_cpu_devices``) is fixed when JAX starts its backend, and
two real processes are needed for ``jax.distributed``. Each subprocess has a timeout;
each worker blocks on every partitioned call (the engine does), which keeps simulated
devices clear of XLA's collective-rendezvous stalls.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from jax.sharding import Mesh

from funcnn.train import parallel
from funcnn.nn.combinators import serial
from funcnn.nn import BatchNorm, Dense, Relu
from funcnn.train import TrainSpec, fit, run_grid

HERE = Path(__file__).parent
WORKER = HERE / "_parallel_worker.py"
TIMEOUT = 300  # seconds per subprocess: generous for a loaded 2-core machine
TOL = 1e-6


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"
    # Cheaper XLA:CPU compiles (the tests compare runs compiled alike, never timings).
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(k, None)
    return env


def _worker(tmp_path: Path, mode: str, devices: int, *extra: str) -> dict:
    out = tmp_path / f"{mode}.json"
    p = subprocess.run(
        [sys.executable, str(WORKER), mode, str(devices), str(out), *extra],
        capture_output=True, text=True, timeout=TIMEOUT, env=_env(), cwd=HERE,
    )
    assert p.returncode == 0, f"worker {mode} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return json.loads(out.read_text())


def _max_diff(a, b) -> float:
    """Largest absolute difference of two nested lists of numbers (NaN == NaN)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert (np.isnan(a) == np.isnan(b)).all()
    return float(np.nanmax(np.abs(a - b), initial=0.0))


def _assert_fit_close(ref: dict, got: dict) -> None:
    assert got["step"] == ref["step"]
    for key in ("params", "state"):
        for r, g in zip(ref[key], got[key], strict=True):
            assert _max_diff(r, g) <= TOL, key
    assert _max_diff(ref["loss"], got["loss"]) <= TOL
    assert _max_diff(ref["test"], got["test"]) <= TOL


def _assert_grid_close(ref: dict, got: dict) -> None:
    assert got["diverged"] == ref["diverged"]
    for key in ("params", "state"):
        for rm, gm in zip(ref[key], got[key], strict=True):  # member by member
            for r, g in zip(rm, gm, strict=True):
                assert _max_diff(r, g) <= TOL, key
    for key in ("loss", "test_loss"):
        for rm, gm in zip(ref[key], got[key], strict=True):
            assert _max_diff(rm, gm) <= TOL, key


# --------------------------------------------------------------------------- 8 simulated devices


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eight")
    res = _worker(tmp, "eight", 8, str(tmp / "ckpt"))
    return res, tmp / "ckpt"


def test_data_parallel_fit_equals_single_device(eight):
    res, _ = eight
    assert res["devices"] == 8
    _assert_fit_close(res["fit_single"], res["fit_data8"])


def test_batch_norm_statistics_are_global_batch(eight):
    res, _ = eight
    assert res["bn_shards"] == 8
    assert res["bn_stats_err"] <= TOL
    # The model trained above has a BatchNorm: its running statistics (state) match too.
    for r, g in zip(res["fit_single"]["state"], res["fit_data8"]["state"], strict=True):
        assert _max_diff(r, g) <= TOL


def test_sharded_grid_equals_unsharded_member_by_member(eight):
    res, _ = eight
    assert res["members_per_device"] == [8]
    _assert_grid_close(res["grid_single"], res["grid_4x2"])
    assert res["grid_4x2"]["traces"] == [1]


def test_checkpoint_restores_onto_other_device_counts(eight, tmp_path):
    res, ckpt = eight
    assert res["ckpt_interrupted"] and res["ckpt_step"] == 4
    copy = tmp_path / "ckpt_copy"
    shutil.copytree(ckpt, copy)
    four = _worker(tmp_path, "four", 4, str(ckpt), str(copy))
    assert four["devices"] == 4
    _assert_grid_close(res["grid_single"], four["resumed_grid4"])  # 8 devices -> 4
    _assert_grid_close(res["grid_single"], four["resumed_1"])  # 8 devices -> 1, no mesh


# --------------------------------------------------------------------------- 2 real processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_pair(tmp_path: Path) -> tuple[list[subprocess.Popen], list[str], list[Path]]:
    addr = f"127.0.0.1:{_free_port()}"
    outs = [tmp_path / f"p{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "multiprocess", str(i), str(outs[i]), addr, "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=HERE,
        )
        for i in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return procs, logs, outs


def test_two_processes_data_parallel_agree_with_one(tmp_path):
    procs, logs, outs = _run_pair(tmp_path)
    if any(p.returncode for p in procs) and any("address" in log.lower() for log in logs):
        procs, logs, outs = _run_pair(tmp_path)  # the free port was taken meanwhile: retry once
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    r0, r1 = (json.loads(o.read_text()) for o in outs)
    assert r0["process_count"] == 2 and r0["devices"] == 2
    assert sorted([r0["rows"], r1["rows"]]) == [[0, 32], [32, 64]]  # each feeds its half
    _assert_fit_close(r0["fit_single"], r0["fit_mesh"])
    _assert_fit_close(r0["fit_single"], r1["fit_mesh"])


# --------------------------------------------------------------------------- in process (1 device)


def _xy(n=32):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x.sum(-1) > 0).astype(np.int32)


MODEL = serial(Dense(6), BatchNorm(), Relu(), Dense(2))


def test_parse_mesh():
    assert parallel.parse_mesh("grid=4,data=2") == {"grid": 4, "data": 2}
    assert parallel.parse_mesh(" data = 8 ") == {"data": 8}
    assert parallel.parse_mesh({"grid": -1}) == {"grid": -1}
    with pytest.raises(ValueError, match="unknown mesh axis 'model'"):
        parallel.parse_mesh("model=2")
    with pytest.raises(ValueError, match="appears twice"):
        parallel.parse_mesh("data=2,data=4")
    with pytest.raises(ValueError, match="must be an int, got 'x'"):
        parallel.parse_mesh("data=x")
    with pytest.raises(ValueError, match="'axis=size' pairs"):
        parallel.parse_mesh("data")
    with pytest.raises(ValueError, match="empty mesh spec"):
        parallel.parse_mesh(",")
    with pytest.raises(ValueError, match="int >= 1"):
        parallel.parse_mesh({"data": 0})
    with pytest.raises(ValueError, match="at most one axis"):
        parallel.parse_mesh("grid=-1,data=-1")
    with pytest.raises(TypeError, match="must be a dict"):
        parallel.parse_mesh(8)


def test_make_mesh_and_errors():
    m = parallel.make_mesh()
    assert isinstance(m, Mesh) and dict(m.shape) == {"data": 1}
    assert dict(parallel.make_mesh(1, "grid=-1").shape) == {"grid": 1}
    assert dict(parallel.make_mesh(jax.devices(), {"grid": 1, "data": 1}).shape) == {"grid": 1, "data": 1}
    with pytest.raises(ValueError, match=r"devices=5 but 1 device\(s\) are visible"):
        parallel.make_mesh(5)
    with pytest.raises(ValueError, match="needs 2 devices but 1 were given"):
        parallel.make_mesh(None, "data=2")
    with pytest.raises(TypeError, match="devices must be None, an int"):
        parallel.make_mesh("cpu")


def test_mesh_from_flags():
    assert parallel.mesh_from_flags() is None  # one visible device: the plain engine
    assert parallel.mesh_from_flags(devices=1) is None
    assert dict(parallel.mesh_from_flags(mesh="grid=1,data=1").shape) == {"grid": 1, "data": 1}
    assert dict(parallel.mesh_from_flags(devices=1, mesh="data=-1").shape) == {"data": 1}
    with pytest.raises(ValueError, match="--devices must be an int >= 1"):
        parallel.mesh_from_flags(devices=0)
    with pytest.raises(ValueError, match="default_axis"):
        parallel.mesh_from_flags(default_axis="model")


def test_fit_and_run_grid_check_the_mesh():
    x, y = _xy()
    with pytest.raises(TypeError, match="fit: mesh must be a jax.sharding.Mesh"):
        fit(MODEL, "mse", optax.sgd(0.1), (x, y), steps=1, mesh={"data": 2})
    bad = jax.make_mesh((1,), ("model",))
    with pytest.raises(ValueError, match="run_grid: mesh axis 'model' is not understood"):
        run_grid(lambda c: TrainSpec(MODEL, "mse", optax.sgd(0.1)), {"seed": [0]}, (x, y), steps=1, mesh=bad)


def test_data_helpers_on_one_process():
    mesh = parallel.make_mesh(1, "data=1")
    assert parallel.process_rows(mesh, 10) == slice(0, 10)
    x = np.arange(12.0).reshape(6, 2)
    xs = parallel.shard_dataset(mesh, x)
    np.testing.assert_array_equal(parallel.to_host(xs), x)
    assert xs.sharding == parallel.batch_sharding(mesh)
    assert parallel.axis_size(mesh, "grid") == 1 and parallel.axis_size(None, "data") == 1


def test_initialize_distributed_without_a_cluster_is_a_no_op(monkeypatch):
    for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(k, raising=False)
    assert parallel.initialize_distributed() is False
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES must be an int"):
        parallel.initialize_distributed()
    assert parallel.is_primary()


# ------------------------------------------------------------ when a multi-process start happens
@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, None),
        ({"OMPI_MCA_btl_vader_single_copy_mechanism": "none", "OMPI_MCA_pml": "ucx"}, None),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, None),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}, None),
        ({"OMPI_COMM_WORLD_SIZE": "1"}, None),
        ({"JAX_NUM_PROCESSES": "1"}, None),
        ({"FUNCNN_DISTRIBUTED": "0"}, None),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, "SLURM_NTASKS=4"),
        ({"SLURM_STEP_NUM_TASKS": "2(x2)"}, "SLURM_STEP_NUM_TASKS=2(x2)"),
        ({"OMPI_MCA_pml": "ucx", "OMPI_COMM_WORLD_SIZE": "2"}, "OMPI_COMM_WORLD_SIZE=2"),
        ({"JAX_NUM_PROCESSES": "2"}, "JAX_NUM_PROCESSES=2"),
        ({"JAX_COORDINATOR_ADDRESS": "host0:1234"}, "JAX_COORDINATOR_ADDRESS=host0:1234"),
        ({"FUNCNN_DISTRIBUTED": "1"}, "FUNCNN_DISTRIBUTED=1"),
    ],
)
def test_multiprocess_request_reads_only_what_asks_for_a_start(env, expected):
    assert parallel.multiprocess_request(env) == expected


def _clear_launch_env(monkeypatch):
    for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "FUNCNN_DISTRIBUTED",
              *parallel._TASK_COUNT_VARIABLES):
        monkeypatch.delenv(k, raising=False)


def test_a_failed_requested_start_names_what_asked_and_what_to_set(monkeypatch):
    _clear_launch_env(monkeypatch)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    calls = []

    def failing_initialize(**kwargs):
        calls.append(kwargs)
        raise ValueError("coordinator_address should be defined.")

    monkeypatch.setattr(jax.distributed, "initialize", failing_initialize)
    before = jax.config.jax_cpu_collectives_implementation
    try:
        with pytest.raises(RuntimeError, match=r"requested \(SLURM_NTASKS=4\).*coordinator_address should be "
                                               r"defined.*JAX_COORDINATOR_ADDRESS=host:port"):
            parallel.initialize_distributed()
        assert len(calls) == 1
        # multiprocess=False wins over the environment: nothing is called.
        assert parallel.initialize_distributed(multiprocess=False) is False
        assert len(calls) == 1
        monkeypatch.delenv("SLURM_NTASKS")
        assert parallel.initialize_distributed() is False and len(calls) == 1
        with pytest.raises(RuntimeError, match=r"requested \(multiprocess=True\)"):
            parallel.initialize_distributed(multiprocess=True)
    finally:
        jax.config.update("jax_cpu_collectives_implementation", before)


def test_parse_config_joins_no_cluster(monkeypatch):
    """Argument parsing has no side effect: only open_run starts a multi-process run."""
    from funcnn.train import ExperimentConfig, parse_config
    from funcnn.train import results

    _clear_launch_env(monkeypatch)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")

    def boom(**kwargs):
        raise AssertionError("parse_config must not start jax.distributed")

    monkeypatch.setattr(jax.distributed, "initialize", boom)
    cfg = parse_config(ExperimentConfig, ["--no-progress", "--distributed"])
    assert cfg.distributed is True and cfg.progress is False
    assert results.parse_config is parse_config


def test_stub_mpi4py_and_ompi_settings_run_single_process(tmp_path):
    """A GPU image's usual environment (mpi4py importable, OMPI_MCA_* set) opens a run single-process."""
    stub = tmp_path / "stub"
    (stub / "mpi4py").mkdir(parents=True)
    (stub / "mpi4py" / "__init__.py").write_text("raise ImportError('stub mpi4py: must not be imported')\n")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(stub), str(HERE.parent), env.get("PYTHONPATH", "")])
    env["OMPI_MCA_pml"] = "ucx"
    env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
    code = (
        "import importlib.util, jax\n"
        "from funcnn.train import ExperimentConfig, open_run, parse_config\n"
        "assert importlib.util.find_spec('mpi4py') is not None\n"
        f"cfg = parse_config(ExperimentConfig, ['--out-dir', {str(tmp_path / 'out')!r}, '--run-name', 'r'])\n"
        "run = open_run(cfg, 'probe')\n"
        "print('processes', jax.process_count(), run.path)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "processes 1" in p.stdout
    assert (tmp_path / "out" / "probe" / "r" / "config.json").exists()
