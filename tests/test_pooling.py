"""Tests for funcnn.pooling: hand rules vs the autodiff twins, finite differences, exact ties."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from funcnn import pooling as hand
from funcnn.reference import pooling as twin

NAMES = ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d")


# ----------------------------------------------------------------------------- helpers
def tie_free(shape, dtype=np.float64, seed=0):
    """Distinct values 0.25 apart (a shuffled ramp): no ties, no kinks within FD steps."""
    n = int(np.prod(shape))
    vals = (np.random.default_rng(seed).permutation(n) - n / 2) * 0.25
    return jnp.asarray(vals.reshape(shape), dtype)


def pool(mod, name, window, stride, padding, cip=True):
    fn = getattr(mod, name)
    if name.startswith("avg"):
        return lambda x: fn(x, window, stride, padding, count_include_pad=cip)
    return lambda x: fn(x, window, stride, padding)


@functools.lru_cache(maxsize=None)
def _jitted_forward_and_vjp(mod, name, window, stride, padding, cip):
    f = pool(mod, name, window, stride, padding, cip)
    return jax.jit(lambda x, g: (f(x), jax.vjp(f, x)[1](g)[0]))


def forward_and_vjp(f, x, g):
    """``(f(x), vjp(g))`` in one jitted call (one compilation instead of many eager ones)."""
    return jax.jit(lambda x, g: (f(x), jax.vjp(f, x)[1](g)[0]))(x, g)


def pool_and_vjp(mod, name, window, stride, padding, x, g, cip=True):
    """:func:`forward_and_vjp` of a pool, compiled once per geometry and shape."""
    return _jitted_forward_and_vjp(mod, name, window, stride, padding, cip)(x, g)


def assert_matches_twin(name, x, window, stride, padding, cip=True, seed=1, rtol=1e-12, atol=1e-12):
    """Forward and a random-cotangent vjp of the hand rule equal the twin's."""
    out = jax.eval_shape(pool(hand, name, window, stride, padding, cip), x)
    g = jnp.asarray(np.random.default_rng(seed).normal(size=out.shape), x.dtype)
    y, dx = pool_and_vjp(hand, name, window, stride, padding, x, g, cip)
    y_ref, dx_ref = pool_and_vjp(twin, name, window, stride, padding, x, g, cip)
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype == x.dtype
    assert dx.shape == x.shape and dx.dtype == x.dtype
    np.testing.assert_allclose(np.asarray(y, np.float64), np.asarray(y_ref, np.float64), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(dx, np.float64), np.asarray(dx_ref, np.float64), rtol=rtol, atol=atol)


def assert_first_max_convention(x, window, stride, padding, seed=2):
    """The max-pool vjp equals the NumPy brute force of the first-max rule (ties allowed)."""
    geo = hand.pool_geometry("test", x, window, stride, padding, 2)
    g = jnp.asarray(np.random.default_rng(seed).normal(size=(x.shape[0], *geo.out_sizes, x.shape[-1])), x.dtype)
    _, dx = pool_and_vjp(hand, "max_pool2d", window, stride, padding, x, g)
    expected = brute_max_pool_grad(x, geo.window, geo.strides, geo.pads, g)
    np.testing.assert_allclose(np.asarray(dx), expected, rtol=1e-12, atol=1e-12)
    return dx, g


def brute_max_pool_grad(x, window, stride, pads, g):
    """NumPy loops: each window's error to its FIRST real maximum (row-major; NaN is the max)."""
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), ((pt, _), (pl, _)) = window, stride, pads
    dx = np.zeros_like(x)
    for b, a0, a1, ch in itertools.product(range(n), range(g.shape[1]), range(g.shape[2]), range(c)):
        taps = [
            (r, q)
            for r in range(a0 * sh - pt, a0 * sh - pt + kh)
            for q in range(a1 * sw - pl, a1 * sw - pl + kw)
            if 0 <= r < h and 0 <= q < w
        ]
        if not taps:
            continue
        vals = np.array([x[b, r, q, ch] for r, q in taps])
        win = int(np.argmax(np.isnan(vals))) if np.isnan(vals).any() else int(np.argmax(vals == vals.max()))
        r, q = taps[win]
        dx[b, r, q, ch] += g[b, a0, a1, ch]
    return dx


# 2-D geometries: (shape, window, stride, padding); the comment says which code path/edge.
GRID_2D = [
    ((2, 6, 6, 3), 2, None, "VALID"),  # tiling windows (reshape path)
    ((2, 7, 5, 3), 2, None, "SAME"),  # tiling, odd sizes, padding on the high side
    ((2, 7, 7, 2), 3, 2, "SAME"),  # overlapping 3x3 stride 2
    ((1, 6, 7, 2), (3, 2), (1, 2), 1),  # stride 1, int padding, uneven window
    ((2, 5, 6, 2), (2, 3), (3, 2), ((1, 0), (0, 2))),  # gaps and explicit pairs
    ((1, 5, 5, 1), 5, 1, "VALID"),  # window = input size
    ((1, 3, 9, 2), (3, 4), (3, 4), ((0, 0), (0, 3))),  # tiling with explicit padding
]
GRID_1D = [
    ((2, 8, 3), 2, None, "VALID"),
    ((2, 9, 2), 3, 2, "SAME"),
    ((1, 7, 2), 3, 1, 1),
    ((2, 6, 1), 2, 3, ((1, 2),)),
    ((1, 5, 2), 5, None, "VALID"),
]
CASES = [(n, *case) for n in ("max_pool2d", "avg_pool2d") for case in GRID_2D] + [
    (n, *case) for n in ("max_pool1d", "avg_pool1d") for case in GRID_1D
]


def case_id(case):
    name, shape, window, stride, padding = case
    return f"{name}-{shape}-k{window}-s{stride}-p{padding}".replace(" ", "")


# ----------------------------------------------------------------- rules vs the twins
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_twin(case):
    name, shape, window, stride, padding = case
    assert_matches_twin(name, tie_free(shape), window, stride, padding)
    if name.startswith("avg") and padding not in ("VALID", 0):
        assert_matches_twin(name, tie_free(shape), window, stride, padding, cip=False)


@pytest.mark.parametrize("case", CASES[::3], ids=case_id)
def test_check_grads_float64(case):
    name, shape, window, stride, padding = case
    f = jax.jit(pool(hand, name, window, stride, padding, cip=False))
    check_grads(f, (tie_free(shape, seed=3),), order=1, modes=("rev",))


@pytest.mark.parametrize(
    "name,window,stride", [("max_pool2d", 2, None), ("max_pool2d", 3, 2), ("avg_pool2d", 3, 2)]
)
def test_gradient_of_gradient_matches_twin(name, window, stride):
    """The backward rules are differentiable: second-order terms equal the twin's."""
    x = tie_free((2, 6, 6, 2), seed=4)

    def second(mod):
        inner = jax.grad(lambda x: jnp.sum(jnp.sin(pool(mod, name, window, stride, "SAME")(x))))
        return jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(inner(x)) * x)))(x)

    np.testing.assert_allclose(second(hand), second(twin), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------- ties, padding
def test_tie_all_equal_window_goes_to_first_element_row_major():
    x = jnp.ones((1, 2, 4, 1))
    g = jnp.array([3.0, 5.0]).reshape(1, 1, 2, 1)
    _, dx = forward_and_vjp(lambda x: hand.max_pool2d(x, 2), x, g)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[3, 0, 5, 0], [0, 0, 0, 0]])


def test_tie_partial_goes_to_first_maximum_not_first_element():
    x = jnp.array([[1.0, 3.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
    _, dx = forward_and_vjp(lambda x: hand.max_pool2d(x, 2), x, jnp.full((1, 1, 1, 1), 7.0))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 7], [0, 0]])


def test_overlapping_windows_sharing_a_max_accumulate():
    x = jnp.array([0.0, 5.0, 1.0, 2.0, 0.0]).reshape(1, 5, 1)
    g = jnp.array([1.0, 10.0, 100.0]).reshape(1, 3, 1)
    y, dx = forward_and_vjp(lambda x: hand.max_pool1d(x, 3, stride=1), x, g)
    np.testing.assert_array_equal(y[0, :, 0], [5, 5, 2])
    np.testing.assert_array_equal(dx[0, :, 0], [0, 11, 0, 100, 0])


def test_overlapping_all_equal_each_window_credits_its_top_left():
    x = jnp.full((1, 3, 3, 1), 2.0)
    g = jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    _, dx = forward_and_vjp(lambda x: hand.max_pool2d(x, 2, stride=1), x, g)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])


@pytest.mark.parametrize("window,stride", [(2, None), (3, 1), (3, 2), (2, 3)])
def test_ties_match_brute_force_first_max(window, stride):
    x = jnp.asarray(np.random.default_rng(5).integers(0, 3, size=(2, 7, 6, 2)), jnp.float64)  # many ties
    assert_first_max_convention(x, window, stride, "SAME")


@pytest.mark.parametrize("max_channels", [0, 64])  # 0: the unrolled scan; 64: the stored argmax
@pytest.mark.parametrize("channels", [2, 20])
def test_tiling_windows_find_the_first_max_by_scan_and_by_argmax(monkeypatch, max_channels, channels):
    """Unpadded tiling windows: both ways of finding each window's first maximum (the scan's
    masks, the stored jnp.argmax index; funcnn.pooling.ARGMAX_MAX_CHANNELS picks one) route
    the error as the brute force does, with many ties and a NaN."""
    import funcnn.pooling

    monkeypatch.setattr(funcnn.pooling, "ARGMAX_MAX_CHANNELS", {jax.default_backend(): max_channels})
    x = np.random.default_rng(6).integers(0, 3, size=(2, 6, 8, channels)).astype(np.float64)
    x[0, 2, 3, 0] = x[1, 0, 1, channels - 1] = np.nan
    for window in (2, (2, 4), 3):
        xv = jnp.asarray(x[:, :6, :6] if window == 3 else x)
        geo = hand.pool_geometry("test", xv, window, None, "VALID", 2)
        g = jnp.asarray(np.random.default_rng(2).normal(size=(2, *geo.out_sizes, channels)))
        dx = jax.vjp(lambda x: hand.max_pool2d(x, window), xv)[1](g)[0]  # traced anew: not the cached jit
        expected = brute_max_pool_grad(xv, geo.window, geo.strides, geo.pads, g)
        np.testing.assert_allclose(np.asarray(dx), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("window,stride", [(2, None), (3, 1)])
def test_padding_never_wins(window, stride):
    x = -1.0 - tie_free((1, 5, 5, 2), seed=7) ** 2  # all negative: a 0-padding would win
    assert bool(jnp.all(hand.max_pool2d(x, window, stride, "SAME") < 0))
    dx, g = assert_first_max_convention(x, window, stride, "SAME")
    np.testing.assert_allclose(jnp.sum(dx), jnp.sum(g), rtol=1e-12)  # no error lost to padding


@pytest.mark.parametrize("window,stride", [(2, None), (3, 1)])
def test_padding_never_wins_even_against_minus_inf(window, stride):
    x = jnp.full((1, 4, 4, 1), -jnp.inf)
    assert bool(jnp.all(hand.max_pool2d(x, window, stride, "SAME") == -jnp.inf))
    dx, g = assert_first_max_convention(x, window, stride, "SAME")
    np.testing.assert_allclose(jnp.sum(dx), jnp.sum(g), rtol=1e-12)


def test_windows_wholly_in_padding():
    # A window with no input would pool nothing (a max of -inf, an average of nothing): refused.
    x = tie_free((1, 4, 4, 1))
    for op in (hand.max_pool2d, twin.max_pool2d, hand.avg_pool2d, twin.avg_pool2d):
        with pytest.raises(ValueError, match=r"padding \(2, 0\) in spatial dim 0 leaves 1 window\(s\) entirely in the padding"):
            op(x, 2, 1, ((2, 0), (0, 0)))
    assert_matches_twin("max_pool2d", x, 2, 1, ((1, 0), (0, 0)))  # one padded row per window: fine
    assert_matches_twin("avg_pool2d", x, 2, 1, ((1, 0), (0, 0)), cip=False)


def test_avg_pool_count_include_pad_exact():
    x = jnp.arange(1.0, 5.0).reshape(1, 4, 1)  # [1, 2, 3, 4], window 2, SAME-free padding 1
    incl = hand.avg_pool1d(x, 2, padding=1)
    excl = hand.avg_pool1d(x, 2, padding=1, count_include_pad=False)
    np.testing.assert_array_equal(incl[0, :, 0], [0.5, 2.5, 2.0])
    np.testing.assert_array_equal(excl[0, :, 0], [1.0, 2.5, 4.0])
    g = jnp.array([2.0, 4.0, 6.0]).reshape(1, 3, 1)
    _, dx = forward_and_vjp(lambda x: hand.avg_pool1d(x, 2, padding=1, count_include_pad=False), x, g)
    np.testing.assert_array_equal(dx[0, :, 0], [2, 2, 2, 6])


@pytest.mark.parametrize("window,stride", [(2, None), (3, 1)])
def test_nan_propagates_and_the_first_nan_takes_the_error(window, stride):
    x = np.array(tie_free((1, 4, 4, 1), seed=9))
    x[0, 1, 1, 0] = x[0, 1, 0, 0] = np.nan  # the row-major first NaN is (1, 0)
    x = jnp.asarray(x)
    y, y_ref = hand.max_pool2d(x, window, stride), twin.max_pool2d(x, window, stride)
    assert bool(jnp.any(jnp.isnan(y)))
    np.testing.assert_array_equal(y, y_ref)  # NaNs in the same places
    dx, _ = assert_first_max_convention(x, window, stride, "VALID")
    if stride is None:  # one 2x2 window holds both NaNs: only the first gets the error
        assert float(dx[0, 1, 1, 0]) == 0.0 and float(dx[0, 1, 0, 0]) != 0.0


# ------------------------------------------------------------------ hypothesis geometry
@st.composite
def geometries(draw):
    sizes = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    form = draw(st.sampled_from(["VALID", "SAME", "int", "pairs"]))
    if form == "int":
        padding = draw(st.integers(0, 2))
        pads = ((padding, padding),) * 2
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
        pads = padding
    else:
        padding, pads = form, ((0, 0),) * 2
    limit = [n + lo + hi for n, (lo, hi) in zip(sizes, pads)]  # SAME pads only where needed
    window = tuple(draw(st.integers(1, min(4, m))) for m in limit)
    if draw(st.booleans()):  # window = input size (VALID fits it exactly)
        window, padding = sizes, "VALID"
    batch, channels = draw(st.integers(0, 2)), draw(st.integers(1, 2))
    x = jnp.zeros((1, *sizes, 1))
    try:  # windows that lie wholly in the padding are refused (test_windows_wholly_in_padding)
        hand.max_pool2d(x, window, strides, padding)
    except ValueError as e:
        assume("entirely in the padding" not in str(e))
    return (batch, *sizes, channels), window, strides, padding


@settings(max_examples=25, deadline=None)
@given(geometries(), st.booleans(), st.integers(0, 2**16))
def test_hypothesis_geometry(geometry, cip, seed):
    shape, window, stride, padding = geometry
    assert_matches_twin("max_pool2d", tie_free(shape, seed=seed), window, stride, padding, seed=seed)
    assert_matches_twin("avg_pool2d", tie_free(shape, seed=seed), window, stride, padding, cip, seed=seed)
    ties = jnp.asarray(np.random.default_rng(seed).integers(0, 2, size=shape), jnp.float64)
    assert_first_max_convention(ties, window, stride, padding, seed=seed)


# ------------------------------------------------------------- transforms, dtypes, sizes
@pytest.mark.parametrize("name", NAMES)
def test_jit_and_vmap(name):
    shape = (2, 6, 6, 2) if name.endswith("2d") else (2, 7, 2)
    f = pool(hand, name, 3, 2, "SAME")
    xs = tie_free((3, *shape), seed=11)
    grad = jax.grad(lambda x: jnp.sum(jnp.sin(f(x))))
    step = jax.jit(lambda x: (f(x), grad(x)))
    ys, grads = zip(*(step(x) for x in xs))
    np.testing.assert_allclose(jax.vmap(f)(xs), jnp.stack(ys), rtol=1e-12)  # eager vmap
    np.testing.assert_allclose(jax.jit(jax.vmap(grad))(xs), jnp.stack(grads), rtol=1e-12)
    np.testing.assert_allclose(ys[0], pool(twin, name, 3, 2, "SAME")(xs[0]), rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])  # float64: everywhere else
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("window,stride", [(2, None), (3, 2)], ids=["tiling", "overlapping"])
def test_dtypes(dtype, name, window, stride):
    x = tie_free((2, 6, 5, 2), dtype)  # multiples of 0.25 up to 15: exact even in bfloat16
    tol = {jnp.float32: 1e-6, jnp.float64: 1e-12, jnp.bfloat16: 2e-2}[dtype]
    assert_matches_twin(name, x, window, stride, "SAME", rtol=tol, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_zero_size_batch(name):
    shape = (0, 5, 5, 3) if name.endswith("2d") else (0, 5, 3)
    f = pool(hand, name, 2, 1, "SAME")
    y, vjp = jax.vjp(f, jnp.zeros(shape))
    assert y.shape == shape
    assert vjp(y)[0].shape == shape


def test_one_d_is_two_d_with_unit_height():
    x = tie_free((2, 9, 3))
    np.testing.assert_array_equal(hand.max_pool1d(x, 3, 2, "SAME"), hand.max_pool2d(x[:, None], (1, 3), (1, 2), "SAME")[:, 0])
    np.testing.assert_array_equal(hand.avg_pool1d(x, 3, 2, 1), hand.avg_pool2d(x[:, None], (1, 3), (1, 2), ((0, 0), (1, 1)))[:, 0])


# ---------------------------------------------------------------------------- bad input
X2, X1 = jnp.zeros((2, 4, 4, 3)), jnp.zeros((2, 4, 3))
BAD = [
    ("max_pool2d", (X1, 2), {}, ValueError, r"max_pool2d: x must have rank 4 \(N, H, W, C\), got rank 3"),
    ("avg_pool1d", (X2, 2), {}, ValueError, r"avg_pool1d: x must have rank 3 \(N, W, C\), got rank 4"),
    ("max_pool2d", (jnp.zeros((2, 4, 4, 3), jnp.int32), 2), {}, TypeError, r"max_pool2d: x must have a floating-point dtype, got int32"),
    ("avg_pool2d", ([[1.0]], 2), {}, TypeError, r"avg_pool2d: x must be an array, got list"),
    ("max_pool2d", (X2, 0), {}, ValueError, r"max_pool2d: window must be >= 1, got 0"),
    ("avg_pool2d", (X2, (2, -1)), {}, ValueError, r"avg_pool2d: window must be >= 1"),
    ("max_pool1d", (X1, (2, 2)), {}, ValueError, r"max_pool1d: window must be an int or a tuple of 1 ints"),
    ("max_pool2d", (X2, 2.0), {}, TypeError, r"max_pool2d: window must be an int or a tuple of 2 ints"),
    ("max_pool2d", (X2, 2), {"stride": 0}, ValueError, r"max_pool2d: stride must be >= 1, got 0"),
    ("avg_pool1d", (X1, 2), {"stride": -2}, ValueError, r"avg_pool1d: stride must be >= 1, got -2"),
    ("max_pool2d", (X2, 5), {}, ValueError, r"max_pool2d: window of effective size 5 .* larger than the padded input 4"),
    ("avg_pool2d", (X2, (2, 7)), {"padding": 1}, ValueError, r"avg_pool2d: window .* 7 .* larger than the padded input 6 .* spatial dim 1"),
    ("max_pool2d", (X2, 2), {"padding": "FULL"}, ValueError, r"max_pool2d: unknown padding 'FULL'"),
    ("avg_pool2d", (X2, 2), {"padding": ((1, 1),)}, ValueError, r"avg_pool2d: explicit padding must be 2 \(lo, hi\) pair"),
    ("max_pool1d", (X1, 2), {"padding": -1}, ValueError, r"max_pool1d: padding must be >= 0"),
    ("avg_pool2d", (X2, 2), {"count_include_pad": "yes"}, TypeError, r"avg_pool2d: count_include_pad must be a bool"),
]


@pytest.mark.parametrize("mod", [hand, twin], ids=["hand", "twin"])
@pytest.mark.parametrize("name,args,kwargs,exc,match", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input(mod, name, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(mod, name)(*args, **kwargs)



@pytest.mark.parametrize("padding", [((1, 0), (1, 0)), ((1, 1), (0, 1)), ((1, 1), (0, 0))])
def test_tiling_windows_with_padding_first_in_row_major(padding):
    """Tiling windows (the block-mask path) whose -inf padding precedes the real taps."""
    x = jnp.full((1, 3, 3, 2), -jnp.inf)  # every real tap ties with the padding
    assert_first_max_convention(x, 2, 2, padding)
    assert_matches_twin("max_pool2d", tie_free((2, 5, 3, 6), seed=3), 2, 2, padding)  # few channels


# ------------------------------------------------------------ forced algorithms (POOL_ALGORITHMS)


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("window,stride,padding", [(2, 2, "VALID"), (3, 3, "SAME"), (2, 2, 1), (3, 1, "SAME"), (3, 2, 1)])
def test_forced_algorithms_match_twin(name, window, stride, padding):
    """Every algorithm that applies (``blocks`` needs tiling windows) gives the twin's values and
    gradients; the twin with a hand algorithm's name runs the hand forward, bit for bit."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.permutation(2 * 9 * 8 * 3).reshape(2, 9, 8, 3) / 10.0)  # no ties
    g = jnp.asarray(rng.standard_normal(getattr(twin, name)(x, window, stride, padding).shape))
    y_ref, vjp_ref = jax.vjp(lambda x: getattr(twin, name)(x, window, stride, padding), x)
    algorithms = ["auto", "textbook"] + (["blocks"] if window == stride else [])
    for algorithm in algorithms:
        y, vjp = jax.vjp(lambda x: getattr(hand, name)(x, window, stride, padding, algorithm=algorithm), x)
        np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(vjp(g)[0]), np.asarray(vjp_ref(g)[0]), rtol=1e-12, atol=1e-12)
        y_shared = getattr(twin, name)(x, window, stride, padding, algorithm=algorithm)
        np.testing.assert_array_equal(np.asarray(y_shared), np.asarray(y))
    assert hand.pool_algorithm(hand.pool_geometry(name, x, window, stride, padding, 2)) == (
        "blocks" if window == stride else "textbook"
    )


def test_algorithm_errors():
    x = jnp.zeros((1, 6, 6, 2))
    with pytest.raises(ValueError, match=r"max_pool2d: algorithm 'blocks' needs windows that tile the input"):
        hand.max_pool2d(x, 3, 1, algorithm="blocks")
    with pytest.raises(ValueError, match=r"avg_pool1d: algorithm must be one of \('auto', 'textbook', 'blocks'\)"):
        hand.avg_pool1d(x[:, 0], 2, algorithm="plain")
    with pytest.raises(ValueError, match=r"max_pool2d: algorithm must be one of .*or 'plain'"):
        twin.max_pool2d(x, 2, algorithm="fft")


@pytest.mark.parametrize("max_channels", [0, 64])  # 0: the tap loop; 64: lax.reduce_window
def test_tiling_maxima_by_tap_loop_and_by_reduce_window(monkeypatch, max_channels):
    """Both forwards of unpadded tiling windows (funcnn.pooling.ARGMAX_MAX_CHANNELS picks one)
    give the twin's maxima exactly, with NaNs and -inf windows, in 2-D and 1-D."""
    import funcnn.pooling

    monkeypatch.setattr(funcnn.pooling, "ARGMAX_MAX_CHANNELS", {jax.default_backend(): max_channels})
    x = np.random.default_rng(8).normal(size=(2, 6, 8, 3))
    x[0, 2, 3, 0] = np.nan
    x[1, :2, :2, 1] = -np.inf
    for window in (2, (3, 2)):
        xv = jnp.asarray(x[:, :6, :8])
        np.testing.assert_array_equal(np.asarray(hand.max_pool2d(xv, window)), np.asarray(twin.max_pool2d(xv, window)))
    x1 = jnp.asarray(x[:, 0])
    np.testing.assert_array_equal(np.asarray(hand.max_pool1d(x1, 2)), np.asarray(twin.max_pool1d(x1, 2)))
