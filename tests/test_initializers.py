"""Tests for funcnn.nn.initializers: variances, orthogonality, fans, gains, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from funcnn import initializers as ini

KEY = jax.random.PRNGKey(0)

# Statistics budget. For n i.i.d. draws the sample variance has relative standard error
# sqrt((kurtosis - 1) / n) <= sqrt(2 / n) (normal: kurtosis 3; uniform and truncated
# normal are lighter-tailed). With n >= 110_592 that is <= 0.43%, so RTOL = 3% is about
# 7 standard errors: a wrong formula (off by a factor such as 2, 3, or fan_in vs fan_avg
# with these shapes) fails, sampling noise does not.
RTOL = 0.03
DENSE = (384, 288)  # fan_in 384, fan_out 288, fan_avg 336; n = 110_592
CONV = (3, 3, 96, 128)  # receptive 9: fan_in 864, fan_out 1152, fan_avg 1008; n = 110_592


def _fans(shape):
    r = math.prod(shape[:-2])
    return r * shape[-2], r * shape[-1]


def _expected_var(name, shape):
    fi, fo = _fans(shape)
    fa = (fi + fo) / 2
    return {
        "glorot_normal": 1 / fa,
        "glorot_uniform": 1 / fa,
        "he_normal": 2 / fi,
        "he_uniform": 2 / fi,
        "lecun_normal": 1 / fi,
        "lecun_uniform": 1 / fi,
    }[name]


def _check_moments(w, var):
    w = np.asarray(w, np.float64)
    n = w.size
    assert abs(w.var() / var - 1) < RTOL, (w.var(), var)
    # mean: standard error sqrt(var / n); allow 6 of them
    assert abs(w.mean()) < 6 * math.sqrt(var / n)


# ---------------------------------------------------------------------------------------
# fans
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, fans",
    [
        ((7,), (7, 7)),
        ((3, 5), (3, 5)),
        ((4, 3, 5), (12, 20)),  # conv1d (K, C_in, C_out)
        ((3, 2, 3, 5), (18, 30)),  # conv2d (KH, KW, C_in, C_out)
        ((2, 2, 2, 3, 5), (24, 40)),
    ],
)
def test_fan_in_fan_out(shape, fans):
    assert ini.fan_in_fan_out(shape) == fans
    assert all(type(f) is int for f in ini.fan_in_fan_out(shape))


def test_fan_in_fan_out_errors():
    with pytest.raises(ValueError, match=r"fan_in_fan_out: shape must have rank >= 1"):
        ini.fan_in_fan_out(())
    with pytest.raises(ValueError, match=r"fan_in_fan_out: every dimension must be >= 1"):
        ini.fan_in_fan_out((3, 0))
    with pytest.raises(ValueError, match=r"fan_in_fan_out: shape dimensions must be >= 0"):
        ini.fan_in_fan_out((3, -1))
    with pytest.raises(TypeError, match=r"fan_in_fan_out: shape must be a tuple of ints"):
        ini.fan_in_fan_out(5)
    with pytest.raises(TypeError, match=r"fan_in_fan_out: shape must contain ints"):
        ini.fan_in_fan_out((3.0, 2))


# ---------------------------------------------------------------------------------------
# empirical variance of every initializer
# ---------------------------------------------------------------------------------------

NAMED = ["glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal",
         "lecun_uniform"]


@pytest.mark.parametrize("shape", [DENSE, CONV], ids=["dense", "conv"])
@pytest.mark.parametrize("name", NAMED)
def test_named_initializer_variance(name, shape):
    w = getattr(ini, name)()(KEY, shape)
    assert w.shape == shape and w.dtype == jnp.float32
    _check_moments(w, _expected_var(name, shape))
    if name.endswith("uniform"):
        limit = math.sqrt(3 * _expected_var(name, shape))
        assert float(jnp.max(jnp.abs(w))) <= limit * (1 + 1e-6)
        # and the bound is nearly reached (not, e.g., half the interval)
        assert float(jnp.max(jnp.abs(w))) > 0.99 * limit


@pytest.mark.parametrize("name", NAMED)
def test_gain_multiplies_std(name):
    g = 1.7
    w1 = getattr(ini, name)()(KEY, DENSE)
    wg = getattr(ini, name)(gain=g)(KEY, DENSE)
    # same key, same draws: exactly scaled by g (up to float rounding)
    np.testing.assert_allclose(np.asarray(wg), g * np.asarray(w1), rtol=1e-5, atol=1e-7)
    _check_moments(wg, g**2 * _expected_var(name, DENSE))


def test_normal_variance_and_default():
    _check_moments(ini.normal()(KEY, DENSE), 1.0)
    _check_moments(ini.normal(0.01)(KEY, DENSE), 1e-4)


def test_uniform_is_symmetric_interval():
    w = ini.uniform(0.5)(KEY, DENSE)
    _check_moments(w, 0.25 / 3)
    assert float(w.min()) >= -0.5 and float(w.max()) <= 0.5
    assert float(w.min()) < -0.49 and float(w.max()) > 0.49


@pytest.mark.parametrize("distribution", ini.DISTRIBUTIONS)
@pytest.mark.parametrize("mode", ini.MODES)
def test_variance_scaling(mode, distribution):
    scale = 1.5
    w = ini.variance_scaling(scale, mode, distribution)(KEY, CONV)
    fi, fo = _fans(CONV)
    fan = {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2}[mode]
    var = scale / fan
    _check_moments(w, var)
    wmax = float(jnp.max(jnp.abs(w)))
    if distribution == "truncated_normal":
        bound = 2 * math.sqrt(var) / 0.87962566103423978
        assert wmax <= bound * (1 + 1e-6)
    elif distribution == "uniform":
        assert wmax <= math.sqrt(3 * var) * (1 + 1e-6)
    else:  # untruncated: with 110k draws some exceed 3 sigma (P ~ 0.27% each)
        assert wmax > 3 * math.sqrt(var)


def test_named_normals_are_untruncated():
    # He normal documents the paper's plain Gaussian: draws beyond 2 sigma exist (~4.6%)
    w = np.asarray(ini.he_normal()(KEY, DENSE))
    frac = np.mean(np.abs(w) > 2 * math.sqrt(2 / DENSE[0]))
    assert 0.035 < frac < 0.057


def test_zeros_and_constant():
    z = ini.zeros()(KEY, (2, 3), jnp.int32)
    assert z.shape == (2, 3) and z.dtype == jnp.int32 and not z.any()
    c = ini.constant(0.25)(KEY, (4,), jnp.float64)
    assert c.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(c), np.full(4, 0.25))
    assert ini.zeros()(KEY, ()).shape == ()
    assert ini.normal()(KEY, (0, 3)).shape == (0, 3)
    with pytest.raises(TypeError, match=r"constant: value must be a real number"):
        ini.constant("1")


# ---------------------------------------------------------------------------------------
# determinism and dtypes
# ---------------------------------------------------------------------------------------

ALL_RANDOM = [
    ("normal", lambda: ini.normal(0.1)),
    ("uniform", lambda: ini.uniform(0.1)),
    ("glorot_normal", ini.glorot_normal),
    ("glorot_uniform", ini.glorot_uniform),
    ("he_normal", ini.he_normal),
    ("he_uniform", ini.he_uniform),
    ("lecun_normal", ini.lecun_normal),
    ("lecun_uniform", ini.lecun_uniform),
    ("orthogonal", ini.orthogonal),
    ("variance_scaling", lambda: ini.variance_scaling(1.0, "fan_avg", "truncated_normal")),
]


@pytest.mark.parametrize("name, make", ALL_RANDOM, ids=[n for n, _ in ALL_RANDOM])
def test_deterministic_in_key(name, make):
    init = make()
    a = init(jax.random.PRNGKey(3), (6, 5))
    b = init(jax.random.PRNGKey(3), (6, 5))
    c = init(jax.random.PRNGKey(4), (6, 5))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    # new-style typed keys work too
    d = init(jax.random.key(3), (6, 5))
    assert d.shape == (6, 5)


@pytest.mark.parametrize("name, make", ALL_RANDOM, ids=[n for n, _ in ALL_RANDOM])
def test_dtypes(name, make):
    # float32 is the default everywhere above and float64 is used by the orthogonality and
    # gain tests; the half-precision path is checked here.
    w = make()(KEY, (3, 4, 5), jnp.bfloat16)
    assert w.dtype == jnp.bfloat16 and w.shape == (3, 4, 5)
    assert bool(jnp.all(jnp.isfinite(w)))
    assert float(jnp.std(w.astype(jnp.float32))) > 0


def test_orthogonal_float16():
    # half precision: the QR runs in float32, then casts
    w = ini.orthogonal()(KEY, (6, 4), jnp.float16)
    assert w.dtype == jnp.float16
    m = np.asarray(w, np.float64)
    np.testing.assert_allclose(m.T @ m, np.eye(4), atol=5e-3)


@pytest.mark.parametrize("name, make", ALL_RANDOM, ids=[n for n, _ in ALL_RANDOM])
def test_integer_dtype_rejected(name, make):
    with pytest.raises(TypeError, match=rf"{name}: random initializers need a floating dtype"):
        make()(KEY, (3, 4), jnp.int32)


def test_jit_with_static_shape():
    init = jax.jit(ini.he_normal(), static_argnums=(1, 2))
    np.testing.assert_allclose(  # same draws; jit may fuse the scaling differently
        np.asarray(init(KEY, (4, 3), jnp.float32)), np.asarray(ini.he_normal()(KEY, (4, 3))),
        rtol=1e-6,
    )


# ---------------------------------------------------------------------------------------
# orthogonal
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(12, 5), (5, 12), (3, 3, 2, 20), (2, 2, 3, 5)],
                         ids=["tall", "wide", "conv-wide", "conv-tall"])
def test_orthogonal(shape):
    for g in (1.0, 2.5):
        w = ini.orthogonal(g)(KEY, shape, jnp.float64)
        assert w.shape == shape and w.dtype == jnp.float64
        m = np.asarray(w).reshape(-1, shape[-1])  # (receptive x C_in, C_out)
        rows, cols = m.shape
        if rows >= cols:  # orthonormal columns
            np.testing.assert_allclose(m.T @ m, g**2 * np.eye(cols), atol=1e-12)
        else:  # orthonormal rows
            np.testing.assert_allclose(m @ m.T, g**2 * np.eye(rows), atol=1e-12)


def test_orthogonal_float32_and_sign_fix():
    w = np.asarray(ini.orthogonal()(KEY, (64, 64)), np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(64), atol=1e-5)
    # The documented construction: A ~ N(0, 1) of shape (max, min) from the same key,
    # A = Q R, W = Q sign(diag R). Then W^T A = sign(diag R) R is upper triangular with a
    # positive diagonal (the sign fix that makes W Haar-distributed).
    a = np.asarray(jax.random.normal(KEY, (12, 5), jnp.float64))
    w = np.asarray(ini.orthogonal()(KEY, (12, 5), jnp.float64))
    r = w.T @ a
    np.testing.assert_allclose(np.tril(r, -1), 0, atol=1e-12)
    assert np.all(np.diag(r) > 0)


def test_orthogonal_errors():
    with pytest.raises(ValueError, match=r"orthogonal: shape must have rank >= 2"):
        ini.orthogonal()(KEY, (5,))
    with pytest.raises(ValueError, match=r"orthogonal: gain must be finite and >= 0"):
        ini.orthogonal(-1.0)


# ---------------------------------------------------------------------------------------
# argument errors
# ---------------------------------------------------------------------------------------


def test_variance_scaling_errors():
    with pytest.raises(ValueError, match=r"variance_scaling: unknown mode 'fan'; expected one of "
                       r"'fan_in', 'fan_out', 'fan_avg'"):
        ini.variance_scaling(1.0, "fan")
    with pytest.raises(ValueError, match=r"variance_scaling: unknown distribution 'cauchy'; "
                       r"expected one of 'normal', 'truncated_normal', 'uniform'"):
        ini.variance_scaling(1.0, "fan_in", "cauchy")
    with pytest.raises(ValueError, match=r"variance_scaling: scale must be finite and >= 0"):
        ini.variance_scaling(-1.0)
    with pytest.raises(ValueError, match=r"variance_scaling: shape must have rank >= 1"):
        ini.variance_scaling(1.0)(KEY, ())
    with pytest.raises(ValueError, match=r"he_normal: shape must have rank >= 1"):
        ini.he_normal()(KEY, ())
    with pytest.raises(ValueError, match=r"glorot_uniform: every dimension must be >= 1"):
        ini.glorot_uniform()(KEY, (0, 4))


def test_scalar_argument_errors():
    with pytest.raises(ValueError, match=r"normal: stddev must be finite and >= 0"):
        ini.normal(-0.1)
    with pytest.raises(ValueError, match=r"uniform: scale must be finite and >= 0"):
        ini.uniform(float("nan"))
    with pytest.raises(ValueError, match=r"he_uniform: gain must be finite and >= 0"):
        ini.he_uniform(gain=-2.0)
    with pytest.raises(TypeError, match=r"lecun_normal: gain must be a real number"):
        ini.lecun_normal(gain="relu")
    with pytest.raises(TypeError, match=r"normal: shape must be a tuple of ints"):
        ini.normal()(KEY, 5)


# ---------------------------------------------------------------------------------------
# gains
# ---------------------------------------------------------------------------------------

_SQRT2 = math.sqrt(2.0)

# numpy versions of the activations (definitions of the core issue), float64
NP_ACT = {
    "linear": lambda z: z,
    "logistic": special.expit,
    "tanh": np.tanh,
    "hard_logistic": lambda z: np.clip(0.25 * z + 0.5, 0, 1),
    "hard_tanh": lambda z: np.clip(z, -1, 1),
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z, negative_slope=0.01: np.where(z > 0, z, negative_slope * z),
    "prelu": lambda z, alpha=0.25: np.where(z > 0, z, alpha * z),
    "elu": lambda z, alpha=1.0: np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0))),
    "swish": lambda z, beta=1.0: z * special.expit(beta * z),
    "softplus": lambda z: np.logaddexp(0, z),
    "gelu": lambda z, approximate=False: (
        0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
        if approximate
        else 0.5 * z * (1 + special.erf(z / _SQRT2))
    ),
}

# Names whose gain follows the second-moment criterion, with keyword settings to try.
CRITERION = [
    ("linear", {}),
    ("hard_logistic", {}),
    ("hard_tanh", {}),
    ("relu", {}),
    ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": 0.3}),
    ("prelu", {}),
    ("prelu", {"alpha": 0.1}),
    ("elu", {}),
    ("elu", {"alpha": 0.5}),
    ("swish", {}),
    ("swish", {"beta": 2.0}),
    ("softplus", {}),
    ("gelu", {}),
    ("gelu", {"approximate": True}),
]


def test_gain_closed_forms():
    assert ini.gain("linear") == 1.0
    assert ini.gain("relu") == pytest.approx(math.sqrt(2), rel=1e-12)
    assert ini.gain("tanh") == pytest.approx(5 / 3, rel=1e-12)  # PyTorch convention
    assert ini.gain("logistic") == 1.0  # PyTorch convention
    assert ini.gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)), rel=1e-12)
    assert ini.gain("leaky_relu", negative_slope=0.2) == pytest.approx(
        math.sqrt(2 / 1.04), rel=1e-12
    )
    assert ini.gain("prelu") == pytest.approx(math.sqrt(2 / (1 + 0.25**2)), rel=1e-12)
    assert ini.gain("leaky_relu", negative_slope=1.0) == pytest.approx(1.0, rel=1e-12)
    phi1 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    assert ini.gain("hard_tanh") == pytest.approx(1 / math.sqrt(1 - 2 * phi1), rel=1e-12)
    assert ini.gain("softmax") == 1.0 and ini.gain("log_softmax", axis=1) == 1.0


@pytest.mark.parametrize("name, kw", CRITERION, ids=[f"{n}-{k}" for n, k in CRITERION])
def test_gain_matches_second_moment_criterion(name, kw):
    # Independent check by dense quadrature on a fine grid (trapezoid, |z| <= 12): the
    # integrand is continuous, so 240k points give ~1e-9 accuracy even at the kinks.
    z = np.linspace(-12, 12, 240_001)
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    m2 = np.trapezoid(NP_ACT[name](z, **kw) ** 2 * pdf, z)
    assert ini.gain(name, **kw) == pytest.approx(1 / math.sqrt(m2), rel=1e-6)


@pytest.mark.parametrize("name, kw", CRITERION, ids=[f"{n}-{k}" for n, k in CRITERION])
def test_gain_preserves_preactivation_second_moment_empirically(name, kw):
    # z ~ N(0,1) through f, then one LeCun(gain) weight column per example (fan_in 256):
    # E[(w . f(z))^2] = gain^2 E[f(z)^2] = 1. The N = 16384 terms are i.i.d. with variance
    # ~= 2, so the mean has relative std error ~= 1.1%; rel=5% is ~4.5 of them, and a
    # missing gain is off by >= 8% (softplus) up to 100% (relu).
    n = 16384
    z = np.random.default_rng(1).standard_normal((n, 256))
    h = NP_ACT[name](z, **kw)
    w = ini.lecun_normal(gain=ini.gain(name, **kw))(jax.random.PRNGKey(2), (256, n), jnp.float64)
    out = np.sum(h * np.asarray(w).T, axis=1)
    assert np.mean(out**2) == pytest.approx(1.0, rel=0.05)


def test_conventional_gains_differ_from_criterion():
    # documented: tanh and logistic follow PyTorch, not the second-moment criterion
    z = np.linspace(-12, 12, 240_001)
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    for name, documented in [("tanh", 1.593), ("logistic", 1.846)]:
        crit = 1 / math.sqrt(np.trapezoid(NP_ACT[name](z) ** 2 * pdf, z))
        assert crit == pytest.approx(documented, abs=2e-3)
        assert ini.gain(name) != pytest.approx(crit, rel=1e-2)


def test_gain_covers_every_activation():
    acts = pytest.importorskip("funcnn.activations")
    assert set(acts.ACTIVATION_NAMES) <= set(ini.GAIN_NAMES)
    assert len(ini.GAIN_NAMES) == 14


def test_gain_against_funcnn_activations():
    acts = pytest.importorskip("funcnn.activations")
    z = np.linspace(-12, 12, 240_001)
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    zj = jnp.asarray(z)
    calls = {
        "hard_logistic": lambda: acts.hard_logistic(zj),
        "hard_tanh": lambda: acts.hard_tanh(zj),
        "elu": lambda: acts.elu(zj),
        "swish": lambda: acts.swish(zj),
        "softplus": lambda: acts.softplus(zj),
        "gelu": lambda: acts.gelu(zj),
        "prelu": lambda: acts.prelu(zj, jnp.asarray(0.25, zj.dtype)),
    }
    for name, call in calls.items():
        m2 = np.trapezoid(np.asarray(call(), np.float64) ** 2 * pdf, z)
        assert ini.gain(name) == pytest.approx(1 / math.sqrt(m2), rel=1e-6), name


def test_gain_errors():
    with pytest.raises(ValueError, match=r"gain: unknown activation 'sigmoid'; expected one of "
                       r"'linear', 'logistic', 'tanh'.*'log_softmax'"):
        ini.gain("sigmoid")
    with pytest.raises(TypeError, match=r"gain: 'relu' got an unexpected keyword 'alpha'; "
                       r"it takes no keyword arguments"):
        ini.gain("relu", alpha=0.1)
    with pytest.raises(TypeError, match=r"gain: 'elu' got an unexpected keyword 'slope'; "
                       r"it takes alpha"):
        ini.gain("elu", slope=0.1)
    with pytest.raises(ValueError, match=r"gain: negative_slope must be finite"):
        ini.gain("leaky_relu", negative_slope=float("inf"))
    with pytest.raises(TypeError, match=r"gain: alpha must be a real number"):
        ini.gain("prelu", alpha=np.ones(3))



_SAME_BITS = """
import funcnn, jax, numpy as np
from funcnn import initializers as ini
from funcnn.nn.models import cnn1d, mlp
key = jax.random.PRNGKey(0)
keys = jax.random.split(key, 3)
inits = {n: getattr(ini, n)() for n in ("normal", "uniform", "glorot_normal", "glorot_uniform", "he_normal",
                                        "he_uniform", "lecun_normal", "lecun_uniform", "orthogonal")}
inits["variance_scaling"] = ini.variance_scaling(2.0, "fan_in", "truncated_normal")
for name, init in inits.items():
    eager = np.stack([np.asarray(init(k, (40, 100))) for k in keys])
    jitted = np.stack([np.asarray(jax.jit(lambda k: init(k, (40, 100)))(k)) for k in keys])
    vmapped = np.asarray(jax.jit(jax.vmap(lambda k: init(k, (40, 100))))(keys))
    print(name, int(np.sum(jitted != eager)), int(np.sum(vmapped != eager)))
for name, model, shape in (("mlp", mlp((100, 100), 10, "relu"), (8, 40)),
                           ("cnn1d", cnn1d(out=10, activation="tanh"), (8, 40, 1))):
    eager = jax.tree.leaves(model.init(keys[0], shape)[1])
    jitted = jax.tree.leaves(jax.jit(lambda k: model.init(k, shape)[1])(keys[0]))
    print(name, sum(int(np.sum(np.asarray(a) != np.asarray(b))) for a, b in zip(eager, jitted)), 0)
"""


def test_a_key_draws_the_same_bits_eagerly_jitted_and_vmapped():
    """Each draw is kept apart from its scaling (and the truncated normal's bounds from the
    draw): without that, XLA's fused draw-and-scale under jit rounds some entries' last bit
    otherwise than the eager draw and multiply, so a grid's jitted, vmapped init differed from
    ``model.init`` called directly. Checked as users run, with XLA's optimizations on (a
    subprocess: this suite compiles with most of them off, and unoptimized code rounds the
    truncated normal's erf otherwise in a fused program)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "0", "JAX_ENABLE_X64": "0"}
    out = subprocess.run([sys.executable, "-c", _SAME_BITS], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.splitlines()]
    assert len(rows) == 12, out.stdout
    assert all(r[1:] == ["0", "0"] for r in rows), out.stdout
