"""The pure pieces of training: the train step, evaluation, optimizers with clipping.

Everything here is a pure function of its arguments (randomness only from explicit keys),
so it can be jitted, vmapped over ablation-grid members and, later, given shardings.

- ``step = make_train_step(model, loss_fn, optimizer)``:
  ``params, opt_state, state, metrics = step(params, opt_state, state, x, y, key)``.
- ``evaluate = make_eval_fn(model, loss_fn)``: ``{"loss", "accuracy"} = evaluate(params, state, x, y)``.
- ``make_optimizer("adam", 1e-3, clip_global_norm=1.0)``: an optax optimizer whose
  hyperparameters are state leaves (``optax.inject_hyperparams``), so a learning rate can be
  read, changed, or vmapped over.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn._ops import conv_autotune
from funcnn.nn.layer import Layer

LossFn = Callable[[jax.Array, jax.Array], jax.Array]
TrainStep = Callable[..., tuple[Any, Any, Any, dict[str, jax.Array]]]
EvalFn = Callable[..., dict[str, jax.Array]]

#: Names accepted wherever a loss may be given by name (resolved in :mod:`funcnn.losses`).
LOSS_NAMES = ("mse", "logistic_mse", "binary_cross_entropy", "softmax_cross_entropy", "softmax_mse")

def global_norm(tree: Any) -> jax.Array:
    """The global L2 norm of a pytree: ``sqrt(sum of squares of every entry)``."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros(())
    # One dot per leaf (vdot conjugates its first argument): one kernel instead of a square
    # and a reduction, which made the MLP train step faster (BENCHMARKS.md).
    return jnp.sqrt(sum(jnp.real(jnp.vdot(x.ravel(), x.ravel())) for x in leaves))


#: Metrics returned by every train step (scalars).
STEP_METRICS = ("loss", "grad_norm", "update_norm")


def resolve_loss(loss: LossFn | str, fn: str = "resolve_loss") -> LossFn:
    """A loss function ``loss_fn(outputs, targets) -> scalar``, given itself or by name.

    Names are those of :data:`LOSS_NAMES` (functions of :mod:`funcnn.losses`).
    """
    if isinstance(loss, str):
        if loss not in LOSS_NAMES:
            listed = ", ".join(repr(n) for n in LOSS_NAMES)
            raise ValueError(f"{fn}: unknown loss name {loss!r}; expected one of {listed}")
        import funcnn.losses as losses

        return getattr(losses, loss)
    if not callable(loss):
        raise TypeError(
            f"{fn}: loss_fn must be a callable loss_fn(outputs, targets) -> scalar or a loss "
            f"name, got {type(loss).__name__}"
        )
    return loss


def check_model(fn: str, model: Any) -> None:
    """Raise TypeError unless ``model`` follows the layer contract (``init``/``apply``)."""
    if isinstance(model, Layer):
        return
    if not (callable(getattr(model, "init", None)) and callable(getattr(model, "apply", None))):
        raise TypeError(
            f"{fn}: model must be a funcnn Layer (with init and apply), got {type(model).__name__}"
        )


def check_optimizer(fn: str, optimizer: Any) -> None:
    """Raise TypeError unless ``optimizer`` is an optax ``GradientTransformation``."""
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(
            f"{fn}: optimizer must be an optax GradientTransformation (with init and update), "
            f"got {type(optimizer).__name__}"
        )


@functools.partial(jax.jit, static_argnums=0)
def _ascent_probe(optimizer: Any, params: Any, opt_state: Any) -> tuple[jax.Array, jax.Array]:
    ones = jax.tree.map(lambda p: jnp.ones_like(p) if jnp.issubdtype(p.dtype, jnp.inexact) else p, params)
    neg = jax.tree.map(lambda g: -g if jnp.issubdtype(g.dtype, jnp.inexact) else g, ones)
    up, _ = optimizer.update(ones, opt_state, params)
    down, _ = optimizer.update(neg, opt_state, params)
    # update(g) - update(-g): what the gradient's sign contributes (weight decay and other
    # gradient-free terms cancel); a descent step has it opposite to g = +1 everywhere
    leaves = [jnp.sum(a.astype(jnp.float32) - b.astype(jnp.float32)) for a, b in
              zip(jax.tree.leaves(up), jax.tree.leaves(down)) if jnp.issubdtype(a.dtype, jnp.inexact)]
    total = sum(leaves, jnp.zeros((), jnp.float32))
    return total, jnp.isfinite(total)


def check_descends(fn: str, optimizer: Any, params: Any, opt_state: Any) -> None:
    """Raise ValueError when ``optimizer``'s first update does not point downhill.

    The probe (one small compiled program) asks the optimizer for its first update along a
    gradient of ones and along its negative: a minimiser moves against the gradient, so the
    difference of the two updates sums to < 0 (or to 0: a learning rate that starts at 0, a
    frozen parameter). A sum > 0 is an optimizer built with a negative learning rate
    (``optax.adam(-1e-2)``); a non-finite one, a NaN or infinite learning rate.
    """
    total, finite = (float(v) for v in _ascent_probe(optimizer, params, opt_state))
    if not finite:
        raise ValueError(
            f"{fn}: optimizer's first update is not finite for a gradient of ones (a NaN or infinite "
            f"learning rate?); optax optimizers take a finite learning_rate > 0"
        )
    if total > 0:
        raise ValueError(
            f"{fn}: optimizer's first update points uphill (along a gradient of ones it moves the "
            f"parameters up, by {total:.3g} summed): its learning rate looks negative, e.g. "
            f"optax.adam(-1e-2); optax optimizers take a learning_rate > 0 and minimise"
        )


def make_objective(model: Layer, loss_fn: LossFn | str) -> Callable[..., tuple[jax.Array, Any]]:
    """``objective(params, state, x, y, key) -> (loss, new_state)`` in training mode.

    ``x``: a batch ``(B, ...)``; ``y``: its targets ``(B, ...)``; ``key``: the batch's key
    (dropout). Differentiate with ``jax.value_and_grad(objective, has_aux=True)``.
    """
    check_model("make_objective", model)
    loss_fn = resolve_loss(loss_fn, "make_objective")

    def objective(params: Any, state: Any, x: jax.Array, y: jax.Array, key: jax.Array):
        outputs, new_state = model.apply(params, state, x, key=key, train=True)
        return loss_fn(outputs, y), new_state

    return objective


def make_train_step(
    model: Layer,
    loss_fn: LossFn | str,
    optimizer: optax.GradientTransformation,
    *,
    jit: bool = True,
    norms: bool = True,
) -> TrainStep:
    """A train step: one gradient update of ``model`` on a batch.

    ``params, opt_state, state, metrics = step(params, opt_state, state, x, y, key)``

    Args:
      model: a layer (``init``/``apply``), e.g. ``serial(Dense(64), Relu(), Dense(10))``.
      loss_fn: ``loss_fn(outputs, targets) -> scalar`` (mean over the batch) or a name of
        :data:`LOSS_NAMES`.
      optimizer: any optax ``GradientTransformation`` (schedules, chains, clipping).
      jit: return the step jitted (default) or the plain function (to vmap or scan it). The
        jitted step is ``jax.jit(step)`` judged as a whole when its ``auto`` convolutions run
        measured plans (:class:`funcnn.conv_autotune.JudgedJit`: on CPU, its first call on a
        new shape may time the step against the thresholds' plans and keep the faster).
      norms: compute ``grad_norm`` and ``update_norm`` (default). With ``norms=False``
        ``metrics`` holds only ``loss``; the update is the same. The two norms are two extra
        passes over every parameter-sized array, a noticeable part of a small MLP's step on CPU
        (BENCHMARKS.md). :func:`fit` and :func:`run_grid` always compute them (a
        non-finite gradient norm is how they detect divergence).

    The step takes ``x`` ``(B, ...)``, ``y`` ``(B, ...)`` and a ``jax.random`` key (used by
    stochastic layers such as dropout). ``metrics`` holds scalars: ``loss`` (on the batch,
    at the params *before* the update), ``grad_norm`` (global L2 norm of the gradient) and
    ``update_norm`` (global L2 norm of the applied update); the last two unless
    ``norms=False``. The step is a pure function of its arguments.
    """
    check_model("make_train_step", model)
    check_optimizer("make_train_step", optimizer)
    if not isinstance(norms, bool):
        raise TypeError(f"make_train_step: norms must be True or False, got {norms!r}")
    objective = make_objective(model, resolve_loss(loss_fn, "make_train_step"))
    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def step(params: Any, opt_state: Any, state: Any, x: jax.Array, y: jax.Array, key: jax.Array):
        (loss, new_state), grads = grad_fn(params, state, x, y, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss}
        if norms:
            metrics["grad_norm"] = global_norm(grads)
            metrics["update_norm"] = global_norm(updates)
        return params, opt_state, new_state, metrics

    return conv_autotune.JudgedJit(step) if jit else step


def is_classification(targets: Any) -> bool:
    """The default for ``classification=None``: integer targets are class labels."""
    dtype = targets.dtype if hasattr(targets, "dtype") else jnp.asarray(targets).dtype
    return bool(jnp.issubdtype(dtype, jnp.integer))


def correct(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-example correctness ``(N,)`` (bool) of classifier ``outputs`` against ``targets``.

    - integer labels ``(N,)`` with outputs ``(N, K)``: ``argmax(outputs) == label``;
    - probability or one-hot rows ``(N, K)``, ``K > 1``: ``argmax(outputs) == argmax(targets)``;
    - binary, outputs ``(N, 1)`` or ``(N,)`` (logits): ``(outputs > 0) == (targets > 0.5)``.
    """
    if outputs.ndim >= 2 and outputs.shape[-1] > 1:
        pred = jnp.argmax(outputs, axis=-1)
        if jnp.issubdtype(targets.dtype, jnp.integer) and targets.ndim == outputs.ndim - 1:
            return pred == targets
        return pred == jnp.argmax(targets, axis=-1)
    pred = outputs.reshape(outputs.shape[0], -1)[:, 0] > 0
    truth = targets.reshape(targets.shape[0], -1)[:, 0]
    return pred == (truth > 0.5)


def make_eval_fn(
    model: Layer,
    loss_fn: LossFn | str,
    *,
    classification: bool | None = None,
    batch_size: int = 1024,
    jit: bool = True,
) -> EvalFn:
    """An evaluation function over a whole dataset, in eval mode (``train=False``).

    ``metrics = evaluate(params, state, x, y)`` with ``x`` ``(N, ...)``, ``y`` ``(N, ...)``
    returns ``{"loss": scalar}`` (the mean of the per-example losses, so it equals
    ``loss_fn`` on the whole set for batch-mean losses) plus ``"accuracy"`` (fraction
    correct, see :func:`correct`) when ``classification`` is true. ``classification=None``
    decides from the targets: integer labels are classification.

    The data go through the model in chunks of ``batch_size`` examples (one compiled chunk;
    the last one is padded and masked), so large sets do not need one huge batch.
    """
    check_model("make_eval_fn", model)
    loss_fn = resolve_loss(loss_fn, "make_eval_fn")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"make_eval_fn: batch_size must be a positive int, got {batch_size!r}")

    def per_example_loss(o: jax.Array, t: jax.Array) -> jax.Array:
        return loss_fn(o[None], t[None])

    def evaluate(params: Any, state: Any, x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
        n = x.shape[0]
        if y.shape[0] != n:
            raise ValueError(
                f"evaluate: x and y have different lengths (x.shape={tuple(x.shape)}, "
                f"y.shape={tuple(y.shape)})"
            )
        classify = is_classification(y) if classification is None else classification
        bs = min(batch_size, n)
        chunks = -(-n // bs)
        pad = chunks * bs - n
        mask = jnp.arange(chunks * bs) < n
        xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        yp = jnp.concatenate([y, jnp.zeros((pad, *y.shape[1:]), y.dtype)]) if pad else y
        xp = xp.reshape(chunks, bs, *x.shape[1:])
        yp = yp.reshape(chunks, bs, *y.shape[1:])

        def chunk(args):
            xb, yb = args
            with conv_autotune.untimed():  # no backward here: the autotune times nothing
                out, _ = model.apply(params, state, xb, train=False)
            losses = jax.vmap(per_example_loss)(out, yb)
            hits = correct(out, yb) if classify else jnp.zeros(losses.shape, bool)
            return losses, hits

        losses, hits = jax.lax.map(chunk, (xp, yp))
        losses, hits = losses.reshape(-1), hits.reshape(-1)
        total = jnp.sum(jnp.where(mask, losses, 0))
        metrics = {"loss": total / n}
        if classify:
            metrics["accuracy"] = jnp.sum(jnp.where(mask, hits, False)) / n
        return metrics

    return jax.jit(evaluate) if jit else evaluate


# --------------------------------------------------------------------------- optimizers

_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")


def with_clipping(
    optimizer: optax.GradientTransformation,
    *,
    global_norm: float | None = None,
    value: float | None = None,
) -> optax.GradientTransformation:
    """``optimizer`` preceded by gradient clipping.

    ``global_norm``: rescale the whole gradient so its global L2 norm is at most this
    (``optax.clip_by_global_norm``); ``value``: clip each entry to ``[-value, value]``
    (``optax.clip``). Either, both (value first), or neither (``optimizer`` unchanged).
    """
    for name, v in (("global_norm", global_norm), ("value", value)):
        if v is not None and not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"with_clipping: {name} must be a positive number, got {v!r}")
    parts = []
    if value is not None:
        parts.append(optax.clip(value))
    if global_norm is not None:
        parts.append(optax.clip_by_global_norm(global_norm))
    return optax.chain(*parts, optimizer) if parts else optimizer


def make_optimizer(
    name: str = "adam",
    learning_rate: float | optax.Schedule = 1e-3,
    *,
    clip_global_norm: float | None = None,
    clip_value: float | None = None,
    **kwargs: Any,
) -> optax.GradientTransformation:
    """An optax optimizer by name, with its hyperparameters as state leaves, plus clipping.

    Args:
      name: one of ``"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"``
        (``"momentum"`` = ``optax.sgd(momentum=0.9)``, ``"nesterov"`` adds Nesterov).
      learning_rate: a float or an optax schedule ``step -> lr``.
      clip_global_norm, clip_value: see :func:`with_clipping`.
      **kwargs: passed to the optax constructor (e.g. ``b1=0.9``, ``weight_decay=1e-4``).

    The optimizer is wrapped in ``optax.inject_hyperparams``, so ``learning_rate`` (and
    numeric kwargs) live in the optimizer state: :func:`get_hyperparam` reads the current
    value (the schedule's value when a schedule is given) and :func:`set_hyperparam`
    changes it (or gives every member of a vmapped grid its own).
    """
    if name not in _OPTIMIZERS:
        listed = ", ".join(repr(n) for n in _OPTIMIZERS)
        raise ValueError(f"make_optimizer: unknown optimizer name {name!r}; expected one of {listed}")
    if not callable(learning_rate) and not isinstance(learning_rate, jax.core.Tracer):  # traced: a grid's batched lr
        lr = learning_rate
        if isinstance(lr, jax.Array) and lr.ndim == 0:
            lr = float(lr)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)) or not math.isfinite(float(lr)) or lr <= 0:
            raise ValueError(
                f"make_optimizer: learning_rate must be a finite number > 0 (or an optax schedule), got {lr!r}"
            )
    if name == "momentum":
        ctor, kwargs = optax.sgd, {"momentum": 0.9, **kwargs}
    elif name == "nesterov":
        ctor, kwargs = optax.sgd, {"momentum": 0.9, "nesterov": True, **kwargs}
    else:
        ctor = getattr(optax, name)
    opt = optax.inject_hyperparams(ctor)(learning_rate=learning_rate, **kwargs)
    return with_clipping(opt, global_norm=clip_global_norm, value=clip_value)


def _is_injected(s: Any) -> bool:
    return hasattr(s, "_replace") and isinstance(getattr(s, "hyperparams", None), Mapping)


def _hyperparam_states(opt_state: Any) -> list[Any]:
    states = []

    def visit(s: Any) -> None:
        if _is_injected(s):
            states.append(s)
        elif isinstance(s, (tuple, list)):
            for c in s:
                visit(c)

    visit(opt_state)
    return states


def get_hyperparam(opt_state: Any, name: str = "learning_rate") -> jax.Array:
    """The current value of hyperparameter ``name`` in an injected optimizer's state."""
    for s in _hyperparam_states(opt_state):
        if name in s.hyperparams:
            return s.hyperparams[name]
    raise KeyError(
        f"get_hyperparam: no hyperparameter {name!r} in opt_state; build the optimizer with "
        f"make_optimizer or optax.inject_hyperparams"
    )


def set_hyperparam(opt_state: Any, name: str, value: Any) -> Any:
    """A copy of ``opt_state`` with hyperparameter ``name`` set to ``value``.

    Works on a single state or a stacked (vmapped) one: pass ``value`` with the member
    axis, e.g. ``jnp.array([1e-3, 1e-2, 1e-1])``. Only numeric (non-schedule)
    hyperparameters can be set; a scheduled one is recomputed at every update.
    """

    def rebuild(s: Any) -> Any:
        if _is_injected(s) and name in s.hyperparams:
            old = s.hyperparams[name]
            hp = dict(s.hyperparams)
            hp[name] = jnp.broadcast_to(jnp.asarray(value, dtype=old.dtype), old.shape)
            return s._replace(hyperparams=hp)
        if isinstance(s, tuple) and not hasattr(s, "_fields"):
            return tuple(rebuild(c) for c in s)
        if isinstance(s, list):
            return [rebuild(c) for c in s]
        return s

    if not any(name in s.hyperparams for s in _hyperparam_states(opt_state)):
        raise KeyError(
            f"set_hyperparam: no hyperparameter {name!r} in opt_state; build the optimizer with "
            f"make_optimizer or optax.inject_hyperparams"
        )
    return rebuild(opt_state)
