"""Does funcnn's XLA CPU default (``--xla_cpu_experimental_ynn_fusion_type=``) help or hurt?

XLA reads its flags once per process, so each setting runs in its own subprocess; settings
alternate (A B A B ...) so machine-load drift hits both alike. Each child times a fixed set
of workloads (interleaved, medians) and prints JSON; the parent reports per workload the
median over children and the ratio default/off (< 1: the default is faster).

    python -m benchmarks.bench_xla_flags [--reps 3] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

VARIANTS = {
    # funcnn's default: configure_xla_cpu_defaults() appends the flag
    "default (flag on)": {},
    "off (FUNCNN_NO_XLA_DEFAULTS=1)": {"FUNCNN_NO_XLA_DEFAULTS": "1"},
}


def _child(rounds: int) -> None:
    from funcnn._ops.xla import configure_xla_cpu_defaults

    state = configure_xla_cpu_defaults()
    import jax
    import jax.numpy as jnp

    import funcnn.conv as conv
    import funcnn.linear as dense
    import funcnn.losses as losses
    import funcnn.pooling as pooling
    import funcnn.reference.conv as rconv
    import funcnn.reference.pooling as rpool
    from benchmarks._timing import time_interleaved
    from funcnn.activations import relu

    rng = np.random.default_rng(0)

    def arr(*s):
        return jnp.asarray(rng.normal(size=s), jnp.float32)

    def fwd_bwd(f, *args):
        jf = jax.jit(lambda *a: jax.vjp(f, *a)[1](f(*a)))  # vjp with the output as cotangent
        return lambda: jf(*args)

    x64, w64 = arr(64, 32, 32, 64), arr(3, 3, 64, 64) * 0.05
    xl = arr(128, 28, 28, 1)
    params = {
        "c1": arr(5, 5, 1, 6) * 0.2, "c2": arr(5, 5, 6, 16) * 0.1,
        "f1": arr(256, 120) * 0.06, "f2": arr(120, 84) * 0.09, "f3": arr(84, 10) * 0.1,
    }
    labels = jnp.asarray(rng.integers(0, 10, 128), jnp.int32)

    def lenet_loss(p, x):
        h = pooling.max_pool2d(relu(conv.conv2d(x, p["c1"])), 2)
        h = pooling.max_pool2d(relu(conv.conv2d(h, p["c2"])), 2)
        h = h.reshape(h.shape[0], -1)
        h = relu(dense.dense(relu(dense.dense(h, p["f1"])), p["f2"]))
        return losses.softmax_cross_entropy(dense.dense(h, p["f3"]), labels)

    lenet_grad = jax.jit(jax.value_and_grad(lenet_loss))
    a, b = arr(2048, 2048), arr(2048, 2048)
    mm = jax.jit(jnp.matmul)
    xd, wd = arr(128, 784), arr(784, 256)
    xp = arr(128, 28, 28, 32)
    work = {
        "conv2d 64->64 3x3 SAME fwd+bwd (hand)": fwd_bwd(lambda x, w: conv.conv2d(x, w, padding="SAME"), x64, w64),
        "conv2d 64->64 3x3 SAME fwd+bwd (twin)": fwd_bwd(lambda x, w: rconv.conv2d(x, w, padding="SAME"), x64, w64),
        "LeNet-5 loss+grad, batch 128 (hand rules)": lambda: lenet_grad(params, xl),
        "matmul 2048^3": lambda: mm(a, b),
        "dense 128x784->256 fwd+bwd": fwd_bwd(dense.dense, xd, wd),
        "max_pool2d 2x2 128x28x28x32 fwd+bwd (hand)": fwd_bwd(lambda x: pooling.max_pool2d(x, 2), xp),
        "max_pool2d 2x2 128x28x28x32 fwd+bwd (twin)": fwd_bwd(lambda x: rpool.max_pool2d(x, 2), xp),
        "avg_pool2d 2x2 128x28x28x32 fwd+bwd (hand)": fwd_bwd(lambda x: pooling.avg_pool2d(x, 2), xp),
    }
    stats, raw = time_interleaved(work, rounds=rounds)
    out = {k: {"median": v.median, "min": float(raw[k].min())} for k, v in stats.items()}
    print(json.dumps({"state": state, "xla_flags": os.environ.get("XLA_FLAGS", ""), "times": out}))


def run(reps: int = 3, rounds: int = 7, variants: dict | None = None) -> dict:
    variants = variants or VARIANTS
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(reps):
        names = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for name in names:
            env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FUNCNN_NO_XLA_DEFAULTS")}
            env.update(variants[name])
            cp = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_xla_flags", "--child", "--rounds", str(rounds)],
                env=env, capture_output=True, text=True,
            )
            if cp.returncode != 0:
                raise RuntimeError(f"child ({name}) failed:\n{cp.stderr[-3000:]}")
            results[name].append(json.loads(cp.stdout.strip().splitlines()[-1]))
            print(name, results[name][-1]["state"], file=sys.stderr, flush=True)
    return results


def to_markdown(results: dict) -> str:
    """Per workload: ms per setting (median over children), and each setting / the last one."""
    names = list(results)
    base = names[-1]
    works = list(results[names[0]][0]["times"])
    lines = [
        "| workload | " + " | ".join(f"{n} ms" for n in names) + " | " + " | ".join(f"{n} / {base}" for n in names[:-1]) + " |",
        "|---" * (2 * len(names)) + "|",
    ]
    for w in works:
        m = [float(np.median([c["times"][w]["median"] for c in results[n]])) for n in names]
        lines.append(
            f"| {w} | " + " | ".join(f"{v * 1e3:.3g}" for v in m) + " | "
            + " | ".join(f"{v / m[-1]:.2f}" for v in m[:-1]) + " |"
        )
    states = {k: sorted({c["state"] for c in v}) for k, v in results.items()}
    lines.append(f"\nconfigure_xla_cpu_defaults() returned: {states}; {len(results[base])} child processes per setting.")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument(
        "--values", default="",
        help="instead of default vs off: compare these values of the flag (';'-separated, e.g. ';individual_dot')",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child(a.rounds)
        return 0
    variants = None
    if a.values:
        variants = {f"={v}": {"XLA_FLAGS": f"--xla_cpu_experimental_ynn_fusion_type={v}"} for v in a.values.split(";")}
        variants["jaxlib default (off)"] = VARIANTS["off (FUNCNN_NO_XLA_DEFAULTS=1)"]
    print(to_markdown(run(a.reps, a.rounds, variants)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
