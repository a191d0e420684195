"""The training engine shared by :func:`funcnn.train.fit` and :func:`funcnn.train.run_grid`.

One engine trains one *group*: a single model (``batched=False``) or ``M`` members that
share a structure, stacked on a leading member axis and run as one vmapped program
(``batched=True``). The device work is two jitted functions:

- ``chunk(carry, hp, n, start, x, y)``: train steps ``start .. start+n-1`` in a
  ``fori_loop`` (a dynamic trip count, so every chunk length reuses one compilation);
  batches are gathered on device from the full ``x``/``y``;
- ``evaluate(params, state, hp, datasets)``: losses/accuracies/diagnostics.

Randomness: member ``seed`` -> ``root = PRNGKey(seed)`` -> ``(init_key, data_key,
train_key) = split(root, 3)``. Step ``s`` uses ``fold_in(train_key, s)``; the batches of
epoch ``e`` are the permutation ``permutation(fold_in(data_key, e), N)`` cut into
``N // B`` batches (the remainder is dropped). So the batch of any step follows from
``(seed, step)`` alone, which makes resuming exact.

Divergence: a step whose loss or gradient norm is not finite is not applied; the member
is frozen from then on (``alive=False``), its step and reason are recorded, and its
per-step metrics read NaN afterwards.

Choices (``blocks``): members that differ in a :class:`funcnn.Choice` (an activation, the
rule, ...) share the group. Ordered so that each choice combination is one contiguous block
of equal size, they run as ``lax.map`` over the blocks of ``vmap`` over a block's members,
with the choice indices unbatched inside a block: ``lax.switch`` there is a real branch, so
no member computes the alternatives it did not pick, and one program serves every block.
(With a batched index ``vmap`` would turn the switch into a select over every branch.)

Compilation: :meth:`Engine.compile` lowers and compiles both functions ahead of time
(``jit(...).lower(...).compile()``); :func:`run_engines` compiles the next engine's
programs in a background thread while the current one trains.

Devices (``mesh``, see :mod:`funcnn.parallel`): with a mesh, the same two functions are
jitted with output shardings: the carry replicated (``fit``) or its member axis split over
the ``grid`` axis (groups padded to a multiple of its size with copies of member 0), each
gathered batch constrained to be split over the ``data`` axis (under ``vmap`` with
``spmd_axis_name="grid"``), metrics replicated. XLA's partitioner inserts the gradient
all-reduce. Data arrays already laid out on the mesh (or spread over processes) are kept;
others are replicated. Each call is waited for before the next (simulated CPU devices
can stall in collective rendezvous when many partitioned programs are queued). Without a
mesh nothing of this runs: the single-device programs are unchanged.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import conv_autotune, parallel
from funcnn.train.step import STEP_METRICS, make_eval_fn, make_train_step, resolve_loss

DIVERGENCE_REASONS = {1: "loss became nan", 2: "loss became inf", 3: "gradient norm became non-finite"}


def divergence_message(code: int, step: int) -> str | None:
    """``"loss became nan at step 37"`` (steps count from 0), or None if not diverged."""
    if step < 0 or code == 0:
        return None
    return f"{DIVERGENCE_REASONS.get(int(code), 'diverged')} at step {int(step)}"


def metric_dtype() -> np.dtype:
    return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)


def member_keys(seed: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(init_key, data_key, train_key)`` of a member with this seed (raw uint32 keys)."""
    root = jax.random.PRNGKey(seed)
    k = jax.random.split(root, 3)
    return k[0], k[1], k[2]


_member_keys_jit = jax.jit(member_keys)


@dataclasses.dataclass(frozen=True)
class Plan:
    """When things happen: step counts are numbers of completed updates."""

    total_steps: int
    steps_per_epoch: int
    batch_size: int
    eval_steps: tuple[int, ...]
    checkpoint_steps: tuple[int, ...]
    steps_per_call: int

    def boundaries(self) -> list[int]:
        return sorted(set(self.eval_steps) | set(self.checkpoint_steps) | {self.total_steps})


def _check_pos_int(fn: str, name: str, v: Any, *, allow_none: bool = False, minimum: int = 1) -> None:
    if v is None and allow_none:
        return
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{fn}: {name} must be an int >= {minimum}, got {v!r}")


def make_plan(
    fn: str,
    n_train: int,
    *,
    batch_size: int,
    steps: int | None,
    epochs: int | None,
    eval_every: int | None,
    checkpoint_every: int | None,
    steps_per_call: int,
) -> Plan:
    """Validate the loop settings and turn them into a :class:`Plan`."""
    _check_pos_int(fn, "batch_size", batch_size)
    if batch_size > n_train:
        raise ValueError(
            f"{fn}: batch_size={batch_size} is larger than the training set ({n_train} examples)"
        )
    if (steps is None) == (epochs is None):
        raise ValueError(f"{fn}: give exactly one of steps or epochs (got steps={steps!r}, epochs={epochs!r})")
    _check_pos_int(fn, "steps", steps, allow_none=True)
    _check_pos_int(fn, "epochs", epochs, allow_none=True)
    _check_pos_int(fn, "eval_every", eval_every, allow_none=True, minimum=0)
    _check_pos_int(fn, "checkpoint_every", checkpoint_every, allow_none=True)
    _check_pos_int(fn, "steps_per_call", steps_per_call)
    spe = n_train // batch_size
    total = int(steps) if steps is not None else int(epochs) * spe
    every = spe if eval_every is None else int(eval_every)
    evals = {0, total}
    if every > 0:
        evals |= set(range(every, total, every))
    ck_every = checkpoint_every if checkpoint_every is not None else (every if every > 0 else total)
    ckpts = set(range(ck_every, total, ck_every)) | {total}
    return Plan(
        total_steps=total,
        steps_per_epoch=spe,
        batch_size=int(batch_size),
        eval_steps=tuple(sorted(evals)),
        checkpoint_steps=tuple(sorted(ckpts)),
        steps_per_call=int(min(steps_per_call, max(total, 1))),
    )


def check_data(fn: str, name: str, data: Any) -> tuple[jax.Array, jax.Array]:
    """``(x, y)`` as device arrays with matching lengths (clear errors otherwise)."""
    if isinstance(data, Mapping):
        if "x" not in data or "y" not in data:
            raise ValueError(f"{fn}: {name} as a mapping needs keys 'x' and 'y', got {sorted(data)}")
        data = (data["x"], data["y"])
    if not isinstance(data, Sequence) or len(data) != 2:
        raise TypeError(f"{fn}: {name} must be a pair (x, y) of arrays, got {type(data).__name__}")
    x, y = data
    for nm, a in (("x", x), ("y", y)):
        if not hasattr(a, "shape") or len(np.shape(a)) == 0:
            raise TypeError(f"{fn}: {name} {nm} must be an array with a leading example axis, got {type(a).__name__}")
    if np.shape(x)[0] != np.shape(y)[0]:
        raise ValueError(
            f"{fn}: {name} has mismatched lengths: x has {np.shape(x)[0]} examples, y has "
            f"{np.shape(y)[0]} (x.shape={tuple(np.shape(x))}, y.shape={tuple(np.shape(y))})"
        )
    if np.shape(x)[0] == 0:
        raise ValueError(f"{fn}: {name} is empty")
    return jnp.asarray(x), jnp.asarray(y)


def check_labels(fn: str, name: str, y: Any, model: Any, in_shape: tuple[int, ...]) -> None:
    """Integer labels must index the model's outputs: ``0 <= y < K`` for ``K`` outputs (``{0, 1}``
    for one output). Checked on the host before training, so a bad label is a named error,
    not a loss that became NaN at step 0."""
    if not jnp.issubdtype(np.asarray(y).dtype if not hasattr(y, "dtype") else y.dtype, jnp.integer):
        return
    if isinstance(y, jax.Array) and not y.is_fully_addressable:
        return  # a global array of a multi-process run: this process holds only its part
    shapes: list[Any] = []

    def trace() -> tuple:
        shapes.append(tuple(model.init(jax.random.key(0), in_shape)[0]))
        return ()

    try:
        jax.eval_shape(trace)
    except Exception:  # noqa: BLE001 - the model's own errors are raised later, with their context
        return
    out = shapes[0][-1] if shapes and shapes[0] else None
    if out is None:
        return
    k = 2 if out == 1 else out
    y_np = np.asarray(y)
    lo, hi = int(y_np.min()), int(y_np.max())
    if lo < 0 or hi >= k:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"{fn}: {name} has label {bad}, outside [0, {k - 1}] for a model with {out} output"
            f"{'s' if out != 1 else ''} (labels must index its classes)"
        )


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


@dataclasses.dataclass
class TraceCounter:
    traces: int = 0
    eval_traces: int = 0


@dataclasses.dataclass
class Compiled:
    chunk: Callable[..., Any]
    evaluate: Callable[..., Any]
    evaluate_raw: Callable[..., Any]
    counter: TraceCounter
    executables: dict[Any, Any] = dataclasses.field(default_factory=dict)

    def aot(self, name: str, jitted: Any, args: tuple[Any, ...]) -> tuple[Any, int]:
        """``(executable, newly_compiled)``: ``jitted`` lowered and compiled for ``args``' types."""
        leaves, treedef = jax.tree.flatten(args)
        sig = (name, treedef, tuple(
            (np.shape(a), jnp.result_type(a), bool(getattr(a, "weak_type", False)) or isinstance(a, (int, float)))
            for a in leaves
        ))
        if sig in self.executables:
            return self.executables[sig], 0
        exe = jitted.lower(*args).compile()
        self.executables[sig] = exe
        return exe, 1


# Jitted programs reused across fit/run_grid calls that train the same objects (the same
# model, loss, optimizer or build function, and the same loop constants); jax.jit's own
# cache is keyed on the function object, which is new in every call otherwise.
_COMPILED: collections.OrderedDict[Any, Compiled] = collections.OrderedDict()
_COMPILED_MAX = 32


def compiled_programs(
    cache_key: Any,
    *,
    spec_fn: Callable[[Any], tuple[Any, Any, Any]],
    plan: Plan,
    batched: bool,
    classification: bool | None,
    eval_batch_size: int,
    diagnostics: Callable[..., Mapping[str, jax.Array]] | None,
    jit_kwargs: Mapping[str, Any] | None,
    mesh: Any = None,
    blocks: tuple[int, tuple[str, ...]] | None = None,
) -> Compiled:
    """The jitted chunk and evaluation functions of an engine (cached when possible).

    ``blocks=(k, choice_keys)``: the members form ``k`` equal contiguous blocks, each with one
    value of every choice key (see the module docstring).
    """
    key = None
    if cache_key is not None and not jit_kwargs:
        key = (cache_key, plan.steps_per_call, plan.steps_per_epoch, plan.batch_size, batched,
               classification, eval_batch_size, diagnostics, bool(jax.config.jax_enable_x64))
        if blocks is not None:
            key = (*key, blocks)
        if mesh is not None:  # the mesh-less key stays exactly as it was
            key = (*key, mesh)
        try:
            hash(key)
        except TypeError:
            key = None
    if key is not None and key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    out = _build_programs(spec_fn, plan, batched, classification, eval_batch_size, diagnostics, jit_kwargs, mesh,
                          blocks)
    _cache_put(key, out)
    return out


def _cache_put(key: Any, value: Any) -> None:
    if key is None:
        return
    _COMPILED[key] = value
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)


def make_carry(params: Any, state: Any, opt_state: Any, data_key: jax.Array, train_key: jax.Array) -> dict[str, Any]:
    """A member's carry: everything that evolves during training (and is checkpointed)."""
    return {
        "params": params,
        "opt_state": opt_state,
        "state": state,
        "key": train_key,
        "data_key": data_key,
        "alive": jnp.asarray(True),
        "diverged_step": jnp.asarray(-1, jnp.int32),
        "diverged_code": jnp.asarray(0, jnp.int32),
    }


def init_carry(
    cache_key: Any,
    spec_fn: Callable[[Any], tuple[Any, Any, Any, Any]],
    hps: Sequence[Any],
    seeds: Sequence[int],
    in_shape: tuple[int, ...],
    batched: bool,
) -> dict[str, Any]:
    """The starting carry of every member (stacked on a member axis when ``batched``).

    One jitted init program per group (``spec_fn(hp)`` traced, so batched values arrive
    as scalars), called once per member; the keys come from :func:`member_keys`. Raises
    jax's tracer errors when the model's init needs concrete batched values.
    """
    key = None if cache_key is None else ("init", cache_key, tuple(in_shape), bool(jax.config.jax_enable_x64))
    try:
        fn = _COMPILED.get(key) if key is not None else None
    except TypeError:  # an unhashable part: no caching
        key, fn = None, None
    if fn is None:

        def member_init(hp, init_key, data_key, train_key):
            model, _, optimizer, init = spec_fn(hp)
            if init is not None:
                params, state = init(init_key, in_shape)
            else:
                _, params, state = model.init(init_key, in_shape)
            return make_carry(params, state, optimizer.init(params), data_key, train_key)

        fn = jax.jit(member_init)
        _cache_put(key, fn)
    carries = [fn(hp, *_member_keys_jit(int(seed))) for hp, seed in zip(hps, seeds)]
    if not batched:
        return carries[0]
    return stack_trees(carries)


def stack_trees(trees: Sequence[Any]) -> Any:
    """Stack pytrees on a new leading axis (on the host: no compilation per leaf)."""
    host = jax.device_get(list(trees))
    return jax.tree.map(lambda *a: jax.device_put(np.stack(a)), *host)


def unstack_tree(tree: Any, m: int) -> Any:
    """Member ``m`` of a stacked pytree (sliced on the host)."""
    return jax.tree.map(lambda a: jax.device_put(np.asarray(a)[m]), tree)


def _in_blocks(member_fn: Callable[..., Any], blocks: tuple[int, tuple[str, ...]], stacked: int) -> Callable[..., Any]:
    """``member_fn(*member_args, hp, *shared)`` over stacked members, run block by block.

    The first ``stacked`` arguments (member-stacked) and the batched entries of ``hp`` are cut
    into ``k`` blocks (``(k, G, ...)``); ``lax.map`` runs ``vmap(member_fn)`` over each block's
    ``G`` members with the block's choice values as unbatched scalars; outputs are joined back
    to ``(M, ...)``.
    """
    k, choice_keys = blocks

    def run(*args):
        members, hp, shared = args[:stacked], args[stacked], args[stacked + 1:]
        hb = {n: v for n, v in hp.items() if n not in choice_keys}
        hc = {n: hp[n].reshape(k, -1)[:, 0] for n in choice_keys}

        def cut(t):
            return jax.tree.map(lambda v: v.reshape(k, v.shape[0] // k, *v.shape[1:]), t)

        def one_block(block):
            m_blk, hb_blk, hc_blk = block
            per_member = jax.vmap(lambda m, h: member_fn(*m, {**h, **hc_blk}, *shared))
            with conv_autotune.members(_width(m_blk)):  # the convolutions' autotune times G members
                return per_member(m_blk, hb_blk)

        out = jax.lax.map(one_block, (cut(members), cut(hb), hc))
        return jax.tree.map(lambda v: v.reshape(v.shape[0] * v.shape[1], *v.shape[2:]), out)

    return run


def _width(tree: Any) -> int:
    """The leading (member) axis length of a stacked tree."""
    return int(jax.tree.leaves(tree)[0].shape[0])


def _members_vmap(fn: Callable[..., Any], in_axes: tuple, **kwargs: Any) -> Callable[..., Any]:
    """``jax.vmap(fn, in_axes)`` traced under :func:`funcnn.conv_autotune.members` of the
    member axis' length, so ``auto`` convolutions are timed as the vmapped program runs them."""
    vf = jax.vmap(fn, in_axes=in_axes, **kwargs)

    def run(*args: Any) -> Any:
        with conv_autotune.members(_width(args[0])):
            return vf(*args)

    return run


def _build_programs(spec_fn, plan, batched, classification, eval_batch_size, diagnostics, jit_kwargs, mesh=None,
                    blocks=None) -> Compiled:
    counter = TraceCounter()
    jit_kwargs = dict(jit_kwargs or {})
    spe, B = plan.steps_per_epoch, plan.batch_size
    # Data parallelism: each member's batch is split over the "data" axis; the program
    # stays the single-device one, so the loss (and batch norm) see the global batch.
    split_batch = mesh is not None and parallel.DATA in mesh.axis_names
    if split_batch:
        batch_sh = parallel.batch_sharding(mesh)

    def member_chunk(carry, hp, n, start, x, y):
        counter.traces += 1  # trace-time side effect: counts compilations of the step
        model, loss_fn, optimizer, _ = spec_fn(hp)
        step = make_train_step(model, loss_fn, optimizer, jit=False)
        K = plan.steps_per_call
        mdt = metric_dtype()
        N = x.shape[0]
        buf0 = {m: jnp.full((K,), jnp.nan, mdt) for m in STEP_METRICS}

        def epoch_perm(s):
            return jax.random.permutation(jax.random.fold_in(carry["data_key"], s // spe), N)

        def body(i, c):
            cur, buf, perm = c
            s = start + i
            # A new epoch starts: draw its permutation (the predicate is the same for
            # every member, so under vmap this stays a real branch).
            perm = jax.lax.cond((i > 0) & (s % spe == 0), lambda: epoch_perm(s), lambda: perm)
            bidx = jax.lax.dynamic_slice_in_dim(perm, (s % spe) * B, B)
            xb = jnp.take(x, bidx, axis=0)
            yb = jnp.take(y, bidx, axis=0)
            if split_batch:
                xb = jax.lax.with_sharding_constraint(xb, batch_sh)
                yb = jax.lax.with_sharding_constraint(yb, batch_sh)
            key = jax.random.fold_in(cur["key"], s)
            p, o, st, m = step(cur["params"], cur["opt_state"], cur["state"], xb, yb, key)
            loss = m["loss"]
            bad = ~jnp.isfinite(loss) | ~jnp.isfinite(m["grad_norm"])
            alive = cur["alive"]
            ok = alive & ~bad
            newly = alive & bad

            def keep(new, old):
                return jax.tree.map(lambda a, b: jnp.where(ok, a, b).astype(b.dtype), new, old)

            code = jnp.where(jnp.isnan(loss), 1, jnp.where(jnp.isinf(loss), 2, 3))
            nxt = dict(cur)
            nxt["params"] = keep(p, cur["params"])
            nxt["opt_state"] = keep(o, cur["opt_state"])
            nxt["state"] = keep(st, cur["state"])
            nxt["alive"] = alive & ~bad
            nxt["diverged_step"] = jnp.where(newly, s, cur["diverged_step"]).astype(cur["diverged_step"].dtype)
            nxt["diverged_code"] = jnp.where(newly, code, cur["diverged_code"]).astype(cur["diverged_code"].dtype)
            buf = {k: buf[k].at[i].set(jnp.where(alive, m[k], jnp.nan).astype(mdt)) for k in buf}
            return nxt, buf, perm

        carry, buf, _ = jax.lax.fori_loop(0, n, body, (carry, buf0, epoch_perm(start)))
        return carry, buf

    def member_eval(params, state, hp, datasets):
        counter.eval_traces += 1
        model, loss_fn, _, _ = spec_fn(hp)
        ev = make_eval_fn(
            model, loss_fn, classification=classification, batch_size=eval_batch_size, jit=False
        )
        out = {}
        for dname, (x, y) in datasets.items():
            for k, v in ev(params, state, x, y).items():
                out[f"{dname}_{k}"] = v
        if diagnostics is not None:
            for k, v in dict(diagnostics(model, params, state)).items():
                if k in out:
                    raise ValueError(f"diagnostics: metric name {k!r} clashes with a built-in metric")
                out[k] = jnp.asarray(v)
        return out

    if mesh is None:
        if batched and blocks is not None:
            chunk = _in_blocks(member_chunk, blocks, stacked=1)  # (carry, hp, n, start, x, y)
            evaluate = _in_blocks(member_eval, blocks, stacked=2)  # (params, state, hp, datasets)
        elif batched:
            chunk = _members_vmap(member_chunk, (0, 0, None, None, None, None))
            evaluate = _members_vmap(member_eval, (0, 0, 0, None))
        else:
            chunk, evaluate = member_chunk, member_eval
        return Compiled(jax.jit(chunk, **jit_kwargs), jax.jit(evaluate), evaluate, counter)

    rep = parallel.replicated(mesh)
    if batched:
        # spmd_axis_name: sharding constraints inside the member function get the member
        # axis split over "grid" (a batch becomes P("grid", "data")).
        spmd = parallel.GRID if parallel.GRID in mesh.axis_names else None
        chunk = _members_vmap(member_chunk, (0, 0, None, None, None, None), spmd_axis_name=spmd)
        evaluate = _members_vmap(member_eval, (0, 0, 0, None), spmd_axis_name=spmd)
        carry_sh = parallel.members_sharding(mesh)
    else:
        chunk, evaluate = member_chunk, member_eval
        carry_sh = rep
    chunk_kw = {"out_shardings": (carry_sh, rep), **jit_kwargs}
    return Compiled(jax.jit(chunk, **chunk_kw), jax.jit(evaluate, out_shardings=rep), evaluate, counter)



class Engine:
    """Trains one group of members; see the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        spec_fn: Callable[[Any], tuple[Any, Any, Any]],
        hp: Any,
        carry0: dict[str, Any],
        batched: bool,
        n_members: int,
        train: tuple[jax.Array, jax.Array],
        test: tuple[jax.Array, jax.Array] | None,
        plan: Plan,
        eval_train: bool,
        classification: bool | None,
        eval_batch_size: int,
        diagnostics: Callable[..., Mapping[str, jax.Array]] | None,
        jit_kwargs: Mapping[str, Any] | None,
        configs: Sequence[Mapping[str, Any]],
        member_ids: Sequence[int],
        cache_key: Any = None,
        mesh: Any = None,
        blocks: tuple[int, tuple[str, ...]] | None = None,
    ) -> None:
        self.name = name
        self.spec_fn = spec_fn
        self.mesh = mesh
        self.batched = batched
        self.M = n_members
        # On a mesh, a group is padded to a multiple of the "grid" axis (M_dev members on
        # device; the padding copies member 0 and is dropped from results/checkpoints).
        g = parallel.axis_size(mesh, parallel.GRID) if batched else 1
        self.M_dev = -(-n_members // g) * g
        if mesh is not None:
            self._carry_sh = parallel.members_sharding(mesh) if batched else parallel.replicated(mesh)
            hp = parallel.put(self._pad(hp), self._carry_sh)
            carry0 = self._place_carry(carry0)
            train = self._place_data(train)
            test = self._place_data(test) if test is not None else None
        self.hp = hp
        self.carry = carry0
        self._unpad = None
        self.x, self.y = train
        self.plan = plan
        self.configs = list(configs)
        self.member_ids = list(member_ids)
        self.datasets = {}
        if eval_train:
            self.datasets["train"] = train
        if test is not None:
            self.datasets["test"] = test
        self.classification = classification
        self.eval_batch_size = eval_batch_size
        self.diagnostics = diagnostics
        self._mdt = metric_dtype()
        self.programs = compiled_programs(
            cache_key, spec_fn=spec_fn, plan=plan, batched=batched, classification=classification,
            eval_batch_size=eval_batch_size, diagnostics=diagnostics, jit_kwargs=jit_kwargs, mesh=mesh,
            blocks=blocks if (batched and mesh is None) else None,
        )
        self.compile_seconds = 0.0
        self.compilations = 0
        self._traces0 = self.programs.counter.traces
        self._chunk = self.programs.chunk
        self._evaluate = self.programs.evaluate
        evaluate = self.programs.evaluate_raw

        # History buffers, member axis first.
        T = plan.total_steps
        self.step_hist = {m: np.full((self.M, T), np.nan, self._mdt) for m in STEP_METRICS}
        shapes = jax.eval_shape(evaluate, self.carry["params"], self.carry["state"], hp, self.datasets)
        E = len(plan.eval_steps)
        self.eval_hist = {}
        for k, sd in shapes.items():
            shp = tuple(sd.shape[1:]) if batched else tuple(sd.shape)
            self.eval_hist[k] = np.full((self.M, E, *shp), np.nan, self._mdt)
        self.eval_done = np.zeros((E,), bool)
        self.step = 0

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
        if self.mesh is None:
            return jax.device_get((self.carry["params"], self.carry["state"]))
        return jax.tree.map(self._members, (self.carry["params"], self.carry["state"]))

    # ------------------------------------------------------------------ host helpers
    def alive(self) -> np.ndarray:
        return self._members(self.carry["alive"]).reshape(self.M)

    def diverged(self) -> list[str | None]:
        steps = self._members(self.carry["diverged_step"]).reshape(self.M)
        codes = self._members(self.carry["diverged_code"]).reshape(self.M)
        return [divergence_message(c, s) for c, s in zip(codes, steps)]

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_tree(self) -> dict[str, Any]:
        carry = self.carry
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
        if self.mesh is None:
            self.carry = jax.tree.map(jnp.asarray, tree["carry"])
        else:
            self.carry = self._place_carry(tree["carry"])
        self.step_hist = {k: np.array(v) for k, v in tree["step_hist"].items()}
        self.eval_hist = {k: np.array(v) for k, v in tree["eval_hist"].items()}
        self.eval_done = np.array(tree["eval_done"], bool)
        self.step = int(tree["step"])

    # ------------------------------------------------------------------ compiling
    def compile(self) -> None:
        """Compile the train chunk and the evaluation ahead of time (once per program and input
        types, cached with the programs); later calls run the compiled executables.

        Safe to call from a background thread while another engine trains. Engines on a
        mesh keep ``jax.jit``'s own dispatch (their inputs carry shardings).
        """
        if self.mesh is not None:
            return
        t0 = time.perf_counter()
        chunk_args = (self.carry, self.hp, self.plan.steps_per_call, self.step, self.x, self.y)
        eval_args = (self.carry["params"], self.carry["state"], self.hp, self.datasets)
        chunk, new_c = self.programs.aot("chunk", self.programs.chunk, chunk_args)
        evaluate, new_e = self.programs.aot("evaluate", self.programs.evaluate, eval_args)
        self._chunk, self._evaluate = chunk, evaluate
        self.compilations += new_c + new_e
        if new_c or new_e:
            self.compile_seconds += time.perf_counter() - t0

    # ------------------------------------------------------------------ running
    def run_chunk(self) -> int:
        """Run steps up to the next boundary (at most ``steps_per_call``); returns how many."""
        nxt = min(b for b in self.plan.boundaries() if b > self.step)
        n = min(self.plan.steps_per_call, nxt - self.step)
        carry, buf = self._chunk(self.carry, self.hp, n, self.step, self.x, self.y)
        if self.mesh is not None:
            # One partitioned program in flight at a time (see the module docstring).
            carry = jax.block_until_ready(carry)
        buf = jax.device_get(buf)
        for k, v in buf.items():
            v = np.asarray(v).reshape(self.M_dev, -1)[: self.M]
            self.step_hist[k][:, self.step : self.step + n] = v[:, :n]
        self.carry, self.step = carry, self.step + n
        return n

    def pending_eval(self) -> int | None:
        """Index of the eval due at the current step and not done yet, else None."""
        try:
            i = self.plan.eval_steps.index(self.step)
        except ValueError:
            return None
        return None if self.eval_done[i] else i

    def run_eval(self, i: int) -> list[dict[str, Any]]:
        """Evaluate now (eval slot ``i``); returns one JSON-able record per member."""
        out = jax.device_get(
            self._evaluate(self.carry["params"], self.carry["state"], self.hp, self.datasets)
        )
        alive = self.alive()
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
                "step": self.step,
                "epoch": self.step / spe,
                "alive": bool(alive[m]),
            }
            # The mean training-batch loss since the previous evaluation.
            window = self.step_hist["loss"][m, self.plan.eval_steps[i - 1] if i > 0 else 0 : self.step]
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
    try:
        for j, (eng, ck) in enumerate(zip(engines, ckpts)):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt  # the engines from here on never start
            current = (eng, ck)
            ahead.wait(j)  # this engine's programs are compiled; the next one's start compiling
            if bar is not None:
                bar.set_description(f"{desc} {eng.name}" if len(engines) > 1 else desc)
            while True:
                i = eng.pending_eval()
                if i is not None:
                    pending.extend(eng.run_eval(i))
                if eng.step in eng.plan.checkpoint_steps or (eng.done() and eng.step > 0):
                    save(eng, ck)
                if eng.done():
                    break
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt
                n = eng.run_chunk()
                if bar is not None:
                    bar.update(n)
                    bar.set_postfix(eng.status(), refresh=False)
                if callback is not None:
                    callback({"group": eng.name, "step": eng.step, "status": eng.status()})
            if bar is not None and eng.step < eng.plan.total_steps:
                bar.update(eng.plan.total_steps - eng.step)  # stopped early (all diverged)
            flush()
    except KeyboardInterrupt:
        interrupted = True
        if current is not None:
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

    def _submit(self, j: int) -> None:
        if j >= len(self.engines) or j in self.futures:
            return
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="funcnn-compile")
        self.futures[j] = self.pool.submit(self.engines[j].compile)

    def wait(self, j: int) -> None:
        """Block until engine ``j`` is compiled (compiling it here if nobody started), then
        start compiling engine ``j + 1``."""
        if j in self.futures:
            self.futures.pop(j).result()
        else:
            self.engines[j].compile()
        self._submit(j + 1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def resolve_spec(fn: str, spec: Any) -> tuple[Any, Any, Any, Any]:
    """``(model, loss_fn, optimizer, init)`` from a TrainSpec or a 3/4-tuple."""
    from funcnn.train.step import check_model, check_optimizer

    if not isinstance(spec, tuple) or len(spec) not in (3, 4):
        raise TypeError(
            f"{fn}: build(config) must return TrainSpec(model, loss, optimizer[, init]) or a "
            f"tuple (model, loss, optimizer), got {type(spec).__name__}"
        )
    model, loss, optimizer = spec[:3]
    init = spec[3] if len(spec) == 4 else None
    check_model(fn, model)
    check_optimizer(fn, optimizer)
    return model, resolve_loss(loss, fn), optimizer, init
