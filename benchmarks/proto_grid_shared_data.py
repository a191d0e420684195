"""Prototype: can a vmapped grid beat sequential members by sharing the data order?

    python -m benchmarks.proto_grid_shared_data

MLP 784-256-256-10 (ReLU), batch 128, Adam, 8 members, 16 steps scanned on device. Three
programs, timed interleaved (ms per member-step, speed-up vs sequential):

- ``seq``: each member's 16-step scan run one after another (the ``fit`` way);
- ``vmap_sep``: the 8 members vmapped, each with its own batches (``run_grid`` today);
- ``vmap_shared``: the 8 members vmapped on the *same* batches (a shared data order, as in
  common-random-numbers designs): the first layer's forward and weight gradient become one
  wide matmul over all members instead of 8 narrow ones.

Not used by the library: two runs measured 1.04-1.17x (shared) vs 1.08-1.12x (separate), far from the 2x
target, so the engine keeps per-member data orders (BENCHMARKS.md, notes).
"""

from __future__ import annotations

import funcnn  # noqa: F401  (applies funcnn's XLA defaults before the backend starts)
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._timing import time_interleaved
from funcnn.models import mlp
from funcnn.train.step import make_train_step

M, B, K = 8, 128, 16


def main() -> int:
    model = mlp((256, 256), 10)
    opt = optax.adam(1e-3)
    step = make_train_step(model, "softmax_cross_entropy", opt, jit=False)
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(K, M, B, 784)), jnp.float32)
    Y = jnp.asarray(rng.integers(0, 10, (K, M, B)), jnp.int32)

    def init(seed):
        _, p, s = model.init(jax.random.PRNGKey(seed), (B, 784))
        return p, opt.init(p), s

    P, O, S = jax.vmap(init)(jnp.arange(M))
    key = jax.random.PRNGKey(0)

    def loop(shared: bool | None):
        def run(p, o, s, X, Y):
            def body(c, xy):
                x, y = xy
                if shared is None:
                    out = step(*c, x, y, key)
                elif shared:
                    out = jax.vmap(step, in_axes=(0, 0, 0, None, None, None))(*c, x[0], y[0], key)
                else:
                    out = jax.vmap(step, in_axes=(0, 0, 0, 0, 0, None))(*c, x, y, key)
                return out[:3], out[3]["loss"]

            return jax.lax.scan(body, (p, o, s), (X, Y))

        return jax.jit(run)

    f1, fv, fs = loop(None), loop(False), loop(True)
    members = [jax.tree.map(lambda a, i=i: a[i], (P, O, S)) for i in range(M)]
    Xm, Ym = [X[:, i] for i in range(M)], [Y[:, i] for i in range(M)]

    def seq():
        return [f1(*members[i], Xm[i], Ym[i]) for i in range(M)]

    calls = {"seq": seq, "vmap_sep": lambda: fv(P, O, S, X, Y), "vmap_shared": lambda: fs(P, O, S, X, Y)}
    for c in calls.values():
        jax.block_until_ready(c())
    stats, _ = time_interleaved(calls, rounds=9, min_time=0.2)
    base = stats["seq"].median
    for k, v in stats.items():
        print(f"{k}: {v.median * 1e3 / (M * K):.3f} ms per member-step, {base / v.median:.2f}x vs seq")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
