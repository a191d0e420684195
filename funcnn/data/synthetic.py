"""Synthetic datasets: continuous targets on an interval and 2-D classification sets.

Regression targets (universal approximation; all continuous, defined on the whole line,
designed for the default interval [-1, 1]):

- ``"sin"``: ``sin(pi x)`` (one period on [-1, 1]);
- ``"abs"``: ``|x|`` (a kink at 0);
- ``"square"``: ``x^2``;
- ``"smooth_step"``: ``(1 + tanh(x / 0.05)) / 2`` (a continuous but steep step at 0,
  width ~0.1: hard for few units, especially squashing ones with bounded slopes);
- ``"bumps"``: ``sin(2 pi x) + sin(5 pi x) / 2 + sin(11 pi x) / 4`` (a bumpy sum of
  sines, several scales of detail).

Classification sets (2-D inputs, scikit-learn generators with an explicit seed):
``"moons"`` (2 classes), ``"circles"`` (2 classes, inner radius 0.5), ``"blobs"`` (3
isotropic Gaussian clusters).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funcnn._ops.checks import check_choice
from funcnn._ops.checks import check_int
from funcnn.data import Dataset


def _sin(x: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * x)


def _abs(x: np.ndarray) -> np.ndarray:
    return np.abs(x)


def _square(x: np.ndarray) -> np.ndarray:
    return x * x


def _smooth_step(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(x / 0.05))


def _bumps(x: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * x) + 0.5 * np.sin(5 * np.pi * x) + 0.25 * np.sin(11 * np.pi * x)


_TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sin": _sin,
    "abs": _abs,
    "square": _square,
    "smooth_step": _smooth_step,
    "bumps": _bumps,
}
REGRESSION_NAMES: tuple[str, ...] = tuple(_TARGETS)
CLASSIFICATION_NAMES: tuple[str, ...] = ("moons", "circles", "blobs")
# default noise per classification set: sklearn's `noise` for moons/circles (std of the
# Gaussian noise added to each point), `cluster_std` for blobs
_DEFAULT_NOISE = {"moons": 0.1, "circles": 0.05, "blobs": 1.0}
_NUM_CLASSES = {"moons": 2, "circles": 2, "blobs": 3}


def target(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The target function ``f`` of a regression set, elementwise on NumPy arrays.

    Args:
        name: one of :data:`REGRESSION_NAMES`.

    Returns:
        ``f(x)`` of the same shape as ``x`` (float64 in, float64 out).
    """
    check_choice("target", "target name", name, REGRESSION_NAMES)
    return _TARGETS[name]


def _check_real(fn: str, name: str, value: Any, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (minimum is not None and v < minimum):
        want = f"finite and >= {minimum}" if minimum is not None else "finite"
        raise ValueError(f"{fn}: {name} must be {want}, got {value!r}")
    return v


def regression(
    name: str,
    *,
    n_train: int = 256,
    n_test: int = 1024,
    interval: Sequence[float] = (-1.0, 1.0),
    noise: float = 0.0,
    seed: int = 0,
) -> Dataset:
    """Samples of a continuous target ``y = f(x)`` on ``[low, high]``.

    Training inputs are i.i.d. uniform on the interval (sorted, from
    ``np.random.default_rng(seed)``), with optional Gaussian label noise; test inputs are
    the noiseless evenly spaced grid of ``n_test`` points including both ends (for the
    max error of a fit and for plotting).

    Args:
        name: one of :data:`REGRESSION_NAMES`.
        n_train: number of training points, >= 1.
        n_test: number of grid points, >= 2.
        interval: ``(low, high)`` with ``low < high``, finite.
        noise: standard deviation of the noise added to ``y_train``, >= 0.
        seed: seed of the training sample, >= 0.

    Returns:
        ``Dataset(x_train (n_train, 1), y_train (n_train, 1), x_test (n_test, 1),
        y_test (n_test, 1), num_classes=None, name)``, all float32.
    """
    fn = "regression"
    check_choice(fn, "target name", name, REGRESSION_NAMES)
    n_train = check_int(fn, "n_train", n_train, 1)
    n_test = check_int(fn, "n_test", n_test, 2)
    if not isinstance(interval, Sequence) or isinstance(interval, str) or len(interval) != 2:
        raise ValueError(f"{fn}: interval must be a pair (low, high), got {interval!r}")
    low = _check_real(fn, "interval[0]", interval[0])
    high = _check_real(fn, "interval[1]", interval[1])
    if not low < high:
        raise ValueError(f"{fn}: interval must have low < high, got {tuple(interval)!r}")
    noise = _check_real(fn, "noise", noise, minimum=0.0)
    seed = check_int(fn, "seed", seed, 0)

    f = _TARGETS[name]
    rng = np.random.default_rng(seed)
    x_train = np.sort(rng.uniform(low, high, n_train))
    y_train = f(x_train) + noise * rng.standard_normal(n_train)
    x_test = np.linspace(low, high, n_test)
    y_test = f(x_test)

    def col(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32).reshape(-1, 1)

    return Dataset(col(x_train), col(y_train), col(x_test), col(y_test), None, name)


def classification(
    name: str,
    *,
    n_train: int = 512,
    n_test: int = 512,
    noise: float | None = None,
    seed: int = 0,
) -> Dataset:
    """A 2-D classification set from scikit-learn's generators, split stratified.

    ``n_train + n_test`` points are drawn with ``random_state=seed`` (``make_moons``,
    ``make_circles(factor=0.5)`` or ``make_blobs(centers=3)``) and split with a stratified
    ``train_test_split(test_size=n_test, random_state=seed)``.

    Args:
        name: one of :data:`CLASSIFICATION_NAMES`.
        n_train: number of training points, >= the number of classes.
        n_test: number of test points, >= the number of classes.
        noise: moons/circles: std of the Gaussian noise on each point (default 0.1 /
            0.05); blobs: the clusters' std (default 1.0). ``None`` for the default.
        seed: the generator's and the split's ``random_state``, >= 0.

    Returns:
        ``Dataset(x_train (n_train, 2) float32, y_train (n_train,) int32, x_test, y_test,
        num_classes, name)`` with labels in ``[0, num_classes)``.
    """
    fn = "classification"
    check_choice(fn, "dataset name", name, CLASSIFICATION_NAMES)
    k = _NUM_CLASSES[name]
    n_train = check_int(fn, "n_train", n_train, k)
    n_test = check_int(fn, "n_test", n_test, k)
    noise = _DEFAULT_NOISE[name] if noise is None else _check_real(fn, "noise", noise, minimum=0.0)
    seed = check_int(fn, "seed", seed, 0)

    from sklearn import datasets  # optional dependency
    from sklearn.model_selection import train_test_split

    n = n_train + n_test
    if name == "moons":
        x, y = datasets.make_moons(n_samples=n, noise=noise, random_state=seed)
    elif name == "circles":
        x, y = datasets.make_circles(n_samples=n, noise=noise, factor=0.5, random_state=seed)
    else:
        x, y = datasets.make_blobs(
            n_samples=n, n_features=2, centers=k, cluster_std=noise, random_state=seed
        )
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=n_test, stratify=y, random_state=seed
    )
    return Dataset(x_train, y_train, x_test, y_test, k, name)
