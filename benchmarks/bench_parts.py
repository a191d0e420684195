"""A grid group in slices side by side (``TrainOptions.parts``) against one vmapped program.

    python -m benchmarks.bench_parts [--steps 1500] [--rounds 2] [--parts 2]

activation_ablation's MLP grid (MNIST-1D, 40-100-100-10, batch 128: 11 activations as a
choice x 2 learning rates x 3 seeds = 66 members, 11 blocks of 6), built as the script builds
it, trained in one process with ``parts=1`` (one program over the 66 members) and with
``parts=--parts`` (that many slices of every block, one thread each, one program),
alternating, each compiled before it is timed. Reported per round: training wall seconds,
CPU/wall (process CPU time over wall), the ratio of the two walls, and whether the members'
final test accuracies agree (training is bitwise the same). Then one member alone (relu, the
base learning rate, seed 0: the same model, optimizer, data, evaluations and diagnostics,
trained by the same engine as a one-member grid, compiled first) in the same process, and
each variant's wall per member-step against it (issue 20's target: the grid's <= 1.0x one
member's).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import funcnn  # noqa: F401  (XLA CPU defaults first)
import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import activation_ablation as A  # noqa: E402

from funcnn.data import load  # noqa: E402
from funcnn._ops.conv_autotune import cpu_model  # noqa: E402
from funcnn.train import TrainSpec, prepare_grid  # noqa: E402
from funcnn.train.engine.carry import cpu_cores  # noqa: E402


def prepared(cfg, configs, data, parts: int):
    """The MLP grid as activation_ablation prepares it (its init tables, diagnostics, choices)."""
    seeds = [int(s) for s in cfg.seeds]
    tables = A.init_tables(cfg, configs, data)
    d = data[cfg.datasets[0]]
    st = A.arch_settings(cfg, "mlp")
    diagnostics = A.make_diagnostics(jnp.asarray(d.x_train[: cfg.probe_size]), jnp.asarray(d.y_train[: cfg.probe_size]))

    def build(c):
        model = A.make_model("mlp", c["activation"], c["rule"], d.x_train.shape[1:], d.num_classes, cfg.mlp_widths)
        table = tables[(c["dataset"], c["arch"])]

        def init(key, in_shape):
            j = jnp.argmax(jnp.asarray(seeds) == c["seed"])
            return jax.tree.map(lambda a: jnp.asarray(a)[j], table)

        return TrainSpec(model, "softmax_cross_entropy", optax.adam(c["lr"]), init)

    return prepare_grid(build, configs, (d.x_train, d.y_train), test_data=(d.x_test, d.y_test), steps=st["steps"],
                        batch_size=st["batch"], eval_every=max(1, st["steps"] // max(1, st["evals"])),
                        eval_train=False, batched=("lr",), choices=("activation",), diagnostics=diagnostics,
                        progress=False, parts=parts, name=f"mlp parts={parts}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parts", type=int, default=2)
    args = ap.parse_args(argv)
    cfg = A.resolve_defaults(A.parse_config(A.Config, ["--archs", "mlp", "--no-compare-rules", "--no-progress",
                                                       "--mlp-steps", str(args.steps)]))
    data = {ds: load(ds) for ds in cfg.datasets}
    configs = A.grid_configs(cfg)
    print(f"{len(configs)} members x {args.steps} steps; {cpu_model()}, {cpu_cores()} cores; jax "
          f"{jax.__version__} on {jax.default_backend()}", flush=True)
    walls: dict[int, list[float]] = {1: [], args.parts: []}
    finals: dict[int, list[float]] = {}
    for r in range(args.rounds):
        for parts in (1, args.parts):
            grid = prepared(cfg, configs, data, parts)
            grid.compile()
            t0, c0 = time.perf_counter(), time.process_time()
            res = grid.run()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            walls[parts].append(wall)
            finals[parts] = [m.final["test_accuracy"] for m in res.members]
            print(f"round {r + 1} parts={parts}: training {wall:.1f} s wall, CPU/wall {cpu / wall:.2f}", flush=True)
    ratio = min(walls[args.parts]) / min(walls[1])
    print(f"parts={args.parts} / parts=1 (best of {args.rounds}): {ratio:.2f}; final test accuracies "
          f"{'identical' if finals[1] == finals[args.parts] else 'DIFFER'}")
    one = [c for c in configs if c["activation"] == "relu" and c["seed"] == cfg.seeds[0]
           and c["lr"] == A.base_lr(cfg, "mlp") and c["rule"] == "hand"][:1]
    single = prepared(cfg, one, data, 1)
    single.compile()
    t0 = time.perf_counter()
    single.run()
    alone = (time.perf_counter() - t0) / args.steps
    print(f"one member alone: {alone * 1e3:.3f} ms per step (same engine, evaluations and diagnostics)")
    for parts in (1, args.parts):
        per = min(walls[parts]) / (len(configs) * args.steps)
        print(f"parts={parts}: {per * 1e3:.3f} ms wall per member-step = {per / alone:.2f}x one member alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
