"""Tests for funcnn/conv.py: hand-written conv rules vs their autodiff twins and finite differences."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from funcnn import conv as hand
from funcnn.conv import conv1d, conv2d, conv_macs, conv_output_size
from funcnn.reference import conv as ref

OPS = {1: (conv1d, ref.conv1d), 2: (conv2d, ref.conv2d)}
C_IN, C_OUT = 2, 3


def _arrays(nd, sizes, ksizes, *, n=2, dtype=jnp.float64, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(n, *sizes, C_IN)), dtype)
    w = jnp.asarray(rng.normal(size=(*ksizes, C_IN, C_OUT)), dtype)
    b = jnp.asarray(rng.normal(size=(C_OUT,)), dtype) if bias else None
    return x, w, b


def _assert_matches_twin(nd, x, w, b, rtol=1e-10, atol=1e-10, algorithm="auto", **kw):
    """Forward equals the twin's (plain ``lax.conv``); vjp cotangents (x, w, b) equal the twin's
    for a random cotangent. ``algorithm`` goes to the hand op only."""
    op, twin = OPS[nd]
    args = (x, w) if b is None else (x, w, b)
    y, vjp = jax.vjp(lambda *a: op(*a, algorithm=algorithm, **kw), *args)
    y_ref, vjp_ref = jax.vjp(lambda *a: twin(*a, **kw), *args)
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    np.testing.assert_allclose(np.asarray(y, np.float64), np.asarray(y_ref, np.float64), rtol=rtol, atol=atol)
    g = jnp.asarray(np.random.default_rng(1).normal(size=y.shape), y.dtype)
    for name, got, want, primal in zip("xwb", vjp(g), vjp_ref(g), args):
        assert got.shape == primal.shape and got.dtype == primal.dtype, name
        np.testing.assert_allclose(
            np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol, err_msg=name
        )
    return y


# --------------------------------------------------------------------------------------
# Parametrized geometry grid: twin agreement + finite differences (float64)
# --------------------------------------------------------------------------------------

GRID_2D = [
    # (stride, padding, dilation)
    (1, "VALID", 1),
    (1, "SAME", 1),
    (2, "SAME", 1),
    (2, "VALID", 1),  # 7x6 input, 3x2 kernel: unread trailing rows/cols
    ((2, 3), 1, 1),
    (3, ((2, 0), (1, 3)), 1),
    (1, "SAME", 2),
    ((1, 2), "VALID", (2, 1)),
    (2, 2, 2),
    (3, "SAME", (1, 2)),
    (1, 4, 1),  # padding larger than k_eff - 1: negative padding in the input-gradient conv
]

GRID_1D = [
    (1, "VALID", 1),
    (2, "SAME", 1),
    (3, "VALID", 1),
    (2, [(0, 3)], 2),
    (1, 3, 1),
    ((2,), 1, (2,)),
]


@pytest.mark.parametrize("stride,padding,dilation", GRID_2D)
def test_conv2d_grid(stride, padding, dilation):
    x, w, b = _arrays(2, (7, 6), (3, 2))
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    _assert_matches_twin(2, x, w, b, **kw)
    check_grads(lambda x, w, b: conv2d(x, w, b, **kw), (x, w, b), order=1, modes=("rev",))


@pytest.mark.parametrize("stride,padding,dilation", GRID_1D)
def test_conv1d_grid(stride, padding, dilation):
    x, w, b = _arrays(1, (9,), (3,))
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    _assert_matches_twin(1, x, w, b, **kw)
    check_grads(lambda x, w, b: conv1d(x, w, b, **kw), (x, w, b), order=1, modes=("rev",))


def test_no_bias_matches_twin():
    for nd, sizes, ks in ((1, (6,), (2,)), (2, (5, 5), (2, 2))):
        x, w, _ = _arrays(nd, sizes, ks, bias=False)
        _assert_matches_twin(nd, x, w, None, stride=2, padding="SAME")
        check_grads(lambda x, w: OPS[nd][0](x, w, stride=2, padding="SAME"), (x, w), order=1, modes=("rev",))


def test_forward_matches_direct_sum():
    """The forward is the cross-correlation formula in the docstring (numpy loops)."""
    x, w, b = _arrays(2, (5, 4), (2, 3))
    s, d, (ph, pw) = (2, 1), (1, 2), ((1, 0), (2, 1))
    y = np.asarray(conv2d(x, w, b, stride=s, padding=(ph, pw), dilation=d))
    xp = np.pad(np.asarray(x), ((0, 0), ph, pw, (0, 0)))
    wn = np.asarray(w)
    want = np.zeros(y.shape)
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            for p in range(2):
                for q in range(3):
                    want[:, i, j] += xp[:, i * s[0] + p * d[0], j * s[1] + q * d[1]] @ wn[p, q]
    np.testing.assert_allclose(y, want + np.asarray(b), rtol=1e-12, atol=1e-12)


def test_gradients_ignore_unread_rows():
    """Rows the forward never reads ((n+pads-k_eff) % stride != 0) get exactly zero gradient."""
    x, w, b = _arrays(1, (8,), (3,))  # VALID, stride 3: windows cover 0..2 and 3..5; 6, 7 unread
    dx = jax.grad(lambda x: conv1d(x, w, b, stride=3).sum())(x)
    np.testing.assert_array_equal(np.asarray(dx[:, 6:]), 0.0)
    assert np.all(np.asarray(dx[:, :6]) != 0.0)


# --------------------------------------------------------------------------------------
# Hypothesis over geometry
# --------------------------------------------------------------------------------------


@st.composite
def _geometry(draw):
    nd = draw(st.sampled_from((1, 2)))
    sizes = tuple(draw(st.sampled_from((1, 3, 5, 7))) for _ in range(nd))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilations = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    kind = draw(st.sampled_from(("VALID", "SAME", "int", "pairs")))
    if kind == "int":
        padding = draw(st.integers(0, 2))
    elif kind == "pairs":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    else:
        padding = kind
    ksizes = []
    for i, n in enumerate(sizes):
        # largest kernel whose dilated extent fits the padded input
        if kind == "VALID":
            room = n
        elif kind == "SAME":
            room = 10**9
        elif kind == "int":
            room = n + 2 * padding
        else:
            room = n + sum(padding[i])
        k_max = min((room - 1) // dilations[i] + 1, n + 1)
        k = draw(st.one_of(st.just(min(n, k_max)), st.integers(1, k_max)))  # kernel = input size often
        ksizes.append(k)
    return nd, sizes, tuple(ksizes), strides, padding, dilations


@settings(max_examples=20, deadline=None)
@given(_geometry(), st.booleans())
def test_geometry_hypothesis(geom, as_int):
    nd, sizes, ksizes, strides, padding, dilations = geom
    # kernel sizes were drawn per dim, so the int form is only valid when every dim agrees
    as_int = as_int and len(set(strides)) == 1 and len(set(dilations)) == 1
    x, w, b = _arrays(nd, sizes, ksizes)
    stride = strides[0] if as_int else strides
    dilation = dilations[0] if as_int else dilations
    if as_int:
        strides, dilations = (stride,) * nd, (dilation,) * nd
    y = _assert_matches_twin(nd, x, w, b, stride=stride, padding=padding, dilation=dilation)
    want = tuple(
        conv_output_size(n, k, s, padding if not isinstance(padding, tuple) else padding[i], d)
        for i, (n, k, s, d) in enumerate(zip(sizes, ksizes, strides, dilations))
    )
    assert y.shape == (2, *want, C_OUT)


# --------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 4, 5, 7, 8])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_same_is_ceil(n, stride):
    assert conv_output_size(n, 3, stride, "SAME") == math.ceil(n / stride)
    assert conv_output_size(n, 2, stride, "SAME", dilation=2) == math.ceil(n / stride)


def test_same_output_shape():
    x, w, b = _arrays(2, (7, 5), (3, 3))
    assert conv2d(x, w, b, stride=(2, 3), padding="SAME").shape == (2, 4, 2, C_OUT)
    x1, w1, b1 = _arrays(1, (7,), (4,))
    assert conv1d(x1, w1, b1, stride=3, padding="SAME", dilation=2).shape == (2, 3, C_OUT)


def test_conv_output_size_values():
    assert conv_output_size(32, 3) == 30
    assert conv_output_size(32, 3, padding="SAME") == 32
    assert conv_output_size(32, 5, stride=2) == 14  # floor(27/2)+1
    assert conv_output_size(7, 3, stride=2, padding=1) == 4  # floor((7+2-3)/2)+1
    assert conv_output_size(10, 3, dilation=2) == 6  # k_eff = 5
    assert conv_output_size(5, 2, stride=3, padding=(1, 2)) == 3  # floor((5+3-2)/3)+1
    assert conv_output_size(5, 2, stride=3, padding=[(1, 2)]) == 3
    assert conv_output_size(4, 4) == 1  # kernel = input size


def test_conv_macs_values():
    assert conv_macs((8, 32, 32, 3), (3, 3, 3, 16), padding="SAME") == 8 * 32 * 32 * 9 * 3 * 16
    assert conv_macs((128, 28, 28, 1), (5, 5, 1, 6)) == 128 * 24 * 24 * 25 * 6
    assert conv_macs((4, 10, 2), (3, 2, 5), stride=2) == 4 * 4 * 3 * 2 * 5
    assert conv_macs((2, 7, 6, 4), (3, 2, 4, 8), stride=(2, 3), padding=1, dilation=(1, 2)) == 2 * 4 * 2 * 6 * 4 * 8
    assert conv_macs((0, 5, 5, 1), (3, 3, 1, 1)) == 0


# --------------------------------------------------------------------------------------
# Transformations, dtypes, edge sizes, higher order
# --------------------------------------------------------------------------------------


def test_jit_matches_eager():
    x, w, b = _arrays(2, (5, 5), (3, 3))
    kw = dict(stride=2, padding="SAME", dilation=1)
    f = jax.jit(jax.value_and_grad(lambda x, w, b: jnp.sum(conv2d(x, w, b, **kw) ** 2), argnums=(0, 1, 2)))
    g = jax.value_and_grad(lambda x, w, b: jnp.sum(ref.conv2d(x, w, b, **kw) ** 2), argnums=(0, 1, 2))
    (v1, g1), (v2, g2) = f(x, w, b), g(x, w, b)
    np.testing.assert_allclose(v1, v2, rtol=1e-10)
    for a, c in zip(g1, g2):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-10)


def test_vmap():
    x, w, b = _arrays(1, (6,), (3,), n=2)
    xs = jnp.stack([x, 2 * x, -x])  # vmapped axis over the batch of inputs
    ws = jnp.stack([w, -w, 0.5 * w])
    f = jax.vmap(lambda x, w: conv1d(x, w, b, stride=2, padding=1))
    ys = f(xs, ws)
    for i in range(3):
        np.testing.assert_allclose(ys[i], ref.conv1d(xs[i], ws[i], b, stride=2, padding=1), rtol=1e-12)
    grads = jax.vmap(jax.grad(lambda x, w: jnp.sum(conv1d(x, w, b, stride=2, padding=1) ** 2), (0, 1)))(xs, ws)
    grads_ref = jax.vmap(jax.grad(lambda x, w: jnp.sum(ref.conv1d(x, w, b, stride=2, padding=1) ** 2), (0, 1)))(xs, ws)
    for a, c in zip(grads, grads_ref):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-10)


def test_float32_matches_twin():
    # Pinned precision: with lax's default a GPU runs float32 convolutions in TF32, which
    # rounds the hand algorithm and the twin's differently (README, "Precision").
    x, w, b = _arrays(2, (6, 6), (3, 3), dtype=jnp.float32)
    _assert_matches_twin(2, x, w, b, rtol=1e-5, atol=1e-5, stride=2, padding="SAME", precision="highest")


# bfloat16 keeps 8 significant bits (~2.4 decimal digits): rounding to nearest moves a value
# by at most U = 2**-8 (0.4%) of itself.
BF16_U = 2.0**-8


@pytest.mark.parametrize("nd", [1, 2])
def test_bfloat16_matches_float32_twin(nd):
    """conv in bfloat16: bfloat16 outputs and cotangents whose values are the float32 twin's
    on float32 copies of the same inputs, to bfloat16's accuracy."""
    x, w, b = _arrays(nd, (5,) * nd, (3,) * nd, dtype=jnp.bfloat16)
    op, twin = OPS[nd]
    y, vjp = jax.vjp(lambda x, w, b: op(x, w, b, padding="SAME"), x, w, b)
    assert y.dtype == jnp.bfloat16 and y.shape == (2, *(5,) * nd, C_OUT)
    g = jnp.asarray(np.random.default_rng(1).normal(size=y.shape), jnp.bfloat16)  # random cotangent
    cts = vjp(g)
    for ct, p in zip(cts, (x, w, b)):
        assert ct.dtype == jnp.bfloat16 and ct.shape == p.shape
        assert np.all(np.isfinite(np.asarray(ct, np.float32)))
    x32, w32, b32, g32 = (a.astype(jnp.float32) for a in (x, w, b, g))  # exact copies
    y_ref, vjp_ref = jax.vjp(
        lambda x, w, b: twin(x, w, b, padding="SAME", precision="highest"), x32, w32, b32
    )
    # Each output and cotangent entry is a sum of <= 27 products (3^nd taps x 2 or 3
    # channels; dw and db sum over the 2 * 5^nd positions). XLA's convolutions accumulate
    # bfloat16 in float32 and round once; the tap-sum and 2x2-block paths add a few partial
    # results in bfloat16, and the bias add rounds once more: a handful of roundings of
    # <= U each, of partial sums no larger than about the largest |entry|. So
    # |err| <= k U (|ref| + max|ref|) with k = 4 (measured <= 1.0 in those units). At the
    # largest entry that allows 8U = 3.1%, so a result 10% off fails.
    k = 4
    for got, want in zip((y, *cts), (y_ref, *vjp_ref(g32))):
        want = np.asarray(want)
        np.testing.assert_allclose(
            np.asarray(got, np.float32), want, rtol=k * BF16_U, atol=k * BF16_U * np.abs(want).max()
        )


@pytest.mark.parametrize("nd", [1, 2])
def test_zero_size_batch(nd):
    x, w, b = _arrays(nd, (5,) * nd, (2,) * nd, n=0)
    op = OPS[nd][0]
    y, vjp = jax.vjp(lambda x, w, b: op(x, w, b, stride=2), x, w, b)
    assert y.shape == (0, *(2,) * nd, C_OUT)
    dx, dw, db = vjp(jnp.zeros_like(y))
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, jnp.zeros_like(w))
    np.testing.assert_array_equal(db, jnp.zeros_like(b))


def test_second_order_matches_twin():
    """The backward rules are convolutions, so they differentiate again (grad of grad)."""
    x, w, b = _arrays(2, (5, 4), (2, 2))
    kw = dict(stride=2, padding=1, dilation=(1, 2))

    def grad_norm(op):
        def f(x, w, b):
            gx, gw = jax.grad(lambda x, w: jnp.sum(jnp.sin(op(x, w, b, **kw))), (0, 1))(x, w)
            return jnp.sum(gx**2) + jnp.sum(gw**2)
        return jax.grad(f, (0, 1, 2))

    for a, c in zip(grad_norm(conv2d)(x, w, b), grad_norm(ref.conv2d)(x, w, b)):
        np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-10)


def test_reference_exports_same_names():
    for name in hand.__all__:
        assert hasattr(ref, name), name


# --------------------------------------------------------------------------------------
# Bad input: each error, with the message it carries
# --------------------------------------------------------------------------------------


def _f32(*shape):
    return jnp.zeros(shape, jnp.float32)


@pytest.mark.parametrize("module", [hand, ref], ids=["hand", "reference"])
def test_errors(module):
    c2, c1 = module.conv2d, module.conv1d
    x, w = _f32(8, 32, 32, 3), _f32(3, 3, 4, 16)
    msg = r"conv2d: x has 3 channels but w expects 4 \(x.shape=\(8, 32, 32, 3\), w.shape=\(3, 3, 4, 16\)\)"
    with pytest.raises(ValueError, match=msg):
        c2(x, w)
    with pytest.raises(ValueError, match=r"conv2d: x must have rank 4 \(N, H, W, C_in\), got rank 3 \(x.shape=\(8, 32, 3\)\)"):
        c2(_f32(8, 32, 3), _f32(3, 3, 3, 4))
    with pytest.raises(ValueError, match=r"conv1d: w must have rank 3 \(K, C_in, C_out\), got rank 4"):
        c1(_f32(2, 9, 3), _f32(1, 3, 3, 4))
    with pytest.raises(ValueError, match=r"conv2d: b must have shape \(4,\) .*got b.shape=\(3,\)"):
        c2(_f32(1, 5, 5, 3), _f32(3, 3, 3, 4), _f32(3))
    with pytest.raises(ValueError, match=r"conv2d: kernel of effective size 5 .*larger than the padded input 4.*x.shape=\(1, 4, 4, 3\)"):
        c2(_f32(1, 4, 4, 3), _f32(3, 3, 3, 4), dilation=2)
    with pytest.raises(ValueError, match=r"conv1d: kernel of effective size 6 .*larger than the padded input 5"):
        c1(_f32(1, 3, 2), _f32(6, 2, 2), padding=1)
    with pytest.raises(ValueError, match=r"conv2d: stride must be >= 1, got 0"):
        c2(_f32(1, 5, 5, 3), _f32(3, 3, 3, 4), stride=0)
    with pytest.raises(ValueError, match=r"conv2d: dilation must be >= 1, got \(1, -1\)"):
        c2(_f32(1, 5, 5, 3), _f32(3, 3, 3, 4), dilation=(1, -1))
    with pytest.raises(ValueError, match=r"conv1d: stride must be an int or a tuple of 1 ints"):
        c1(_f32(1, 5, 3), _f32(3, 3, 4), stride=(1, 1))
    with pytest.raises(ValueError, match=r"conv2d: unknown padding 'FULL'"):
        c2(_f32(1, 5, 5, 3), _f32(3, 3, 3, 4), padding="FULL")
    with pytest.raises(ValueError, match=r"conv2d: explicit padding must be 2 \(lo, hi\) pair"):
        c2(_f32(1, 5, 5, 3), _f32(3, 3, 3, 4), padding=[(1, 1)])
    with pytest.raises(ValueError, match=r"conv2d: padding must be >= 0"):
        c2(_f32(1, 5, 5, 3), _f32(3, 3, 3, 4), padding=-1)
    with pytest.raises(TypeError, match=r"conv2d: x must have a floating-point dtype, got int32"):
        c2(jnp.zeros((1, 5, 5, 3), jnp.int32), _f32(3, 3, 3, 4))
    with pytest.raises(TypeError, match=r"conv1d: w must have a floating-point dtype, got int32"):
        c1(_f32(1, 5, 3), jnp.zeros((3, 3, 4), jnp.int32))
    with pytest.raises(TypeError, match=r"conv2d: b must have a floating-point dtype"):
        c2(_f32(1, 5, 5, 3), _f32(3, 3, 3, 4), jnp.zeros((4,), jnp.int32))
    with pytest.raises(TypeError, match=r"conv2d: arrays must share one dtype"):
        c2(_f32(1, 5, 5, 3), jnp.zeros((3, 3, 3, 4), jnp.float64))
    with pytest.raises(ValueError, match=r"conv2d: w's spatial \(kernel\) sizes must be >= 1"):
        c2(_f32(1, 5, 5, 3), _f32(0, 3, 3, 4))


def test_geometry_helper_errors():
    with pytest.raises(ValueError, match=r"conv_output_size: stride must be >= 1, got 0"):
        conv_output_size(5, 3, stride=0)
    with pytest.raises(ValueError, match=r"conv_output_size: k must be >= 1"):
        conv_output_size(5, 0)
    with pytest.raises(ValueError, match=r"conv_output_size: unknown padding 'same-ish'"):
        conv_output_size(5, 3, padding="same-ish")
    with pytest.raises(ValueError, match=r"conv_output_size: kernel of effective size 7 .*larger than the padded input 5"):
        conv_output_size(5, 4, dilation=2)
    with pytest.raises(ValueError, match=r"conv_macs: x has 3 channels but w expects 1"):
        conv_macs((1, 5, 5, 3), (3, 3, 1, 2))
    with pytest.raises(ValueError, match=r"conv_macs: w_shape must have rank 3 .* or 4 .*got rank 2"):
        conv_macs((1, 5, 3), (3, 3))
    with pytest.raises(ValueError, match=r"conv_macs: x must have rank 4"):
        conv_macs((1, 5, 3), (3, 3, 3, 2))
    with pytest.raises(TypeError, match=r"conv_macs: x_shape must be a tuple of ints"):
        conv_macs("NHWC", (3, 3, 3, 2))


# --------------------------------------------------------------------------------------
# Every algorithm of funcnn.conv.CONV_ALGORITHMS, forced, agrees with the twin
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride,padding,dilation", GRID_2D)
@pytest.mark.parametrize("algorithm", ["textbook", "taps"])
def test_forced_algorithms(stride, padding, dilation, algorithm):
    """Forward, dx and dw by each algorithm that applies to every geometry (1-D and 2-D)."""
    x, w, b = _arrays(2, (7, 6), (3, 2))
    _assert_matches_twin(2, x, w, b, stride=stride, padding=padding, dilation=dilation, algorithm=algorithm)
    x1, w1, b1 = _arrays(1, (9,), (3,), bias=False)
    _assert_matches_twin(
        1, x1, w1, b1, stride=stride if isinstance(stride, int) else 2, padding="SAME", algorithm=algorithm
    )


@pytest.mark.parametrize("padding", ["VALID", "SAME", 2, ((2, 0), (1, 3)), 4])
@pytest.mark.parametrize("sizes,ksizes", [((7, 6), (3, 3)), ((8, 9), (5, 4)), ((5, 5), (3, 5)), ((6, 5), (1, 2))])
def test_space_to_depth_path(padding, sizes, ksizes):
    """Stride-1 convolutions on 2x2 pixel blocks (forward, dx and dw; odd and even sizes,
    kernels smaller than a block, padding beyond the kernel, so dx's padding is negative)
    agree with the twin."""
    x, w, b = _arrays(2, sizes, ksizes)
    _assert_matches_twin(2, x, w, b, padding=padding, algorithm="space_to_depth")


def test_algorithm_choice_and_errors():
    """``auto`` resolves per sum with the backend's thresholds; other backends run textbook."""
    from funcnn.conv import conv_algorithm

    lenet1 = conv_algorithm((5, 5, 1, 6), (1, 1), (1, 1), backend="cpu")
    assert (lenet1.forward, lenet1.input_grad, lenet1.kernel_grad) == ("space_to_depth", "taps", "space_to_depth")
    lenet2 = conv_algorithm((5, 5, 6, 16), (1, 1), (1, 1), backend="cpu")
    assert (lenet2.forward, lenet2.input_grad, lenet2.kernel_grad) == ("space_to_depth",) * 3
    wide = conv_algorithm((3, 3, 64, 64), (1, 1), (1, 1), backend="cpu")
    assert (wide.forward, wide.input_grad, wide.kernel_grad) == ("textbook",) * 3
    strided = conv_algorithm((3, 3, 3, 8), (2, 2), (1, 1), backend="cpu")
    assert (strided.forward, strided.input_grad, strided.kernel_grad) == ("patches", "taps", "patches")
    # MNIST-1D's CNN (1-D, 5 taps, stride 2): patch-matrix matmuls up to 128 values a patch
    for c_in, parts in ((1, ("patches", "taps", "patches")), (25, ("patches", "taps", "patches")),
                        (32, ("textbook",) * 3)):
        p = conv_algorithm((1, 5, c_in, 25), (1, 2), (1, 1), backend="cpu")
        assert (p.forward, p.input_grad, p.kernel_grad) == parts, c_in
    # stride-1 2-D convolutions without 2x2 blocks keep the XLA convolution
    mid = conv_algorithm((3, 3, 10, 16), (1, 1), (1, 1), backend="cpu")
    assert (mid.forward, mid.input_grad, mid.kernel_grad) == ("textbook",) * 3
    gpu = conv_algorithm((5, 5, 1, 6), (1, 1), (1, 1), backend="gpu")
    assert (gpu.forward, gpu.input_grad, gpu.kernel_grad) == ("textbook",) * 3
    assert str(lenet1) == "auto (forward=space_to_depth, dx=taps, dw=space_to_depth)"
    x, w, _ = _arrays(2, (7, 6), (3, 3))
    with pytest.raises(ValueError, match=r"conv2d: algorithm 'space_to_depth' needs stride 1 and dilation 1"):
        hand.conv2d(x, w, stride=2, algorithm="space_to_depth")
    with pytest.raises(ValueError, match=r"conv2d: algorithm must be one of \('auto', 'textbook'"):
        hand.conv2d(x, w, algorithm="winograd")
    with pytest.raises(ValueError, match=r"conv1d: algorithm must be one of .*got 'plain'"):
        hand.conv1d(x[:, 0], w[0], algorithm="plain")
    with pytest.raises(ValueError, match=r"conv2d: algorithm must be one of .*or 'plain'"):
        ref.conv2d(x, w, algorithm="fft")


@pytest.mark.parametrize("algorithm", ["auto", "textbook", "taps", "space_to_depth", "patches"])
def test_twin_shares_the_hand_forward(algorithm):
    """``funcnn.reference.conv2d(..., algorithm=name)`` runs the hand op's forward sum (same
    values bit for bit) and differentiates it with jax.grad (no custom rule)."""
    x, w, b = _arrays(2, (8, 7), (3, 3))
    y_hand = hand.conv2d(x, w, b, padding="SAME", algorithm=algorithm)
    y_twin = ref.conv2d(x, w, b, padding="SAME", algorithm=algorithm)
    np.testing.assert_array_equal(np.asarray(y_hand), np.asarray(y_twin))
    jaxpr = str(jax.make_jaxpr(lambda x: ref.conv2d(x, w, b, padding="SAME", algorithm=algorithm))(x))
    assert "custom_vjp" not in jaxpr
    g_hand = jax.grad(lambda x: jnp.sum(jnp.sin(hand.conv2d(x, w, b, padding="SAME", algorithm=algorithm))))(x)
    g_twin = jax.grad(lambda x: jnp.sum(jnp.sin(ref.conv2d(x, w, b, padding="SAME", algorithm=algorithm))))(x)
    np.testing.assert_allclose(np.asarray(g_hand), np.asarray(g_twin), rtol=1e-10, atol=1e-10)


def test_many_channels_matches_twin():
    """C_in above the scatter threshold (default path for wide layers), float32 and float64."""
    rng = np.random.default_rng(3)
    for dtype, tol in ((jnp.float64, 1e-10), (jnp.float32, 2e-4)):
        x = jnp.asarray(rng.normal(size=(2, 6, 5, 8)), dtype)
        w = jnp.asarray(rng.normal(size=(3, 3, 8, 4)), dtype)
        b = jnp.asarray(rng.normal(size=(4,)), dtype)
        for kw in (dict(padding="SAME"), dict(stride=2, padding=1, dilation=(1, 2))):
            _assert_matches_twin(2, x, w, b, rtol=tol, atol=tol, precision="highest", **kw)


# --------------------------------------------------------------------------------------
# funcnn._ops.xla: the XLA CPU default flag (makes XLA's own conv kernels the CPU path)
# --------------------------------------------------------------------------------------


def test_xla_defaults_respect_user_and_opt_out(monkeypatch):
    from funcnn._ops import xla as _xla

    monkeypatch.setenv("XLA_FLAGS", f"--foo {_xla.YNN_FLAG}=conv")
    assert _xla.configure_xla_cpu_defaults() == "user-set"
    assert _xla.configure_xla_cpu_defaults.__module__ == "funcnn._ops.xla"
    monkeypatch.setenv("FUNCNN_NO_XLA_DEFAULTS", "1")
    monkeypatch.setenv("XLA_FLAGS", "")
    assert _xla.configure_xla_cpu_defaults() == "opted-out"
    monkeypatch.delenv("FUNCNN_NO_XLA_DEFAULTS")
    jax.devices()  # backend up: XLA has read its flags
    assert _xla.configure_xla_cpu_defaults() == "too-late"
    import os

    assert os.environ["XLA_FLAGS"] == ""


def test_xla_defaults_applied_in_fresh_process():
    import os
    import subprocess
    import sys

    # Load funcnn/_ops/xla.py alone (importing the package would already apply the defaults).
    path = os.path.join(os.path.dirname(hand.__file__), "_ops", "xla.py")
    code = (
        "import os, importlib.util as u; spec = u.spec_from_file_location('x', %r); "
        "m = u.module_from_spec(spec); spec.loader.exec_module(m); c = m.configure_xla_cpu_defaults; "
        "s = c(); import jax; jax.devices(); print(s, repr(os.environ['XLA_FLAGS']), c())"
    ) % path
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FUNCNN_NO_XLA_DEFAULTS")}
    env["XLA_FLAGS"] = "--xla_cpu_enable_fast_math=false"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [
        "applied", "'--xla_cpu_enable_fast_math=false", "--xla_cpu_experimental_ynn_fusion_type='", "user-set"
    ]


@pytest.mark.parametrize("n,k,s,d,pads", [(7, 3, 1, 1, (0, 0)), (7, 3, 1, 1, (1, 1)), (8, 5, 1, 1, (2, 2)),
                                          (7, 3, 2, 1, (1, 1)), (9, 3, 1, 2, (2, 2)), (7, 3, 1, 1, (4, 4)),
                                          (6, 2, 3, 1, (2, 0)), (5, 3, 1, 1, (0, 3))])
def test_always_read_tap_brute_force(n, k, s, d, pads):
    """The bias row's tap reads a real input pixel at every output position (checked against
    the index arithmetic of every tap); None exactly when no tap does."""
    from funcnn.conv import _always_read_tap

    lo, hi = pads
    out = (n + lo + hi - (d * (k - 1) + 1)) // s + 1
    real = [t for t in range(k) if all(0 <= i * s + t * d - lo < n for i in range(out))]
    got = _always_read_tap((n, n), (k, k), (s, s), (pads, pads), (d, d), (out, out))
    assert got == ((real[0], real[0]) if real else None)


@pytest.mark.parametrize("algorithm,padding", [("space_to_depth", "VALID"), ("space_to_depth", "SAME"),
                                               ("patches", ((1, 2), (0, 1)))])
def test_bias_gradient_from_the_kernel_gradient(monkeypatch, algorithm, padding):
    """Where BIAS_ROW lists the kernel gradient's algorithm (CPU), the bias gradient is its
    ones-channel row: no separate sum runs (sum_leading would raise), and it equals the twin's."""
    import funcnn.conv as conv_mod

    if jax.default_backend() != "cpu":
        pytest.skip("BIAS_ROW lists CPU only")

    def no_sum(*a, **k):
        raise AssertionError("a separate bias sum ran")

    monkeypatch.setattr(conv_mod, "sum_leading", no_sum)
    x, w, b = _arrays(2, (7, 6), (3, 3))
    _assert_matches_twin(2, x, w, b, padding=padding, algorithm=algorithm)
    monkeypatch.setitem(conv_mod.BIAS_ROW, "cpu", ())
    with pytest.raises(AssertionError, match="a separate bias sum ran"):
        _assert_matches_twin(2, x, w, b, padding=padding, algorithm=algorithm)
