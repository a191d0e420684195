"""What a member carries through training (params, optimizer state, keys, its alive flag)
and how every member's carry starts."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from funcnn._ops.host import to_device
from funcnn.train.engine.programs import cached, remember

DIVERGENCE_REASONS = {1: "loss became nan", 2: "loss became inf", 3: "gradient norm became non-finite"}


def divergence_message(code: int, step: int) -> str | None:
    """``"loss became nan at step 37"`` (steps count from 0), or None if not diverged."""
    if step < 0 or code == 0:
        return None
    return f"{DIVERGENCE_REASONS.get(int(code), 'diverged')} at step {int(step)}"


def member_keys(seed: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(init_key, data_key, train_key)`` of a member with this seed (raw uint32 keys)."""
    root = jax.random.PRNGKey(seed)
    k = jax.random.split(root, 3)
    return k[0], k[1], k[2]


_member_keys_jit = jax.jit(member_keys)


def make_carry(params: Any, state: Any, opt_state: Any, data_key: jax.Array, train_key: jax.Array) -> dict[str, Any]:
    """A member's carry: everything that evolves during training (and is checkpointed)."""
    return {
        "params": params,
        "opt_state": opt_state,
        "state": state,
        "key": train_key,
        "data_key": data_key,
        "alive": to_device(True),
        "diverged_step": to_device(-1, np.int32),
        "diverged_code": to_device(0, np.int32),
    }


def init_carry(
    cache_key: Any,
    spec_fn: Callable[[Any], tuple[Any, Any, Any, Any]],
    *,
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
    fn = cached(key)
    if fn is None:

        def member_init(hp, init_key, data_key, train_key):
            model, _, optimizer, init = spec_fn(hp)
            if init is not None:
                params, state = init(init_key, in_shape)
            else:
                _, params, state = model.init(init_key, in_shape)
            return make_carry(params, state, optimizer.init(params), data_key, train_key)

        fn = remember(key, jax.jit(member_init))
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


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def block_width(n_members: int, blocks: tuple[int, tuple[str, ...]] | None) -> int:
    """Members per choice block (``blocks``: ``k`` blocks of ``M / k``), or the group's size."""
    return n_members // blocks[0] if blocks is not None else n_members


def slices_of(n_members: int, blocks: tuple[int, tuple[str, ...]] | None, most: int) -> int:
    """The most equal slices, at most ``most``, that cut every block (or the group) alike."""
    width = block_width(n_members, blocks)
    return max(n for n in range(1, max(1, min(most, width)) + 1) if width % n == 0)


def auto_parts(n_members: int, blocks: tuple[int, tuple[str, ...]] | None, *, mesh: Any = None) -> int:
    """How many slices a group's members train in, side by side, when the user did not say.

    On a CPU with several cores (one process, no device mesh), the most slices, at most one per
    core, that cut every choice block or the group into equal parts: a vmapped group's small
    matmuls keep about one core busy, so a second slice on a second core trains beside it (and
    a narrower vmap costs less per member). Grids that also train side by side
    (:func:`funcnn.train.run_grids`) then share the cores with the slices. On GPU/TPU 1: one
    wide program is what an accelerator wants.
    """
    if mesh is not None or jax.default_backend() != "cpu" or jax.process_count() > 1:
        return 1
    return slices_of(n_members, blocks, cpu_cores())


@dataclasses.dataclass(frozen=True)
class MemberParts:
    """A group's members dealt into equal slices that train side by side on one program.

    ``index[p]``: the group's member positions in slice ``p``. With choice blocks, every slice
    takes the same share of every block (so each slice is ``k`` blocks of its own), else
    contiguous runs. :meth:`cut` and :meth:`join` move member-stacked trees between the
    group's order and the slices (on the host).
    """

    index: tuple[np.ndarray, ...]

    @classmethod
    def of(cls, n_members: int, blocks: tuple[int, tuple[str, ...]] | None, parts: int) -> MemberParts:
        k = blocks[0] if blocks is not None else 1
        width = n_members // k
        if parts < 1 or width % parts:
            raise ValueError(
                f"parts={parts} must divide the {width} members of each of the group's {k} choice block"
                f"{'s' if k != 1 else ''} ({n_members} members)"
            )
        g = width // parts
        return cls(tuple(np.concatenate([np.arange(b * width + p * g, b * width + (p + 1) * g) for b in range(k)])
                         for p in range(parts)))

    def cut(self, tree: Any) -> list[Any]:
        host = jax.device_get(tree)
        return [jax.tree.map(lambda a, ix=ix: jax.device_put(np.asarray(a)[ix]), host) for ix in self.index]

    def join(self, trees: Sequence[Any]) -> Any:
        order = np.argsort(np.concatenate(self.index), kind="stable")
        return jax.tree.map(lambda *a: np.concatenate(a)[order], *jax.device_get(list(trees)))
