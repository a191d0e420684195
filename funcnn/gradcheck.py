"""Proof of the rules: each hand-written backward rule against ``jax.grad`` and finite differences.

For an op ``f`` with a hand-written rule (``jax.custom_vjp``) and its autodiff twin ``f_ref``
(:mod:`funcnn.reference`), :func:`check` evaluates, at one point ``args``:

1. **vs autodiff** -- the forwards, then the vector-Jacobian products of both rules for one
   *random* cotangent ``u`` (never an all-ones ``.sum()``, which hides sign and permutation
   errors): per differentiable input ``i``, ``a_i = vjp(f)(u)_i`` and ``r_i = vjp(f_ref)(u)_i``,

   - ``max_abs_err = max |a_i - r_i|``,
   - ``max_rel_err = max |a_i - r_i| / max |r_i|`` (norm-wise: relative to the largest
     entry of the reference gradient, so entries near zero do not blow it up).

2. **vs finite differences** -- per differentiable input, the directional check of
   ``jax.test_util.check_vjp``: for a random tangent ``t_i``,
   ``<t_i, vjp(f)(u)_i>`` against ``<(f(x_i + eps t_i) - f(x_i - eps t_i)) / (2 eps), u>``
   (central differences), reported as a relative error ``fd_rel_err``; and the verdict of
   ``jax.test_util.check_grads(f, diff_args, order=1, modes=("rev",))`` on all
   differentiable inputs at once (pass/fail plus the message it raised).

Finite differences are only meaningful in float64 (``jax.config.update("jax_enable_x64",
True)``, which ``python -m funcnn.gradcheck`` does); points must avoid kinks and ties, which
the registered :data:`CASES` do by construction.

``python -m funcnn.gradcheck [--op NAME] [--quick]`` runs every registered case, prints one
table row per case and a summary line, and exits 1 if any case fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np

__all__ = [
    "CASES",
    "OP_MODULES",
    "Case",
    "GradcheckReport",
    "InputError",
    "check",
    "check_case",
    "format_table",
    "main",
    "run",
]

#: Op modules with hand-written rules; each has a twin ``funcnn.reference.<module>``.
OP_MODULES = ("activations", "linear", "conv", "pooling", "losses", "normalization")

#: Relative tolerance (vs the largest reference entry) for hand rule vs autodiff, by dtype.
AUTODIFF_RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}
#: Relative tolerance of the directional finite-difference check, by dtype.
FD_RTOL = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 2e-2}
#: Finite-difference step (the one ``jax.test_util.check_grads`` uses).
FD_EPS = 1e-4
_TINY = 1e-30


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InputError:
    """Errors of the hand rule's cotangent for one differentiable input.

    Attributes:
      name: the argument's name in the op's signature (e.g. ``"x"``, ``"w"``).
      max_abs_err: ``max |hand - autodiff|`` (``nan`` when there is no twin).
      max_rel_err: ``max_abs_err / max |autodiff|`` (``nan`` when there is no twin).
      fd_rel_err: relative error of the directional finite-difference check,
        ``|<t, hand vjp> - <fd jvp, u>| / max(|<t, hand vjp>|, |<fd jvp, u>|)``.
    """

    name: str
    max_abs_err: float
    max_rel_err: float
    fd_rel_err: float


@dataclasses.dataclass(frozen=True)
class GradcheckReport:
    """The outcome of one gradient check.

    Attributes:
      op: the op's name (e.g. ``"conv2d"``).
      config: the point checked, as a string (shapes and static settings).
      inputs: one :class:`InputError` per differentiable input.
      forward_abs_err: ``max |f(args) - f_ref(args)|`` (``nan`` without a twin).
      autodiff_passed: every input within tolerance of the twin (``True`` without a twin).
      fd_passed: ``check_grads`` passed and every directional check is within tolerance.
      fd_message: the first lines of what ``check_grads`` raised (``""`` when it passed).
      passed: ``autodiff_passed and fd_passed`` and no error.
      error: the exception raised while checking (``""`` when none), e.g. a missing op.
    """

    op: str
    config: str
    inputs: tuple[InputError, ...]
    forward_abs_err: float
    autodiff_passed: bool
    fd_passed: bool
    fd_message: str
    passed: bool
    error: str = ""

    @property
    def max_abs_err(self) -> float:
        """Largest ``max_abs_err`` over the inputs (``nan`` if none)."""
        return _nanmax([e.max_abs_err for e in self.inputs])

    @property
    def max_rel_err(self) -> float:
        """Largest ``max_rel_err`` over the inputs (``nan`` if none)."""
        return _nanmax([e.max_rel_err for e in self.inputs])

    @property
    def max_fd_rel_err(self) -> float:
        """Largest ``fd_rel_err`` over the inputs (``nan`` if none)."""
        return _nanmax([e.fd_rel_err for e in self.inputs])


def _nanmax(values: Sequence[float]) -> float:
    vals = [v for v in values if not np.isnan(v)]
    return max(vals) if vals else float("nan")


# ---------------------------------------------------------------------------------------
# The check itself
# ---------------------------------------------------------------------------------------


def _resolve(op: Any) -> tuple[str, Callable[..., Any], Callable[..., Any] | None]:
    """``op`` -> (name, hand function, twin or None)."""
    if isinstance(op, str):
        for mod in OP_MODULES:
            try:
                hand_mod = importlib.import_module(f"funcnn.{mod}")
            except ModuleNotFoundError:
                continue
            if hasattr(hand_mod, op):
                ref_mod = importlib.import_module(f"funcnn.reference.{mod}")
                return op, getattr(hand_mod, op), getattr(ref_mod, op)
        raise ValueError(
            f"gradcheck.check: unknown op {op!r}; expected the name of an op in "
            f"funcnn.{{{', '.join(OP_MODULES)}}}, or a (hand, reference) pair of functions"
        )
    if isinstance(op, tuple) and len(op) == 2 and all(callable(f) for f in op):
        hand, ref = op
        return _fn_name(hand), hand, ref
    if callable(op):
        return _fn_name(op), op, None
    raise TypeError(
        "gradcheck.check: op must be an op name, a (hand, reference) pair of functions or "
        f"a function, got {type(op).__name__}"
    )


def _fn_name(f: Callable[..., Any]) -> str:
    return getattr(f, "__name__", None) or getattr(getattr(f, "fun", None), "__name__", "f")


def _arg_names(f: Callable[..., Any], n: int) -> list[str]:
    try:
        params = [
            p.name
            for p in inspect.signature(f).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"arg{i}" for i in range(n)]


def _is_float_array(a: Any) -> bool:
    return hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)


def _describe(
    args: Sequence[Any], names: Sequence[str], kwargs: Mapping[str, Any], argnums: Sequence[int]
) -> str:
    """``x(2, 8, 3) w(3, 3, 4) stride=2``; ``:int32`` / ``:fixed`` mark inputs held fixed."""
    parts = []
    for i, (name, a) in enumerate(zip(names, args)):
        if a is None:
            continue
        if hasattr(a, "shape"):
            if not _is_float_array(a):
                kind = f":{np.dtype(a.dtype).name}"
            else:
                kind = "" if i in argnums else ":fixed"
            parts.append(f"{name}{tuple(a.shape)}{kind}")
        else:
            parts.append(f"{name}={a!r}")
    parts += [f"{k}={v!r}" for k, v in kwargs.items()]
    return " ".join(parts)


def _first_lines(msg: str, n: int = 6) -> str:
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    return " | ".join(lines[:n])


def _tree_vdot(a: Any, b: Any) -> float:
    """``sum <a_leaf, b_leaf>`` in float64 NumPy (no device work, nothing to compile)."""
    return float(
        sum(
            np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64))
            for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
        )
    )


def _max_abs(a: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64)), initial=0.0))


def check(
    op: str | tuple[Callable[..., Any], Callable[..., Any]] | Callable[..., Any],
    args: Sequence[Any],
    *,
    kwargs: Mapping[str, Any] | None = None,
    argnums: Sequence[int] | None = None,
    config: str | None = None,
    seed: int = 0,
    eps: float = FD_EPS,
    rtol: float | None = None,
    fd_rtol: float | None = None,
) -> GradcheckReport:
    """Check one op's hand-written backward rule at one point.

    Args:
      op: an op name (``"conv2d"``: the hand rule from ``funcnn.<module>``, the twin from
        ``funcnn.reference.<module>``), a ``(hand, reference)`` pair of functions, or a
        single function (then only the finite-difference check runs).
      args: positional arguments; arrays (``None`` allowed, e.g. no bias).
      kwargs: static keyword settings (``stride``, ``padding``, ``axis``, ...), never
        differentiated.
      argnums: positions of the differentiable arguments; default every floating array.
        The others (integer labels, ``None``) are held fixed.
      config: description of the point for the report; default built from shapes/kwargs.
      seed: seeds the random cotangent and tangents.
      eps: finite-difference step.
      rtol: tolerance vs autodiff on ``max_rel_err`` (default by dtype:
        :data:`AUTODIFF_RTOL`).
      fd_rtol: tolerance of the finite-difference checks (default by dtype: :data:`FD_RTOL`;
        also passed to ``check_grads`` as ``atol``/``rtol``).

    Returns:
      A :class:`GradcheckReport`.
    """
    kwargs = dict(kwargs or {})
    args = tuple(args)
    name, hand, ref = _resolve(op)
    arg_names = _arg_names(hand, len(args))
    if argnums is None:
        argnums = tuple(i for i, a in enumerate(args) if _is_float_array(a))
    argnums = tuple(argnums)
    if not argnums:
        raise ValueError(f"gradcheck.check: {name} has no differentiable (floating) argument")
    if config is None:
        config = _describe(args, arg_names, kwargs, argnums)

    def full(fn: Callable[..., Any]) -> Callable[..., Any]:
        def f(*diff: Any) -> Any:
            a = list(args)
            for i, d in zip(argnums, diff):
                a[i] = d
            return fn(*a, **kwargs)

        return f

    diff_args = tuple(jnp.asarray(args[i]) for i in argnums)
    dtype = np.dtype(jnp.result_type(*[d.dtype for d in diff_args]))
    rtol = rtol if rtol is not None else AUTODIFF_RTOL.get(dtype, 1e-2)
    fd_rtol = fd_rtol if fd_rtol is not None else FD_RTOL.get(dtype, 1e-1)
    # Streams independent of the seed that drew the point: a cotangent equal to the input
    # (same generator, same seed) can lie in a rule's null space and hide everything.
    rng = np.random.default_rng([seed, 0x6A09E667])
    f_hand = full(hand)
    f_ref = full(ref) if ref is not None else None
    out_struct = jax.eval_shape(f_hand, *diff_args)
    u = jax.tree_util.tree_map(
        lambda o: jnp.asarray(rng.standard_normal(o.shape), o.dtype), out_struct
    )
    tangents = tuple(jnp.asarray(rng.standard_normal(d.shape), d.dtype) for d in diff_args)

    # Compiled once per case and shared by every evaluation below and by check_grads
    # (op-by-op dispatch would compile every primitive separately, which is slower).
    f_jit = jax.jit(f_hand)
    out, vjp_hand = jax.vjp(f_jit, *diff_args)
    res: dict[str, Any] = {"out": out, "cot_hand": vjp_hand(u)}
    if f_ref is not None:

        @jax.jit
        def ref_vjp(diff: tuple[Any, ...], u: Any) -> tuple[Any, Any]:
            out_ref, vjp_ref = jax.vjp(f_ref, *diff)
            return out_ref, vjp_ref(u)

        res["out_ref"], res["cot_ref"] = ref_vjp(diff_args, u)
    res = jax.device_get(res)
    u_np = jax.device_get(u)
    res["ip_fd"], res["ip_hand"] = [], []
    for k, t in enumerate(jax.device_get(tangents)):
        d = np.asarray(diff_args[k])
        plus = diff_args[:k] + (jnp.asarray(d + eps * t, d.dtype),) + diff_args[k + 1 :]
        minus = diff_args[:k] + (jnp.asarray(d - eps * t, d.dtype),) + diff_args[k + 1 :]
        f_plus, f_minus = jax.device_get((f_jit(*plus), f_jit(*minus)))
        jvp_fd = jax.tree_util.tree_map(
            lambda p, m: (np.asarray(p, np.float64) - np.asarray(m, np.float64)) / (2 * eps),
            f_plus, f_minus,
        )
        res["ip_fd"].append(_tree_vdot(jvp_fd, u_np))
        res["ip_hand"].append(_tree_vdot(t, res["cot_hand"][k]))

    # 1. hand rule vs the autodiff twin, same random cotangent.
    forward_abs_err = float("nan")
    abs_errs = [float("nan")] * len(argnums)
    rel_errs = [float("nan")] * len(argnums)
    autodiff_passed = True
    if f_ref is not None:
        outs = jax.tree_util.tree_leaves(res["out"])
        outs_ref = jax.tree_util.tree_leaves(res["out_ref"])
        forward_abs_err = max(
            _max_abs(np.subtract(a, b, dtype=np.float64)) for a, b in zip(outs, outs_ref)
        )
        out_scale = max(_max_abs(b) for b in outs_ref)
        if not forward_abs_err <= rtol * max(out_scale, 1.0):
            autodiff_passed = False
        for k, (a, r) in enumerate(zip(res["cot_hand"], res["cot_ref"])):
            if a is None or r is None or np.shape(a) != np.shape(r):
                abs_errs[k] = rel_errs[k] = float("inf")
                autodiff_passed = False
                continue
            abs_errs[k] = _max_abs(np.subtract(a, r, dtype=np.float64))
            scale = _max_abs(r)
            rel_errs[k] = abs_errs[k] / max(scale, _TINY) if abs_errs[k] > 0 else 0.0
            if not rel_errs[k] <= rtol:
                autodiff_passed = False

    # 2. hand rule vs central finite differences, one random direction per input.
    fd_errs = []
    fd_ok = True
    for ip_fd, ip_hand in zip(res["ip_fd"], res["ip_hand"]):
        ip_fd, ip_hand = float(ip_fd), float(ip_hand)
        err = abs(ip_hand - ip_fd)
        denom = max(abs(ip_hand), abs(ip_fd))
        fd_errs.append(err / denom if denom > _TINY else err)
        if not fd_errs[-1] <= fd_rtol:
            fd_ok = False
    fd_message = ""
    try:
        jax.test_util.check_grads(
            f_jit, diff_args, order=1, modes=("rev",), atol=fd_rtol, rtol=fd_rtol,
            eps=eps,
        )
    except AssertionError as exc:
        fd_ok = False
        fd_message = _first_lines(str(exc))

    inputs = tuple(
        InputError(arg_names[i], abs_errs[k], rel_errs[k], fd_errs[k])
        for k, i in enumerate(argnums)
    )
    return GradcheckReport(
        op=name,
        config=config,
        inputs=inputs,
        forward_abs_err=forward_abs_err,
        autodiff_passed=autodiff_passed,
        fd_passed=fd_ok,
        fd_message=fd_message,
        passed=autodiff_passed and fd_ok,
    )


# ---------------------------------------------------------------------------------------
# The registry of cases
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One registered check: an op at one point.

    Attributes:
      op: the op's name (looked up in ``funcnn.<module>`` and its twin).
      module: the op module (one of :data:`OP_MODULES`).
      make_args: ``(rng, dtype) -> args``: a point away from kinks and ties.
      kwargs: static keyword settings.
      argnums: differentiable positions (default: every floating array).
      config: description for the table (default built from shapes/kwargs).
      quick: part of the ``--quick`` subset.
    """

    op: str
    module: str
    make_args: Callable[[np.random.Generator, Any], tuple[Any, ...]]
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    argnums: tuple[int, ...] | None = None
    config: str | None = None
    quick: bool = False


def _f(dtype: Any, a: np.ndarray) -> jax.Array:
    return jnp.asarray(a, dtype)


def _away(x: np.ndarray, kinks: Sequence[float], margin: float = 0.1) -> np.ndarray:
    """Move every entry within ``margin`` of a kink to distance ``margin`` from it."""
    x = np.array(x, np.float64)
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, margin, -margin)
    return x


def _distinct(rng: np.random.Generator, shape: tuple[int, ...], gap: float = 0.1) -> np.ndarray:
    """Values with no ties: a random permutation of a grid spaced ``gap`` apart, centred."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * gap).reshape(shape)


def _act(shape: tuple[int, ...] = (4, 5), kinks: Sequence[float] = (), scale: float = 3.0):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        return (_f(dtype, _away(rng.uniform(-scale, scale, shape), kinks)),)

    return make


def _act_param(shape: tuple[int, ...], pshape: tuple[int, ...], kinks: Sequence[float], lo, hi):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        x = _away(rng.uniform(-3, 3, shape), kinks)
        return _f(dtype, x), _f(dtype, rng.uniform(lo, hi, pshape))

    return make


def _activation_cases() -> list[Case]:
    c = [
        Case("logistic", "activations", _act(), quick=True),
        Case("tanh", "activations", _act()),
        Case("hard_logistic", "activations", _act(kinks=(-2.0, 2.0), scale=4.0)),
        Case("hard_tanh", "activations", _act(kinks=(-1.0, 1.0))),
        Case("relu", "activations", _act(kinks=(0.0,)), quick=True),
        Case("relu", "activations", _act((2, 3, 4), kinks=(0.0,))),
        Case("leaky_relu", "activations", _act(kinks=(0.0,))),
        Case("leaky_relu", "activations", _act(kinks=(0.0,)), {"negative_slope": 0.2}),
        Case("prelu", "activations", _act_param((4, 5), (), (0.0,), 0.1, 0.5)),
        Case("prelu", "activations", _act_param((2, 3, 5), (5,), (0.0,), 0.1, 0.5)),
        Case("elu", "activations", _act(kinks=(0.0,))),
        Case("elu", "activations", _act(kinks=(0.0,)), {"alpha": 0.5}),
        Case("swish", "activations", _act()),
        Case("swish", "activations", _act_param((4, 5), (), (), 0.5, 2.0)),
        Case("swish", "activations", _act_param((2, 3, 5), (5,), (), 0.5, 2.0)),
        Case("softplus", "activations", _act()),
        Case("gelu", "activations", _act()),
        Case("gelu", "activations", _act(), {"approximate": True}),
        Case("softmax", "activations", _act(), quick=True),
        Case("softmax", "activations", _act((3, 4, 5)), {"axis": 1}),
        Case("log_softmax", "activations", _act()),
        Case("log_softmax", "activations", _act((4, 5)), {"axis": 0}),
    ]
    return c


def _dense_args(x_shape: tuple[int, ...], d_out: int, bias: bool = True):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        d_in = x_shape[-1]
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)
        b = rng.standard_normal(d_out) if bias else None
        return _f(dtype, x), _f(dtype, w), (None if b is None else _f(dtype, b))

    return make


def _dense_cases() -> list[Case]:
    return [
        Case("dense", "linear", _dense_args((5, 4), 3), quick=True),
        Case("dense", "linear", _dense_args((5, 4), 3, bias=False)),
        Case("dense", "linear", _dense_args((2, 3, 4), 6)),
    ]


def _conv_args(x_shape: tuple[int, ...], k_shape: tuple[int, ...], c_out: int, bias: bool = True):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        c_in = x_shape[-1]
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal((*k_shape, c_in, c_out)) / np.sqrt(np.prod(k_shape) * c_in)
        b = rng.standard_normal(c_out) if bias else None
        return _f(dtype, x), _f(dtype, w), (None if b is None else _f(dtype, b))

    return make


# (stride, padding, dilation): covers every stride 1-3, every padding form, dilation 1-2.
_CONV_GRID_1D = [
    (1, "VALID", 1),
    (1, "SAME", 2),
    (2, "VALID", 2),
    (2, "SAME", 1),
    (3, 1, 1),
    (3, "SAME", 2),
    (1, ((2, 1),), 1),
    (2, ((0, 3),), 2),
    (3, "VALID", 1),
]
_CONV_GRID_2D = [
    (1, "VALID", 1),
    (1, "SAME", 2),
    (2, "SAME", 1),
    (2, 1, 2),
    (3, "VALID", 1),
    (3, "SAME", 1),
    (1, ((1, 2), (0, 1)), 1),
    ((1, 2), ((2, 0), (1, 1)), (2, 1)),
    ((3, 1), 2, (1, 2)),
]


def _conv_cases() -> list[Case]:
    cases = []
    for i, (s, p, d) in enumerate(_CONV_GRID_1D):
        cases.append(
            Case(
                "conv1d",
                "conv",
                _conv_args((2, 11, 3), (3,), 4),
                {"stride": s, "padding": p, "dilation": d},
                quick=(i == 0),
            )
        )
    cases += [
        Case("conv1d", "conv", _conv_args((2, 9, 2), (3,), 3, bias=False),
             {"stride": 2, "padding": "SAME"}),
        # kernel = input size: one output position
        Case("conv1d", "conv", _conv_args((3, 5, 2), (5,), 3), {"padding": "VALID"}),
    ]
    for i, (s, p, d) in enumerate(_CONV_GRID_2D):
        cases.append(
            Case(
                "conv2d",
                "conv",
                _conv_args((2, 8, 7, 2), (3, 3), 3),
                {"stride": s, "padding": p, "dilation": d},
                quick=(i == 0),
            )
        )
    cases += [
        Case("conv2d", "conv", _conv_args((2, 7, 6, 3), (2, 3), 2, bias=False),
             {"stride": 2, "padding": "SAME"}),
        Case("conv2d", "conv", _conv_args((2, 5, 4, 2), (5, 4), 3), {"padding": "VALID"}),
        Case("conv2d", "conv", _conv_args((1, 5, 5, 1), (1, 1), 2), {"stride": 2}),
    ]
    return cases


def _pool_args(x_shape: tuple[int, ...]):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        return (_f(dtype, _distinct(rng, x_shape)),)

    return make


def _pool_cases() -> list[Case]:
    cases = []
    grid_1d = [
        {"window": 2},
        {"window": 3, "stride": 1},  # overlapping windows
        {"window": 3, "stride": 2, "padding": "SAME"},
        {"window": 2, "stride": 3, "padding": 1},
        {"window": 4, "stride": 2, "padding": ((1, 2),)},
    ]
    grid_2d = [
        {"window": 2},
        {"window": 3, "stride": 1},  # overlapping windows
        {"window": (2, 3), "stride": (1, 2), "padding": "SAME"},
        {"window": 3, "stride": 2, "padding": 1},
        {"window": (3, 2), "stride": 3, "padding": ((1, 1), (0, 1))},
    ]
    for kind in ("max", "avg"):
        for i, kw in enumerate(grid_1d):
            x1 = _pool_args((2, 10, 3))
            cases.append(Case(f"{kind}_pool1d", "pooling", x1, kw, quick=i == 1))
        for i, kw in enumerate(grid_2d):
            x2 = _pool_args((2, 7, 8, 2))
            cases.append(Case(f"{kind}_pool2d", "pooling", x2, kw, quick=i == 1))
    cases += [
        Case("avg_pool1d", "pooling", _pool_args((2, 10, 3)),
             {"window": 3, "stride": 2, "padding": "SAME", "count_include_pad": False}),
        Case("avg_pool2d", "pooling", _pool_args((2, 7, 8, 2)),
             {"window": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
        Case("avg_pool2d", "pooling", _pool_args((2, 6, 5, 2)),
             {"window": (3, 2), "stride": 1, "padding": ((2, 0), (1, 1)),
              "count_include_pad": False}),
    ]
    return cases


def _regression(target: str):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        pred = rng.standard_normal((4, 3)) * 2
        if target == "real":
            y = rng.standard_normal((4, 3))
        else:  # probabilities in (0, 1)
            y = rng.uniform(0.05, 0.95, (4, 3))
        return _f(dtype, pred), _f(dtype, y)

    return make


def _classification(labels: str, n: int = 4, k: int = 5):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        logits = rng.standard_normal((n, k)) * 2
        if labels == "int":
            y = jnp.asarray(rng.integers(0, k, n), jnp.int32)
        else:
            y = _f(dtype, rng.dirichlet(np.ones(k), n))
        return _f(dtype, logits), y

    return make


def _loss_cases() -> list[Case]:
    # Targets are constants by design (the hand rules return a zero cotangent for them and
    # the twins stop their gradient), so only the prediction/logits are differentiated.
    p = (0,)
    return [
        Case("mse", "losses", _regression("real"), argnums=p, quick=True),
        Case("logistic_mse", "losses", _regression("prob"), argnums=p),
        Case("binary_cross_entropy", "losses", _regression("prob"), argnums=p),
        Case("softmax_cross_entropy", "losses", _classification("int"), argnums=p, quick=True),
        Case("softmax_cross_entropy", "losses", _classification("rows"), argnums=p),
        Case("softmax_mse", "losses", _classification("int"), argnums=p),
        Case("softmax_mse", "losses", _classification("rows"), argnums=p),
    ]


def _bn_args(shape: tuple[int, ...]):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        c = shape[-1]
        x = rng.standard_normal(shape) * 2 + 1
        gamma = rng.uniform(0.5, 1.5, c)
        beta = rng.standard_normal(c)
        return _f(dtype, x), _f(dtype, gamma), _f(dtype, beta)

    return make


def _bn_inference_args(shape: tuple[int, ...]):
    def make(rng: np.random.Generator, dtype: Any) -> tuple[Any, ...]:
        c = shape[-1]
        x = rng.standard_normal(shape)
        mean = rng.standard_normal(c) * 0.1
        var = rng.uniform(0.5, 2.0, c)
        gamma = rng.uniform(0.5, 1.5, c)
        beta = rng.standard_normal(c)
        return tuple(_f(dtype, a) for a in (x, mean, var, gamma, beta))

    return make


def _norm_cases() -> list[Case]:
    return [
        Case("batch_norm", "normalization", _bn_args((6, 4)), quick=True),
        Case("batch_norm", "normalization", _bn_args((3, 4, 4, 2))),
        Case("batch_norm", "normalization", _bn_args((5, 3)), {"eps": 1e-3}),
        Case("batch_norm_inference", "normalization", _bn_inference_args((5, 3))),
    ]


#: Every registered case: all ops, over a representative grid of shapes and settings.
CASES: tuple[Case, ...] = tuple(
    _activation_cases() + _dense_cases() + _conv_cases() + _pool_cases() + _loss_cases()
    + _norm_cases()
)


def check_case(case: Case, *, seed: int = 0, dtype: Any = None) -> GradcheckReport:
    """Run :func:`check` on one registered case; any exception becomes a failing report.

    ``dtype`` defaults to float64 when x64 is enabled, else float32.
    """
    if dtype is None:
        dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    config = case.config
    try:
        rng = np.random.default_rng(seed)
        args = case.make_args(rng, dtype)
        hand_mod = importlib.import_module(f"funcnn.{case.module}")
        ref_mod = importlib.import_module(f"funcnn.reference.{case.module}")
        pair = (getattr(hand_mod, case.op), getattr(ref_mod, case.op))
        report = check(
            pair, args, kwargs=case.kwargs, argnums=case.argnums, config=config, seed=seed
        )
        return dataclasses.replace(report, op=case.op)
    except Exception as exc:  # a missing op, a crash: report it as a failure, keep going
        if config is None:
            config = " ".join(f"{k}={v!r}" for k, v in case.kwargs.items())
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f" ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
        return GradcheckReport(
            op=case.op,
            config=config,
            inputs=(),
            forward_abs_err=float("nan"),
            autodiff_passed=False,
            fd_passed=False,
            fd_message="",
            passed=False,
            error=f"{type(exc).__name__}: {exc}{where}",
        )


def run(
    cases: Sequence[Case] | None = None,
    *,
    op: str | Sequence[str] | None = None,
    quick: bool = False,
    seed: int = 0,
    dtype: Any = None,
    callback: Callable[[GradcheckReport], None] | None = None,
) -> list[GradcheckReport]:
    """Check many cases (default :data:`CASES`).

    Args:
      cases: the cases to run (default: every registered case).
      op: keep only cases whose op is this name (or one of these names); a name that is a
        module (``"conv"``, ``"pooling"``, ...) selects every op of that module.
      quick: keep only the ``quick`` subset (about one case per op family).
      seed: seeds the points, cotangents and tangents.
      dtype: floating dtype of the points (default float64 if x64 is enabled).
      callback: called with each report as soon as it is ready (e.g. to print it).

    Returns:
      One :class:`GradcheckReport` per case, in order.
    """
    cases = list(CASES if cases is None else cases)
    if op is not None:
        names = {op} if isinstance(op, str) else set(op)
        cases = [c for c in cases if c.op in names or c.module in names]
    if quick:
        cases = [c for c in cases if c.quick]
    reports = []
    for case in cases:
        report = check_case(case, seed=seed, dtype=dtype)
        reports.append(report)
        if callback is not None:
            callback(report)
    return reports


# ---------------------------------------------------------------------------------------
# Table and command line
# ---------------------------------------------------------------------------------------

_COLUMNS = ("op", "config", "vs autodiff (rel / abs)", "vs finite diff (rel)", "result")


def _fmt(v: float) -> str:
    return "-" if np.isnan(v) else f"{v:.1e}"


def _row(r: GradcheckReport) -> tuple[str, ...]:
    if r.error:
        return (r.op, r.config, "error", "-", "FAIL  " + r.error)
    ad = f"{_fmt(r.max_rel_err)} / {_fmt(r.max_abs_err)}"
    fd = _fmt(r.max_fd_rel_err) + ("" if r.fd_passed else " check_grads: FAIL")
    verdict = "PASS" if r.passed else "FAIL"
    if not r.passed and r.fd_message:
        verdict += "  " + r.fd_message[:200]
    return (r.op, r.config, ad, fd, verdict)


_WIDTHS = (21, 80, 23, 20)


def _line(cells: Sequence[str]) -> str:
    head = [c if len(c) <= w else c[: w - 1] + "~" for c, w in zip(cells[:-1], _WIDTHS)]
    return "  ".join(c.ljust(w) for c, w in zip(head, _WIDTHS)) + "  " + cells[-1]


def format_table(reports: Sequence[GradcheckReport]) -> str:
    """A plain-text table, one row per report, and a summary line."""
    lines = [_line(_COLUMNS), _line(["-" * w for w in _WIDTHS] + ["------"])]
    lines += [_line(_row(r)) for r in reports]
    lines.append(_summary(reports))
    return "\n".join(lines)


def _summary(reports: Sequence[GradcheckReport], seconds: float | None = None) -> str:
    failed = [r for r in reports if not r.passed]
    took = "" if seconds is None else f" in {seconds:.1f}s"
    status = "all passed" if not failed else f"{len(failed)} FAILED"
    return f"gradcheck: {len(reports)} cases, {len(reports) - len(failed)} passed, {status}{took}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m funcnn.gradcheck``: check every registered case in float64.

    Prints one row per case (op, config, max relative / absolute error vs autodiff,
    max directional error vs finite differences, PASS/FAIL) and a summary line; returns
    (exits with) 1 if any case fails, else 0.
    """
    parser = argparse.ArgumentParser(
        prog="python -m funcnn.gradcheck",
        description="Check every hand-written backward rule against jax.grad of its autodiff "
        "twin and against central finite differences, in float64.",
    )
    parser.add_argument(
        "--op", action="append", help="only this op (or op module, e.g. 'conv'); repeatable"
    )
    parser.add_argument("--quick", action="store_true", help="about one case per op family")
    parser.add_argument("--seed", type=int, default=0, help="seed for points and directions")
    ns = parser.parse_args(argv)

    jax.config.update("jax_enable_x64", True)
    # Each case compiles a few tiny programs; XLA's optimizations cost more than they save.
    # (Restored afterwards, so calling main() in-process leaves the config as it was.)
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        start = time.perf_counter()
        print(_line(_COLUMNS))
        print(_line(["-" * w for w in _WIDTHS] + ["------"]), flush=True)
        reports = run(
            op=ns.op, quick=ns.quick, seed=ns.seed, dtype=jnp.float64,
            callback=lambda r: print(_line(_row(r)), flush=True),
        )
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    if not reports:
        print(f"gradcheck: no case matches --op {ns.op}", file=sys.stderr)
        return 1
    print(_summary(reports, time.perf_counter() - start))
    return 0 if all(r.passed for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
