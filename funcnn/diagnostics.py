"""Look inside a network while it learns: error terms, unit statistics, variance propagation.

Every function here walks a model's layers one by one -- a ``serial`` model is flattened
into its leaf layers, recursively, in application order, with the same per-child key split
as :func:`funcnn.combinators.serial` -- so each layer's input and output can be seen (and,
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

from funcnn import registry as _registry
from funcnn._layer import Layer
from funcnn.choice import Choice
from funcnn.combinators import check_child_trees, split_keys

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
class _Node:
    """One leaf layer with its slice of the params/state/key trees."""

    name: str
    layer: Layer
    params: Any
    state: Any
    key: Any


def _check_model(fn: str, model: Any) -> None:
    if not isinstance(model, Layer):
        raise TypeError(
            f"{fn}: model must be a funcnn Layer (e.g. serial(Dense(10), Relu())), "
            f"got {type(model).__name__}"
        )


def _flatten(layer: Layer, params: Any, state: Any, key: Any, path: str = "") -> list[_Node]:
    """Leaf layers in application order, each with its params, state and key."""
    if layer.kind == "serial" and layer.children:
        n = len(layer.children)
        check_child_trees(layer.name, n, params, state)
        nodes = []
        for i, (child, p, s, k) in enumerate(zip(layer.children, params, state, split_keys(key, n))):
            nodes += _flatten(child, p, s, k, f"{path}.{i}" if path else str(i))
        return nodes
    return [_Node(f"{path or '0'}:{layer.name}", layer, params, state, key)]


def _static_leaves(layer: Layer, path: str = "") -> list[tuple[str, Layer]]:
    """``(name, layer)`` of every leaf layer, without params."""
    if layer.kind == "serial" and layer.children:
        out = []
        for i, child in enumerate(layer.children):
            out += _static_leaves(child, f"{path}.{i}" if path else str(i))
        return out
    return [(f"{path or '0'}:{layer.name}", layer)]


def _forward(
    nodes: Sequence[_Node],
    x: Any,
    *,
    train: bool,
    probes: Sequence[Any] | None = None,
) -> tuple[Any, list[tuple[Any, Any]]]:
    """Apply the leaves in order; ``probes[i]`` (if not None) is added to leaf i's output.

    Returns the model output and, per leaf, ``(input, output)`` (the output includes the
    probe, whose value is zero).
    """
    records = []
    h = x
    for i, node in enumerate(nodes):
        y, _ = node.layer.apply(node.params, node.state, h, key=node.key, train=train)
        if probes is not None and probes[i] is not None:
            y = y + probes[i]
        records.append((h, y))
        h = y
    return h, records


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
        the path indexes nested ``serial`` children). Static metadata.
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
      model: a layer (typically ``serial``); nested ``serial`` models are walked recursively.
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
    nodes = _flatten(model, params, state, key)
    weighted = [i for i, n in enumerate(nodes) if n.layer.kind in WEIGHTED_KINDS]

    def with_params(wparams: Sequence[Any]) -> list[_Node]:
        new = list(nodes)
        for i, p in zip(weighted, wparams):
            new[i] = dataclasses.replace(new[i], params=p)
        return new

    def loss_of(wparams: Sequence[Any], probes: Sequence[Any]) -> tuple[jax.Array, Any]:
        full = [None] * len(nodes)
        for i, p in zip(weighted, probes):
            full[i] = p
        out, records = _forward(with_params(wparams), x, train=train, probes=full)
        return loss_fn(out, y), [records[i][1] for i in weighted]

    wparams = [nodes[i].params for i in weighted]
    shapes = jax.eval_shape(lambda: _forward(nodes, x, train=train)[1])
    probes = [jnp.zeros(shapes[i][1].shape, shapes[i][1].dtype) for i in weighted]
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
        names=tuple(nodes[i].name for i in weighted),
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

    The regions come from the activation's registry entry (:mod:`funcnn.registry`): ``dead``
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
    nodes = _flatten(model, params, state, key)
    _, records = _forward(nodes, x, train=train)
    names, acts, cols = [], [], {k: [] for k in ("m", "s", "d", "i", "sf", "su")}
    for node, (pre, post) in zip(nodes, records):
        if node.layer.kind != "activation":
            continue
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
    nodes = _flatten(model, params, state, key)
    weighted = [i for i, n in enumerate(nodes) if n.layer.kind in WEIGHTED_KINDS]
    shapes = jax.eval_shape(lambda: _forward(nodes, x, train=train))
    out_struct, rec_structs = shapes
    if loss_fn is None:
        g = jax.random.normal(cotangent_key, out_struct.shape, out_struct.dtype)

        def objective(out: Any) -> jax.Array:
            return jnp.sum(g * out)
    else:

        def objective(out: Any) -> jax.Array:
            return loss_fn(out, y)

    def loss_of(wparams: Sequence[Any], probes: Sequence[Any]) -> tuple[jax.Array, Any]:
        new = list(nodes)
        for i, p in zip(weighted, wparams):
            new[i] = dataclasses.replace(new[i], params=p)
        out, records = _forward(new, x, train=train, probes=probes)
        return objective(out), [r[1] for r in records]

    probes = [jnp.zeros(r[1].shape, r[1].dtype) for r in rec_structs]
    wparams = [nodes[i].params for i in weighted]
    (_, outs), (gw, gouts) = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(
        wparams, probes
    )
    wvar = [_NAN] * len(nodes)
    for i, g_i in zip(weighted, gw):
        w = g_i["w"] if isinstance(g_i, dict) and "w" in g_i else g_i
        wvar[i] = jnp.var(jnp.asarray(w, jnp.result_type(float)))
    f = jnp.result_type(float)
    return VarianceReport(
        input_var=jnp.var(jnp.asarray(x, f)),
        forward_var=_stack([jnp.var(jnp.asarray(o, f)) for o in outs]),
        backward_var=_stack([jnp.var(jnp.asarray(go, f)) for go in gouts]),
        weight_grad_var=_stack(wvar),
        names=tuple(n.name for n in nodes),
        kinds=tuple(n.layer.kind for n in nodes),
    )


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


def summary(model: Layer, in_shape: Sequence[int]) -> Summary:
    """A table of the model's layers: output shapes, parameter counts, multiply-accumulates.

    Nothing is allocated: shapes come from tracing ``init`` (``jax.eval_shape``). MACs come
    from each layer's ``macs`` (a conv costs kernel size x ``C_in`` x ``C_out`` per output
    position: kernel size x output feature-map size; a dense layer ``D_in x D_out`` per
    example) and count the whole batch of ``in_shape``; use batch 1 for per-example costs.

    Args:
      model: a layer (nested ``serial`` models are listed leaf by leaf).
      in_shape: the input shape, batch dimension included, e.g. ``(1, 32, 32, 1)``.

    Returns:
      A :class:`Summary`; ``print(summary(model, shape))`` prints the table.
    """
    _check_model("summary", model)
    in_shape = tuple(int(d) for d in in_shape)
    leaves = _static_leaves(model)
    found: list[tuple[tuple[int, ...], tuple[int, ...], int, int]] = []

    def count(tree: Any) -> int:
        return sum(math.prod(np.shape(a)) for a in jax.tree_util.tree_leaves(tree))

    def trace() -> tuple[()]:
        shape = in_shape
        for _, layer in leaves:
            out_shape, p, s = layer.init(jax.random.key(0), shape)
            out_shape = tuple(int(d) for d in out_shape)
            found.append((shape, out_shape, count(p), count(s)))
            shape = out_shape
        return ()

    jax.eval_shape(trace)
    rows = []
    for (name, layer), (shp_in, shp_out, n_p, n_s) in zip(leaves, found):
        macs = layer.macs(shp_in, shp_out) if layer.macs is not None else None
        rows.append(SummaryRow(name, layer.kind, shp_in, shp_out, n_p, n_s,
                               None if macs is None else int(macs)))
    return Summary(
        rows=tuple(rows),
        in_shape=in_shape,
        out_shape=rows[-1].out_shape if rows else in_shape,
        total_params=sum(r.params for r in rows),
        total_state=sum(r.state for r in rows),
        total_macs=sum(r.macs or 0 for r in rows),
    )
