"""Combinators: compose layers into a layer (same contract as :mod:`funcnn.layers`).

- ``out_shape, params, state = model.init(key, in_shape)``
- ``y, state = model.apply(params, state, x, *, key=None, train=False)``

With the semantics of ``jax.example_libraries.stax``:

- ``serial(*layers)`` chains layers; its params and state are tuples with one entry per
  child (nested for nested ``serial``), so they stay plain pytrees.
- ``FanOut(n)`` hands on a tuple of ``n`` copies of its input; ``Parallel(*layers)`` applies
  layer ``i`` to element ``i`` of a tuple; ``FanInSum()`` / ``FanInConcat(axis)`` take a
  tuple and sum / concatenate it. A tuple-valued ``in_shape`` is a tuple of shapes.
- ``Residual(*layers)`` is ``y = x + serial(*layers)(x)`` (with options: a projection
  shortcut, SkipInit's learnable branch scale).

The fan-out and fan-in backward passes teach something, so they are hand-written rules
like any op's (``fan_out``, ``fan_in_sum``, ``fan_in_concat`` below; twins in
:mod:`funcnn.reference.combinators`): a copied value collects the *sum* of its copies' error
terms, a sum sends the *same* error term down every branch, a concatenation *splits* it.
The layers that use them take ``rule="hand"`` / ``"autodiff"`` (or a Choice) like any
layer, and ``with_rule`` switches them with the rest of a model.

Every combinator is a :class:`Combinator`: a :class:`~funcnn.nn.layer.Layer` whose
``with_children`` rebuilds it over other children, which is how :mod:`funcnn.nn.diagnostics`
walks any model (it rebuilds the combinators over instrumented leaves and runs the model's
own ``apply``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

import funcnn.reference.combinators as _ref
from funcnn._ops.fan_validation import check_count, check_fan_in_concat, check_fan_in_sum, check_fan_out
from funcnn.nn.layer import Layer, check_rule, switches_rule
from funcnn._ops.rules import hand_rule
from funcnn.nn.choice import Choice

__all__ = [
    "Combinator",
    "FanInConcat",
    "FanInSum",
    "FanOut",
    "Parallel",
    "Residual",
    "fan_in_concat",
    "fan_in_sum",
    "fan_out",
    "leaf_layers",
    "serial",
]

# Kinds of the layers defined here, from funcnn.nn.layer.KINDS: a fan-out/fan-in leaf has no
# weights ("fan"); Parallel and Residual are "combinator" (their data flow is not a chain, so
# they do not claim "serial"); diagnostics walk them by isinstance(Combinator).
_FAN_KIND = "fan"
_COMBINATOR_KIND = "combinator"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)  # repr: Layer's (the name)
class Combinator(Layer):
    """A layer made of child layers that can be rebuilt over other children.

    ``with_children(children)`` is the same combinator -- same settings, same own rule,
    children *not* rebuilt under any rule -- applied to ``children`` instead (as many as
    ``self.children``, in the same roles). :mod:`funcnn.nn.diagnostics` uses it to run a
    model's own ``apply`` with instrumented leaves; a user-defined combinator returned as a
    ``Combinator`` is walked the same way.
    """

    with_children: Callable[[tuple[Layer, ...]], Layer] | None = None


def is_combinator(layer: Layer) -> bool:
    """Whether a model walker should descend into ``layer``: a :class:`Combinator`, or a plain
    Layer of kind ``"serial"`` with children (a chain made outside this module)."""
    if isinstance(layer, Combinator):
        return layer.with_children is not None
    return layer.kind == "serial" and bool(layer.children)


def rewire(layer: Layer, children: Sequence[Layer]) -> Layer:
    """``layer`` (a combinator, see :func:`is_combinator`) over other ``children``."""
    children = tuple(children)
    if len(children) != len(layer.children):
        raise ValueError(
            f"rewire: {layer.name} has {len(layer.children)} children, got {len(children)} to replace them"
        )
    if isinstance(layer, Combinator) and layer.with_children is not None:
        return layer.with_children(children)
    return serial(*children)  # a plain kind="serial" layer: a chain with one entry per child


def split_keys(key: Any, n: int) -> tuple[Any, ...]:
    """The keys ``serial`` hands its ``n`` children: one each (``None`` each when no key).

    Code that walks a serial model layer by layer (e.g. :mod:`funcnn.nn.diagnostics`) uses this
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


def serial(*layers: Layer, rule: str | None = None) -> Combinator:
    """Compose layers in order; the result is itself a layer (and nests).

    Args:
        *layers: the layers, first applied first.
        rule: if given (``"hand"`` or ``"autodiff"``), every child (recursively) is rebuilt
            under this rule, overriding its own; ``None`` keeps each child's rule.

    Returns:
        A :class:`Combinator` of kind ``"serial"`` with ``children`` = the (rebuilt) layers.
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
    return Combinator(
        init,
        apply,
        name=name,
        kind="serial",
        rule=rule if rule is not None else _common_rule(children),
        config={"rule": rule},
        children=children,
        rebuild=(lambda r: serial(*children, rule=r)) if has_rule else None,
        macs=macs,
        with_children=lambda cs: serial(*cs),
    )


def leaf_layers(layer: Layer) -> tuple[Layer, ...]:
    """The non-combinator layers of a model, depth-first in ``children`` order (application
    order for ``serial`` chains; a ``Residual``'s branch before its shortcut)."""
    if layer.children:
        return tuple(leaf for child in layer.children for leaf in leaf_layers(child))
    return (layer,)



# ---------------------------------------------------------------------------------------
# The fan-out / fan-in ops, each with a hand-written backward rule (twins in
# funcnn.reference.combinators). Layers below use them; they are public ops like dense.
# ---------------------------------------------------------------------------------------


def fan_out(x: Any, n: int) -> tuple[Any, ...]:
    """``n`` copies of ``x``, ``(x, ..., x)``, with a hand-written backward rule.

    Args:
      x: an array (or a pytree of arrays), any shape ``(...)``.
      n: the number of copies, a positive Python int (static).

    Returns:
      A tuple of ``n`` arrays equal to ``x`` (same shapes and dtypes).

    Backward: ``dL/dx = sum_i dL/dy_i``. A value used in ``n`` places reaches the loss along
    ``n`` paths, and the multivariable chain rule adds the error terms of the paths; the
    input of a residual block gets its shortcut's error term *plus* its branch's.
    """
    x, n = check_fan_out("fan_out", x, n)
    return _fan_out(n, x)


@functools.partial(hand_rule, nondiff_argnums=(0,))
def _fan_out(n: int, x: Any) -> tuple[Any, ...]:
    return (x,) * n


def _fan_out_fwd(n: int, x: Any) -> tuple[tuple[Any, ...], None]:
    return _fan_out.fun(n, x), None  # nothing to save: the rule is a sum of the cotangents


# dx = dy_1 + dy_2 + ... + dy_n: the error terms of all the copies add up (a fork in the graph)
# (summed left to right; a copy that does not reach the loss contributes its zero cotangent)
def _fan_out_bwd(n: int, _: None, gs: tuple[Any, ...]) -> tuple[Any]:
    return (functools.reduce(lambda a, b: jax.tree_util.tree_map(jnp.add, a, b), gs),)


_fan_out.defvjp(_fan_out_fwd, _fan_out_bwd)


def fan_in_sum(*xs: ArrayLike) -> jax.Array:
    """``xs[0] + xs[1] + ... + xs[k-1]``, with a hand-written backward rule.

    Args:
      *xs: ``k >= 1`` arrays of one shape ``(...)`` and one dtype (no broadcasting).

    Returns:
      Their sum, shape ``(...)``.

    Backward: ``dL/dx_i = dL/dy`` for every ``i``: ``dy/dx_i`` is the identity, so a sum
    sends the *same* error term, unchanged, down every branch (in a residual block both the
    shortcut and the branch see ``delta`` of the block's output).
    """
    xs = check_fan_in_sum("fan_in_sum", xs)
    return _fan_in_sum(len(xs), xs)


@functools.partial(hand_rule, nondiff_argnums=(0,))
def _fan_in_sum(k: int, xs: tuple[jax.Array, ...]) -> jax.Array:
    return functools.reduce(jnp.add, xs)


def _fan_in_sum_fwd(k: int, xs: tuple[jax.Array, ...]) -> tuple[jax.Array, None]:
    return _fan_in_sum.fun(k, xs), None  # nothing to save: every input has g's shape and dtype


# dx_i = dy for every input i: d(x_1 + ... + x_k)/dx_i = I, so one error term goes down each branch
def _fan_in_sum_bwd(k: int, _: None, g: jax.Array) -> tuple[tuple[jax.Array, ...]]:
    return ((g,) * k,)


_fan_in_sum.defvjp(_fan_in_sum_fwd, _fan_in_sum_bwd)


def fan_in_concat(*xs: ArrayLike, axis: int = -1) -> jax.Array:
    """``jnp.concatenate(xs, axis)``, with a hand-written backward rule.

    Args:
      *xs: ``k >= 1`` arrays of one rank and dtype, equal in size on every axis but ``axis``:
        ``x_i`` of shape ``(..., n_i, ...)``.
      axis: the axis to concatenate along (static; default the last, features/channels).

    Returns:
      Shape ``(..., n_1 + ... + n_k, ...)``.

    Backward: ``dL/dx_i = dL/dy[..., o_i : o_i + n_i, ...]`` with ``o_i = n_1 + ... + n_{i-1}``:
    each input gets back the slice of the error term at the positions it filled.
    """
    xs, ax = check_fan_in_concat("fan_in_concat", xs, axis)
    return _fan_in_concat(ax, tuple(int(x.shape[ax]) for x in xs), xs)


@functools.partial(hand_rule, nondiff_argnums=(0, 1))
def _fan_in_concat(axis: int, sizes: tuple[int, ...], xs: tuple[jax.Array, ...]) -> jax.Array:
    return jnp.concatenate(xs, axis=axis)


def _fan_in_concat_fwd(axis: int, sizes: tuple[int, ...], xs: tuple[jax.Array, ...]) -> tuple[jax.Array, None]:
    return _fan_in_concat.fun(axis, sizes, xs), None  # the split points are static (sizes)


# dx_i = dy[..., o_i : o_i + n_i, ...] along axis, o_i = n_1 + ... + n_{i-1}: concatenation's transpose is a split
def _fan_in_concat_bwd(axis: int, sizes: tuple[int, ...], _: None, g: jax.Array) -> tuple[tuple[jax.Array, ...]]:
    starts = np.cumsum((0,) + sizes[:-1])
    return (tuple(lax.slice_in_dim(g, int(o), int(o) + n, axis=axis) for o, n in zip(starts, sizes)),)


_fan_in_concat.defvjp(_fan_in_concat_fwd, _fan_in_concat_bwd)


# ---------------------------------------------------------------------------------------
# Helpers of the layers below
# ---------------------------------------------------------------------------------------


def _by_rule(rule: Any, hand: Callable[..., Any], twin: Callable[..., Any]) -> Callable[..., Any]:
    """The op under ``rule``: the hand-ruled one, its twin, or (a Choice) a pick by data.

    Settings go as keywords (``op(x, n=2)``) so that a Choice's ``lax.switch`` gets only the
    arrays as operands.
    """
    if not isinstance(rule, Choice):
        return hand if rule == "hand" else twin

    def op(*arrays: Any, **settings: Any) -> Any:
        branches = {"hand": lambda *a: hand(*a, **settings), "autodiff": lambda *a: twin(*a, **settings)}
        return rule.switch(branches, *arrays)

    return op


def _rule_shown(rule: Any, default: Any = "hand") -> str:
    """``", rule='autodiff'"`` for a name, or ``""`` for the default rule."""
    return "" if rule is default or (isinstance(rule, str) and rule == default) else f", rule={rule!r}"


def _rules_in(layer: Layer) -> set[Any]:
    """The rules a layer (and, when it shares none, its children) run under."""
    if layer.rule is not None:
        return {layer.rule}
    return set().union(*(_rules_in(c) for c in layer.children)) if layer.children else set()


def _one_rule(rules: set[Any]) -> Any:
    return next(iter(rules)) if len(rules) == 1 else None


def _check_layers(fn: str, layers: Sequence[Any]) -> None:
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{fn}: argument {i} must be a Layer (e.g. Dense(10)), got {type(layer).__name__}")


def _is_shape(s: Any) -> bool:
    return (
        isinstance(s, Sequence)
        and not isinstance(s, str)
        and all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) for d in s)
    )


def _shape_tree(fn: str, in_shape: Any) -> Any:
    """``in_shape`` normalized: a shape (tuple of ints), or a tuple of such (nested)."""
    if _is_shape(in_shape):
        return tuple(int(d) for d in in_shape)
    if isinstance(in_shape, Sequence) and not isinstance(in_shape, str):
        return tuple(_shape_tree(fn, s) for s in in_shape)
    raise TypeError(f"{fn}: in_shape must be a shape (a tuple of ints) or a tuple of shapes, got {in_shape!r}")


def _shape_tuple(fn: str, in_shape: Any, n: int | None = None, *, flat: bool = False) -> tuple[Any, ...]:
    """``in_shape`` as a tuple of input shapes (``n`` of them if given; plain shapes if ``flat``)."""
    count = "one or more" if n is None else str(n)
    if _is_shape(in_shape):
        raise ValueError(
            f"{fn}: in_shape must be a tuple of {count} shapes (one per input, as FanOut or Parallel "
            f"hand on), got the single shape {tuple(int(d) for d in in_shape)}"
        )
    shapes = _shape_tree(fn, in_shape)
    if n is not None and len(shapes) != n:
        raise ValueError(f"{fn}: in_shape must be a tuple of {n} shapes (one per layer), got {len(shapes)}: {shapes}")
    if flat:
        for i, s in enumerate(shapes):
            if not _is_shape(s):
                raise ValueError(f"{fn}: input {i} must be a single array, got the tuple of shapes {s} in in_shape")
    return shapes


def _tuple_input(fn: str, x: Any, n: int | None = None) -> tuple[Any, ...]:
    """``x`` as a tuple of inputs (``n`` of them if given)."""
    if not isinstance(x, (tuple, list)):
        shown = f" of shape {tuple(np.shape(x))}" if hasattr(x, "shape") else ""
        raise TypeError(
            f"{fn}: x must be a tuple of inputs (as FanOut or Parallel hand on), got {type(x).__name__}{shown}"
        )
    if n is not None and len(x) != n:
        raise ValueError(f"{fn}: x must be a tuple of {n} inputs (one per layer), got a tuple of {len(x)}")
    return tuple(x)


def _children_macs(
    children: tuple[Layer, ...], remake: Callable[[tuple[Layer, ...]], Layer], in_shape: Any
) -> int | None:
    """The sum of the children's MACs, each at the shapes it sees inside the combinator."""
    seen: dict[int, tuple[Any, Any]] = {}

    def recording(i: int, child: Layer) -> Layer:
        def init(key, shape):
            out = child.init(key, shape)
            seen[i] = (shape, out[0])
            return out

        return dataclasses.replace(child, init=init)

    probe = remake(tuple(recording(i, c) for i, c in enumerate(children)))
    jax.eval_shape(lambda: probe.init(jax.random.key(0), in_shape)[1:])  # shapes only, no params
    counts = [c.macs(*seen[i]) for i, c in enumerate(children) if c.macs is not None and i in seen]
    counts = [c for c in counts if c is not None]
    return sum(counts) if counts else None


def _check_dict(fn: str, what: str, tree: Any, keys: Sequence[str]) -> None:
    if not isinstance(tree, Mapping) or set(tree) != set(keys):
        got = f"dict with keys {sorted(tree)}" if isinstance(tree, Mapping) else type(tree).__name__
        raise ValueError(
            f"{fn}: {what} must be the dict with keys {', '.join(repr(k) for k in keys)} that init returned, got {got}"
        )


# ---------------------------------------------------------------------------------------
# Fan-out / fan-in layers
# ---------------------------------------------------------------------------------------


@switches_rule
def FanOut(n: int, rule: Any = "hand") -> Layer:
    """Fan-out (stax's ``FanOut``): ``x -> (x, x, ..., x)``, ``n`` copies.

    Args:
      n: the number of copies, a positive int.
      rule: ``"hand"`` (:func:`fan_out`'s hand-written backward), ``"autodiff"`` (the plain
        tuple, differentiated by ``jax.grad``) or a :class:`funcnn.Choice` of them.

    Shapes: ``in_shape -> (in_shape,) * n`` (``in_shape`` may itself be a tuple of shapes).
    No params, no state.

    Backward: ``delta_x = delta_1 + ... + delta_n``, the sum of the error terms that come
    back from the ``n`` consumers.
    """
    n = check_count("FanOut", "n", n)
    name = f"FanOut({n}{_rule_shown(rule)})"
    check_rule(name, rule)
    op = _by_rule(rule, fan_out, _ref.fan_out)

    def init(key, in_shape):
        return (_shape_tree(name, in_shape),) * n, (), ()

    def apply(params, state, x, *, key=None, train=False):
        return op(x, n=n), state

    return Layer(init, apply, name=name, kind=_FAN_KIND, rule=rule, config={"n": n})


@switches_rule
def FanInSum(rule: Any = "hand") -> Layer:
    """Fan-in by summation (stax's ``FanInSum``): ``(x_1, ..., x_k) -> x_1 + ... + x_k``.

    Args:
      rule: ``"hand"`` (:func:`fan_in_sum`'s hand-written backward), ``"autodiff"`` or a
        :class:`funcnn.Choice` of them.

    Shapes: ``((N, ...),) * k -> (N, ...)``; every input must have the same shape (and
    dtype). No params, no state.

    Backward: ``delta_i = delta`` for every input: the same error term down every branch.
    """
    name = f"FanInSum({_rule_shown(rule).lstrip(', ')})"
    check_rule(name, rule)
    op = _by_rule(rule, fan_in_sum, _ref.fan_in_sum)

    def init(key, in_shape):
        shapes = _shape_tuple(name, in_shape, flat=True)
        if len(set(shapes)) > 1:
            raise ValueError(f"{name}: every input must have the same shape to be summed, got in_shape {shapes}")
        return shapes[0], (), ()

    def apply(params, state, x, *, key=None, train=False):
        xs = _tuple_input(name, x)
        shapes = tuple(tuple(np.shape(a)) for a in xs)
        if len(set(shapes)) > 1:
            raise ValueError(f"{name}: every input must have the same shape to be summed, got shapes {shapes}")
        return op(*xs), state

    return Layer(init, apply, name=name, kind=_FAN_KIND, rule=rule, config={})


@switches_rule
def FanInConcat(axis: int = -1, rule: Any = "hand") -> Layer:
    """Fan-in by concatenation (stax's ``FanInConcat``): ``(x_1, ..., x_k) -> concat(x, axis)``.

    Args:
      axis: the axis to concatenate along (default the last: features or channels).
      rule: ``"hand"`` (:func:`fan_in_concat`'s hand-written backward), ``"autodiff"`` or a
        :class:`funcnn.Choice` of them.

    Shapes: ``x_i`` of shape ``(N, ..., n_i, ...)`` (``n_i`` at ``axis``, equal elsewhere)
    ``-> (N, ..., n_1 + ... + n_k, ...)``. No params, no state.

    Backward: ``delta_i = delta[..., o_i : o_i + n_i, ...]``: the error term split into
    the pieces each input filled.
    """
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"FanInConcat: axis must be an int, got {type(axis).__name__} {axis!r}")
    axis = int(axis)
    name = f"FanInConcat({'' if axis == -1 else f'axis={axis}'}{_rule_shown(rule)})".replace("(, ", "(")
    check_rule(name, rule)
    op = _by_rule(rule, fan_in_concat, _ref.fan_in_concat)

    def init(key, in_shape):
        shapes = _shape_tuple(name, in_shape, flat=True)
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1:
            raise ValueError(f"{name}: every input must have the same rank to be concatenated, got in_shape {shapes}")
        ndim = ranks.pop()
        if not -ndim <= axis < ndim:
            raise ValueError(f"{name}: axis {axis} is out of range for inputs of rank {ndim} (in_shape {shapes})")
        ax = axis % ndim
        if len({s[:ax] + s[ax + 1:] for s in shapes}) > 1:
            raise ValueError(
                f"{name}: every input must have the same size on every axis but axis {axis}, got in_shape {shapes}"
            )
        sizes = [s[ax] for s in shapes]
        out = list(shapes[0])
        out[ax] = -1 if -1 in sizes else sum(sizes)
        return tuple(out), (), ()

    def apply(params, state, x, *, key=None, train=False):
        return op(*_tuple_input(name, x), axis=axis), state

    return Layer(init, apply, name=name, kind=_FAN_KIND, rule=rule, config={"axis": axis})


# ---------------------------------------------------------------------------------------
# Parallel
# ---------------------------------------------------------------------------------------


def Parallel(*layers: Layer, rule: Any = None) -> Combinator:
    """Apply layer ``i`` to element ``i`` of a tuple (stax's ``parallel``).

    Typically between a fan-out and a fan-in: ``serial(FanOut(2), Parallel(a, b), FanInSum())``.

    Args:
      *layers: one layer per element of the input tuple (at least one).
      rule: if given, every child (recursively) is rebuilt under this rule (as ``serial``'s
        ``rule``); ``None`` keeps each child's rule.

    Returns:
      A :class:`Combinator` with ``children`` = the layers. Shapes: a tuple of ``k`` input
      shapes -> the tuple of the ``k`` output shapes. Params and state are tuples, one entry
      per layer; ``key`` is split into one key per layer, as ``serial`` splits it. No
      backward of its own: each element's error term goes back through its own layer.
    """
    _check_layers("Parallel", layers)
    if not layers:
        raise ValueError("Parallel: expected at least one layer, got none")
    if rule is not None:
        check_rule("Parallel", rule)
        layers = tuple(layer.with_rule(rule) for layer in layers)
    return _parallel(tuple(layers), rule)


def _parallel(children: tuple[Layer, ...], rule: Any) -> Combinator:
    n = len(children)
    name = "Parallel(" + ", ".join(c.name for c in children)
    name += f", rule={rule!r})" if rule is not None else ")"

    def init(key, in_shape):
        shapes = _shape_tuple(name, in_shape, n)
        outs, params, states = [], [], []
        for child, k, shape in zip(children, split_keys(key, n), shapes):
            out, p, s = child.init(k, shape)
            outs.append(out)
            params.append(p)
            states.append(s)
        return tuple(outs), tuple(params), tuple(states)

    def apply(params, state, x, *, key=None, train=False):
        xs = _tuple_input(name, x, n)
        check_child_trees(name, n, params, state)
        ys, new_states = [], []
        for child, p, s, xi, k in zip(children, params, state, xs, split_keys(key, n)):
            y, s = child.apply(p, s, xi, key=k, train=train)
            ys.append(y)
            new_states.append(s)
        return tuple(ys), tuple(new_states)

    def remake(cs: tuple[Layer, ...]) -> Combinator:
        return _parallel(tuple(cs), rule)

    has_rule = any(c.rule is not None or c.rebuild is not None for c in children)
    return Combinator(
        init,
        apply,
        name=name,
        kind=_COMBINATOR_KIND,
        rule=rule if rule is not None else _one_rule(set().union(*(_rules_in(c) for c in children))),
        config={"rule": rule},
        children=children,
        rebuild=(lambda r: Parallel(*children, rule=r)) if has_rule else None,
        macs=lambda in_shape, out_shape: _children_macs(children, remake, in_shape),
        with_children=remake,
    )


# ---------------------------------------------------------------------------------------
# Residual
# ---------------------------------------------------------------------------------------


def _projection_hint(in_shape: tuple[int, ...], out_shape: Any) -> str:
    """A shortcut layer that would map ``in_shape`` to ``out_shape`` (for error messages)."""
    if not _is_shape(out_shape) or len(out_shape) != len(in_shape) or not out_shape:
        return f"a layer that maps {in_shape} to {out_shape}"
    c = out_shape[-1]
    if len(in_shape) in (3, 4):  # (N, W, C) or (N, H, W, C): a 1x1 convolution, strided
        strides = []
        for i, o in zip(in_shape[1:-1], out_shape[1:-1]):
            s = max(1, -(-i // max(o, 1)))
            if -(-i // s) != o:
                return f"a layer that maps {in_shape} to {out_shape}"
            strides.append(s)
        stride = "" if set(strides) == {1} else f", stride={strides[0] if len(set(strides)) == 1 else tuple(strides)}"
        return f"Conv{len(in_shape) - 2}D({c}, 1{stride})"
    return f"Dense({c})"


def _mismatch(name: str, in_shape: Any, b_shape: Any, s_shape: Any, shortcut: Layer | None) -> ValueError:
    if shortcut is None:
        return ValueError(
            f"{name}: the branch maps {in_shape} to {b_shape} but the identity shortcut keeps {in_shape}; "
            f"the two are summed, so they must have one shape: pass a projection shortcut, e.g. "
            f"shortcut={_projection_hint(in_shape, b_shape)}"
        )
    return ValueError(
        f"{name}: the branch maps {in_shape} to {b_shape} but the shortcut {shortcut.name} gives "
        f"{s_shape}; the two are summed, so they must have one shape"
    )


def Residual(
    *layers: Layer,
    shortcut: Layer | None = None,
    branch_scale: float | None = None,
    rule: Any = None,
    dtype: Any = jnp.float32,
) -> Combinator:
    """A residual block: ``y = shortcut(x) + alpha * serial(*layers)(x)`` (He et al., 2016).

    The input is fanned out to the shortcut and the branch and the two are summed, by the
    hand-ruled :func:`fan_out` and :func:`fan_in_sum` under ``rule="hand"`` (plain autodiff
    under ``"autodiff"``), so the backward pass is the textbook one::

        delta_branch = delta_shortcut = delta_y                       (the sum)
        delta_x      = shortcut'(x)^T delta_y + alpha * branch'(x)^T delta_y   (the fork)

    -- with the identity shortcut, ``delta_x = delta_y + ...``: the error term reaches the
    input undiminished however deep the stack, which is why deep residual nets train.

    Args:
      *layers: the branch, applied in order (``serial(*layers)``), at least one layer.
      shortcut: ``None`` for the identity, or a layer applied to ``x`` on the skip path --
        a projection when the branch changes the shape, e.g. ``Dense(64)`` for ``(N, D)``
        inputs or ``Conv2D(64, 1, stride=2)`` for images (He et al.'s option B); any layer
        (``serial(Conv2D(64, 1, stride=2), BatchNorm())``) works.
      branch_scale: ``None`` (no scale), or the initial value of a learnable scalar
        ``alpha`` multiplying the branch: ``branch_scale=0.0`` is SkipInit (De & Smith,
        2020): every block starts as the identity. (``alpha * branch`` is differentiated
        by autodiff under either rule: ``dL/dalpha = <delta_y, branch(x)>``.)
      rule: if given, every child (recursively) is rebuilt under this rule and the block's
        own fan-out/sum use it; ``None`` keeps each child's rule, and the own fan-out/sum
        follow the rule the children share (``"hand"`` when they share none).
      dtype: dtype of ``alpha``.

    Returns:
      A :class:`Combinator`. Shapes: ``(N, ...) -> (N, ...)`` of the branch's output shape,
      which must equal the shortcut's (a ValueError at init says so and suggests a
      ``shortcut``). Params and state:

      - no options (``shortcut=None``, ``branch_scale=None``): exactly those of
        ``serial(*layers)`` (a tuple, one entry per layer; ``init`` with the same key gives
        the same arrays), and ``children`` = the layers;
      - otherwise a dict: params ``{"branch": <serial(*layers)'s>, "alpha": () array if
        branch_scale, "shortcut": <the shortcut's> if shortcut}``, state the same without
        ``"alpha"``; ``children`` = ``(serial(*layers), shortcut)`` (without the shortcut
        when it is the identity). With a shortcut the key is split in two (branch,
        shortcut); without one the branch gets the key itself.

      ``macs`` sums the children's.
    """
    _check_layers("Residual", layers)
    if not layers:
        raise ValueError("Residual: expected at least one layer for the branch, got none")
    if shortcut is not None and not isinstance(shortcut, Layer):
        raise TypeError(
            "Residual: shortcut must be None (the identity) or a Layer, e.g. shortcut=Dense(64) or "
            f"shortcut=Conv2D(64, 1, stride=2) for a projection, got {type(shortcut).__name__} {shortcut!r}"
        )
    if branch_scale is not None and (
        isinstance(branch_scale, (bool, np.bool_)) or not isinstance(branch_scale, (int, float, np.number))
    ):
        raise TypeError(
            f"Residual: branch_scale must be None or a number (the initial value of the learnable "
            f"scale alpha, e.g. 0.0 for SkipInit), got {type(branch_scale).__name__} {branch_scale!r}"
        )
    if rule is not None:
        check_rule("Residual", rule)
        layers = tuple(layer.with_rule(rule) for layer in layers)
        shortcut = shortcut.with_rule(rule) if shortcut is not None else None
    layers = tuple(layers)
    kids = layers + ((shortcut,) if shortcut is not None else ())
    own_rule = rule if rule is not None else (_one_rule(set().union(*(_rules_in(c) for c in kids))) or "hand")
    name = "Residual(" + ", ".join(c.name for c in layers)
    if shortcut is not None:
        name += f", shortcut={shortcut.name}"
    if branch_scale is not None:
        name += f", branch_scale={branch_scale!r}"
    name += f", rule={rule!r})" if rule is not None else ")"
    flat = shortcut is None and branch_scale is None
    children = layers if flat else (serial(*layers),) + ((shortcut,) if shortcut is not None else ())

    def rebuild(r: Any) -> Combinator:
        return Residual(*layers, shortcut=shortcut, branch_scale=branch_scale, rule=r, dtype=dtype)

    config = {"shortcut": shortcut, "branch_scale": branch_scale, "rule": rule, "dtype": jnp.dtype(dtype).name}
    return _residual(children, flat=flat, has_shortcut=shortcut is not None, scale=branch_scale, own_rule=own_rule,
                     dtype=dtype, name=name, config=config, rebuild=rebuild)


def _residual(
    children: tuple[Layer, ...],
    *,
    flat: bool,
    has_shortcut: bool,
    scale: float | None,
    own_rule: Any,
    dtype: Any,
    name: str,
    config: Mapping[str, Any],
    rebuild: Callable[[Any], Layer],
) -> Combinator:
    """The block over ``children`` (the layers if ``flat``, else ``(branch, [shortcut])``)."""
    branch = serial(*children) if flat else children[0]
    shortcut = children[1] if has_shortcut else None
    copy = _by_rule(own_rule, fan_out, _ref.fan_out)
    add = _by_rule(own_rule, fan_in_sum, _ref.fan_in_sum)
    keys = ("branch",) + (("alpha",) if scale is not None else ()) + (("shortcut",) if has_shortcut else ())

    def split(key: Any) -> tuple[Any, Any]:
        return split_keys(key, 2) if has_shortcut else (key, None)

    def init(key, in_shape):
        in_shape = _shape_tree(name, in_shape)
        k_b, k_s = split(key)
        b_shape, p_b, s_b = branch.init(k_b, in_shape)
        s_shape, p_s, s_s = shortcut.init(k_s, in_shape) if has_shortcut else (in_shape, None, None)
        if tuple(b_shape) != tuple(s_shape):
            raise _mismatch(name, in_shape, tuple(b_shape), tuple(s_shape), shortcut)
        if flat:
            return b_shape, p_b, s_b
        params, state = {"branch": p_b}, {"branch": s_b}
        if scale is not None:
            params["alpha"] = jnp.asarray(scale, dtype)
        if has_shortcut:
            params["shortcut"], state["shortcut"] = p_s, s_s
        return b_shape, params, state

    def apply(params, state, x, *, key=None, train=False):
        if not flat:
            _check_dict(name, "params", params, keys)
            _check_dict(name, "state", state, [k for k in keys if k != "alpha"])
        p_b, s_b = (params, state) if flat else (params["branch"], state["branch"])
        k_b, k_s = split(key)
        x_short, x_branch = copy(x, n=2)
        b, s_b = branch.apply(p_b, s_b, x_branch, key=k_b, train=train)
        if has_shortcut:
            s, s_s = shortcut.apply(params["shortcut"], state["shortcut"], x_short, key=k_s, train=train)
        else:
            s = x_short
        if np.shape(b) != np.shape(s):
            raise _mismatch(name, tuple(np.shape(x)), tuple(np.shape(b)), tuple(np.shape(s)), shortcut)
        if scale is not None:
            b = jnp.asarray(params["alpha"], jnp.result_type(b)) * b  # alpha is used in b's dtype
        y = add(s, b)
        if flat:
            return y, s_b
        new_state = {"branch": s_b}
        if has_shortcut:
            new_state["shortcut"] = s_s
        return y, new_state

    def remake(cs: tuple[Layer, ...]) -> Combinator:
        return _residual(tuple(cs), flat=flat, has_shortcut=has_shortcut, scale=scale, own_rule=own_rule, dtype=dtype,
                         name=name, config=config, rebuild=rebuild)

    return Combinator(
        init,
        apply,
        name=name,
        kind=_COMBINATOR_KIND,
        rule=_one_rule(set().union({own_rule}, *(_rules_in(c) for c in children))),
        config=config,
        children=children,
        rebuild=rebuild,
        macs=lambda in_shape, out_shape: _children_macs(children, remake, in_shape),
        with_children=remake,
    )
