"""The :class:`Engine` that trains one group, and the loop that runs engines with evaluation,
checkpoints, resume, a progress bar and Ctrl-C."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from funcnn._ops.host import to_device
from funcnn.train import parallel
from funcnn.train.engine.carry import MemberParts, auto_parts, block_width, divergence_message, slices_of
from funcnn.train.engine.plan import metric_dtype
from funcnn.train.engine.programs import EngineConfig, compiled_programs, with_batch_order, without_batch_order
from funcnn.train.step import STEP_METRICS



def _json_value(v: np.ndarray) -> Any:
    v = np.asarray(v)
    if v.ndim == 0:
        f = v.item()
        if isinstance(f, float) and not math.isfinite(f):
            return None
        return f
    if v.size <= 256:
        return [_json_value(e) for e in v]
    return None


class Engine:
    """Trains one group of members (see :mod:`funcnn.train.engine`) as ``config`` says."""

    def __init__(
        self,
        *,
        name: str,
        spec_fn: Callable[[Any], tuple[Any, Any, Any, Any]],
        config: EngineConfig,
        hp: Any,
        carry0: dict[str, Any],
        n_members: int,
        train: tuple[jax.Array, jax.Array],
        test: tuple[jax.Array, jax.Array] | None,
        configs: Sequence[Mapping[str, Any]],
        member_ids: Sequence[int],
        cache_key: Any = None,
    ) -> None:
        self.name = name
        self.spec_fn = spec_fn
        self.mesh = mesh = config.mesh
        self.batched = batched = config.batched
        self.M = n_members
        # On a mesh, a group is padded to a multiple of the "grid" axis (M_dev members on
        # device; the padding copies member 0 and is dropped from results/checkpoints).
        g = parallel.axis_size(mesh, parallel.GRID) if batched else 1
        self.M_dev = -(-n_members // g) * g
        carry0 = self._with_order(carry0, train[0].shape[0])
        if mesh is not None:
            self._carry_sh = parallel.members_sharding(mesh) if batched else parallel.replicated(mesh)
            hp = parallel.put(self._pad(hp), self._carry_sh)
            carry0 = self._place_carry(carry0)
            train = self._place_data(train)
            test = self._place_data(test) if test is not None else None
        # Members trained as slices side by side (one thread each, one program): see
        # EngineConfig.parts. self._carries / self._hps hold the slices; self.carry joins them.
        n_parts = 1
        if batched and mesh is None:
            n_parts = (slices_of(n_members, config.blocks, config.parts) if config.parts is not None
                       else auto_parts(n_members, config.blocks))
        self.parts = MemberParts.of(n_members, config.blocks, n_parts) if n_parts > 1 else None
        if self.parts is not None:  # the slices' convolutions are timed at a whole block's width
            config = dataclasses.replace(config, tune_width=block_width(n_members, config.blocks))
        self.config = config
        self._hps = self.parts.cut(hp) if self.parts is not None else [hp]
        self.carry = carry0
        self._unpad = None
        self.x, self.y = train
        self.plan = plan = config.plan
        self.configs = list(configs)
        self.member_ids = list(member_ids)
        self.datasets = {}
        if config.eval_train:
            self.datasets["train"] = train
        if test is not None:
            self.datasets["test"] = test
        self._mdt = metric_dtype()
        self.programs = compiled_programs(cache_key, spec_fn, config)
        self.compile_seconds = 0.0
        self.compilations = 0
        self._compiled: set[str] = set()  # what compile() did: "chunk", "evaluate"
        self.first_step_at: float | None = None  # perf_counter when its first chunk was dispatched
        self.train_seconds = 0.0  # wall seconds inside run_chunk (dispatch to results on the host)
        self._traces0 = self.programs.counter.traces
        self._chunk = self.programs.chunk
        self._evaluate = self.programs.evaluate

        # History buffers, member axis first. The evaluation's buffers need its output shapes:
        # they are allocated when first needed (from the compiled evaluation, else by tracing
        # it), so making an engine traces nothing and a grid's groups trace where they compile.
        T = plan.total_steps
        self.step_hist = {m: np.full((self.M, T), np.nan, self._mdt) for m in STEP_METRICS}
        self._eval_hist: dict[str, np.ndarray] | None = None
        self._eval_shapes: Any = None  # the compiled evaluation's output shapes, once compiled
        self.eval_done = np.zeros((len(plan.eval_steps),), bool)
        self.step = 0

    @property
    def eval_hist(self) -> dict[str, np.ndarray]:
        """Evaluation metrics: name -> ``(M, E, ...)`` (NaN where not evaluated)."""
        if self._eval_hist is None:
            shapes = self._eval_shapes
            if shapes is None:
                c0 = self._carries[0]
                shapes = jax.eval_shape(self.programs.evaluate_raw, c0["params"], c0["state"], self._hps[0], self.datasets)
            E = len(self.plan.eval_steps)
            self._eval_hist = {
                k: np.full((self.M, E, *(tuple(sd.shape[1:]) if self.batched else tuple(sd.shape))), np.nan, self._mdt)
                for k, sd in shapes.items()
            }
        return self._eval_hist

    @eval_hist.setter
    def eval_hist(self, value: dict[str, np.ndarray]) -> None:
        self._eval_hist = value

    @property
    def carry(self) -> dict[str, Any]:
        """Every member's carry, stacked in the group's order (joined on the host from the
        slices when the group trains in :attr:`parts`)."""
        if self.parts is None:
            return self._carries[0]
        return self.parts.join(self._carries)

    @carry.setter
    def carry(self, value: dict[str, Any]) -> None:
        self._carries = self.parts.cut(value) if self.parts is not None else [value]

    def _leaf(self, name: str, carries: Sequence[Any] | None = None) -> Any:
        """``self.carry[name]`` (of the slices' ``carries``, default the current ones) without
        joining the rest of the carry."""
        carries = self._carries if carries is None else carries
        if self.parts is None:
            return carries[0][name]
        return self.parts.join([c[name] for c in carries])

    def _each(self, fn: Callable[..., Any], *per_part: Sequence[Any]) -> list[Any]:
        """``fn(*args)`` for every slice's arguments, the slices side by side in threads (each
        waited for in its thread, so their programs run at once)."""
        if len(per_part[0]) == 1:
            return [fn(*(a[0] for a in per_part))]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(per_part[0]), thread_name_prefix="funcnn-part") as pool:
            return list(pool.map(lambda args: jax.block_until_ready(fn(*args)), zip(*per_part)))

    @property
    def traces(self) -> int:
        """How many times this engine's train chunk was traced (= compiled)."""
        return self.programs.counter.traces - self._traces0

    # ------------------------------------------------------------------ devices
    def _pad(self, tree: Any) -> Any:
        """Host copy of a member-stacked tree padded to ``M_dev`` members (or the tree)."""
        if self.M_dev == self.M:
            return tree

        def pad(a: Any) -> np.ndarray:
            a = parallel.to_host(a)
            return np.concatenate([a, np.repeat(a[:1], self.M_dev - self.M, axis=0)])

        return jax.tree.map(pad, tree)

    def _with_order(self, carry: Any, n_examples: int) -> Any:
        """``carry`` (the group's members, unpadded) with its batch order carried between
        chunks (:func:`~funcnn.train.engine.programs.with_batch_order`)."""
        return with_batch_order(carry, n_examples, self.M if self.batched else None)

    def _place_carry(self, carry: Any) -> Any:
        return parallel.put(self._pad(carry), self._carry_sh)

    def _place_data(self, data: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        """Keep arrays laid out on this mesh or spread over processes; replicate the rest."""

        def place(a: jax.Array) -> jax.Array:
            s = getattr(a, "sharding", None)
            if not a.is_fully_addressable or (isinstance(s, jax.sharding.NamedSharding) and s.mesh == self.mesh):
                return a
            return parallel.put(a, parallel.replicated(self.mesh))

        return place(data[0]), place(data[1])

    def _members(self, a: Any) -> np.ndarray:
        """Host value of a member-axis array, padding dropped."""
        if self.mesh is None:
            return np.asarray(a)
        a = parallel.to_host(a)
        return a[: self.M] if self.batched else a.reshape(1, *a.shape)

    def member_trees(self) -> tuple[Any, Any]:
        """Host ``(params, state)`` stacked over the group's members (padding dropped)."""
        if self.parts is not None:
            return self.parts.join([(c["params"], c["state"]) for c in self._carries])
        carry = self._carries[0]
        if self.mesh is None:
            return jax.device_get((carry["params"], carry["state"]))
        return jax.tree.map(self._members, (carry["params"], carry["state"]))

    # ------------------------------------------------------------------ host helpers
    def alive(self, carries: Sequence[Any] | None = None) -> np.ndarray:
        return self._members(self._leaf("alive", carries)).reshape(self.M)

    def diverged(self) -> list[str | None]:
        steps = self._members(self._leaf("diverged_step")).reshape(self.M)
        codes = self._members(self._leaf("diverged_code")).reshape(self.M)
        return [divergence_message(c, s) for c, s in zip(codes, steps)]

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_tree(self) -> dict[str, Any]:
        # the batch order follows from the seed and the step: left out (before the slices
        # are joined on the host, so it is not copied there either)
        if self.parts is None:
            carry = without_batch_order(self._carries[0])
        else:
            carry = self.parts.join([without_batch_order(c) for c in self._carries])
        if self.M_dev != self.M:  # save the real members only: restorable on any mesh
            if self._unpad is None:
                M, rep = self.M, parallel.replicated(self.mesh)
                self._unpad = jax.jit(lambda t: jax.tree.map(lambda a: a[:M], t), out_shardings=rep)
            carry = self._unpad(carry)
        return {
            "carry": carry,
            "step_hist": self.step_hist,
            "eval_hist": self.eval_hist,
            "eval_done": self.eval_done,
            "step": np.asarray(self.step, np.int64),
        }

    def load_checkpoint_tree(self, tree: dict[str, Any]) -> None:
        carry = tree["carry"]  # restored into checkpoint_tree()'s structure: no batch order
        if self.mesh is None:
            carry = jax.tree.map(to_device, carry)
        carry = self._with_order(carry, self.x.shape[0])
        self.carry = carry if self.mesh is None else self._place_carry(carry)
        self.step_hist = {k: np.array(v) for k, v in tree["step_hist"].items()}
        self.eval_hist = {k: np.array(v) for k, v in tree["eval_hist"].items()}
        self.eval_done = np.array(tree["eval_done"], bool)
        self.step = int(tree["step"])

    # ------------------------------------------------------------------ compiling
    def compile(self, parts: Sequence[str] = ("chunk", "evaluate")) -> None:
        """Compile the train chunk and the evaluation (``parts``: either or both) ahead of time
        (once per program and input types, cached with the programs); later calls run the
        compiled executables.

        Safe to call from a background thread while another engine trains (or, for the
        evaluation, while this one runs its first chunk). Engines on a mesh keep
        ``jax.jit``'s own dispatch (their inputs carry shardings).
        """
        if self.mesh is not None:
            return
        t0 = time.perf_counter()
        c0, h0 = self._carries[0], self._hps[0]  # every slice has the same shapes
        new = 0
        if "chunk" in parts and "chunk" not in self._compiled:
            chunk_args = (c0, h0, self.plan.steps_per_call, self.step, self.x, self.y)
            # a judged chunk is timed on 2 steps of the first slice (its outputs are dropped)
            probe = (c0, h0, min(2, self.plan.steps_per_call), self.step, self.x, self.y)
            self._chunk, n = self.programs.aot("chunk", self.programs.chunk, chunk_args, probe)
            self._compiled.add("chunk")
            new += n
        if "evaluate" in parts and "evaluate" not in self._compiled:
            eval_args = (c0["params"], c0["state"], h0, self.datasets)
            evaluate, n = self.programs.aot("evaluate", self.programs.evaluate, eval_args)
            self._evaluate, self._eval_shapes = evaluate, evaluate.out_info
            self._compiled.add("evaluate")
            new += n
        self.compilations += new
        if new:
            self.compile_seconds += time.perf_counter() - t0

    def compiled(self, part: str) -> bool:
        """Whether ``part`` ("chunk" or "evaluate") was compiled ahead of time for this engine."""
        return part in self._compiled

    # ------------------------------------------------------------------ running
    def run_chunk(self) -> int:
        """Run steps up to the next boundary (at most ``steps_per_call``); returns how many."""
        nxt = min(b for b in self.plan.boundaries() if b > self.step)
        n = min(self.plan.steps_per_call, nxt - self.step)
        t0 = time.perf_counter()
        if self.first_step_at is None:
            self.first_step_at = t0
        outs = self._each(lambda c, h: self._chunk(c, h, n, self.step, self.x, self.y), self._carries, self._hps)
        carries = [o[0] for o in outs]
        if self.mesh is not None:
            # One partitioned program in flight at a time (see the module docstring).
            carries = [jax.block_until_ready(carries[0])]
        buf = self.parts.join([o[1] for o in outs]) if self.parts is not None else jax.device_get(outs[0][1])
        for k, v in buf.items():
            v = np.asarray(v).reshape(self.M_dev, -1)[: self.M]
            self.step_hist[k][:, self.step : self.step + n] = v[:, :n]
        self._carries, self.step = carries, self.step + n
        self.train_seconds += time.perf_counter() - t0
        return n

    def pending_eval(self) -> int | None:
        """Index of the eval due at the current step and not done yet, else None."""
        try:
            i = self.plan.eval_steps.index(self.step)
        except ValueError:
            return None
        return None if self.eval_done[i] else i

    def run_eval(self, i: int, at: tuple[list[Any], int] | None = None) -> list[dict[str, Any]]:
        """Evaluate now (eval slot ``i``); returns one JSON-able record per member. ``at``:
        ``(carries, step)`` kept from earlier (the slices' carries at that step) to evaluate
        instead of the current ones (the first evaluation, run after the first chunk)."""
        carries, step = at if at is not None else (self._carries, self.step)
        outs = self._each(lambda c, h: self._evaluate(c["params"], c["state"], h, self.datasets), carries, self._hps)
        out = self.parts.join(outs) if self.parts is not None else jax.device_get(outs[0])
        alive = self.alive(carries)
        for k, v in out.items():
            v = np.asarray(v)
            if not self.batched:
                v = v[None]
            v = np.array(v[: self.M], dtype=np.result_type(v.dtype, np.float32))
            # A diverged member's params are frozen at its last finite step: evaluating them
            # would report numbers of a model that is no longer training. Its metrics are NaN.
            v[~alive] = np.nan
            self.eval_hist[k][:, i] = v
        self.eval_done[i] = True
        spe = self.plan.steps_per_epoch
        records = []
        for m in range(self.M):
            rec = {
                "group": self.name,
                "member": self.member_ids[m],
                "config": dict(self.configs[m]),
                "step": step,
                "epoch": step / spe,
                "alive": bool(alive[m]),
            }
            # The mean training-batch loss since the previous evaluation.
            window = self.step_hist["loss"][m, self.plan.eval_steps[i - 1] if i > 0 else 0 : step]
            if window.size and np.isfinite(window).any():
                rec["train_loss_running"] = _json_value(np.nanmean(window))
            for k in self.eval_hist:
                rec[k] = _json_value(self.eval_hist[k][m, i])
            records.append(rec)
        return records

    def done(self) -> bool:
        return self.step >= self.plan.total_steps or not self.alive().any()

    def status(self) -> dict[str, Any]:
        """Numbers for the progress bar: the last batch loss and test metric (means over
        the members still alive) and, for groups, how many members are alive."""
        info: dict[str, Any] = {}
        if self.step > 0:
            last = self.step_hist["loss"][:, self.step - 1]
            if np.isfinite(last).any():
                info["loss"] = f"{np.nanmean(last):.4g}"
        done = np.flatnonzero(self.eval_done)
        if done.size:
            for k in ("test_accuracy", "test_loss"):
                if k in self.eval_hist:
                    v = self.eval_hist[k][:, done[-1]]
                    if np.isfinite(v).any():
                        info[k] = f"{np.nanmean(v):.4g}"
                    break
        if self.M > 1:
            info["alive"] = f"{int(self.alive().sum())}/{self.M}"
        return info


def run_engines(
    engines: Sequence[Engine],
    *,
    checkpoint_dirs: Sequence[str | os.PathLike[str]] | None,
    keep_checkpoints: int,
    **settings: Any,
) -> tuple[bool, float]:
    """:func:`_run_engines` (``resume``, ``run_dir``, ``progress``, ``callback``, ``desc``) with
    a :class:`~funcnn.train.checkpoint.Checkpointer` per engine in ``checkpoint_dirs`` (None:
    no checkpoints), each keeping ``keep_checkpoints``, closed on the way out."""
    ckpts: list[Any] = []
    try:
        if checkpoint_dirs is not None:
            from funcnn.train.checkpoint import Checkpointer

            for d in checkpoint_dirs:
                ckpts.append(Checkpointer(d, max_to_keep=keep_checkpoints))
        return _run_engines(engines, checkpointers=ckpts or None, **settings)
    finally:
        for ck in ckpts:
            ck.close()


def _run_engines(
    engines: Sequence[Engine],
    *,
    checkpointers: Sequence[Any] | None,
    resume: bool,
    run_dir: Any,
    progress: bool,
    callback: Callable[[dict[str, Any]], None] | None,
    desc: str,
    stop: Any = None,
) -> tuple[bool, float]:
    """Run engines one after the other; returns ``(interrupted, seconds)``.

    Handles resume from the latest checkpoint, evaluation and checkpoint boundaries,
    metrics.jsonl appends (flushed before every checkpoint), the progress bar, and
    KeyboardInterrupt: the finished work is checkpointed and kept, and the function
    returns ``interrupted=True`` instead of raising. ``stop`` (a :class:`threading.Event`,
    for runs in a worker thread, where no KeyboardInterrupt arrives) set between two chunks
    stops the same way.
    """
    t0 = time.perf_counter()
    primary = jax.process_count() == 1 or jax.process_index() == 0  # one metrics writer
    meta_common = {"desc": desc}
    ckpts = list(checkpointers) if checkpointers is not None else [None] * len(engines)

    # Resume: restore every engine first so the progress bar starts where it left off.
    for eng, ck in zip(engines, ckpts):
        if ck is None or not resume:
            continue
        found = ck.restore_newest(eng.checkpoint_tree())
        if found is None:
            # Nothing saved for this group: it starts over, and so do its metrics records.
            if run_dir is not None and primary:
                run_dir.truncate_metrics(lambda r, e=eng: r.get("group") == e.name)
            continue
        _, tree, _ = found
        eng.load_checkpoint_tree(tree)
        if run_dir is not None and primary:
            run_dir.truncate_metrics(lambda r, e=eng: r.get("group") == e.name and r.get("step", 0) > e.step)

    total = sum(e.plan.total_steps for e in engines)
    initial = sum(e.step for e in engines)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is an optional dependency: no bar without it
            tqdm = None
        if tqdm is not None:
            bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    pending: list[dict[str, Any]] = []


    def flush() -> None:
        if run_dir is not None and pending and primary:
            run_dir.append_metrics(pending)
        pending.clear()

    def save(eng: Engine, ck: Any) -> None:
        flush()
        if ck is not None and ck.latest_step() != eng.step:
            ck.save(eng.step, eng.checkpoint_tree(), {**meta_common, "group": eng.name, "step": eng.step})

    interrupted = False
    current: tuple[Engine, Any] | None = None
    ahead = CompileAhead(engines)
    first_eval: tuple[list[Any], int, Any] | None = None  # (carries, step, compile future) of a deferred eval

    def finish_first_eval() -> None:
        nonlocal first_eval
        if first_eval is None or current is None:
            return
        carries, step, compiling = first_eval
        first_eval = None
        compiling.result()
        pending.extend(current[0].run_eval(0, at=(carries, step)))

    try:
        for j, (eng, ck) in enumerate(zip(engines, ckpts)):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt  # the engines from here on never start
            current = (eng, ck)
            # A fresh engine's first chunk needs only its train program: the evaluation at
            # step 0 (of the initial carries, kept) compiles in a thread beside that chunk and
            # runs after it, so training starts without waiting for the evaluation program.
            first = eng.mesh is None and eng.step == 0 and eng.pending_eval() == 0 and j not in ahead.futures
            ahead.wait(j, ("chunk",) if first else None)
            if first and not eng.compiled("evaluate"):
                first_eval = (eng._carries, eng.step, ahead.beside(lambda e=eng: e.compile(("evaluate",))))
            if bar is not None:
                bar.set_description(f"{desc} {eng.name}" if len(engines) > 1 else desc)
            while True:
                i = eng.pending_eval()
                if i is not None and first_eval is not None:
                    i = None  # evaluated after the first chunk (below)
                if i is not None:
                    pending.extend(eng.run_eval(i))
                if eng.step in eng.plan.checkpoint_steps or (eng.done() and eng.step > 0):
                    save(eng, ck)
                if eng.done():
                    break
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt
                n = eng.run_chunk()
                finish_first_eval()  # the deferred first evaluation, if any
                if bar is not None:
                    bar.update(n)
                    bar.set_postfix(eng.status(), refresh=False)
                if callback is not None:
                    callback({"group": eng.name, "step": eng.step, "status": eng.status()})
            finish_first_eval()  # an engine that ran no chunk still evaluates its start
            if bar is not None and eng.step < eng.plan.total_steps:
                bar.update(eng.plan.total_steps - eng.step)  # stopped early (all diverged)
            flush()
    except KeyboardInterrupt:
        interrupted = True
        if current is not None:
            finish_first_eval()  # the first evaluation is of the initial carries: never lost
            eng, ck = current
            save(eng, ck)
        flush()
    finally:
        ahead.close()
        if bar is not None:
            bar.close()
    return interrupted, time.perf_counter() - t0


class CompileAhead:
    """Compiles ``engines[j + 1]`` in a background thread while ``engines[j]`` trains.

    XLA compiles outside the GIL, so on a machine with spare cores the next program is
    ready when the current one finishes; on a busy one the two share the cores.
    """

    def __init__(self, engines: Sequence[Any]) -> None:
        self.engines = list(engines)
        self.futures: dict[int, Any] = {}
        self.pool = None
        self.side = None

    def _submit(self, j: int) -> None:
        if j >= len(self.engines) or j in self.futures:
            return
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="funcnn-compile")
        self.futures[j] = self.pool.submit(self.engines[j].compile)

    def wait(self, j: int, parts: Sequence[str] | None = None) -> None:
        """Block until engine ``j`` is compiled (compiling it here if nobody started: only
        ``parts`` of an :class:`Engine` when given), then start compiling engine ``j + 1``.
        Works on anything with a ``compile()`` (prepared grids too)."""
        if j in self.futures:
            self.futures.pop(j).result()
        elif parts is None:
            self.engines[j].compile()
        else:
            self.engines[j].compile(parts)
        self._submit(j + 1)

    def beside(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in a thread of its own (a future), beside training and the compile-ahead."""
        if self.side is None:
            from concurrent.futures import ThreadPoolExecutor

            self.side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="funcnn-compile-eval")
        return self.side.submit(fn)

    def close(self) -> None:
        for pool in (self.pool, self.side):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
