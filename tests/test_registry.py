"""The open framework: a user's activation (and op) joins the registry, the layers, the grid,
the gains, the diagnostics and gradcheck exactly like the built-ins."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn
from funcnn import gradcheck, registry
from funcnn.nn.diagnostics import RELU_FAMILY, SATURATING


def _mish_forward(x):
    return x * jnp.tanh(jnp.logaddexp(x, 0.0))


# d/dx mish(x) = tanh(sp(x)) + x * logistic(x) * (1 - tanh(sp(x))^2)
def _mish_backward(x, y, g):
    t = jnp.tanh(jnp.logaddexp(x, 0.0))
    return g * (t + x * jax.nn.sigmoid(x) * (1 - t * t))


@pytest.fixture(autouse=True)
def _clean_registry():
    yield
    for name in registry.activation_names():
        if not registry.get_activation(name).builtin:
            registry.unregister_activation(name)


def _mish():
    return funcnn.define_activation("mish", _mish_forward, _mish_backward)


def _x(shape=(4, 6), seed=0, scale=3.0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-scale, scale, shape), jnp.float32)


def _primitives(jaxpr):
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jax.core.jaxprs_in_params(eqn.params) if hasattr(jax.core, "jaxprs_in_params") else ():
            names |= _primitives(sub)
    return names


def test_define_activation_hand_rule_and_twin():
    mish = _mish()
    x, u = _x(), _x(seed=1)
    np.testing.assert_allclose(mish(x), mish.reference(x), rtol=1e-6)
    (g_hand,) = jax.vjp(mish, x)[1](u)
    (g_ref,) = jax.vjp(mish.reference, x)[1](u)
    np.testing.assert_allclose(g_hand, g_ref, rtol=1e-5, atol=1e-6)
    assert "custom_vjp_call" in str(jax.make_jaxpr(mish)(x))
    assert "custom_vjp_call" not in str(jax.make_jaxpr(mish.reference)(x))
    assert registry.get_activation("mish") is mish and "mish" in funcnn.ACTIVATION_NAMES
    assert isinstance(mish, funcnn.ActivationOp)


def test_the_hand_rule_is_the_users_backward_not_autodiff_of_the_forward():
    wrong = funcnn.define_activation("mish_half", _mish_forward, lambda x, y, g: 0.5 * _mish_backward(x, y, g))
    x = _x()
    np.testing.assert_allclose(jax.grad(lambda x: wrong(x).sum())(x),
                               0.5 * jax.grad(lambda x: wrong.reference(x).sum())(x), rtol=1e-5)


def test_registering_a_taken_or_bad_name_is_an_error():
    _mish()
    with pytest.raises(ValueError, match="'relu' is taken by a built-in activation"):
        funcnn.define_activation("relu", _mish_forward, _mish_backward)
    with pytest.raises(ValueError, match="'mish' is taken by an activation registered earlier.*unregister"):
        _mish()
    with pytest.raises(ValueError, match="name must be a Python identifier"):
        funcnn.define_activation("my act", _mish_forward, _mish_backward)
    with pytest.raises(TypeError, match="backward must be a function"):
        funcnn.define_activation("mish2", _mish_forward, None)
    with pytest.raises(ValueError, match="kinks must be finite numbers"):
        funcnn.define_activation("mish3", _mish_forward, _mish_backward, kinks=(float("nan"),))
    with pytest.raises(ValueError, match="'relu' is a built-in activation; it cannot be removed"):
        registry.unregister_activation("relu")
    with pytest.raises(ValueError, match="unknown activation 'nope'.*register your own"):
        registry.get_activation("nope")


def test_a_user_activation_is_a_layer_a_choice_a_model_and_a_gain():
    mish = _mish()
    x = _x((8, 5))
    for layer in (funcnn.Activation("mish"), funcnn.Activation(mish)):
        assert layer.name == "Mish()" and layer.activation == "mish" and layer.kind == "activation"
        y, _ = layer.apply((), (), x)
        np.testing.assert_allclose(y, mish(x))
        y_auto, _ = layer.with_rule("autodiff").apply((), (), x)
        np.testing.assert_allclose(y_auto, y, rtol=1e-6)

    # A Choice among a built-in and the user's op, picked by traced data: one program.
    def out(i):
        layer = funcnn.Activation(funcnn.Choice(("relu", "mish"), i))
        return layer.apply(((), ()), (), x)[0]

    f = jax.jit(out)
    np.testing.assert_allclose(f(jnp.int32(1)), mish(x), rtol=1e-6)
    np.testing.assert_allclose(f(jnp.int32(0)), funcnn.relu(x))

    model = funcnn.nn.models.mlp((16, 16), 3, "mish")
    assert "Mish()" in model.name
    _, params, state = model.init(jax.random.key(0), (8, 5))
    assert model.apply(params, state, x)[0].shape == (8, 3)

    # gain from the forward: 1 / sqrt(E[mish(z)^2]), z ~ N(0, 1), against Gauss-Hermite in NumPy
    z, w = np.polynomial.hermite_e.hermegauss(200)
    m = z * np.tanh(np.logaddexp(z, 0.0))
    expected = 1 / np.sqrt(np.sum(w * m * m) / np.sqrt(2 * np.pi))
    assert funcnn.nn.initializers.gain("mish") == pytest.approx(expected, rel=1e-5)
    assert "mish" in funcnn.nn.initializers.GAIN_NAMES


def test_gain_of_a_kinked_user_op_integrates_both_pieces():
    funcnn.define_activation("relu2", lambda x: jnp.where(x > 0, x, 0.0),
                             lambda x, y, g: g * (x > 0).astype(x.dtype), kinks=(0.0,))
    assert funcnn.nn.initializers.gain("relu2") == pytest.approx(np.sqrt(2.0), rel=1e-5)
    funcnn.define_activation("const_gain", _mish_forward, _mish_backward, gain=1.25)
    assert funcnn.nn.initializers.gain("const_gain") == 1.25


def test_settings_and_learnable_params():
    # y = a * tanh(x / t): a learnable per-channel amplitude, t a static temperature
    def fwd(x, a, *, t):
        return a * jnp.tanh(x / t)

    # d/dx = a (1 - tanh^2) / t,  d/da = tanh(x / t)
    def bwd(x, y, g, a, *, t):
        th = jnp.tanh(x / t)
        return g * a * (1 - th * th) / t, g * th

    op = funcnn.define_activation(
        "amp_tanh", fwd, bwd, settings={"t": 1.0},
        params=(funcnn.ActivationParam("a", 1.5, per_channel=True),),
        saturated=lambda pre, post, tol: jnp.abs(jnp.tanh(pre)) >= 1 - tol,
    )
    x = _x((6, 4))
    layer = funcnn.Activation("amp_tanh", t=2.0)
    _, params, _ = layer.init(jax.random.key(0), (6, 4))
    np.testing.assert_allclose(params["a"], np.full(4, 1.5))
    y, _ = layer.apply(params, (), x)
    np.testing.assert_allclose(y, 1.5 * np.tanh(np.asarray(x) / 2.0), rtol=1e-6)

    def loss(p, lay):
        return jnp.sum(lay.apply(p, (), x)[0] ** 2)

    g_hand = jax.grad(loss)(params, layer)
    g_auto = jax.grad(loss)(params, layer.with_rule("autodiff"))
    np.testing.assert_allclose(g_hand["a"], g_auto["a"], rtol=1e-5)
    assert g_hand["a"].shape == (4,)
    with pytest.raises(TypeError, match="unexpected argument 'tau'"):
        op(x, tau=1.0)
    with pytest.raises(TypeError, match="unexpected setting 'tau'"):
        funcnn.Activation("amp_tanh", tau=2.0)
    assert "amp_tanh" in SATURATING and "amp_tanh" not in RELU_FAMILY
    z, w = np.polynomial.hermite_e.hermegauss(200)
    e2 = np.sum(w * (2.0 * np.tanh(z / 3.0)) ** 2) / np.sqrt(2 * np.pi)
    assert funcnn.nn.initializers.gain("amp_tanh", a=2.0, t=3.0) == pytest.approx(1 / np.sqrt(e2), rel=1e-5)
    # gradcheck rows: scalar and per-channel params, both pass
    previous = jax.config.read("jax_enable_x64")  # the suite runs in x64 (conftest); leave it as found
    jax.config.update("jax_enable_x64", True)
    try:
        reports = gradcheck.run(op="amp_tanh", dtype=jnp.float64)
    finally:
        jax.config.update("jax_enable_x64", previous)
    assert len(reports) == 2 and all(r.passed for r in reports), [r.reason for r in reports]


def test_diagnostics_read_the_declared_regions():
    funcnn.define_activation("my_relu", lambda x: jnp.where(x > 0, x, 0.0),
                             lambda x, y, g: g * (x > 0).astype(x.dtype), kinks=(0.0,),
                             dead=lambda pre: pre <= 0)
    assert "my_relu" in RELU_FAMILY
    model = funcnn.serial(funcnn.Dense(6), funcnn.Activation("my_relu"), funcnn.Dense(2))
    _, params, state = model.init(jax.random.key(0), (32, 3))
    x = _x((32, 3))
    stats = funcnn.activation_stats(model, params, state, x)
    ref = funcnn.activation_stats(funcnn.serial(funcnn.Dense(6), funcnn.Relu(), funcnn.Dense(2)), params, state, x)
    assert stats.activations == ("my_relu",)
    np.testing.assert_allclose(stats.inactive_fraction, ref.inactive_fraction)
    np.testing.assert_allclose(stats.dead_fraction, ref.dead_fraction)
    assert np.isnan(stats.saturated_fraction[0])


def test_public_rule_decorator_names_the_users_op():
    mish = _mish()
    with pytest.raises(TypeError, match=r"^mish: forward-mode differentiation.*mish\.reference"):
        jax.jvp(mish, (_x(),), (_x(),))

    @funcnn.hand_rule(name="cube")
    def cube(x):
        return x**3

    cube.defvjp(lambda x: (cube.fun(x), x), lambda x, g: (3 * g * x * x,))
    assert float(jax.grad(cube)(2.0)) == 12.0
    hlo = jax.jit(jax.grad(lambda x: cube(x) * mish(x).sum())).lower(1.5).as_text(debug_info=True)
    assert "cube/fwd" in hlo and "cube/bwd" in hlo and "mish/fwd" in hlo and "mish/bwd" in hlo
    with pytest.raises(TypeError, match="^cube: forward-mode"):
        jax.jvp(cube, (1.0,), (1.0,))


def _run_rows(names):
    previous = jax.config.read("jax_enable_x64")  # the suite runs in x64 (conftest); leave it as found
    jax.config.update("jax_enable_x64", True)
    try:
        return gradcheck.run(op=names, dtype=jnp.float64)
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_gradcheck_samples_both_sides_of_a_kink_and_a_wide_range():
    relu_like = lambda x: jnp.where(x > 0, x, 0.0)  # noqa: E731
    # bug on the x < 0 side of the kink only: the slope there should be 0
    funcnn.define_activation("relu_bad_side", relu_like, lambda x, y, g: g * jnp.where(x > 0, 1.0, 0.1), kinks=(0.0,))
    # bug only for x < -1 (a point drawn from [0, 3] alone would never see it)
    funcnn.define_activation(
        "mish_bad_tail", _mish_forward,
        lambda x, y, g: jnp.where(x < -1, 0.5, 1.0) * _mish_backward(x, y, g),
    )
    _mish()
    reports = {r.op: r for r in _run_rows(["relu_bad_side", "mish_bad_tail", "mish"])}
    assert reports["mish"].passed
    for name in ("relu_bad_side", "mish_bad_tail"):
        r = reports[name]
        assert not r.passed and not r.autodiff_passed
        (e,) = r.inputs
        assert e.worst_index is not None and e.input_value < (0 if name == "relu_bad_side" else -1)
        assert e.fd_value == pytest.approx(e.twin_value, rel=1e-4, abs=1e-8)
        assert abs(e.hand_value - e.twin_value) > 1e-3
        assert r.reason.startswith("x[") and "hand" in r.reason and "twin" in r.reason and "fd" in r.reason


def test_a_wrong_shaped_or_typed_backward_is_a_failing_row_not_a_traceback():
    funcnn.define_activation("bad_shape", _mish_forward, lambda x, y, g: g[0])
    funcnn.define_activation("bad_dtype", _mish_forward, lambda x, y, g: g.astype(jnp.float16))
    funcnn.define_activation("bad_raise", _mish_forward, lambda x, y, g: 1 / 0)
    reports = {r.op: r for r in _run_rows(["bad_shape", "bad_dtype", "bad_raise"])}
    assert "dx must have x's shape" in reports["bad_shape"].reason
    assert "dx must have x's dtype" in reports["bad_dtype"].reason
    assert "ZeroDivisionError" in reports["bad_raise"].reason
    for r in reports.values():
        assert not r.passed and "\n" not in r.reason and r.config.startswith("x(")
    table = gradcheck.format_table(list(reports.values()))
    assert max(len(line) for line in table.splitlines()) <= 100
    assert "3 FAILED" in table


def test_register_case_for_a_user_op_that_is_not_an_activation():
    @funcnn.hand_rule(name="scaled_dot")
    def scaled_dot(x, w):
        return 2.0 * x @ w

    # d/dx = 2 g w^T, d/dw = 2 x^T g
    scaled_dot.defvjp(lambda x, w: (scaled_dot.fun(x, w), (x, w)), lambda r, g: (2 * g @ r[1].T, 2 * r[0].T @ g))

    def make(rng, dtype):
        return jnp.asarray(rng.standard_normal((3, 4)), dtype), jnp.asarray(rng.standard_normal((4, 2)), dtype)

    case = gradcheck.register_case(gradcheck.Case("scaled_dot", "user", make, hand=scaled_dot,
                                                  reference=lambda x, w: 2.0 * x @ w))
    try:
        (r,) = _run_rows("scaled_dot")
        assert r.passed and [e.name for e in r.inputs] == ["x", "w"]
        assert any(c is case for c in gradcheck.all_cases())
    finally:
        from funcnn.gradcheck import engine
        engine._USER_CASES.remove(case)
    with pytest.raises(ValueError, match="needs hand="):
        gradcheck.register_case(gradcheck.Case("x", "user", make))


_USER_MODULE = textwrap.dedent('''
    import jax, jax.numpy as jnp, funcnn

    def forward(x):
        return x * jnp.tanh(jnp.logaddexp(x, 0.0))

    def backward(x, y, g):
        t = jnp.tanh(jnp.logaddexp(x, 0.0))
        return g * (t + x * jax.nn.sigmoid(x) * (1 - t * t))

    def wrong(x, y, g):
        return jnp.where(x < -1, 0.0, 1.0) * backward(x, y, g)

    mish = funcnn.define_activation("mish", forward, backward)
    funcnn.define_activation("mish_wrong", forward, wrong)
''')


def test_command_line_imports_a_user_module_outside_the_package(tmp_path):
    (tmp_path / "my_ops.py").write_text(_USER_MODULE)
    cmd = [sys.executable, "-m", "funcnn.gradcheck", "--import", "my_ops"]
    ok = subprocess.run(cmd + ["--op", "mish"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 cases, 1 passed, all passed" in ok.stdout
    bad = subprocess.run(cmd + ["--op", "user"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "2 cases, 1 passed, 1 FAILED" in bad.stdout and "-> x[" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
    assert max(len(line) for line in bad.stdout.splitlines()) <= 100
    by_path = subprocess.run(
        [sys.executable, "-m", "funcnn.gradcheck", "--import", str(tmp_path / "my_ops.py"), "--op", "mish"],
        capture_output=True, text=True, timeout=300,
    )
    assert by_path.returncode == 0, by_path.stdout + by_path.stderr
    missing = subprocess.run([sys.executable, "-m", "funcnn.gradcheck", "--import", "no_such_module_xyz"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert missing.returncode == 2 and "--import no_such_module_xyz: cannot import it" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_with_rule_on_a_layer_that_cannot_switch_is_an_error():
    def init(key, in_shape):
        return in_shape, (), ()

    def apply(params, state, x, *, key=None, train=False):
        return funcnn.relu(x), state

    layer = funcnn.Layer(init, apply, name="MyRelu()", kind="activation", rule="hand", activation="relu")
    assert layer.with_rule("hand") is layer
    with pytest.raises(ValueError, match=r"MyRelu\(\)\.with_rule: this layer carries rule='hand' but has no rebuild"):
        layer.with_rule("autodiff")
    with pytest.raises(ValueError, match="has no rebuild"):
        funcnn.serial(funcnn.Dense(3), layer, rule="autodiff")
    plain = funcnn.Layer(init, apply, name="Plain()")
    assert plain.with_rule("autodiff") is plain
    assert "rebuild" in funcnn.Layer.__doc__ and "kind" in funcnn.Layer.__doc__
