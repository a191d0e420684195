"""The layer contract shared by every constructor in :mod:`funcnn.nn`.

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
- ``rebuild``: ``rule -> Layer``, the same layer under another rule (``None`` if rule-free);
  :func:`switches_rule` derives it from a constructor and the arguments it was called with.
- ``macs``: ``(in_shape, out_shape) -> int``, multiply-accumulates for the whole batch of
  one forward pass (``None`` when the layer does no multiply-accumulates).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
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
    "fan",
    "combinator",
    "other",
)

InitFn = Callable[..., tuple[tuple[int, ...], Any, Any]]
ApplyFn = Callable[..., tuple[Any, Any]]


@dataclasses.dataclass(frozen=True, eq=False)
class Layer:
    """An ``(init, apply)`` pair of pure functions plus descriptive metadata.

    Build your own layer by giving the two functions and, where they apply, the metadata
    that diagnostics, summaries and the rule switch read::

        def init(key, in_shape):
            return in_shape, {"scale": jnp.ones(in_shape[-1])}, ()

        def apply(params, state, x, *, key=None, train=False):
            return x * params["scale"], state

        layer = Layer(init, apply, name="Scale()")

    Attributes:
      init: ``(key, in_shape) -> (out_shape, params, state)``; ``in_shape`` includes the batch
        axis; ``params`` and ``state`` are plain pytrees (``()`` when empty).
      apply: ``(params, state, x, *, key=None, train=False) -> (y, new_state)``; pure.
      name: what tables and errors show, e.g. ``"Dense(64)"``.
      kind: one of :data:`KINDS`. Diagnostics read it: ``"dense"``/``"conv"`` layers are the
        weighted layers of :func:`funcnn.error_terms` (params ``{"w", "b"}``), and
        ``"activation"`` layers (with ``activation`` set) are the rows of
        :func:`funcnn.activation_stats`; ``"other"`` layers are applied but not reported.
      rule: ``"hand"`` or ``"autodiff"`` when the layer runs a hand-ruled op (or a
        :class:`funcnn.Choice` between them), else ``None``. A layer that sets ``rule`` must
        give ``rebuild`` too (or be built by a constructor under :func:`switches_rule`), or
        ``with_rule`` to another rule is an error.
      activation: for ``kind="activation"``, the registered activation's name (or a Choice of
        names); diagnostics look its dead and saturated regions up in :mod:`funcnn._ops.registry`.
      config: the constructor's settings (for summaries and ``repr``).
      children: the sub-layers of a combinator (``serial``, ``Parallel``, ``Residual``), in order
        (diagnostics walk them).
      rebuild: ``rule -> Layer``, the same layer under another rule; ``None`` for rule-free layers.
      macs: ``(in_shape, out_shape) -> int``, multiply-accumulates of one forward pass over the
        batch, or ``None`` when the layer does none.
    """

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
        autodiff twins from :mod:`funcnn.reference`. Layers without a rule are unchanged; a
        layer that carries a rule but has no ``rebuild`` raises ValueError (it cannot switch).
        """
        check_rule(f"{self.name}.with_rule", rule)
        if self.rebuild is None:
            if self.rule is None or self.rule == rule:
                return self
            raise ValueError(
                f"{self.name}.with_rule: this layer carries rule={self.rule!r} but has no rebuild, so it "
                f"cannot switch to rule={rule!r}; give the Layer rebuild=lambda rule: <the same layer under "
                f"that rule>, or build it with rule={rule!r} directly"
            )
        return self.rebuild(rule)

    def __repr__(self) -> str:
        return self.name


def check_rule(fn: str, rule: Any) -> None:
    """Raise ValueError unless ``rule`` is ``"hand"``, ``"autodiff"`` or a Choice among them.

    A :class:`funcnn.Choice` over the rules makes each op pick its hand rule or its twin by
    data (one program for both; see :mod:`funcnn.nn.choice`).
    """
    from funcnn.nn.choice import Choice

    if isinstance(rule, Choice):
        bad = [r for r in rule.options if r not in RULES]
        if bad:
            raise ValueError(f"{fn}: unknown rule {bad[0]!r} in {rule!r}; expected options among 'hand', 'autodiff'")
        return
    if isinstance(rule, str) and rule in RULES:
        return
    raise ValueError(f"{fn}: unknown rule {rule!r}; expected one of 'hand', 'autodiff'")


def switches_rule(constructor: Callable[..., Layer]) -> Callable[..., Layer]:
    """Decorate a layer constructor that takes ``rule``, so its layers can switch rule.

    The layer it returns gets ``rebuild``: the same constructor called again with the same
    arguments and another ``rule``, so ``layer.with_rule("autodiff")`` builds exactly the
    layer the user would have written with ``rule="autodiff"``. A user's own constructor
    takes the same decorator::

        @switches_rule
        def Scale(c, rule="hand"):
            ...
            return Layer(init, apply, name=f"Scale({c})", rule=rule)
    """
    signature = inspect.signature(constructor)
    if "rule" not in signature.parameters:
        raise TypeError(f"switches_rule: {constructor.__qualname__} has no parameter 'rule' to switch")

    @functools.wraps(constructor)
    def build(*args: Any, **kwargs: Any) -> Layer:
        layer = constructor(*args, **kwargs)

        def rebuild(rule: Any) -> Layer:
            bound = signature.bind(*args, **kwargs)
            bound.arguments["rule"] = rule
            return build(*bound.args, **bound.kwargs)

        return dataclasses.replace(layer, rebuild=rebuild)

    return build
