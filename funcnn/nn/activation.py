"""Activation layers: ``Activation(name)`` for any registered activation, the named
shorthands (``Relu()``, ``Tanh()``, ...), ``PReLU``, ``Swish`` and the by-data ``Choice``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import funcnn.nn.initializers as _inits
from funcnn._ops import registry as _registry
from funcnn._ops.checks import shape_of
from funcnn._ops.registry import ActivationOp
from funcnn.nn._common import _check_channels, _check_in_shape, _check_key, _check_tree, _check_x, _fmt
from funcnn.nn.choice import Choice
from funcnn.nn.layer import Layer, check_rule, switches_rule


#: Every registered activation name (a live view of :mod:`funcnn.registry`).
ACTIVATION_NAMES = _registry.ACTIVATION_NAMES

_SETTING_TYPES = (bool, int, float, np.number)


def _activation_fn(op: ActivationOp, rule: Any) -> Callable[..., Any]:
    """The registered activation ``op`` under ``rule``: its hand rule, its twin, or (a
    :class:`Choice` of rules) a pick between them by data (settings stay constants)."""
    fns = {"hand": op.hand, "autodiff": op.reference}
    if not isinstance(rule, Choice):
        return fns[rule]

    def f(*args: Any, **settings: Any) -> Any:
        return rule.switch({r: (lambda *a, g=fns[r]: g(*a, **settings)) for r in rule.options}, *args)

    return f


def _registered(fn: str, name: Any) -> ActivationOp:
    """The registry entry for ``name`` (a name or a registered :class:`ActivationOp`)."""
    if isinstance(name, ActivationOp):
        if _registry.is_registered(name.name) and _registry.get_activation(name.name) is name:
            return name
        raise ValueError(f"{fn}: {name!r} is not (or no longer) the registered activation {name.name!r}")
    return _registry.get_activation(name, fn=fn)


@switches_rule
def Activation(name: str | ActivationOp | Choice, rule: str = "hand", **kwargs: Any) -> Layer:
    """An activation layer by registry name: any built-in or user-registered activation.

    Args:
        name: a name in :data:`funcnn.registry.ACTIVATION_NAMES` (or the registered op
            itself), or a :class:`funcnn.Choice` among names (see :func:`_choice_activation`:
            one layer, one program, the pick as data).
        rule: ``"hand"`` or ``"autodiff"`` (or a Choice between them).
        **kwargs: the op's settings, e.g. ``negative_slope=0.2`` for ``"leaky_relu"``,
            ``axis=1`` for ``"softmax"``. Values must be Python numbers or bools. For an
            activation with learnable params, the initial values by param name (and ``dtype``).

    An activation that declares its own layer builds it: ``Activation("prelu", **kw)`` is
    ``PReLU(**kw)`` and ``Activation("swish", **kw)`` is ``Swish(**kw)``, so a grid over
    activation names covers all of them. Other activations with learnable params get a
    generic layer with params ``{name: (C,) or ()}`` initialised at each param's ``init``.

    Shapes: ``x -> y`` of the same shape. No params (unless learnable), no state.
    """
    if isinstance(name, Choice):
        return _choice_activation(name, rule, kwargs)
    op = _registered("Activation", name)
    name = op.name
    if op.layer is not None:
        accepted = [p for p in inspect.signature(op.layer).parameters if p != "rule"]
        for k in kwargs:
            if k not in accepted:
                raise TypeError(
                    f"Activation({name!r}): unexpected setting {k!r} for activation {name!r}; "
                    f"it accepts {', '.join(accepted)} (it builds {op.layer.__name__}(...))"
                )
        return op.layer(rule=rule, **kwargs)
    if op.params:
        return _param_activation(op, rule, kwargs)
    shown = dict(kwargs)
    if rule != "hand":
        shown["rule"] = rule
    lname = f"{op.layer_name}({_fmt((), shown)})"
    settings = op.settings
    for k, v in kwargs.items():
        if k not in settings:
            accepted = ", ".join(settings) if settings else "no settings"
            raise TypeError(
                f"{lname}: unexpected setting {k!r} for activation {name!r}; it accepts {accepted}"
            )
        if not isinstance(v, _SETTING_TYPES):
            raise TypeError(f"{lname}: setting {k} must be a Python number or bool, got {v!r}")
    check_rule(lname, rule)
    fn = _activation_fn(op, rule)
    axis = kwargs.get("axis", settings.get("axis"))
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
        raise TypeError(f"{lname}: axis must be an int, got {axis!r}")

    def check_axis(fn_name: str, rank: int) -> None:
        if axis is not None and not -rank <= axis < rank:
            raise ValueError(f"{lname}: axis {axis} is out of range for {fn_name} of rank {rank}")

    def init(key, in_shape):
        shape = _check_in_shape(lname, in_shape, None, "a shape of rank >= 1")
        check_axis("in_shape", len(shape))
        return shape, (), ()

    def apply(params, state, x, *, key=None, train=False):
        check_axis("x", len(shape_of(x)))
        return fn(x, **kwargs), state

    return Layer(
        init,
        apply,
        name=lname,
        kind="activation",
        rule=rule,
        activation=name,
        config={"name": name, **kwargs},
    )


def _param_activation(op: ActivationOp, rule: Any, kwargs: Mapping[str, Any]) -> Layer:
    """The generic layer of a registered activation with learnable params.

    Params ``{p.name: (C,) if p.per_channel else ()}`` for each :class:`ActivationParam`,
    initialised at ``kwargs.get(p.name, p.init)``; the other keywords are the op's settings
    (and ``dtype``, the params' dtype, float32 by default).
    """
    kwargs = dict(kwargs)
    dtype = kwargs.pop("dtype", jnp.float32)
    shown = dict(kwargs)
    if rule != "hand":
        shown["rule"] = rule
    lname = f"{op.layer_name}({_fmt((), shown)})"
    inits = {p.name: kwargs.pop(p.name, p.init) for p in op.params}
    for k, v in {**inits, **kwargs}.items():
        if k not in op.settings and k not in inits:
            accepted = ", ".join((*op.param_names, *op.settings, "dtype"))
            raise TypeError(f"{lname}: unexpected setting {k!r} for activation {op.name!r}; it accepts {accepted}")
        if isinstance(v, bool) and k in inits or not isinstance(v, _SETTING_TYPES):
            raise TypeError(f"{lname}: {k} must be a Python number, got {v!r}")
    check_rule(lname, rule)
    fn = _activation_fn(op, rule)
    per_channel = any(p.per_channel for p in op.params)

    def init(key, in_shape):
        shape = _check_in_shape(lname, in_shape, None, "(N, ..., C) with rank >= 2" if per_channel else "a shape of rank >= 1",
                                min_rank=2 if per_channel else 1)
        params = {p.name: jnp.full((shape[-1],) if p.per_channel else (), inits[p.name], dtype) for p in op.params}
        return shape, params, ()

    def apply(params, state, x, *, key=None, train=False):
        _check_tree(lname, "params", params, {p.name: None for p in op.params})
        x_shape = _check_x(lname, x, None, "a shape of rank >= 1")
        for p in op.params:
            if p.per_channel:
                _check_channels(lname, x_shape, params[p.name].shape[-1], f"{p.name} {tuple(params[p.name].shape)}")
        return fn(x, *(params[p.name] for p in op.params), **kwargs), state

    return Layer(
        init,
        apply,
        name=lname,
        kind="activation",
        rule=rule,
        activation=op.name,
        config={"name": op.name, **inits, **kwargs, "dtype": jnp.dtype(dtype).name},
    )


def _choice_activation(choice: Choice, rule: str, kwargs: Mapping[str, Any]) -> Layer:
    """``Activation(Choice(names, index))``: the activation ``names[index]``, picked by data.

    Each alternative is ``Activation(name, rule, **its settings)`` with its own hand-written
    rule; ``apply`` is ``choice.switch`` over them. Params are the tuple of every
    alternative's params (``()`` for most; PReLU's ``alpha``, Swish's ``beta``), so members
    that pick different activations share one structure; an alternative's params get a zero
    gradient where it is not picked. ``kwargs`` may hold ``{name: {settings}}`` per option.
    """
    bad = [o for o in choice.options if not _registry.is_registered(o)]
    if bad:
        raise ValueError(
            f"Activation: unknown activation {bad[0]!r} in {choice!r}; expected names among "
            + ", ".join(repr(n) for n in ACTIVATION_NAMES)
        )
    for k, v in kwargs.items():
        if k not in choice.options or not isinstance(v, Mapping):
            raise TypeError(
                f"Activation({choice!r}): settings of a choice go per option, as name={{setting: value}}; "
                f"got {k}={v!r}"
            )
    alts = tuple(Activation(o, rule=rule, **dict(kwargs.get(o, {}))) for o in choice.options)
    lname = f"Activation({choice.label}{'' if rule == 'hand' else f', rule={rule!r}'})"

    def init(key, in_shape):
        outs = [alt.init(key, in_shape) for alt in alts]
        return outs[0][0], tuple(o[1] for o in outs), ()

    def apply(params, state, x, *, key=None, train=False):
        branches = {
            alt.activation: (lambda ps, x, i=i, alt=alt: alt.apply(ps[i], (), x)[0]) for i, alt in enumerate(alts)
        }
        return choice.switch(branches, params, x), state

    return Layer(
        init,
        apply,
        name=lname,
        kind="activation",
        rule=rule,
        activation=choice,
        config={"name": choice.label, **kwargs},
    )


def Logistic(rule: str = "hand") -> Layer:
    """Logistic sigmoid ``1 / (1 + exp(-x))``."""
    return Activation("logistic", rule=rule)


def Tanh(rule: str = "hand") -> Layer:
    """Hyperbolic tangent."""
    return Activation("tanh", rule=rule)


def HardLogistic(rule: str = "hand") -> Layer:
    """``max(0, min(1, 0.25 x + 0.5))``, the first-order Taylor expansion of the logistic at 0."""
    return Activation("hard_logistic", rule=rule)


def HardTanh(rule: str = "hand") -> Layer:
    """``max(-1, min(1, x))``."""
    return Activation("hard_tanh", rule=rule)


def Relu(rule: str = "hand") -> Layer:
    """``max(0, x)``."""
    return Activation("relu", rule=rule)


def LeakyRelu(negative_slope: float = 0.01, rule: str = "hand") -> Layer:
    """``x`` for ``x > 0`` else ``negative_slope * x``."""
    return Activation("leaky_relu", rule=rule, negative_slope=negative_slope)


def Elu(alpha: float = 1.0, rule: str = "hand") -> Layer:
    """``x`` for ``x > 0`` else ``alpha * (exp(x) - 1)`` (Clevert et al., 2016)."""
    return Activation("elu", rule=rule, alpha=alpha)


def Softplus(rule: str = "hand") -> Layer:
    """``log(1 + exp(x))``."""
    return Activation("softplus", rule=rule)


def Gelu(approximate: bool = False, rule: str = "hand") -> Layer:
    """``x * Phi(x)`` (Hendrycks & Gimpel, 2016); ``approximate=True`` uses the tanh form."""
    return Activation("gelu", rule=rule, approximate=approximate)


def Softmax(axis: int = -1, rule: str = "hand") -> Layer:
    """``exp(x) / sum(exp(x))`` along ``axis``."""
    return Activation("softmax", rule=rule, axis=axis)


def LogSoftmax(axis: int = -1, rule: str = "hand") -> Layer:
    """``x - logsumexp(x)`` along ``axis``."""
    return Activation("log_softmax", rule=rule, axis=axis)


@switches_rule
def PReLU(init: float | Callable[..., jax.Array] = 0.25, rule: str = "hand", *,
          dtype: Any = jnp.float32) -> Layer:
    """Parametric ReLU with a learnable slope per channel (He et al., 2015).

    ``y = x`` for ``x > 0`` else ``alpha[c] * x``, ``c`` the last axis.

    Args:
        init: the initial slope (a number), or an initializer ``(key, (C,), dtype) -> array``.
        rule: ``"hand"`` or ``"autodiff"``.
        dtype: dtype of ``alpha``.

    Params ``{"alpha": (C,)}``. Shapes: ``(N, ..., C) -> (N, ..., C)``.
    """
    shown: dict[str, Any] = {}
    if rule != "hand":
        shown["rule"] = rule
    name = f"PReLU({_fmt([init] if not callable(init) else [], shown)})"
    if isinstance(init, (str, Choice)):
        init_value = _inits.resolve(init, _inits.zeros, fn=name, arg="init")
    elif not callable(init) and (isinstance(init, bool) or not isinstance(init, _SETTING_TYPES)):
        raise TypeError(f"{name}: init must be a number, an initializer or an initializer name, got {init!r}")
    else:
        init_value = init
    check_rule(name, rule)
    prelu = _activation_fn(_registry.get_activation("prelu"), rule)

    def init_fn(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, "(N, ..., C) with rank >= 2", min_rank=2)
        c = shape[-1]
        if callable(init_value):
            _check_key(name, key)
            alpha = init_value(key, (c,), dtype)
        else:
            alpha = jnp.full((c,), init_value, dtype)
        return shape, {"alpha": alpha}, ()

    def apply(params, state, x, *, key=None, train=False):
        x_shape = _check_x(name, x, None, "(N, ..., C) with rank >= 2", min_rank=2)
        alpha = params["alpha"]
        _check_channels(name, x_shape, alpha.shape[-1], f"alpha {tuple(alpha.shape)}")
        return prelu(x, alpha), state

    return Layer(
        init_fn,
        apply,
        name=name,
        kind="activation",
        rule=rule,
        activation="prelu",
        config={"init": init, "dtype": jnp.dtype(dtype).name},
    )


@switches_rule
def Swish(learnable_beta: bool = True, beta: float = 1.0, rule: str = "hand", *,
          dtype: Any = jnp.float32) -> Layer:
    """Swish ``x * logistic(beta * x)`` (Ramachandran et al., 2017).

    Args:
        learnable_beta: if True, ``beta`` is a learnable scalar param ``{"beta": ()}``
            initialized to ``beta``; else a fixed setting and params are ``()``.
        beta: the (initial) value of beta.
        rule: ``"hand"`` or ``"autodiff"``.
        dtype: dtype of the learnable ``beta``.

    Shapes: ``x -> y`` of the same shape.
    """
    shown: dict[str, Any] = {"learnable_beta": learnable_beta}
    if beta != 1.0:
        shown["beta"] = beta
    if rule != "hand":
        shown["rule"] = rule
    name = f"Swish({_fmt((), shown)})"
    if not isinstance(learnable_beta, (bool, np.bool_)):
        raise TypeError(f"{name}: learnable_beta must be a bool, got {learnable_beta!r}")
    if isinstance(beta, bool) or not isinstance(beta, _SETTING_TYPES):
        raise TypeError(f"{name}: beta must be a number, got {beta!r}")
    check_rule(name, rule)
    swish = _activation_fn(_registry.get_activation("swish"), rule)

    def init(key, in_shape):
        shape = _check_in_shape(name, in_shape, None, "a shape of rank >= 1")
        params = {"beta": jnp.asarray(beta, dtype)} if learnable_beta else ()
        return shape, params, ()

    def apply(params, state, x, *, key=None, train=False):
        b = params["beta"] if learnable_beta else beta
        return swish(x, b), state

    return Layer(
        init,
        apply,
        name=name,
        kind="activation",
        rule=rule,
        activation="swish",
        config={"learnable_beta": bool(learnable_beta), "beta": beta, "dtype": jnp.dtype(dtype).name},
    )
