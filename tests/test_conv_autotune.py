"""funcnn.conv_autotune: algorithm="auto" on CPU measures each new shape once and keeps it."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn
from funcnn import conv_autotune as at
from funcnn.conv import conv_algorithm, conv_plan


@pytest.fixture
def tuning(monkeypatch, tmp_path):
    """Autotune on, an empty cache folder, a fake timer recording its calls."""
    monkeypatch.setenv(at.ENV, "1")
    monkeypatch.setenv(f"{at.ENV}_DIR", str(tmp_path))
    calls = []
    # Fake seconds: textbook is fastest for the forward, taps for dx, space_to_depth for dw.
    fastest = {"forward": "textbook", "input_grad": "taps", "kernel_grad": "space_to_depth"}

    def timer(part, name, *shape_args):
        calls.append((part, name))
        return 1.0 if name == fastest[part] else 2.0

    def plan_timer(parts, *shape_args):  # the sums together cost what they cost alone
        return sum(1.0 if name == fastest[part] else 2.0 for part, name in zip(fastest, parts))

    monkeypatch.setattr(at, "TIMER", timer)
    monkeypatch.setattr(at, "PLAN_TIMER", plan_timer)
    # a whole program agrees with its sums: the measured plans win (see the judge tests)
    monkeypatch.setattr(at, "STEP_TIMER", lambda label, call: 1.0 if label == "measured" else 2.0)
    at.clear()
    yield calls
    at.clear()


def _arrays(c_in=3, c_out=4):
    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.normal(size=(2, 8, 7, c_in)), jnp.float32),
            jnp.asarray(rng.normal(size=(3, 3, c_in, c_out)), jnp.float32))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_picks_the_fastest_sum_and_keeps_it(tuning):
    x, w = _arrays()
    plan = conv_plan(x, w, padding="SAME")
    assert (plan.forward, plan.input_grad, plan.kernel_grad) == ("textbook", "taps", "space_to_depth")
    # every candidate of each sum timed once: forward 4, dx 3, dw 3
    assert sorted(tuning) == sorted([("forward", "textbook"), ("forward", "taps"), ("forward", "space_to_depth"),
                                     ("forward", "patches"), ("input_grad", "textbook"), ("input_grad", "taps"),
                                     ("input_grad", "space_to_depth"), ("kernel_grad", "textbook"),
                                     ("kernel_grad", "space_to_depth"), ("kernel_grad", "patches")])
    # the op runs the measured plan (its value is the textbook one)
    y = funcnn.conv2d(x, w, padding="SAME")
    np.testing.assert_allclose(y, funcnn.conv2d(x, w, padding="SAME", algorithm="textbook"), rtol=1e-5, atol=1e-5)
    n = len(tuning)
    conv_plan(x, w, padding="SAME")
    jax.grad(lambda x: jnp.sum(funcnn.conv2d(x, w, padding="SAME")))(x)
    assert len(tuning) == n  # kept in memory: not measured again
    # ... and on disk, keyed by the CPU, read back by a fresh process (memory cleared)
    data = json.loads(at.cache_file().read_text())
    assert data["cpu"] == at.cpu_id() and len(data["choices"]) == 1
    at.clear()
    assert conv_plan(x, w, padding="SAME") == plan and len(tuning) == n
    # another shape (other padding, dtype or batch) is measured on its own
    conv_plan(x[:1], w, padding="SAME")
    assert len(tuning) == 2 * n


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_strided_and_wide_shapes_time_only_what_applies(tuning):
    x, w = _arrays(c_in=32, c_out=8)
    conv_plan(x, w, stride=2, padding="SAME")
    assert ("forward", "taps") not in tuning  # 3*3*32 products: known to lose, not timed
    assert not any(name == "space_to_depth" for _, name in tuning)  # needs stride 1
    assert ("forward", "patches") in tuning and ("kernel_grad", "patches") in tuning  # 288 values a patch
    assert not any(part == "input_grad" for part, _ in tuning)  # 32 > MAX_SCATTER_C_IN: one candidate, no choice
    tuning.clear()
    xw, ww = _arrays(c_in=128, c_out=8)
    plan = conv_plan(xw, ww, stride=2, padding="SAME")
    # 3*3*128 > MAX_PATCH_K: no patches either; every sum has one candidate, so nothing is timed
    assert tuning == [] and (plan.forward, plan.input_grad, plan.kernel_grad) == ("textbook",) * 3


def test_off_uses_the_thresholds_and_other_backends_run_textbook(tuning, monkeypatch):
    x, w = _arrays()
    monkeypatch.setenv(at.ENV, "0")
    assert conv_plan(x, w, padding="SAME") == conv_algorithm(w.shape, (1, 1), (1, 1), backend="cpu")
    monkeypatch.setenv(at.ENV, "1")
    gpu = conv_algorithm(w.shape, (1, 1), (1, 1), backend="gpu", x_shape=x.shape, pads=((1, 1), (1, 1)))
    assert (gpu.forward, gpu.input_grad, gpu.kernel_grad) == ("textbook",) * 3
    assert tuning == []


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_a_damaged_cache_is_measured_again(tuning):
    at.cache_file().parent.mkdir(parents=True, exist_ok=True)
    at.cache_file().write_text("{not json")
    x, w = _arrays()
    conv_plan(x, w)
    assert tuning and len(json.loads(at.cache_file().read_text())["choices"]) == 1


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_real_measurement_on_a_small_shape(monkeypatch, tmp_path):
    """The real timer: a choice among the candidates, and the op's values unchanged."""
    monkeypatch.setenv(at.ENV, "1")
    monkeypatch.setenv(f"{at.ENV}_DIR", str(tmp_path))
    at.clear()
    try:
        x, w = _arrays()
        plan = conv_plan(x, w, padding="SAME")
        assert plan.forward in at.candidates("forward", w.shape, (1, 1), (1, 1))
        assert plan.input_grad in at.candidates("input_grad", w.shape, (1, 1), (1, 1))
        assert plan.kernel_grad in at.candidates("kernel_grad", w.shape, (1, 1), (1, 1))
        g = jax.grad(lambda w: jnp.sum(jnp.sin(funcnn.conv2d(x, w, padding="SAME"))))(w)
        g_ref = jax.grad(lambda w: jnp.sum(jnp.sin(funcnn.reference.conv2d(x, w, padding="SAME"))))(w)
        np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4)
    finally:
        at.clear()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_measures_outside_the_trace_it_is_called_from(monkeypatch, tmp_path):
    """conv2d is traced under jit/grad: the timer must run real computations, not stage them
    into that trace (a jitted call in the tracing thread would only be traced, and timed as such)."""
    monkeypatch.setenv(at.ENV, "1")
    monkeypatch.setenv(f"{at.ENV}_DIR", str(tmp_path))
    staged = []

    def timer(part, name, *args):
        staged.append(isinstance(jnp.ones(2) + 1, jax.core.Tracer))
        return {"textbook": 1.0}.get(name, 2.0)

    monkeypatch.setattr(at, "TIMER", timer)
    at.clear()
    try:
        x, w = _arrays()
        jax.jit(jax.grad(lambda x: jnp.sum(funcnn.conv2d(x, w, padding="SAME"))))(x)
        assert staged and not any(staged)
    finally:
        at.clear()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_a_per_sum_timing_that_mispredicts_the_step_does_not_win(monkeypatch, tmp_path):
    """Each sum timed alone says the measured plan wins; the three sums run together say the
    thresholds' plan is faster: the thresholds' plan is kept, in memory and on disk."""
    monkeypatch.setenv(at.ENV, "1")
    monkeypatch.setenv(f"{at.ENV}_DIR", str(tmp_path))
    x, w = _arrays()
    base = funcnn._ops.conv_algorithms.threshold_parts(w.shape, (1, 1), (1, 1))
    alone_fastest = {"forward": "textbook", "input_grad": "textbook", "kernel_grad": "textbook"}
    assert tuple(alone_fastest.values()) != base
    monkeypatch.setattr(at, "TIMER", lambda part, name, *a: 1.0 if name == alone_fastest[part] else 2.0)
    rounds = []

    def plan_timer(parts, *a):
        rounds.append(tuple(parts))
        return 1.0 if tuple(parts) == base else 1.5  # together, the thresholds' plan is faster

    monkeypatch.setattr(at, "PLAN_TIMER", plan_timer)
    at.clear()
    try:
        plan = conv_plan(x, w, padding="SAME")
        assert (plan.forward, plan.input_grad, plan.kernel_grad) == base
        # interleaved rounds, until two in a row decide alike (a clear loss: one more round)
        assert rounds == [base, ("textbook",) * 3] * (at.VERIFY_ROUNDS + 1)
        assert list(json.loads(at.cache_file().read_text())["choices"].values()) == [list(base)]
        # a measured plan within MIN_GAIN of the thresholds' does not win either
        at.clear()
        at.cache_file().unlink()
        monkeypatch.setattr(at, "PLAN_TIMER", lambda parts, *a: 1.0 if tuple(parts) == base else 0.97)
        plan = conv_plan(x, w, padding="SAME")
        assert (plan.forward, plan.input_grad, plan.kernel_grad) == base
    finally:
        at.clear()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_verification_repeats_until_stable_and_an_unsettled_decision_keeps_the_thresholds(monkeypatch):
    x, w = _arrays()
    base = funcnn._ops.conv_algorithms.threshold_parts(w.shape, (1, 1), (1, 1))
    alone_fastest = {"forward": "textbook", "input_grad": "textbook", "kernel_grad": "textbook"}
    monkeypatch.setattr(at, "TIMER", lambda part, name, *a: 1.0 if name == alone_fastest[part] else 2.0)
    args = (tuple(x.shape), tuple(w.shape), (1, 1), ((1, 1), (1, 1)), (1, 1), jnp.float32)

    def timer_of(measured_times):
        it = iter(measured_times)
        return lambda parts, *a: 1.0 if tuple(parts) == base else next(it)

    # the measured plan clearly faster every round: kept once two running medians agree
    monkeypatch.setattr(at, "PLAN_TIMER", timer_of([0.5] * 20))
    plan, times = at.measure(*args)
    assert plan == ("textbook",) * 3 and times["verify"]["rounds"] == at.VERIFY_ROUNDS + 1
    assert times["verify"]["stable"]
    # a slow round among fast ones: the median still decides, one round more settles it
    monkeypatch.setattr(at, "PLAN_TIMER", timer_of([0.5, 3.0, 0.5, 0.5] + [0.5] * 20))
    plan, times = at.measure(*args)
    assert plan == ("textbook",) * 3 and times["verify"]["stable"]
    # a measurement whose verdict flips with every round (win, lose, win, ...) never settles:
    # the thresholds' plan is kept after the most rounds
    monkeypatch.setattr(at, "PLAN_TIMER", timer_of([0.5, 1.5, 0.5] + [1.5, 0.5] * 10))
    plan, times = at.measure(*args)
    assert plan == base and times["verify"]["rounds"] == at.MAX_VERIFY_ROUNDS
    assert not times["verify"]["stable"] and times["verify"]["kept"] == list(base)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_disabled_block_and_gradcheck_time_nothing(tuning, capsys):
    from funcnn import gradcheck

    x, w = _arrays(c_in=5)
    with at.disabled():
        assert not at.enabled()
        plan = conv_plan(x, w, padding="SAME")
    assert tuning == [] and at.tuned() == {}
    assert at.enabled()  # the block restores it
    # gradcheck's CLI checks the thresholds' plan under "auto" and measures nothing
    assert gradcheck.main(["--op", "conv2d", "--quick"]) == 0
    assert tuning == [] and at.tuned() == {}
    assert (plan.forward, plan.input_grad, plan.kernel_grad) == at.threshold_parts(w.shape, (1, 1), (1, 1))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_evaluation_programs_time_nothing_training_steps_do(tuning):
    from funcnn import Conv2D, Dense, Flatten, Relu, serial
    from funcnn.train import make_eval_fn

    model = serial(Conv2D(4, (3, 3), padding="SAME"), Relu(), Flatten(), Dense(3))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 8, 7, 3)), jnp.float32)
    y = jnp.arange(6) % 3
    _, params, state = model.init(jax.random.key(0), x.shape)
    evaluate = make_eval_fn(model, "softmax_cross_entropy", batch_size=6)
    assert np.isfinite(float(evaluate(params, state, x, y)["loss"]))
    assert tuning == [] and at.tuned() == {}  # the forward-only shape: thresholds, nothing timed
    with at.untimed():
        with at.forward_only():  # the same block
            pass
        assert at._local.untimed == 1  # nested blocks restore their depth
        jax.grad(lambda p: funcnn.softmax_cross_entropy(model.apply(p, state, x)[0], y))(params)
    assert at._local.untimed == 0
    assert tuning == [] and at.tuned() == {}  # a gradient traced untimed: nothing timed either

    def loss(p):
        return funcnn.softmax_cross_entropy(model.apply(p, state, x)[0], y)

    jax.grad(loss)(params)  # a training step's shape: its three sums are timed
    assert {part for part, _ in tuning} == {"forward", "input_grad", "kernel_grad"} and len(at.tuned()) == 1
    n = len(tuning)
    evaluate(params, state, x[:3], y[:3])  # another forward-only shape: still nothing timed
    assert len(tuning) == n and len(at.tuned()) == 1


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_training_times_its_step_not_its_diagnostics_probe_or_evaluations(tuning):
    import optax

    from funcnn import Conv2D, Dense, Flatten, Relu, serial
    from funcnn.diagnostics import error_terms
    from funcnn.train import fit

    model = serial(Conv2D(4, (3, 3), padding="SAME"), Relu(), Flatten(), Dense(3))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(12, 8, 7, 3)), jnp.float32)
    y = jnp.arange(12) % 3
    probe = (x[:5], y[:5])  # its own batch shape, forward and backward

    def diagnostics(model, params, state):  # error terms need the probe's dx sums
        return {"probe_loss": error_terms(model, params, state, funcnn.softmax_cross_entropy, *probe).loss}

    res = fit(model, "softmax_cross_entropy", optax.sgd(0.1), (x, y), test_data=(x[:7], y[:7]), steps=2,
              batch_size=4, eval_every=1, diagnostics=diagnostics, progress=False)
    assert np.all(np.isfinite(np.asarray(res.history.eval_metrics["probe_loss"])))
    keys = list(at.tuned())
    assert len(keys) == 1 and keys[0].startswith("x(4, 8, 7, 3) ")  # the training batch only


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_a_cache_measured_under_other_algorithms_is_measured_again(tuning):
    x, w = _arrays()
    conv_plan(x, w)
    data = json.loads(at.cache_file().read_text())
    assert data["algorithms"]["forward"] == sorted(funcnn.conv.FORWARD)
    n = len(tuning)
    data["algorithms"]["forward"].remove("patches")  # as written before "patches" existed
    at.cache_file().write_text(json.dumps(data))
    at.clear()
    conv_plan(x, w)
    assert len(tuning) == 2 * n  # the stale choice is not reused


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_a_grid_times_its_convolutions_vmapped_over_its_members(tuning, monkeypatch):
    """run_grid traces its program under conv_autotune.members(G): the candidates are timed on
    member-stacked inputs (vmapped), under a key of their own; one model alone is timed alone."""
    import optax

    from funcnn import Conv1D, Dense, Flatten, Relu, serial
    from funcnn.train import TrainSpec, run_grid

    widths = []
    real = at._inputs

    def spy(*args, **kw):
        out = real(*args, **kw)
        widths.append(out[0].shape[0] if out[0].ndim == 5 else 1)
        return out

    monkeypatch.setattr(at, "_inputs", spy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 12, 2)).astype(np.float32)
    y = (np.arange(48) % 3).astype(np.int32)

    def build(c):
        model = serial(Conv1D(4, 3, stride=2, padding=1), Relu(), Flatten(), Dense(3))
        return TrainSpec(model, "softmax_cross_entropy", optax.sgd(c["lr"]))

    run_grid(build, {"lr": [0.1, 0.2], "seed": [0, 1]}, (x, y), steps=2, batch_size=8, eval_every=0, progress=False,
             parts=1)
    assert widths and set(widths) == {4}  # 2 lrs x 2 seeds, vmapped: every timing on 4 members
    assert all(k.endswith(" m4") for k in at.tuned())
    widths.clear()
    run_grid(build, {"lr": [0.1, 0.2], "seed": [0, 1]}, (x, y), steps=2, batch_size=8, eval_every=0, progress=False,
             parts=2)
    # two slices of 2 members keep the whole group's choice (timed at 4): slicing times nothing
    # new and never changes which algorithm runs
    assert widths == [] and all(k.endswith(" m4") for k in at.tuned())
    with pytest.raises(ValueError, match="conv_autotune.members: n must be an int >= 1"):
        with at.members(0):
            pass


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_the_real_timer_compiles_the_candidates_ahead_and_times_each(monkeypatch):
    """With the real timers, every candidate is compiled first (side by side) and timed from
    its compiled executable; nothing is left over after the measurement."""
    compiled = []
    real = at._compile_candidates

    def spy(cands, *a):
        compiled.extend(cands)
        return real(cands, *a)

    monkeypatch.setattr(at, "_compile_candidates", spy)
    w_shape = (3, 3, 2, 4)
    plan, times = at.measure((2, 6, 5, 2), w_shape, (1, 1), ((1, 1), (1, 1)), (1, 1), jnp.float32)
    parts = ("forward", "input_grad", "kernel_grad")
    assert compiled == [(p, n) for p in parts for n in at.candidates(p, w_shape, (1, 1), (1, 1))]
    for p, name in zip(parts, plan):
        assert name in times[p] and all(t > 0 for t in times[p].values())
    assert at._ahead == {}


def _conv_step_problem():
    import optax

    from funcnn import Conv2D, Dense, Flatten, Relu, serial

    model = serial(Conv2D(4, (3, 3), padding="SAME"), Relu(), Flatten(), Dense(3))
    x, _ = _arrays()
    y = jnp.arange(x.shape[0]) % 3
    _, params, state = model.init(jax.random.key(0), x.shape)
    opt = optax.sgd(0.1)
    return model, opt, (params, opt.init(params), state, x, y, jax.random.key(1))


def _step_timer(monkeypatch, faster: str):
    """A fake whole-program timer: ``faster`` ("measured" or "thresholds") takes 1 s, the
    other 1.5 s; returns the labels it was called with. It runs the program as the real one does."""
    labels = []

    def timer(label, call):
        labels.append(label)
        jax.block_until_ready(call())
        return 1.0 if label == faster else 1.5

    monkeypatch.setattr(at, "STEP_TIMER", timer)
    return labels


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_a_step_slower_on_its_measured_plans_runs_and_caches_the_thresholds(tuning, monkeypatch):
    """The sums alone and the three sums together say the measured plan wins; the whole jitted
    step says it loses: the step runs the thresholds' program from then on, the thresholds'
    plan replaces the measured one in memory and on disk, and nothing is judged again."""
    from funcnn.train import make_train_step

    labels = _step_timer(monkeypatch, "thresholds")
    model, opt, args = _conv_step_problem()
    step = make_train_step(model, "softmax_cross_entropy", opt)
    out = step(*args)
    (key,) = at.tuned()
    measured, base = ("textbook", "taps", "space_to_depth"), at.threshold_parts((3, 3, 3, 4), (1, 1), (1, 1))
    assert measured != base
    (v,) = at.verdicts()
    assert v["kept"] == "thresholds" and v["stable"]
    assert v["convolutions"] == {key: {"measured": list(measured), "thresholds": list(base)}}
    assert labels == ["thresholds", "measured"] * v["rounds"] and v["rounds"] == at.VERIFY_ROUNDS + 1
    assert at.tuned()[key] == base
    data = json.loads(at.cache_file().read_text())
    assert data["choices"] == {key: list(base)} and data["judged"] == [key]
    # the step now runs the thresholds' program (its lowering is the autotune-off one) ...
    with at.disabled():
        ref_step = make_train_step(model, "softmax_cross_entropy", opt)
        ref = ref_step(*args)
        assert step.lower(*args).as_text() == ref_step.lower(*args).as_text()
    for a, b in zip(jax.tree.leaves(step(*args)), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # ... and the first call's results (measured plans) are the same numbers
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # a fresh process (memory cleared, the file read back) neither measures nor judges again
    n, labels[:] = len(tuning), []
    at.clear()
    make_train_step(model, "softmax_cross_entropy", opt)(*args)
    assert len(tuning) == n and labels == [] and at.verdicts() == [] and at.tuned() == {key: base}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_a_step_faster_on_its_measured_plans_keeps_them_judged_once(tuning, monkeypatch):
    from funcnn.train import make_train_step

    labels = _step_timer(monkeypatch, "measured")
    model, opt, args = _conv_step_problem()
    step = make_train_step(model, "softmax_cross_entropy", opt)
    step(*args)
    (key,) = at.tuned()
    (v,) = at.verdicts()
    assert v["kept"] == "measured" and at.tuned()[key] == ("textbook", "taps", "space_to_depth")
    assert json.loads(at.cache_file().read_text())["judged"] == [key]
    step(*args)  # a later call runs the kept program (not the thresholds'): not judged again
    with at.disabled():
        assert step.lower(*args).as_text() != make_train_step(model, "softmax_cross_entropy", opt).lower(*args).as_text()
    assert len(at.verdicts()) == 1 and len(labels) == 2 * v["rounds"]
    # a fresh process reads the verdict back with the choice: the measured plan, unjudged
    labels.clear()
    at.clear()
    make_train_step(model, "softmax_cross_entropy", opt)(*args)
    assert labels == [] and at.verdicts() == [] and at.tuned()[key] == ("textbook", "taps", "space_to_depth")
    # a step called inside another trace has no values to time: traced, not judged
    at.clear()
    at.cache_file().unlink()
    jax.jit(make_train_step(model, "softmax_cross_entropy", opt))(*args)
    assert labels == [] and at.verdicts() == [] and key in at.tuned()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the autotune measures CPU convolutions")
def test_the_training_engine_judges_its_chunk_as_a_whole(tuning, monkeypatch):
    """fit's compiled chunk is judged like a step: slower on the measured plans, it trains on
    the thresholds' program, with the numbers of an autotune-off run."""
    from funcnn.train import fit

    labels = _step_timer(monkeypatch, "thresholds")
    model, opt, (params, _, state, x, y, _) = _conv_step_problem()

    def train():
        return fit(model, "softmax_cross_entropy", opt, (x, y), steps=6, batch_size=2, eval_every=0, progress=False)

    res = train()
    (v,) = at.verdicts()
    assert v["kept"] == "thresholds" and labels == ["thresholds", "measured"] * v["rounds"]
    (key,) = at.tuned()
    assert at.tuned()[key] == at.threshold_parts((3, 3, 3, 4), (1, 1), (1, 1))
    with at.disabled():
        ref = train()
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(ref.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
