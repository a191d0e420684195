"""What a member trains: :class:`TrainSpec` (model, loss, optimizer, init), and its checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from funcnn.nn.layer import Layer
from funcnn.train.step import LossFn, check_model, check_optimizer, resolve_loss


class TrainSpec(NamedTuple):
    """What a member trains: returned by a grid's ``build(config)``.

    ``init(key, in_shape) -> (params, state)`` overrides ``model.init`` when given
    (``in_shape`` = ``(batch_size, *x.shape[1:])``).
    """

    model: Layer
    loss: LossFn | str
    optimizer: optax.GradientTransformation
    init: Callable[[jax.Array, tuple[int, ...]], tuple[Any, Any]] | None = None


def resolve_spec(fn: str, spec: Any) -> tuple[Any, Any, Any, Any]:
    """``(model, loss_fn, optimizer, init)`` from a TrainSpec or a 3/4-tuple."""
    if not isinstance(spec, tuple) or len(spec) not in (3, 4):
        raise TypeError(
            f"{fn}: build(config) must return TrainSpec(model, loss, optimizer[, init]) or a "
            f"tuple (model, loss, optimizer), got {type(spec).__name__}"
        )
    model, loss, optimizer = spec[:3]
    init = spec[3] if len(spec) == 4 else None
    check_model(fn, model)
    check_optimizer(fn, optimizer)
    return model, resolve_loss(loss, fn), optimizer, init
