"""Look inside a network while it learns: error terms, unit statistics, variance propagation.

Every function here walks a model's leaf layers -- every combinator (``serial``,
``Parallel``, ``Residual``, a fan-out/fan-in DAG) is rebuilt over instrumented leaves and the
model's *own* ``apply`` runs, so key splits, fan-outs and fan-ins (with their hand-written
rules) are exactly the model's; leaves are listed depth-first in ``children`` order
(application order for a ``serial`` chain) -- so each layer's input and output can be seen (and,
for the backward quantities, *probed*: a zero array added to a layer's output makes
``jax.grad`` w.r.t. that array the gradient of the loss w.r.t. the output, exactly, in the
same single backward pass that gives the weight gradients). The backward pass is the
model's own: hand-written rules under ``rule="hand"``, ``jax.grad`` of the twins under
``rule="autodiff"``.

All functions are pure and jit-able; the model (and ``loss_fn``) must be static, e.g.
``jax.jit(error_terms, static_argnums=(0, 3))``. Results are pytrees (dataclasses whose
layer names are static metadata), so they can leave a jitted function, be stacked by
``vmap`` over seeds, and be printed with their ``table()`` method.

- :func:`error_terms`: ``delta^(l) = dL/dz^(l)`` at the output ``z^(l)`` of every weighted
  layer (dense/conv: the pre-activation), each weighted layer's parameter gradient, norms.
- :func:`activation_stats`: per activation layer, mean/std of its output and the fractions
  of dead (ReLU family) and saturated (logistic, tanh, hard_logistic, hard_tanh) units.
- :func:`variance_report`: forward and backward variance per layer (Glorot & Bengio 2010,
  He et al. 2015).
- :func:`summary`: layers, output shapes, parameter and multiply-accumulate counts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops import registry as _registry
from funcnn.nn.layer import Layer
from funcnn.nn.choice import Choice
from funcnn.nn.combinators import is_combinator, rewire

__all__ = [
    "RELU_FAMILY",
    "SATURATING",
    "WEIGHTED_KINDS",
    "ActivationStats",
    "ErrorTerms",
    "Summary",
    "SummaryRow",
    "VarianceReport",
    "activation_stats",
    "error_terms",
    "summary",
    "variance_report",
]

#: Layer kinds whose output is a pre-activation ``z = W a + b`` with weights ``W``.
WEIGHTED_KINDS = ("dense", "conv")
#: Activations whose units can die: zero (or a small slope's worth of) gradient for inputs
#: ``<= 0``. A unit of one of these is *inactive* on an example when its input is ``<= 0``.
RELU_FAMILY = _registry._Names(lambda op: op.dead is not None,
                               "Registered activations that declare a dead (off) region, e.g. the ReLU family.")
#: Activations whose units saturate (flat parts, vanishing local derivative).
SATURATING = _registry._Names(lambda op: op.saturated is not None,
                              "Registered activations that declare a saturated (flat) region.")

_NAN = float("nan")


# ---------------------------------------------------------------------------------------
# Walking a model
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Leaf:
    """One leaf layer of a walked model: ``name`` is ``"<path>:<layer name>"``, the path
    indexing ``children`` (``"3.0.1"``; ``"0"`` for a model that is itself a leaf)."""

    index: int
    path: str
    name: str
    layer: Layer


class _Tape:
    """What the instrumented leaves of one walk read and write while the model runs.

    Keyed by leaf index (``inits``: by path, leaves and combinators). A walk is made inside
    one traced call and dropped with it, so the arrays here never outlive their trace.
    """

    def __init__(self) -> None:
        self.params: dict[int, Any] = {}  # used instead of the params the model hands the leaf
        self.probes: dict[int, Any] = {}  # added to the leaf's output (zeros: probes for jax.grad)
        self.seen: dict[int, Any] = {}  # the params the model handed the leaf
        self.records: dict[int, tuple[Any, Any]] = {}  # (input, output incl. probe)
        self.inits: dict[str, tuple[Any, Any, int, int]] = {}  # (in_shape, out_shape, n_params, n_state)


@dataclasses.dataclass(frozen=True)
class _Walk:
    """A model rebuilt with every leaf instrumented (``model``), its leaves in ``children``
    order (depth-first), and ``order``: ``("leaf", _Leaf)`` and, after a combinator's
    children, ``("node", (path, layer, child paths))``."""

    model: Layer
    leaves: tuple[_Leaf, ...]
    order: tuple[tuple[str, Any], ...]
    tape: _Tape


def _check_model(fn: str, model: Any) -> None:
    if not isinstance(model, Layer):
        raise TypeError(
            f"{fn}: model must be a funcnn Layer (e.g. serial(Dense(10), Relu())), "
            f"got {type(model).__name__}"
        )


def _count(tree: Any) -> int:
    return sum(math.prod(np.shape(a)) for a in jax.tree_util.tree_leaves(tree))


def _walk(model: Layer) -> _Walk:
    """``model`` with every leaf layer instrumented, for one traced call.

    Every combinator (``serial``, ``Parallel``, ``Residual``, ...; see
    :func:`funcnn.nn.combinators.is_combinator`) is rebuilt over instrumented children with
    ``rewire``, so running ``walk.model`` runs the model's own code -- its key splits, its
    fan-outs and fan-ins with their hand-written rules -- while each leaf, each time it is
    applied, records its input and output on the tape, adds the tape's probe to its output
    and uses the tape's params override. (A leaf applied more than once records its last
    application; a combinator that applies children inside ``lax.cond``/``scan`` cannot be
    walked.)
    """
    tape = _Tape()
    leaves: list[_Leaf] = []
    order: list[tuple[str, Any]] = []

    def leaf_tap(layer: Layer, path: str) -> Layer:
        leaf = _Leaf(len(leaves), path, f"{path or '0'}:{layer.name}", layer)
        leaves.append(leaf)
        order.append(("leaf", leaf))
        i = leaf.index

        def init(key, in_shape):
            out = layer.init(key, in_shape)
            tape.inits[path] = (in_shape, out[0], _count(out[1]), _count(out[2]))
            return out

        def apply(params, state, x, *, key=None, train=False):
            tape.seen[i] = params
            y, s = layer.apply(tape.params.get(i, params), state, x, key=key, train=train)
            if i in tape.probes:
                y = jax.tree_util.tree_map(jnp.add, y, tape.probes[i])
            tape.records[i] = (x, y)
            return y, s

        return dataclasses.replace(layer, init=init, apply=apply)

    def tap(layer: Layer, path: str) -> Layer:
        if not is_combinator(layer):
            return leaf_tap(layer, path)
        paths = tuple(f"{path}.{i}" if path else str(i) for i in range(len(layer.children)))
        remade = rewire(layer, [tap(c, p) for c, p in zip(layer.children, paths)])
        order.append(("node", (path, layer, paths)))
        inner = remade.init

        def init(key, in_shape):
            out = inner(key, in_shape)
            tape.inits[path] = (in_shape, out[0], _count(out[1]), _count(out[2]))
            return out

        return dataclasses.replace(remade, init=init)

    tapped = tap(model, "")
    return _Walk(tapped, tuple(leaves), tuple(order), tape)


def _run(
    walk: _Walk,
    params: Any,
    state: Any,
    x: Any,
    *,
    key: Any,
    train: bool,
    params_of: dict[int, Any] | None = None,
    probes: dict[int, Any] | None = None,
) -> tuple[Any, dict[int, tuple[Any, Any]], dict[int, Any]]:
    """Run the walked model: its output, per leaf ``(input, output)`` (the output includes
    the probe, whose value is zero) and the params it handed each leaf.

    ``params_of[i]`` replaces leaf i's params (so ``jax.grad`` can take them as arguments);
    ``probes[i]`` is added to leaf i's output. Leaves that did not run have no record.
    """
    tape = walk.tape
    tape.params, tape.probes = dict(params_of or {}), dict(probes or {})
    tape.seen, tape.records = {}, {}
    out, _ = walk.model.apply(params, state, x, key=key, train=train)
    return out, dict(tape.records), dict(tape.seen)


def _zeros_like(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: jnp.zeros(np.shape(a), a.dtype), tree)


def _norm(tree: Any) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.asarray(0.0)
    f = jnp.result_type(float)
    return jnp.sqrt(sum(jnp.sum(jnp.square(jnp.asarray(a, f))) for a in leaves))


def _stack(values: Sequence[Any]) -> jax.Array:
    if not values:
        return jnp.zeros((0,))
    return jnp.stack([jnp.asarray(v, jnp.result_type(float)) for v in values])


def _fmt_num(v: Any) -> str:
    v = float(v)
    if np.isnan(v):
        return "-"
    return f"{v:.3g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest])

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


# ---------------------------------------------------------------------------------------
# Error terms
# ---------------------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ErrorTerms:
    """The error terms of one batch, per weighted layer (in application order).

    Attributes:
      names: the weighted layers, ``"<path>:<layer name>"`` (e.g. ``"2:Dense(10)"``;
        the path indexes the ``children`` of nested combinators, e.g. ``"3.0.1:Dense(8)"``
        inside a ``Residual``). Static metadata.
      loss: the scalar loss of the batch.
      pre_activations: ``z^(l)``, each layer's output, shape ``(N, ..., D_l)``.
      deltas: ``delta^(l) = dL/dz^(l)``, same shapes (the loss averages over the batch, so
        each example's error term carries a factor ``1/N``).
      weight_grads: each layer's parameter gradient, ``{"w": ..., "b": ...}``.
      delta_norms: ``||delta^(l)||`` (Frobenius norm over the whole batch), shape ``(L,)``.
      weight_grad_norms: ``||dL/dW^(l)||`` (Frobenius), shape ``(L,)``.
      bias_grad_norms: ``||dL/db^(l)||``, shape ``(L,)``.
    """

    loss: jax.Array
    pre_activations: tuple[jax.Array, ...]
    deltas: tuple[jax.Array, ...]
    weight_grads: tuple[Any, ...]
    delta_norms: jax.Array
    weight_grad_norms: jax.Array
    bias_grad_norms: jax.Array
    names: tuple[str, ...] = dataclasses.field(metadata={"static": True}, default=())

    def table(self) -> str:
        """One row per weighted layer: name, ||delta||, ||dL/dW||, ||dL/db||."""
        rows = [
            (n, _fmt_num(d), _fmt_num(w), _fmt_num(b))
            for n, d, w, b in zip(
                self.names, self.delta_norms, self.weight_grad_norms, self.bias_grad_norms
            )
        ]
        return _table(("layer", "||delta||", "||dL/dW||", "||dL/db||"), rows)


def error_terms(
    model: Layer,
    params: Any,
    state: Any,
    loss_fn: Callable[[Any, Any], jax.Array],
    x: Any,
    y: Any,
    *,
    key: Any = None,
    train: bool = False,
) -> ErrorTerms:
    """Per weighted layer: the error term ``delta^(l) = dL/dz^(l)`` and the weight gradient.

    ``z^(l)`` is the output of the l-th dense/conv layer -- its pre-activation, before the
    activation (or batch norm) that follows. Backpropagation computes
    ``delta^(l) = (W^(l+1)T delta^(l+1)) * f'(z^(l))`` and ``dL/dW^(l) = a^(l-1)T delta^(l)``;
    the decay or growth of ``||delta^(l)||`` with depth *is* the vanishing/exploding gradient.

    Exact and one backward pass: a zero "probe" is added to each ``z^(l)`` and ``jax.grad``
    is taken w.r.t. the probes and the weights together.

    Args:
      model: a layer (typically ``serial``); nested combinators (``serial``, ``Parallel``,
        ``Residual``, fan-out/fan-in) are walked recursively: one entry per weighted layer,
        inside branches too.
      params, state: as ``model.init`` returned them.
      loss_fn: ``(outputs, targets) -> scalar`` (e.g. :func:`funcnn.losses.mse`).
      x: a batch of inputs; y: its targets.
      key: randomness for dropout (split per layer as ``serial`` splits it).
      train: training behaviour (batch statistics, dropout); a static bool.

    Returns:
      An :class:`ErrorTerms`.
    """
    _check_model("error_terms", model)
    return _error_terms(model, params, state, loss_fn, x, y, key, train)


@functools.partial(jax.jit, static_argnums=(0, 3, 7))
def _error_terms(model, params, state, loss_fn, x, y, key, train) -> ErrorTerms:
    # Compiled once per (model, loss_fn, shapes): eager calls would dispatch op by op.
    walk = _walk(model)
    # A first run finds each weighted leaf's params and output shape (XLA drops its compute).
    _, records, seen = _run(walk, params, state, x, key=key, train=train)
    weighted = [leaf.index for leaf in walk.leaves if leaf.layer.kind in WEIGHTED_KINDS and leaf.index in records]

    def loss_of(wparams: Sequence[Any], probes: Sequence[Any]) -> tuple[jax.Array, Any]:
        out, recs, _ = _run(
            walk, params, state, x, key=key, train=train,
            params_of=dict(zip(weighted, wparams)), probes=dict(zip(weighted, probes)),
        )
        return loss_fn(out, y), [recs[i][1] for i in weighted]

    wparams = [seen[i] for i in weighted]
    probes = [_zeros_like(records[i][1]) for i in weighted]
    (loss, zs), (gw, deltas) = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(
        wparams, probes
    )

    def part(g: Any, name: str) -> Any:
        return g[name] if isinstance(g, dict) and name in g else ()

    return ErrorTerms(
        loss=loss,
        pre_activations=tuple(zs),
        deltas=tuple(deltas),
        weight_grads=tuple(gw),
        delta_norms=_stack([_norm(d) for d in deltas]),
        weight_grad_norms=_stack([_norm(part(g, "w")) for g in gw]),
        bias_grad_norms=_stack([_norm(part(g, "b")) for g in gw]),
        names=tuple(walk.leaves[i].name for i in weighted),
    )


# ---------------------------------------------------------------------------------------
# Activation statistics
# ---------------------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ActivationStats:
    """Unit statistics per activation layer (in application order), arrays of shape ``(L,)``.

    A *unit* is one index of the last axis: a feature of a dense layer, a channel of a conv
    layer (a channel counts as one unit over all its spatial positions). Fractions that do
    not apply to a layer's activation are ``nan``.

    Attributes:
      names: ``"<path>:<layer name>"`` per activation layer (static).
      activations: the activation names (static).
      mean, std: of the layer's output over every value of the batch.
      dead_fraction: ReLU family (:data:`RELU_FAMILY`): the fraction of units whose input
        (pre-activation) is ``<= 0`` on *every* example and position of the batch -- units
        that pass (almost) no gradient for this batch.
      inactive_fraction: ReLU family: the fraction of all values with input ``<= 0``.
      saturated_fraction: :data:`SATURATING` activations: the fraction of all values that are
        saturated -- logistic output ``<= tol`` or ``>= 1 - tol``; tanh ``|output| >= 1 - tol``;
        hard_logistic input on a flat part (``|x| >= 2``); hard_tanh ``|x| >= 1``.
      saturated_unit_fraction: the fraction of units saturated on *every* example and
        position.
    """

    mean: jax.Array
    std: jax.Array
    dead_fraction: jax.Array
    inactive_fraction: jax.Array
    saturated_fraction: jax.Array
    saturated_unit_fraction: jax.Array
    names: tuple[str, ...] = dataclasses.field(metadata={"static": True}, default=())
    activations: tuple[str, ...] = dataclasses.field(metadata={"static": True}, default=())

    def table(self) -> str:
        """One row per activation layer."""
        rows = [
            (n, _fmt_num(m), _fmt_num(s), _fmt_num(d), _fmt_num(i), _fmt_num(sf), _fmt_num(su))
            for n, m, s, d, i, sf, su in zip(
                self.names, self.mean, self.std, self.dead_fraction, self.inactive_fraction,
                self.saturated_fraction, self.saturated_unit_fraction,
            )
        ]
        header = ("layer", "mean", "std", "dead", "inactive", "saturated", "sat. units")
        return _table(header, rows)


def _unit_fractions(act: str, pre: jax.Array, post: jax.Array, tol: float) -> tuple[Any, Any, Any, Any]:
    """(dead, inactive, saturated, saturated-unit) fractions of one activation layer (NaN: n/a).

    The regions come from the activation's registry entry (:mod:`funcnn._ops.registry`): ``dead``
    (where a unit is off) and ``saturated`` (where its derivative has all but vanished).
    """
    op = _registry.get_activation(act) if _registry.is_registered(act) else None
    unit_axes = tuple(range(pre.ndim - 1))
    if op is not None and op.dead is not None:
        inactive = op.dead(pre)
        dead, frac = jnp.mean(jnp.all(inactive, axis=unit_axes)), jnp.mean(inactive)
    else:
        dead, frac = _NAN, _NAN
    sat = op.saturated(pre, post, tol) if op is not None and op.saturated is not None else None
    if sat is None:
        return dead, frac, _NAN, _NAN
    return dead, frac, jnp.mean(sat), jnp.mean(jnp.all(sat, axis=unit_axes))


def activation_stats(
    model: Layer,
    params: Any,
    state: Any,
    x: Any,
    *,
    tol: float = 0.01,
    key: Any = None,
    train: bool = False,
) -> ActivationStats:
    """Mean, std, dead and saturated fractions of every activation layer on a batch.

    Args:
      model, params, state: the model and its params/state.
      x: a batch of inputs.
      tol: saturation tolerance for logistic/tanh outputs (distance from their bounds).
      key, train: as in ``model.apply``.

    Returns:
      An :class:`ActivationStats` (see its definitions of dead and saturated).
    """
    _check_model("activation_stats", model)
    return _activation_stats(model, params, state, x, tol, key, train)


@functools.partial(jax.jit, static_argnums=(0, 6))
def _activation_stats(model, params, state, x, tol, key, train) -> ActivationStats:
    walk = _walk(model)
    _, records, _ = _run(walk, params, state, x, key=key, train=train)
    names, acts, cols = [], [], {k: [] for k in ("m", "s", "d", "i", "sf", "su")}
    for node in walk.leaves:
        if node.layer.kind != "activation" or node.index not in records:
            continue
        pre, post = records[node.index]
        act = node.layer.activation or ""
        names.append(node.name)
        post_f = jnp.asarray(post, jnp.result_type(float))
        cols["m"].append(jnp.mean(post_f))
        cols["s"].append(jnp.std(post_f))
        if isinstance(act, Choice):
            # Picked by data: each option's fractions (NaN where they do not apply), then the pick.
            acts.append(act.label)
            per = [_unit_fractions(o, pre, post, tol) for o in act.options]
            for j, k in enumerate(("d", "i", "sf", "su")):
                cols[k].append(act.pick([jnp.asarray(p[j], jnp.result_type(float)) for p in per]))
        else:
            acts.append(act)
            for k, v in zip(("d", "i", "sf", "su"), _unit_fractions(act, pre, post, tol)):
                cols[k].append(v)
    return ActivationStats(
        mean=_stack(cols["m"]),
        std=_stack(cols["s"]),
        dead_fraction=_stack(cols["d"]),
        inactive_fraction=_stack(cols["i"]),
        saturated_fraction=_stack(cols["sf"]),
        saturated_unit_fraction=_stack(cols["su"]),
        names=tuple(names),
        activations=tuple(acts),
    )


# ---------------------------------------------------------------------------------------
# Variance propagation
# ---------------------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class VarianceReport:
    """Forward and backward variances per layer (every leaf layer, in application order).

    Variances are over every value of the array (all examples, positions and units pooled):
    ``Var[a] = mean((a - mean(a))^2)``.

    Attributes:
      names, kinds: per layer (static).
      input_var: variance of the model's input ``x``.
      forward_var: variance of each layer's output, shape ``(L,)``.
      backward_var: variance of the gradient w.r.t. each layer's output, shape ``(L,)``.
      weight_grad_var: variance of ``dL/dW`` for weighted (dense/conv) layers, ``nan``
        for the others.
    """

    input_var: jax.Array
    forward_var: jax.Array
    backward_var: jax.Array
    weight_grad_var: jax.Array
    names: tuple[str, ...] = dataclasses.field(metadata={"static": True}, default=())
    kinds: tuple[str, ...] = dataclasses.field(metadata={"static": True}, default=())

    def table(self) -> str:
        """One row per layer, after a row for the input."""
        rows = [("input", _fmt_num(self.input_var), "-", "-")]
        rows += [
            (n, _fmt_num(f), _fmt_num(b), _fmt_num(w))
            for n, f, b, w in zip(
                self.names, self.forward_var, self.backward_var, self.weight_grad_var
            )
        ]
        return _table(("layer", "Var[out]", "Var[dL/dout]", "Var[dL/dW]"), rows)


def variance_report(
    model: Layer,
    params: Any,
    state: Any,
    x: Any,
    loss_fn: Callable[[Any, Any], jax.Array] | None = None,
    y: Any = None,
    *,
    cotangent_key: Any = None,
    key: Any = None,
    train: bool = False,
) -> VarianceReport:
    """Variance of the activations (forward) and of their gradients (backward), per layer.

    The analysis of Glorot & Bengio (2010) and He et al. (2015): a good initialization
    keeps ``Var[out]`` and ``Var[dL/dout]`` roughly constant from layer to layer; for a
    dense layer with zero-mean inputs and weights, ``Var[z] = fan_in Var[W] E[a^2]``
    forward and ``Var[dL/da] = fan_out Var[W] Var[dL/dz]`` backward. Works for any model
    and initializer (pass the params ``model.init`` drew).

    Args:
      model, params, state: the model, typically right after ``init``.
      x: a batch of inputs (e.g. standard normal, or real data).
      loss_fn, y: if given, the backward signal is the gradient of ``loss_fn(out, y)``.
        Otherwise it is a standard normal cotangent ``g`` at the model's output (the
        gradient of ``sum(g * out)``), the usual unit-variance signal of the analysis.
      cotangent_key: draws ``g`` (default ``jax.random.key(0)``).
      key, train: as in ``model.apply``.

    Returns:
      A :class:`VarianceReport`.
    """
    _check_model("variance_report", model)
    if loss_fn is not None and y is None:
        raise ValueError("variance_report: loss_fn was given without targets y")
    if loss_fn is None and y is not None:
        raise ValueError("variance_report: targets y were given without a loss_fn")
    if loss_fn is None and cotangent_key is None:
        cotangent_key = jax.random.key(0)
    return _variance_report(model, params, state, x, loss_fn, y, cotangent_key, key, train)


@functools.partial(jax.jit, static_argnums=(0, 4, 8))
def _variance_report(model, params, state, x, loss_fn, y, cotangent_key, key, train):
    walk = _walk(model)
    # A first run finds every leaf's params and output shape (XLA drops its compute).
    out0, records, seen = _run(walk, params, state, x, key=key, train=train)
    nodes = [leaf for leaf in walk.leaves if leaf.index in records]
    ran = [leaf.index for leaf in nodes]
    weighted = [leaf.index for leaf in nodes if leaf.layer.kind in WEIGHTED_KINDS]
    if loss_fn is None:
        outs0 = jax.tree_util.tree_leaves(out0)
        keys = [cotangent_key] if len(outs0) == 1 else list(jax.random.split(cotangent_key, len(outs0)))
        gs = [jax.random.normal(k, o.shape, o.dtype) for k, o in zip(keys, outs0)]

        def objective(out: Any) -> jax.Array:
            return sum(jnp.sum(g * o) for g, o in zip(gs, jax.tree_util.tree_leaves(out)))
    else:

        def objective(out: Any) -> jax.Array:
            return loss_fn(out, y)

    def loss_of(wparams: Sequence[Any], probes: Sequence[Any]) -> tuple[jax.Array, Any]:
        out, recs, _ = _run(
            walk, params, state, x, key=key, train=train,
            params_of=dict(zip(weighted, wparams)), probes=dict(zip(ran, probes)),
        )
        return objective(out), [recs[i][1] for i in ran]

    probes = [_zeros_like(records[i][1]) for i in ran]
    wparams = [seen[i] for i in weighted]
    (_, outs), (gw, gouts) = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(
        wparams, probes
    )
    wvar = {i: _NAN for i in ran}
    for i, g_i in zip(weighted, gw):
        w = g_i["w"] if isinstance(g_i, dict) and "w" in g_i else g_i
        wvar[i] = _pooled_var(w)
    return VarianceReport(
        input_var=_pooled_var(x),
        forward_var=_stack([_pooled_var(o) for o in outs]),
        backward_var=_stack([_pooled_var(go) for go in gouts]),
        weight_grad_var=_stack([wvar[i] for i in ran]),
        names=tuple(n.name for n in nodes),
        kinds=tuple(n.layer.kind for n in nodes),
    )


def _pooled_var(tree: Any) -> jax.Array:
    """``Var`` over every value of an array, or of all the arrays of a tuple (a fan-out's copies)."""
    f = jnp.result_type(float)
    leaves = [jnp.asarray(a, f) for a in jax.tree_util.tree_leaves(tree)]
    if len(leaves) == 1:
        return jnp.var(leaves[0])
    return jnp.var(jnp.concatenate([jnp.ravel(a) for a in leaves]))


# ---------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One leaf layer of a :class:`Summary`.

    Attributes:
      name: ``"<path>:<layer name>"``.
      kind: the layer's kind.
      in_shape, out_shape: with the batch dimension.
      params: number of parameters (entries of its params pytree).
      state: number of state entries (e.g. batch norm's running mean and variance).
      macs: multiply-accumulates of one forward pass over the whole batch (``None`` when
        the layer does none, e.g. activations, pooling).
    """

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int
    state: int
    macs: int | None


@dataclasses.dataclass(frozen=True)
class Summary:
    """What :func:`summary` returns: ``str(summary)`` (or ``.table()``) is the table, ``rows``
    the data, plus the totals."""

    rows: tuple[SummaryRow, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    total_params: int
    total_state: int
    total_macs: int

    def table(self) -> str:
        """Layers, output shapes, parameter counts and MACs, with a totals line."""
        body = [
            (r.name, str(r.out_shape), f"{r.params:,}", "-" if r.macs is None else f"{r.macs:,}")
            for r in self.rows
        ]
        totals = (f"{self.total_params:,}", f"{self.total_macs:,}")
        body.append(("total", str(self.out_shape), *totals))
        text = _table(("layer", "output shape", "params", "MACs"), body)
        lines = text.splitlines()
        lines.insert(len(lines) - 1, lines[1])  # a rule above the totals
        head = f"input shape {self.in_shape}"
        if self.total_state:
            tail = (
                f"\n(plus {self.total_state:,} state entries, "
                "e.g. batch-norm running statistics)"
            )
        else:
            tail = ""
        return head + "\n" + "\n".join(lines) + tail

    def __str__(self) -> str:
        return self.table()


def summary(model: Layer, in_shape: Sequence[Any]) -> Summary:
    """A table of the model's layers: output shapes, parameter counts, multiply-accumulates.

    Nothing is allocated: shapes come from tracing ``init`` (``jax.eval_shape``). MACs come
    from each layer's ``macs`` (a conv costs kernel size x ``C_in`` x ``C_out`` per output
    position: kernel size x output feature-map size; a dense layer ``D_in x D_out`` per
    example) and count the whole batch of ``in_shape``; use batch 1 for per-example costs.

    Args:
      model: a layer (nested combinators are listed leaf by leaf; a combinator with params of
        its own, e.g. ``Residual(..., branch_scale=0.0)``'s ``alpha``, gets a row after its
        children's).
      in_shape: the input shape, batch dimension included, e.g. ``(1, 32, 32, 1)`` (a tuple
        of shapes for a model that takes a tuple, e.g. one starting with ``Parallel``).

    Returns:
      A :class:`Summary`; ``print(summary(model, shape))`` prints the table.
    """
    _check_model("summary", model)
    in_shape = _int_shape(in_shape)
    walk = _walk(model)
    found: dict[str, Any] = {}

    def trace() -> tuple[()]:
        out_shape, p, s = walk.model.init(jax.random.key(0), in_shape)
        found.update(out_shape=_int_shape(out_shape), params=_count(p), state=_count(s))
        return ()

    jax.eval_shape(trace)
    inits = {path: (_int_shape(a), _int_shape(b), n_p, n_s) for path, (a, b, n_p, n_s) in walk.tape.inits.items()}
    rows = []
    for what, item in walk.order:
        if what == "leaf":
            if item.path not in inits:
                continue
            shp_in, shp_out, n_p, n_s = inits[item.path]
            layer = item.layer
            macs = layer.macs(shp_in, shp_out) if layer.macs is not None else None
            rows.append(SummaryRow(item.name, layer.kind, shp_in, shp_out, n_p, n_s,
                                   None if macs is None else int(macs)))
            continue
        # A combinator with params or state of its own (e.g. Residual's alpha): a row after its children.
        path, layer, child_paths = item
        if path not in inits:
            continue
        shp_in, shp_out, n_p, n_s = inits[path]
        own_p = n_p - sum(inits[c][2] for c in child_paths if c in inits)
        own_s = n_s - sum(inits[c][3] for c in child_paths if c in inits)
        if own_p or own_s:
            rows.append(SummaryRow(f"{path}:{layer.name}" if path else layer.name, layer.kind,
                                   shp_in, shp_out, own_p, own_s, None))
    return Summary(
        rows=tuple(rows),
        in_shape=in_shape,
        out_shape=found["out_shape"],
        total_params=found["params"],
        total_state=found["state"],
        total_macs=sum(r.macs or 0 for r in rows),
    )


def _int_shape(shape: Any) -> Any:
    """A shape as a tuple of Python ints; a tuple of shapes (a fan-out's) as a tuple of such."""
    if isinstance(shape, Sequence) and not isinstance(shape, str) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) for d in shape
    ):
        return tuple(int(d) for d in shape)
    if isinstance(shape, Sequence) and not isinstance(shape, str):
        return tuple(_int_shape(s) for s in shape)
    raise TypeError(f"summary: in_shape must be a shape (a tuple of ints) or a tuple of shapes, got {shape!r}")
