"""Autotune of ``algorithm="auto"`` for convolutions on CPU: measure once per shape, keep it.

Which algorithm of :data:`funcnn.conv.CONV_ALGORITHMS` computes a sum fastest depends on the
CPU (vector width, caches, cores) as much as on the shape: on one CPU 2x2 blocks win a 3x3
kernel's forward with 8 input channels, on another the plain XLA convolution does. So on
CPU, the first time :func:`funcnn.conv2d` / :func:`funcnn.conv1d` is traced for a shape with
``algorithm="auto"``, each of its three sums (forward, dx, dw) is timed alone under every
algorithm that computes it, on random arrays of that shape and dtype; the fastest per sum
is then verified against the fixed thresholds' plan with the three sums run together
(interleaved rounds, medians, repeated until the decision is stable) and kept only if it
wins by :data:`MIN_GAIN`, else the thresholds' plan is kept. The choice is held in memory and in a JSON file per CPU model,
core count and jax version (:func:`cache_file`), so later runs on the machine reuse it. A measurement costs a few
compilations (about a second or two per shape for LeNet-sized layers); the choice changes
the order of additions only, never the maths.

A plan that wins its three sums can still lose inside a whole step (fusion, caches, the
layouts of the layers around it), so the programs that train (the jitted step of
:func:`funcnn.train.make_train_step`, the training engine's chunk) are judged as a whole
(:func:`judge`): when a program runs measured plans that differ from the thresholds' and were
not judged before, it is compiled a second time with those convolutions on the thresholds'
plans, both programs are timed in interleaved rounds (as above), and the measured plans are
kept only if the program wins by :data:`MIN_GAIN`; otherwise the thresholds' plans replace
them, in memory and in the cache, and the program runs the thresholds' executable. A verdict
is cached with the choice, so a later run neither measures nor judges again
(:func:`verdicts` lists this process's).

Shapes traced in programs that run rarely (evaluations, diagnostics probes: :func:`untimed`)
are not measured: they reuse a measured choice or take the thresholds'.

Turn it off with ``FUNCNN_CONV_AUTOTUNE=0`` (the test suite does, for reproducible
programs): ``auto`` then uses the fixed thresholds :data:`funcnn.conv.AUTO_THRESHOLDS`.
``FUNCNN_CONV_AUTOTUNE_DIR`` moves the cache (default ``$FUNCNN_CACHE/conv-autotune``, else
``~/.cache/funcnn/conv-autotune``). :func:`tuned` lists what this process measured or loaded.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import logging
import math
import os
import platform
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops.conv_algorithms import AUTOTUNER, FORWARD, threshold_parts
from funcnn.conv import INPUT_GRAD, KERNEL_GRAD

__all__ = ["ENV", "enabled", "disabled", "untimed", "forward_only", "members", "cpu_model", "cpu_id", "cache_file",
           "candidates", "measure", "judge", "JudgedJit", "tuned", "verdicts", "clear"]

ENV = "FUNCNN_CONV_AUTOTUNE"
_log = logging.getLogger("funcnn")
_lock = threading.RLock()
_memory: dict[str, tuple[str, str, str]] = {}
_loaded: dict[str, bool] = {}
_off_depth = [0]  # > 0 inside ``with disabled():``
_local = threading.local()  # .untimed > 0 inside ``with untimed():`` (per thread)
# Keys whose kept plan was judged on a whole program (:func:`judge`); with the cache file's.
_judged: set[str] = set()
_verdicts: list[dict[str, Any]] = []

#: The fused tap sum unrolls KH*KW*C_in products; past this many it is known to lose by far
#: (a 3x3 32 -> 32 forward measured ~60x slower than textbook; BENCHMARKS.md), so it is
#: not even timed.
MAX_TAP_PRODUCTS = 200
#: The patch-scatter dx materializes KH*KW*C_in values per output pixel; not timed past this.
MAX_SCATTER_C_IN = 16
#: The patch matrix of the "patches" forward and dw holds KH*KW*C_in values per output pixel
#: (KH*KW copies of the input); not timed past this many.
MAX_PATCH_K = 1024


def enabled() -> bool:
    """Whether ``auto`` measures on CPU (``FUNCNN_CONV_AUTOTUNE`` unset, or not 0/false/off/no,
    and not inside :func:`disabled`)."""
    if _off_depth[0] > 0:
        return False
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "off", "no")


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within this block ``auto`` uses the fixed thresholds and measures nothing (as with
    ``FUNCNN_CONV_AUTOTUNE=0``); :mod:`funcnn.gradcheck` checks under it, so a check times
    no algorithm and its ``auto`` rows name the same plan on every machine."""
    with _lock:
        _off_depth[0] += 1
    try:
        yield
    finally:
        with _lock:
            _off_depth[0] -= 1


@contextlib.contextmanager
def untimed() -> Iterator[None]:
    """Tracing in this block (this thread) builds convolutions that run too rarely to be
    worth timing: an evaluation's forward (whose backward sums never run), a diagnostics
    probe run at each evaluation. ``auto`` then uses a choice already measured for the
    shape, else the thresholds', and measures nothing (timing three sums for a shape that
    runs a handful of times is wasted start-up). :func:`funcnn.train.make_eval_fn` traces its
    model under it, and the training engine its diagnostics hook, so neither the evaluation
    batch shapes nor the probe batch of a training run are timed."""
    depth = getattr(_local, "untimed", 0)
    _local.untimed = depth + 1
    try:
        yield
    finally:
        _local.untimed = depth


#: The same block as :func:`untimed`, named for programs that run forward only.
forward_only = untimed


@contextlib.contextmanager
def members(n: int) -> Iterator[None]:
    """Tracing in this block (this thread) builds convolutions that run vmapped over ``n``
    grid members (the training engine sets it around its vmapped programs): ``auto`` then
    times the candidates vmapped over ``n`` members, as the program runs them, and keeps the
    choice under a key of its own. Under vmap the fastest order of additions is not the one
    alone (an XLA convolution with a member-batched kernel becomes a grouped convolution)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"conv_autotune.members: n must be an int >= 1, got {n!r}")
    before = getattr(_local, "members", 1)
    _local.members = n
    try:
        yield
    finally:
        _local.members = before


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what :mod:`platform` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def cpu_id() -> str:
    """The CPU model, its core count and the jax version: what a measurement is valid for."""
    return f"{cpu_model()}, {os.cpu_count()} cores, jax {jax.__version__}"


def cache_file() -> Path:
    """The JSON file holding this CPU's measured choices."""
    folder = os.environ.get(f"{ENV}_DIR", "")
    if not folder:
        base = os.environ.get("FUNCNN_CACHE", "") or os.path.join(os.path.expanduser("~"), ".cache", "funcnn")
        folder = os.path.join(base, "conv-autotune")
    name = re.sub(r"[^A-Za-z0-9.]+", "-", cpu_id()).strip("-")
    return Path(folder) / f"{name}.json"


def candidates(part: str, w_shape, strides, dilations) -> tuple[str, ...]:
    """The algorithms timed for ``part`` ("forward", "input_grad", "kernel_grad")."""
    kh, kw, c_in, _ = w_shape
    s2d = all(s == 1 for s in strides) and all(d == 1 for d in dilations)
    out = ["textbook"]
    if part == "forward" and kh * kw * c_in <= MAX_TAP_PRODUCTS:
        out.append("taps")
    if part == "input_grad" and c_in <= MAX_SCATTER_C_IN:
        out.append("taps")
    if part in ("forward", "kernel_grad") and kh * kw * c_in <= MAX_PATCH_K:
        out.append("patches")
    if s2d:
        out.append("space_to_depth")
    return tuple(out)


def _time_call(fn: Callable[..., Any], args: tuple, reps: int = 3) -> float:
    """Seconds of one call of the jitted ``fn`` (compiled first): the best of ``reps``."""
    jax.block_until_ready(fn(*args))
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def _inputs(x_shape, w_shape, strides, pads, dilations, dtype, n: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Random ``x``, ``w`` and error map ``g`` of one convolution's shapes (made once per
    shape); with ``n > 1`` stacked for ``n`` members (a leading member axis)."""
    rng = np.random.default_rng(0)
    lead = (n,) if n > 1 else ()

    def put(a: np.ndarray) -> jax.Array:  # converted on the host: no XLA program per shape
        return jax.device_put(np.asarray(a, jnp.dtype(dtype)))

    x = put(rng.standard_normal(lead + tuple(x_shape)))
    w = put(rng.standard_normal(lead + tuple(w_shape)) / math.sqrt(math.prod(w_shape[:3])))
    y_shape = jax.eval_shape(lambda x, w: FORWARD["textbook"](x, w, strides, pads, dilations, None),
                             jax.ShapeDtypeStruct(tuple(x_shape), dtype), jax.ShapeDtypeStruct(tuple(w_shape), dtype)).shape
    return x, w, put(rng.standard_normal(lead + tuple(y_shape)))


def _jit(f: Callable[..., Any], x: jax.Array) -> Callable[..., Any]:
    """``jax.jit(f)``, vmapped over the member axis when the inputs have one (NHWC + 1)."""
    return jax.jit(jax.vmap(f) if x.ndim == 5 else f)


def _candidate(part, name, inputs, strides, pads, dilations) -> tuple[Callable[..., Any], tuple]:
    """``(jitted sum, its arguments)``: one sum (``part``) by the algorithm ``name`` on
    ``inputs = (x, w, g)`` (vmapped when they carry a member axis)."""
    x, w, g = inputs
    in_sizes, k_sizes = x.shape[-3:-1], w.shape[-4:-2]
    if part == "forward":
        return _jit(lambda x, w: FORWARD[name](x, w, strides, pads, dilations, None), x), (x, w)
    if part == "input_grad":
        return _jit(lambda g, w: INPUT_GRAD[name](g, w, in_sizes, strides, pads, dilations, None), x), (g, w)
    return _jit(lambda x, g: KERNEL_GRAD[name](x, g, k_sizes, strides, pads, dilations, None), x), (x, g)


def _candidate_key(part, name, inputs, strides, pads, dilations) -> tuple:
    return (part, name, tuple(a.shape for a in inputs), str(inputs[0].dtype), tuple(strides),
            tuple(map(tuple, pads)), tuple(dilations))


# Executables compiled ahead by :func:`_compile_candidates` for the measurement under way.
_ahead: dict[tuple, Any] = {}


def _compile_candidates(cands, inputs, strides, pads, dilations) -> None:
    """Compile every candidate sum of one shape at once, one thread per core (XLA compiles
    outside Python's lock), before they are timed one after another."""

    def one(pn):
        f, args = _candidate(*pn, inputs, strides, pads, dilations)
        return f.lower(*args).compile()

    workers = max(1, min(len(cands), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="funcnn-autotune") as pool:
        for pn, exe in zip(cands, pool.map(one, cands)):
            _ahead[_candidate_key(*pn, inputs, strides, pads, dilations)] = exe


def _time_candidate(part, name, inputs, strides, pads, dilations) -> float:
    """Seconds of one sum (``part``) by the algorithm ``name`` on ``inputs = (x, w, g)``
    (vmapped when they carry a member axis): compiled (ahead, where it was), then timed."""
    f, args = _candidate(part, name, inputs, strides, pads, dilations)
    exe = _ahead.pop(_candidate_key(part, name, inputs, strides, pads, dilations), None)
    return _time_call(exe if exe is not None else f, args)


#: The timer :func:`measure` uses: ``(part, name, (x, w, g), strides, pads, dilations) ->
#: seconds``. Replaceable (tests inject a fake one).
TIMER: Callable[..., float] = _time_candidate


@functools.lru_cache(maxsize=64)
def _plan_program(parts, in_sizes, k_sizes, strides, pads, dilations, members: bool) -> Callable[..., Any]:
    """The jitted three sums of one plan (one function per plan and shape, so the rounds of
    :func:`measure` compile each plan once)."""
    fwd, dx, dw = parts

    def step(x, w, g):
        return (FORWARD[fwd](x, w, strides, pads, dilations, None),
                INPUT_GRAD[dx](g, w, in_sizes, strides, pads, dilations, None),
                KERNEL_GRAD[dw](x, g, k_sizes, strides, pads, dilations, None))

    return jax.jit(jax.vmap(step) if members else step)


def _time_plan(parts, inputs, strides, pads, dilations, reps: int = 3) -> float:
    """Seconds of the three sums of one convolution (forward, dx, dw) run together, as a
    training step runs them, under the algorithms ``parts``: the best of ``reps``."""
    x, w, g = inputs
    fn = _plan_program(tuple(parts), tuple(x.shape[-3:-1]), tuple(w.shape[-4:-2]), tuple(strides),
                       tuple(map(tuple, pads)), tuple(dilations), x.ndim == 5)
    return _time_call(fn, (x, w, g), reps)


#: The timer of a whole plan: ``(parts, (x, w, g), strides, pads, dilations) -> seconds``.
#: Replaceable (tests inject a fake one).
PLAN_TIMER: Callable[..., float] = _time_plan
#: A measured plan replaces the thresholds' only when the three sums run together are at
#: least this much faster (a choice within the noise is not worth a program that differs).
MIN_GAIN = 0.05
#: Rounds of the thresholds' plan against the measured one, interleaved (A B A B ...); the
#: medians decide, so one slow round (another process, a frequency change) does not.
VERIFY_ROUNDS = 3
#: Then more rounds until the decision is stable (the running medians after two rounds in a
#: row decide alike), at most this many in all; a decision still changing then keeps the
#: thresholds' plan (a choice that cannot be shown to win is not kept).
MAX_VERIFY_ROUNDS = 9


def _rounds(time_base: Callable[[], float], time_new: Callable[[], float]) -> tuple[bool, dict[str, Any]]:
    """Interleaved rounds (base, new, base, new, ...), at least :data:`VERIFY_ROUNDS`, until
    two running-median decisions in a row agree (at most :data:`MAX_VERIFY_ROUNDS`). Returns
    ``(new wins, info)``: the new one wins only when the decision settled and its median
    beats the base's by :data:`MIN_GAIN`."""
    a: list[float] = []
    b: list[float] = []
    wins: list[bool] = []
    while len(a) < MAX_VERIFY_ROUNDS and not (len(wins) >= 2 and wins[-1] == wins[-2]):
        a.append(time_base())
        b.append(time_new())
        if len(a) >= VERIFY_ROUNDS:
            wins.append(bool(np.median(b) < (1.0 - MIN_GAIN) * np.median(a)))
    stable = len(wins) >= 2 and wins[-1] == wins[-2]
    return stable and wins[-1], {"thresholds_s": float(np.median(a)), "measured_s": float(np.median(b)),
                                 "rounds": len(a), "stable": stable}


def measure(x_shape, w_shape, strides, pads, dilations, dtype, n: int = 1) -> tuple[tuple[str, str, str], dict[str, Any]]:
    """Time every candidate of each sum, then verify the fastest per sum against the fixed
    thresholds' plan with the three sums run together: the measured plan is kept only when
    it wins by :data:`MIN_GAIN` in the medians of interleaved rounds, at least
    :data:`VERIFY_ROUNDS`, repeated until two rounds in a row decide alike (at most
    :data:`MAX_VERIFY_ROUNDS`; a decision that never settles keeps the thresholds).
    A sum timed alone can mispredict the step (caches, fusion, the other sums' layouts), and
    a choice that loses to the thresholds is never returned (so never cached).

    Returns ``(plan, times)``: ``times`` has each sum's candidates (none for a sum with one
    candidate: it is not timed) and, when the plans
    differed, ``"verify"`` with both plans' median seconds and which one was kept. ``n > 1``:
    every timing runs vmapped over ``n`` members (see :func:`members`).
    """
    # a sum with one candidate has no choice to make: it is not compiled or timed alone
    timed = {part: candidates(part, w_shape, strides, dilations) for part in ("forward", "input_grad", "kernel_grad")}
    base = threshold_parts(w_shape, strides, dilations)
    if all(len(names) == 1 for names in timed.values()) and tuple(n[0] for n in timed.values()) == base:
        return base, {part: {} for part in timed}  # nothing to choose, nothing to verify
    inputs = _inputs(x_shape, w_shape, strides, pads, dilations, dtype, n)
    times: dict[str, Any] = {}
    best = []
    try:
        if TIMER is _time_candidate:  # the real timer: compile every candidate first, side by side
            _compile_candidates([(part, name) for part, names in timed.items() if len(names) > 1 for name in names],
                                inputs, strides, pads, dilations)
        for part, names in timed.items():
            if len(names) == 1:
                times[part] = {}
                best.append(names[0])
                continue
            times[part] = {name: TIMER(part, name, inputs, strides, pads, dilations) for name in names}
            best.append(min(times[part], key=times[part].get))
    finally:
        _ahead.clear()  # executables of this shape only: none outlives its measurement
    measured = (best[0], best[1], best[2])
    if measured == base:
        return measured, times
    wins, info = _rounds(lambda: PLAN_TIMER(base, inputs, strides, pads, dilations),
                         lambda: PLAN_TIMER(measured, inputs, strides, pads, dilations))
    keep = measured if wins else base
    times["verify"] = {"thresholds": list(base), "measured": list(measured), **info, "kept": list(keep)}
    return keep, times


def _time_program(label: str, call: Callable[[], Any]) -> float:
    """Seconds of one ``call()`` (one run of a compiled program, waited for)."""
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - t0


#: The timer of a whole program in :func:`judge`: ``(label, call) -> seconds`` of one
#: ``call()``; ``label`` is ``"thresholds"`` or ``"measured"``. Replaceable (tests inject a
#: fake one).
STEP_TIMER: Callable[[str, Callable[[], Any]], float] = _time_program


@contextlib.contextmanager
def _recording(into: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]]) -> Iterator[None]:
    """Tracing in this block (this thread) notes in ``into`` every ``auto`` convolution that
    runs a plan not judged yet and differing from the thresholds': key -> (plan, thresholds')."""
    before = getattr(_local, "record", None)
    _local.record = into
    try:
        yield
    finally:
        _local.record = before


@contextlib.contextmanager
def _forced(keys: Any) -> Iterator[None]:
    """Tracing in this block (this thread) gives the convolutions of ``keys`` the thresholds' plans."""
    before = getattr(_local, "forced", frozenset())
    _local.forced = frozenset(keys) | before
    try:
        yield
    finally:
        _local.forced = before


def judge(build: Callable[[], Any], run: Callable[[Any], Any]) -> Any:
    """Build a program and keep its measured convolution plans only if the whole program wins.

    ``build()`` traces and compiles a fresh program (a new trace at every call: tracing is where
    ``auto`` chooses) and returns something ``run`` runs once: ``run(program)`` (it may return
    arrays; they are waited for). When the trace chose, for some convolutions, measured plans
    that differ from the fixed thresholds' and were not judged before, ``build()`` runs again
    with those convolutions on the thresholds' plans, and both programs are timed by
    :data:`STEP_TIMER` in interleaved rounds (:data:`VERIFY_ROUNDS` to
    :data:`MAX_VERIFY_ROUNDS`, until the decision is stable). The measured plans are kept only
    when their program is faster by :data:`MIN_GAIN`; otherwise the thresholds' plans replace
    them in memory and in the cache file, and the thresholds' program is returned. Either way
    the verdict is cached (:func:`verdicts`), so these shapes are not judged again.

    Returns the program to run. Without a measured plan to judge (autotune off, another
    backend, every plan the thresholds' or judged before) this is ``build()``'s, built once.
    The plans change the order of additions only: both programs compute the same maths.
    """
    rec: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {}
    with _recording(rec):
        program = build()
    return _settle(program, rec, build, run)


def _settle(program: Any, rec: dict, build: Callable[[], Any], run: Callable[[Any], Any]) -> Any:
    """:func:`judge` once ``program`` was built and ``rec`` holds the plans its trace chose."""
    if not rec:
        return program
    keys = sorted(rec)
    with _forced(keys):
        base = build()
    jax.block_until_ready(run(program))  # first runs (allocation, caches) are not timed
    jax.block_until_ready(run(base))
    wins, info = _rounds(lambda: STEP_TIMER("thresholds", lambda: run(base)),
                         lambda: STEP_TIMER("measured", lambda: run(program)))
    verdict = {"convolutions": {k: {"measured": list(rec[k][0]), "thresholds": list(rec[k][1])} for k in keys},
               **info, "kept": "measured" if wins else "thresholds"}
    _log.info("funcnn._ops.conv_autotune: whole program %.3g ms with measured plans, %.3g ms with the "
              "thresholds'; kept the %s", 1e3 * info["measured_s"], 1e3 * info["thresholds_s"], verdict["kept"])
    with _lock:
        _judged.update(keys)
        if not wins:
            for k in keys:
                _memory[k] = rec[k][1]
        _verdicts.append(verdict)
        _save(cache_file())
    return program if wins else base


def _fresh(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A new function object calling ``fn`` (jax.jit caches traces per function object)."""
    return functools.wraps(fn)(lambda *args, **kwargs: fn(*args, **kwargs))


class JudgedJit:
    """``jax.jit(fn, **jit_kwargs)`` whose traces are judged as a whole (:func:`judge`).

    Called like the jitted function. A call whose trace chose measured ``auto`` convolution
    plans not judged before (see the module docstring) times that program against the same
    program on the thresholds' plans, on the call's own arguments, and from then on runs the
    winner. Calls from inside another trace are not judged (they have no values to time).
    Other attributes (``lower``, ``trace``, ...) are the current jitted function's.
    """

    def __init__(self, fn: Callable[..., Any], **jit_kwargs: Any) -> None:
        functools.update_wrapper(self, fn)
        self._fn, self._jit_kwargs = fn, jit_kwargs
        self._jitted = jax.jit(fn, **jit_kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        rec: dict = {}
        before = getattr(_local, "record", None)  # _recording(rec), inlined: this runs every step
        _local.record = rec
        try:
            out = self._jitted(*args, **kwargs)
        finally:
            _local.record = before
        if rec and not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs))):
            def build():
                jitted = jax.jit(_fresh(self._fn), **self._jit_kwargs)
                jax.block_until_ready(jitted(*args, **kwargs))  # traced and compiled here
                return jitted

            self._jitted = _settle(self._jitted, rec, build, lambda f: f(*args, **kwargs))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_jitted"], name)


def _algorithms() -> dict[str, list[str]]:
    """The algorithms each sum could be measured under: a cache written with others is stale."""
    return {"forward": sorted(FORWARD), "input_grad": sorted(INPUT_GRAD), "kernel_grad": sorted(KERNEL_GRAD)}


def _load(path: Path) -> None:
    if _loaded.get(str(path)):
        return
    _loaded[str(path)] = True
    try:
        data = json.loads(path.read_text())
        if data.get("algorithms") != _algorithms():
            return  # measured before an algorithm was added (or removed): measure again
        for key, parts in data.get("choices", {}).items():
            if isinstance(parts, list) and len(parts) == 3:
                _memory.setdefault(key, tuple(parts))
        _judged.update(k for k in data.get("judged", []) if isinstance(k, str) and k in _memory)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, AttributeError) as e:  # damaged: measure again, rewrite it
        _log.warning("funcnn._ops.conv_autotune: ignoring unreadable cache %s (%s)", path, e)


def _save(path: Path) -> None:
    """Write every known choice (atomically: a temporary file renamed over the old one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"cpu": cpu_id(), "algorithms": _algorithms(),
                   "choices": {k: list(v) for k, v in sorted(_memory.items())},
                   "judged": sorted(k for k in _judged if k in _memory)}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1)
        os.replace(tmp, path)
    except OSError as e:  # a read-only home: keep the choices for this process only
        _log.warning("funcnn._ops.conv_autotune: cannot write %s (%s); choices kept in memory", path, e)


def _tune(key, x_shape, w_shape, strides, pads, dilations, dtype):
    """The autotuner :func:`funcnn.conv.conv_algorithm` calls for ``auto`` on CPU."""
    if not enabled():
        return None
    with _lock:
        path = cache_file()
        _load(path)
        n = getattr(_local, "members", 1)
        if n > 1:
            key = f"{key} m{n}"
        if key in getattr(_local, "forced", ()):
            return None  # judge(): this program's twin on the thresholds' plans
        if getattr(_local, "untimed", 0):
            return _memory.get(key)  # None: the thresholds
        if key not in _memory:
            _log.info("funcnn._ops.conv_autotune: timing the algorithms of %s (once per CPU; %s)", key, path)
            # The op is usually being traced (under jax.jit, grad, vmap): in this thread every
            # jitted call would be staged into that trace instead of running. JAX's trace
            # state is per thread, so the measurement runs in a thread of its own.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                _memory[key], _ = pool.submit(measure, x_shape, w_shape, strides, pads, dilations, dtype, n).result()
            _save(path)
        plan = _memory[key]
        record = getattr(_local, "record", None)
        if record is not None and key not in _judged:
            base = threshold_parts(w_shape, strides, dilations)
            if tuple(plan) != tuple(base):
                record[key] = (tuple(plan), tuple(base))
        return plan


def tuned() -> dict[str, tuple[str, str, str]]:
    """The choices this process knows: shape key -> (forward, dx, dw) algorithm."""
    with _lock:
        return dict(_memory)


def verdicts() -> list[dict[str, Any]]:
    """The whole-program judgements this process made (:func:`judge`), oldest first: each
    with the convolutions judged (key -> measured and thresholds' plans), both programs'
    median seconds, the rounds, whether the decision settled, and which plans were kept."""
    with _lock:
        return [dict(v) for v in _verdicts]


def clear() -> None:
    """Forget the choices and verdicts held in memory (the cache file stays)."""
    with _lock:
        _memory.clear()
        _loaded.clear()
        _judged.clear()
        _verdicts.clear()


AUTOTUNER[0] = _tune
