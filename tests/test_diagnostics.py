"""funcnn.nn.diagnostics on constructed cases whose answers are known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn.reference.activations as ref_act
from funcnn.reference.linear import dense as ref_dense_fn
from funcnn import diagnostics as diag
from funcnn import initializers as inits
from funcnn.nn.combinators import serial
from funcnn.nn import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    Relu,
    Tanh,
)
from funcnn.losses import mse, softmax_cross_entropy

F64 = jnp.float64


def _normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), F64)


def _whitened(n, d, seed=0):
    """(n, d) with zero-mean columns and empirical covariance exactly I: (1/n) X^T X = I."""
    x = np.random.default_rng(seed).standard_normal((n, d))
    x -= x.mean(axis=0)
    evals, evecs = np.linalg.eigh(x.T @ x / n)
    return jnp.asarray(x @ evecs @ np.diag(evals**-0.5) @ evecs.T, F64)


def _init(model, in_shape, seed=0):
    """params, state of ``model.init`` in one compiled call (eager RNG dispatch is slow)."""
    return jax.jit(lambda k: model.init(k, tuple(in_shape))[1:])(jax.random.key(seed))


# ------------------------------------------------------------------------ activation stats


def test_all_dead_relus_report_one():
    model = serial(
        Dense(16, b_init=inits.constant(-100.0), dtype=F64), Relu(),
        Dense(8, dtype=F64), Relu(),
    )
    params, state = _init(model, (32, 4), 0)
    stats = diag.activation_stats(model, params, state, _normal((32, 4)))
    assert stats.names == ("1:Relu()", "3:Relu()")
    assert stats.activations == ("relu", "relu")
    assert float(stats.dead_fraction[0]) == 1.0
    assert float(stats.inactive_fraction[0]) == 1.0
    assert float(stats.mean[0]) == 0.0 and float(stats.std[0]) == 0.0
    # the next layer sees only its bias (zeros): every input is 0 <= 0, dead as well
    assert float(stats.dead_fraction[1]) == 1.0
    assert np.isnan(stats.saturated_fraction).all()


def test_dead_is_per_unit_over_the_whole_batch():
    # identity weights: unit j's pre-activation is x_j + b_j
    b = jnp.asarray([-100.0, -100.0, 100.0, 0.0], F64)
    model = serial(Dense(4, dtype=F64), Relu())
    params, state = _init(model, (8, 4), 0)
    params = ({"w": jnp.eye(4, dtype=F64), "b": b}, ())
    x = jnp.asarray(np.r_[np.ones((4, 4)), -np.ones((4, 4))], F64)  # unit 3: half positive
    stats = diag.activation_stats(model, params, state, x)
    assert float(stats.dead_fraction[0]) == 0.5  # units 0 and 1
    assert float(stats.inactive_fraction[0]) == (8 + 8 + 0 + 4) / 32


def test_saturation_of_hard_units_is_exact():
    x = jnp.asarray([[-2.0, -0.5, 0.5, 3.0], [-1.5, 0.2, 0.9, 1.0]], F64)
    model = serial(Activation("hard_tanh"))
    stats = diag.activation_stats(model, ((),), ((),), x)
    assert float(stats.saturated_fraction[0]) == 0.5  # -2, 3, -1.5, 1.0 (the kink counts: 0 slope)
    assert float(stats.saturated_unit_fraction[0]) == 0.5  # units 0 and 3
    assert np.isnan(stats.dead_fraction[0])
    stats = diag.activation_stats(Activation("hard_logistic"), (), (), 2 * x)
    assert float(stats.saturated_fraction[0]) == 0.5
    stats = diag.activation_stats(Activation("logistic"), (), (), 10 * x, tol=0.01)
    # |10 x| >= 4.6 saturates the logistic within 0.01: -20, -5, 5, 30, -15, 9, 10
    assert float(stats.saturated_fraction[0]) == 7 / 8
    assert float(stats.mean[0]) == pytest.approx(float(jnp.mean(jax.nn.sigmoid(10 * x))))


def test_deep_tanh_net_with_unit_normal_weights_saturates():
    def model(w_init):
        layers = []
        for _ in range(6):
            layers += [Dense(512, w_init=w_init, dtype=F64), Tanh()]
        return serial(*layers)

    x = _normal((64, 512), seed=1)
    big = model(inits.normal(1.0))
    params, state = _init(big, x.shape, 0)
    stats = diag.activation_stats(big, params, state, x)
    assert (np.asarray(stats.saturated_fraction) > 0.85).all(), stats.table()
    assert float(stats.saturated_fraction[-1]) > 0.88
    # the same net with Glorot's initialization hardly saturates
    glorot = model(inits.glorot_normal())
    params, state = _init(glorot, x.shape, 0)
    stats = diag.activation_stats(glorot, params, state, x)
    assert (np.asarray(stats.saturated_fraction) < 0.05).all(), stats.table()


# ------------------------------------------------------------------------ error terms


def test_delta_norms_equal_a_direct_grad_wrt_hand_unrolled_preactivations():
    model = serial(
        Dense(6, dtype=F64), Tanh(), Dense(5, dtype=F64), Relu(), Dense(3, dtype=F64)
    )
    x, y = _normal((7, 4), 1), _normal((7, 3), 2)
    params, state = _init(model, x.shape, 3)
    (p1, _, p2, _, p3) = params

    def loss_at(e1, e2, e3):  # the network unrolled by hand, with the autodiff twins
        z1 = ref_dense_fn(x, p1["w"], p1["b"]) + e1
        z2 = ref_dense_fn(ref_act.tanh(z1), p2["w"], p2["b"]) + e2
        z3 = ref_dense_fn(ref_act.relu(z2), p3["w"], p3["b"]) + e3
        return 0.5 * jnp.sum((z3 - y) ** 2) / x.shape[0]

    zeros = [jnp.zeros((7, d), F64) for d in (6, 5, 3)]
    expected = jax.jit(jax.grad(loss_at, argnums=(0, 1, 2)))(*zeros)

    terms = diag.error_terms(model, params, state, mse, x, y)
    assert terms.names == ("0:Dense(6)", "2:Dense(5)", "4:Dense(3)")
    for got, want in zip(terms.deltas, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        terms.delta_norms, [float(jnp.linalg.norm(e)) for e in expected], rtol=1e-12
    )
    # weight gradients are the model's own parameter gradients
    grads = jax.jit(jax.grad(lambda p: mse(model.apply(p, state, x)[0], y)))(params)
    for got, want in zip(terms.weight_grads, (grads[0], grads[2], grads[4])):
        np.testing.assert_allclose(got["w"], want["w"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got["b"], want["b"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        terms.weight_grad_norms, [float(jnp.linalg.norm(g["w"])) for g in terms.weight_grads]
    )
    assert float(terms.loss) == pytest.approx(float(loss_at(*zeros)))
    # the pre-activations are the layers' outputs
    np.testing.assert_allclose(terms.pre_activations[0], x @ p1["w"] + p1["b"], rtol=1e-12)


def test_error_terms_of_a_conv_net_are_consistent_and_jittable():
    model = serial(
        serial(Conv2D(3, 3, padding="SAME", dtype=F64), BatchNorm(dtype=F64)), Relu(),
        MaxPool2D(2), Conv2D(4, 2, dtype=F64), Tanh(), Flatten(), Dense(5, dtype=F64),
    )
    x = _normal((4, 6, 6, 2), 1)
    y = jnp.asarray([0, 1, 2, 4])
    params, state = _init(model, x.shape, 0)
    fn = jax.jit(diag.error_terms, static_argnums=(0, 3), static_argnames="train")
    terms = fn(model, params, state, softmax_cross_entropy, x, y, train=True)
    assert terms.names == ("0.0:Conv2D(3, 3, padding='SAME')", "3:Conv2D(4, 2)", "6:Dense(5)")
    assert [d.shape for d in terms.deltas] == [(4, 6, 6, 3), (4, 2, 2, 4), (4, 5)]
    # the bias gradient is the error term summed over the batch and positions
    for delta, g in zip(terms.deltas, terms.weight_grads):
        np.testing.assert_allclose(
            g["b"], delta.reshape(-1, delta.shape[-1]).sum(0), rtol=1e-10, atol=1e-14
        )
    assert "||delta||" in terms.table() and "3:Conv2D(4, 2)" in terms.table()


# ------------------------------------------------------------------------ variance report


def test_variance_report_of_a_linear_network_matches_the_analytic_variance():
    widths = (8, 16, 12, 6)
    layers = [Dense(d, w_init=inits.normal(0.3), dtype=F64) for d in widths[1:]]
    model = serial(*layers)
    n = 256
    x = _whitened(n, widths[0], seed=1)
    params, state = _init(model, x.shape, 0)
    ws = [np.asarray(p["w"]) for p in params]
    # forward: Var[x M] = ||M||_F^2 / D_out for whitened x (zero biases)
    prods = [ws[0], ws[0] @ ws[1], ws[0] @ ws[1] @ ws[2]]
    fwd = [np.sum(m**2) / m.shape[1] for m in prods]
    # backward: with L = sum(out * g), g whitened, dL/d(out_l) = g B^T, Var = ||B||_F^2 / D_l
    g = _whitened(n, widths[-1], seed=2)
    backs = [ws[1] @ ws[2], ws[2], np.eye(widths[-1])]
    bwd = [np.sum(b**2) / b.shape[0] for b in backs]

    rep = diag.variance_report(model, params, state, x, lambda out, y: jnp.sum(out * y), g)
    assert rep.kinds == ("dense",) * 3
    np.testing.assert_allclose(rep.forward_var, fwd, rtol=1e-10)
    np.testing.assert_allclose(rep.backward_var, bwd, rtol=1e-10)
    assert float(rep.input_var) == pytest.approx(1.0)
    assert "Var[out]" in rep.table()

    # default backward signal: a standard normal cotangent at the output
    default = diag.variance_report(model, params, state, x)
    assert float(default.backward_var[-1]) == pytest.approx(1.0, rel=0.1)
    np.testing.assert_allclose(default.forward_var, fwd, rtol=1e-10)


def test_variance_report_covers_every_layer_and_checks_its_arguments():
    model = serial(Dense(4, dtype=F64), Relu(), Dense(2, dtype=F64))
    x = _normal((10, 3))
    params, state = _init(model, x.shape, 0)
    rep = jax.jit(diag.variance_report, static_argnums=(0,))(model, params, state, x)
    assert rep.names == ("0:Dense(4)", "1:Relu()", "2:Dense(2)")
    assert rep.forward_var.shape == (3,) and np.isnan(rep.weight_grad_var[1])
    with pytest.raises(ValueError, match="variance_report: loss_fn was given without targets y"):
        diag.variance_report(model, params, state, x, mse)
    with pytest.raises(ValueError, match="variance_report: targets y were given without"):
        diag.variance_report(model, params, state, x, None, x)


# ------------------------------------------------------------------------ summary


def test_summary_of_lenet5_counts_params_and_macs_by_hand():
    lenet5 = serial(
        Conv2D(6, 5), Tanh(), AvgPool2D(2),
        Conv2D(16, 5), Tanh(), AvgPool2D(2),
        Conv2D(120, 5), Tanh(), Flatten(),
        Dense(84), Tanh(), Dense(10),
    )
    s = diag.summary(lenet5, (1, 32, 32, 1))
    weighted = [r for r in s.rows if r.kind in ("dense", "conv")]
    # params: (k*k*C_in + 1) * C_out;  MACs: output positions * k*k*C_in * C_out
    assert [r.params for r in weighted] == [
        (25 * 1 + 1) * 6, (25 * 6 + 1) * 16, (25 * 16 + 1) * 120, (120 + 1) * 84, (84 + 1) * 10
    ]
    assert [r.macs for r in weighted] == [
        28 * 28 * 25 * 6, 10 * 10 * 150 * 16, 1 * 1 * 400 * 120, 120 * 84, 84 * 10
    ]
    assert [r.out_shape for r in weighted] == [
        (1, 28, 28, 6), (1, 10, 10, 16), (1, 1, 1, 120), (1, 84), (1, 10)
    ]
    assert s.total_params == 61_706 and s.total_macs == 416_520
    assert s.out_shape == (1, 10) and s.total_state == 0
    text = str(s)
    assert "61,706" in text and "416,520" in text and "(1, 14, 14, 6)" in text
    # MACs scale with the batch
    assert diag.summary(lenet5, (8, 32, 32, 1)).total_macs == 8 * 416_520


def test_summary_walks_nested_serial_and_counts_state():
    model = serial(serial(Dense(5), BatchNorm()), Relu(), Dense(3))
    s = diag.summary(model, (8, 4))
    names = ["0.0:Dense(5)", "0.1:BatchNorm()", "1:Relu()", "2:Dense(3)"]
    assert [r.name for r in s.rows] == names
    assert [r.params for r in s.rows] == [25, 10, 0, 18]
    assert s.total_state == 10 and "state entries" in s.table()


def test_diagnostics_reject_a_non_layer():
    with pytest.raises(TypeError, match="summary: model must be a funcnn Layer"):
        diag.summary(lambda x: x, (1, 2))
    with pytest.raises(TypeError, match="error_terms: model must be a funcnn Layer"):
        diag.error_terms(None, (), (), mse, jnp.ones((1, 2)), jnp.ones((1, 2)))
