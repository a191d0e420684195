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
``(seed, step)`` alone, which makes resuming exact. The engine carries each member's current
permutation from chunk to chunk (``order``, ``order_epoch`` in the carry), so a permutation
(a sort of ``N`` keys) is drawn once per epoch, not again by every chunk that starts inside
it; checkpoints leave it out and a restored run draws it again.

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

Devices (``mesh``, see :mod:`funcnn.train.parallel`): with a mesh, the same two functions are
jitted with output shardings: the carry replicated (``fit``) or its member axis split over
the ``grid`` axis (groups padded to a multiple of its size with copies of member 0), each
gathered batch constrained to be split over the ``data`` axis (under ``vmap`` with
``spmd_axis_name="grid"``), metrics replicated. XLA's partitioner inserts the gradient
all-reduce. Data arrays already laid out on the mesh (or spread over processes) are kept;
others are replicated. Each call is waited for before the next (simulated CPU devices
can stall in collective rendezvous when many partitioned programs are queued). Without a
mesh nothing of this runs: the single-device programs are unchanged.

Slices (``EngineConfig.parts``): on a multi-core CPU a group's members can train as equal
slices side by side, one thread each, on the same compiled program (each slice keeps ``k``
blocks of its own); the engine joins them for records and checkpoints, which stay the
whole group's (see :class:`~funcnn.train.engine.carry.MemberParts`).

Modules: :mod:`~funcnn.train.engine.plan` (when to step, evaluate and checkpoint; data
checks), :mod:`~funcnn.train.engine.carry` (what a member carries and how it starts),
:mod:`~funcnn.train.engine.programs` (the two jitted functions and their cache, built from one
frozen :class:`EngineConfig`), :mod:`~funcnn.train.engine.runner` (:class:`Engine` and the run
loop).
"""

from funcnn.train.engine.plan import Plan, check_data, check_labels, make_plan, metric_dtype
from funcnn.train.engine.carry import (
    DIVERGENCE_REASONS,
    divergence_message,
    init_carry,
    make_carry,
    member_keys,
    stack_trees,
    unstack_tree,
)
from funcnn.train.engine.programs import Compiled, EngineConfig, TraceCounter, compiled_programs
from funcnn.train.engine.runner import CompileAhead, Engine, run_engines

__all__ = [
    "DIVERGENCE_REASONS", "CompileAhead", "Compiled", "Engine", "EngineConfig", "Plan", "TraceCounter",
    "check_data", "check_labels", "compiled_programs", "divergence_message", "init_carry", "make_carry",
    "make_plan", "member_keys", "metric_dtype", "run_engines", "stack_trees", "unstack_tree",
]
