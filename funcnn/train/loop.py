"""``fit``: train one model with evaluation, checkpoints, resume, a progress bar and Ctrl-C.

Example::

    from funcnn.combinators import serial
    from funcnn.layers import Dense, Relu
    from funcnn.train import fit, make_optimizer

    model = serial(Dense(64), Relu(), Dense(10))
    result = fit(model, "softmax_cross_entropy", make_optimizer("adam", 1e-3),
                 (x_train, y_train), test_data=(x_test, y_test), epochs=10, batch_size=128)
    result.history.eval_metrics["test_accuracy"]   # (E,) at result.history.eval_steps
    result.params                                  # the final parameters

Batches, dropout keys and the initialization all follow from ``seed`` (see
:mod:`funcnn.train._engine`), so the same call gives bitwise-identical results on CPU and
``resume=True`` continues a killed run exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from funcnn._layer import Layer
from funcnn.parallel import check_mesh
from funcnn.train._engine import (
    Engine,
    _member_keys_jit,
    check_data,
    init_carry,
    make_carry,
    make_plan,
    run_engines,
)
from funcnn.train.step import LossFn, check_model, check_optimizer, resolve_loss

Diagnostics = Callable[[Layer, Any, Any], Mapping[str, jax.Array]]


class TrainSpec(NamedTuple):
    """What a member trains: returned by a grid's ``build(config)``.

    ``init(key, in_shape) -> (params, state)`` overrides ``model.init`` when given
    (``in_shape`` = ``(batch_size, *x.shape[1:])``).
    """

    model: Layer
    loss: LossFn | str
    optimizer: optax.GradientTransformation
    init: Callable[[jax.Array, tuple[int, ...]], tuple[Any, Any]] | None = None


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


def fit(
    model: Layer,
    loss_fn: LossFn | str,
    optimizer: optax.GradientTransformation,
    train_data: tuple[Any, Any],
    *,
    test_data: tuple[Any, Any] | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    eval_every: int | None = None,
    eval_train: bool = True,
    eval_batch_size: int = 1024,
    classification: bool | None = None,
    diagnostics: Diagnostics | None = None,
    params: Any = None,
    state: Any = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 3,
    resume: bool = False,
    run_dir: Any = None,
    progress: bool = True,
    steps_per_call: int = 64,
    callback: Callable[[dict[str, Any]], None] | None = None,
    jit_kwargs: Mapping[str, Any] | None = None,
    mesh: Any = None,
    name: str = "fit",
) -> FitResult:
    """Train ``model`` on ``train_data`` with minibatch ``optimizer`` steps.

    Args:
      model: a layer, e.g. ``serial(Dense(64), Relu(), Dense(10))``.
      loss_fn: ``loss_fn(outputs, targets) -> scalar`` or a loss name (``"mse"``, ...).
      optimizer: any optax optimizer (see :func:`make_optimizer` for clipping and
        injected hyperparameters).
      train_data: ``(x, y)``, ``x`` ``(N, ...)``, ``y`` ``(N, ...)`` (or ``{"x":, "y":}``).
      test_data: optional ``(x, y)`` evaluated at every evaluation.
      steps, epochs: run length (exactly one). An epoch is ``N // batch_size`` steps (the
        remainder of each shuffled epoch is dropped).
      batch_size: examples per step; at most ``N``.
      seed: the seed of everything random (init, batch order, dropout).
      eval_every: steps between evaluations (default: once per epoch; ``0``: only at the
        start and the end). Evaluations also run at step 0 and at the last step.
      eval_train: also evaluate on the whole training set (``train_loss``, ...).
      eval_batch_size: chunk size of evaluations.
      classification: report accuracy (``None``: iff the targets are integer labels).
      diagnostics: ``diagnostics(model, params, state) -> {name: array}``, pure and
        jit-able, recorded at every evaluation (e.g. per-layer delta norms).
      params, state: start from these instead of ``model.init`` (both or neither).
      checkpoint_dir: save orbax checkpoints here (atomic; the newest
        ``keep_checkpoints`` kept) every ``checkpoint_every`` steps (default: at every
        evaluation) and at the end.
      resume: continue from the latest checkpoint in ``checkpoint_dir`` (a no-op when
        there is none); the result is bitwise identical to an uninterrupted run on CPU.
      run_dir: a :class:`funcnn.train.results.RunDir`; evaluation records are appended
        to its ``metrics.jsonl`` (flushed before every checkpoint).
      progress: show a tqdm progress bar.
      steps_per_call: train steps per jitted call (a ``fori_loop``; larger = less Python
        overhead, coarser progress and Ctrl-C latency). Results do not depend on it.
      callback: called after each jitted call with ``{"group", "step", "status"}``.
      jit_kwargs: extra ``jax.jit`` arguments for the training chunk (e.g. shardings).
      mesh: a :class:`jax.sharding.Mesh` (:func:`funcnn.parallel.make_mesh`) to train
        data-parallel: each batch split over its ``"data"`` axis, params and optimizer
        state replicated, gradients (and batch-norm statistics) over the global batch.
        ``None``: one device, as before. See :mod:`funcnn.parallel`.
      name: the run's name in progress bars and metrics records.

    Returns:
      a :class:`FitResult`. A non-finite loss or gradient stops training (the bad update
      is not applied; ``diverged`` says when and why). Ctrl-C stops after the current
      jitted call, checkpoints and flushes what finished, and returns with
      ``interrupted=True``.
    """
    fn = "fit"
    mesh = check_mesh(fn, mesh)
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
    if resume and checkpoint_dir is None:
        raise ValueError(f"{fn}: resume=True needs a checkpoint_dir")
    plan = make_plan(
        fn, x.shape[0], batch_size=batch_size, steps=steps, epochs=epochs,
        eval_every=eval_every, checkpoint_every=checkpoint_every, steps_per_call=steps_per_call,
    )
    in_shape = (batch_size, *x.shape[1:])
    seed = check_seed(fn, seed)
    cache_key = ("fit", model, loss_fn, optimizer)

    def spec_fn(hp: Any) -> tuple[Any, Any, Any, Any]:
        return model, loss_fn, optimizer, None

    if params is None:
        carry = init_carry(cache_key, spec_fn, [{}], [seed], in_shape, batched=False)
    else:
        _, data_key, train_key = _member_keys_jit(seed)
        carry = make_carry(params, state, optimizer.init(params), data_key, train_key)
    config = {"seed": seed}
    eng = Engine(
        name=name,
        spec_fn=spec_fn,
        hp={},
        carry0=carry,
        batched=False,
        n_members=1,
        train=(x, y),
        test=test,
        plan=plan,
        eval_train=eval_train,
        classification=classification,
        eval_batch_size=eval_batch_size,
        diagnostics=diagnostics,
        jit_kwargs=jit_kwargs,
        configs=[config],
        member_ids=[0],
        cache_key=cache_key,
        mesh=mesh,
    )
    ck = None
    if checkpoint_dir is not None:
        from funcnn.train.checkpoint import Checkpointer

        ck = Checkpointer(checkpoint_dir, max_to_keep=keep_checkpoints)
    try:
        interrupted, seconds = run_engines(
            [eng], checkpointers=[ck], resume=resume, run_dir=run_dir, progress=progress,
            callback=callback, desc=name,
        )
    finally:
        if ck is not None:
            ck.close()
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
