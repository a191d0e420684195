"""When an engine steps, evaluates and checkpoints (:class:`Plan`), and the checks on its data."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops.checks import label_out_of_range
from funcnn._ops.host import to_device


def metric_dtype() -> np.dtype:
    """The dtype of recorded metrics: float64 under ``jax_enable_x64``, else float32."""
    return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)


@dataclasses.dataclass(frozen=True)
class Plan:
    """When things happen: step counts are numbers of completed updates."""

    total_steps: int
    steps_per_epoch: int
    batch_size: int
    eval_steps: tuple[int, ...]
    checkpoint_steps: tuple[int, ...]
    steps_per_call: int

    def boundaries(self) -> list[int]:
        return sorted(set(self.eval_steps) | set(self.checkpoint_steps) | {self.total_steps})


def _check_pos_int(fn: str, name: str, v: Any, *, allow_none: bool = False, minimum: int = 1) -> None:
    if v is None and allow_none:
        return
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{fn}: {name} must be an int >= {minimum}, got {v!r}")


def make_plan(
    fn: str,
    n_train: int,
    *,
    batch_size: int,
    steps: int | None,
    epochs: int | None,
    eval_every: int | None,
    checkpoint_every: int | None,
    steps_per_call: int,
) -> Plan:
    """Validate the loop settings and turn them into a :class:`Plan`."""
    _check_pos_int(fn, "batch_size", batch_size)
    if batch_size > n_train:
        raise ValueError(
            f"{fn}: batch_size={batch_size} is larger than the training set ({n_train} examples)"
        )
    if (steps is None) == (epochs is None):
        raise ValueError(f"{fn}: give exactly one of steps or epochs (got steps={steps!r}, epochs={epochs!r})")
    _check_pos_int(fn, "steps", steps, allow_none=True)
    _check_pos_int(fn, "epochs", epochs, allow_none=True)
    _check_pos_int(fn, "eval_every", eval_every, allow_none=True, minimum=0)
    _check_pos_int(fn, "checkpoint_every", checkpoint_every, allow_none=True)
    _check_pos_int(fn, "steps_per_call", steps_per_call)
    spe = n_train // batch_size
    total = int(steps) if steps is not None else int(epochs) * spe
    every = spe if eval_every is None else int(eval_every)
    evals = {0, total}
    if every > 0:
        evals |= set(range(every, total, every))
    ck_every = checkpoint_every if checkpoint_every is not None else (every if every > 0 else total)
    ckpts = set(range(ck_every, total, ck_every)) | {total}
    return Plan(
        total_steps=total,
        steps_per_epoch=spe,
        batch_size=int(batch_size),
        eval_steps=tuple(sorted(evals)),
        checkpoint_steps=tuple(sorted(ckpts)),
        steps_per_call=int(min(steps_per_call, max(total, 1))),
    )


def check_data(fn: str, name: str, data: Any) -> tuple[jax.Array, jax.Array]:
    """``(x, y)`` as device arrays with matching lengths (clear errors otherwise)."""
    if isinstance(data, Mapping):
        if "x" not in data or "y" not in data:
            raise ValueError(f"{fn}: {name} as a mapping needs keys 'x' and 'y', got {sorted(data)}")
        data = (data["x"], data["y"])
    if not isinstance(data, Sequence) or len(data) != 2:
        raise TypeError(f"{fn}: {name} must be a pair (x, y) of arrays, got {type(data).__name__}")
    x, y = data
    for nm, a in (("x", x), ("y", y)):
        if not hasattr(a, "shape") or len(np.shape(a)) == 0:
            raise TypeError(f"{fn}: {name} {nm} must be an array with a leading example axis, got {type(a).__name__}")
    if np.shape(x)[0] != np.shape(y)[0]:
        raise ValueError(
            f"{fn}: {name} has mismatched lengths: x has {np.shape(x)[0]} examples, y has "
            f"{np.shape(y)[0]} (x.shape={tuple(np.shape(x))}, y.shape={tuple(np.shape(y))})"
        )
    if np.shape(x)[0] == 0:
        raise ValueError(f"{fn}: {name} is empty")
    return to_device(x), to_device(y)


def check_labels(fn: str, name: str, y: Any, model: Any, in_shape: tuple[int, ...]) -> None:
    """Integer labels must index the model's outputs: ``0 <= y < K`` for ``K`` outputs (``{0, 1}``
    for one output). Checked on the host before training, so a bad label is a named error,
    not a loss that became NaN at step 0."""
    if not jnp.issubdtype(np.asarray(y).dtype if not hasattr(y, "dtype") else y.dtype, jnp.integer):
        return
    if isinstance(y, jax.Array) and not y.is_fully_addressable:
        return  # a global array of a multi-process run: this process holds only its part
    shapes: list[Any] = []

    def trace() -> tuple:
        shapes.append(tuple(model.init(jax.random.key(0), in_shape)[0]))
        return ()

    try:
        jax.eval_shape(trace)
    except Exception:  # noqa: BLE001 - the model's own errors are raised later, with their context
        return
    out = shapes[0][-1] if shapes and shapes[0] else None
    if out is None:
        return
    k = 2 if out == 1 else out
    bad = label_out_of_range(y, k)
    if bad is not None:
        raise ValueError(
            f"{fn}: {name} has label {bad}, outside [0, {k - 1}] for a model with {out} output"
            f"{'s' if out != 1 else ''} (labels must index its classes)"
        )
