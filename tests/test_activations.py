"""Tests for funcnn.activations: every hand rule against its autodiff twin
(funcnn.reference.activations), finite differences, kink conventions, extreme values,
NaN propagation, transformations, dtypes and argument validation."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import funcnn.activations as hand
import funcnn.reference.activations as ref
from funcnn.activations import ACTIVATION_NAMES

SHAPE = (5, 3)  # (N, C): one shape everywhere keeps the compile cache warm


@dataclass(frozen=True)
class Case:
    """One activation with fixed static settings and (maybe) a differentiable parameter."""

    id: str
    name: str
    kwargs: dict = field(default_factory=dict)
    param_shape: tuple[int, ...] | None = None  # prelu's alpha / swish's beta
    param_range: tuple[float, float] = (0.05, 0.5)
    kinks: tuple[float, ...] = ()

    def call(self, module: Any, x: jax.Array, p: jax.Array | None = None) -> jax.Array:
        f = getattr(module, self.name)
        if self.param_shape is None:
            return f(x, **self.kwargs)
        return f(x, p, **self.kwargs)

    def sample(self, dtype: Any = jnp.float64, seed: int = 0, shape=SHAPE):
        """A point away from every kink (by >= 0.05) and a parameter value."""
        rng = np.random.default_rng(seed)
        x = rng.normal(0.0, 1.5, shape)
        for k in self.kinks:
            x = np.where(np.abs(x - k) < 0.05, x + 0.1 * np.sign(x - k + 1e-9), x)
        p = None
        if self.param_shape is not None:
            p = jnp.asarray(rng.uniform(*self.param_range, self.param_shape), dtype)
        return jnp.asarray(x, dtype), p


CASES = [
    Case("logistic", "logistic"),
    Case("tanh", "tanh"),
    Case("hard_logistic", "hard_logistic", kinks=(-2.0, 2.0)),
    Case("hard_tanh", "hard_tanh", kinks=(-1.0, 1.0)),
    Case("relu", "relu", kinks=(0.0,)),
    Case("leaky_relu", "leaky_relu", {"negative_slope": 0.2}, kinks=(0.0,)),
    Case("prelu-channel", "prelu", param_shape=(3,), kinks=(0.0,)),
    Case("prelu-scalar", "prelu", param_shape=(), kinks=(0.0,)),
    Case("elu-alpha", "elu", {"alpha": 1.5}, kinks=(0.0,)),
    Case("swish-scalar", "swish", param_shape=(), param_range=(0.5, 2.0)),
    Case("swish-channel", "swish", param_shape=(3,), param_range=(0.5, 2.0)),
    Case("softplus", "softplus"),
    Case("gelu", "gelu"),
    Case("gelu-tanh", "gelu", {"approximate": True}),
    Case("softmax", "softmax"),
    Case("softmax-axis0", "softmax", {"axis": 0}),
    Case("log_softmax", "log_softmax"),
]
CASE_IDS = [c.id for c in CASES]
# a few more settings, checked against the twin's cotangents only
MORE_CASES = CASES + [
    Case("elu-default", "elu", kinks=(0.0,)),
    Case("swish-column", "swish", param_shape=(5, 1), param_range=(0.5, 2.0)),
    Case("swish-negative-beta", "swish", param_shape=(3,), param_range=(-2.0, -0.5)),
    Case("log_softmax-axis0", "log_softmax", {"axis": 0}),
]
ELEMENTWISE = {n for n in ACTIVATION_NAMES if n not in ("softmax", "log_softmax")}


def _args(case: Case, x, p):
    return (x,) if p is None else (x, p)


def _fn(case: Case, module: Any) -> Callable:
    """The case as a function of its differentiable arguments only."""
    if case.param_shape is None:
        return lambda x: case.call(module, x)
    return lambda x, p: case.call(module, x, p)


def _assert_tree_close(a, b, rtol, atol):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- the names


def test_activation_names_and_signatures_match_twin():
    assert len(ACTIVATION_NAMES) == 13 and len(set(ACTIVATION_NAMES)) == 13
    assert ref.ACTIVATION_NAMES == ACTIVATION_NAMES
    for name in ACTIVATION_NAMES:
        h, r = getattr(hand, name), getattr(ref, name)
        assert inspect.signature(h) == inspect.signature(r), name
        assert h.__doc__ and "Returns" in h.__doc__ and "Args" in h.__doc__, name
    assert {c.name for c in CASES} == set(ACTIVATION_NAMES)


# ------------------------------------------------------------------ hand rule vs twin
# Each test builds its whole computation as one jitted function: one compile per test is
# much cheaper on CPU than dispatching every primitive eagerly (eager mode is covered by
# test_eager_matches_jit_and_vmap).


def _value_and_vjp(f: Callable, args: tuple, g: jax.Array):
    """(f(*args), cotangents of every argument for cotangent g)."""
    y, vjp = jax.vjp(f, *args)
    return y, vjp(g)


def _vjp(f: Callable, args: tuple, g: jax.Array):
    """_value_and_vjp as one jitted computation."""
    return jax.jit(lambda args, g: _value_and_vjp(f, args, g))(tuple(args), g)


@pytest.mark.parametrize("case", MORE_CASES, ids=[c.id for c in MORE_CASES])
def test_forward_and_vjp_match_twin(case):
    """Forward in float32 and float64, and the cotangents of x (and alpha/beta) for a
    random cotangent in float64, equal the autodiff twin's."""
    ins = {"f32": case.sample(jnp.float32), "f64": case.sample(jnp.float64, seed=1)}
    g = jnp.asarray(np.random.default_rng(2).normal(size=SHAPE))
    args = _args(case, *ins["f64"])

    def run(ins, args, g):
        ys = {k: (case.call(hand, x, p), case.call(ref, x, p)) for k, (x, p) in ins.items()}
        cts = [jax.vjp(_fn(case, m), *args)[1](g) for m in (hand, ref)]
        return ys, cts

    ys, (ct_h, ct_r) = jax.jit(run)(ins, args, g)
    for key, tol in (("f32", 2e-6), ("f64", 1e-13)):
        x = ins[key][0]
        y, y_ref = ys[key]
        assert y.shape == x.shape and y.dtype == x.dtype
        np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol, err_msg=key)
    for ct, arg in zip(ct_h, args):
        assert ct.shape == arg.shape and ct.dtype == arg.dtype
    _assert_tree_close(ct_h, ct_r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_check_grads_finite_differences(case):
    x, p = case.sample(jnp.float64, seed=3)
    check_grads(jax.jit(_fn(case, hand)), _args(case, x, p), order=1, modes=("rev",))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_grad_of_grad_matches_twin(case):
    """Hessian-vector products of <w, f(x, p)>, hand vs twin: jax.grad of jax.grad
    (reverse over reverse) and jax.jvp of jax.grad (forward over reverse)."""
    x, p = case.sample(jnp.float64, seed=4)
    rng = np.random.default_rng(5)
    w = jnp.asarray(rng.normal(size=SHAPE))
    args = _args(case, x, p)
    v = tuple(jnp.asarray(rng.normal(size=a.shape)) for a in args)
    argnums = tuple(range(len(args)))

    def hvps(module, args):
        f = _fn(case, module)
        grad = jax.grad(lambda *a: jnp.vdot(w, f(*a)), argnums=argnums)
        rev_rev = jax.grad(
            lambda *a: sum(jnp.vdot(gi, vi) for gi, vi in zip(grad(*a), v)), argnums=argnums
        )(*args)
        fwd_rev = jax.jvp(grad, args, v)[1]
        return rev_rev, fwd_rev

    h, r = jax.jit(lambda args: (hvps(hand, args), hvps(ref, args)))(args)
    _assert_tree_close(h, r, rtol=1e-10, atol=1e-12)
    _assert_tree_close(h[0], h[1], rtol=1e-10, atol=1e-12)  # the two HVPs agree


def test_second_derivatives_of_compositions():
    """jax.hessian (forward over reverse) and jax.grad(jax.grad(.)) through chains of hand
    rules equal the twin's, including at the kinks x = 0 of relu and elu."""
    x = jnp.asarray(np.random.default_rng(15).normal(size=SHAPE)).at[0, 0].set(0.0)

    def second(m):
        def net(x):
            h = m.swish(m.softplus(m.tanh(x)), 1.3) + m.relu(x) * m.elu(x, 0.7)
            return m.log_softmax(m.gelu(h) + m.logistic(x) * m.hard_tanh(0.5 * x))

        row = lambda x: net(x)[0, 0]
        scalar = lambda t: m.gelu(m.softplus(t), True) * m.logistic(t) + m.leaky_relu(t) ** 2
        return (
            jax.hessian(row)(x),
            jax.grad(lambda x: jax.grad(row)(x)[1, 2])(x),
            jax.grad(jax.grad(scalar))(0.3),
            jax.grad(jax.grad(scalar))(-0.4),
        )

    _assert_tree_close(*jax.jit(lambda: (second(hand), second(ref)))(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------- kinks


@pytest.mark.parametrize(
    "module, jit", [(hand, False), (hand, True), (ref, True)], ids=["hand", "hand-jit", "twin"]
)
def test_kink_derivatives_follow_pytorch(module, jit):
    m = module

    def derivative(f, x):  # elementwise f: a vjp with ones reads off the diagonal
        y, vjp = jax.vjp(f, jnp.asarray(x, jnp.float64))
        return vjp(jnp.ones_like(y))[0]

    def values():
        alpha = jnp.array([0.25, 0.5], jnp.float64)
        prelu_grads = jax.grad(lambda x, a: m.prelu(x, a).sum(), argnums=(0, 1))(
            jnp.zeros((2,), jnp.float64), alpha
        )
        return {
            "relu'(0), relu'(-0)": derivative(m.relu, [0.0, -0.0]),
            "leaky_relu'(0), slope 0.2 / default": jnp.stack(
                [derivative(lambda x: m.leaky_relu(x, 0.2), 0.0), derivative(m.leaky_relu, 0.0)]
            ),
            "prelu d/dx, d/dalpha at 0": jnp.concatenate(prelu_grads),
            "hard_tanh' at -1, 1, -0.999, 0.999": derivative(m.hard_tanh, [-1, 1, -0.999, 0.999]),
            "hard_logistic' at -2, 2, -1.999, 1.999": derivative(
                m.hard_logistic, [-2, 2, -1.999, 1.999]
            ),
            "elu'(0), alpha 1.5 / default": jnp.stack(
                [derivative(lambda x: m.elu(x, 1.5), 0.0), derivative(m.elu, 0.0)]
            ),
            "values at the kinks": jnp.stack(
                [
                    m.relu(jnp.float64(0.0)),
                    m.hard_tanh(jnp.float64(-1.0)),
                    m.hard_tanh(jnp.float64(1.0)),
                    m.hard_logistic(jnp.float64(-2.0)),
                    m.hard_logistic(jnp.float64(2.0)),
                    m.hard_logistic(jnp.float64(0.0)),
                    m.elu(jnp.float64(0.0), 1.5),
                ]
            ),
        }

    got = jax.jit(values)() if jit else values()
    want = {
        "relu'(0), relu'(-0)": [0.0, 0.0],
        "leaky_relu'(0), slope 0.2 / default": [0.2, 0.01],
        "prelu d/dx, d/dalpha at 0": [0.25, 0.5, 0.0, 0.0],
        "hard_tanh' at -1, 1, -0.999, 0.999": [0.0, 0.0, 1.0, 1.0],
        "hard_logistic' at -2, 2, -1.999, 1.999": [0.0, 0.0, 0.25, 0.25],
        "elu'(0), alpha 1.5 / default": [1.5, 1.0],
        "values at the kinks": [0.0, -1.0, 1.0, 0.0, 1.0, 0.5, 0.0],
    }
    for key, value in want.items():
        assert np.asarray(got[key]).tolist() == value, key


def test_smooth_derivatives_at_zero_exact():
    def values():
        x0 = jnp.zeros((1,), jnp.float64)
        d = lambda f: jax.vjp(f, x0)[1](jnp.ones_like(x0))[0][0]
        return jnp.stack(
            [
                d(hand.logistic),
                d(hand.tanh),
                d(hand.softplus),
                d(hand.swish),
                d(hand.gelu),
                d(lambda x: hand.gelu(x, approximate=True)),
                hand.softplus(x0)[0],
            ]
        )

    assert jax.jit(values)().tolist() == [0.25, 1.0, 0.5, 0.5, 0.5, 0.5, math.log(2.0)]


# ---------------------------------------------------------------------- extreme values

EXTREME_X = [-math.inf, -1e4, 1e4, math.inf]
# key -> (function, expected f at EXTREME_X, expected f' at EXTREME_X)
EXTREMES = {
    "logistic": (hand.logistic, [0, 0, 1, 1], [0, 0, 0, 0]),
    "tanh": (hand.tanh, [-1, -1, 1, 1], [0, 0, 0, 0]),
    "hard_logistic": (hand.hard_logistic, [0, 0, 1, 1], [0, 0, 0, 0]),
    "hard_tanh": (hand.hard_tanh, [-1, -1, 1, 1], [0, 0, 0, 0]),
    "relu": (hand.relu, [0, 0, 1e4, math.inf], [0, 0, 1, 1]),
    "leaky_relu": (
        lambda x: hand.leaky_relu(x, 0.25),
        [-math.inf, -2500, 1e4, math.inf],
        [0.25, 0.25, 1, 1],
    ),
    "prelu": (
        lambda x: hand.prelu(x, jnp.float32(0.25)),
        [-math.inf, -2500, 1e4, math.inf],
        [0.25, 0.25, 1, 1],
    ),
    "elu": (lambda x: hand.elu(x, 1.5), [-1.5, -1.5, 1e4, math.inf], [0, 0, 1, 1]),
    "swish": (hand.swish, [0, 0, 1e4, math.inf], [0, 0, 1, 1]),
    "swish-negative-beta": (lambda x: hand.swish(x, -1.0), [-math.inf, -1e4, 0, 0], [1, 1, 0, 0]),
    "softplus": (hand.softplus, [0, 0, 1e4, math.inf], [0, 0, 1, 1]),
    "gelu": (hand.gelu, [0, 0, 1e4, math.inf], [0, 0, 1, 1]),
    "gelu-tanh": (lambda x: hand.gelu(x, True), [0, 0, 1e4, math.inf], [0, 0, 1, 1]),
}


def test_elementwise_extremes_float32():
    x = jnp.array(EXTREME_X, jnp.float32)
    ones = jnp.ones_like(x)
    run = lambda x: {k: _value_and_vjp(f, (x,), ones) for k, (f, _, _) in EXTREMES.items()}
    got = jax.jit(run)(x)
    for key, (_, want_y, want_d) in EXTREMES.items():
        y, (d,) = got[key]
        assert y.dtype == d.dtype == jnp.float32, key
        np.testing.assert_array_equal(y, np.asarray(want_y, np.float32), err_msg=key)
        np.testing.assert_array_equal(d, np.asarray(want_d, np.float32), err_msg=key)


def test_parameter_gradients_at_extremes_float32():
    x = jnp.array(EXTREME_X, jnp.float32)

    def grads():
        # d/dalpha prelu = x for x <= 0, 0 for x > 0 (one alpha per entry here)
        da = jax.grad(lambda a: hand.prelu(x, a).sum())(jnp.full((4,), 0.25, jnp.float32))
        # d/dbeta swish = x^2 s (1 - s): the logistic tail wins, 0 at +-1e4 and +-inf
        db = jax.grad(lambda b: hand.swish(x, b).sum())(jnp.ones((4,), jnp.float32))
        return da, db

    da, db = jax.jit(grads)()
    np.testing.assert_array_equal(da, np.array([-math.inf, -1e4, 0, 0], np.float32))
    np.testing.assert_array_equal(db, np.zeros(4, np.float32))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_extremes_float32(name):
    inf, e = math.inf, math.e
    x = jnp.array(
        [[-1e4, 0.0, 1e4], [-inf, 0.0, 1.0], [1.0, inf, -inf], [-inf, -inf, -inf]], jnp.float32
    )
    probs = np.array(
        [[0, 0, 1], [0, 1 / (1 + e), e / (1 + e)], [0, 1, 0], [1 / 3, 1 / 3, 1 / 3]], np.float32
    )
    g = jnp.asarray(np.random.default_rng(6).normal(size=x.shape), jnp.float32)

    def run(x, g):
        hand_out = _value_and_vjp(getattr(hand, name), (x,), g)
        twin_out = _value_and_vjp(getattr(ref, name), (x[:1],), g[:1])  # the finite row
        return hand_out, twin_out

    (y, (dx,)), (y_r, (dx_r,)) = jax.jit(run)(x, g)
    if name == "softmax":
        np.testing.assert_allclose(y, probs, rtol=1e-6, atol=0)
    else:
        np.testing.assert_allclose(y[0], [-2e4, -1e4, 0], rtol=1e-7)
        np.testing.assert_allclose(np.exp(y), probs, rtol=1e-6, atol=0)
        assert y[1, 0] == -inf and y[2, 0] == -inf and y[2, 2] == -inf
    assert np.all(np.isfinite(dx))
    np.testing.assert_allclose(y[:1], y_r, rtol=1e-6)
    np.testing.assert_allclose(dx[:1], dx_r, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_large_inputs_and_nan_propagation(case):
    """|x| up to 1e4 in float32 stays finite (values and gradients); a NaN input gives NaN
    forward and backward exactly where it should; a NaN cotangent is never masked to 0."""
    rng = np.random.default_rng(8)
    big = jnp.asarray(np.tile([-1e4, -30.0, 30.0, 1e4, 0.5], (3, 1)).T, jnp.float32)  # (5, 3)
    _, p32 = case.sample(jnp.float32)
    g32 = jnp.asarray(rng.normal(size=SHAPE), jnp.float32)
    x, p = case.sample(jnp.float64, seed=9)
    x_nan = x.at[1, 2].set(jnp.nan)
    g = jnp.ones(SHAPE) if case.name in ELEMENTWISE else jnp.asarray(rng.normal(size=SHAPE))
    # x < 0 everywhere: the masks of relu & co. are 0 there, and a NaN cotangent must
    # still come back NaN (0 * NaN), not be replaced by a 0
    x_neg = -jnp.abs(x) - 3.0
    g_nan = jnp.ones(SHAPE, jnp.float64).at[2, 1].set(jnp.nan)

    def run():
        f = _fn(case, hand)
        return (
            _value_and_vjp(f, _args(case, big, p32), g32),
            _value_and_vjp(f, _args(case, x_nan, p), g),
            _value_and_vjp(f, _args(case, x_neg, p), g_nan),
        )

    (y, cts), (y_nan, cts_nan), (_, cts_gnan) = jax.jit(run)()
    for a in (y, *cts):
        assert np.all(np.isfinite(np.asarray(a))), "large finite inputs"

    nan_mask = np.zeros(SHAPE, bool)
    if case.name in ELEMENTWISE:
        nan_mask[1, 2] = True
    elif case.kwargs.get("axis", -1) == 0:
        nan_mask[:, 2] = True  # the NaN's whole column
    else:
        nan_mask[1, :] = True  # the NaN's whole row
    np.testing.assert_array_equal(np.isnan(y_nan), nan_mask)
    np.testing.assert_array_equal(np.isnan(cts_nan[0]), nan_mask)
    for ct in cts_nan[1:]:  # the parameter's gradient sums over the NaN's position
        assert np.any(np.isnan(np.asarray(ct)))

    assert np.isnan(np.asarray(cts_gnan[0])[2, 1])
    for ct in cts_gnan[1:]:
        assert np.any(np.isnan(np.asarray(ct)))


# --------------------------------------------------------------- jit, vmap, dtypes, sizes


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_eager_matches_jit_and_vmap(case):
    x, p = case.sample(jnp.float32, seed=11)
    args = _args(case, x, p)
    rest = args[1:]
    f = _fn(case, hand)
    g = jnp.asarray(np.random.default_rng(12).normal(size=SHAPE), jnp.float32)
    y_eager, vjp_eager = jax.vjp(f, *args)  # eager: op by op
    cts_eager = vjp_eager(g)
    # vmap over a new leading batch axis; per-example gradients equal the twin's
    x2 = jnp.stack([x, 2.0 * x + 0.3])  # (2, 5, 3)
    in_axes = (0,) + (None,) * len(rest)
    argnums = tuple(range(len(args)))

    def batched(module):
        fm = _fn(case, module)
        loss = lambda *a: jnp.vdot(g, fm(*a))
        per_example_grads = jax.vmap(jax.grad(loss, argnums), in_axes)(x2, *rest)
        return jax.vmap(fm, in_axes)(x2, *rest), per_example_grads

    (y_b, grads_b), (_, grads_r) = jax.jit(lambda: (batched(hand), batched(ref)))()
    _assert_tree_close(grads_b, grads_r, rtol=2e-5, atol=2e-6)
    # jitted + vmapped example 0 (= x) equals the eager forward and the eager vjp
    np.testing.assert_allclose(y_b[0], y_eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grads_b[0][0], cts_eager[0], rtol=1e-6, atol=1e-6)
    # a vmapped parameter gradient is per example; example 0's equals the eager one
    for gb, ct in zip(grads_b[1:], cts_eager[1:]):
        np.testing.assert_allclose(gb[0], ct, rtol=1e-5, atol=1e-6)


# bfloat16 keeps 8 significant bits (~2.4 decimal digits): rounding to nearest moves a value
# by at most U = 2**-8 (0.4%) of itself.
BF16_U = 2.0**-8


def _assert_bf16_close(got, want, scale, k):
    """``|got - want| <= k U (|want| + scale)`` entrywise: ``k`` bfloat16 roundings of at most
    ``U`` each, of quantities no larger than ``|want| + scale`` (``scale``: scalar or array)."""
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    bound = k * BF16_U * (np.abs(want) + scale)
    # the bound can fail: a result 10% off would break it (where it is not all zeros)
    if np.any(want != 0):
        assert np.any(0.1 * np.abs(want) > bound), "tolerance too loose to see a 10% error"
    err = np.abs(got - want)
    i = np.unravel_index(np.argmax(err / bound), err.shape) if err.size else ()
    assert np.all(err <= bound), (
        f"bfloat16 vs float32 twin: |err| {err[i]:.3g} > bound {bound[i]:.3g} at {i} "
        f"(got {got[i]:.4g}, want {want[i]:.4g}, k={k})"
    )


def _abs_jt(jac, g):
    """``|J|^T |g|``: per argument entry, the summed magnitude of the terms of its cotangent."""
    return np.tensordot(np.abs(np.asarray(g, np.float32)), np.abs(np.asarray(jac)), axes=g.ndim)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bfloat16_matches_float32_twin(case):
    """The hand rule in bfloat16 gives the float32 twin's values on the same (exactly
    representable) inputs, to bfloat16's accuracy: the output, the cotangent of x for a
    random cotangent, and (prelu, swish) the parameter's cotangent."""
    x32, p32 = case.sample(jnp.float32, seed=13)
    if case.name == "swish":
        # swish's derivatives use s (1 - s), s = logistic(beta x) rounded to bfloat16: for
        # large |beta x|, 1 - s keeps few correct bits (absolute error ~U against ~e^-|beta x|)
        # and dbeta weighs exactly those terms by x^2; the twin run in bfloat16 loses the
        # same digits (unclipped, both miss this sample's dbeta by ~4% of sum|terms|).
        # |x| <= 0.5 keeps |beta x| <= 1 (beta < 2), where 1 - s >= 0.27.
        x32 = jnp.clip(x32, -0.5, 0.5)
    x = x32.astype(jnp.bfloat16)
    p = None if p32 is None else p32.astype(jnp.bfloat16)
    args = _args(case, x, p)
    up = tuple(a.astype(jnp.float32) for a in args)  # exact float32 copies
    rng = np.random.default_rng(14)
    g = jnp.asarray(rng.standard_normal(SHAPE), jnp.bfloat16)
    # The parameter's cotangent gets a positive cotangent: every term of dalpha (g min(x, 0))
    # and of dbeta (g x^2 s (1 - s)) then has one sign, so the sum does not cancel. With a
    # random sign the sum can be ~20x smaller than its terms, and bfloat16 could not tell a
    # 10% error in it from rounding.
    g_pos = jnp.asarray(rng.uniform(0.5, 1.5, SHAPE), jnp.bfloat16)

    def run(args, up, g, g_pos):
        y, vjp = jax.vjp(_fn(case, hand), *args)
        y_ref, vjp_ref = jax.vjp(_fn(case, ref), *up)
        jac = jax.jacrev(_fn(case, ref), tuple(range(len(up))))(*up)
        cts, cts_pos = vjp(g), vjp(g_pos)
        return y, cts, cts_pos, y_ref, vjp_ref(g.astype(jnp.float32)), vjp_ref(g_pos.astype(jnp.float32)), jac

    y, cts, cts_pos, y_ref, cts_ref, cts_pos_ref, jac = jax.jit(run)(args, up, g, g_pos)
    assert y.dtype == jnp.bfloat16 and y.shape == SHAPE
    for ct, a in zip(cts + cts_pos, args + args):
        assert ct.dtype == jnp.bfloat16 and ct.shape == a.shape
        assert np.all(np.isfinite(np.asarray(ct, np.float32)))
    # Tolerances, k roundings of at most U each (k = 3 below) against a scale:
    # - y: a few roundings of values no larger than max|y|.
    # - dx_i = sum_j g_j dy_j/dx_i: its rounding errors scale with its terms, (|J|^T |g|)_i;
    #   and the derivative is formed from O(1) quantities whose difference can be small
    #   (1 - y for logistic, 1 - y^2 for tanh, g - <y, g> for softmax), so its absolute
    #   error is ~U |g_i| even where the derivative is tiny: scale_i = |g_i| + (|J|^T |g|)_i.
    # - dparam: a sum of one-signed terms, scale = sum|terms| = (|J|^T |g|).
    # Measured max |err| / (U (|want| + scale)): 1.9 here (gelu-tanh's dx; most <= 1), <= 2.3
    # over 20 other samples. k = 3 still rejects a 10% error in every output (closest:
    # logistic's dx, f' <= 1/4 against a scale ~|g|, where it would fail only for k > 4.3).
    k = 3
    _assert_bf16_close(y, y_ref, np.abs(np.asarray(y_ref)).max(), k)
    _assert_bf16_close(cts[0], cts_ref[0], np.abs(np.asarray(g, np.float32)) + _abs_jt(jac[0], g), k)
    if p is not None:
        _assert_bf16_close(cts_pos[1], cts_pos_ref[1], _abs_jt(jac[1], g_pos), k)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_zero_size_batch(case):
    _, p = case.sample(jnp.float32)
    x = jnp.zeros((0, 3), jnp.float32)
    args = _args(case, x, p)
    y, cts = _vjp(_fn(case, hand), args, jnp.zeros((0, 3), jnp.float32))
    assert y.shape == (0, 3) and y.dtype == jnp.float32
    assert cts[0].shape == (0, 3)
    for ct, a in zip(cts[1:], args[1:]):
        assert ct.shape == a.shape and np.all(np.asarray(ct) == 0)


def test_parameter_dtype_differs_from_x():
    # alpha/beta in float64, x in float32: the output and dx stay float32, dparam is float64
    x = jnp.asarray(np.random.default_rng(14).normal(size=SHAPE), jnp.float32)
    params = {"prelu": jnp.full((3,), 0.2), "swish": jnp.array(1.3)}

    def run():
        out = {}
        for name, p in params.items():
            for tag, m in (("hand", hand), ("twin", ref)):
                f = getattr(m, name)
                grads = jax.grad(lambda x, p: f(x, p).sum(), argnums=(0, 1))(x, p)
                out[name, tag] = (f(x, p), *grads)
        return out

    out = jax.jit(run)()
    for name in params:
        y, dx, dp = out[name, "hand"]
        assert y.dtype == dx.dtype == jnp.float32 and dp.dtype == jnp.float64, name
        np.testing.assert_allclose(dp, out[name, "twin"][2], rtol=1e-5)


def test_python_scalar_parameters_and_inputs():
    assert float(hand.prelu(-2.0, 0.5)) == -1.0
    assert float(hand.swish(jnp.float32(0.0), 2)) == 0.0
    assert float(hand.relu(3.0)) == 3.0
    assert jax.grad(hand.swish, argnums=1)(1.0, 0.0) == 0.25  # x^2 s (1 - s) at beta = 0


def test_prelu_alpha_shape_one_broadcasts():
    x = jnp.array([[-1.0, 2.0, -3.0]], jnp.float64)
    a = jnp.array([0.5], jnp.float64)
    y, da = jax.jit(lambda a: (hand.prelu(x, a), jax.grad(lambda a: hand.prelu(x, a).sum())(a)))(a)
    np.testing.assert_array_equal(y, [[-0.5, 2.0, -1.5]])
    assert da.tolist() == [-4.0]


# --------------------------------------------------------------------------- bad input

CALLS_WITH_X = {
    "logistic": lambda m, x: m.logistic(x),
    "tanh": lambda m, x: m.tanh(x),
    "hard_logistic": lambda m, x: m.hard_logistic(x),
    "hard_tanh": lambda m, x: m.hard_tanh(x),
    "relu": lambda m, x: m.relu(x),
    "leaky_relu": lambda m, x: m.leaky_relu(x),
    "prelu": lambda m, x: m.prelu(x, jnp.ones((3,), jnp.float32)),
    "elu": lambda m, x: m.elu(x),
    "swish": lambda m, x: m.swish(x),
    "softplus": lambda m, x: m.softplus(x),
    "gelu": lambda m, x: m.gelu(x),
    "softmax": lambda m, x: m.softmax(x),
    "log_softmax": lambda m, x: m.log_softmax(x),
}
MODULES = pytest.mark.parametrize("m", [hand, ref], ids=["hand", "twin"])


def _escape_shape(shape) -> str:
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


@MODULES
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_integer_x_raises_type_error(m, name):
    x = jnp.ones((2, 3), jnp.int32)
    with pytest.raises(TypeError, match=rf"^{name}: x must have a floating-point dtype, got int32"):
        CALLS_WITH_X[name](m, x)


@MODULES
def test_non_array_x_raises_type_error(m):
    with pytest.raises(TypeError, match=r"relu: x must be an array, got list"):
        m.relu([1.0, 2.0])
    with pytest.raises(TypeError, match=r"tanh: x must be a floating-point array, got a bool"):
        m.tanh(True)


@MODULES
@pytest.mark.parametrize("bad", [(2,), (4,), (3, 1), (1, 3)])
def test_prelu_alpha_shape_mismatch(m, bad):
    x = jnp.ones((5, 3), jnp.float32)
    with pytest.raises(
        ValueError,
        match=r"prelu: alpha must have shape \(\), \(1,\) or \(3,\) to match the last axis of x "
        rf"\(x.shape=\(5, 3\)\), got alpha.shape={_escape_shape(bad)}",
    ):
        m.prelu(x, jnp.ones(bad, jnp.float32))


@MODULES
def test_prelu_scalar_x_needs_scalar_alpha(m):
    with pytest.raises(ValueError, match=r"prelu: x is a scalar \(x.shape=\(\)\), so alpha must"):
        m.prelu(jnp.float32(1.0), jnp.ones((1,), jnp.float32))


@MODULES
def test_prelu_integer_alpha(m):
    with pytest.raises(TypeError, match=r"prelu: alpha must have a floating-point dtype, got int"):
        m.prelu(jnp.ones((2, 3)), jnp.ones((3,), jnp.int32))


@MODULES
def test_swish_beta_not_broadcastable(m):
    x = jnp.ones((5, 3), jnp.float32)
    with pytest.raises(
        ValueError,
        match=r"swish: beta must be a scalar or broadcastable to x.shape=\(5, 3\), "
        r"got beta.shape=\(4,\)",
    ):
        m.swish(x, jnp.ones((4,), jnp.float32))
    with pytest.raises(ValueError, match=r"got beta.shape=\(2, 5, 3\)"):
        m.swish(x, jnp.ones((2, 5, 3), jnp.float32))  # would enlarge the output


@MODULES
def test_swish_integer_beta(m):
    with pytest.raises(TypeError, match=r"swish: beta must have a floating-point dtype, got int32"):
        m.swish(jnp.ones((2, 3)), jnp.ones((3,), jnp.int32))


@MODULES
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_axis_out_of_range(m, name):
    x = jnp.ones((5, 3), jnp.float32)
    for axis in (2, -3):
        with pytest.raises(
            ValueError,
            match=rf"{name}: axis {axis} is out of range for x of rank 2 \(x.shape=\(5, 3\)\); "
            r"expected -2 <= axis < 2",
        ):
            getattr(m, name)(x, axis=axis)
    with pytest.raises(ValueError, match=rf"{name}: axis -1 is out of range for x of rank 0"):
        getattr(m, name)(jnp.float32(1.0))
    with pytest.raises(TypeError, match=rf"{name}: axis must be an int, got tuple"):
        getattr(m, name)(x, axis=(0, 1))


@MODULES
def test_static_settings_must_be_python_values(m):
    x = jnp.ones((2,), jnp.float32)
    with pytest.raises(TypeError, match=r"leaky_relu: negative_slope must be a Python float"):
        m.leaky_relu(x, negative_slope=jnp.ones((2,)))
    with pytest.raises(TypeError, match=r"elu: alpha must be a Python float"):
        m.elu(x, alpha="1.0")
    with pytest.raises(TypeError, match=r"gelu: approximate must be a bool, got str 'tanh'"):
        m.gelu(x, approximate="tanh")


def test_errors_are_raised_under_jit():
    with pytest.raises(ValueError, match=r"softmax: axis 3 is out of range"):
        jax.jit(lambda x: hand.softmax(x, axis=3))(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match=r"prelu: alpha must have shape"):
        jax.jit(hand.prelu)(jnp.ones((2, 2)), jnp.ones((3,)))
