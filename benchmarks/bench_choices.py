"""How a grid over a choice (the hidden activation) runs best: one program per activation,
one program with a real branch per block of members, or one program that vmaps the pick.

    python -m benchmarks.bench_choices [--arch mlp|cnn|both] [--steps 64] [--rounds 3]

For activation_ablation's MLP (100-100, batch 128) and CNN (cnn1d, batch 32) on MNIST-1D,
with its 11 hidden activations x 2 learning rates x 3 seeds (MLP) or 1 x 3 (CNN), it times:

- ``static``: one program per activation (the grid as separate groups): compile seconds
  summed over the 11 programs, and the train-chunk time summed over them;
- ``blocks``: ``run_grid(..., choices=("activation",))``: one program, members in blocks of
  one activation, ``lax.switch`` a real branch;
- ``select``: the same with ``choice_mode="select"``: one vmapped program that computes
  every activation for every member and selects.

Reported per mode: compile seconds (chunk + evaluation), milliseconds per train step of the
whole grid (a chunk of ``--steps`` steps, median over rounds), and that per member-step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import funcnn  # noqa: F401  (XLA CPU defaults first)
import jax
import optax

from funcnn.data import load
from funcnn.nn.models import cnn1d, mlp
from funcnn.train import TrainSpec, prepare_grid

ACTS = ("logistic", "tanh", "hard_logistic", "hard_tanh", "relu", "leaky_relu", "prelu", "elu", "swish",
        "softplus", "gelu")
ARCHS = {"mlp": dict(lr=(3e-3, 3e-2), batch=128), "cnn": dict(lr=(1e-2,), batch=32)}


def _build(arch: str, d):
    def build(c):
        if arch == "mlp":
            model = mlp((100, 100), d.num_classes, c["activation"])
        else:
            model = cnn1d(out=d.num_classes, activation=c["activation"])
        return TrainSpec(model, "softmax_cross_entropy", optax.adam(c["lr"]))

    return build


def _time_chunks(prepared, rounds: int) -> float:
    """Median seconds of one train chunk of every group of ``prepared`` (summed over groups)."""
    totals = []
    for _ in range(rounds):
        t = 0.0
        for eng in prepared.engines:
            step = eng.step
            t0 = time.perf_counter()
            eng.run_chunk()
            jax.block_until_ready(eng.carry)
            t += time.perf_counter() - t0
            eng.step = step  # rerun the same steps next round
        totals.append(t)
    return statistics.median(totals)


def measure(arch: str, mode: str, steps: int, rounds: int, d) -> dict:
    spec = ARCHS[arch]
    grid = {"activation": list(ACTS), "lr": list(spec["lr"]), "seed": [0, 1, 2]}
    kw = dict(steps=steps * 4, batch_size=spec["batch"], eval_every=steps * 4, eval_train=False, batched=("lr",),
              steps_per_call=steps, progress=False, test_data=(d.x_test, d.y_test), parts=1)  # one program per group
    if mode != "static":
        kw.update(choices=("activation",), choice_mode=mode)
    prepared = prepare_grid(_build(arch, d), grid, (d.x_train, d.y_train), **kw)
    t0 = time.perf_counter()
    prepared.compile()
    compile_s = time.perf_counter() - t0
    chunk_s = _time_chunks(prepared, rounds)
    members = sum(e.M for e in prepared.engines)
    return {
        "arch": arch, "mode": mode, "programs": len(prepared.engines), "compile_s": compile_s,
        "ms_per_grid_step": chunk_s / steps * 1e3, "us_per_member_step": chunk_s / steps / members * 1e6,
    }


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=("mlp", "cnn", "both"), default="both")
    ap.add_argument("--modes", default="static,blocks,select")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    d = load("mnist1d")
    rows = []
    for arch in (("mlp", "cnn") if args.arch == "both" else (args.arch,)):
        for mode in args.modes.split(","):
            r = measure(arch, mode, args.steps, args.rounds, d)
            rows.append(r)
            print(f"{arch:4s} {mode:7s} programs {r['programs']:2d}  compile {r['compile_s']:6.1f} s  "
                  f"{r['ms_per_grid_step']:7.2f} ms/grid step  {r['us_per_member_step']:7.1f} us/member step", flush=True)
    return rows


if __name__ == "__main__":
    main()
