"""The autotune trap: the LeNet-5 ReLU+max-pool Adam step from an EMPTY autotune cache.

``python -m benchmarks.bench_autotune_trap`` runs three fresh processes, each with its own
empty cache folder: the fixed thresholds (``FUNCNN_CONV_AUTOTUNE=0``), the autotune keeping
each sum's fastest algorithm as timed alone (the old rule: verification switched off), and
the autotune as it is (per-sum winners verified against the thresholds' plan with the three
sums run together, then the whole jitted step timed against its twin on the thresholds'
plans). It prints, per mode, the algorithms chosen, the whole-step verdicts, the first call's seconds
(compile + measurement), the median and best of 40 steps, and the step against PyTorch's
eager LeNet-5 (channels-last, the same batch) timed interleaved in the same process (> 1:
funcnn is faster; skipped without PyTorch). Compare the modes' ratios in one run: the
absolute times move with the machine's load.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

MODES = ("thresholds", "unverified", "verified")


def _one(mode: str, steps: int = 40) -> None:
    os.environ["FUNCNN_CONV_AUTOTUNE"] = "0" if mode == "thresholds" else "1"
    os.environ["FUNCNN_CONV_AUTOTUNE_DIR"] = tempfile.mkdtemp()
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from funcnn import conv_autotune as at
    from funcnn.nn.models import lenet5
    from funcnn.train import make_train_step

    if mode == "unverified":
        at.MIN_GAIN = -1e9  # keep the per-sum winners whatever the joint or whole-step timing says
    model = lenet5(activation="relu", pool="max")
    batch = 128
    x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, 28, 28, 1)), jnp.float32)
    y = jnp.asarray(np.arange(batch) % 10)
    _, params, state = model.init(jax.random.key(0), x.shape)
    opt = optax.adam(1e-3)
    step = make_train_step(model, "softmax_cross_entropy", opt)
    t0 = time.perf_counter()
    p, o, *_ = jax.block_until_ready(step(params, opt.init(params), state, x, y, jax.random.key(1)))
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        jax.block_until_ready(step(p, o, state, x, y, jax.random.key(1)))
        times.append(time.perf_counter() - t)
    plans = "; ".join("/".join(v) for v in at.tuned().values()) or "thresholds"
    judged = "; ".join(f"kept {v['kept']} ({1e3 * v['measured_s']:.2f} vs {1e3 * v['thresholds_s']:.2f} ms, "
                       f"{v['rounds']} rounds)" for v in at.verdicts()) or "none"
    vs_torch = "no PyTorch"
    try:
        from benchmarks import torch_models
        from benchmarks._timing import ratio_stats, time_interleaved

        if torch_models.torch_status()[0]:
            tstep, _ = torch_models.make_torch_step(torch_models.lenet5_torch(activation="relu", pool="max"),
                                                    np.array(x), np.array(y), channels_last=True)
            box = [p, o]

            def ours():
                box[:] = step(box[0], box[1], state, x, y, jax.random.key(1))[:2]
                return box[0]

            _, raw = time_interleaved({"funcnn": ours, "torch": tstep}, rounds=15, min_time=0.05)
            r = ratio_stats(raw, "torch", "funcnn")
            vs_torch = f"{r.median:.2f}x [{r.q25:.2f}, {r.q75:.2f}]"
    except ImportError as e:
        vs_torch = f"skipped ({e})"
    print(f"| {mode} | {plans} | {judged} | {first:.1f} s | {1e3 * np.median(times):.2f} ms | {1e3 * min(times):.2f} ms "
          f"| {vs_torch} |", flush=True)


HEADER = ("| mode | chosen fwd/dx/dw per conv | whole step judged (measured vs thresholds) | first call | step median "
          "| step best | funcnn vs PyTorch eager channels-last, steps/s (median of 15 interleaved rounds [q25, q75]) |\n"
          "|---|---|---|---|---|---|---|")


def run() -> dict[str, str]:
    """Each mode in a fresh process (its own empty cache): mode -> its markdown row."""
    rows = {}
    for mode in MODES:
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_autotune_trap", mode], check=True,
                             capture_output=True, text=True).stdout
        rows[mode] = next((line for line in out.splitlines() if line.startswith(f"| {mode} |")), f"| {mode} | no row |")
    return rows


def to_markdown(rows: dict[str, str]) -> tuple[str, list[str]]:
    """The section for ``benchmarks.run`` and its target line (the verified mode against PyTorch)."""
    import re

    m = re.search(r"\| (\d+\.\d+)x \[", rows.get("verified", ""))
    ratio = float(m.group(1)) if m else None
    target = ("- LeNet-5 ReLU+max step from an empty autotune cache >= 1.0x PyTorch eager channels-last (issue 20): "
              + (f"{ratio:.2f}x — {'**met**' if ratio >= 1.0 else '**missed**'}" if ratio is not None
                 else "not measured (no PyTorch)"))
    md = "\n".join(["## The autotune trap: LeNet-5 from an empty autotune cache", "",
                     __doc__.split("\n\n", 1)[1].strip().replace("``", "`"), "", "Command: `python -m benchmarks.bench_autotune_trap`.",
                     "", HEADER, *rows.values(), "", target, ""])
    return md, [target]


def main() -> int:
    if len(sys.argv) > 1:
        _one(sys.argv[1])
        return 0
    print(HEADER, flush=True)
    for mode in MODES:
        subprocess.run([sys.executable, "-m", "benchmarks.bench_autotune_trap", mode], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
