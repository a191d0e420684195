"""The gradcheck engine: :func:`check` (one hand rule against ``jax.grad`` of its twin and
central finite differences, at one point), :func:`check_case` and :func:`run` (registered
cases). What is compared, and how, is told in the package docstring (:mod:`funcnn.gradcheck`);
the cases live in :mod:`funcnn.gradcheck.cases`, the table and CLI in :mod:`funcnn.gradcheck.report`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np


__all__ = [
    "OP_MODULES", "Case", "GradcheckReport", "InputError", "all_cases", "check", "check_case",
    "register_case", "run",
]

#: Op modules with hand-written rules; each has a twin ``funcnn.reference.<module>``.
OP_MODULES = ("activations", "linear", "conv", "pooling", "losses", "normalization", "combinators")

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
      worst_index: where hand and twin differ most (``None`` when they agree within
        tolerance or there is no twin); the fields below describe that entry.
      input_value: the input's value there.
      hand_value, twin_value: the two cotangents there.
      fd_value: the central finite difference of ``<u, f>`` along that one entry.
    """

    name: str
    max_abs_err: float
    max_rel_err: float
    fd_rel_err: float
    worst_index: tuple[int, ...] | None = None
    input_value: float = float("nan")
    hand_value: float = float("nan")
    twin_value: float = float("nan")
    fd_value: float = float("nan")

    @property
    def worst(self) -> str:
        """``x[2, 3] = -1.5: hand 0, twin 0.31, fd 0.31`` (``""`` without a worst entry)."""
        if self.worst_index is None:
            return ""
        idx = ", ".join(str(i) for i in self.worst_index)
        return (f"{self.name}[{idx}] = {self.input_value:.4g}: hand {self.hand_value:.4g}, "
                f"twin {self.twin_value:.4g}, fd {self.fd_value:.4g}")


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
      algorithm: for ops with more than one algorithm (convolution, pooling), the one each
        sum ran (e.g. ``"auto(fwd=s2d dx=taps dw=s2d)"``); ``""`` otherwise.
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
    algorithm: str = ""

    @property
    def reason(self) -> str:
        """Why the row failed, in one line (``""`` when it passed)."""
        if self.passed:
            return ""
        if self.error:
            return self.error
        worst = [e.worst for e in self.inputs if e.worst]
        if worst:
            return "; ".join(worst)
        if not self.fd_passed:
            bad = [f"{e.name}: directional fd rel err {e.fd_rel_err:.1e}" for e in self.inputs]
            return "; ".join(bad) + (f" | {self.fd_message}" if self.fd_message else "")
        return f"forward differs from the twin by {self.forward_abs_err:.3g}"

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
        from funcnn._ops import registry

        if registry.is_registered(op):
            entry = registry.get_activation(op)
            return op, entry.hand, entry.reference
        for mod in OP_MODULES:
            try:
                hand_mod = importlib.import_module(f"funcnn.{mod}")
            except ModuleNotFoundError:
                continue
            if hasattr(hand_mod, op):
                ref_mod = importlib.import_module(f"funcnn.reference.{mod}")
                return op, getattr(hand_mod, op), getattr(ref_mod, op)
        raise ValueError(
            f"gradcheck.check: unknown op {op!r}; expected a registered activation, the name of an op in "
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


def _worst_entry(
    f: Callable[..., Any], diff: tuple[Any, ...], k: int, a: Any, r: Any, u: Any, eps: float
) -> dict[str, Any]:
    """The entry of input ``k`` where hand (``a``) and twin (``r``) differ most, with the
    input's value, both cotangents and the central finite difference of ``<u, f>`` there."""
    err = np.abs(np.subtract(a, r, dtype=np.float64))
    if err.size == 0:
        return {}
    flat = int(np.nanargmax(np.where(np.isnan(err), np.inf, err)))
    idx = tuple(int(i) for i in np.unravel_index(flat, err.shape))
    d = np.array(diff[k])
    e = np.zeros_like(d)
    e[idx] = eps
    plus = diff[:k] + (jnp.asarray(d + e, d.dtype),) + diff[k + 1 :]
    minus = diff[:k] + (jnp.asarray(d - e, d.dtype),) + diff[k + 1 :]
    f_plus, f_minus = jax.device_get((f(*plus), f(*minus)))
    fd = (_tree_vdot(f_plus, u) - _tree_vdot(f_minus, u)) / (2 * eps)
    return {
        "worst_index": idx,
        "input_value": float(d[idx]),
        "hand_value": float(np.asarray(a, np.float64)[idx]),
        "twin_value": float(np.asarray(r, np.float64)[idx]),
        "fd_value": float(fd),
    }


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
    worst: dict[int, dict[str, Any]] = {}
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
                worst[k] = _worst_entry(f_jit, diff_args, k, a, r, u_np, eps)

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
        InputError(arg_names[i], abs_errs[k], rel_errs[k], fd_errs[k], **worst.get(k, {}))
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
# A registered case and how it is run (the registry itself: funcnn.gradcheck.cases)
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
      algorithm: ``(args, kwargs) -> str``, the algorithm the op runs at this point (for the
        report's ``algorithm``), or ``None``.
      quick: part of the ``--quick`` subset.
      hand, reference: the functions to check (a registered activation's ``op.hand`` and
        ``op.reference``, or a user's pair); ``None`` looks ``op`` up in ``funcnn.<module>`` and
        ``funcnn.reference.<module>``.
    """

    op: str
    module: str
    make_args: Callable[[np.random.Generator, Any], tuple[Any, ...]]
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    argnums: tuple[int, ...] | None = None
    config: str | None = None
    quick: bool = False
    algorithm: Callable[[tuple[Any, ...], Mapping[str, Any]], str] | None = None
    hand: Callable[..., Any] | None = None
    reference: Callable[..., Any] | None = None

    def functions(self) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
        """(hand, twin) of this case."""
        if self.hand is not None:
            return self.hand, self.reference
        hand_mod = importlib.import_module(f"funcnn.{self.module}")
        ref_mod = importlib.import_module(f"funcnn.reference.{self.module}")
        return getattr(hand_mod, self.op), getattr(ref_mod, self.op)


_USER_CASES: list[Case] = []


def register_case(case: Case) -> Case:
    """Add a user's case to every :func:`run` (and ``python -m funcnn.gradcheck --import``).

    Registered activations need none: their cases come from the registry. Use this for any
    other op with a hand rule: ``Case("my_op", "my_module", make_args, hand=my_op,
    reference=my_op_ref)``, ``make_args(rng, dtype) -> args`` drawing a point away from kinks.
    """
    if not isinstance(case, Case):
        raise TypeError(f"register_case: expected a funcnn.gradcheck.Case, got {type(case).__name__}")
    if case.hand is None:
        raise ValueError(f"register_case: case {case.op!r} needs hand= (and reference=) functions")
    _USER_CASES.append(case)
    return case


def all_cases() -> list[Case]:
    """Every case now: the registry's activations, the other built-in ops, the user's cases."""
    from funcnn.gradcheck.cases import activation_cases, op_cases

    return activation_cases() + op_cases() + list(_USER_CASES)



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
        pair = case.functions()
        if config is None:
            floats = tuple(i for i, a in enumerate(args) if _is_float_array(a))
            config = _describe(args, _arg_names(pair[0], len(args)), case.kwargs,
                               case.argnums if case.argnums is not None else floats)
        algorithm = "" if case.algorithm is None else case.algorithm(args, case.kwargs)
        report = check(
            pair, args, kwargs=case.kwargs, argnums=case.argnums, config=config, seed=seed
        )
        return dataclasses.replace(report, op=case.op, algorithm=algorithm)
    except Exception as exc:  # a missing op, a wrong-shaped backward, a crash: a failing row
        if config is None:
            config = " ".join(f"{k}={v!r}" for k, v in case.kwargs.items())
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/jax/" not in f.filename]
        last = (frames or traceback.extract_tb(exc.__traceback__))[-1]
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
            error=f"{type(exc).__name__}: {_first_lines(str(exc), 1)}{where}",
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
    """Check many cases (default :func:`all_cases`: every registered case, user ops included).

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
    if cases is None:
        cases = all_cases()
    cases = list(cases)
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


