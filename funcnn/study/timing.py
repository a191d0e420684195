"""Interleaved timing of (jitted) callables, for studies that report what a rule or a step costs.

The CPU is shared and noisy, so candidates that are compared are timed *interleaved*: every
round runs each candidate once (in a shuffled order), so a ratio taken within a round compares
them under the same machine load; report medians over rounds (of times, or of per-round
ratios)::

    samples = time_interleaved({"hand": lambda: f_hand(x), "autodiff": lambda: f_twin(x)}, rounds=15)
    np.median(samples["hand"] / samples["autodiff"])      # hand / autodiff, per round
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import jax
import numpy as np


def time_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 15,
    warmup: int = 2,
    min_time: float = 0.02,
    max_inner: int = 200,
) -> dict[str, np.ndarray]:
    """Seconds per call of each zero-argument callable: ``{name: (rounds,) samples}``.

    Each callable is first called ``warmup`` times (compiles). Then an inner repeat count is
    chosen per callable so that one sample lasts about ``min_time`` seconds (at most
    ``max_inner`` calls); each round takes one sample of every callable, in an order shuffled
    every other round and reversed in between (seeded: the same orders every run), to cancel
    drift. Each sample is
    preceded by one untimed call: what ran just before (another candidate's data in the
    caches, its threads) costs the first call after it, and in a fixed rotation each
    candidate would always follow the same one (a framework timed against another in one
    process paid for its predecessor); it adds one call per sample (twice the calls where one
    call already lasts ``min_time``). Outputs are waited for (``jax.block_until_ready``).
    """
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"time_interleaved: rounds must be an int >= 1, got {rounds!r}")
    names = list(fns)
    inner = {}
    for name in names:
        for _ in range(warmup):
            jax.block_until_ready(fns[name]())
        t0 = time.perf_counter()
        jax.block_until_ready(fns[name]())
        dt = max(time.perf_counter() - t0, 1e-7)
        inner[name] = int(min(max_inner, max(1, round(min_time / dt))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    rng, order = np.random.default_rng(0), np.arange(len(names))
    for r in range(rounds):
        # a fresh shuffle every other round, the one before reversed in between: over every
        # two rounds each candidate's mean place is the middle (of two, each goes first once)
        order = rng.permutation(len(names)) if r % 2 == 0 else order[::-1]
        for i in order:
            name = names[i]
            f, k = fns[name], inner[name]
            jax.block_until_ready(f())  # settle: not timed
            t0 = time.perf_counter()
            for _ in range(k):
                out = f()
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - t0) / k)
    return {name: np.asarray(v) for name, v in samples.items()}
