"""funcnn.nn.combinators beyond serial: FanOut, FanInSum, FanInConcat, Parallel, Residual.

Shapes (init's prediction equals apply's), values, the hand-written fan-out / fan-in rules
against their autodiff twins and finite differences (float64, tests/conftest.py enables
x64), the rule switch through every combinator, the diagnostics walking through branches,
and every error message.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn.reference.combinators as ref
from funcnn import diagnostics as diag
from funcnn import gradcheck
from funcnn.nn.choice import Choice
from funcnn.nn.combinators import (
    Combinator,
    FanInConcat,
    FanInSum,
    FanOut,
    Parallel,
    Residual,
    fan_in_concat,
    fan_in_sum,
    fan_out,
    leaf_layers,
    serial,
)
from funcnn.gradcheck.combinator_cases import COMBINATOR_CASES, combinator_checks
from funcnn.nn import BatchNorm, Conv1D, Conv2D, Dense, Dropout, Flatten, Relu, Tanh
from funcnn.losses import mse
from funcnn.reference.activations import tanh as ref_tanh
from funcnn.reference.linear import dense as ref_dense

F64 = jnp.float64
KEY = jax.random.key(0)


def _x(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), F64)


def _params(model, in_shape, seed=0):
    """float64 params of ``model``'s structure, drawn here (no compiled init: it is slow to
    compile for deep models): weights ~ N(0, 1/fan_in), vectors and scalars ~ N(0, 0.5^2);
    state entries (batch norm's running mean and variance) are ones.
    Returns ``(out_shape, params, state)``."""
    found = {}

    def shapes():
        out_shape, p, s = model.init(KEY, in_shape)
        found["out_shape"] = out_shape  # Python ints: kept aside, eval_shape would make them arrays
        return p, s

    p, s = jax.eval_shape(shapes)
    out_shape = found["out_shape"]
    rng = np.random.default_rng(seed)

    def draw(leaf):
        if len(leaf.shape) >= 2:
            return jnp.asarray(rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1])), F64)
        return jnp.asarray(0.5 * rng.standard_normal(leaf.shape), F64)

    params = jax.tree.map(draw, p)
    state = jax.tree.map(lambda a: jnp.ones(a.shape, F64), s)  # batch norm: mean 1, var 1
    return out_shape, params, state


def _init_shapes(model, in_shape):
    """``model.init`` traced, not run: its errors, without compiling the initializers."""
    return jax.eval_shape(lambda: model.init(KEY, in_shape)[1:])


def _apply_shapes(model, params, state, x):
    out = jax.eval_shape(lambda p, x: model.apply(p, state, x)[0], params, x)
    return jax.tree.map(lambda a: tuple(a.shape), out)


def _has_custom_vjp(model, params, state, x):
    jaxpr = jax.make_jaxpr(lambda p, x: model.apply(p, state, x)[0])(params, x)
    return "custom_vjp" in str(jaxpr)


def _grads(model, params, state, x, g):
    """Gradients w.r.t. params and x of ``<g, model(x)>`` (g: a random cotangent), jitted."""

    def f(p, x):
        out = model.apply(p, state, x)[0]
        return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(out)))

    return jax.jit(jax.grad(f, argnums=(0, 1)))(params, x)


def _assert_trees_close(a, b, rtol=1e-10, atol=1e-12):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(la, lb):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


# ------------------------------------------------------------------------ the ops' rules


def test_fan_ops_values_and_exact_backward_rules():
    a, b, c = _x((3, 4), 1), _x((3, 4), 2), _x((3, 4), 3)
    # fan_out: n copies; backward adds the n cotangents
    ys, vjp = jax.vjp(lambda x: fan_out(x, 3), a)
    assert len(ys) == 3 and all(np.array_equal(y, a) for y in ys)
    (dx,) = vjp((a, b, c))
    np.testing.assert_array_equal(dx, a + b + c)
    # fan_in_sum: the sum; backward sends the one cotangent down every branch
    y, vjp = jax.vjp(lambda *xs: fan_in_sum(*xs), a, b, c)
    np.testing.assert_array_equal(y, a + b + c)
    for d in vjp(c):
        np.testing.assert_array_equal(d, c)
    # fan_in_concat: backward splits the cotangent into the pieces
    p, q = _x((3, 2), 4), _x((3, 5), 5)
    y, vjp = jax.vjp(lambda p, q: fan_in_concat(p, q), p, q)
    np.testing.assert_array_equal(y, jnp.concatenate([p, q], axis=-1))
    g = _x((3, 7), 6)
    dp, dq = vjp(g)
    np.testing.assert_array_equal(dp, g[:, :2])
    np.testing.assert_array_equal(dq, g[:, 2:])
    y, vjp = jax.vjp(lambda p, q: fan_in_concat(p, q, axis=0), a, _x((1, 4), 7))
    dp, dq = vjp(_x((4, 4), 8))
    assert dp.shape == (3, 4) and dq.shape == (1, 4)
    # a pytree through fan_out: each leaf's copies are summed
    (d,) = jax.vjp(lambda t: fan_out(t, 2), (a, b))[1](((a, b), (c, c)))
    np.testing.assert_array_equal(d[0], a + c)
    np.testing.assert_array_equal(d[1], b + c)


def test_twins_are_plain_and_forwards_match():
    a, b = _x((2, 3), 1), _x((2, 3), 2)
    for hand, twin, args, kw in (
        (fan_out, ref.fan_out, (a,), {"n": 2}),
        (fan_in_sum, ref.fan_in_sum, (a, b), {}),
        (fan_in_concat, ref.fan_in_concat, (a, b), {"axis": 0}),
    ):
        assert not isinstance(twin, jax.custom_vjp)
        _assert_trees_close(hand(*args, **kw), twin(*args, **kw), rtol=0, atol=0)
        jaxpr = str(jax.make_jaxpr(lambda *xs: twin(*xs, **kw))(*args))
        assert "custom_vjp" not in jaxpr
        assert "custom_vjp" in str(jax.make_jaxpr(lambda *xs: hand(*xs, **kw))(*args))


def test_registered_combinator_cases_pass_gradcheck():
    reports = gradcheck.run(COMBINATOR_CASES)
    assert len(reports) == len(COMBINATOR_CASES) >= 6
    for r in reports:
        assert r.passed, (r.op, r.config, r.error, r.fd_message)
        assert r.max_rel_err <= 1e-12  # a copy, a sum, a slice: exact up to the order of additions


def test_layer_checks_hand_vs_autodiff_vs_finite_differences():
    checks = combinator_checks()
    assert len(checks) >= 4
    for name, pair, make in checks:
        report = gradcheck.check(pair, make(np.random.default_rng(0), F64), config=name)
        assert report.passed, (name, report)


def test_hand_rules_run_in_named_scopes():
    def loss(x):
        a, b = fan_out(x, 2)
        return jnp.sum(fan_in_sum(a, jnp.tanh(b)) * fan_in_concat(a, b)[:, :3])

    text = jax.jit(jax.grad(loss)).lower(_x((2, 3))).as_text(debug_info=True)
    for op in ("fan_out", "fan_in_concat"):  # fan_in_sum's backward is no op at all: g, k times
        assert f"funcnn.{op}/bwd" in text, op
    assert "funcnn.fan_in_sum/fwd" in text


# ------------------------------------------------------------------------ shapes and values


SHAPE_CASES = [
    (FanOut(3), (2, 4)),
    (FanOut(2), ((2, 4), (2, 3))),
    (FanInSum(), ((2, 4), (2, 4), (2, 4))),
    (FanInConcat(), ((2, 3), (2, 5))),
    (FanInConcat(axis=1), ((2, 4, 4, 3), (2, 1, 4, 3))),
    (Parallel(Dense(3), Relu()), ((2, 4), (2, 5))),
    (serial(FanOut(2), Parallel(Dense(3), serial(Dense(2), Tanh())), FanInConcat()), (2, 4)),
    (Residual(Dense(4), Relu(), Dense(4)), (2, 4)),
    (Residual(Dense(6), Relu(), shortcut=Dense(6)), (2, 4)),
    (Residual(Conv2D(5, 3, stride=2, padding="SAME"), Relu(), shortcut=Conv2D(5, 1, stride=2),
              branch_scale=0.0), (2, 6, 6, 3)),
    (serial(Residual(Conv2D(3, 3, padding="SAME"), BatchNorm()), Flatten(), Dense(2)), (2, 4, 4, 3)),
]


@pytest.mark.parametrize("model,in_shape", SHAPE_CASES, ids=[m.name for m, _ in SHAPE_CASES])
def test_init_predicts_the_shape_apply_returns(model, in_shape):
    assert isinstance(model, Combinator) or model.kind == "fan"
    assert repr(model) == model.name
    out_shape, params, state = _params(model, in_shape)
    x = jax.tree.map(lambda s: _x(s), in_shape, is_leaf=lambda s: isinstance(s, tuple) and all(
        isinstance(d, int) for d in s))
    assert _apply_shapes(model, params, state, x) == out_shape


def test_values():
    a, b = _x((3, 4), 1), _x((3, 4), 2)
    ys, _ = FanOut(2).apply((), (), a)
    assert isinstance(ys, tuple) and all(np.array_equal(y, a) for y in ys)
    np.testing.assert_array_equal(FanInSum().apply((), (), (a, b))[0], a + b)
    np.testing.assert_array_equal(FanInConcat(axis=0).apply((), (), [a, b])[0], jnp.concatenate([a, b], 0))
    dense, relu = Dense(3), Relu()
    par = Parallel(dense, relu)
    _, params, state = _params(par, ((3, 4), (3, 4)))
    (y1, y2), new_state = par.apply(params, state, (a, b))
    np.testing.assert_allclose(y1, a @ params[0]["w"] + params[0]["b"], rtol=1e-13)
    np.testing.assert_array_equal(y2, jnp.maximum(b, 0))
    assert new_state == ((), ())


def test_residual_values_and_skipinit():
    x = _x((5, 4), 1)
    block = Residual(Dense(4), Tanh(), Dense(4))
    proj = Residual(Dense(6), Tanh(), shortcut=Dense(6), branch_scale=0.5)
    _, params, state = _params(block, x.shape)
    _, p_proj, s_proj = _params(proj, x.shape)
    assert set(p_proj) == {"branch", "alpha", "shortcut"} and set(s_proj) == {"branch", "shortcut"}
    y, y_proj = jax.jit(lambda p, q: (block.apply(p, state, x)[0], proj.apply(q, s_proj, x)[0]))(params, p_proj)
    (p1, _, p2) = params
    branch = ref_dense(ref_tanh(ref_dense(x, p1["w"], p1["b"])), p2["w"], p2["b"])
    np.testing.assert_allclose(y, x + branch, rtol=1e-13)
    # projection shortcut and branch scale: y = shortcut(x) + alpha * branch(x)
    pb, ps, alpha = p_proj["branch"][0], p_proj["shortcut"], p_proj["alpha"]
    want = ref_dense(x, ps["w"], ps["b"]) + alpha * ref_tanh(ref_dense(x, pb["w"], pb["b"]))
    np.testing.assert_allclose(y_proj, want, rtol=1e-13)
    # SkipInit: alpha starts at 0.0, the block is the identity; alpha is learnable
    _, p0, _ = Residual(Tanh(), branch_scale=0.0, dtype=F64).init(KEY, (5, 4))
    assert p0 == {"branch": ((),), "alpha": 0.0} and p0["alpha"].dtype == F64
    skip = Residual(Dense(4), Tanh(), branch_scale=0.0)
    _, params, state = _params(skip, x.shape)
    params["alpha"] = jnp.zeros((), F64)
    y, g_alpha = jax.jit(lambda p: (skip.apply(p, state, x)[0],
                                    jax.grad(lambda p: jnp.sum(skip.apply(p, state, x)[0] ** 2))(p)["alpha"]))(params)
    np.testing.assert_array_equal(y, x)
    assert float(jnp.abs(g_alpha)) > 0  # dL/dalpha = <delta_y, branch(x)>


def test_residual_params_are_serials_and_state_is_threaded():
    layers = (Dense(4), Relu(), Dense(4))
    shape = (3, 4)

    @jax.jit
    def inits(key):
        return (Residual(*layers).init(key, shape)[1:], serial(*layers).init(key, shape)[1:],
                Residual(*layers, branch_scale=1.0).init(key, shape)[1])

    (p_res, s_res), (p_ser, s_ser), p_opt = inits(KEY)
    assert jax.tree.structure(p_res) == jax.tree.structure(p_ser) and s_res == s_ser
    _assert_trees_close(p_res, p_ser, rtol=0, atol=0)  # same key, same arrays
    _assert_trees_close(p_opt["branch"], p_ser, rtol=0, atol=0)
    # batch norm's running statistics are threaded through branch and shortcut
    block = Residual(Dense(4), BatchNorm(), shortcut=serial(Dense(4), BatchNorm()))
    _, params, state = _params(block, shape)
    _, new = jax.jit(lambda p, s, x: block.apply(p, s, x, train=True))(params, state, _x(shape, 2))
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert float(jnp.abs(new["branch"][1]["mean"] - 1).sum()) > 0
    assert float(jnp.abs(new["shortcut"][1]["mean"] - 1).sum()) > 0
    # dropout keys: split as serial splits them (same masks as the serial twin)
    x = _x(shape, 3)

    @jax.jit
    def drops(key):
        y, _ = Residual(Dropout(0.5)).apply(((),), ((),), x, key=key, train=True)
        z, _ = serial(Dropout(0.5)).apply(((),), ((),), x, key=key, train=True)
        return y, z

    y, z = drops(jax.random.key(1))
    np.testing.assert_array_equal(y, x + z)


def test_macs_sum_over_children():
    assert Parallel(Dense(3), Dense(5)).macs(((2, 4), (2, 6)), None) == 2 * 4 * 3 + 2 * 6 * 5
    block = Residual(Dense(8), Relu(), Dense(4), shortcut=Dense(4))
    assert block.macs((2, 4), (2, 4)) == 2 * (4 * 8 + 8 * 4) + 2 * 4 * 4
    model = serial(Dense(4), block, FanOut(2), Parallel(Dense(2), Dense(2)), FanInSum())
    assert model.macs((2, 3), (2, 2)) == 2 * 3 * 4 + block.macs((2, 4), (2, 4)) + 2 * (2 * 4 * 2)
    assert diag.summary(model, (2, 3)).total_macs == model.macs((2, 3), (2, 2))
    assert FanOut(2).macs is None and Parallel(Relu()).macs(((2, 3),), None) is None


# ------------------------------------------------------------------------ hand vs autodiff


def test_hand_and_autodiff_agree_through_every_combinator():
    model = serial(
        Dense(6), Tanh(),
        Residual(Dense(6), Tanh(), Dense(6)),
        FanOut(3), Parallel(Dense(4), serial(Dense(4), Tanh()), Dense(4)), FanInSum(),
        FanOut(2), Parallel(Tanh(), Dense(3)), FanInConcat(),
        Residual(Dense(5), Tanh(), shortcut=Dense(5), branch_scale=0.7),
    )
    x = _x((4, 3), 1)
    out_shape, params, state = _params(model, x.shape, 2)
    g = _x(out_shape, 3)
    hand, auto = _grads(model, params, state, x, g), _grads(model.with_rule("autodiff"), params, state, x, g)
    _assert_trees_close(hand, auto, rtol=1e-10, atol=1e-13)
    assert float(sum(jnp.sum(jnp.abs(a)) for a in jax.tree.leaves(hand))) > 0


def test_deep_residual_net_hand_and_autodiff_gradients_agree():
    depth = 20
    model = serial(Dense(8), *[Residual(Dense(8), Relu()) for _ in range(depth)], Dense(3))
    x = _x((4, 5), 1)
    _, params, state = _params(model, x.shape, 2)
    g = _x((4, 3), 3)
    hand, auto = _grads(model, params, state, x, g), _grads(model.with_rule("autodiff"), params, state, x, g)
    _assert_trees_close(hand, auto, rtol=1e-9, atol=1e-12)
    # the identity shortcuts carry the error term to the bottom of the stack
    terms = diag.error_terms(model, params, state, mse, x, _x((4, 3), 4))
    assert len(terms.names) == depth + 2 and terms.names[1] == "1.0:Dense(8)"
    assert float(terms.delta_norms[0]) > 0.1 * float(terms.delta_norms[-1])


# ------------------------------------------------------------------------ the rule switch


def test_with_rule_switches_every_combinator_and_its_own_backward():
    x = _x((2, 4), 1)
    for model, xin in (
        (Residual(Dense(4), Relu()), x),
        (Residual(Dense(4), shortcut=Dense(4), branch_scale=0.5), x),
        (serial(FanOut(2), Parallel(Dense(4), Relu()), FanInSum()), x),
        (serial(FanOut(2), FanInConcat()), x),
        (FanOut(2), x),
        (FanInSum(), (x, x)),
    ):
        _, params, state = _params(model, jax.tree.map(lambda a: a.shape, xin))
        auto = model.with_rule("autodiff")
        assert _has_custom_vjp(model, params, state, xin), model.name
        assert not _has_custom_vjp(auto, params, state, xin), model.name
        assert _has_custom_vjp(auto.with_rule("hand"), params, state, xin), model.name
        assert model.rule == "hand" and auto.rule == "autodiff"
        assert all(leaf.rule in ("autodiff", None) for leaf in leaf_layers(auto))
    # serial(..., rule=...) reaches a combinator's own fan-out/sum, and children's shared rule sets it
    block = Residual(Dense(4), Relu())
    _, params, state = _params(block, (2, 4))
    assert not _has_custom_vjp(serial(block, rule="autodiff"), (params,), (state,), x)
    own = Residual(Dense(4, rule="autodiff"), Relu(rule="autodiff"))
    assert own.rule == "autodiff" and not _has_custom_vjp(own, params, state, x)
    mixed = Residual(Dense(4), Relu(rule="autodiff"))
    assert mixed.rule is None and _has_custom_vjp(mixed, params, state, x)
    assert Parallel(Dense(3), Relu(rule="autodiff")).rule is None
    assert Parallel(Flatten()).rule is None and Parallel(Flatten()).with_rule("autodiff").rule is None
    assert FanOut(2).with_rule("autodiff").name == "FanOut(2, rule='autodiff')"
    assert FanInConcat(axis=0).with_rule("autodiff").name == "FanInConcat(axis=0, rule='autodiff')"


def test_rule_as_a_choice_picks_by_data():
    model = serial(Dense(5), Residual(Dense(5), Tanh()), FanOut(2), Parallel(Tanh(), Dense(5)), FanInSum())
    x = _x((3, 4), 1)
    out_shape, params, state = _params(model, x.shape)
    g = _x(out_shape, 2)
    want = _grads(model, params, state, x, g)
    # a concrete choice is the plain pick: no custom rule left for "autodiff"
    assert not _has_custom_vjp(model.with_rule(Choice.of(("hand", "autodiff"), "autodiff")), params, state, x)

    @jax.jit
    def grads(i):
        picked = model.with_rule(Choice(("hand", "autodiff"), i))

        def f(p):
            return jnp.vdot(g, picked.apply(p, state, x)[0])

        return jax.grad(f)(params)

    for i in (0, 1):
        _assert_trees_close(grads(jnp.int32(i)), want[0], rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------------ diagnostics


def _branchy():
    return serial(
        Dense(6), Tanh(),                                         # 0, 1
        Residual(Dense(6), Tanh(), Dense(6)),                     # 2.0, 2.1, 2.2
        FanOut(2),                                                # 3
        Parallel(Dense(4), serial(Dense(4), Tanh())),             # 4.0, 4.1.0, 4.1.1
        FanInSum(),                                               # 5
        Residual(Dense(3), Tanh(), shortcut=Dense(3), branch_scale=0.5),  # 6.0.0, 6.0.1, 6.1
        Dense(2),                                                 # 7
    )


def test_error_terms_through_branches_equal_a_direct_grad():
    model = _branchy()
    x, y = _x((5, 4), 1), _x((5, 2), 2)
    _, params, state = _params(model, x.shape, 3)
    p0, _, (r1, _, r2), _, (q1, (q2, _)), _, res, p7 = params

    def d(x, p):
        return ref_dense(x, p["w"], p["b"])

    def loss_at(e):  # the network unrolled by hand with the twins, e[l] added to z^(l)
        h = ref_tanh(d(x, p0) + e[0])
        z1 = d(h, r1) + e[1]
        h = h + d(ref_tanh(z1), r2) + e[2]
        a = d(h, q1) + e[3]
        b = d(h, q2) + e[4]
        h = a + ref_tanh(b)
        zb = d(h, res["branch"][0]) + e[5]
        zs = d(h, res["shortcut"]) + e[6]
        h = zs + res["alpha"] * ref_tanh(zb)
        return mse(d(h, p7) + e[7], y)

    widths = (6, 6, 6, 4, 4, 3, 3, 2)
    zeros = [jnp.zeros((5, w), F64) for w in widths]
    expected = jax.jit(jax.grad(loss_at))(zeros)
    names = ("0:Dense(6)", "2.0:Dense(6)", "2.2:Dense(6)", "4.0:Dense(4)", "4.1.0:Dense(4)",
             "6.0.0:Dense(3)", "6.1:Dense(3)", "7:Dense(2)")
    for m in (model.with_rule("autodiff"), model):
        terms = diag.error_terms(m, params, state, mse, x, y)
        assert terms.names == (names if m is model else tuple(n.replace(")", ", rule='autodiff')") for n in names))
        for got, want in zip(terms.deltas, expected):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
        assert float(terms.loss) == pytest.approx(float(loss_at(zeros)), rel=1e-12)
    # the weight gradients are the model's own, leaf by leaf
    grads = jax.jit(jax.grad(lambda p: mse(model.apply(p, state, x)[0], y)))(params)
    own = [grads[0], grads[2][0], grads[2][2], grads[4][0], grads[4][1][0],
           grads[6]["branch"][0], grads[6]["shortcut"], grads[7]]
    for got, want in zip(terms.weight_grads, own):
        _assert_trees_close(got, want, rtol=1e-10, atol=1e-14)


def test_error_terms_use_the_models_own_keys_for_dropout_in_branches():
    model = serial(Residual(Dense(3), Dropout(0.5)), FanOut(2), Parallel(Dropout(0.3), Dense(2)), FanInConcat())
    x, y = _x((8, 3), 1), _x((8, 5), 2)
    _, params, state = _params(model, x.shape)
    key = jax.random.key(7)
    terms = diag.error_terms(model, params, state, mse, x, y, key=key, train=True)
    want = jax.jit(lambda p: mse(model.apply(p, state, x, key=key, train=True)[0], y))(params)
    assert float(terms.loss) == pytest.approx(float(want), rel=1e-13)


def test_summary_activation_stats_and_variance_report_on_a_residual_model():
    model = serial(Dense(6), Residual(Dense(6), Relu(), Dense(6), shortcut=Dense(6), branch_scale=0.0),
                   Residual(Dense(6), Tanh()), Dense(2))
    s = diag.summary(model, (4, 3))
    assert [r.name for r in s.rows] == [
        "0:Dense(6)", "1.0.0:Dense(6)", "1.0.1:Relu()", "1.0.2:Dense(6)", "1.1:Dense(6)",
        "1:Residual(Dense(6), Relu(), Dense(6), shortcut=Dense(6), branch_scale=0.0)",
        "2.0:Dense(6)", "2.1:Tanh()", "3:Dense(2)",
    ]
    assert [r.params for r in s.rows] == [24, 42, 0, 42, 42, 1, 42, 0, 14]
    assert s.total_params == 24 + 3 * 42 + 1 + 42 + 14 == sum(r.params for r in s.rows)
    assert s.total_macs == 4 * (3 * 6 + 4 * 36 + 6 * 2) and s.out_shape == (4, 2)
    assert "Residual" in str(s)
    # a model that takes a tuple: in_shape is a tuple of shapes
    par = diag.summary(serial(Parallel(Dense(2), Dense(2)), FanInSum()), ((1, 3), (1, 5)))
    assert [r.params for r in par.rows] == [8, 12, 0] and par.out_shape == (1, 2)
    assert par.rows[-1].in_shape == ((1, 2), (1, 2))

    x = _x((16, 3), 1)
    _, params, state = _params(model, x.shape, 2)
    stats = diag.activation_stats(model, params, state, x)
    assert stats.names == ("1.0.1:Relu()", "2.1:Tanh()") and stats.activations == ("relu", "tanh")
    # the ReLU's input is the branch's first Dense's output
    z = ref_dense(ref_dense(x, params[0]["w"], params[0]["b"]), params[1]["branch"][0]["w"],
                  params[1]["branch"][0]["b"])
    assert float(stats.inactive_fraction[0]) == pytest.approx(float(jnp.mean(z <= 0)))

    rep = diag.variance_report(model, params, state, x)
    assert rep.names == tuple(r.name for r in s.rows if not r.name.startswith("1:Residual"))
    np.testing.assert_allclose(rep.forward_var[1], jnp.var(z), rtol=1e-12)
    assert np.isnan(rep.weight_grad_var[2]) and not np.isnan(rep.weight_grad_var[1])
    # a fan-out's row pools its copies; backward: the sum of the two branches' gradients
    fan = serial(Dense(4), FanOut(2), Parallel(Dense(4), Tanh()), FanInSum())
    _, params, state = _params(fan, x.shape, 3)
    rep = diag.variance_report(fan, params, state, x, lambda out, t: jnp.sum(out * t), _x((16, 4), 5))
    assert rep.names == ("0:Dense(4)", "1:FanOut(2)", "2.0:Dense(4)", "2.1:Tanh()", "3:FanInSum()")
    np.testing.assert_allclose(rep.forward_var[1], rep.forward_var[0], rtol=1e-12)


# ------------------------------------------------------------------------ errors


def test_fan_op_errors():
    a, b = jnp.ones((2, 3)), jnp.ones((2, 4))
    with pytest.raises(ValueError, match=r"fan_out: n must be a positive int, got 0"):
        fan_out(a, 0)
    with pytest.raises(TypeError, match=r"fan_out: n must be a positive int \(a static setting\), got float 2\.0"):
        ref.fan_out(a, 2.0)
    with pytest.raises(ValueError, match=r"fan_in_sum: every input must have the same shape to be summed, "
                                         r"got shapes \(2, 3\), \(2, 4\)"):
        fan_in_sum(a, b)
    with pytest.raises(TypeError, match=r"fan_in_sum: arrays must share one dtype, got xs\[0\]\.dtype=float32, "
                                        r"xs\[1\]\.dtype=float64"):
        ref.fan_in_sum(jnp.ones(3, jnp.float32), jnp.ones(3, F64))
    with pytest.raises(TypeError, match=r"fan_in_sum: input 0 is a tuple, expected an array; pass the arrays "
                                        r"themselves, fan_in_sum\(\*xs\)"):
        fan_in_sum((a, a))
    with pytest.raises(TypeError, match=r"fan_in_concat: expected at least one input array, got none"):
        fan_in_concat()
    with pytest.raises(ValueError, match=r"fan_in_concat: every input must have the same size on every axis "
                                         r"but axis 0, got shapes \(2, 3\), \(2, 4\)"):
        fan_in_concat(a, b, axis=0)
    with pytest.raises(ValueError, match=r"fan_in_concat: axis 2 is out of range for inputs of rank 2"):
        ref.fan_in_concat(a, b, axis=2)


def test_fan_layer_errors():
    a, b = jnp.ones((2, 3)), jnp.ones((2, 4))
    with pytest.raises(ValueError, match=r"FanOut: n must be a positive int, got 0"):
        FanOut(0)
    with pytest.raises(ValueError, match=r"FanOut\(2, rule='fast'\): unknown rule 'fast'"):
        FanOut(2, rule="fast")
    with pytest.raises(ValueError, match=r"FanInSum\(\): every input must have the same shape to be summed, "
                                         r"got in_shape \(\(2, 3\), \(2, 4\)\)"):
        FanInSum().init(KEY, ((2, 3), (2, 4)))
    with pytest.raises(ValueError, match=r"FanInSum\(\): every input must have the same shape to be summed, "
                                         r"got shapes \(\(2, 3\), \(2, 4\)\)"):
        FanInSum().apply((), (), (a, b))
    with pytest.raises(ValueError, match=r"FanInSum\(\): in_shape must be a tuple of one or more shapes \(one per "
                                         r"input, as FanOut or Parallel hand on\), got the single shape \(2, 3\)"):
        FanInSum().init(KEY, (2, 3))
    with pytest.raises(TypeError, match=r"FanInConcat\(\): x must be a tuple of inputs \(as FanOut or Parallel "
                                        r"hand on\), got ArrayImpl of shape \(2, 3\)"):
        FanInConcat().apply((), (), a)
    with pytest.raises(ValueError, match=r"FanInConcat\(axis=0\): every input must have the same size on every "
                                         r"axis but axis 0, got in_shape \(\(2, 3\), \(2, 4\)\)"):
        FanInConcat(axis=0).init(KEY, ((2, 3), (2, 4)))
    with pytest.raises(ValueError, match=r"FanInConcat\(axis=2\): axis 2 is out of range for inputs of rank 2"):
        FanInConcat(axis=2).init(KEY, ((2, 3), (2, 4)))
    with pytest.raises(ValueError, match=r"FanInConcat\(\): every input must have the same rank"):
        FanInConcat().init(KEY, ((2, 3), (2, 1, 3)))
    with pytest.raises(TypeError, match=r"FanInConcat: axis must be an int, got str 'x'"):
        FanInConcat(axis="x")


def test_parallel_errors():
    par = Parallel(Dense(3), Relu())
    _, params, state = _params(par, ((2, 4), (2, 4)))
    x = jnp.ones((2, 4), F64)
    with pytest.raises(ValueError, match=r"Parallel\(Dense\(3\), Relu\(\)\): x must be a tuple of 2 inputs "
                                         r"\(one per layer\), got a tuple of 3"):
        par.apply(params, state, (x, x, x))
    with pytest.raises(TypeError, match=r"Parallel\(Dense\(3\), Relu\(\)\): x must be a tuple of inputs"):
        par.apply(params, state, x)
    with pytest.raises(ValueError, match=r"Parallel\(Dense\(3\), Relu\(\)\): in_shape must be a tuple of 2 shapes "
                                         r"\(one per layer\), got 3"):
        _init_shapes(par, ((2, 4),) * 3)
    with pytest.raises(ValueError, match=r"Parallel\(Dense\(3\), Relu\(\)\): in_shape must be a tuple of 2 shapes "
                                         r"\(one per input, as FanOut or Parallel hand on\), got the single shape "
                                         r"\(2, 4\)"):
        _init_shapes(par, (2, 4))
    with pytest.raises(ValueError, match=r"Parallel\(Dense\(3\), Relu\(\)\): params must be a tuple of 2 entries"):
        par.apply(params[:1], state, (x, x))
    with pytest.raises(TypeError, match=r"Parallel: argument 1 must be a Layer \(e\.g\. Dense\(10\)\), got str"):
        Parallel(Dense(3), "relu")
    with pytest.raises(ValueError, match=r"Parallel: expected at least one layer, got none"):
        Parallel()
    with pytest.raises(ValueError, match=r"Parallel: unknown rule 'x'"):
        Parallel(Dense(3), rule="x")


def test_residual_errors():
    with pytest.raises(ValueError, match=r"Residual\(Dense\(8\)\): the branch maps \(2, 6\) to \(2, 8\) but the "
                                         r"identity shortcut keeps \(2, 6\); the two are summed, so they must have "
                                         r"one shape: pass a projection shortcut, e\.g\. shortcut=Dense\(8\)"):
        _init_shapes(Residual(Dense(8)), (2, 6))
    with pytest.raises(ValueError, match=r"e\.g\. shortcut=Conv2D\(8, 1, stride=2\)"):
        _init_shapes(Residual(Conv2D(8, 3, stride=2, padding="SAME")), (2, 8, 8, 3))
    with pytest.raises(ValueError, match=r"e\.g\. shortcut=Conv1D\(4, 1\)"):
        _init_shapes(Residual(Conv1D(4, 3, padding="SAME")), (2, 8, 3))
    with pytest.raises(ValueError, match=r"Residual\(Dense\(8\), shortcut=Dense\(4\)\): the branch maps \(2, 6\) to "
                                         r"\(2, 8\) but the shortcut Dense\(4\) gives \(2, 4\)"):
        _init_shapes(Residual(Dense(8), shortcut=Dense(4)), (2, 6))
    block = Residual(Dense(8))
    _, params, state = _params(Residual(Dense(8), shortcut=Dense(8)), (2, 6))
    params, state = jax.tree.map(lambda a: a.astype(jnp.float32), (params, state))
    with pytest.raises(ValueError, match=r"Residual\(Dense\(8\)\): the branch maps \(2, 6\) to \(2, 8\) but the "
                                         r"identity shortcut keeps \(2, 6\)"):
        block.apply(params["branch"], state["branch"], jnp.ones((2, 6), jnp.float32))
    with pytest.raises(ValueError, match=r"Residual\(Dense\(8\), shortcut=Dense\(8\)\): params must be the dict "
                                         r"with keys 'branch', 'shortcut' that init returned, got tuple"):
        Residual(Dense(8), shortcut=Dense(8)).apply(params["branch"], state, jnp.ones((2, 6), jnp.float32))
    with pytest.raises(TypeError, match=r"Residual: shortcut must be None \(the identity\) or a Layer, e\.g\. "
                                        r"shortcut=Dense\(64\) or shortcut=Conv2D\(64, 1, stride=2\) for a projection, "
                                        r"got str 'project'"):
        Residual(Dense(3), shortcut="project")
    with pytest.raises(TypeError, match=r"Residual: branch_scale must be None or a number"):
        Residual(Dense(3), branch_scale="zero")
    with pytest.raises(TypeError, match=r"Residual: argument 0 must be a Layer"):
        Residual(lambda x: x)
    with pytest.raises(ValueError, match=r"Residual: expected at least one layer for the branch, got none"):
        Residual()
    with pytest.raises(ValueError, match=r"Residual: unknown rule 'jax'"):
        Residual(Dense(3), rule="jax")
