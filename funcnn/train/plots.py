"""Plots of a study (matplotlib on the Agg backend, imported only when a plot is drawn).

- :func:`pyplot`: ``matplotlib.pyplot``, writing files (Agg), for figures of your own.
- :func:`plot_bands`, :func:`plot_lines`, :func:`plot_bars`: one-call figures of curves over
  seeds, lines and bars; save them with ``RunDir.save_figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files, no window)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


_plt = pyplot  # the name experiments used before pyplot was public


def plot_bands(
    x: Any,
    series: Mapping[str, Any],
    *,
    xlabel: str = "step",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
    ax: Any = None,
) -> Any:
    """Curves with mean ± std bands over seeds: ``series[label]`` is ``(S, T)`` (or ``(T,)``).

    NaNs (diverged or unfinished members) are ignored per point. Returns the figure.
    """
    plt = pyplot()
    fig = ax.figure if ax is not None else plt.figure(figsize=(6, 4))
    ax = ax if ax is not None else fig.add_subplot(1, 1, 1)
    x = np.asarray(x)
    for label, ys in series.items():
        ys = np.asarray(ys, np.float64)
        if ys.ndim == 1:
            ys = ys[None]
        if ys.shape[-1] != x.shape[0]:
            raise ValueError(f"plot_bands: series {label!r} has {ys.shape[-1]} points but x has {x.shape[0]}")
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mu = np.nanmean(ys, axis=0)
                sd = np.nanstd(ys, axis=0) if ys.shape[0] > 1 else np.zeros_like(mu)
        (line,) = ax.plot(x, mu, label=f"{label} (n={ys.shape[0]})" if ys.shape[0] > 1 else label)
        if ys.shape[0] > 1:
            ax.fill_between(x, mu - sd, mu + sd, color=line.get_color(), alpha=0.2, linewidth=0)
    _decorate(ax, xlabel, ylabel, title, logy)
    return fig


def plot_lines(
    x: Any,
    series: Mapping[str, Any],
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
    logx: bool = False,
    ax: Any = None,
) -> Any:
    """Plain line plot of ``series[label]`` ``(T,)`` against ``x`` ``(T,)``; returns the figure."""
    plt = pyplot()
    fig = ax.figure if ax is not None else plt.figure(figsize=(6, 4))
    ax = ax if ax is not None else fig.add_subplot(1, 1, 1)
    for label, ys in series.items():
        ax.plot(np.asarray(x), np.asarray(ys), label=label, marker="o" if np.size(x) <= 20 else None)
    if logx:
        ax.set_xscale("log")
    _decorate(ax, xlabel, ylabel, title, logy)
    return fig


def plot_bars(
    labels: Sequence[str],
    values: Any,
    *,
    errors: Any = None,
    ylabel: str = "",
    title: str = "",
    ax: Any = None,
) -> Any:
    """Bar chart of ``values`` ``(K,)`` with optional error bars ``(K,)``; returns the figure."""
    plt = pyplot()
    fig = ax.figure if ax is not None else plt.figure(figsize=(max(4, 0.6 * len(labels) + 2), 4))
    ax = ax if ax is not None else fig.add_subplot(1, 1, 1)
    if len(labels) != np.size(values):
        raise ValueError(f"plot_bars: {len(labels)} labels but {np.size(values)} values")
    pos = np.arange(len(labels))
    ax.bar(pos, np.asarray(values, np.float64), yerr=None if errors is None else np.asarray(errors, np.float64), capsize=3)
    ax.set_xticks(pos, list(labels), rotation=45 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    _decorate(ax, "", ylabel, title, False, legend=False)
    return fig


def _decorate(ax: Any, xlabel: str, ylabel: str, title: str, logy: bool, legend: bool = True) -> None:
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
