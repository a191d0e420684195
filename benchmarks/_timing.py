"""Interleaved timing of jitted callables: medians and IQRs measured in one process.

The CPU is shared and noisy, so candidates that are compared are timed *interleaved*: each
round runs every candidate once (in a shuffled order, each sample after one untimed call:
:func:`funcnn.study.timing.time_interleaved`), and statistics are over rounds. Ratios
are taken per round (same moment, same machine load) and then summarized by their median.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import numpy as np

from funcnn.study.timing import time_interleaved as _library_time_interleaved

__all__ = ["Stats", "block", "time_interleaved", "summarize", "train_step_flops"]


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
    """:func:`funcnn.train.time_interleaved` (the library's interleaved timer), summarized:
    per-name :class:`Stats` and the raw per-call seconds."""
    raw = _library_time_interleaved(fns, rounds=rounds, warmup=warmup, min_time=min_time, max_inner=max_inner)
    return {n: summarize(v) for n, v in raw.items()}, raw


def ratio_stats(raw: Mapping[str, np.ndarray], num: str, den: str) -> Stats:
    """Per-round ratio num/den (same round, same load), summarized."""
    return summarize(raw[num] / raw[den])


def train_step_flops(model, loss, optimizer, x, y) -> float:
    """FLOPs of one train step of ``model`` on the batch ``(x, y)`` (XLA's cost analysis of
    the compiled :func:`funcnn.train.make_train_step`, params drawn from key 0)."""
    from funcnn.train.step import make_train_step

    _, params, state = model.init(jax.random.PRNGKey(0), x.shape)
    step = make_train_step(model, loss, optimizer)
    cost = step.lower(params, optimizer.init(params), state, x, y, jax.random.PRNGKey(0)).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost["flops"])
