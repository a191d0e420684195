"""Combinators: compose layers into a layer (same contract as :mod:`funcnn.layers`).

- ``out_shape, params, state = model.init(key, in_shape)``
- ``y, state = model.apply(params, state, x, *, key=None, train=False)``

``serial(*layers)`` chains layers; its params and state are tuples with one entry per child
(nested for nested ``serial``), so they stay plain pytrees.
"""

from __future__ import annotations

from typing import Any

import jax

from funcnn._layer import Layer, check_rule

__all__ = ["serial", "leaf_layers"]


def split_keys(key: Any, n: int) -> tuple[Any, ...]:
    """The keys ``serial`` hands its ``n`` children: one each (``None`` each when no key).

    Code that walks a serial model layer by layer (e.g. :mod:`funcnn.diagnostics`) uses this
    so its dropout masks equal the ones ``model.apply`` draws.
    """
    if key is None:
        return (None,) * n
    return tuple(jax.random.split(key, n)) if n else ()


def check_child_trees(fn: str, n: int, params: Any, state: Any) -> None:
    """Raise ValueError unless ``params`` and ``state`` are tuples of ``n`` entries, as serial's init returns."""
    for what, tree in (("params", params), ("state", state)):
        if not isinstance(tree, tuple) or len(tree) != n:
            raise ValueError(
                f"{fn}: {what} must be a tuple of {n} entries (one per layer, as init returns), "
                f"got {type(tree).__name__} of length {len(tree) if hasattr(tree, '__len__') else '?'}"
            )


def _common_rule(layers: tuple[Layer, ...]) -> str | None:
    """The rule shared by every rule-bearing layer, or None (no such layer, or mixed)."""
    rules = {layer.rule for layer in layers if layer.rule is not None}
    return rules.pop() if len(rules) == 1 else None


def _shapes_through(layers: tuple[Layer, ...], in_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The input shape of every layer and the final output shape, without allocating params."""
    shapes = [tuple(in_shape)]

    def trace():
        shape = tuple(in_shape)
        for layer in layers:
            shape, _, _ = layer.init(jax.random.key(0), shape)
            shapes.append(tuple(shape))
        return ()

    jax.eval_shape(trace)  # shapes are Python ints computed while tracing
    return shapes


def serial(*layers: Layer, rule: str | None = None) -> Layer:
    """Compose layers in order; the result is itself a layer (and nests).

    Args:
        *layers: the layers, first applied first.
        rule: if given (``"hand"`` or ``"autodiff"``), every child (recursively) is rebuilt
            under this rule, overriding its own; ``None`` keeps each child's rule.

    Returns:
        A :class:`Layer` of kind ``"serial"`` with ``children`` = the (rebuilt) layers.
        ``init`` splits ``key`` into one key per child and returns tuples of the children's
        params and states; ``apply`` threads ``x`` through the children, splits ``key`` (when
        given) into one key per child, passes ``train`` to all, and returns the tuple of
        new states. ``macs`` sums the children's counts.
    """
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"serial: argument {i} must be a Layer (e.g. Dense(10)), got {type(layer).__name__}"
            )
    if rule is not None:
        check_rule("serial", rule)
        layers = tuple(layer.with_rule(rule) for layer in layers)
    children = tuple(layers)
    n = len(children)
    name = "serial(" + ", ".join(child.name for child in children)
    name += f", rule={rule!r})" if rule is not None else ")"

    def init(key, in_shape):
        shape = in_shape
        params, states = [], []
        for child, k in zip(children, split_keys(key, n)):
            shape, p, s = child.init(k, shape)
            params.append(p)
            states.append(s)
        return shape, tuple(params), tuple(states)

    def apply(params, state, x, *, key=None, train=False):
        check_child_trees("serial", n, params, state)
        new_states = []
        for child, p, s, k in zip(children, params, state, split_keys(key, n)):
            x, s = child.apply(p, s, x, key=k, train=train)
            new_states.append(s)
        return x, tuple(new_states)

    def macs(in_shape, out_shape):
        shapes = _shapes_through(children, in_shape)
        counts = [
            child.macs(shapes[i], shapes[i + 1])
            for i, child in enumerate(children)
            if child.macs is not None
        ]
        counts = [c for c in counts if c is not None]
        return sum(counts) if counts else None

    has_rule = any(child.rule is not None or child.rebuild is not None for child in children)
    return Layer(
        init,
        apply,
        name=name,
        kind="serial",
        rule=rule if rule is not None else _common_rule(children),
        config={"rule": rule},
        children=children,
        rebuild=(lambda r: serial(*children, rule=r)) if has_rule else None,
        macs=macs,
    )


def leaf_layers(layer: Layer) -> tuple[Layer, ...]:
    """The non-combinator layers of a model in application order (depth-first)."""
    if layer.children:
        return tuple(leaf for child in layer.children for leaf in leaf_layers(child))
    return (layer,)

