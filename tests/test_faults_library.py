"""Library edge cases that used to train or compute silently: bad learning rates, labels
outside the model's classes, pooling windows entirely in the padding, channels-first data,
a Choice among differently shaped alternatives."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn
from funcnn.nn.models import mlp
from funcnn.train import TrainSpec, fit, make_optimizer, run_grid


@pytest.mark.parametrize("lr", [-1.0, float("nan"), 0.0, float("inf"), "0.1"])
def test_make_optimizer_refuses_a_learning_rate_that_cannot_be_right(lr):
    with pytest.raises(ValueError, match=r"make_optimizer: learning_rate must be a finite number > 0"):
        make_optimizer("adam", lr)
    assert make_optimizer("adam", optax.constant_schedule(1e-3)) is not None  # schedules pass


@pytest.mark.parametrize("bad", [5, -1, 2])
def test_labels_outside_the_models_classes_stop_before_training(bad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (np.arange(32) % 2).astype(np.int32)
    y[7] = bad
    with pytest.raises(ValueError, match=rf"fit: train_data has label {bad}, outside \[0, 1\] for a model with 2 outputs"):
        fit(mlp((4,), 2), "softmax_cross_entropy", optax.sgd(0.1), (x, y), steps=2, batch_size=8, progress=False)
    with pytest.raises(ValueError, match=rf"run_grid: test_data has label {bad}"):
        run_grid(lambda c: TrainSpec(mlp((4,), 2), "softmax_cross_entropy", optax.sgd(0.1)), {"seed": [0]},
                 (x, np.zeros(32, np.int32)), test_data=(x, y), steps=2, batch_size=8, progress=False)


@pytest.mark.parametrize("pool", [funcnn.max_pool2d, funcnn.avg_pool2d, funcnn.reference.max_pool2d])
def test_a_window_entirely_in_the_padding_is_refused(pool):
    x = jnp.ones((1, 6, 6, 2))
    with pytest.raises(ValueError, match=r"padding \(5, 5\) in spatial dim 0 leaves 4 window\(s\) entirely in the padding"):
        pool(x, 2, padding=5)
    y = pool(x, 3, padding=1)  # every window holds input: allowed
    assert y.shape == (1, 2, 2, 2) and bool(jnp.all(jnp.isfinite(y)))


def test_channels_first_data_into_a_conv_is_named():
    with pytest.warns(UserWarning, match=r"Conv2D\(4, 3\): in_shape \(2, 3, 8, 8\) looks channels-first.*transpose\(0, 2, 3, 1\)"):
        funcnn.Conv2D(4, 3).init(jax.random.key(0), (2, 3, 8, 8))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        funcnn.Conv2D(4, 3).init(jax.random.key(0), (2, 8, 8, 3))  # channels-last: silent
        funcnn.Conv1D(4, 3).init(jax.random.key(0), (2, 40, 1))


def test_a_choice_among_differently_shaped_alternatives_is_a_named_error():
    def pick(i):
        return funcnn.Choice(("same", "cut"), i).switch({"same": lambda v: v, "cut": lambda v: v[:2]}, jnp.ones(3))

    with pytest.raises(ValueError, match=r"Choice.switch: .* 'same' returns float\d+\[3\] but 'cut' returns float\d+\[2\]"):
        jax.jit(pick)(0)
    assert pick(1).shape == (2,)  # a concrete pick runs one alternative: any shape


@pytest.mark.parametrize("lr", [-1e-2, 0.0, float("nan")])
def test_run_grid_refuses_learning_rates_that_cannot_be_right(lr):
    x = np.zeros((16, 4), np.float32)
    y = np.zeros(16, np.int32)
    with pytest.raises(ValueError, match=r"run_grid: grid key 'lr' must hold finite learning rates > 0"):
        run_grid(lambda c: TrainSpec(mlp((4,), 2), "softmax_cross_entropy", optax.sgd(c["lr"])),
                 {"lr": [0.1, lr], "seed": [0]}, (x, y), steps=2, batch_size=8, progress=False)


@pytest.mark.parametrize("opt, match", [
    (lambda: optax.adam(-1e-2), "points uphill"),
    (lambda: optax.sgd(-0.1, momentum=0.9), "points uphill"),
    (lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(-1e-3, weight_decay=1e-2)), "points uphill"),
    (lambda: optax.sgd(float("nan")), "is not finite"),
])
def test_fit_refuses_an_optax_optimizer_built_with_a_bad_learning_rate(opt, match):
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    y = np.arange(16) % 2
    with pytest.raises(ValueError, match=rf"fit: optimizer's first update {match}"):
        fit(mlp((4,), 2), "softmax_cross_entropy", opt(), (x, y), steps=2, batch_size=8, progress=False)


def test_fit_accepts_descent_optimizers_whatever_their_decay_or_warmup():
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    y = np.arange(16) % 2
    warmup = optax.linear_schedule(0.0, 1e-2, 10)  # a learning rate that starts at 0
    for opt in (optax.adamw(1e-3, weight_decay=10.0), optax.adam(warmup), optax.lion(1e-4), optax.sgd(0.1)):
        r = fit(mlp((4,), 2), "softmax_cross_entropy", opt, (x, y), steps=2, batch_size=8, progress=False)
        assert r.step == 2 and not r.diverged
