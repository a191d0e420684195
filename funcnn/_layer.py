"""The layer contract shared by every constructor in :mod:`funcnn.layers`.

A layer is a pair of pure functions (stax-style), carried with a little metadata:

- ``out_shape, params, state = layer.init(key, in_shape)``: ``in_shape`` includes the batch
  dimension; ``params`` and ``state`` are plain pytrees (``state`` is ``()`` for stateless
  layers).
- ``y, state = layer.apply(params, state, x, *, key=None, train=False)``.

``Layer`` is a frozen dataclass, so it holds no arrays and is safe to close over in jitted
code. It also unpacks like a stax pair: ``init, apply = Dense(10)``.

Metadata used by diagnostics, summaries and the rule switch:

- ``name``: human-readable, e.g. ``"Dense(64)"``.
- ``kind``: one of ``KINDS`` (what the layer is, for diagnostics and summaries).
- ``rule``: ``"hand"`` or ``"autodiff"`` for layers built on a hand-ruled op (or a
  :class:`funcnn.Choice` among them, picked by data), else ``None``.
- ``activation``: the activation name for activation layers (``"relu"``, ...; a
  :class:`funcnn.Choice` for a layer that picks among activations by data), else ``None``.
- ``config``: the constructor's settings (e.g. ``{"out": 64}``), for summaries.
- ``children``: sub-layers of a combinator (``serial``), in order.
- ``rebuild``: ``rule -> Layer``, the same layer under another rule (``None`` if rule-free).
- ``macs``: ``(in_shape, out_shape) -> int``, multiply-accumulates for the whole batch of
  one forward pass (``None`` when the layer does no multiply-accumulates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

RULES = ("hand", "autodiff")
KINDS = (
    "dense",
    "conv",
    "pool",
    "activation",
    "norm",
    "dropout",
    "flatten",
    "serial",
    "other",
)

InitFn = Callable[..., tuple[tuple[int, ...], Any, Any]]
ApplyFn = Callable[..., tuple[Any, Any]]


@dataclasses.dataclass(frozen=True, eq=False)
class Layer:
    """An ``(init, apply)`` pair of pure functions plus descriptive metadata."""

    init: InitFn
    apply: ApplyFn
    name: str
    kind: str = "other"
    rule: Any = None  # "hand" | "autodiff" | a funcnn.Choice of them | None
    activation: Any = None  # str, or a funcnn.Choice
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    children: tuple[Layer, ...] = ()
    rebuild: Callable[[str], Layer] | None = None
    macs: Callable[[tuple[int, ...], tuple[int, ...]], int] | None = None

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        """Unpack like a stax pair: ``init, apply = layer``."""
        yield self.init
        yield self.apply

    def with_rule(self, rule: str) -> Layer:
        """The same layer (and sub-layers) with every hand-ruled op under ``rule``.

        ``rule="hand"`` uses the hand-written ``custom_vjp`` rules, ``rule="autodiff"`` the
        autodiff twins from :mod:`funcnn.reference`. Layers without a rule are unchanged.
        """
        check_rule(f"{self.name}.with_rule", rule)
        if self.rebuild is None:
            return self
        return self.rebuild(rule)

    def __repr__(self) -> str:
        return self.name


def check_rule(fn: str, rule: Any) -> None:
    """Raise ValueError unless ``rule`` is ``"hand"``, ``"autodiff"`` or a Choice among them.

    A :class:`funcnn.Choice` over the rules makes each op pick its hand rule or its twin by
    data (one program for both; see :mod:`funcnn.choice`).
    """
    from funcnn.choice import Choice

    if isinstance(rule, Choice):
        bad = [r for r in rule.options if r not in RULES]
        if bad:
            raise ValueError(f"{fn}: unknown rule {bad[0]!r} in {rule!r}; expected options among 'hand', 'autodiff'")
        return
    if isinstance(rule, str) and rule in RULES:
        return
    raise ValueError(f"{fn}: unknown rule {rule!r}; expected one of 'hand', 'autodiff'")
