"""scikit-learn's bundled 8x8 handwritten digits (UCI optdigits test set), offline.

1797 grayscale 8x8 images of the digits 0-9 (about 180 per class), pixel values 0..16 in
the original, scaled here to [0, 1] by dividing by 16. The default split is stratified
with ``test_size=0.2`` and ``seed=0`` (scikit-learn's ``train_test_split`` with
``random_state=0``): **1437 train / 360 test**, every class in the same proportion in both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from funcnn._ops.checks import check_bool, check_int
from funcnn.data import Dataset

NUM_CLASSES = 10
NUM_EXAMPLES = 1797
IMAGE_SHAPE = (8, 8, 1)
TEST_SIZE = 0.2
SEED = 0


def load_digits(*, flat: bool = False, test_size: float = TEST_SIZE, seed: int = SEED) -> Dataset:
    """The digits as a fixed stratified train/test split.

    Args:
        flat: if True, inputs are ``(N, 64)`` rows; else channels-last images
            ``(N, 8, 8, 1)`` for CNNs.
        test_size: the fraction of examples in the test split, in (0, 1), leaving at least
            one example of each class on each side (default 0.2: 1437 / 360).
        seed: ``random_state`` of the stratified shuffle split (default 0).

    Returns:
        ``Dataset(x_train, y_train, x_test, y_test, num_classes=10, name="digits")``;
        ``x`` float32 in [0, 1], ``y`` int32 in [0, 10).

    Raises:
        ValueError: ``test_size`` outside (0, 1) or too small/large to stratify; bad seed.
    """
    fn = "load_digits"
    flat = check_bool(fn, "flat", flat)
    test_size = _check_test_size(fn, test_size, NUM_EXAMPLES, NUM_CLASSES)
    seed = check_int(fn, "seed", seed, 0)

    from sklearn.datasets import load_digits as sk_load_digits  # optional dependency
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (np.asarray(bunch.images, np.float32) / np.float32(16.0)).reshape(-1, *IMAGE_SHAPE)
    y = np.asarray(bunch.target, np.int32)
    if flat:
        x = x.reshape(len(x), -1)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return Dataset(x_train, y_train, x_test, y_test, NUM_CLASSES, "digits")


def _check_test_size(fn: str, test_size: Any, n: int, num_classes: int) -> float:
    """Validate a test fraction so that a stratified split keeps every class on both sides."""
    if isinstance(test_size, bool) or not isinstance(test_size, (float, np.floating)):
        raise TypeError(f"{fn}: test_size must be a float in (0, 1), got {test_size!r}")
    t = float(test_size)
    if not 0.0 < t < 1.0:
        raise ValueError(f"{fn}: test_size must be in (0, 1), got {test_size!r}")
    n_test = math.ceil(t * n)  # scikit-learn's rounding for a float test_size
    if n_test < num_classes or n - n_test < num_classes:
        raise ValueError(
            f"{fn}: test_size={test_size!r} gives {n_test} test / {n - n_test} train examples, "
            f"but a stratified split needs at least {num_classes} (one per class) on each side"
        )
    return t
