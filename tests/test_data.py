"""Tests for funcnn.data: shapes, dtypes, splits, determinism, the MNIST-1D cache, errors."""

from __future__ import annotations

import os
import random
import types
import warnings

import numpy as np
import pytest

from funcnn import data
from funcnn.data import Dataset
from funcnn.data import mnist1d as m1d
from funcnn.data import synthetic

# ---------------------------------------------------------------------------------------
# Dataset and load
# ---------------------------------------------------------------------------------------


def test_load_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"load: unknown dataset name 'mnist'; expected one of "
                       r"'digits', 'mnist1d', 'mnist1d_shuffled', 'sin'.*'blobs'"):
        data.load("mnist")


def test_dataset_split():
    ds = data.load("sin", n_train=4, n_test=3)
    assert ds.split("train")[0] is ds.x_train and ds.split("test")[1] is ds.y_test
    with pytest.raises(ValueError, match=r"Dataset.split: unknown split 'val'; "
                       r"expected one of 'train', 'test'"):
        ds.split("val")


def test_dataset_names_complete():
    assert set(data.DATASET_NAMES) == (
        {"digits", "mnist1d", "mnist1d_shuffled"} | set(data.REGRESSION_NAMES)
        | set(data.CLASSIFICATION_NAMES)
    )
    assert len(set(data.DATASET_NAMES)) == len(data.DATASET_NAMES)


def _check_classification(ds: Dataset, n_train: int, n_test: int, x_shape: tuple[int, ...]):
    assert isinstance(ds, Dataset)
    assert ds.x_train.shape == (n_train, *x_shape) and ds.x_test.shape == (n_test, *x_shape)
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    for y in (ds.y_train, ds.y_test):
        # every class present, labels in range
        assert set(np.unique(y)) == set(range(ds.num_classes))
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_test).all()


# ---------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_images() -> Dataset:
    return data.load("digits")


def test_digits_images(digits_images):
    ds = digits_images
    assert ds.name == "digits" and ds.num_classes == 10
    _check_classification(ds, 1437, 360, (8, 8, 1))
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0  # 0..16 scaled by 1/16


def test_digits_flat_and_deterministic(digits_images):
    flat = data.load_digits(flat=True)
    _check_classification(flat, 1437, 360, (64,))
    # same split, just reshaped: the split is fixed
    np.testing.assert_array_equal(flat.x_train, digits_images.x_train.reshape(1437, 64))
    np.testing.assert_array_equal(flat.y_test, digits_images.y_test)
    other = data.load_digits(flat=True, seed=1)
    assert not np.array_equal(other.y_train, flat.y_train)


def test_digits_stratified(digits_images):
    ds = digits_images
    total = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=10)
    test = np.bincount(ds.y_test, minlength=10)
    # each class's share of the test split is 20% of that class, up to rounding
    assert np.all(np.abs(test - 0.2 * total) <= 1)
    # and the split is a partition of sklearn's 1797 examples
    assert total.sum() == 1797


def test_digits_errors():
    with pytest.raises(ValueError, match=r"load_digits: test_size must be in \(0, 1\), got 1.5"):
        data.load_digits(test_size=1.5)
    with pytest.raises(ValueError, match=r"load_digits: test_size=0.001 gives 2 test / 1795 "
                       r"train examples, but a stratified split needs at least 10"):
        data.load_digits(test_size=0.001)
    with pytest.raises(TypeError, match=r"load_digits: test_size must be a float"):
        data.load_digits(test_size="0.2")
    with pytest.raises(ValueError, match=r"load_digits: seed must be >= 0, got -1"):
        data.load_digits(seed=-1)
    with pytest.raises(TypeError, match=r"load_digits: flat must be True or False"):
        data.load("digits", flat="yes")


# ---------------------------------------------------------------------------------------
# MNIST-1D: generated once per module into a temporary cache
# ---------------------------------------------------------------------------------------


def _global_rng_snapshot():
    st = np.random.get_state()
    return (st[0], st[1].copy(), st[2], st[3], st[4]), random.getstate()


def _same_snapshot(a, b) -> bool:
    (na, pa), (nb, pb) = a, b
    return (na[0] == nb[0] and np.array_equal(na[1], nb[1]) and na[2:] == nb[2:] and pa == pb)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """Generate MNIST-1D once into a fresh cache dir (set through FUNCNN_CACHE)."""
    cache = tmp_path_factory.mktemp("funcnn_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUNCNN_CACHE", str(cache))
        np.random.seed(1234)
        random.seed(99)
        np.random.rand(3)  # put the streams somewhere unremarkable
        before = _global_rng_snapshot()
        ds = data.load("mnist1d")  # first call: generates
        after = _global_rng_snapshot()
        next_np, next_py = np.random.rand(), random.random()
        yield types.SimpleNamespace(
            cache=cache, ds=ds, before=before, after=after, next_np=next_np, next_py=next_py
        )


def test_mnist1d_generation_leaves_global_rng_untouched(mnist):
    assert _same_snapshot(mnist.before, mnist.after)
    # the streams continue exactly where the caller left them
    np.random.seed(1234)
    random.seed(99)
    np.random.rand(3)
    assert np.random.rand() == mnist.next_np and random.random() == mnist.next_py


def test_mnist1d_shapes(mnist):
    ds = mnist.ds
    assert ds.name == "mnist1d" and ds.num_classes == 10
    _check_classification(ds, 4000, 1000, (40, 1))
    # the package standardizes the whole generated set (train + test)
    allx = np.concatenate([ds.x_train, ds.x_test]).astype(np.float64)
    assert abs(allx.mean()) < 1e-5 and abs(allx.std() - 1) < 1e-5
    # roughly balanced classes (500 per class overall, shuffled before the split)
    counts = np.bincount(ds.y_train, minlength=10)
    assert counts.min() >= 350 and counts.max() <= 450


def test_mnist1d_cache_file_written_atomically(mnist):
    path = m1d.cache_path()
    assert path.parent == mnist.cache and path.exists()
    assert sorted(os.listdir(mnist.cache)) == [path.name]  # no temporary files left over
    with np.load(path) as f:
        assert sorted(f.files) == sorted(m1d._KEYS)


def test_mnist1d_second_call_reads_cache(mnist, monkeypatch):
    def boom():
        raise AssertionError("generate() called although the cache exists")

    monkeypatch.setattr(m1d, "generate", boom)
    ds = data.load_mnist1d()
    np.testing.assert_array_equal(ds.x_train, mnist.ds.x_train)
    np.testing.assert_array_equal(ds.y_test, mnist.ds.y_test)
    # explicit cache_dir works the same
    ds2 = data.load_mnist1d(flat=True, cache_dir=mnist.cache)
    assert ds2.x_train.shape == (4000, 40)
    np.testing.assert_array_equal(ds2.x_test, mnist.ds.x_test[..., 0])


def test_mnist1d_shuffled_variant(mnist):
    perm = data.mnist1d_permutation()
    assert perm.shape == (40,) and sorted(perm.tolist()) == list(range(40))
    assert not np.array_equal(perm, np.arange(40))
    sh = data.load("mnist1d_shuffled")
    assert sh.name == "mnist1d_shuffled" and sh.x_train.shape == (4000, 40, 1)
    # one fixed permutation of the positions, applied to every signal
    np.testing.assert_array_equal(sh.x_train, mnist.ds.x_train[:, perm])
    np.testing.assert_array_equal(sh.x_test, mnist.ds.x_test[:, perm])
    np.testing.assert_array_equal(sh.y_train, mnist.ds.y_train)
    flat = data.load_mnist1d(flat=True, shuffled=True)
    np.testing.assert_array_equal(flat.x_train, sh.x_train[..., 0])


def test_mnist1d_corrupt_cache_is_regenerated(mnist, tmp_path, monkeypatch):
    good = {k: np.asarray(v) for k, v in np.load(m1d.cache_path()).items()}
    calls = []
    monkeypatch.setattr(m1d, "generate", lambda: calls.append(1) or good)
    path = m1d.cache_path(tmp_path)
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match=r"load_mnist1d: regenerating the corrupt cache"):
        ds = data.load_mnist1d(cache_dir=tmp_path)
    assert calls == [1]
    np.testing.assert_array_equal(ds.x_train, mnist.ds.x_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.load_mnist1d(cache_dir=tmp_path)  # now valid: read silently, no regeneration
    assert calls == [1]


def test_mnist1d_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("FUNCNN_CACHE", str(tmp_path / "c"))
    assert m1d.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("FUNCNN_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert m1d.default_cache_dir() == tmp_path / ".cache" / "funcnn"
    assert m1d.cache_path(tmp_path).name.startswith("mnist1d-")


def test_mnist1d_errors(mnist):
    with pytest.raises(TypeError, match=r"load: pick the variant by name \('mnist1d'\)"):
        data.load("mnist1d", shuffled=True)
    with pytest.raises(TypeError, match=r"load_mnist1d: flat must be True or False"):
        data.load_mnist1d(flat=1)


@pytest.mark.slow
def test_mnist1d_matches_package_generator(mnist):
    # Regenerates twice (~10 s): our arrays are the package's default run, and our shuffled
    # variant equals the package's own shuffle_seq=True run.
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()
    try:
        args = get_dataset_args()
        ref = make_dataset(args)
        args.shuffle_seq = True
        ref_sh = make_dataset(args)
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(mnist.ds.x_train[..., 0], ref["x"].astype(np.float32))
    np.testing.assert_array_equal(mnist.ds.y_test, ref["y_test"])
    sh = data.load("mnist1d_shuffled")
    np.testing.assert_allclose(sh.x_train[..., 0], ref_sh["x"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(sh.y_train, ref_sh["y"])


# ---------------------------------------------------------------------------------------
# synthetic regression
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", synthetic.REGRESSION_NAMES)
def test_regression(name):
    ds = data.load(name, n_train=100, n_test=201, interval=(-2.0, 3.0))
    assert ds.name == name and ds.num_classes is None
    for a, n in ((ds.x_train, 100), (ds.y_train, 100), (ds.x_test, 201), (ds.y_test, 201)):
        assert a.shape == (n, 1) and a.dtype == np.float32
    assert ds.x_train.min() >= -2 and ds.x_train.max() <= 3
    assert np.all(np.diff(ds.x_train[:, 0]) >= 0)  # sorted
    np.testing.assert_allclose(ds.x_test[:, 0], np.linspace(-2, 3, 201), rtol=0, atol=1e-6)
    f = data.target(name)
    np.testing.assert_allclose(ds.y_test, f(ds.x_test.astype(np.float64)), rtol=0, atol=1e-5)
    np.testing.assert_allclose(ds.y_train, f(ds.x_train.astype(np.float64)), rtol=0, atol=1e-5)
    # deterministic from the seed
    again = data.load(name, n_train=100, n_test=201, interval=(-2.0, 3.0))
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    assert not np.array_equal(data.load(name, n_train=100, seed=1).x_train, ds.x_train)


@pytest.mark.parametrize("name", synthetic.REGRESSION_NAMES)
def test_targets_are_continuous_on_default_interval(name):
    # on a grid of spacing h = 2e-5 no jump exceeds 1e-3 (a discontinuity would)
    x = np.linspace(-1, 1, 100_001)
    assert np.max(np.abs(np.diff(data.target(name)(x)))) < 1e-3


def test_target_values():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(data.target("sin")(x), [0, -1, 0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(data.target("abs")(x), np.abs(x))
    np.testing.assert_allclose(data.target("square")(x), x**2)
    np.testing.assert_allclose(data.target("smooth_step")(x), [0, 0, 0.5, 1, 1], atol=1e-8)


def test_regression_noise():
    ds = data.load("square", n_train=20_000, noise=0.1)
    resid = ds.y_train[:, 0] - data.target("square")(ds.x_train[:, 0].astype(np.float64))
    assert abs(resid.std() - 0.1) < 0.005  # std error of the std ~ 0.1 / sqrt(2 * 20000)
    np.testing.assert_allclose(ds.y_test, data.target("square")(ds.x_test), atol=1e-6)


def test_regression_errors():
    with pytest.raises(ValueError, match=r"regression: unknown target name 'cos'; "
                       r"expected one of 'sin', 'abs', 'square', 'smooth_step', 'bumps'"):
        data.regression("cos")
    with pytest.raises(ValueError, match=r"target: unknown target name 'cos'"):
        data.target("cos")
    with pytest.raises(ValueError, match=r"regression: interval must have low < high, "
                       r"got \(1.0, 1.0\)"):
        data.load("sin", interval=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"regression: interval must be a pair"):
        data.load("sin", interval=(0.0, 1.0, 2.0))
    with pytest.raises(ValueError, match=r"regression: interval\[1\] must be finite"):
        data.load("sin", interval=(0.0, float("inf")))
    with pytest.raises(ValueError, match=r"regression: n_test must be >= 2, got 1"):
        data.load("sin", n_test=1)
    with pytest.raises(ValueError, match=r"regression: noise must be finite and >= 0.0"):
        data.load("sin", noise=-0.1)
    with pytest.raises(TypeError, match=r"regression: n_train must be an int, got 10.0"):
        data.load("abs", n_train=10.0)


# ---------------------------------------------------------------------------------------
# synthetic classification
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, k", [("moons", 2), ("circles", 2), ("blobs", 3)])
def test_classification(name, k):
    ds = data.load(name, n_train=300, n_test=150, seed=3)
    assert ds.name == name and ds.num_classes == k
    _check_classification(ds, 300, 150, (2,))
    # stratified: each class's share of train equals its share of the whole, up to rounding
    total = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=k)
    assert np.all(np.abs(np.bincount(ds.y_train, minlength=k) - total * 300 / 450) <= 1)
    again = data.load(name, n_train=300, n_test=150, seed=3)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    np.testing.assert_array_equal(again.y_test, ds.y_test)
    assert not np.array_equal(data.load(name, n_train=300, n_test=150, seed=4).x_train,
                              ds.x_train)


def test_classification_noise_changes_spread():
    tight = data.load("circles", noise=0.0)
    r = np.linalg.norm(np.concatenate([tight.x_train, tight.x_test]), axis=1)
    y = np.concatenate([tight.y_train, tight.y_test])
    # noiseless circles: radius exactly 1 (outer, label 0) or 0.5 (inner, label 1)
    np.testing.assert_allclose(r, np.where(y == 0, 1.0, 0.5), atol=1e-6)


def test_classification_errors():
    with pytest.raises(ValueError, match=r"classification: unknown dataset name 'spirals'; "
                       r"expected one of 'moons', 'circles', 'blobs'"):
        data.classification("spirals")
    with pytest.raises(ValueError, match=r"classification: n_test must be >= 3, got 2"):
        data.load("blobs", n_test=2)
    with pytest.raises(ValueError, match=r"classification: noise must be finite and >= 0.0"):
        data.load("moons", noise=-1.0)
    with pytest.raises(ValueError, match=r"classification: seed must be >= 0"):
        data.load("moons", seed=-5)
