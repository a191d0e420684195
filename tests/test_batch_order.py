"""The batch order carried from chunk to chunk: an epoch's permutation is drawn once (not again at
every chunk that starts inside the epoch), training is bitwise the same however the steps are cut
into chunks, a stale or missing order is drawn again, and checkpoints leave it out."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import Activation, Dense, serial
from funcnn.train import TrainSpec, fit, run_grid
from funcnn.train.engine import EngineConfig, compiled_programs, init_carry, make_plan
from funcnn.train.engine.programs import ORDER_KEYS, with_batch_order, without_batch_order

from _tiny import xent

N, B = 40, 8  # 5 steps per epoch


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 4)).astype(np.float32), rng.integers(0, 3, size=N).astype(np.int32)


def _model():
    return serial(Dense(6), Activation("tanh"), Dense(3))


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


@pytest.mark.parametrize("per_call", [1, 3, 7])
def test_fit_is_the_same_however_the_steps_are_chunked(per_call):
    x, y = _data()
    ref = fit(_model(), xent, optax.adam(1e-2), (x, y), steps=23, batch_size=B, steps_per_call=23, seed=3,
              progress=False, eval_every=0)
    got = fit(_model(), xent, optax.adam(1e-2), (x, y), steps=23, batch_size=B, steps_per_call=per_call, seed=3,
              progress=False, eval_every=0)
    for a, b in zip(_leaves(ref.params), _leaves(got.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ref.history.step_metrics["loss"], got.history.step_metrics["loss"])


@pytest.mark.parametrize("choices,parts", [((), 1), (("act",), 1), (("act",), 2)])
def test_grid_is_the_same_however_the_steps_are_chunked(choices, parts):
    """Plain vmap, choice blocks (lax.map over blocks) and blocks in two slices."""
    x, y = _data()

    def build(c):
        return TrainSpec(serial(Dense(6), Activation(c["act"]), Dense(3)), xent, optax.adam(c["lr"]))

    grid = {"act": ["tanh", "relu"], "lr": [1e-2, 3e-2], "seed": [0, 1]}
    runs = [run_grid(build, grid, (x, y), steps=17, batch_size=B, steps_per_call=k, eval_every=0, progress=False,
                     parts=parts, choices=choices, batched=("lr",)) for k in (17, 3)]
    for ma, mb in zip(runs[0].members, runs[1].members):
        for a, b in zip(_leaves(ma.params), _leaves(mb.params)):
            np.testing.assert_array_equal(a, b)


def _program(members):
    model = _model()
    opt = optax.sgd(0.1)

    def spec_fn(hp):
        return model, xent, opt, None

    plan = make_plan("test", N, batch_size=B, steps=100, epochs=None, eval_every=0, checkpoint_every=None,
                     steps_per_call=4)
    seeds = list(range(members))
    carry = init_carry(None, spec_fn, hps=[{} for _ in seeds], seeds=seeds, in_shape=(B, 4), batched=True)
    prog = compiled_programs(None, spec_fn, EngineConfig(plan=plan, batched=True, classification=None))
    return prog.chunk, with_batch_order(carry, N, members)


def _epoch_order(carry, m, epoch):
    return np.asarray(jax.random.permutation(jax.random.fold_in(carry["data_key"][m], epoch), N))


def test_the_order_is_drawn_at_the_start_and_carried_inside_an_epoch():
    chunk, c0 = _program(2)
    x, y = map(jnp.asarray, _data())
    assert np.all(np.asarray(c0["order_epoch"]) == -1)  # none drawn yet
    c1, _ = chunk(c0, {}, 2, 0, x, y)  # steps 0, 1 of epoch 0: drawn at the start
    np.testing.assert_array_equal(np.asarray(c1["order_epoch"]), [0, 0])
    for m in range(2):
        np.testing.assert_array_equal(np.asarray(c1["order"][m]), _epoch_order(c0, m, 0))
    c2, _ = chunk(c1, {}, 4, 2, x, y)  # steps 2..5: epoch 1 starts at step 5, drawn inside
    np.testing.assert_array_equal(np.asarray(c2["order_epoch"]), [1, 1])
    for m in range(2):
        np.testing.assert_array_equal(np.asarray(c2["order"][m]), _epoch_order(c0, m, 1))


def test_a_carried_order_is_used_and_a_stale_one_drawn_again():
    chunk, c0 = _program(2)
    x, y = map(jnp.asarray, _data())
    c1, _ = chunk(c0, {}, 2, 0, x, y)
    ref, _ = chunk(c1, {}, 1, 2, x, y)
    # The same chunk from a carry whose order was tampered with but still claims epoch 0: the
    # carried order is what the step uses (nothing drawn), so the step differs ...
    fake = {**c1, "order": jnp.flip(c1["order"], axis=1)}
    used, _ = chunk(fake, {}, 1, 2, x, y)
    assert any(not np.array_equal(a, b) for a, b in zip(_leaves(ref["params"]), _leaves(used["params"])))
    # ... while one member marked "none drawn" makes the group draw its orders again: the
    # reference step, bitwise.
    stale = {**fake, "order_epoch": jnp.asarray([0, -1], jnp.int32)}
    again, _ = chunk(stale, {}, 1, 2, x, y)
    for a, b in zip(_leaves(ref["params"]), _leaves(again["params"])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(again["order"]), np.asarray(c1["order"]))


def test_a_carry_without_an_order_draws_it_every_chunk_and_keeps_its_structure():
    chunk, c0 = _program(2)
    x, y = map(jnp.asarray, _data())
    bare = without_batch_order(c0)
    assert not set(ORDER_KEYS) & set(bare)
    out, _ = chunk(bare, {}, 3, 1, x, y)  # starts inside epoch 0: drawn at the start, as before
    assert set(out) == set(bare)
    witho, _ = chunk(c0, {}, 3, 1, x, y)
    for a, b in zip(_leaves(out["params"]), _leaves(witho["params"])):
        np.testing.assert_array_equal(a, b)


def test_with_batch_order_keeps_a_fitting_order_and_replaces_another():
    carry = {"alive": jnp.ones((3,), bool)}
    c = with_batch_order(carry, 10, 3)
    assert c["order"].shape == (3, 10) and c["order"].dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(c["order_epoch"]), [-1, -1, -1])
    kept = with_batch_order({**c, "order_epoch": jnp.zeros((3,), jnp.int32)}, 10, 3)
    np.testing.assert_array_equal(np.asarray(kept["order_epoch"]), [0, 0, 0])
    other = with_batch_order(kept, 12, 3)  # another training set: not the same order
    assert other["order"].shape == (3, 12)
    np.testing.assert_array_equal(np.asarray(other["order_epoch"]), [-1, -1, -1])
    single = with_batch_order({}, 10, None)
    assert single["order"].shape == (10,) and single["order_epoch"].shape == ()


@pytest.mark.parametrize("n", [1, 2, 5, 160, 4000, 65536, 65537])
def test_permutation_is_jaxs_bit_for_bit(n):
    from funcnn.train.engine.programs import permutation

    keys = jax.random.split(jax.random.PRNGKey(n), 3)
    want = np.stack([np.asarray(jax.random.permutation(k, n)) for k in keys])
    got = jax.jit(jax.vmap(lambda k: permutation(k, n)))(keys)  # as the engine runs it: vmapped, jitted
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), want)


def test_permutation_is_jaxs_without_x64():
    """The suite runs with jax_enable_x64 (conftest.py); users mostly without: checked in a
    plain subprocess."""
    import subprocess
    import sys

    code = (
        "import jax, numpy as np\n"
        "from funcnn.train.engine.programs import permutation\n"
        "assert not jax.config.read('jax_enable_x64')\n"
        "ks = jax.random.split(jax.random.PRNGKey(3), 4)\n"
        "for n in (3, 4000, 60000):\n"
        "    got = jax.jit(jax.vmap(lambda k: permutation(k, n)))(ks)\n"
        "    want = np.stack([np.asarray(jax.random.permutation(k, n)) for k in ks])\n"
        "    assert np.array_equal(np.asarray(got), want), n\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_stable_argsort_of_uint32_keys_with_ties():
    from funcnn.train.engine.programs import _stable_argsort_u32

    rng = np.random.default_rng(0)
    for n in (1, 7, 1000, 65536):
        # few distinct halves: many ties in the full keys, in the low halves and in the high ones
        k = (rng.integers(0, 4, n).astype(np.uint32) << 16) | rng.integers(0, 3, n).astype(np.uint32)
        k[: n // 3] |= np.uint32(0xFFFF0000)  # the top bits set too
        np.testing.assert_array_equal(np.asarray(_stable_argsort_u32(jnp.asarray(k))), np.argsort(k, kind="stable"))


def test_checkpoints_leave_the_order_out_and_a_resume_draws_it(tmp_path):
    """The checkpoint holds no batch order (its tree lists every saved leaf); a run stopped
    inside an epoch resumes bitwise equal to one that ran through."""
    import json

    x, y = _data()

    def stop_at(step):
        def callback(info):
            if info["step"] >= step:
                raise KeyboardInterrupt
        return callback

    kw = dict(steps=23, batch_size=B, steps_per_call=3, seed=1, progress=False, eval_every=0, checkpoint_every=7)
    full = fit(_model(), xent, optax.adam(1e-2), (x, y), **kw)
    ck = tmp_path / "ck"
    stopped = fit(_model(), xent, optax.adam(1e-2), (x, y), checkpoint_dir=str(ck), callback=stop_at(7), **kw)
    assert stopped.interrupted and 7 % (N // B)  # stopped inside an epoch
    saved = json.loads((ck / "7" / "tree" / "_METADATA").read_text())["tree_metadata"]
    assert any("'params'" in k for k in saved) and not any(o in k for k in saved for o in ORDER_KEYS)
    resumed = fit(_model(), xent, optax.adam(1e-2), (x, y), checkpoint_dir=str(ck), resume=True, **kw)
    for a, b in zip(_leaves(full.params), _leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
