"""``fit``: train one model with evaluation, checkpoints, resume, a progress bar and Ctrl-C.

Example::

    from funcnn.nn.combinators import serial
    from funcnn.nn import Dense, Relu
    from funcnn.train import fit, make_optimizer

    model = serial(Dense(64), Relu(), Dense(10))
    result = fit(model, "softmax_cross_entropy", make_optimizer("adam", 1e-3),
                 (x_train, y_train), test_data=(x_test, y_test), epochs=10, batch_size=128)
    result.history.eval_metrics["test_accuracy"]   # (E,) at result.history.eval_steps
    result.params                                  # the final parameters

Batches, dropout keys and the initialization all follow from ``seed`` (see
:mod:`funcnn.train.engine`), so the same call gives bitwise-identical results on CPU and
``resume=True`` continues a killed run exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from funcnn.nn.layer import Layer
from funcnn.train.engine.carry import _member_keys_jit
from funcnn.train.engine import (
    Engine,
    check_data,
    check_labels,
    init_carry,
    make_carry,
    run_engines,
)
from funcnn.train.options import (  # Diagnostics: its old home was here
    Diagnostics,  # noqa: F401
    TrainOptions,
    engine_config,
    make_plan,
    resolve_options,
    run_settings,
    with_option_keywords,
)
from funcnn.train.spec import TrainSpec  # noqa: F401  (its old home was here)
from funcnn.train.step import LossFn, check_descends, check_model, check_optimizer, resolve_loss


@dataclasses.dataclass
class History:
    """Metrics of one run.

    Attributes:
      step_metrics: name -> ``(T,)`` per train step (``loss``, ``grad_norm``,
        ``update_norm``); ``T`` = steps completed; NaN after divergence.
      eval_steps: ``(E,)`` the step counts at which evaluations ran (0 = at init).
      eval_metrics: name -> ``(E, ...)``: ``train_loss``, ``train_accuracy``,
        ``test_loss``, ``test_accuracy`` (accuracies for classification) and the
        diagnostics' outputs.
      steps_per_epoch: to convert steps to epochs.
    """

    step_metrics: dict[str, np.ndarray]
    eval_steps: np.ndarray
    eval_metrics: dict[str, np.ndarray]
    steps_per_epoch: int

    def final(self) -> dict[str, Any]:
        """The last evaluation's scalar metrics (``{}`` if none ran)."""
        if len(self.eval_steps) == 0:
            return {}
        out = {}
        for k, v in self.eval_metrics.items():
            if v.ndim == 1:
                out[k] = float(v[-1])
        return out


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    ``step`` is the number of updates done (``< total_steps`` when interrupted or
    diverged); ``diverged`` the reason (``"loss became nan at step 37"``) or None;
    ``traces`` how many times the train step was traced (compilations).
    """

    params: Any
    state: Any
    opt_state: Any
    history: History
    step: int
    total_steps: int
    diverged: str | None
    diverged_step: int | None
    interrupted: bool
    seconds: float
    traces: int
    config: dict[str, Any]

    @property
    def final(self) -> dict[str, Any]:
        """The last evaluation's scalar metrics."""
        return self.history.final()


def history_of(eng: Engine, m: int) -> History:
    """Member ``m``'s history, cut to what was done."""
    done = np.flatnonzero(eng.eval_done)
    return History(
        step_metrics={k: v[m, : eng.step].copy() for k, v in eng.step_hist.items()},
        eval_steps=np.asarray(eng.plan.eval_steps, np.int64)[done],
        eval_metrics={k: v[m, done].copy() for k, v in eng.eval_hist.items()},
        steps_per_epoch=eng.plan.steps_per_epoch,
    )


def init_member(
    fn: str, model: Layer, init: Callable | None, seed: int, in_shape: tuple[int, ...]
) -> tuple[Any, Any, jax.Array, jax.Array]:
    """``(params, state, data_key, train_key)`` of a member from its seed (eagerly)."""
    init_key, data_key, train_key = _member_keys_jit(int(seed))
    if init is not None:
        params, state = init(init_key, in_shape)
    else:
        _, params, state = model.init(init_key, in_shape)
    return params, state, data_key, train_key


def check_seed(fn: str, seed: Any) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"{fn}: seed must be an int, got {seed!r}")
    return int(seed)


@with_option_keywords
def fit(
    model: Layer,
    loss_fn: LossFn | str,
    optimizer: optax.GradientTransformation,
    train_data: tuple[Any, Any],
    *,
    test_data: tuple[Any, Any] | None = None,
    seed: int = 0,
    params: Any = None,
    state: Any = None,
    name: str = "fit",
    options: TrainOptions | None = None,
    **settings: Any,
) -> FitResult:
    """Train ``model`` on ``train_data`` with minibatch ``optimizer`` steps.

    Args:
      model: a layer, e.g. ``serial(Dense(64), Relu(), Dense(10))``.
      loss_fn: ``loss_fn(outputs, targets) -> scalar`` or a loss name (``"mse"``, ...).
      optimizer: any optax optimizer (see :func:`make_optimizer` for clipping and
        injected hyperparameters).
      train_data: ``(x, y)``, ``x`` ``(N, ...)``, ``y`` ``(N, ...)`` (or ``{"x":, "y":}``).
      test_data: optional ``(x, y)`` evaluated at every evaluation.
      seed: the seed of everything random (init, batch order, dropout).
      params, state: start from these instead of ``model.init`` (both or neither).
      name: the run's name in progress bars and metrics records.
      options: a :class:`TrainOptions` (run length, batch size, evaluation, checkpoints,
        resume, run directory, progress, mesh, ...).
      **settings: any field of :class:`TrainOptions` as a keyword (``steps=100``,
        ``batch_size=32``, ...), with the defaults and meaning documented there.

    Returns:
      a :class:`FitResult`. A non-finite loss or gradient stops training (the bad update
      is not applied; ``diverged`` says when and why). Ctrl-C stops after the current
      jitted call, checkpoints and flushes what finished, and returns with
      ``interrupted=True``.
    """
    fn = "fit"
    o = resolve_options(fn, options, settings)
    check_model(fn, model)
    check_optimizer(fn, optimizer)
    loss_fn = resolve_loss(loss_fn, fn)
    x, y = check_data(fn, "train_data", train_data)
    test = check_data(fn, "test_data", test_data) if test_data is not None else None
    if test is not None and test[0].shape[1:] != x.shape[1:]:
        raise ValueError(
            f"{fn}: test_data x has example shape {tuple(test[0].shape[1:])} but train_data x "
            f"has {tuple(x.shape[1:])}"
        )
    if (params is None) != (state is None):
        raise ValueError(f"{fn}: give both params and state, or neither")
    plan = make_plan(fn, x.shape[0], o)
    in_shape = (o.batch_size, *x.shape[1:])
    check_labels(fn, "train_data", y, model, in_shape)
    if test is not None:
        check_labels(fn, "test_data", test[1], model, in_shape)
    seed = check_seed(fn, seed)
    cache_key = ("fit", model, loss_fn, optimizer)

    def spec_fn(hp: Any) -> tuple[Any, Any, Any, Any]:
        return model, loss_fn, optimizer, None

    if params is None:
        carry = init_carry(cache_key, spec_fn, hps=[{}], seeds=[seed], in_shape=in_shape, batched=False)
    else:
        _, data_key, train_key = _member_keys_jit(seed)
        carry = make_carry(params, state, optimizer.init(params), data_key, train_key)
    check_descends(fn, optimizer, carry["params"], carry["opt_state"])
    config = {"seed": seed}
    eng = Engine(
        name=name, spec_fn=spec_fn, config=engine_config(o, plan, batched=False), hp={}, carry0=carry, n_members=1,
        train=(x, y), test=test, configs=[config], member_ids=[0], cache_key=cache_key,
    )
    interrupted, seconds = run_engines(
        [eng], checkpoint_dirs=None if o.checkpoint_dir is None else [o.checkpoint_dir], desc=name, **run_settings(o)
    )
    div = eng.diverged()[0]
    dstep = int(np.asarray(eng.carry["diverged_step"]))
    return FitResult(
        params=eng.carry["params"],
        state=eng.carry["state"],
        opt_state=eng.carry["opt_state"],
        history=history_of(eng, 0),
        step=eng.step,
        total_steps=plan.total_steps,
        diverged=div,
        diverged_step=dstep if dstep >= 0 else None,
        interrupted=interrupted,
        seconds=seconds,
        traces=eng.traces,
        config={
            **config,
            "steps": plan.total_steps,
            "batch_size": plan.batch_size,
            "steps_per_epoch": plan.steps_per_epoch,
            "eval_steps": list(plan.eval_steps),
        },
    )
