"""Where the LeNet-5 train step's compile time goes: by program part and by kernel count.

    python -m benchmarks.profile_compile [--reps 3]

Compiles (fresh, caches cleared) growing pieces of the hand-rule LeNet-5 train step: the
forward (loss), loss + gradient, + Adam, + the step's gradient/update norms, and the same
for the autodiff twin and the MLP. For each: trace+lower seconds, XLA compile seconds (median
over ``--reps``), and the number of kernels (thunks: top-level instructions of the compiled
program that are not parameters, constants, tuples or bitcasts). Prints markdown.
"""

from __future__ import annotations

import argparse
import re
import time

import funcnn  # noqa: F401  (applies funcnn's XLA defaults before the backend starts)
import jax
import numpy as np
import optax

from benchmarks.bench_train import LOSS, MODELS, _data, _step_args
from funcnn.train.step import make_objective, make_train_step

_SKIP = ("parameter", "constant", "tuple", "get-tuple-element", "bitcast")


def kernel_count(hlo_text: str) -> int:
    """Top-level instructions of the compiled ENTRY computation that run as kernels."""
    entry = hlo_text[hlo_text.index("\nENTRY"):]
    entry = entry[: entry.index("\n}")]
    ops = re.findall(r"= \S+ ([\w\-]+)\(", entry)
    return sum(op not in _SKIP for op in ops)


def _programs(case, rule: str):
    x, y = _data(case)
    model = case.build(rule)
    opt = optax.adam(1e-3)
    params, opt_state, state, xj, yj, key = _step_args(model, x, y, opt)
    objective = make_objective(model, LOSS)

    def loss(p):
        return objective(p, state, xj, yj, key)[0]

    def grad(p):
        return jax.value_and_grad(loss)(p)

    def adam(p, o):
        v, g = grad(p)
        u, o = opt.update(g, o, p)
        return optax.apply_updates(p, u), o, v

    lean = make_train_step(model, LOSS, opt, jit=False, norms=False)
    full = make_train_step(model, LOSS, opt, jit=False)
    step_args = (params, opt_state, state, xj, yj, key)
    return [
        ("forward (loss)", loss, (params,)),
        ("loss + gradient", grad, (params,)),
        ("+ Adam update", adam, (params, opt_state)),
        ("train step, norms=False", lean, step_args),
        ("train step (with norms)", full, step_args),
    ]


def measure(fn, args, reps: int) -> tuple[float, float, int]:
    lows, comps, kernels = [], [], 0
    for _ in range(reps):
        jax.clear_caches()
        f = jax.jit(fn)
        t0 = time.perf_counter()
        lowered = f.lower(*args)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        lows.append(t1 - t0)
        comps.append(t2 - t1)
        kernels = kernel_count(compiled.as_text())
    return float(np.median(lows)), float(np.median(comps)), kernels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args(argv)
    print("| model, rule | program | trace+lower s | XLA compile s | kernels | compile ms per kernel |")
    print("|---|---|---|---|---|---|")
    for case, rule in ((MODELS[0], "hand"), (MODELS[0], "autodiff"), (MODELS[1], "hand")):
        for name, fn, args in _programs(case, rule):
            low, comp, k = measure(fn, args, a.reps)
            print(f"| {case.name}, {rule} | {name} | {low:.3f} | {comp:.3f} | {k} | {1e3 * comp / max(k, 1):.1f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
