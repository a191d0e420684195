"""An engine's two jitted functions (the train chunk and the evaluation), built from one frozen
:class:`EngineConfig`, and the cache that reuses them across calls."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._ops import conv_autotune
from funcnn._ops.host import to_device
from funcnn.train import parallel
from funcnn.train.engine.plan import Plan, metric_dtype
from funcnn.train.step import STEP_METRICS, make_eval_fn, make_train_step


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """How an engine trains and evaluates: one frozen value, made once from the user's
    :class:`~funcnn.train.TrainOptions` and passed whole to the engine and its programs.

    Attributes:
      plan: when to step, evaluate and checkpoint (:class:`~funcnn.train.engine.Plan`).
      batched: members stacked on a leading axis and vmapped (a grid group), or one model.
      eval_train: evaluate on the training set too.
      classification: report accuracies (None: decide from the labels' dtype).
      eval_batch_size: examples per evaluation batch.
      diagnostics: ``(model, params, state) -> {name: value}`` added to every evaluation.
      jit_kwargs: extra ``jax.jit`` keywords for the train chunk (their programs are not cached).
      mesh: a device mesh (:mod:`funcnn.train.parallel`), or None for one device.
      blocks: ``(k, choice_keys)``: the members form ``k`` equal contiguous blocks, each with one
        value of every choice key (see :mod:`funcnn.train.engine`); None: plain vmap.
      parts: train a group's members as at most this many equal slices side by side, one thread
        each, on one compiled program (every choice block is cut alike); None: as
        :func:`~funcnn.train.engine.carry.auto_parts` decides. Training and checkpoints do not
        depend on it; evaluations (run at the slice's width) can differ in their last bit.
      tune_width: the member count the convolutions' ``auto`` choice is timed at (set by the
        engine to a whole block's members when it slices a group, so that slicing never
        changes which algorithm runs); None: the width the program runs at.
    """

    plan: Plan
    batched: bool
    eval_train: bool = False
    classification: bool | None = True
    eval_batch_size: int = 1000
    diagnostics: Callable[..., Mapping[str, jax.Array]] | None = None
    jit_kwargs: Mapping[str, Any] | None = None
    mesh: Any = None
    blocks: tuple[int, tuple[str, ...]] | None = None
    parts: int | None = None
    tune_width: int | None = None

    def program_key(self) -> tuple[Any, ...]:
        """The settings that shape the compiled programs (``eval_train`` only changes their inputs)."""
        p = self.plan
        key = (p.steps_per_call, p.steps_per_epoch, p.batch_size, self.batched, self.classification,
               self.eval_batch_size, self.diagnostics)
        if self.batched and self.mesh is None and self.blocks is not None:
            key = (*key, self.blocks)
        if self.mesh is not None:
            key = (*key, self.mesh)
        if self.tune_width is not None:
            key = (*key, ("tune_width", self.tune_width))
        return key


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
    #: The chunk before ``jax.jit`` and its jit keywords: :meth:`aot` retraces it when the
    #: convolutions' measured plans are judged (:func:`funcnn._ops.conv_autotune.judge`).
    chunk_fn: Callable[..., Any] | None = None
    chunk_jit_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def aot(self, name: str, jitted: Any, args: tuple[Any, ...], probe: tuple[Any, ...] | None = None
            ) -> tuple[Any, int]:
        """``(executable, newly_compiled)``: ``jitted`` lowered and compiled for ``args``' types.

        For the chunk, with ``probe`` (arguments of the same types, a short run): compiled
        through :func:`funcnn._ops.conv_autotune.judge`, which times the chunk on ``probe``
        against its twin on the thresholds' convolution plans when its trace chose measured
        plans not judged before, and keeps the faster."""
        leaves, treedef = jax.tree.flatten(args)
        sig = (name, treedef, tuple(
            (np.shape(a), jnp.result_type(a), bool(getattr(a, "weak_type", False)) or isinstance(a, (int, float)))
            for a in leaves
        ))
        if sig in self.executables:
            return self.executables[sig], 0
        if name == "chunk" and probe is not None and self.chunk_fn is not None:
            fn, kw = self.chunk_fn, dict(self.chunk_jit_kwargs)
            exe = conv_autotune.judge(lambda: jax.jit(conv_autotune._fresh(fn), **kw).lower(*args).compile(),
                                      lambda e: e(*probe))
        else:
            exe = jitted.lower(*args).compile()
        self.executables[sig] = exe
        return exe, 1


# Jitted programs reused across fit/run_grid calls that train the same objects (the same
# model, loss, optimizer or build function, and the same loop constants); jax.jit's own
# cache is keyed on the function object, which is new in every call otherwise.
_COMPILED: collections.OrderedDict[Any, Compiled] = collections.OrderedDict()
_COMPILED_MAX = 32


def compiled_programs(cache_key: Any, spec_fn: Callable[[Any], tuple[Any, Any, Any, Any]], config: EngineConfig) -> Compiled:
    """The jitted chunk and evaluation functions of an engine, cached under ``cache_key`` and the
    parts of ``config`` that shape them (``cache_key=None``, or ``jit_kwargs`` given: no cache)."""
    key = None
    if cache_key is not None and not config.jit_kwargs:
        key = (cache_key, *config.program_key(), bool(jax.config.jax_enable_x64))
    out = cached(key)
    if out is None:
        out = remember(key, _build_programs(spec_fn, config))
    return out

def cached(key: Any) -> Any:
    """What :func:`remember` kept under ``key`` (None: nothing, or ``key`` is None or unhashable)."""
    try:
        if key is None or key not in _COMPILED:
            return None
    except TypeError:  # an unhashable part: no caching
        return None
    _COMPILED.move_to_end(key)
    return _COMPILED[key]


def remember(key: Any, value: Any) -> Any:
    """Keep ``value`` under ``key`` (the oldest entries go past ``_COMPILED_MAX``); returns it."""
    try:
        if key is not None:
            _COMPILED[key] = value
    except TypeError:
        return value
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)
    return value


def _in_blocks(member_fn: Callable[..., Any], blocks: tuple[int, tuple[str, ...]], stacked: int,
               tune_width: int | None = None) -> Callable[..., Any]:
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
            with conv_autotune.members(tune_width or _width(m_blk)):  # the convolutions' autotune times G members
                return per_member(m_blk, hb_blk)

        out = jax.lax.map(one_block, (cut(members), cut(hb), hc))
        return jax.tree.map(lambda v: v.reshape(v.shape[0] * v.shape[1], *v.shape[2:]), out)

    return run


def permutation(key: jax.Array, n: int) -> jax.Array:
    """``jax.random.permutation(key, n)``, bit for bit (int32), cheaper on CPU for ``n <= 65536``.

    jax shuffles by stably sorting the indices by fresh random 32-bit keys, in
    ``ceil(3 ln n / ln(2^32 - 1))`` rounds; XLA's CPU sort of a (key, index) pair is several
    times slower than its sort of one uint32 array (benchmarks/NOTES.md, part K). On CPU each
    round's stable sort is done here as two one-array sorts, least significant half first (a
    radix sort on 16-bit halves: each pass sorts ``half << 16 | position``, which is that half
    with ties in the previous order), so the order, ties included, is jax's. Above 65,536
    indices positions do not fit in 16 bits, and other backends were not measured: there
    jax's own permutation runs.
    """
    if n > 1 << 16 or jax.default_backend() != "cpu":
        return jax.random.permutation(key, n).astype(jnp.int32)
    rounds = int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))
    x = jnp.arange(n, dtype=jnp.int32)
    for _ in range(rounds):
        key, subkey = jax.random.split(key)
        x = x[_stable_argsort_u32(jax.random.bits(subkey, (n,), jnp.uint32))]
    return x


def _stable_argsort_u32(k: jax.Array) -> jax.Array:
    """The indices that sort the uint32 vector ``k`` (length <= 65536), ties in index order."""
    pos = jnp.arange(k.shape[0], dtype=jnp.uint32)
    low = jax.lax.sort(((k & 0xFFFF) << 16) | pos) & 0xFFFF  # by the low half, ties by index
    low = low.astype(jnp.int32)
    high = jax.lax.sort(((k[low] >> 16) << 16) | pos) & 0xFFFF  # by the high half, ties by the pass before
    return low[high.astype(jnp.int32)]


#: The carry entries of a member's batch order (added by :func:`with_batch_order`): ``order``,
#: the permutation of the training set its last step drew its batch from, and
#: ``order_epoch``, that permutation's epoch (-1: none drawn yet).
ORDER_KEYS = ("order", "order_epoch")


def with_batch_order(carry: dict[str, Any], n_examples: int, members: int | None) -> dict[str, Any]:
    """``carry`` with room for its batch order carried from chunk to chunk (``members``: the
    stacked members, None for one model's carry); an order already there of the right length
    is kept, any other is replaced by "none drawn yet".

    Each epoch's order is a permutation of the ``n_examples`` indices, a sort of as many keys;
    carried, a chunk that starts inside an epoch continues its order instead of drawing it
    again (the draw then happens once per epoch, not once per chunk as well). Only a first
    chunk, or one after a checkpoint was restored (checkpoints leave the order out: it
    follows from the seed and the step), draws at its start. Host arrays: no XLA program."""
    lead = () if members is None else (members,)
    old = carry.get(ORDER_KEYS[0])
    if old is not None and tuple(np.shape(old)) == (*lead, n_examples):
        return carry
    return {**carry, "order": to_device(np.zeros((*lead, n_examples), np.int32)),
            "order_epoch": to_device(np.full(lead, -1, np.int32))}


def without_batch_order(carry: dict[str, Any]) -> dict[str, Any]:
    """``carry`` without the entries :func:`with_batch_order` added (what checkpoints keep)."""
    return {k: v for k, v in carry.items() if k not in ORDER_KEYS}


def _redrawing(chunk: Callable[..., Any], spe: int) -> Callable[..., Any]:
    """``chunk(carry, hp, n, start, x, y)`` passing the group's ``redraw`` flag to the member
    chunk: True where some member's carried batch order is not the one of ``start``'s epoch
    (computed over every member, outside the vmap, so it stays one unbatched flag)."""

    def run(carry, hp, n, start, x, y):
        if ORDER_KEYS[1] not in carry:
            return chunk(carry, hp, n, start, x, y, True)
        redraw = jnp.any(carry[ORDER_KEYS[1]] != start // spe)
        return chunk(carry, hp, n, start, x, y, redraw)

    return run


def _width(tree: Any) -> int:
    """The leading (member) axis length of a stacked tree."""
    return int(jax.tree.leaves(tree)[0].shape[0])


def _members_vmap(fn: Callable[..., Any], in_axes: tuple, tune_width: int | None = None, **kwargs: Any
                  ) -> Callable[..., Any]:
    """``jax.vmap(fn, in_axes)`` traced under :func:`funcnn._ops.conv_autotune.members` of the
    member axis' length, so ``auto`` convolutions are timed as the vmapped program runs them."""
    vf = jax.vmap(fn, in_axes=in_axes, **kwargs)

    def run(*args: Any) -> Any:
        with conv_autotune.members(tune_width or _width(args[0])):
            return vf(*args)

    return run


def _build_programs(spec_fn: Callable[[Any], tuple[Any, Any, Any, Any]], config: EngineConfig) -> Compiled:
    plan, batched, mesh = config.plan, config.batched, config.mesh
    classification, eval_batch_size, diagnostics = config.classification, config.eval_batch_size, config.diagnostics
    blocks = config.blocks if (batched and mesh is None) else None
    counter = TraceCounter()
    jit_kwargs = dict(config.jit_kwargs or {})
    spe, B = plan.steps_per_epoch, plan.batch_size
    # Data parallelism: each member's batch is split over the "data" axis; the program
    # stays the single-device one, so the loss (and batch norm) see the global batch.
    split_batch = mesh is not None and parallel.DATA in mesh.axis_names
    if split_batch:
        batch_sh = parallel.batch_sharding(mesh)

    def member_chunk(carry, hp, n, start, x, y, redraw=True):
        counter.traces += 1  # trace-time side effect: counts compilations of the step
        model, loss_fn, optimizer, _ = spec_fn(hp)
        step = make_train_step(model, loss_fn, optimizer, jit=False)
        K = plan.steps_per_call
        mdt = metric_dtype()
        N = x.shape[0]
        buf0 = {m: jnp.full((K,), jnp.nan, mdt) for m in STEP_METRICS}

        def epoch_perm(s):
            # int32 whatever jax_enable_x64 says: the type of the carried order
            return permutation(jax.random.fold_in(carry["data_key"], s // spe), N)

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

        carried = ORDER_KEYS[0] in carry
        if carried:
            # The batch order carried from the chunk before (see with_batch_order): drawn
            # again only where some member's is not the order of this chunk's first epoch
            # (``redraw``, one flag for the whole group, so under vmap a real branch).
            order = {k: carry[k] for k in ORDER_KEYS}
            carry = {k: v for k, v in carry.items() if k not in ORDER_KEYS}
            perm0 = jax.lax.cond(redraw, lambda: epoch_perm(start), lambda: order["order"])
        else:
            perm0 = epoch_perm(start)
        carry, buf, perm = jax.lax.fori_loop(0, n, body, (carry, buf0, perm0))
        if carried:
            last = jnp.where(n > 0, (start + n - 1) // spe, jnp.where(redraw, start // spe, order["order_epoch"]))
            carry = {**carry, "order": perm, "order_epoch": last.astype(order["order_epoch"].dtype)}
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
            # run once per evaluation, so its convolutions are not worth timing
            with conv_autotune.untimed():
                extra = dict(diagnostics(model, params, state))
            for k, v in extra.items():
                if k in out:
                    raise ValueError(f"diagnostics: metric name {k!r} clashes with a built-in metric")
                out[k] = jnp.asarray(v)
        return out

    if mesh is None:
        if batched and blocks is not None:
            chunk = _in_blocks(member_chunk, blocks, 1, config.tune_width)  # (carry, hp, n, start, x, y, redraw)
            evaluate = _in_blocks(member_eval, blocks, 2, config.tune_width)  # (params, state, hp, datasets)
        elif batched:
            chunk = _members_vmap(member_chunk, (0, 0, None, None, None, None, None), config.tune_width)
            evaluate = _members_vmap(member_eval, (0, 0, 0, None), config.tune_width)
        else:
            chunk, evaluate = member_chunk, member_eval
        chunk = _redrawing(chunk, spe)
        return Compiled(jax.jit(chunk, **jit_kwargs), jax.jit(evaluate), evaluate, counter,
                        chunk_fn=chunk, chunk_jit_kwargs=jit_kwargs)

    rep = parallel.replicated(mesh)
    if batched:
        # spmd_axis_name: sharding constraints inside the member function get the member
        # axis split over "grid" (a batch becomes P("grid", "data")).
        spmd = parallel.GRID if parallel.GRID in mesh.axis_names else None
        chunk = _members_vmap(member_chunk, (0, 0, None, None, None, None, None), spmd_axis_name=spmd)
        evaluate = _members_vmap(member_eval, (0, 0, 0, None), spmd_axis_name=spmd)
        carry_sh = parallel.members_sharding(mesh)
    else:
        chunk, evaluate = member_chunk, member_eval
        carry_sh = rep
    chunk = _redrawing(chunk, spe)
    chunk_kw = {"out_shardings": (carry_sh, rep), **jit_kwargs}
    return Compiled(jax.jit(chunk, **chunk_kw), jax.jit(evaluate, out_shardings=rep), evaluate, counter)

