"""Plots of a study (matplotlib on the Agg backend, imported only when a plot is drawn).

- :func:`pyplot`: ``matplotlib.pyplot``, writing files (Agg), for figures of your own.
- :func:`band`: a mean-over-seeds curve in a std (or min-max) band, on axes of your own.
- :func:`plot_bands`, :func:`plot_lines`, :func:`plot_bars`: one-call figures of curves over
  seeds, lines and bars; save them with ``RunDir.save_figure``.
- :func:`nanmean`: ``np.nanmean`` without the all-NaN warning (curves of diverged members).
"""

from __future__ import annotations

import warnings
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


def nanmean(a: Any, axis: int | tuple[int, ...] | None = None) -> Any:
    """``np.nanmean`` without its warning: where every value is NaN (every seed diverged, or
    none got that far) the mean is NaN, silently; an empty array gives NaN."""
    a = np.asarray(a, np.float64)
    if a.size == 0:
        return np.nan if axis is None else np.full(np.delete(a.shape, axis), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def band(
    ax: Any,
    x: Any,
    ys: Any,
    *,
    label: str | None = None,
    color: Any = None,
    spread: str = "std",
    logy: bool = False,
    alpha: float = 0.2,
    **line_kwargs: Any,
) -> Any:
    """Draw the mean of ``ys`` ``(S, T)`` (or ``(T,)``) over its ``S`` seeds against ``x``
    ``(T,)`` on ``ax``, in a band: ``spread="std"`` (mean ± std) or ``"range"`` (min to max).

    NaNs (diverged or unfinished members) are ignored per point; one seed draws no band. With
    ``logy`` the axis is logarithmic and a band's lower edge that would be ``<= 0`` stays at the
    mean. Returns the mean's line (``line.get_color()``, ``set_linestyle``, ...).
    """
    if spread not in ("std", "range"):
        raise ValueError(f"band: spread must be 'std' or 'range', got {spread!r}")
    ys = np.asarray(ys, np.float64)
    if ys.ndim == 1:
        ys = ys[None]
    x = np.asarray(x)
    if ys.shape[-1] != x.shape[0]:
        raise ValueError(f"band: {label!r} has {ys.shape[-1]} points but x has {x.shape[0]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = nanmean(ys, axis=0)
        if spread == "std":
            sd = np.nanstd(ys, axis=0)
            lo, hi = mu - sd, mu + sd
        else:
            lo, hi = np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)
    (line,) = ax.plot(x, mu, label=label, color=color, **line_kwargs)
    if ys.shape[0] > 1:
        if logy:
            lo = np.where(lo > 0, lo, mu)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=alpha, linewidth=0)
    if logy:
        ax.set_yscale("log")
    return line


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

    NaNs (diverged or unfinished members) are ignored per point (see :func:`band`). Returns
    the figure.
    """
    fig, ax = _figure(ax, (6, 4))
    for label, ys in series.items():
        n = np.shape(ys)[0] if np.ndim(ys) > 1 else 1
        if np.shape(ys)[-1] != np.shape(x)[0]:
            raise ValueError(f"plot_bands: series {label!r} has {np.shape(ys)[-1]} points but x has {np.shape(x)[0]}")
        band(ax, x, ys, label=f"{label} (n={n})" if n > 1 else label, logy=logy)
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
    fig, ax = _figure(ax, (6, 4))
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
    fig, ax = _figure(ax, (max(4, 0.6 * len(labels) + 2), 4))
    if len(labels) != np.size(values):
        raise ValueError(f"plot_bars: {len(labels)} labels but {np.size(values)} values")
    pos = np.arange(len(labels))
    ax.bar(pos, np.asarray(values, np.float64), yerr=None if errors is None else np.asarray(errors, np.float64), capsize=3)
    ax.set_xticks(pos, list(labels), rotation=45 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    _decorate(ax, "", ylabel, title, False, legend=False)
    return fig


def _figure(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """``(figure, axes)``: ``ax``'s, or a new figure of ``figsize`` with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig = pyplot().figure(figsize=figsize)
    return fig, fig.add_subplot(1, 1, 1)


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
