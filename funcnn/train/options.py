"""``TrainOptions``: the settings :func:`~funcnn.train.fit` and :func:`~funcnn.train.run_grid` share.

Both functions take every field as a keyword (``fit(..., steps=100, batch_size=32)``) or the
whole set at once (``fit(..., options=TrainOptions(steps=100, batch_size=32))``); the
defaults and their meaning live here, once::

    opts = TrainOptions(epochs=5, batch_size=64, eval_every=50, progress=False)
    fit(model, "softmax_cross_entropy", opt, (x, y), options=opts)
    run_grid(build, grid, (x, y), options=opts)
    run_grid(build, grid, (x, y), options=dataclasses.replace(opts, epochs=10))

A keyword given next to ``options=`` must agree with the option it names (a different value
is an error: a setting is given in one place); change a copy with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import jax
import numpy as np

from funcnn.nn.layer import Layer
from funcnn.train.parallel import check_mesh
from funcnn.train.engine import EngineConfig, Plan
from funcnn.train.engine.plan import _check_pos_int
from funcnn.train.engine import make_plan as _make_plan

Diagnostics = Callable[[Layer, Any, Any], Mapping[str, jax.Array]]


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How a model (``fit``) or every member of a grid (``run_grid``) is trained.

    Attributes:
      steps, epochs: run length (exactly one, given here or per call). An epoch is
        ``N // batch_size`` steps (the remainder of each shuffled epoch is dropped).
      batch_size: examples per step; at most ``N``.
      eval_every: steps between evaluations (default: once per epoch; ``0``: only at the
        start and the end). Evaluations also run at step 0 and at the last step.
      eval_train: also evaluate on the whole training set (``train_loss``, ...).
      eval_batch_size: chunk size of evaluations.
      classification: report accuracy (``None``: iff the targets are integer labels).
      diagnostics: ``diagnostics(model, params, state) -> {name: array}``, pure and
        jit-able, recorded at every evaluation (e.g. per-layer delta norms).
      checkpoint_dir: save orbax checkpoints here (atomic; the newest ``keep_checkpoints``
        kept) every ``checkpoint_every`` steps (default: at every evaluation) and at the
        end. A grid checkpoints each group into ``<checkpoint_dir>/<group>``.
      keep_checkpoints: how many of the newest checkpoints to keep (per group in a grid).
      resume: continue from the latest checkpoint in ``checkpoint_dir`` (a no-op when there
        is none; a grid restores finished groups and continues unfinished ones); the result
        is bitwise identical to an uninterrupted run on CPU.
      run_dir: a :class:`funcnn.train.RunDir`; evaluation records are appended to its
        ``metrics.jsonl`` (one line per member and evaluation; flushed before every
        checkpoint).
      progress: show a tqdm progress bar.
      steps_per_call: train steps per jitted call (a ``fori_loop``; larger = less Python
        overhead, coarser progress and Ctrl-C latency). Results do not depend on it.
      callback: called after each jitted call with ``{"group", "step", "status"}``.
      jit_kwargs: extra ``jax.jit`` arguments for the training chunk (e.g. shardings).
      mesh: a :class:`jax.sharding.Mesh` (:func:`funcnn.train.parallel.make_mesh`). Each batch is
        split over its ``"data"`` axis (params and optimizer state replicated, gradients and
        batch-norm statistics over the global batch); a grid's members are split over its
        ``"grid"`` axis (a group is padded to a multiple of the axis size; the padding never
        shows). ``None``: one device. See :mod:`funcnn.train.parallel`.
      parts: a grid group's members train as at most this many equal slices side by side, one
        thread each, on one compiled program (every choice block cut alike: the most slices up
        to ``parts`` that divide each block's members). ``None`` (auto): on a multi-core CPU
        up to one per core; 1 on GPU/TPU, on a mesh, in multi-process runs and for ``fit``
        (one model), where any value means 1. Training does not depend on it (the
        convolutions' ``auto`` choice is timed at a whole block's width; params and step
        losses are bitwise equal on CPU); evaluations run at the slice's vmap width, so their
        metrics can differ in the last bit (so can a run on a machine with another number of
        cores). Records and checkpoints are the whole group's: a run may resume under
        another value.
    """

    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 128
    eval_every: int | None = None
    eval_train: bool = True
    eval_batch_size: int = 1024
    classification: bool | None = None
    diagnostics: Diagnostics | None = None
    checkpoint_dir: str | os.PathLike[str] | None = None
    checkpoint_every: int | None = None
    # 3, as Checkpointer keeps: the newest to resume from, two older ones in case it is damaged.
    keep_checkpoints: int = 3
    resume: bool = False
    run_dir: Any = None
    progress: bool = True
    steps_per_call: int = 64
    callback: Callable[[dict[str, Any]], None] | None = None
    jit_kwargs: Mapping[str, Any] | None = None
    mesh: Any = None
    parts: int | None = None

    def __post_init__(self) -> None:
        values = {name: _checked("TrainOptions", name, getattr(self, name)) for name in FIELDS}
        _check_together("TrainOptions", values)
        for name, v in values.items():
            object.__setattr__(self, name, v)


#: The names of the fields, in order.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainOptions))

# What each field must be: counts (minimum, None allowed), flags, functions.
_COUNTS = {
    "steps": (1, True), "epochs": (1, True), "batch_size": (1, False), "eval_every": (0, True),
    "eval_batch_size": (1, False), "checkpoint_every": (1, True), "keep_checkpoints": (1, False),
    "steps_per_call": (1, False), "parts": (1, True),
}
_FLAGS = {"eval_train": False, "resume": False, "progress": False, "classification": True}
_FUNCTIONS = ("diagnostics", "callback")


def _checked(fn: str, name: str, v: Any) -> Any:
    """``v`` as the field ``name`` keeps it (ints and bools made plain); errors name ``fn``."""
    if name in _COUNTS:
        minimum, optional = _COUNTS[name]
        _check_pos_int(fn, name, v, allow_none=optional, minimum=minimum)
        return None if v is None else int(v)
    if name in _FLAGS:
        if v is None and _FLAGS[name]:
            return None
        if not isinstance(v, (bool, np.bool_)):
            none = " or None" if _FLAGS[name] else ""
            raise TypeError(f"{fn}: {name} must be True or False{none}, got {v!r}")
        return bool(v)
    if name in _FUNCTIONS:
        if v is not None and not callable(v):
            raise TypeError(f"{fn}: {name} must be a function or None, got {type(v).__name__}")
        return v
    if name == "checkpoint_dir":
        if v is not None and not isinstance(v, (str, os.PathLike)):
            raise TypeError(f"{fn}: checkpoint_dir must be a path (str or os.PathLike) or None, got {type(v).__name__}")
        return v
    if name == "run_dir":
        if v is not None and not hasattr(v, "append_metrics"):
            raise TypeError(f"{fn}: run_dir must be a funcnn.train.RunDir or None, got {type(v).__name__}")
        return v
    if name == "jit_kwargs":
        if v is not None and not isinstance(v, Mapping):
            raise TypeError(f"{fn}: jit_kwargs must be a dict of jax.jit arguments or None, got {type(v).__name__}")
        return v
    if name == "mesh":
        return check_mesh(fn, v)
    raise AssertionError(name)  # pragma: no cover - every field is handled above


def _check_together(fn: str, values: Mapping[str, Any]) -> None:
    if values["resume"] and values["checkpoint_dir"] is None:
        raise ValueError(f"{fn}: resume=True needs a checkpoint_dir")


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values without a plain == are the same only if identical
        return False


def resolve_options(fn: str, options: TrainOptions | None, settings: Mapping[str, Any]) -> TrainOptions:
    """The validated options of a call ``fn(..., options=options, **settings)``.

    Raises:
      TypeError: a keyword that is no field (as Python says it), ``options`` that is not a
        :class:`TrainOptions`, a value of the wrong type.
      ValueError: a value out of range, or a keyword that disagrees with ``options``.
    """
    unknown = [k for k in settings if k not in FIELDS]
    if unknown:
        raise TypeError(f"{fn}() got an unexpected keyword argument {unknown[0]!r}")
    if options is not None and not isinstance(options, TrainOptions):
        raise TypeError(f"{fn}: options must be a funcnn.train.TrainOptions, got {type(options).__name__}")
    values = {k: _checked(fn, k, v) for k, v in settings.items()}
    base = options if options is not None else DEFAULTS
    if options is not None:
        for k, v in values.items():
            if not _same(getattr(options, k), v):
                raise ValueError(
                    f"{fn}: {k}={v!r} conflicts with options.{k}={getattr(options, k)!r}; give each setting once "
                    f"(dataclasses.replace(options, {k}=...) changes a copy)"
                )
    merged = {**{k: getattr(base, k) for k in FIELDS}, **values}
    _check_together(fn, merged)
    return dataclasses.replace(base, **values) if values else base


DEFAULTS = TrainOptions()

F = TypeVar("F", bound=Callable[..., Any])


def with_option_keywords(func: F) -> F:
    """Show every :class:`TrainOptions` field as a keyword-only parameter of ``func``.

    ``func`` takes ``options=None, **settings``; its signature (``help``, IDEs,
    ``inspect.signature(func).bind``) lists the fields with their defaults in its place.
    """
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in dataclasses.fields(TrainOptions)
    ]
    func.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return func


# --------------------------------------------------------------------------- to the engine


def make_plan(fn: str, n_train: int, o: TrainOptions) -> Plan:
    """The :class:`~funcnn.train.engine.Plan` (when to step, evaluate, checkpoint) of ``o``."""
    return _make_plan(
        fn, n_train, batch_size=o.batch_size, steps=o.steps, epochs=o.epochs, eval_every=o.eval_every,
        checkpoint_every=o.checkpoint_every, steps_per_call=o.steps_per_call,
    )


def engine_config(o: TrainOptions, plan: Plan, *, batched: bool, blocks: Any = None) -> EngineConfig:
    """The :class:`~funcnn.train.engine.EngineConfig` of ``o`` for a group (``batched``) or one model."""
    return EngineConfig(
        plan=plan, batched=batched, eval_train=o.eval_train, classification=o.classification,
        eval_batch_size=o.eval_batch_size, diagnostics=o.diagnostics, jit_kwargs=o.jit_kwargs, mesh=o.mesh,
        blocks=blocks, parts=o.parts if batched else 1,
    )


def run_settings(o: TrainOptions) -> dict[str, Any]:
    """The keywords of :func:`~funcnn.train.engine.run_engines` that come from ``o``."""
    return dict(keep_checkpoints=o.keep_checkpoints, resume=o.resume, run_dir=o.run_dir, progress=o.progress,
                callback=o.callback)
