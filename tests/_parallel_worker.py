"""Subprocess helper of tests/test_parallel.py: runs with N simulated CPU devices.

Usage: ``python _parallel_worker.py MODE DEVICES OUT_JSON [extra...]``. The device count
must be fixed before JAX starts its backend, hence a separate process per setting. Every
mode writes a JSON report to OUT_JSON; the test compares the numbers.
"""

from __future__ import annotations

import json
import sys
import time

import jax

MODE, DEVICES, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
EXTRA = sys.argv[4:]
if MODE != "multiprocess":
    jax.config.update("jax_num_cpu_devices", DEVICES)
jax.config.update("jax_platforms", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from funcnn.train import parallel  # noqa: E402
from funcnn.nn.combinators import serial  # noqa: E402
from funcnn.nn import BatchNorm, Dense, Dropout, Relu, Tanh  # noqa: E402
from funcnn.train import TrainSpec, fit, run_grid  # noqa: E402


def data(n: int = 64, d: int = 5, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=(d, k))).argmax(-1).astype(np.int32)
    return x, y


def leaves(tree) -> list[list[float]]:
    return [np.asarray(a, np.float64).ravel().tolist() for a in jax.tree.leaves(parallel.to_host(tree))]


MODEL = serial(Dense(8), BatchNorm(), Relu(), Dropout(0.25), Dense(3))
# SGD, not Adam: the bias before batch norm has a zero gradient up to rounding, which
# Adam would normalize into lr-sized steps in a rounding-dependent direction.
OPT = optax.sgd(0.1, momentum=0.9)


def fit_run(mesh, steps=6, **kw):
    x, y = kw.pop("train", data())
    return fit(MODEL, "softmax_cross_entropy", OPT, (x, y), steps=steps, batch_size=16,
               eval_every=3, progress=False, mesh=mesh, **kw)


def report_fit(r) -> dict:
    return {
        "params": leaves(r.params),
        "state": leaves(r.state),
        "loss": r.history.step_metrics["loss"].tolist(),
        "test": r.history.eval_metrics["train_loss"].tolist(),
        "step": r.step,
    }


def build(cfg):
    act = Relu() if cfg["act"] == "relu" else Tanh()
    model = serial(Dense(6), BatchNorm(), act, Dense(3))
    return TrainSpec(model, "softmax_cross_entropy", optax.sgd(cfg["lr"], momentum=0.9))


GRID = {"act": ["tanh"], "lr": [0.05, 0.1, 0.2], "seed": [0, 1]}  # one group of 6 members


def grid_run(mesh, **kw):
    x, y = data()
    return run_grid(build, GRID, (x, y), test_data=(x[:20], y[:20]), steps=5, batch_size=16,
                    eval_every=2, progress=False, mesh=mesh, **kw)


def report_grid(r) -> dict:
    return {
        "params": [leaves(m.params) for m in r.members],
        "state": [leaves(m.state) for m in r.members],
        "loss": [m.history.step_metrics["loss"].tolist() for m in r.members],
        "test_loss": [m.history.eval_metrics["test_loss"].tolist() for m in r.members],
        "diverged": [m.diverged for m in r.members],
        "traces": [g.traces for g in r.groups],
    }


def tick(label: str, _t=[time.perf_counter(), time.process_time()]) -> None:
    """Progress on stderr: wall and CPU seconds of each phase (shown when a test fails)."""
    now, cpu = time.perf_counter(), time.process_time()
    print(f"[{label}] {now - _t[0]:.2f}s wall, {cpu - _t[1]:.2f}s cpu", file=sys.stderr, flush=True)
    _t[0], _t[1] = now, cpu


def stop_after_3(info):
    """Stop like a Ctrl-C once step 3 is passed: the engine checkpoints and returns."""
    if info["step"] >= 3:
        raise KeyboardInterrupt


def main() -> dict:
    if MODE == "multiprocess":  # before anything starts JAX's backend
        parallel.initialize_distributed(EXTRA[0], int(EXTRA[1]), DEVICES)
    out: dict = {"devices": jax.device_count()}
    tick("start")
    if MODE == "eight":  # EXTRA = [checkpoint dir]
        # Data parallelism: fit on a data=8 mesh vs one device.
        out["fit_single"] = report_fit(fit_run(None))
        tick("fit single")
        mesh = parallel.make_mesh(mesh={"data": DEVICES})
        out["fit_data8"] = report_fit(fit_run(mesh))
        tick("fit data=8")
        # Batch-norm statistics of an array split over "data": those of the global batch.
        from funcnn.normalization import batch_norm_stats

        x = jnp.asarray(data()[0])
        xs = parallel.shard_dataset(mesh, x)
        mean, var = jax.jit(batch_norm_stats)(xs)
        m0, v0 = batch_norm_stats(x)
        out["bn_stats_err"] = float(max(jnp.abs(mean - m0).max(), jnp.abs(var - v0).max()))
        out["bn_shards"] = len(xs.sharding.device_set)
        # 64 members on grid=8: 8 per device.
        members = parallel.put(np.zeros((64, 3)), parallel.members_sharding(parallel.make_mesh(mesh="grid=8")))
        out["members_per_device"] = sorted({s.data.shape[0] for s in members.addressable_shards})
        # Sharded grid (2-D mesh; the 6-member group is padded to 8) vs one device.
        out["grid_single"] = report_grid(grid_run(None))
        tick("grid single")
        mesh2 = parallel.make_mesh(mesh="grid=4,data=2")
        out["grid_4x2"] = report_grid(grid_run(mesh2))
        tick("grid 4x2")
        # Checkpoint on 8 devices, stopped at step 4 of 5 (restored by mode "four").
        r = grid_run(mesh2, checkpoint_dir=EXTRA[0], checkpoint_every=100, callback=stop_after_3)
        out["ckpt_interrupted"] = r.interrupted
        out["ckpt_step"] = r.members[0].history.step_metrics["loss"].shape[0]
        tick("checkpoint")
    elif MODE == "four":  # EXTRA = [checkpoint dir, a copy of it]
        out["resumed_grid4"] = report_grid(grid_run(parallel.make_mesh(mesh="grid=4"), checkpoint_dir=EXTRA[0], resume=True))
        tick("resume grid=4")
        out["resumed_1"] = report_grid(grid_run(None, checkpoint_dir=EXTRA[1], resume=True))
        tick("resume 1 device")
    elif MODE == "multiprocess":  # DEVICES = process id; EXTRA = [coordinator, processes]
        out["process_count"] = jax.process_count()
        mesh = parallel.make_mesh(mesh={"data": -1})
        x, y = data()
        rows = parallel.process_rows(mesh, len(x))
        out["rows"] = [rows.start, rows.stop]
        local = parallel.shard_dataset(mesh, (x[rows], y[rows]), process_local=True)
        out["fit_mesh"] = report_fit(fit_run(mesh, steps=2, train=local))
        if jax.process_index() == 0:  # the one-process reference, on this process's device
            out["fit_single"] = report_fit(fit_run(None, steps=2))
    else:
        raise SystemExit(f"unknown mode {MODE}")
    return out


if __name__ == "__main__":
    t0 = time.perf_counter()
    res = main()
    res["seconds"] = time.perf_counter() - t0
    with open(OUT, "w") as f:
        json.dump(res, f)
