"""funcnn.gradcheck: the report, the registry, a deliberately wrong rule, the command line."""

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import gradcheck
from funcnn.activations import ACTIVATION_NAMES


def _x(shape=(4, 5), seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-3, 3, shape), jnp.float64)


# A test-local op with a deliberately wrong backward rule: d/dx x^3 claimed to be 2 x^2.
@jax.custom_vjp
def _cube_wrong(x):
    return x**3


def _cube_wrong_fwd(x):
    return x**3, x


def _cube_wrong_bwd(x, g):
    return (g * 2 * x**2,)


_cube_wrong.defvjp(_cube_wrong_fwd, _cube_wrong_bwd)


def _cube_ref(x):
    return x**3


# The same op with the right rule.
@jax.custom_vjp
def _cube_right(x):
    return x**3


_cube_right.defvjp(lambda x: (x**3, x), lambda x, g: (g * 3 * x**2,))


def test_report_fields_for_a_named_op():
    x = gradcheck.cases._away(np.asarray(_x()), (0.0,))
    r = gradcheck.check("relu", (jnp.asarray(x),))
    assert isinstance(r, gradcheck.GradcheckReport)
    assert r.op == "relu"
    assert r.config == "x(4, 5)"
    assert [e.name for e in r.inputs] == ["x"]
    assert r.passed and r.autodiff_passed and r.fd_passed
    assert r.fd_message == "" and r.error == ""
    assert r.forward_abs_err == 0.0
    assert r.max_abs_err <= 1e-12 and r.max_rel_err <= 1e-12
    assert r.max_fd_rel_err <= 1e-8


def test_per_input_errors_and_static_kwargs():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 7, 3)))
    w = jnp.asarray(rng.standard_normal((3, 3, 2)))
    b = jnp.asarray(rng.standard_normal(2))
    r = gradcheck.check("conv1d", (x, w, b), kwargs={"stride": 2, "padding": "SAME"})
    assert [e.name for e in r.inputs] == ["x", "w", "b"]
    assert "stride=2" in r.config and "padding='SAME'" in r.config
    assert r.passed, r


def test_integer_labels_are_held_fixed():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.standard_normal((4, 5)))
    labels = jnp.asarray([0, 3, 1, 4], jnp.int32)
    r = gradcheck.check("softmax_cross_entropy", (logits, labels))
    assert [e.name for e in r.inputs] == ["logits"]
    assert "labels(4,):int32" in r.config
    assert r.passed, r


def test_a_wrong_rule_fails_against_autodiff_and_finite_differences():
    r = gradcheck.check((_cube_wrong, _cube_ref), (_x(),))
    assert not r.passed
    assert not r.autodiff_passed
    assert not r.fd_passed
    assert "cotangent projection" in r.fd_message  # what check_grads raised
    assert r.inputs[0].max_rel_err > 0.1
    assert r.inputs[0].fd_rel_err > 0.1
    assert r.forward_abs_err == 0.0  # the forward is right, only the rule is wrong


def test_the_right_rule_passes_and_a_lone_function_gets_only_finite_differences():
    assert gradcheck.check((_cube_right, _cube_ref), (_x(),)).passed
    alone = gradcheck.check(_cube_right, (_x(),))
    assert alone.passed and math.isnan(alone.inputs[0].max_abs_err)
    wrong = gradcheck.check(_cube_wrong, (_x(),))
    assert not wrong.passed and wrong.autodiff_passed and not wrong.fd_passed


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown op 'nope'"):
        gradcheck.check("nope", (_x(),))
    with pytest.raises(TypeError, match="op must be an op name"):
        gradcheck.check(3, (_x(),))
    with pytest.raises(ValueError, match="no differentiable"):
        gradcheck.check(_cube_ref, (jnp.arange(3),))


def test_a_crashing_case_becomes_a_failing_row():
    case = gradcheck.Case("no_such_op", "linear", lambda rng, dt: (jnp.ones((2, 2), dt),))
    r = gradcheck.check_case(case)
    assert not r.passed and "AttributeError" in r.error
    table = gradcheck.format_table([r])
    assert "FAIL" in table and "1 FAILED" in table


def test_registry_covers_every_op():
    ops = {c.op for c in gradcheck.CASES}
    expected = set(ACTIVATION_NAMES) | {
        "dense", "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
        "mse", "logistic_mse", "binary_cross_entropy", "softmax_cross_entropy", "softmax_mse",
        "batch_norm",
    }
    assert expected <= ops
    conv = [c.kwargs for c in gradcheck.CASES if c.op.startswith("conv")]
    strides = {s for kw in conv for s in np.ravel(kw.get("stride", 1))}
    dilations = {d for kw in conv for d in np.ravel(kw.get("dilation", 1))}
    paddings = {type(kw.get("padding", "VALID")).__name__ for kw in conv}
    assert {1, 2, 3} <= strides and {1, 2} <= dilations
    assert {"str", "int", "tuple"} <= paddings
    assert any(kw.get("count_include_pad") is False for kw in (c.kwargs for c in gradcheck.CASES))
    # prelu's alpha and swish's beta are differentiated
    assert any(c.op == "prelu" and len(c.make_args(np.random.default_rng(0), jnp.float64)) == 2
               for c in gradcheck.CASES)
    assert any(c.op == "swish" and len(c.make_args(np.random.default_rng(0), jnp.float64)) == 2
               for c in gradcheck.CASES)


def test_every_algorithm_is_checked_at_every_channel_count():
    """Each conv algorithm (and auto) runs at C_in 1, 3, 6, 16 and 64, each resolved part of
    the CPU dispatch is reached, and each pooling algorithm has rows; rows name the algorithm."""
    from funcnn.conv import CONV_ALGORITHMS
    from funcnn.pooling import POOL_ALGORITHMS

    conv = [c for c in gradcheck.CASES if c.module == "conv"]
    rng = np.random.default_rng(0)
    seen = {}
    for c in conv:
        args = c.make_args(rng, jnp.float64)
        seen.setdefault(c.kwargs.get("algorithm", "auto"), set()).add(args[0].shape[-1])
        assert c.algorithm is not None
    for name in ("auto", "textbook", "space_to_depth", "patches"):
        assert {1, 3, 6, 16, 64} <= seen[name], (name, seen[name])
    assert {1, 3, 6} <= seen["taps"]
    assert set(CONV_ALGORITHMS) | {"auto"} == set(seen)
    # auto on CPU reaches every part's every algorithm (other backends run textbook)
    if jax.default_backend() != "cpu":
        return
    notes = {c.algorithm(c.make_args(rng, jnp.float64), c.kwargs) for c in conv if "algorithm" not in c.kwargs
             or c.kwargs["algorithm"] == "auto"}
    for part in ("fwd=s2d", "fwd=taps", "fwd=textbook", "fwd=patches", "dx=taps", "dx=s2d", "dx=textbook", "dw=s2d",
                 "dw=textbook", "dw=patches"):
        assert any(part in n for n in notes), (part, notes)
    pool_notes = {c.algorithm(c.make_args(rng, jnp.float64), c.kwargs) for c in gradcheck.CASES if c.module == "pooling"}
    assert {"auto(blocks)", "auto(textbook)", "textbook"} <= pool_notes
    assert set(POOL_ALGORITHMS) == {"textbook", "blocks"}


def test_pool_points_have_no_ties():
    for case in gradcheck.CASES:
        if case.module == "pooling":
            (x,) = case.make_args(np.random.default_rng(0), jnp.float64)
            assert len(np.unique(np.asarray(x))) == x.size


def test_run_filters_and_table():
    reports = gradcheck.run(op="dense", quick=True)
    assert len(reports) == 1 and reports[0].op == "dense" and reports[0].passed
    table = gradcheck.format_table(reports)
    assert "dense" in table and "PASS" in table and "all passed" in table


def test_main_rejects_an_unknown_op(capsys):
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", not before)
    try:
        assert gradcheck.main(["--op", "no_such_op"]) == 1
        assert jax.config.read("jax_disable_most_optimizations") is (not before)  # restored
    finally:
        jax.config.update("jax_disable_most_optimizations", before)


def test_command_line_passes_every_case():
    proc = subprocess.run(
        [sys.executable, "-m", "funcnn.gradcheck"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [ln for ln in proc.stdout.splitlines() if ln.rstrip().endswith("PASS")]
    assert len(rows) == len(gradcheck.CASES)
    n = len(gradcheck.CASES)
    assert f"{n} cases, {n} passed, all passed" in proc.stdout
