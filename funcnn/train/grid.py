"""``run_grid``: train every member of an ablation grid, vmapping members that share structure.

A grid is a list of configs (dicts), usually the product of value lists::

    grid = {"activation": ["relu", "tanh"], "lr": [1e-3, 1e-2], "seed": [0, 1, 2]}

    def build(cfg):
        model = serial(Dense(64), Activation(cfg["activation"]), Dense(10))
        return TrainSpec(model, "softmax_cross_entropy", optax.adam(cfg["lr"]))

    result = run_grid(build, grid, (x, y), test_data=(xt, yt), epochs=5)
    result.summary()        # mean/std over seeds per (activation, lr)

**Batched vs static keys.** ``seed`` and every key whose values are all floats (learning
rates, init scales, slopes, ...) are *batched*: members that agree on all the other
(*static*) keys form a group that runs as ONE jitted, vmapped program (parameters,
optimizer states, keys and the batched values stacked on a member axis). Each distinct
combination of static values (e.g. the activation, or an int width) is compiled once.
Override the rule with ``batched=("lr", "seed")``.

``build(cfg)`` is called twice per member kind:

- concretely, once per member, with plain Python values: its ``model.init`` (or
  ``TrainSpec.init``) and ``optimizer.init`` produce that member's starting point, so an
  init scale can be used anywhere there;
- traced, once per group, inside the compiled step: batched values arrive as scalar JAX
  arrays (their members' values), so ``optax.adam(cfg["lr"])`` or
  ``LeakyRelu(cfg["slope"])`` give every member its own value. Using a batched value in
  Python control flow there (``if cfg["lr"] > 0.1``) is an error telling you to make the
  key static.

**Choices.** Keys listed in ``choices=`` (an activation name, the rule, a cost function:
alternatives of the same shape) are neither static nor vmapped values: members that differ
only in them share ONE compiled program. ``build`` receives a :class:`funcnn.Choice` for such
a key (the options in order of first appearance, the member's pick as the index: a Python
int in the concrete calls, a traced int inside the program) and must hand it to layers that
take one (``Activation(choice)``, ``mlp(..., activation=choice, rule=choice)``,
``Choice.switch`` for anything else). Members are ordered so that each combination of
choices is a contiguous block; equal blocks run one after another inside the program with
the pick unbatched (a real branch, no wasted work); unequal blocks (or a mesh) fall back to
vmapping the pick, where ``lax.switch`` computes every alternative and selects.

**Ahead of time.** :func:`prepare_grid` builds the groups and their programs without running
them; ``PreparedGrid.compile()`` compiles them (``jit.lower().compile()``) and ``.run()``
trains. :func:`run_grids` runs several prepared grids, compiling the next while the current
one trains; :func:`run_grid` is ``prepare_grid(...).run()``.

Divergence: a member whose loss or gradient becomes non-finite is frozen and recorded
(``MemberResult.diverged``); the rest of its group and the other groups go on.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import itertools
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops.host import to_device
from funcnn.nn.choice import Choice
from funcnn.train.engine import CompileAhead, Engine, check_data, check_labels, run_engines
from funcnn.train.engine import init_carry, make_carry, stack_trees, unstack_tree
from funcnn.train.engine.carry import cpu_cores
from funcnn.train.spec import resolve_spec
from funcnn.train.loop import History, history_of, init_member
from funcnn.train.options import TrainOptions, engine_config, make_plan, resolve_options, with_option_keywords

_TRACER_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.TracerArrayConversionError,
)

Config = dict[str, Any]


def expand_grid(grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> list[Config]:
    """The list of configs of a grid.

    A mapping ``{key: [values]}`` gives the Cartesian product (first key varies slowest);
    a sequence of mappings is taken as the explicit list of configs (all with the same keys).
    """
    if isinstance(grid, Mapping):
        keys = list(grid)
        for k in keys:
            v = grid[k]
            if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
                raise TypeError(
                    f"expand_grid: grid[{k!r}] must be a list of values, got {type(v).__name__} "
                    f"({v!r}); write [{v!r}] for a single value"
                )
            if len(v) == 0:
                raise ValueError(f"expand_grid: grid[{k!r}] is empty")
        return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]
    if isinstance(grid, Sequence) and not isinstance(grid, (str, bytes)):
        configs = [dict(c) for c in grid]
        if not configs:
            raise ValueError("expand_grid: the grid is empty")
        keys = set(configs[0])
        for i, c in enumerate(configs):
            if not isinstance(grid[i], Mapping):
                raise TypeError(f"expand_grid: grid[{i}] must be a dict, got {type(grid[i]).__name__}")
            if set(c) != keys:
                raise ValueError(
                    f"expand_grid: config {i} has keys {sorted(c)} but config 0 has {sorted(keys)}"
                )
        return configs
    raise TypeError(f"expand_grid: grid must be a dict of value lists or a list of dicts, got {type(grid).__name__}")


def _is_float(v: Any) -> bool:
    return isinstance(v, (float, np.floating)) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def split_keys(configs: Sequence[Config], batched: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """``(batched_keys, static_keys)`` of a grid (``seed`` is always batched)."""
    keys = list(configs[0])
    if batched is None:
        b = [k for k in keys if k != "seed" and all(_is_float(c[k]) for c in configs)]
    else:
        b = [k for k in batched if k != "seed"]
        for k in b:
            if k not in keys:
                raise ValueError(f"run_grid: batched key {k!r} is not a grid key; grid keys are {keys}")
            bad = [c[k] for c in configs if not _is_number(c[k])]
            if bad:
                raise ValueError(f"run_grid: batched key {k!r} must have numeric values, got {bad[0]!r}")
    if "seed" in keys:
        for c in configs:
            if not isinstance(c["seed"], (int, np.integer)) or isinstance(c["seed"], bool):
                raise TypeError(f"run_grid: seed values must be ints, got {c['seed']!r}")
    return b, [k for k in keys if k not in b and k != "seed"]


def group_slug(static: Mapping[str, Any]) -> str:
    """A file-system-safe name of a group: ``activation=relu,depth=3`` or ``all``."""
    if not static:
        return "all"
    text = ",".join(f"{k}={v}" for k, v in static.items())
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", text)


@dataclasses.dataclass
class MemberResult:
    """One grid member: its config, final params/state, history and divergence."""

    config: Config
    group: str
    params: Any
    state: Any
    history: History
    step: int
    diverged: str | None
    diverged_step: int | None

    @property
    def final(self) -> dict[str, Any]:
        """The last evaluation's scalar metrics."""
        return self.history.final()


@dataclasses.dataclass
class GroupInfo:
    """A compiled group: its static values, its members (indices), trace count, how many
    programs were compiled ahead of time for it and in how many seconds, in how many
    slices its members trained side by side (``TrainOptions.parts``), and when its first
    training chunk was dispatched in this process (``first_step_at``, a
    ``time.perf_counter()`` stamp; None when no step ran here) and the wall seconds its
    training chunks took (``train_seconds``: dispatch to results, evaluations excluded)."""

    name: str
    static: Config
    members: list[int]
    traces: int
    compilations: int = 0
    compile_seconds: float = 0.0
    parts: int = 1
    first_step_at: float | None = None
    train_seconds: float = 0.0


@dataclasses.dataclass
class GridResult:
    """What :func:`run_grid` returns; ``members`` are in grid order."""

    members: list[MemberResult]
    groups: list[GroupInfo]
    batched_keys: list[str]
    static_keys: list[str]
    interrupted: bool
    seconds: float

    def records(self) -> list[dict[str, Any]]:
        """``[{"config", "metrics", "diverged"}]``: the input of :func:`funcnn.train.summarize`."""
        return [{"config": m.config, "metrics": m.final, "diverged": m.diverged} for m in self.members]

    def summary(self, *, over: str = "seed", metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Mean/std over ``over`` (seeds) of the final metrics, one row per configuration."""
        from funcnn.study.runs import summarize

        return summarize(self.records(), over=over, metrics=metrics)

    def curves(self, metric: str, *, over: str = "seed") -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(eval_steps, {label: (S, E) array})``: an eval metric per configuration, stacked
        over ``over`` (NaN-padded where a member stopped early). Feed to ``plot_bands``."""
        e_steps: np.ndarray = np.zeros((0,), np.int64)
        for m in self.members:
            if len(m.history.eval_steps) > len(e_steps):
                e_steps = m.history.eval_steps
        rows: dict[str, list[np.ndarray]] = {}
        for m in self.members:
            if metric not in m.history.eval_metrics:
                raise KeyError(f"GridResult.curves: no eval metric {metric!r}; have {sorted(m.history.eval_metrics)}")
            label = ", ".join(f"{k}={v}" for k, v in m.config.items() if k != over) or "all"
            v = m.history.eval_metrics[metric]
            pad = np.full((len(e_steps) - len(v), *v.shape[1:]), np.nan)
            rows.setdefault(label, []).append(np.concatenate([v, pad]))
        return e_steps, {k: np.stack(v) for k, v in rows.items()}


def run_grid(
    build: Callable[[Config], Any],
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    train_data: tuple[Any, Any],
    **kwargs: Any,
) -> GridResult:
    """Train every member of ``grid``: ``prepare_grid(build, grid, train_data, **kwargs).run()``.

    One compiled, vmapped program per static group; see :func:`prepare_grid` for the
    arguments (the fields of :class:`TrainOptions` among them, as keywords or ``options=``)
    and the module docstring for batched keys and choices.

    Returns:
      a :class:`GridResult` (``.members`` in grid order, ``.summary()``, ``.curves()``).
      Ctrl-C stops the whole grid after the current jitted call; what finished is
      checkpointed and returned with ``interrupted=True``.
    """
    return prepare_grid(build, grid, train_data, **kwargs).run()


@with_option_keywords
def prepare_grid(
    build: Callable[[Config], Any],
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    train_data: tuple[Any, Any],
    *,
    test_data: tuple[Any, Any] | None = None,
    batched: Sequence[str] | None = None,
    choices: Sequence[str] = (),
    choice_mode: str = "blocks",
    name: str = "grid",
    options: TrainOptions | None = None,
    **settings: Any,
) -> PreparedGrid:
    """Build every group of ``grid`` (initial members, programs) without training it.

    Args:
      build: ``build(config) -> TrainSpec(model, loss, optimizer[, init])`` (or a 3-tuple).
        See the module docstring for how batched values and choices reach it.
      grid: ``{key: [values]}`` (Cartesian product) or a list of config dicts. ``seed``
        (default 0) seeds each member's init, batch order and dropout exactly as in
        :func:`fit`, so a member equals ``fit`` run alone with that seed (to float
        tolerance; vmapping may reorder float operations).
      train_data, test_data: as in :func:`fit` (shared by all members).
      batched: the keys to vmap over (default: every key whose values are all floats;
        ``seed`` always is).
      choices: keys whose values are same-shaped alternatives picked by data (one program
        for all of them; ``build`` receives a :class:`funcnn.Choice`).
      choice_mode: ``"blocks"`` (default: equal blocks of one pick each run in turn, the
        pick unbatched) or ``"select"`` (the pick vmapped: every alternative computed).
      name: label of the progress bar.
      options: a :class:`TrainOptions`, shared by all members (a grid checkpoints each group
        into ``<checkpoint_dir>/<group>``, splits members over a mesh's ``"grid"`` axis).
      **settings: any field of :class:`TrainOptions` as a keyword, with the defaults and
        meaning documented there.

    Returns:
      a :class:`PreparedGrid`: ``.compile()``, then ``.run() -> GridResult``.
    """
    fn = "run_grid"
    o = resolve_options(fn, options, settings)
    if not callable(build):
        raise TypeError(f"{fn}: build must be a function config -> TrainSpec, got {type(build).__name__}")
    if choice_mode not in ("blocks", "select"):
        raise ValueError(f"{fn}: choice_mode must be 'blocks' or 'select', got {choice_mode!r}")
    configs = expand_grid(grid)
    for c in configs:  # a learning rate that cannot be right stops the grid before it trains
        for key in ("lr", "learning_rate"):
            v = c.get(key)
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                if not (math.isfinite(float(v)) and v > 0):
                    raise ValueError(f"{fn}: grid key {key!r} must hold finite learning rates > 0, got {v!r}")
    for c in configs:
        c.setdefault("seed", 0)
    choices = _check_choices(fn, configs, choices, batched)
    bkeys, skeys = split_keys([{k: v for k, v in c.items() if k not in choices} for c in configs], batched)
    x, y = check_data(fn, "train_data", train_data)
    test = check_data(fn, "test_data", test_data) if test_data is not None else None
    plan = make_plan(fn, x.shape[0], o)
    in_shape = (o.batch_size, *x.shape[1:])

    # Group members by their static values (first appearance order).
    groups: dict[str, tuple[Config, list[int]]] = {}
    for i, c in enumerate(configs):
        static = {k: c[k] for k in skeys}
        groups.setdefault(group_slug(static) + f"#{repr(tuple(static.values()))}", (static, []))[1].append(i)

    engines: list[Engine] = []
    infos: list[GroupInfo] = []
    for gkey, (static, idxs) in groups.items():
        slug = group_slug(static)
        # A group's choices range over the values its members pick (first appearance order).
        alternatives = {k: tuple(dict.fromkeys(configs[i][k] for i in idxs)) for k in choices}

        def concrete(c: Config, alternatives: Mapping[str, tuple[str, ...]] = alternatives) -> Config:
            """A member's config as build sees it: each choice key as a concrete Choice."""
            return {**c, **{k: Choice(alternatives[k], alternatives[k].index(c[k])) for k in choices}}

        def hp_value(c: Config, k: str, alternatives: Mapping[str, tuple[str, ...]] = alternatives) -> Any:
            return alternatives[k].index(c[k]) if k in alternatives else c[k]

        blocks = None
        if choices:
            # Contiguous blocks, one per combination of picks (in option order).
            idxs = sorted(idxs, key=lambda i: tuple(hp_value(configs[i], k) for k in choices))
            sizes = collections.Counter(tuple(configs[i][k] for k in choices) for i in idxs)
            if choice_mode == "blocks" and o.mesh is None and len(set(sizes.values())) == 1:
                blocks = (len(sizes), tuple(choices))
        hp = {
            k: to_device([hp_value(configs[i], k) for i in idxs], np.int32 if k in alternatives else None)
            for k in [*bkeys, *choices, "seed"]
        }
        spec_fn = _traced_build(build, static, bkeys, alternatives)
        cache_key = ("grid", build, tuple(static.items()), tuple(bkeys), tuple(alternatives.items()))
        for i in idxs:  # validates what build returns, with concrete values
            model0 = resolve_spec(fn, build(concrete(configs[i])))[0]
            check_labels(fn, "train_data", y, model0, in_shape)
            if test is not None:
                check_labels(fn, "test_data", test[1], model0, in_shape)
            break
        try:
            carry = init_carry(
                cache_key, spec_fn, hps=[{k: hp_value(configs[i], k) for k in hp} for i in idxs],
                seeds=[configs[i]["seed"] for i in idxs], in_shape=in_shape, batched=True,
            )
        except TypeError as e:  # jax's tracer errors are TypeErrors
            if not (isinstance(e, _TRACER_ERRORS) or isinstance(e.__cause__, _TRACER_ERRORS)):
                raise
            # The init needs concrete batched values (e.g. a Python check on an init
            # scale): initialize member by member, eagerly, and stack.
            carries = []
            for i in idxs:
                model, _, optimizer, init = resolve_spec(fn, build(concrete(configs[i])))
                params, state, dk, tk = init_member(fn, model, init, configs[i]["seed"], in_shape)
                carries.append(make_carry(params, state, optimizer.init(params), dk, tk))
            _check_same_structure(fn, slug, [configs[i] for i in idxs], carries, bkeys)
            carry = stack_trees(carries)
        engines.append(
            Engine(
                name=slug, spec_fn=spec_fn, config=engine_config(o, plan, batched=True, blocks=blocks), hp=hp,
                carry0=carry, n_members=len(idxs), train=(x, y), test=test, configs=[configs[i] for i in idxs],
                member_ids=idxs, cache_key=cache_key,
            )
        )
        infos.append(GroupInfo(name=slug, static=static, members=list(idxs), traces=0))
    return PreparedGrid(
        engines=engines, infos=infos, configs=configs, batched_keys=bkeys, static_keys=skeys,
        checkpoint_dir=o.checkpoint_dir, keep_checkpoints=o.keep_checkpoints, resume=o.resume, run_dir=o.run_dir,
        progress=o.progress, callback=o.callback, name=name,
    )


# run_grid takes what prepare_grid takes: show it (help, IDEs, inspect.signature(run_grid).bind).
run_grid.__signature__ = inspect.signature(prepare_grid).replace(return_annotation="GridResult")  # type: ignore[attr-defined]


@dataclasses.dataclass
class PreparedGrid:
    """A grid whose groups are built but not trained: ``.compile()``, then ``.run()``."""

    engines: list[Engine]
    infos: list[GroupInfo]
    configs: list[Config]
    batched_keys: list[str]
    static_keys: list[str]
    checkpoint_dir: str | os.PathLike[str] | None
    keep_checkpoints: int
    resume: bool
    run_dir: Any
    progress: bool
    callback: Callable[[dict[str, Any]], None] | None
    name: str

    def compile(self) -> None:
        """Compile every group's programs ahead of time (thread-safe; a no-op once done)."""
        for eng in self.engines:
            eng.compile()

    @property
    def compilations(self) -> int:
        """Programs compiled ahead of time for this grid so far."""
        return sum(e.compilations for e in self.engines)

    @property
    def compile_seconds(self) -> float:
        return sum(e.compile_seconds for e in self.engines)

    def run(self, *, stop: Any = None) -> GridResult:
        """Train every group (compiling first where not done); see :func:`run_grid`.
        ``stop``: a :class:`threading.Event` that, once set, stops training as a Ctrl-C does
        (for a grid trained in a worker thread)."""
        engines, configs = self.engines, self.configs
        dirs = None if self.checkpoint_dir is None else [os.path.join(self.checkpoint_dir, e.name) for e in engines]
        interrupted, seconds = run_engines(
            engines, checkpoint_dirs=dirs, keep_checkpoints=self.keep_checkpoints, resume=self.resume,
            run_dir=self.run_dir, progress=self.progress, callback=self.callback, desc=self.name,
            stop=stop,
        )

        members: list[MemberResult | None] = [None] * len(configs)
        for eng, info in zip(engines, self.infos):
            info.traces = eng.traces
            info.compilations = eng.compilations
            info.compile_seconds = eng.compile_seconds
            info.parts = 1 if eng.parts is None else len(eng.parts.index)
            info.first_step_at = eng.first_step_at
            info.train_seconds = eng.train_seconds
            params_host, state_host = eng.member_trees()
            div = eng.diverged()
            dsteps = eng._members(eng._leaf("diverged_step"))
            for m, i in enumerate(eng.member_ids):
                members[i] = MemberResult(
                    config=configs[i],
                    group=eng.name,
                    params=unstack_tree(params_host, m),
                    state=unstack_tree(state_host, m),
                    history=history_of(eng, m),
                    step=eng.step,
                    diverged=div[m],
                    diverged_step=int(dsteps[m]) if dsteps[m] >= 0 else None,
                )
        return GridResult(
            members=members,  # type: ignore[arg-type]
            groups=self.infos,
            batched_keys=self.batched_keys,
            static_keys=self.static_keys,
            interrupted=interrupted,
            seconds=seconds,
        )


def grid_workers(prepared: Sequence[PreparedGrid], workers: int | None = None) -> int:
    """How many grids :func:`run_grids` trains at once.

    ``workers=None`` (auto): on a CPU with several cores, one grid per core (at most one
    per grid), because a small network's step keeps about one core busy and independent
    grids then run side by side; one at a time on GPU/TPU (programs queue on the device
    anyway), in multi-process runs, and when any grid is spread over a device mesh (its
    collectives must not interleave with another program's). An int: that many (>= 1).
    """
    if workers is not None:
        if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"run_grids: workers must be an int >= 1 or None (auto), got {workers!r}")
        return int(min(workers, max(1, len(prepared))))
    if (len(prepared) < 2 or jax.default_backend() != "cpu" or jax.process_count() > 1
            or any(e.mesh is not None for p in prepared for e in p.engines)):
        return 1
    return int(min(len(prepared), cpu_cores()))


def run_grids(prepared: Sequence[PreparedGrid], *, workers: int | None = None) -> list[GridResult]:
    """Train prepared grids; returns their results in order.

    One at a time (``workers`` 1), the next grid compiles in a background thread while the
    current one trains. With ``workers`` > 1 (the default on a multi-core CPU, see
    :func:`grid_workers`) that many grids compile and train side by side in threads, each
    on the same programs as alone (results are the same; each grid's groups still run one
    after another). They start in order, each once the grid before it has run its first
    step (or ended), so the first grid compiles with the cores to itself and its first
    results come as early as a lone grid's; the next one compiles while it trains.

    After a Ctrl-C (or SIGTERM made a KeyboardInterrupt) the running grids checkpoint and
    stop, and the grids not yet started are skipped: the returned list ends at the last grid
    that trained at all, and every grid that stopped early has ``interrupted=True``. A
    Ctrl-C before any grid trained is raised.
    """
    n_workers = grid_workers(prepared, workers)
    if n_workers == 1:
        return _run_grids_in_turn(prepared)
    import concurrent.futures
    import threading

    stop = threading.Event()
    ended = [threading.Event() for _ in prepared]

    def begun(j: int) -> bool:
        return ended[j].is_set() or any(e.first_step_at is not None for e in prepared[j].engines)

    def one(j: int) -> GridResult:
        # A grid starts (compiles) once the grid before it has run its first step: the first
        # results come as soon as from a lone grid, not after two compiles sharing the cores.
        while j > 0 and not begun(j - 1) and not stop.is_set():
            time.sleep(0.02)
        if stop.is_set():
            raise KeyboardInterrupt
        try:
            # run compiles each group as it starts and the next one in the background meanwhile
            return prepared[j].run(stop=stop)
        finally:
            ended[j].set()

    pool = concurrent.futures.ThreadPoolExecutor(n_workers, thread_name_prefix="funcnn-grid")
    futures = [pool.submit(one, j) for j in range(len(prepared))]
    interrupted = False
    try:
        pending = set(futures)
        while pending:  # a timed wait, so Ctrl-C reaches this thread at once
            _, pending = concurrent.futures.wait(pending, timeout=0.2,
                                                 return_when=concurrent.futures.FIRST_EXCEPTION)
            if any(f.done() and f.exception() is not None for f in futures):
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop.set()
        for f in futures:
            f.cancel()
        while True:  # the running grids checkpoint and stop; a second Ctrl-C does not cut that short
            try:
                pool.shutdown(wait=True)
                break
            except KeyboardInterrupt:
                interrupted = True
    out: list[GridResult] = []
    for f in futures:  # in order: the pool starts grids first in, first out
        e = None if f.cancelled() else f.exception()
        if f.cancelled() or isinstance(e, KeyboardInterrupt):
            interrupted = True  # stopped before it trained (a Ctrl-C, or one raised in a grid)
            break
        if e is not None:
            raise e
        out.append(f.result())
    if interrupted and not out:
        raise KeyboardInterrupt
    if interrupted and len(out) < len(prepared) and not out[-1].interrupted:
        out[-1] = dataclasses.replace(out[-1], interrupted=True)  # the grids after it are missing
    return out


def _run_grids_in_turn(prepared: Sequence[PreparedGrid]) -> list[GridResult]:
    out: list[GridResult] = []
    ahead = CompileAhead(prepared)
    try:
        for j, p in enumerate(prepared):
            try:
                ahead.wait(j)
            except KeyboardInterrupt:
                if not out:
                    raise
                out[-1] = dataclasses.replace(out[-1], interrupted=True)
                break
            out.append(p.run())
            if out[-1].interrupted:
                break
    finally:
        ahead.close()
    return out


def _check_choices(fn: str, configs: list[Config], choices: Sequence[str], batched: Sequence[str] | None) -> tuple[str, ...]:
    if isinstance(choices, str) or not isinstance(choices, Sequence):
        raise TypeError(f"{fn}: choices must be a sequence of grid keys, got {choices!r}")
    keys = list(configs[0])
    for k in choices:
        if k not in keys:
            raise ValueError(f"{fn}: choice key {k!r} is not a grid key; grid keys are {keys}")
        if k == "seed" or (batched is not None and k in batched):
            raise ValueError(f"{fn}: key {k!r} cannot be both a choice and batched")
        bad = [c[k] for c in configs if not isinstance(c[k], str)]
        if bad:
            raise TypeError(f"{fn}: choice key {k!r} must have string values (the alternatives' names), got {bad[0]!r}")
    return tuple(dict.fromkeys(choices))


def _traced_build(
    build: Callable[[Config], Any], static: Config, bkeys: list[str], options: Mapping[str, tuple[str, ...]]
) -> Callable[[Any], tuple]:
    def spec_fn(hp: Mapping[str, jax.Array]) -> tuple:
        """The group's (model, loss, optimizer, init) with batched values as JAX scalars and
        each choice as a :class:`Choice` of its (possibly traced) index."""
        cfg = {**static, **hp}
        for k, opts in options.items():
            cfg[k] = Choice(opts, hp[k])
        try:
            model, loss, optimizer, init = resolve_spec("run_grid", build(cfg))
        except _TRACER_ERRORS as e:
            raise TypeError(
                f"run_grid: build(config) used a batched value ({', '.join(bkeys + ['seed'])}) as a "
                f"Python value inside the compiled step; batched values arrive there as JAX "
                f"scalars. Make that key static with run_grid(..., batched=[...]) listing only "
                f"the keys that can be traced."
            ) from e
        return model, loss, optimizer, init

    return spec_fn


def _check_same_structure(fn: str, slug: str, configs: list[Config], carries: list[Any], bkeys: list[str]) -> None:
    ref = jax.tree.structure(carries[0])
    ref_shapes = [(np.shape(a), jnp.asarray(a).dtype) for a in jax.tree.leaves(carries[0])]
    for c, carry in zip(configs[1:], carries[1:]):
        shapes = [(np.shape(a), jnp.asarray(a).dtype) for a in jax.tree.leaves(carry)]
        if jax.tree.structure(carry) != ref or shapes != ref_shapes:
            raise ValueError(
                f"{fn}: members of group {slug!r} differ in parameter/optimizer-state structure "
                f"({configs[0]} vs {c}); keys that change structure must be static, but the "
                f"batched keys are {bkeys}: pass batched=[...] without them"
            )
