"""The activation registry: one table for the built-in activations and the user's own.

Every activation funcnn knows -- the built-ins (declared in :mod:`funcnn.nn._builtins`) and any
a researcher adds -- is one :class:`ActivationOp` in this registry, registered through the
same public functions. A registered activation is at once

- a function with its hand-written backward rule (``op(x)``, a ``jax.custom_vjp``) and its
  autodiff twin (``op.reference(x)``, the forward differentiated by ``jax.grad``);
- a layer name: ``funcnn.Activation(name)``, ``funcnn.Activation(funcnn.Choice([...], i))``,
  ``funcnn.nn.models.mlp(widths, out, name)``, an experiment's ``--activations`` value;
- a gain: ``funcnn.nn.initializers.gain(name)`` (computed from the forward when not declared);
- a diagnostics row: its *dead* region (where a unit passes no gradient, e.g. ReLU's
  ``x <= 0``) and *saturated* region (where the derivative vanishes, e.g. tanh near +-1);
- gradcheck rows (``python -m funcnn.gradcheck``) at points that cover both signs, a wide
  range and both sides of each declared kink.

Adding one takes a forward and a backward::

    import jax.numpy as jnp, funcnn

    def mish_forward(x):                      # plain jax.numpy: also what the twin differentiates
        return x * jnp.tanh(jnp.logaddexp(x, 0.0))

    # d/dx mish(x) = tanh(sp) + x * sigmoid(x) * (1 - tanh(sp)^2),  sp = softplus(x)
    def mish_backward(x, y, g):               # x input, y output, g cotangent -> dx
        t = jnp.tanh(jnp.logaddexp(x, 0.0))
        return g * (t + x * jax.nn.sigmoid(x) * (1 - t * t))

    mish = funcnn.define_activation("mish", mish_forward, mish_backward)

Settings (static numbers, like leaky ReLU's slope) and learnable parameters (like PReLU's
slope or Swish's beta, see :class:`ActivationParam`) are declared with the op; so are its
dead and saturated regions. Registering a name that is taken is an error.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops.names import LiveNames
from funcnn._ops.reduce import sum_to_shape
from funcnn._ops.rules import hand_rule

__all__ = [
    "ACTIVATION_NAMES",
    "ActivationOp",
    "ActivationParam",
    "activation_names",
    "define_activation",
    "get_activation",
    "is_registered",
    "register_activation",
    "unregister_activation",
]


@dataclasses.dataclass(frozen=True)
class ActivationParam:
    """A learnable array of an activation, passed to its forward and backward after ``x``.

    Attributes:
      name: the argument's name (``"alpha"``); a layer keeps it as ``params[name]``.
      init: its initial value (and the default when a call omits it).
      per_channel: a layer learns one value per channel (shape ``(C,)``, ``C`` the last axis of
        ``x``, as PReLU does); else one scalar (shape ``()``, as Swish's beta).
      check_range: the interval gradcheck draws its values from.
    """

    name: str
    init: float
    per_channel: bool = False
    check_range: tuple[float, float] = (0.1, 0.9)


_SETTING_TYPES = (bool, int, float, str, np.number)


@dataclasses.dataclass(frozen=True, eq=False)
class ActivationOp:
    """A registered activation: the hand-ruled function, its twin and what funcnn knows of it.

    Call it like the function it is: ``op(x, *params, **settings)`` runs the hand-written rule,
    ``op.reference(x, *params, **settings)`` the autodiff twin (same signature, same errors).

    Attributes:
      name: the registry name (``"relu"``, ``"mish"``): a valid Python identifier.
      hand: the hand-ruled function ``(x, *params, **settings) -> y``.
      reference: its autodiff twin, same signature.
      kinks: points where the derivative jumps; gradcheck samples both sides, away from them.
      params: learnable arrays (:class:`ActivationParam`), in positional order after ``x``.
      settings: static keyword settings and their defaults (``{"negative_slope": 0.01}``);
        default: read from ``hand``'s signature (every argument after ``x`` that is not a param).
      dead: ``pre -> bool mask``: where a unit is off (passes no or almost no gradient). A
        unit off on every example is *dead*; diagnostics report both fractions. ``None``: the
        activation has no such region.
      saturated: ``(pre, post, tol) -> bool mask``: where the activation is saturated (its
        derivative has all but vanished); ``tol`` is the diagnostics tolerance. ``None``: none.
      elementwise: ``False`` for maps over a whole axis (softmax): not a hidden activation.
      gain: the initialization gain, a float or ``(**settings_and_params) -> float``;
        ``None``: computed from the forward (``1 / sqrt(E[f(z)^2])``, z ~ N(0, 1)).
      layer: ``(rule=..., **kwargs) -> Layer``, the layer ``Activation(name, **kwargs)`` builds;
        ``None``: the generic activation layer (settings as keywords, params learnable).
      layer_name: the CamelCase name layers show (default from ``name``: ``"Mish"``).
      check_settings: the settings gradcheck checks the op at, one row each.
      builtin: declared by funcnn itself (cannot be unregistered).
    """

    name: str
    hand: Callable[..., Any]
    reference: Callable[..., Any]
    kinks: tuple[float, ...] = ()
    params: tuple[ActivationParam, ...] = ()
    settings: Mapping[str, Any] | None = None
    dead: Callable[[jax.Array], jax.Array] | None = None
    saturated: Callable[[jax.Array, jax.Array, float], jax.Array] | None = None
    elementwise: bool = True
    gain: float | Callable[..., float] | None = None
    layer: Callable[..., Any] | None = None
    layer_name: str | None = None
    check_settings: tuple[Mapping[str, Any], ...] = ({},)
    builtin: bool = False

    def __post_init__(self) -> None:
        fn = f"register_activation({self.name!r})"
        _check_name(fn, self.name)
        for what in ("hand", "reference"):
            if not callable(getattr(self, what)):
                raise TypeError(f"{fn}: {what} must be a function, got {getattr(self, what)!r}")
        kinks = _check_kinks(fn, self.kinks)
        object.__setattr__(self, "kinks", kinks)
        params = tuple(self.params)
        for p in params:
            if not isinstance(p, ActivationParam):
                raise TypeError(f"{fn}: params must be ActivationParam entries, got {p!r}")
        object.__setattr__(self, "params", params)
        if self.settings is None:
            object.__setattr__(self, "settings", _signature_settings(self.hand, params))
        object.__setattr__(self, "settings", dict(self.settings))
        for k, v in self.settings.items():
            if not isinstance(v, _SETTING_TYPES):
                raise TypeError(f"{fn}: setting {k} must default to a Python number, bool or str, got {v!r}")
        for what in ("dead", "saturated", "layer"):
            f = getattr(self, what)
            if f is not None and not callable(f):
                raise TypeError(f"{fn}: {what} must be a function or None, got {f!r}")
        if self.layer_name is None:
            object.__setattr__(self, "layer_name", "".join(p.capitalize() for p in self.name.split("_")))
        checks = tuple(dict(c) for c in self.check_settings) or ({},)
        for c in checks:
            unknown = [k for k in c if k not in self.settings]
            if unknown:
                raise ValueError(f"{fn}: check_settings names {unknown[0]!r}, not a setting of the op "
                                 f"(settings: {', '.join(self.settings) or 'none'})")
        object.__setattr__(self, "check_settings", checks)

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> jax.Array:
        """The activation under its hand-written rule."""
        return self.hand(x, *args, **kwargs)

    @property
    def param_names(self) -> tuple[str, ...]:
        """The names of the learnable params, in order."""
        return tuple(p.name for p in self.params)

    def __repr__(self) -> str:
        return f"ActivationOp({self.name!r})"


def _check_name(fn: str, name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{fn}: name must be a Python identifier such as 'mish', got {name!r}")


def _check_kinks(fn: str, kinks: Any) -> tuple[float, ...]:
    if isinstance(kinks, (int, float)) and not isinstance(kinks, bool):
        raise TypeError(f"{fn}: kinks must be a sequence of numbers such as (0.0,), got {kinks!r}")
    out = []
    for k in kinks:
        if isinstance(k, bool) or not isinstance(k, (int, float, np.number)) or not math.isfinite(float(k)):
            raise ValueError(f"{fn}: kinks must be finite numbers, got {tuple(kinks)!r}")
        out.append(float(k))
    return tuple(sorted(out))


def _signature_settings(hand: Callable[..., Any], params: Sequence[ActivationParam]) -> dict[str, Any]:
    try:
        sig = inspect.signature(hand)
    except (TypeError, ValueError):
        return {}
    names = {p.name for p in params}
    out = {}
    for p in list(sig.parameters.values())[1:]:
        if p.name in names or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is not inspect.Parameter.empty:
            out[p.name] = p.default
    return out


# ---------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------

_REGISTRY: dict[str, ActivationOp] = {}


def register_activation(op: ActivationOp) -> ActivationOp:
    """Add ``op`` to the registry (the path every activation takes, built-in or not).

    Raises:
      ValueError: the name is taken (by a built-in or an earlier registration).
    """
    if not isinstance(op, ActivationOp):
        raise TypeError(f"register_activation: expected an ActivationOp, got {type(op).__name__}")
    if op.name in _REGISTRY:
        old = _REGISTRY[op.name]
        whose = "a built-in activation" if old.builtin else "an activation registered earlier"
        hint = "" if old.builtin else f" (or call funcnn._ops.registry.unregister_activation({op.name!r}) first)"
        raise ValueError(
            f"register_activation: the name {op.name!r} is taken by {whose}; choose another name{hint}"
        )
    _REGISTRY[op.name] = op
    return op


def unregister_activation(name: str) -> None:
    """Remove a user-registered activation (e.g. to redefine it in a notebook)."""
    if name not in _REGISTRY:
        raise ValueError(f"unregister_activation: no activation named {name!r} is registered")
    if _REGISTRY[name].builtin:
        raise ValueError(f"unregister_activation: {name!r} is a built-in activation; it cannot be removed")
    del _REGISTRY[name]


def is_registered(name: Any) -> bool:
    """Whether ``name`` is a registered activation."""
    return isinstance(name, str) and name in _REGISTRY


def get_activation(name: str, *, fn: str = "get_activation") -> ActivationOp:
    """The registered activation ``name``; a ValueError naming ``fn`` and every valid name otherwise."""
    if isinstance(name, ActivationOp):
        return name
    op = _REGISTRY.get(name) if isinstance(name, str) else None
    if op is None:
        raise ValueError(
            f"{fn}: unknown activation {name!r}; expected one of "
            + ", ".join(repr(n) for n in _REGISTRY)
            + " (register your own with funcnn.define_activation)"
        )
    return op


def activation_names(*, hidden: bool = False) -> tuple[str, ...]:
    """The registered names in registration order (built-ins first); ``hidden=True`` keeps
    only elementwise activations (those usable in a hidden layer: no softmax)."""
    return tuple(n for n, op in _REGISTRY.items() if op.elementwise or not hidden)


def _Names(select: Callable[[ActivationOp], bool], doc: str, prefix: tuple[str, ...] = ()) -> LiveNames:
    """A live, read-only view of the registered names whose op passes ``select`` (after
    ``prefix``), a tuple-like sequence."""
    prefix = tuple(prefix)
    return LiveNames(lambda: prefix + tuple(n for n, op in _REGISTRY.items() if select(op)), doc)


#: Every registered activation name, a live view of the registry (built-ins first).
ACTIVATION_NAMES = _Names(lambda op: True, "Every registered activation name (live view of the registry).")


# ---------------------------------------------------------------------------------------
# define_activation: a forward and a backward become a registered op
# ---------------------------------------------------------------------------------------


def define_activation(
    name: str,
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    *,
    kinks: Sequence[float] = (),
    params: Sequence[ActivationParam] = (),
    settings: Mapping[str, Any] | None = None,
    dead: Callable[[jax.Array], jax.Array] | None = None,
    saturated: Callable[[jax.Array, jax.Array, float], jax.Array] | None = None,
    elementwise: bool = True,
    gain: float | Callable[..., float] | None = None,
    check_settings: Sequence[Mapping[str, Any]] = ({},),
) -> ActivationOp:
    """Make an activation with a hand-written backward rule and register it under ``name``.

    Args:
      name: the registry name (a Python identifier not yet taken).
      forward: ``forward(x, *params, **settings) -> y`` in plain ``jax.numpy``; it is also what
        the autodiff twin (``op.reference``) differentiates.
      backward: ``backward(x, y, g, *params, **settings) -> dx`` (``x`` the input, ``y`` the
        output, ``g`` the cotangent of ``y``): the hand-written rule. With params it returns
        ``(dx, *dparams)``; a param's cotangent may have ``x``'s shape and is then summed down
        to the param's shape. ``dx`` must have ``x``'s shape and dtype (else the call fails
        with an error naming the op, and gradcheck reports a failing row).
      kinks: points where the derivative jumps (gradcheck samples both sides, away from them).
      params: learnable arrays (:class:`ActivationParam`), positional after ``x``.
      settings: static keyword settings and their defaults, e.g. ``{"alpha": 1.0}``.
      dead, saturated, elementwise, gain, check_settings: see :class:`ActivationOp`.

    Returns:
      The registered :class:`ActivationOp`: ``op(x)`` runs the hand rule (a
      :class:`funcnn.hand_rule`, i.e. ``jax.custom_vjp``, whose named scope and forward-mode
      error name the op), ``op.reference(x)`` the twin.
    """
    fn = f"define_activation({name!r})"
    _check_name(fn, name)
    for what, f in (("forward", forward), ("backward", backward)):
        if not callable(f):
            raise TypeError(f"{fn}: {what} must be a function, got {f!r}")
    params = tuple(params)
    for p in params:
        if not isinstance(p, ActivationParam):
            raise TypeError(f"{fn}: params must be funcnn.ActivationParam entries, got {p!r}")
    defaults = dict(settings or {})
    hand, reference = _rule_pair(name, forward, backward, params, defaults)
    op = ActivationOp(
        name, hand, reference, kinks=tuple(kinks), params=params, settings=defaults, dead=dead,
        saturated=saturated, elementwise=elementwise, gain=gain, check_settings=tuple(check_settings),
    )
    return register_activation(op)


def _rule_pair(
    name: str,
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    params: tuple[ActivationParam, ...],
    defaults: dict[str, Any],
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The public hand-ruled function and its twin for ``define_activation``."""
    from funcnn._ops.checks import check_float

    pnames = tuple(p.name for p in params)

    def bind(x: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[jax.Array, tuple[Any, ...], dict[str, Any]]:
        check_float(name, "x", x)
        x = jnp.asarray(x)
        if len(args) > len(params):
            raise TypeError(f"{name}: takes x and {len(params)} param(s) {pnames}, got {1 + len(args)} positional arguments")
        values = dict(zip(pnames, args))
        st = dict(defaults)
        for k, v in kwargs.items():
            if k in pnames:
                if k in values:
                    raise TypeError(f"{name}: got param {k!r} twice")
                values[k] = v
            elif k in defaults:
                if not isinstance(v, _SETTING_TYPES):
                    raise TypeError(f"{name}: setting {k} must be a Python number, bool or str (static), got {v!r}")
                st[k] = v
            else:
                accepted = ", ".join((*pnames, *defaults)) or "nothing besides x"
                raise TypeError(f"{name}: unexpected argument {k!r}; it takes {accepted}")
        ps = []
        for p in params:
            v = values.get(p.name, p.init)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = jnp.asarray(v, x.dtype)
            else:
                check_float(name, p.name, v)
                v = jnp.asarray(v)
                try:
                    ok = np.broadcast_shapes(tuple(x.shape), tuple(v.shape)) == tuple(x.shape)
                except ValueError:
                    ok = False
                if not ok:
                    raise ValueError(
                        f"{name}: param {p.name} must be a scalar or broadcastable to x.shape={tuple(x.shape)}, "
                        f"got {p.name}.shape={tuple(v.shape)}"
                    )
            ps.append(v)
        return x, tuple(ps), st

    @functools.lru_cache(maxsize=None)
    def rule_for(items: tuple[tuple[str, Any], ...]) -> Any:
        st = dict(items)

        def primal(x: jax.Array, *ps: jax.Array) -> jax.Array:
            return forward(x, *ps, **st)

        core = hand_rule(primal, name=name)

        def fwd(x: jax.Array, *ps: jax.Array) -> tuple[jax.Array, Any]:
            y = forward(x, *ps, **st)
            return y, (x, y, ps)

        def bwd(res: Any, g: jax.Array) -> tuple[jax.Array, ...]:
            x, y, ps = res
            return _cotangents(name, backward(x, y, g, *ps, **st), x, ps)

        core.defvjp(fwd, bwd)
        return core

    def hand(x: Any, *args: Any, **kwargs: Any) -> jax.Array:
        x, ps, st = bind(x, args, kwargs)
        return rule_for(tuple(sorted(st.items())))(x, *ps)

    def reference(x: Any, *args: Any, **kwargs: Any) -> jax.Array:
        x, ps, st = bind(x, args, kwargs)
        return forward(x, *ps, **st)

    for f, what in ((hand, "hand-written rule"), (reference, "autodiff twin")):
        f.__name__ = f.__qualname__ = name
        f.__doc__ = f"{name}: the {what} of the registered activation {name!r}.\n\n{forward.__doc__ or ''}"
    return hand, reference


def _cotangents(name: str, out: Any, x: jax.Array, ps: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    """The backward's result as one cotangent per input, checked (shape, dtype) and summed down."""
    if not isinstance(out, (tuple, list)):
        out = (out,)
    out = tuple(out)
    if len(out) != 1 + len(ps):
        raise ValueError(
            f"{name}: backward returned {len(out)} cotangent(s); it must return "
            + ("dx" if not ps else f"(dx, {', '.join('d' + str(i) for i in range(len(ps)))}): one per input")
        )
    dx = out[0]
    if not hasattr(dx, "shape") or tuple(dx.shape) != tuple(x.shape):
        raise ValueError(
            f"{name}: backward returned dx of shape {tuple(getattr(dx, 'shape', ()))} for x of shape "
            f"{tuple(x.shape)}; dx must have x's shape and dtype"
        )
    if jnp.dtype(dx.dtype) != jnp.dtype(x.dtype):
        raise TypeError(f"{name}: backward returned dx of dtype {jnp.dtype(dx.dtype).name} for x of dtype "
                        f"{jnp.dtype(x.dtype).name}; dx must have x's dtype")
    dps = []
    for p, d in zip(ps, out[1:]):
        d = jnp.asarray(d)
        if d.shape != p.shape:
            try:
                np.broadcast_shapes(tuple(x.shape), tuple(d.shape))
            except ValueError:
                raise ValueError(
                    f"{name}: backward returned a param cotangent of shape {tuple(d.shape)} for a param of "
                    f"shape {tuple(p.shape)}"
                ) from None
            d = sum_to_shape(d, tuple(p.shape))
        dps.append(d.astype(p.dtype))
    return (dx, *dps)
