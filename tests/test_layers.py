"""Tests for funcnn.layers and funcnn.nn.combinators: shapes, rule switch, state, errors."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.nn.layer import KINDS, Layer
from funcnn.nn.combinators import leaf_layers, serial
from funcnn.conv import conv_macs
from funcnn.nn import (
    ACTIVATION_NAMES,
    Activation,
    AvgPool1D,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Elu,
    Flatten,
    Gelu,
    HardLogistic,
    HardTanh,
    LeakyRelu,
    Logistic,
    LogSoftmax,
    MaxPool1D,
    MaxPool2D,
    PReLU,
    Relu,
    Softmax,
    Softplus,
    Swish,
    Tanh,
)

KEY = jax.random.key(0)
F64 = jnp.float64


def _x(shape, dtype=jnp.float32, seed=1):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


def _to64(tree):
    return jax.tree.map(lambda a: a.astype(F64), tree)


def _abstract_init(layer, in_shape):
    """``layer.init`` traced by ``jax.eval_shape``: shapes only, no random draws to compile."""
    box = {}

    def init(key):
        out_shape, params, state = layer.init(key, in_shape)
        box["out_shape"] = out_shape
        return params, state

    params, state = jax.eval_shape(init, KEY)
    return box["out_shape"], params, state


def lenet5(rule=None):
    return serial(
        Conv2D(6, 5, padding="SAME"),
        Tanh(),
        AvgPool2D(2),
        Conv2D(16, 5),
        Tanh(),
        AvgPool2D(2),
        Flatten(),
        Dense(120),
        Tanh(),
        Dense(84),
        Tanh(),
        Dense(10),
        rule=rule,
    )


# --------------------------------------------------------------------------- shapes

SHAPE_CASES = [
    (Dense(5), (4, 3)),
    (Dense(5), (2, 3, 4)),
    (Dense(1, rule="autodiff"), (0, 3)),
    (Conv1D(4, 3), (2, 10, 3)),
    (Conv1D(4, 3, stride=2, padding="SAME"), (2, 11, 2)),
    (Conv1D(2, (3,), dilation=2, padding=1), (1, 9, 1)),
    (Conv1D(2, 2, padding=[(0, 1)]), (2, 5, 3)),
    (Conv2D(4, 3), (2, 9, 8, 3)),
    (Conv2D(4, (3, 2), stride=(2, 1), padding="SAME"), (2, 9, 8, 3)),
    (Conv2D(3, 3, dilation=2, padding=[(1, 0), (2, 2)]), (1, 9, 7, 2)),
    (Conv2D(3, 3, stride=3, rule="autodiff"), (2, 10, 10, 1)),
    (MaxPool1D(2), (2, 9, 3)),
    (MaxPool1D(3, stride=2, padding="SAME"), (2, 10, 3)),
    (MaxPool2D(2), (2, 7, 8, 3)),
    (MaxPool2D((3, 2), stride=1, padding=1, rule="autodiff"), (2, 6, 5, 2)),
    (AvgPool1D(2), (2, 9, 3)),
    (AvgPool1D(3, stride=2, padding="SAME", count_include_pad=False), (2, 10, 3)),
    (AvgPool2D(2), (2, 7, 8, 3)),
    (AvgPool2D(3, stride=2, padding=1, count_include_pad=False, rule="autodiff"), (1, 7, 6, 2)),
    (Flatten(), (2, 3, 4, 5)),
    (Flatten(), (3, 7)),
    *[(Activation(name), (2, 3, 4)) for name in ACTIVATION_NAMES],
    *[(Activation(name, rule="autodiff"), (3, 5)) for name in ACTIVATION_NAMES],
    (Logistic(), (2, 3)),
    (Tanh(), (2, 3)),
    (HardLogistic(), (2, 3)),
    (HardTanh(), (2, 3)),
    (Relu(), (2, 3)),
    (LeakyRelu(0.2), (2, 3)),
    (Elu(0.5), (2, 3)),
    (Softplus(), (2, 3)),
    (Gelu(approximate=True), (2, 3)),
    (Softmax(axis=1), (2, 3, 4)),
    (LogSoftmax(), (2, 3)),
    (PReLU(), (2, 5, 3)),
    (PReLU(0.1, rule="autodiff"), (4, 3)),
    (Swish(), (2, 3)),
    (Swish(learnable_beta=False, beta=2.0), (2, 3, 2)),
    (BatchNorm(), (4, 3)),
    (BatchNorm(momentum=0.5, rule="autodiff"), (2, 3, 3, 2)),
    (Dropout(0.5), (4, 3)),
    (Dropout(0.0), (4, 3)),
    (serial(), (2, 3)),
    (serial(Dense(4), Relu(), serial(Dense(3), Tanh())), (5, 2)),
    (lenet5(), (2, 28, 28, 1)),
]


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize(
    "layer,in_shape", SHAPE_CASES, ids=[f"{layer.name}-{s}" for layer, s in SHAPE_CASES]
)
def test_init_out_shape_matches_apply(layer, in_shape, train):
    out_shape, params, state = _abstract_init(layer, in_shape)
    # eval_shape traces apply (every Python-side check runs) without the array work
    y, new_state = jax.eval_shape(
        lambda p, s, x, k: layer.apply(p, s, x, key=k, train=train),
        params, state, jax.ShapeDtypeStruct(in_shape, jnp.float32), jax.random.key(2),
    )
    assert tuple(out_shape) == y.shape
    assert y.dtype == jnp.float32
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state)):
        assert a.shape == b.shape and a.dtype == b.dtype


@pytest.mark.parametrize(
    "layer,in_shape", SHAPE_CASES, ids=[f"{layer.name}-{s}" for layer, s in SHAPE_CASES]
)
def test_metadata(layer, in_shape):
    assert isinstance(layer, Layer)
    assert layer.kind in KINDS
    assert layer.rule in ("hand", "autodiff", None)
    if layer.kind == "activation":
        assert layer.activation in ACTIVATION_NAMES
    else:
        assert layer.activation is None
    # unbatched (-1) batch dims pass through
    out_shape, _, _ = _abstract_init(layer, (-1,) + tuple(in_shape[1:]))
    assert out_shape[0] == -1


def test_lenet5_shapes_params_and_macs():
    model = lenet5()
    out_shape, params, state = model.init(KEY, (3, 28, 28, 1))
    assert out_shape == (3, 10)
    shapes = jax.tree.map(jnp.shape, params)
    assert shapes[0] == {"w": (5, 5, 1, 6), "b": (6,)}
    assert shapes[3] == {"w": (5, 5, 6, 16), "b": (16,)}
    assert shapes[7] == {"w": (400, 120), "b": (120,)}
    assert shapes[9] == {"w": (120, 84), "b": (84,)}
    assert shapes[11] == {"w": (84, 10), "b": (10,)}
    y, _ = jax.jit(model.apply)(params, state, _x((3, 28, 28, 1)))
    assert y.shape == (3, 10) and bool(jnp.all(jnp.isfinite(y)))
    expected = 3 * (28 * 28 * 25 * 6 + 10 * 10 * 25 * 6 * 16 + 400 * 120 + 120 * 84 + 84 * 10)
    assert model.macs((3, 28, 28, 1), out_shape) == expected


def test_macs():
    assert Dense(7).macs((4, 3), (4, 7)) == 4 * 3 * 7
    assert Dense(7).macs((4, 2, 3), (4, 2, 7)) == 4 * 2 * 3 * 7
    conv = Conv2D(8, 3, stride=2, padding="SAME")
    in_shape = (2, 9, 9, 3)
    out_shape, _, _ = _abstract_init(conv, in_shape)
    assert conv.macs(in_shape, out_shape) == conv_macs(in_shape, (3, 3, 3, 8), 2, "SAME", 1)
    assert conv.macs(in_shape, out_shape) == 2 * 5 * 5 * 9 * 3 * 8
    conv1 = Conv1D(4, 3, dilation=2)
    assert conv1.macs((2, 10, 3), (2, 6, 4)) == 2 * 6 * 3 * 3 * 4
    for layer in (MaxPool2D(2), AvgPool1D(2), Flatten(), Relu(), BatchNorm(), Dropout(0.1), PReLU()):
        assert layer.macs is None
    assert serial(Relu(), Flatten()).macs((2, 3), (2, 3)) is None


# --------------------------------------------------------------------------- basics


def test_unpack_like_stax():
    init, apply = Dense(3)
    out_shape, params, state = init(KEY, (2, 4))
    y, state2 = apply(params, state, jnp.ones((2, 4), jnp.float32))
    assert out_shape == (2, 3) and y.shape == (2, 3) and state == () and state2 == ()


def test_params_are_plain_pytrees():
    model = serial(Conv1D(3, 2), BatchNorm(), PReLU(), Swish(), Flatten(), Dense(2), Dropout(0.1))
    _, params, state = model.init(KEY, (2, 5, 2))
    assert isinstance(params, tuple) and isinstance(state, tuple)
    assert params[0].keys() == {"w", "b"}
    assert params[1].keys() == {"gamma", "beta"} and state[1].keys() == {"mean", "var"}
    assert params[2]["alpha"].shape == (3,)
    assert params[3]["beta"].shape == ()
    assert params[4] == () and state[0] == ()

    def plain(node):
        if isinstance(node, dict):
            return all(isinstance(k, str) and plain(v) for k, v in node.items())
        if isinstance(node, tuple):
            return all(plain(v) for v in node)
        return isinstance(node, jax.Array)

    assert plain(params) and plain(state)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((params, state)))


def test_init_deterministic_from_key():
    model = serial(Dense(4), Relu(), Dense(3))
    _, p1, _ = model.init(jax.random.key(5), (2, 3))
    _, p2, _ = model.init(jax.random.key(5), (2, 3))
    _, p3, _ = model.init(jax.random.key(6), (2, 3))
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(p1[0]["w"], p3[0]["w"])
    # serial gives each child its own key
    _, p4, _ = serial(Dense(3), Dense(3)).init(KEY, (2, 3))
    assert not np.array_equal(p4[0]["w"], p4[1]["w"])


def test_default_initializers_lecun_normal_and_zero_bias():
    _, p, _ = Dense(400).init(KEY, (1, 300))
    assert abs(float(jnp.var(p["w"])) * 300 - 1.0) < 0.05
    np.testing.assert_array_equal(p["b"], 0.0)
    _, p, _ = Conv2D(64, 3).init(KEY, (1, 8, 8, 32))
    assert abs(float(jnp.var(p["w"])) * 9 * 32 - 1.0) < 0.05
    _, p, _ = PReLU().init(KEY, (2, 4))
    np.testing.assert_array_equal(p["alpha"], 0.25)


def test_custom_initializers_and_dtype():
    def ones(key, shape, dtype=jnp.float32):
        return jnp.ones(shape, dtype)

    _, p, _ = Dense(2, w_init=ones, b_init=ones, dtype=jnp.float64).init(KEY, (1, 3))
    assert p["w"].dtype == F64
    np.testing.assert_array_equal(p["w"], 1.0)
    np.testing.assert_array_equal(p["b"], 1.0)
    _, p, _ = Conv1D(2, 3, w_init=ones).init(KEY, (1, 5, 2))
    y, _ = Conv1D(2, 3, w_init=ones).apply(p, (), jnp.ones((1, 5, 2), jnp.float32))
    np.testing.assert_allclose(y, 6.0)


def test_names_and_config():
    assert Dense(64).name == "Dense(64)"
    assert Conv2D(16, 3).name == "Conv2D(16, 3)"
    assert Conv2D(16, 3, stride=2, padding="SAME").name == "Conv2D(16, 3, stride=2, padding='SAME')"
    assert MaxPool2D(2).name == "MaxPool2D(2)"
    assert Relu().name == "Relu()"
    assert Dense(3, rule="autodiff").name == "Dense(3, rule='autodiff')"
    assert LeakyRelu(0.2).config == {"name": "leaky_relu", "negative_slope": 0.2}
    assert Conv1D(4, 3, stride=2).config["stride"] == (2,)
    assert serial(Dense(2), Relu()).name == "serial(Dense(2), Relu())"
    kinds = [layer.kind for layer in leaf_layers(lenet5())]
    assert kinds[:3] == ["conv", "activation", "pool"] and "flatten" in kinds
    assert PReLU().activation == "prelu" and Swish().activation == "swish"
    assert BatchNorm().kind == "norm" and Dropout(0.1).kind == "dropout"
    assert Flatten().rule is None and Dropout(0.1).rule is None


def test_activation_constructors_match_activation_by_name():
    pairs = [
        (Logistic(), "logistic"),
        (Tanh(), "tanh"),
        (HardLogistic(), "hard_logistic"),
        (HardTanh(), "hard_tanh"),
        (Relu(), "relu"),
        (LeakyRelu(), "leaky_relu"),
        (Elu(), "elu"),
        (Softplus(), "softplus"),
        (Gelu(), "gelu"),
        (Softmax(), "softmax"),
        (LogSoftmax(), "log_softmax"),
    ]
    x = _x((3, 4))
    for layer, name in pairs:
        assert layer.activation == name and layer.kind == "activation"
        y1, _ = layer.apply((), (), x)
        y2, _ = Activation(name).apply((), (), x)
        np.testing.assert_array_equal(y1, y2)
    assert Activation("prelu").name == PReLU().name
    assert Activation("swish", learnable_beta=False).name == Swish(learnable_beta=False).name


def test_activation_kwargs_are_used():
    x = jnp.array([[-2.0, 3.0]], jnp.float32)
    y, _ = LeakyRelu(0.5).apply((), (), x)
    np.testing.assert_allclose(y, [[-1.0, 3.0]])
    y, _ = Activation("elu", alpha=2.0).apply((), (), jnp.array([[-1e3]], jnp.float32))
    np.testing.assert_allclose(y, [[-2.0]])
    y, _ = Softmax(axis=0).apply((), (), jnp.ones((4, 2), jnp.float32))
    np.testing.assert_allclose(y, 0.25)


# --------------------------------------------------------------------------- rules


def _loss_and_grads(model, params, state, x, target, train):
    def loss(params, x):
        y, _ = model.apply(params, state, x, key=jax.random.key(3), train=train)
        return 0.5 * jnp.sum((y - target) ** 2) / x.shape[0]

    # jitted: one compilation is far cheaper than op-by-op dispatch of a deep backward pass
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)


def _assert_rule_switch(model, in_shape, train=False):
    hand, auto = serial(*model.children, rule="hand"), serial(*model.children, rule="autodiff")
    assert all(layer.rule in ("hand", None) for layer in leaf_layers(hand))
    assert all(layer.rule in ("autodiff", None) for layer in leaf_layers(auto))
    assert any(layer.rule == "autodiff" for layer in leaf_layers(auto))
    out_shape, params, state = hand.init(KEY, in_shape)
    params, state = _to64(params), _to64(state)
    x = _x(in_shape, F64, seed=7)
    target = _x(out_shape, F64, seed=8)
    l_hand, g_hand = _loss_and_grads(hand, params, state, x, target, train)
    l_auto, g_auto = _loss_and_grads(auto, params, state, x, target, train)
    np.testing.assert_allclose(l_hand, l_auto, rtol=1e-12, atol=1e-12)
    for a, b in zip(jax.tree.leaves(g_hand), jax.tree.leaves(g_auto)):
        assert a.dtype == F64
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # the gradients are not trivially zero
    assert float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(g_hand))) > 0


def test_rule_switch_mlp_identical_losses_and_grads():
    mlp = serial(
        Dense(8), Tanh(), Dense(8), LeakyRelu(0.1), Dense(8), Gelu(), Dense(8), PReLU(),
        Dense(8), Swish(), Dense(6), LogSoftmax(), Dense(4), Softmax(),
    )
    _assert_rule_switch(mlp, (5, 3))


def test_rule_switch_cnn_identical_losses_and_grads():
    cnn = serial(
        Conv2D(4, 3, padding="SAME"), BatchNorm(), Relu(), MaxPool2D(2),
        Conv2D(6, 3, stride=2, padding=1), PReLU(), AvgPool2D(2, stride=1, padding="SAME"),
        Flatten(), Dense(10), Swish(learnable_beta=False, beta=1.5), Dense(3),
    )
    _assert_rule_switch(cnn, (3, 8, 8, 2), train=True)
    cnn1d = serial(
        Conv1D(3, 3, dilation=2), Tanh(), MaxPool1D(2, stride=1), AvgPool1D(2, count_include_pad=False,
        padding="SAME"), BatchNorm(), Flatten(), Dense(2),
    )
    _assert_rule_switch(cnn1d, (4, 11, 2), train=False)


@pytest.mark.slow  # ~13 s of compilation; the CNN test above covers the same switch
def test_lenet5_rule_switch():
    _assert_rule_switch(lenet5(), (2, 28, 28, 1))


def _has_custom_vjp(layer, in_shape):
    _, params, state = layer.init(KEY, in_shape)
    jaxpr = jax.make_jaxpr(lambda p, x: layer.apply(p, state, x)[0])(params, _x(in_shape))
    return "custom_vjp" in str(jaxpr)


@pytest.mark.parametrize(
    "layer,in_shape",
    [(Dense(3), (2, 4)), (Conv2D(2, 3), (1, 5, 5, 1)), (MaxPool1D(2), (1, 4, 1)), (Relu(), (2, 3))],
)
def test_rule_selects_the_op(layer, in_shape):
    assert _has_custom_vjp(layer, in_shape)
    assert not _has_custom_vjp(layer.with_rule("autodiff"), in_shape)
    assert _has_custom_vjp(layer.with_rule("autodiff").with_rule("hand"), in_shape)


def test_with_rule():
    layer = Conv2D(4, 3, stride=2, padding="SAME").with_rule("autodiff")
    assert layer.rule == "autodiff" and layer.config["stride"] == (2, 2)
    assert Dense(3).with_rule("autodiff").name == "Dense(3, rule='autodiff')"
    flat = Flatten()
    assert flat.with_rule("autodiff") is flat
    model = serial(Dense(3), serial(Relu(), Dropout(0.1)), rule="autodiff")
    assert model.rule == "autodiff"
    assert [leaf.rule for leaf in leaf_layers(model)] == ["autodiff", "autodiff", None]
    back = model.with_rule("hand")
    assert back.rule == "hand"
    assert [leaf.rule for leaf in leaf_layers(back)] == ["hand", "hand", None]
    mixed = serial(Dense(3), Relu(rule="autodiff"))
    assert mixed.rule is None
    assert serial(Flatten(), Dropout(0.2)).with_rule("autodiff").rule is None
    with pytest.raises(ValueError, match=r"Dense\(3\)\.with_rule: unknown rule 'fast'"):
        Dense(3).with_rule("fast")
    with pytest.raises(ValueError, match=r"serial: unknown rule 'jax'"):
        serial(Dense(3), rule="jax")
    with pytest.raises(ValueError, match=r"unknown rule 'x'"):
        Conv1D(2, 3, rule="x")


# --------------------------------------------------------------------------- serial


def test_serial_threads_keys_state_and_train():
    model = serial(Dense(4), BatchNorm(), Dropout(0.5), serial(Dense(3), BatchNorm()))
    _, params, state = model.init(KEY, (8, 2))
    x = _x((8, 2))
    y1, s1 = model.apply(params, state, x, key=jax.random.key(1), train=True)
    y2, s2 = model.apply(params, state, x, key=jax.random.key(1), train=True)
    y3, _ = model.apply(params, state, x, key=jax.random.key(2), train=True)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    assert not np.array_equal(s1[1]["mean"], state[1]["mean"])
    assert not np.array_equal(s1[3][1]["mean"], state[3][1]["mean"])
    y_eval, s_eval = model.apply(params, state, x)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), s_eval, state))
    with pytest.raises(ValueError, match=r"Dropout\(0\.5\): train=True needs a PRNG key"):
        model.apply(params, state, x, train=True)


def test_serial_under_jit_and_grad():
    model = serial(Conv1D(2, 3), BatchNorm(), Relu(), Flatten(), Dropout(0.2), Dense(1))
    _, params, state = model.init(KEY, (4, 6, 1))
    x = _x((4, 6, 1))

    @jax.jit
    def step(params, state, x, key):
        def loss(p):
            y, new_state = model.apply(p, state, x, key=key, train=True)
            return jnp.mean(y**2), new_state

        (value, new_state), grads = jax.value_and_grad(loss, has_aux=True)(params)
        return value, new_state, grads

    value, new_state, grads = step(params, state, x, jax.random.key(0))
    assert jnp.isfinite(value)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)


def test_serial_errors():
    with pytest.raises(TypeError, match=r"serial: argument 1 must be a Layer.*got function"):
        serial(Dense(3), lambda x: x)
    model = serial(Dense(3), Relu())
    _, params, state = model.init(KEY, (2, 2))
    x = jnp.ones((2, 2), jnp.float32)
    with pytest.raises(ValueError, match=r"serial: params must be a tuple of 2 entries"):
        model.apply(params[:1], state, x)
    with pytest.raises(ValueError, match=r"serial: state must be a tuple of 2 entries"):
        model.apply(params, (), x)


# --------------------------------------------------------------------------- batch norm


def test_batchnorm_train_eval_and_running_average():
    layer = BatchNorm(momentum=0.75, eps=1e-3)
    x = jnp.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0], [7.0, 2.0]], F64)
    _, params, state = layer.init(KEY, x.shape)
    params, state = _to64(params), _to64(state)
    np.testing.assert_array_equal(state["mean"], [0.0, 0.0])
    np.testing.assert_array_equal(state["var"], [1.0, 1.0])
    params = {"gamma": jnp.array([2.0, 1.0], F64), "beta": jnp.array([0.5, -1.0], F64)}

    y, new_state = layer.apply(params, state, x, train=True)
    mean = np.array([4.0, 5.0])
    biased = np.array([5.0, 11.0])  # ((9+1+1+9)/4, (9+1+25+9)/4)
    expected = params["gamma"] * (np.asarray(x) - mean) / np.sqrt(biased + 1e-3) + params["beta"]
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    # running averages: new = momentum * old + (1 - momentum) * batch, unbiased batch variance
    np.testing.assert_allclose(new_state["mean"], 0.75 * 0.0 + 0.25 * mean, rtol=1e-12)
    np.testing.assert_allclose(new_state["var"], 0.75 * 1.0 + 0.25 * biased * 4 / 3, rtol=1e-12)
    # the input state is not mutated
    np.testing.assert_array_equal(state["mean"], [0.0, 0.0])

    # eval: running statistics, state unchanged, independent of the batch
    run = {"mean": jnp.array([1.0, -1.0], F64), "var": jnp.array([4.0, 0.25], F64)}
    y_eval, s_eval = layer.apply(params, run, x, train=False)
    expected = params["gamma"] * (np.asarray(x) - run["mean"]) / np.sqrt(run["var"] + 1e-3) + params["beta"]
    np.testing.assert_allclose(y_eval, expected, rtol=1e-12)
    assert s_eval is run
    y_one, _ = layer.apply(params, run, x[:1], train=False)
    np.testing.assert_allclose(y_one, y_eval[:1], rtol=1e-12)


def test_batchnorm_conv_input_statistics_over_all_but_channels():
    layer = BatchNorm(momentum=0.0)
    x = _x((3, 4, 5, 2), F64)
    _, params, state = layer.init(KEY, x.shape)
    y, new_state = layer.apply(_to64(params), _to64(state), x, train=True)
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(jnp.var(y, axis=(0, 1, 2)), 1.0, rtol=1e-3)
    np.testing.assert_allclose(new_state["mean"], jnp.mean(x, axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(new_state["var"], jnp.var(x, axis=(0, 1, 2), ddof=1), rtol=1e-12)


def test_batchnorm_state_gets_no_gradient():
    layer = BatchNorm()
    _, params, state = layer.init(KEY, (4, 3))
    x = _x((4, 3))

    def f(x):
        _, s = layer.apply(params, state, x, train=True)
        return jnp.sum(s["mean"]) + jnp.sum(s["var"])

    np.testing.assert_array_equal(jax.grad(f)(x), 0.0)


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm\(momentum=1\.5\): momentum must be in \[0, 1\]"):
        BatchNorm(momentum=1.5)
    with pytest.raises(ValueError, match=r"eps must be > 0, got 0"):
        BatchNorm(eps=0)
    with pytest.raises(TypeError, match=r"momentum must be a number"):
        BatchNorm(momentum="fast")
    layer = BatchNorm()
    with pytest.raises(ValueError, match=r"BatchNorm\(\): in_shape must be \(N, \.\.\., C\)"):
        layer.init(KEY, (3,))
    _, params, state = layer.init(KEY, (4, 3))
    with pytest.raises(ValueError, match=r"BatchNorm\(\): x has 2 features .* expects 3"):
        layer.apply(params, state, jnp.ones((4, 2), jnp.float32))
    with pytest.raises(ValueError, match=r"BatchNorm\(\): train mode needs more than one value"):
        layer.apply(params, state, jnp.ones((1, 3), jnp.float32), train=True)


# --------------------------------------------------------------------------- dropout


def test_dropout_identity_in_eval():
    layer = Dropout(0.7)
    x = _x((5, 4))
    y, _ = layer.apply((), (), x)
    assert y is x
    y, _ = layer.apply((), (), x, key=jax.random.key(1), train=False)
    assert y is x


def test_dropout_mask_rate_and_scaling():
    rate = 0.3
    layer = Dropout(rate)
    x = jnp.ones((200, 100), jnp.float32)
    y, _ = layer.apply((), (), x, key=jax.random.key(4), train=True)
    dropped = float(jnp.mean(y == 0))
    assert abs(dropped - rate) < 0.02
    kept = np.asarray(y)[np.asarray(y) != 0]
    np.testing.assert_allclose(kept, 1.0 / (1.0 - rate), rtol=1e-6)
    assert abs(float(jnp.mean(y)) - 1.0) < 0.03  # expectation preserved
    y2, _ = layer.apply((), (), x, key=jax.random.key(4), train=True)
    np.testing.assert_array_equal(y, y2)
    y0, _ = Dropout(0.0).apply((), (), x, key=jax.random.key(4), train=True)
    np.testing.assert_array_equal(y0, x)


def test_dropout_errors():
    with pytest.raises(ValueError, match=r"Dropout\(0\.5\): train=True needs a PRNG key"):
        Dropout(0.5).apply((), (), jnp.ones((2, 2)), train=True)
    with pytest.raises(ValueError, match=r"Dropout\(1\.0\): rate .* must be in \[0, 1\), got 1\.0"):
        Dropout(1.0)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\), got -0\.1"):
        Dropout(-0.1)
    with pytest.raises(TypeError, match=r"rate must be a number"):
        Dropout("0.5")


# --------------------------------------------------------------------------- PReLU / Swish


def test_prelu_alpha_gradient_flows():
    x = jnp.array([[-1.0, 2.0, -3.0], [-0.5, -1.0, 4.0]], F64)
    for rule in ("hand", "autodiff"):
        layer = PReLU(rule=rule, dtype=F64)
        _, params, _ = layer.init(KEY, x.shape)
        assert params["alpha"].dtype == F64

        def f(p):
            return jnp.sum(layer.apply(p, (), x)[0])

        g = jax.grad(f)(params)
        # d/dalpha_c sum(prelu(x)) = sum of the negative inputs of channel c
        np.testing.assert_allclose(g["alpha"], [-1.5, -1.0, -3.0], rtol=1e-12)
    _, params, _ = PReLU(init=lambda k, s, d: jnp.full(s, 0.5, d)).init(KEY, (2, 3))
    np.testing.assert_array_equal(params["alpha"], 0.5)


def test_swish_beta_gradient_flows():
    x = _x((4, 3), F64)
    grads = []
    for rule in ("hand", "autodiff"):
        layer = Swish(beta=1.3, rule=rule, dtype=F64)
        _, params, _ = layer.init(KEY, x.shape)
        np.testing.assert_allclose(params["beta"], 1.3)

        def f(p):
            return jnp.sum(layer.apply(p, (), x)[0] ** 2)

        grads.append(jax.grad(f)(params)["beta"])
    assert abs(float(grads[0])) > 0
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10)
    # direct formula: d/dbeta x*s(beta x) = x^2 s (1 - s)
    s = jax.nn.sigmoid(1.3 * x)
    y = x * s
    np.testing.assert_allclose(grads[0], jnp.sum(2 * y * x**2 * s * (1 - s)), rtol=1e-10)
    fixed = Swish(learnable_beta=False, beta=2.0)
    _, params, _ = fixed.init(KEY, (2, 3))
    assert params == ()
    y, _ = fixed.apply(params, (), x)
    np.testing.assert_allclose(y, x * jax.nn.sigmoid(2.0 * x), rtol=1e-12)


def test_prelu_swish_errors():
    layer = PReLU()
    _, params, _ = layer.init(KEY, (2, 3))
    with pytest.raises(ValueError, match=r"PReLU\(0\.25\): x has 4 features .* alpha \(3,\) expects 3"):
        layer.apply(params, (), jnp.ones((2, 4), jnp.float32))
    with pytest.raises(ValueError, match=r"PReLU\(0\.25\): in_shape must be \(N, \.\.\., C\)"):
        layer.init(KEY, (3,))
    with pytest.raises(ValueError, match=r"PReLU\(.*\): init 'x' is not an initializer name; expected one of zeros"):
        PReLU(init="x")
    with pytest.raises(TypeError, match=r"PReLU\(.*\): init must be a number, an initializer or an initializer name"):
        PReLU(init=[1])
    with pytest.raises(TypeError, match=r"learnable_beta must be a bool"):
        Swish(learnable_beta=1)


# --------------------------------------------------------------------------- activation errors


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match=r"Activation: unknown activation 'sigmoid'; expected one of") as exc:
        Activation("sigmoid")
    for name in ACTIVATION_NAMES:
        assert repr(name) in str(exc.value)


def test_activation_bad_settings():
    with pytest.raises(TypeError, match=r"Relu\(alpha=1\.0\): unexpected setting 'alpha' .* accepts no settings"):
        Activation("relu", alpha=1.0)
    with pytest.raises(TypeError, match=r"unexpected setting 'slope' for activation 'leaky_relu'; it accepts negative_slope"):
        Activation("leaky_relu", slope=0.1)
    with pytest.raises(TypeError, match=r"Activation\('prelu'\): unexpected setting 'alpha' .* accepts init, dtype"):
        Activation("prelu", alpha=0.1)
    with pytest.raises(TypeError, match=r"setting negative_slope must be a Python number or bool"):
        LeakyRelu(negative_slope=jnp.ones(3))
    with pytest.raises(ValueError, match=r"Softmax\(axis=2\): axis 2 is out of range for in_shape of rank 2"):
        Softmax(axis=2).init(KEY, (3, 4))
    with pytest.raises(ValueError, match=r"axis 2 is out of range for x of rank 2"):
        Softmax(axis=2).apply((), (), jnp.ones((3, 4)))
    with pytest.raises(ValueError, match=r"Relu\(rule='manual'\): unknown rule 'manual'"):
        Relu(rule="manual")


# --------------------------------------------------------------------------- shape / config errors


def test_dense_errors():
    with pytest.raises(ValueError, match=r"Dense\(3\): in_shape must be \(N, \.\.\., D_in\) with rank >= 2, got \(5,\)"):
        Dense(3).init(KEY, (5,))
    with pytest.raises(ValueError, match=r"Dense: out must be a positive int, got 0"):
        Dense(0)
    with pytest.raises(ValueError, match=r"Dense\(3\): w_init 'he' is not an initializer name; expected one of"):
        Dense(3, w_init="he")
    with pytest.raises(TypeError, match=r"Dense\(3\): w_init must be an initializer"):
        Dense(3, w_init=3)
    with pytest.raises(ValueError, match=r"Dense\(3\): init needs a PRNG key"):
        Dense(3).init(None, (2, 4))
    with pytest.raises(TypeError, match=r"Dense\(3\): in_shape must be a tuple of ints, got 4"):
        Dense(3).init(KEY, 4)
    with pytest.raises(ValueError, match=r"Dense\(3\): in_shape must have a batch size >= 0"):
        Dense(3).init(KEY, (2, 0))
    layer = Dense(3)
    _, params, _ = layer.init(KEY, (2, 4))
    with pytest.raises(ValueError, match=r"Dense\(3\): x has 5 features on its last axis but the layer's w \(4, 3\) expects 4 \(x\.shape=\(2, 5\)\)"):
        layer.apply(params, (), jnp.ones((2, 5), jnp.float32))
    with pytest.raises(ValueError, match=r"Dense\(3\): x must be \(N, \.\.\., D_in\) with rank >= 2, got x\.shape=\(4,\)"):
        layer.apply(params, (), jnp.ones((4,), jnp.float32))


def test_conv_errors():
    with pytest.raises(ValueError, match=r"^Conv2D\(16, 3\): in_shape must be \(N, H, W, C\), got \(8, 32, 32\)$"):
        Conv2D(16, 3).init(KEY, (8, 32, 32))
    with pytest.raises(ValueError, match=r"Conv1D\(4, 3\): in_shape must be \(N, W, C\), got \(8, 32, 32, 3\)"):
        Conv1D(4, 3).init(KEY, (8, 32, 32, 3))
    with pytest.raises(ValueError, match=r"Conv2D\(4, 5\): kernel of effective size 5 .* larger than the padded input 4"):
        Conv2D(4, 5).init(KEY, (1, 4, 8, 1))
    with pytest.raises(ValueError, match=r"Conv2D\(4, 3, dilation=3\): kernel of effective size 7"):
        Conv2D(4, 3, dilation=3).init(KEY, (1, 6, 8, 1))
    with pytest.raises(ValueError, match=r"Conv2D\(4, \(3, 3, 3\)\): kernel must be an int or a tuple of 2 ints"):
        Conv2D(4, (3, 3, 3))
    with pytest.raises(ValueError, match=r"Conv1D\(4, 3, stride=0\): stride must be >= 1"):
        Conv1D(4, 3, stride=0)
    with pytest.raises(ValueError, match=r"Conv2D\(4, 3, padding='FULL'\): unknown padding 'FULL'"):
        Conv2D(4, 3, padding="FULL")
    with pytest.raises(ValueError, match=r"Conv2D: out_channels must be a positive int, got -1"):
        Conv2D(-1, 3)
    layer = Conv2D(4, 3)
    _, params, _ = layer.init(KEY, (1, 5, 5, 3))
    with pytest.raises(ValueError, match=r"Conv2D\(4, 3\): x has 2 features .* kernel \(3, 3, 3, 4\) expects 3"):
        layer.apply(params, (), jnp.ones((1, 5, 5, 2), jnp.float32))
    with pytest.raises(ValueError, match=r"Conv2D\(4, 3\): x must be \(N, H, W, C\), got x\.shape=\(5, 5, 3\)"):
        layer.apply(params, (), jnp.ones((5, 5, 3), jnp.float32))


def test_pool_errors():
    with pytest.raises(ValueError, match=r"MaxPool2D\(3\): window of effective size 3 .* larger than the padded input 2"):
        MaxPool2D(3).init(KEY, (1, 2, 8, 1))
    with pytest.raises(ValueError, match=r"AvgPool1D\(2\): in_shape must be \(N, W, C\), got \(4, 8\)"):
        AvgPool1D(2).init(KEY, (4, 8))
    with pytest.raises(ValueError, match=r"MaxPool1D\(0\): window must be >= 1"):
        MaxPool1D(0)
    with pytest.raises(TypeError, match=r"AvgPool2D\(2, count_include_pad=1\): count_include_pad must be a bool"):
        AvgPool2D(2, count_include_pad=1)
    with pytest.raises(ValueError, match=r"MaxPool2D\(2\): x must be \(N, H, W, C\), got x\.shape=\(4, 4\)"):
        MaxPool2D(2).apply((), (), jnp.ones((4, 4), jnp.float32))


def test_flatten_errors():
    with pytest.raises(ValueError, match=r"Flatten\(\): in_shape must be \(N, \.\.\.\) with rank >= 2, got \(5,\)"):
        Flatten().init(KEY, (5,))
    with pytest.raises(ValueError, match=r"Flatten\(\): x must be \(N, \.\.\.\) with rank >= 2"):
        Flatten().apply((), (), jnp.ones((5,)))


@pytest.mark.parametrize(
    "build",
    [
        lambda rule: Dense(3, rule=rule, dtype=jnp.float64),
        lambda rule: Conv2D(4, (3, 2), 2, "SAME", 1, None, "he_normal", rule, algorithm="auto"),
        lambda rule: Conv1D(2, 3, dilation=2, rule=rule),
        lambda rule: MaxPool2D(2, 1, "SAME", rule),
        lambda rule: AvgPool1D(3, padding=1, count_include_pad=False, rule=rule),
        lambda rule: BatchNorm(0.8, rule=rule),
        lambda rule: LeakyRelu(0.2, rule=rule),
        lambda rule: PReLU(0.1, rule),
        lambda rule: Swish(False, 1.5, rule),
    ],
)
def test_with_rule_is_the_constructor_called_with_that_rule(build):
    # with_rule is derived from the constructor and its arguments (switches_rule), so the
    # switched layer is exactly the one written with the other rule.
    for a, b in (("hand", "autodiff"), ("autodiff", "hand")):
        switched, written = build(a).with_rule(b), build(b)
        assert (switched.name, switched.rule, switched.kind) == (written.name, written.rule, written.kind)
        assert switched.config.keys() == written.config.keys()
        assert switched.with_rule(a).name == build(a).name


def test_switches_rule_on_a_user_constructor():
    from funcnn.nn import switches_rule

    calls = []

    @switches_rule
    def Scale(c, *, rule="hand"):
        calls.append((c, rule))
        return Layer(lambda key, s: (s, (), ()), lambda p, st, x, *, key=None, train=False: (x * c, st),
                     name=f"Scale({c}, rule={rule!r})", rule=rule)

    assert Scale.__name__ == "Scale"
    layer = Scale(2.0).with_rule("autodiff")
    assert layer.name == "Scale(2.0, rule='autodiff')" and calls == [(2.0, "hand"), (2.0, "autodiff")]
    assert serial(Scale(3.0), Dense(2)).with_rule("autodiff").children[0].rule == "autodiff"
    with pytest.raises(TypeError, match=r"switches_rule: .*Ratio has no parameter 'rule'"):

        @switches_rule
        def Ratio(c):
            return Scale(c)
