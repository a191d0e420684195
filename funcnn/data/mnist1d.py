"""MNIST-1D (Greydanus 2020, "Scaling down deep learning"), regenerated offline.

The ``mnist1d`` package builds the dataset procedurally from ten 1-D digit templates
(padding, shear, scale, translation, correlated and i.i.d. noise, resampling to length
40). We call ``mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())`` with the
package's **default arguments** (5000 signals, ``train_split=0.8``: 4000 train / 1000
test, length 40, ``seed=42``) and never its download path (``get_dataset``), so no
network is touched.

``make_dataset`` seeds the *global* NumPy and Python ``random`` generators
(``mnist1d.utils.set_seed``); we save both states before the call and restore them after
it, so loading MNIST-1D leaves the caller's random streams exactly where they were (this
swap is not thread-safe: do not generate concurrently with other users of the global
generators).

The arrays are cached as ``mnist1d-<package version>-default.npz`` under the cache
directory: the ``cache_dir`` argument, else ``$FUNCNN_CACHE``, else ``~/.cache/funcnn``.
The file is written atomically (temporary file in the same directory + ``os.replace``),
so concurrent first loads cannot leave a half-written cache; later loads read it without
importing ``mnist1d``. A corrupt cache file is regenerated (with a warning).

Shuffled-sequence variant: one fixed permutation of the 40 positions applied to every
signal (train and test), which destroys spatial structure while keeping the information,
so CNNs lose their advantage over MLPs. The permutation is the one the package itself
uses for ``shuffle_seq=True``: ``np.random.permutation(40)`` drawn from the global
generator right after the examples of the default (seed 42) run. Hence ``mnist1d_shuffled``
equals ``make_dataset`` with ``shuffle_seq=True`` (the dataset-wide standardization is
permutation-invariant). It is stored in the cache; see :func:`mnist1d_permutation`.
"""

from __future__ import annotations

import importlib.metadata
import os
import random
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from funcnn._ops.checks import check_bool
from funcnn.data import Dataset

NUM_CLASSES = 10
LENGTH = 40
NUM_TRAIN = 4000
NUM_TEST = 1000
_KEYS = ("x_train", "y_train", "x_test", "y_test", "permutation")


def default_cache_dir() -> Path:
    """``$FUNCNN_CACHE`` if set and non-empty, else ``~/.cache/funcnn``."""
    env = os.environ.get("FUNCNN_CACHE", "")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "funcnn"


def cache_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the generated arrays are (or will be) cached.

    Args:
        cache_dir: the directory; ``None`` for :func:`default_cache_dir`.

    Returns:
        ``<cache_dir>/mnist1d-<mnist1d version>-default.npz``. The package version is part
        of the name because the arrays are only as fixed as the package's generator.
    """
    root = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    version = importlib.metadata.version("mnist1d")
    return root / f"mnist1d-{version}-default.npz"


def generate() -> dict[str, np.ndarray]:
    """Run the package's generator with its default arguments (no cache, no network).

    The global NumPy and Python ``random`` states are restored afterwards.

    Returns:
        ``x_train (4000, 40)`` and ``x_test (1000, 40)`` float32 (standardized over the
        whole dataset, as the package does), ``y_train (4000,)``/``y_test (1000,)`` int32 in
        [0, 10), and ``permutation (40,)`` int64 (the shuffled variant's permutation).
    """
    from mnist1d.data import get_dataset_args, make_dataset  # optional dependency

    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        args = get_dataset_args()
        data = make_dataset(args)
        # the draw make_dataset makes next when args.shuffle_seq is True
        permutation = np.random.permutation(args.final_seq_length)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x_train": np.asarray(data["x"], np.float32),
        "y_train": np.asarray(data["y"], np.int32),
        "x_test": np.asarray(data["x_test"], np.float32),
        "y_test": np.asarray(data["y_test"], np.int32),
        "permutation": np.asarray(permutation, np.int64),
    }


def _valid(arrays: dict[str, np.ndarray]) -> bool:
    """Whether cached arrays have the expected keys, shapes and dtypes."""
    if set(arrays) != set(_KEYS):
        return False
    want = {
        "x_train": ((NUM_TRAIN, LENGTH), np.float32),
        "y_train": ((NUM_TRAIN,), np.int32),
        "x_test": ((NUM_TEST, LENGTH), np.float32),
        "y_test": ((NUM_TEST,), np.int32),
        "permutation": ((LENGTH,), np.int64),
    }
    return all(arrays[k].shape == s and arrays[k].dtype == d for k, (s, d) in want.items())


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz via a temporary file in the same directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is ordinary shared data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_arrays(cache_dir: str | os.PathLike[str] | None) -> dict[str, np.ndarray]:
    """The cached arrays, generating and caching them first if needed."""
    path = cache_path(cache_dir)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            if _valid(arrays):
                return arrays
            problem = "unexpected contents"
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            problem = f"{type(err).__name__}: {err}"
        warnings.warn(f"load_mnist1d: regenerating the corrupt cache {path} ({problem})",
                      stacklevel=3)
    arrays = generate()
    _write_atomic(path, arrays)
    return arrays


def mnist1d_permutation(cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """The fixed permutation of the 40 positions used by the shuffled variant.

    Returns:
        ``(40,)`` int64: shuffled ``x[..., i]`` is original ``x[..., permutation[i]]``.
    """
    return _load_arrays(cache_dir)["permutation"].copy()


def load_mnist1d(
    *,
    flat: bool = False,
    shuffled: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """MNIST-1D with the package's default arguments: 4000 train / 1000 test signals.

    Args:
        flat: if True, inputs are ``(N, 40)``; else ``(N, 40, 1)`` (channels-last, for 1-D
            CNNs).
        shuffled: if True, the shuffled-sequence variant (every signal's 40 positions
            permuted by :func:`mnist1d_permutation`).
        cache_dir: where to cache the generated arrays (default ``$FUNCNN_CACHE`` or
            ``~/.cache/funcnn``).

    Returns:
        ``Dataset(x_train, y_train, x_test, y_test, num_classes=10, name)`` with ``name``
        ``"mnist1d"`` or ``"mnist1d_shuffled"``; ``x`` float32 (zero mean, unit std over
        the whole generated set), ``y`` int32 in [0, 10) (the train split has 394-411
        examples per class).
    """
    flat = check_bool("load_mnist1d", "flat", flat)
    shuffled = check_bool("load_mnist1d", "shuffled", shuffled)
    a = _load_arrays(cache_dir)
    x_train, x_test = a["x_train"], a["x_test"]
    if shuffled:
        x_train, x_test = x_train[:, a["permutation"]], x_test[:, a["permutation"]]
    if not flat:
        x_train, x_test = x_train[..., None], x_test[..., None]
    name = "mnist1d_shuffled" if shuffled else "mnist1d"
    return Dataset(x_train, a["y_train"], x_test, a["y_test"], NUM_CLASSES, name)
