"""Interleaved timing of jitted callables: medians and IQRs measured in one process.

The CPU is shared and noisy, so candidates that are compared are timed *interleaved*: each
round runs every candidate once (in rotating order), and statistics are over rounds. Ratios
are taken per round (same moment, same machine load) and then summarized by their median.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import numpy as np

__all__ = ["Stats", "block", "time_interleaved", "summarize"]


@dataclass(frozen=True)
class Stats:
    """Median and interquartile range of a sample of seconds."""

    median: float
    q25: float
    q75: float
    n: int

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25


def summarize(samples) -> Stats:
    a = np.asarray(samples, dtype=np.float64)
    q25, med, q75 = np.percentile(a, [25, 50, 75])
    return Stats(float(med), float(q25), float(q75), int(a.size))


def block(out):
    return jax.block_until_ready(out)


def time_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 15,
    warmup: int = 2,
    min_time: float = 0.02,
    max_inner: int = 200,
) -> tuple[dict[str, Stats], dict[str, np.ndarray]]:
    """Time zero-argument callables interleaved; returns per-name Stats and raw per-call seconds.

    Each callable is first called ``warmup`` times (compiles). An inner repeat count per
    callable is chosen so one sample lasts about ``min_time`` seconds; each round runs all
    callables once (order rotates each round to cancel drift).
    """
    names = list(fns)
    inner = {}
    for name in names:
        f = fns[name]
        for _ in range(warmup):
            block(f())
        t0 = time.perf_counter()
        block(f())
        dt = max(time.perf_counter() - t0, 1e-7)
        inner[name] = int(min(max_inner, max(1, round(min_time / dt))))
    raw = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            f, k = fns[name], inner[name]
            t0 = time.perf_counter()
            for _ in range(k):
                out = f()
            block(out)
            raw[name].append((time.perf_counter() - t0) / k)
    raw_arr = {n: np.asarray(v) for n, v in raw.items()}
    return {n: summarize(v) for n, v in raw_arr.items()}, raw_arr


def ratio_stats(raw: Mapping[str, np.ndarray], num: str, den: str) -> Stats:
    """Per-round ratio num/den (same round, same load), summarized."""
    return summarize(raw[num] / raw[den])
