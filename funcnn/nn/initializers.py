"""Weight initializers and variance-preserving gains.

Every initializer here is a *factory*, as in :mod:`jax.nn.initializers`: calling it with
its settings returns a function ``init(key, shape, dtype=jnp.float32) -> jax.Array``::

    w = he_normal()(key, (784, 256))                 # dense kernel (D_in, D_out)
    k = glorot_uniform()(key, (3, 3, 16, 32))        # conv kernel (KH, KW, C_in, C_out)
    w = variance_scaling(2.0, "fan_in", "truncated_normal")(key, (64, 64), jnp.float64)

Fans follow funcnn's channels-last kernel layouts (see :func:`fan_in_fan_out`): the last
axis is the output axis, the one before it the input axis, and every leading axis is a
receptive-field axis.

Conventions (where libraries differ, this is what funcnn does):

- ``normal(stddev)`` draws N(0, stddev^2); ``uniform(scale)`` draws U(-scale, scale)
  (symmetric; ``jax.nn.initializers.uniform`` draws U[0, scale) instead).
- ``glorot_normal``, ``he_normal`` and ``lecun_normal`` draw from an *untruncated* normal
  with the paper's standard deviation (as PyTorch's ``xavier_normal_``/``kaiming_normal_``;
  JAX/Keras truncate). The truncated variant is ``variance_scaling(...,
  "truncated_normal")``, which rescales so that the variance is still ``scale / fan``.
- ``gain`` multiplies the standard deviation (so the variance by ``gain**2``), as in
  PyTorch; ``he_*`` already contain the ReLU factor 2 in the variance, so their ``gain``
  is an *extra* factor (default 1).

References: Glorot & Bengio 2010 (Understanding the difficulty of training deep
feedforward neural networks); He et al. 2015 (Delving deep into rectifiers); LeCun et al.
1998 (Efficient BackProp); Saxe et al. 2014 (Exact solutions to the nonlinear dynamics of
learning in deep linear neural networks) for orthogonal initialization.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops.checks import check_choice
from funcnn._ops.names import LiveNames
from funcnn._ops import registry as _registry

__all__ = [
    "DISTRIBUTIONS",
    "GAIN_NAMES",
    "INITIALIZER_NAMES",
    "Initializer",
    "MODES",
    "constant",
    "fan_in_fan_out",
    "gain",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "orthogonal",
    "register_initializer",
    "resolve",
    "uniform",
    "variance_scaling",
    "zeros",
]

DTypeLike = Any


class Initializer(Protocol):
    """``init(key, shape, dtype=jnp.float32) -> array`` of that shape and dtype."""

    def __call__(
        self, key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32
    ) -> jax.Array: ...


MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")

# Standard deviation of a standard normal truncated to [-2, 2]; dividing by it restores
# unit variance after truncation (the same constant jax.nn.initializers uses).
_TRUNCATED_STD = 0.87962566103423978


# ---------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------


def _check_shape(fn: str, shape: Any, min_rank: int = 0) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of ints >= 0, or raise naming ``fn``."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        raise TypeError(
            f"{fn}: shape must be a tuple of ints, got the int {shape!r}; use ({shape},)"
        )
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(f"{fn}: shape must be a tuple of ints, got {shape!r}")
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape):
        raise TypeError(f"{fn}: shape must contain ints, got {tuple(shape)!r}")
    out = tuple(int(d) for d in shape)
    if any(d < 0 for d in out):
        raise ValueError(f"{fn}: shape dimensions must be >= 0, got {out!r}")
    if len(out) < min_rank:
        raise ValueError(
            f"{fn}: shape must have rank >= {min_rank}, got rank {len(out)} (shape={out!r})"
        )
    return out


def _check_float_dtype(fn: str, dtype: DTypeLike) -> np.dtype:
    """Return ``dtype`` as a NumPy dtype, raising TypeError unless it is floating."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{fn}: dtype must be a floating dtype, got {dtype!r}") from err
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(
            f"{fn}: random initializers need a floating dtype, got {dt}; e.g. jnp.float32"
        )
    return dt


def _check_nonneg(fn: str, name: str, value: Any, *, positive: bool = False) -> float:
    """Return ``value`` as a float, raising unless it is finite and >= 0 (> 0 if positive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v) or v < 0 or (positive and v == 0)
    if bad:
        want = "> 0" if positive else ">= 0"
        raise ValueError(f"{fn}: {name} must be finite and {want}, got {value!r}")
    return v


# ---------------------------------------------------------------------------------------
# fans
# ---------------------------------------------------------------------------------------


def fan_in_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of the given shape (channels-last layouts).

    - rank 1 ``(n,)``: ``(n, n)`` (a vector, e.g. a bias or a per-channel scale);
    - rank 2 dense kernel ``(D_in, D_out)``: ``(D_in, D_out)``;
    - rank >= 3 conv kernel ``(K_1, ..., K_d, C_in, C_out)``: with receptive field
      ``r = K_1 * ... * K_d``, ``(r * C_in, r * C_out)``: each output unit sums ``r * C_in``
      inputs, each input unit feeds ``r * C_out`` outputs.

    Args:
        shape: the weight's shape, rank >= 1, every dimension >= 1.

    Returns:
        ``(fan_in, fan_out)`` as Python ints.

    Raises:
        ValueError: rank 0, or a dimension below 1.
    """
    fn = "fan_in_fan_out"
    s = _check_shape(fn, shape, min_rank=1)
    if any(d < 1 for d in s):
        raise ValueError(f"{fn}: every dimension must be >= 1 to define fans, got shape={s!r}")
    if len(s) == 1:
        return s[0], s[0]
    receptive = math.prod(s[:-2])
    return receptive * s[-2], receptive * s[-1]


# ---------------------------------------------------------------------------------------
# constant and plain random initializers
# ---------------------------------------------------------------------------------------


def zeros() -> Initializer:
    """An initializer returning zeros (any dtype, any shape, the key is ignored)."""

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        del key
        return jnp.zeros(_check_shape("zeros", shape), dtype)

    return init


def constant(value: float) -> Initializer:
    """An initializer filling the array with ``value`` (the key is ignored).

    Args:
        value: the fill value (a Python or NumPy number).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"constant: value must be a real number, got {value!r}")

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        del key
        return jnp.full(_check_shape("constant", shape), value, dtype)

    return init


def _drawn(z: jax.Array) -> jax.Array:
    """A random draw (or its arguments) kept apart from what surrounds it: fused with its
    scaling under ``jax.jit``, XLA rounds the last bit of some entries differently than the
    eager draw and multiply do, so without this boundary the same key gives other weights
    jitted (``run_grid``'s init) than eagerly (``model.init`` called directly). With it they
    are bitwise equal (``tests/test_initializers.py``)."""
    return jax.lax.optimization_barrier(z)


def normal(stddev: float = 1.0) -> Initializer:
    """An initializer drawing i.i.d. N(0, stddev^2) entries.

    Args:
        stddev: the standard deviation, >= 0 (``jax.nn.initializers.normal`` defaults to
            1e-2; funcnn defaults to 1, the "N(0, 1)" of the init studies).
    """
    std = _check_nonneg("normal", "stddev", stddev)

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        s = _check_shape("normal", shape)
        dt = _check_float_dtype("normal", dtype)
        return _drawn(jax.random.normal(key, s, dt)) * jnp.asarray(std, dt)

    return init


def uniform(scale: float = 1.0) -> Initializer:
    """An initializer drawing i.i.d. U(-scale, scale) entries (variance ``scale**2 / 3``).

    Note the symmetric interval: ``jax.nn.initializers.uniform(scale)`` draws U[0, scale).

    Args:
        scale: the half-width of the interval, >= 0.
    """
    a = _check_nonneg("uniform", "scale", scale)

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        s = _check_shape("uniform", shape)
        dt = _check_float_dtype("uniform", dtype)
        return _drawn(jax.random.uniform(key, s, dt, minval=-1.0, maxval=1.0)) * jnp.asarray(a, dt)

    return init


# ---------------------------------------------------------------------------------------
# variance scaling and its named instances
# ---------------------------------------------------------------------------------------


def _variance_scaling(
    fn: str, scale: float, mode: str, distribution: str
) -> Initializer:
    """Shared body of :func:`variance_scaling`; ``fn`` names the public caller in errors."""
    scale = _check_nonneg(fn, "scale", scale)
    check_choice(fn, "mode", mode, MODES)
    check_choice(fn, "distribution", distribution, DISTRIBUTIONS)

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        s = _check_shape(fn, shape, min_rank=1)
        dt = _check_float_dtype(fn, dtype)
        if any(d < 1 for d in s):
            raise ValueError(f"{fn}: every dimension must be >= 1 to define fans, got shape={s!r}")
        fan_in, fan_out = fan_in_fan_out(s)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / fan
        if distribution == "normal":
            z = jax.random.normal(key, s, dt)
            std = math.sqrt(variance)
        elif distribution == "truncated_normal":
            # the bounds as values, not constants: folded at compile time under jit, the
            # erf of the bounds takes other last bits than the eager draw computes
            lo, hi = _drawn((jnp.asarray(-2.0, dt), jnp.asarray(2.0, dt)))
            z = jax.random.truncated_normal(key, lo, hi, s, dt)
            std = math.sqrt(variance) / _TRUNCATED_STD
        else:  # uniform on [-limit, limit] has variance limit^2 / 3
            z = jax.random.uniform(key, s, dt, minval=-1.0, maxval=1.0)
            std = math.sqrt(3.0 * variance)
        return _drawn(z) * jnp.asarray(std, dt)

    return init


def variance_scaling(
    scale: float, mode: str = "fan_in", distribution: str = "truncated_normal"
) -> Initializer:
    """Entries with variance ``scale / fan``; the family every named initializer belongs to.

    ``fan`` is fan-in, fan-out or their mean (``mode``), from :func:`fan_in_fan_out`.

    - ``"normal"``: N(0, scale / fan);
    - ``"truncated_normal"``: a normal truncated at +-2 standard deviations, rescaled so
      that the variance is still ``scale / fan``;
    - ``"uniform"``: U(-limit, limit) with ``limit = sqrt(3 * scale / fan)``.

    Args:
        scale: the variance multiplier, >= 0 (e.g. 2 for He, 1 for LeCun/Glorot).
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.

    Returns:
        ``init(key, shape, dtype)`` for shapes of rank >= 1 (dense ``(D_in, D_out)`` or conv
        ``(..., C_in, C_out)``).
    """
    return _variance_scaling("variance_scaling", scale, mode, distribution)


def _gain_scale(fn: str, base: float, g: float) -> float:
    """The variance multiplier ``base * gain**2`` (gain multiplies the std)."""
    return base * _check_nonneg(fn, "gain", g) ** 2


def glorot_normal(gain: float = 1.0) -> Initializer:
    """Glorot/Xavier normal: N(0, gain^2 * 2 / (fan_in + fan_out)).

    Args:
        gain: multiplies the standard deviation (e.g. ``gain("tanh")``).
    """
    return _variance_scaling("glorot_normal", _gain_scale("glorot_normal", 1.0, gain),
                             "fan_avg", "normal")


def glorot_uniform(gain: float = 1.0) -> Initializer:
    """Glorot/Xavier uniform: U(-a, a), ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    Args:
        gain: multiplies the standard deviation (and so the bound ``a``).
    """
    return _variance_scaling("glorot_uniform", _gain_scale("glorot_uniform", 1.0, gain),
                             "fan_avg", "uniform")


def he_normal(gain: float = 1.0) -> Initializer:
    """He/Kaiming normal: N(0, gain^2 * 2 / fan_in) (He et al. 2015).

    Args:
        gain: an *extra* factor on the standard deviation; the ReLU factor sqrt(2) is
            already included (to use another nonlinearity's gain instead, write
            ``lecun_normal(gain=gain("leaky_relu", negative_slope=0.1))``).
    """
    return _variance_scaling("he_normal", _gain_scale("he_normal", 2.0, gain),
                             "fan_in", "normal")


def he_uniform(gain: float = 1.0) -> Initializer:
    """He/Kaiming uniform: U(-a, a), ``a = gain * sqrt(6 / fan_in)``.

    Args:
        gain: an extra factor on the standard deviation (the ReLU sqrt(2) is included).
    """
    return _variance_scaling("he_uniform", _gain_scale("he_uniform", 2.0, gain),
                             "fan_in", "uniform")


def lecun_normal(gain: float = 1.0) -> Initializer:
    """LeCun normal: N(0, gain^2 / fan_in) (LeCun et al. 1998).

    Args:
        gain: multiplies the standard deviation; ``lecun_normal(gain=gain(name))`` is
            PyTorch's ``kaiming_normal_(nonlinearity=name)``.
    """
    return _variance_scaling("lecun_normal", _gain_scale("lecun_normal", 1.0, gain),
                             "fan_in", "normal")


def lecun_uniform(gain: float = 1.0) -> Initializer:
    """LeCun uniform: U(-a, a), ``a = gain * sqrt(3 / fan_in)``.

    Args:
        gain: multiplies the standard deviation (and so the bound ``a``).
    """
    return _variance_scaling("lecun_uniform", _gain_scale("lecun_uniform", 1.0, gain),
                             "fan_in", "uniform")


# ---------------------------------------------------------------------------------------
# orthogonal
# ---------------------------------------------------------------------------------------


def orthogonal(gain: float = 1.0) -> Initializer:
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014).

    The shape is read as a matrix ``(rows, cols) = (prod(shape[:-1]), shape[-1])``: for a
    dense kernel ``(D_in, D_out)`` that is itself, for a conv kernel ``(..., C_in, C_out)``
    it is (receptive field x C_in) by C_out. A standard normal ``(max, min)`` matrix is
    QR-factored and the columns of Q multiplied by ``sign(diag(R))`` (so that the result is
    Haar-distributed, not biased by the QR convention). If ``rows >= cols`` the columns are
    orthonormal (``W^T W = gain^2 I``), otherwise the rows are (``W W^T = gain^2 I``).

    Args:
        gain: multiplies the matrix, >= 0.

    Returns:
        ``init(key, shape, dtype)`` for shapes of rank >= 2. The QR runs in float32 for
        half-precision dtypes, then casts.
    """
    fn = "orthogonal"
    g = _check_nonneg(fn, "gain", gain)

    def init(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        s = _check_shape(fn, shape, min_rank=2)
        dt = _check_float_dtype(fn, dtype)
        rows, cols = math.prod(s[:-1]), s[-1]
        if rows == 0 or cols == 0:
            return jnp.zeros(s, dt)
        work = dt if np.dtype(dt).itemsize >= 4 else np.dtype(np.float32)
        a = _drawn(jax.random.normal(key, (max(rows, cols), min(rows, cols)), work))
        q, r = jnp.linalg.qr(a)
        d = jnp.diagonal(r)
        q = q * jnp.where(d >= 0, 1.0, -1.0).astype(work)[None, :]
        if rows < cols:
            q = q.T
        return (q * jnp.asarray(g, work)).reshape(s).astype(dt)

    return init


# ---------------------------------------------------------------------------------------
# initializers by name: a layer's w_init may be a name or a Choice of names
# ---------------------------------------------------------------------------------------

_NAMED: dict[str, Callable[[], Initializer]] = {}


#: The names a layer's initializer argument accepts (alone or as :class:`funcnn.Choice`
#: options): the factories of this module that need no argument, with their defaults, and the
#: user's :func:`register_initializer` names. A live view.
INITIALIZER_NAMES = LiveNames(lambda: tuple(_NAMED), "Every initializer name (a live view).")


def register_initializer(name: str, factory: Callable[[], Initializer]) -> None:
    """Make ``name`` an initializer name: ``Dense(64, w_init=name)``, a ``Choice`` option, an
    ``init`` grid choice. ``factory()`` returns the initializer ``(key, shape, dtype) -> array``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register_initializer: name must be a Python identifier, got {name!r}")
    if name in _NAMED:
        raise ValueError(f"register_initializer: the initializer name {name!r} is taken")
    if not callable(factory):
        raise TypeError(f"register_initializer: factory must be a function () -> initializer, got {factory!r}")
    _NAMED[name] = factory


def resolve(spec: Any, default: Callable[[], Initializer], *, fn: str, arg: str) -> Initializer:
    """The initializer ``spec`` stands for: a function as is, a name of :data:`INITIALIZER_NAMES`
    (the factory's defaults), a :class:`funcnn.Choice` among names (each member's params drawn
    by its own pick, through ``Choice.switch``), or ``None`` for ``default()``."""
    from funcnn.nn.choice import Choice

    if spec is None:
        return default()
    if isinstance(spec, Choice):
        bad = [o for o in spec.options if o not in _NAMED]
        if bad:
            raise ValueError(f"{fn}: {arg} {spec!r} has unknown initializer {bad[0]!r}; expected names among "
                             + ", ".join(_NAMED))
        inits = [_NAMED[o]() for o in spec.options]

        def chosen(key: jax.Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
            # a real branch for a traced but unbatched pick (a grid's block): only the chosen
            # initializer runs; under vmap with a batched pick every one is drawn, then selected
            branches = {o: (lambda k, f=f: f(k, shape, dtype)) for o, f in zip(spec.options, inits)}
            return spec.switch(branches, key)

        chosen.__name__ = f"choice({spec.label})"
        return chosen
    if isinstance(spec, str):
        if spec not in _NAMED:
            raise ValueError(f"{fn}: {arg} {spec!r} is not an initializer name; expected one of " + ", ".join(_NAMED)
                             + " (or a function (key, shape, dtype) -> array)")
        return _NAMED[spec]()
    if not callable(spec):
        raise TypeError(
            f"{fn}: {arg} must be an initializer (key, shape, dtype) -> array, an initializer name or a "
            f"Choice of names, got {spec!r}"
        )
    return spec


for _name in ("zeros", "normal", "uniform", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
              "lecun_normal", "lecun_uniform", "orthogonal"):
    _NAMED[_name] = globals()[_name]
del _name


# ---------------------------------------------------------------------------------------
# gains
# ---------------------------------------------------------------------------------------

#: ``"linear"`` and every registered activation name (a live view of :mod:`funcnn._ops.registry`).
GAIN_NAMES = _registry._Names(lambda op: True, "'linear' and every registered activation name.", ("linear",))

# the built-ins' keyword arguments, for their closed forms (the registry holds the defaults)
_GAIN_KWARGS: dict[str, dict[str, Any]] = {
    "linear": {},
    "logistic": {},
    "tanh": {},
    "hard_logistic": {},
    "hard_tanh": {},
    "relu": {},
    "leaky_relu": {"negative_slope": 0.01},
    "prelu": {"alpha": 0.25},
    "elu": {"alpha": 1.0},
    "swish": {"beta": 1.0},
    "softplus": {},
    "gelu": {"approximate": False},
    "softmax": {"axis": -1},
    "log_softmax": {"axis": -1},
}

_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _pdf(z: float) -> float:
    """Standard normal density phi(z)."""
    return math.exp(-0.5 * z * z) / _SQRT_2PI


def _cdf(z: float) -> float:
    """Standard normal distribution function Phi(z)."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _gauss_hermite_mean(f: Callable[[np.ndarray], np.ndarray], n: int = 160) -> float:
    """E[f(z)] for z ~ N(0, 1) by Gauss-Hermite quadrature (probabilists' weights).

    Exact for polynomials of degree < 2n; spectrally accurate for smooth ``f`` (swish,
    softplus, gelu), which is why kinked activations use their closed forms instead.
    """
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return float(np.sum(w * f(z)) / _SQRT_2PI)


def _second_moment(activation: str, **kwargs: Any) -> float:
    """E[f(z)^2] for z ~ N(0, 1): closed form where derived, quadrature otherwise."""
    p = {**_GAIN_KWARGS[activation], **kwargs}
    if activation == "linear":
        return 1.0
    if activation in ("relu", "leaky_relu", "prelu"):
        # E[z^2; z > 0] = E[z^2; z < 0] = 1/2
        slope = p.get("negative_slope", p.get("alpha", 0.0))
        return 0.5 * (1.0 + float(slope) ** 2)
    if activation == "hard_tanh":
        # clip(z, -1, 1): E[z^2; |z|<1] + P(|z|>1), with E[z^2; |z|<c] = (2Phi(c)-1) - 2c phi(c)
        return (2 * _cdf(1.0) - 1 - 2 * _pdf(1.0)) + 2 * (1 - _cdf(1.0))
    if activation == "hard_logistic":
        # clip(z/4 + 1/2, 0, 1): E[(z/4+1/2)^2; |z|<2] + P(z>2); the odd term cancels
        inner = (2 * _cdf(2.0) - 1 - 4 * _pdf(2.0)) / 16 + 0.25 * (2 * _cdf(2.0) - 1)
        return inner + (1 - _cdf(2.0))
    if activation == "elu":
        # 1/2 + alpha^2 E[(e^z - 1)^2; z<0], with E[e^{tz}; z<0] = e^{t^2/2} Phi(-t)
        a = float(p["alpha"])
        neg = math.exp(2.0) * _cdf(-2.0) - 2 * math.exp(0.5) * _cdf(-1.0) + 0.5
        return 0.5 + a * a * neg
    if activation == "tanh":
        return _gauss_hermite_mean(lambda z: np.tanh(z) ** 2)
    if activation == "logistic":
        return _gauss_hermite_mean(lambda z: (0.5 * (1 + np.tanh(z / 2))) ** 2)
    if activation == "swish":
        b = float(p["beta"])
        return _gauss_hermite_mean(lambda z: (z * 0.5 * (1 + np.tanh(b * z / 2))) ** 2)
    if activation == "softplus":
        return _gauss_hermite_mean(lambda z: np.logaddexp(0.0, z) ** 2)
    if activation == "gelu":
        if p["approximate"]:
            c = math.sqrt(2 / math.pi)
            return _gauss_hermite_mean(
                lambda z: (0.5 * z * (1 + np.tanh(c * (z + 0.044715 * z**3)))) ** 2
            )
        erf = np.vectorize(math.erf)
        return _gauss_hermite_mean(lambda z: (0.5 * z * (1 + erf(z / math.sqrt(2)))) ** 2)
    raise ValueError(f"_second_moment: no second moment for {activation!r}")


def gain(activation: str, **kwargs: Any) -> float:
    """The standard-deviation gain that keeps activations' scale through a layer.

    Use it as ``lecun_normal(gain=gain(name))`` (= PyTorch ``kaiming_normal_``) or
    ``glorot_uniform(gain=gain(name))`` / ``orthogonal(gain(name))``.

    Criterion (fan-in, forward pass): with pre-activations z ~ N(0, 1) and weights of
    variance ``gain^2 / fan_in``, the next pre-activation has variance
    ``gain^2 * E[f(z)^2]``; it stays 1 when ``gain = 1 / sqrt(E[f(z)^2])``.

    Which value each name gets:

    - closed form, exactly this criterion: ``linear`` 1; ``relu`` sqrt(2);
      ``leaky_relu(negative_slope=0.01)`` sqrt(2 / (1 + slope^2)); ``prelu(alpha=0.25)``
      the same with ``slope = alpha`` (the initial slope); ``hard_tanh``
      ``1 / sqrt(1 - 2 phi(1))`` ~= 1.392; ``hard_logistic`` (clip(z/4 + 1/2, 0, 1)) ~=
      1.803; ``elu(alpha=1)`` ``1 / sqrt(1/2 + alpha^2 (e^2 Phi(-2) - 2 e^{1/2} Phi(-1) +
      1/2))`` ~= 1.245 (phi, Phi: standard normal pdf, cdf; derivations in the code).
    - numerical, this criterion, Gauss-Hermite quadrature (160 nodes) of E[f(z)^2]:
      ``swish(beta=1)`` ~= 1.677, ``softplus`` ~= 1.042, ``gelu`` (exact or
      ``approximate=True``) ~= 1.534 (recomputed per call for the given keyword arguments).
    - PyTorch's ``calculate_gain`` convention, *not* this criterion: ``tanh`` 5/3 (the
      criterion would give ~= 1.593) and ``logistic`` 1 (the criterion, dominated by the
      output mean 1/2, would give ~= 1.847).
    - convention: ``softmax`` and ``log_softmax`` 1. They are output maps over a whole
      axis, not elementwise hidden nonlinearities, so no per-unit gain preserves anything.

    Args:
        activation: one of :data:`GAIN_NAMES` (the core activations plus ``"linear"``).
        **kwargs: the activation's own settings (``negative_slope``, ``alpha``, ``beta``,
            ``approximate``, ``axis``), defaulting as in :mod:`funcnn.activations`.

    Returns:
        The gain as a Python float.

    Raises:
        ValueError: unknown activation (the message lists the valid names) or a bad value.
        TypeError: a keyword argument the activation does not take.
    """
    check_choice("gain", "activation", activation, GAIN_NAMES)
    if activation == "linear":
        accepted: dict[str, Any] = {}
        op = None
    else:
        op = _registry.get_activation(activation, fn="gain")
        accepted = {**op.settings, **{p.name: p.init for p in op.params}}
    for k in kwargs:
        if k not in accepted:
            takes = ", ".join(accepted) if accepted else "no keyword arguments"
            raise TypeError(
                f"gain: {activation!r} got an unexpected keyword {k!r}; it takes {takes}"
            )
    for k, v in kwargs.items():
        if isinstance(accepted[k], (int, float)) and not isinstance(accepted[k], bool):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"gain: {k} must be a real number, got {v!r}")
            if not math.isfinite(float(v)):
                raise ValueError(f"gain: {k} must be finite, got {v!r}")
    if op is None:
        return 1.0
    values = {**accepted, **kwargs}
    if op.gain is not None:
        return float(op.gain(**values)) if callable(op.gain) else float(op.gain)
    return 1.0 / math.sqrt(forward_second_moment(op, **values))


def builtin_gain(activation: str, **kwargs: Any) -> float:
    """The gain of a built-in activation (closed forms and conventions; see :func:`gain`)."""
    if activation == "tanh":
        return 5.0 / 3.0
    if activation in ("logistic", "softmax", "log_softmax", "linear"):
        return 1.0
    return 1.0 / math.sqrt(_second_moment(activation, **kwargs))


def forward_second_moment(op: Any, **values: Any) -> float:
    """``E[f(z)^2]`` for z ~ N(0, 1), from a registered activation's forward (its twin).

    Gauss-Legendre quadrature (48 nodes per piece) of ``f(z)^2 phi(z)`` over ``[-12, 12]`` cut
    into pieces of width <= 1 and at every kink, so piecewise-smooth activations integrate
    accurately; the tails beyond 12 weigh less than ``1e-30`` for any f of polynomial growth.
    ``values`` holds the op's settings and its params' values (a param at its ``init``).
    """
    op = _registry.get_activation(op, fn="forward_second_moment")
    edges = sorted({float(e) for e in np.arange(-12.0, 12.5, 1.0)} | {k for k in op.kinks if -12 < k < 12})
    t, w = np.polynomial.legendre.leggauss(48)
    zs, ws = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        zs.append(0.5 * (b - a) * t + 0.5 * (a + b))
        ws.append(0.5 * (b - a) * w)
    z, wt = np.concatenate(zs), np.concatenate(ws)
    dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    settings = {k: v for k, v in values.items() if k in op.settings}
    params = [jnp.asarray(values.get(p.name, p.init), dtype) for p in op.params]
    f = np.asarray(op.reference(jnp.asarray(z, dtype), *params, **settings), np.float64)
    if f.shape != z.shape or not np.all(np.isfinite(f)):
        raise ValueError(f"gain: the forward of {op.name!r} is not finite on [-12, 12] "
                         f"(or not elementwise); declare its gain with gain=...")
    pdf = np.exp(-0.5 * z * z) / _SQRT_2PI
    return float(np.sum(wt * f * f * pdf))
