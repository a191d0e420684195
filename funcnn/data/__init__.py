"""Datasets for funcnn's studies, all offline (no network, ever).

- ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (real data), images
  ``(N, 8, 8, 1)`` in [0, 1] or flat ``(N, 64)``, fixed stratified split 1437 / 360
  (:func:`funcnn.data.digits.load_digits`).
- ``"mnist1d"`` / ``"mnist1d_shuffled"``: MNIST-1D (Greydanus 2020) regenerated with the
  ``mnist1d`` package's default arguments, 4000 / 1000 signals of length 40, ``(N, 40, 1)``
  or flat ``(N, 40)``, cached on disk; the shuffled variant applies one fixed permutation
  of the 40 positions to every signal (:func:`funcnn.data.mnist1d.load_mnist1d`).
- ``"sin"``, ``"abs"``, ``"square"``, ``"smooth_step"``, ``"bumps"``: continuous targets on
  an interval, ``x, y`` of shape ``(N, 1)``, for universal approximation
  (:func:`funcnn.data.synthetic.regression`).
- ``"moons"``, ``"circles"``, ``"blobs"``: 2-D classification sets, ``x (N, 2)``
  (:func:`funcnn.data.synthetic.classification`).

Every loader returns a :class:`Dataset` of NumPy arrays: inputs ``float32``, class labels
``int32`` in ``[0, num_classes)``, regression targets ``float32`` with ``num_classes=None``.
``load(name, **kwargs)`` dispatches by name. scikit-learn and mnist1d are imported only
when a dataset that needs them is loaded.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from funcnn._ops.checks import check_choice

SPLITS = ("train", "test")


class Dataset(NamedTuple):
    """A train/test pair of NumPy arrays.

    Attributes:
        x_train: inputs, ``(N_train, ...)`` float32.
        y_train: ``(N_train,)`` int32 labels, or ``(N_train, 1)`` float32 targets.
        x_test: inputs, ``(N_test, ...)`` float32.
        y_test: ``(N_test,)`` int32 labels, or ``(N_test, 1)`` float32 targets.
        num_classes: the number of classes, or ``None`` for regression.
        name: the name ``load`` knows it by (e.g. ``"mnist1d_shuffled"``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None
    name: str

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of the ``"train"`` or ``"test"`` split."""
        check_choice("Dataset.split", "split", which, SPLITS)
        if which == "train":
            return self.x_train, self.y_train
        return self.x_test, self.y_test


# Submodules import Dataset from here, so they come after it.
from funcnn.data import digits, mnist1d, synthetic  # noqa: E402
from funcnn.data.digits import load_digits  # noqa: E402
from funcnn.data.mnist1d import load_mnist1d, mnist1d_permutation  # noqa: E402
from funcnn.data.synthetic import (  # noqa: E402
    CLASSIFICATION_NAMES,
    REGRESSION_NAMES,
    classification,
    regression,
    target,
)

DATASET_NAMES: tuple[str, ...] = (
    ("digits", "mnist1d", "mnist1d_shuffled") + REGRESSION_NAMES + CLASSIFICATION_NAMES
)


def load(name: str, **kwargs: Any) -> Dataset:
    """Load a dataset by name.

    Args:
        name: one of :data:`DATASET_NAMES`.
        **kwargs: passed to the loader: :func:`load_digits` (``flat``, ``test_size``,
            ``seed``), :func:`load_mnist1d` (``flat``, ``cache_dir``), :func:`regression`
            (``n_train``, ``n_test``, ``interval``, ``noise``, ``seed``) or
            :func:`classification` (``n_train``, ``n_test``, ``noise``, ``seed``).

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or a bad argument value.
    """
    check_choice("load", "dataset name", name, DATASET_NAMES)
    if name == "digits":
        return load_digits(**kwargs)
    if name in ("mnist1d", "mnist1d_shuffled"):
        if "shuffled" in kwargs:
            raise TypeError(f"load: pick the variant by name ({name!r}), not shuffled=")
        return load_mnist1d(shuffled=name == "mnist1d_shuffled", **kwargs)
    if name in REGRESSION_NAMES:
        return regression(name, **kwargs)
    return classification(name, **kwargs)


__all__ = [
    "CLASSIFICATION_NAMES",
    "DATASET_NAMES",
    "Dataset",
    "REGRESSION_NAMES",
    "SPLITS",
    "classification",
    "digits",
    "load",
    "load_digits",
    "load_mnist1d",
    "mnist1d",
    "mnist1d_permutation",
    "regression",
    "synthetic",
    "target",
]
