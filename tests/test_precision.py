"""Precision on accelerators, checked on the CPU by reading what JAX traces and lowers.

- The precision contract: with ``precision=lax.Precision.HIGHEST`` every ``dot_general`` and
  ``conv_general_dilated`` in the forward and in ``jax.vjp`` of each op (hand rule on every
  algorithm path, and its twin) carries HIGHEST, so hand and autodiff round alike on a GPU's
  TF32 and a TPU's bf16 passes.
- Float64 stays float64: the jaxprs of every registered hand rule's forward, backward and
  gradient of gradient, and of its twin, hold no float32/float16/bfloat16 value, and their
  lowering for CUDA holds no ``reduce_precision`` (how JAX's GPU lowering of the second
  derivative of ``lax.reduce_window`` max rounds float64 to float32; no GPU is needed to see it).
"""

from __future__ import annotations

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend.core import ClosedJaxpr, Jaxpr

import funcnn
from funcnn import gradcheck
from funcnn import reference as ref
from funcnn.nn import Conv1D, Conv2D, Dense

HIGHEST = (lax.Precision.HIGHEST, lax.Precision.HIGHEST)
MATMUL_PRIMS = ("dot_general", "conv_general_dilated")


def _sub_jaxprs(value):
    if isinstance(value, ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def _eqns(jaxpr: Jaxpr):
    """Every equation of ``jaxpr`` and of the jaxprs nested in its equations' params."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in _sub_jaxprs(value):
                yield from _eqns(sub)


def _matmul_precisions(fn, *args):
    """(primitive, precision) of every dot/conv in fn's forward and in jax.vjp's backward."""
    ys, vjp = jax.vjp(fn, *args)
    ct = jax.tree.map(lambda y: jnp.ones_like(y) * 0.5, ys)
    found = []
    for jaxpr in (jax.make_jaxpr(fn)(*args).jaxpr, jax.make_jaxpr(lambda c: vjp(c))(ct).jaxpr,
                  jax.make_jaxpr(lambda *a: jax.vjp(fn, *a)[1](ct))(*args).jaxpr):
        for eqn in _eqns(jaxpr):
            if eqn.primitive.name in MATMUL_PRIMS:
                found.append((eqn.primitive.name, eqn.params["precision"]))
    return found


def _rand(shape, seed=0, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


# Conv shapes that reach each algorithm path (forward / dx / dw) of funcnn.conv:
# 1 and 3 input channels: tap-sum forward and scatter dx; 6 -> 16 5x5 stride 1: 2x2-block
# (space-to-depth) forward, dx and dw; 16 -> 32 3x3: XLA forward, flipped-kernel dx;
# stride 2 with 8 channels: the "HWOI" strided dx; dilation: the plain XLA paths.
CONV2D_PATHS = [
    ((2, 9, 9, 1), (3, 3, 1, 4), {}),
    ((2, 9, 9, 3), (3, 3, 3, 8), {"stride": 2, "padding": "SAME"}),
    ((2, 12, 12, 6), (5, 5, 6, 16), {}),
    ((2, 8, 8, 16), (3, 3, 16, 32), {"padding": "SAME"}),
    ((2, 9, 9, 8), (3, 3, 8, 8), {"stride": 2}),
    ((2, 9, 9, 8), (3, 3, 8, 12), {"dilation": 2, "padding": 1}),
]


@pytest.mark.parametrize("x_shape, w_shape, kw", CONV2D_PATHS)
@pytest.mark.parametrize("mod", [funcnn, ref], ids=["hand", "autodiff"])
def test_conv2d_issues_every_convolution_at_the_callers_precision(mod, x_shape, w_shape, kw):
    x, w, b = _rand(x_shape, 0), _rand(w_shape, 1), _rand(w_shape[-1:], 2)
    fn = functools.partial(mod.conv2d, precision=lax.Precision.HIGHEST, **kw)
    found = _matmul_precisions(fn, x, w, b)
    assert found, "no convolution or dot traced"
    assert all(p == HIGHEST for _, p in found), found
    # And without a precision, none is pinned (lax's default follows jax_default_matmul_precision).
    default = _matmul_precisions(functools.partial(mod.conv2d, **kw), x, w, b)
    assert default and all(p is None for _, p in default), default


@pytest.mark.parametrize("c_in", [1, 6, 16])
@pytest.mark.parametrize("mod", [funcnn, ref], ids=["hand", "autodiff"])
def test_conv1d_issues_every_convolution_at_the_callers_precision(mod, c_in):
    x, w = _rand((2, 20, c_in), 0), _rand((5, c_in, 16), 1)
    found = _matmul_precisions(functools.partial(mod.conv1d, precision="highest", padding="SAME"), x, w)
    assert found and all(p == HIGHEST for _, p in found), found


@pytest.mark.parametrize("mod", [funcnn, ref], ids=["hand", "autodiff"])
@pytest.mark.parametrize("x_shape", [(4, 7), (2, 3, 7)])
def test_dense_issues_every_dot_at_the_callers_precision(mod, x_shape):
    x, w, b = _rand(x_shape, 0), _rand((7, 5), 1), _rand((5,), 2)
    found = _matmul_precisions(functools.partial(mod.dense, precision=lax.Precision.HIGHEST), x, w, b)
    assert len(found) >= 3 if mod is funcnn else found  # forward, dx, dw
    assert all(p == HIGHEST for _, p in found), found


@pytest.mark.parametrize("rule", ["hand", "autodiff"])
@pytest.mark.parametrize(
    "layer, in_shape",
    [
        (lambda r, p: Dense(5, rule=r, precision=p), (4, 7)),
        (lambda r, p: Conv1D(8, 3, padding="SAME", rule=r, precision=p), (2, 10, 6)),
        (lambda r, p: Conv2D(8, 3, stride=2, rule=r, precision=p), (2, 9, 9, 16)),
    ],
    ids=["Dense", "Conv1D", "Conv2D"],
)
def test_layers_pass_their_precision_to_the_op(layer, in_shape, rule):
    model = layer(rule, lax.Precision.HIGHEST)
    _, params, state = model.init(jax.random.key(0), in_shape)
    x = _rand(in_shape, 3)
    found = _matmul_precisions(lambda p, x: model.apply(p, state, x)[0], params, x)
    assert found and all(p == HIGHEST for _, p in found), found
    assert model.with_rule("autodiff" if rule == "hand" else "hand").config["precision"] == lax.Precision.HIGHEST


@pytest.mark.parametrize("op", [funcnn.dense, funcnn.conv2d, ref.conv1d])
def test_a_bad_precision_is_a_named_error(op):
    x = _rand((2, 5, 5, 3) if op is funcnn.conv2d else ((2, 5, 3) if op is ref.conv1d else (2, 3)))
    w = _rand((3, 3, 3, 4) if op is funcnn.conv2d else ((3, 3, 4) if op is ref.conv1d else (3, 4)))
    name = op.__name__
    with pytest.raises(TypeError, match=rf"{name}: precision must be None, a jax.lax.Precision.*got 'fast'"):
        op(x, w, precision="fast")
    with pytest.raises(TypeError, match=rf"{name}: precision given as a sequence must have 2 entries"):
        op(x, w, precision=("highest",))
    with pytest.raises(TypeError, match=r"Dense\(4\): precision must be"):
        Dense(4, precision=3)


def test_highest_precision_hand_and_twin_agree_to_float32_rounding():
    """The float32 agreement README promises on any backend once precision is pinned."""
    x, w = _rand((4, 12, 12, 6), 0), _rand((5, 5, 6, 16), 1)
    g = _rand((4, 8, 8, 16), 2)
    p = lax.Precision.HIGHEST
    _, vh = jax.vjp(functools.partial(funcnn.conv2d, precision=p), x, w)
    _, vt = jax.vjp(functools.partial(ref.conv2d, precision=p), x, w)
    for a, b in zip(vh(g), vt(g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))


# ------------------------------------------------------------------ float64 stays float64
LOW_FLOATS = {np.dtype(jnp.float32), np.dtype(jnp.float16), np.dtype(jnp.bfloat16)}


def _low_precision_values(jaxpr: Jaxpr):
    bad = []
    for eqn in _eqns(jaxpr):
        for v in list(eqn.invars) + list(eqn.outvars):
            dtype = getattr(getattr(v, "aval", None), "dtype", None)
            if dtype is not None and np.dtype(dtype) in LOW_FLOATS:
                bad.append(f"{eqn.primitive.name} -> {np.dtype(dtype).name}")
    return bad


def _case_functions(case: gradcheck.Case, rule: str):
    """fn(*diff) for the case's op under ``rule``, its float64 differentiable args, a cotangent."""
    hand, twin = case.functions()  # the case's own pair (registry ops, whole layers), else by module
    op = hand if rule == "hand" else twin
    args = list(case.make_args(np.random.default_rng(0), jnp.float64))
    argnums = case.argnums
    if argnums is None:
        argnums = tuple(i for i, a in enumerate(args) if a is not None and jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating))

    def fn(*diff):
        a = list(args)
        for i, d in zip(argnums, diff):
            a[i] = d
        return op(*a, **case.kwargs)

    diff = tuple(jnp.asarray(args[i]) for i in argnums)
    rng = np.random.default_rng(1)
    ct = jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s.shape), s.dtype), jax.eval_shape(fn, *diff))
    return fn, diff, ct


def _second_order(fn, ct):
    """d/dargs of <vjp(ct), r>: the gradient of the gradient (what a Hessian-vector product needs)."""

    def inner(*diff):
        # The gradient of <ct, sin(fn(x))>: its cotangent depends on x through fn, so the
        # outer derivative runs through the forward's JVP and the backward alike.
        y, vjp = jax.vjp(fn, *diff)
        cots = vjp(jax.tree.map(lambda c, y: c * jnp.cos(y), ct, y))
        return sum(jnp.sum(jnp.sin(c) * d) for c, d in zip(cots, diff))

    return lambda *d: jax.grad(inner, argnums=tuple(range(len(d))))(*d)


# One case per (op, settings kind): the first registered case of every op, and every
# quick case (the paths the gradcheck --quick subset covers); the full registry is 82 cases.
_SEEN: set[str] = set()
PURITY_CASES = [c for c in gradcheck.CASES if c.quick or not (c.op in _SEEN or _SEEN.add(c.op))]
CASE_IDS = [f"{c.op}-{i}" for i, c in enumerate(PURITY_CASES)]


@pytest.mark.parametrize("rule", ["hand", "autodiff"])
@pytest.mark.parametrize("case", PURITY_CASES, ids=CASE_IDS)
def test_float64_rules_take_no_lower_precision_step(case, rule):
    fn, diff, ct = _case_functions(case, rule)
    assert all(d.dtype == jnp.float64 for d in diff)
    second = _second_order(fn, ct)
    bad = []
    for what, jaxpr in (
        ("forward", jax.make_jaxpr(fn)(*diff)),
        ("backward", jax.make_jaxpr(lambda *d: jax.vjp(fn, *d)[1](ct))(*diff)),
        ("gradient of gradient", jax.make_jaxpr(second)(*diff)),
    ):
        bad += [f"{what}: {b}" for b in _low_precision_values(jaxpr.jaxpr)]
    assert not bad, bad[:10]


# The ops whose second derivative XLA could lower with a packed reduce-window (the max-pool
# twin did, before it became a max over stacked taps), plus one of every other family.
GPU_LOWERING_OPS = ("max_pool2d", "max_pool1d", "avg_pool2d", "conv2d", "dense", "softmax", "batch_norm",
                    "softmax_cross_entropy")


@pytest.mark.parametrize("rule", ["hand", "autodiff"])
@pytest.mark.parametrize("op", GPU_LOWERING_OPS)
def test_float64_gradient_of_gradient_lowers_for_cuda_without_rounding(op, rule):
    case = next(c for c in gradcheck.CASES if c.op == op and (c.kwargs.get("padding") == "SAME" or op != "max_pool2d"))
    fn, diff, ct = _case_functions(case, rule)
    exported = jax.export.export(jax.jit(_second_order(fn, ct)), platforms=["cuda"])(*diff)
    text = exported.mlir_module()
    assert "reduce_precision" not in text
    assert not any(t in text for t in ("xf32>", "xbf16>", "xf16>")), "a float32 tensor in a float64 program"


# ------------------------------------------------------------------ twins stand alone
def test_no_twin_carries_a_custom_rule_and_each_is_its_own_function():


    names = [n for m in gradcheck.OP_MODULES for n in importlib.import_module(f"funcnn.reference.{m}").__all__]
    assert len(names) > 20
    for m in gradcheck.OP_MODULES:
        twin_mod = importlib.import_module(f"funcnn.reference.{m}")
        hand_mod = importlib.import_module(f"funcnn.{m}")
        for n in twin_mod.__all__:
            twin = getattr(twin_mod, n)
            if not callable(twin) or n in ("conv_output_size", "conv_macs"):  # names, geometry helpers
                continue
            assert not isinstance(twin, jax.custom_vjp), n
            assert twin is not getattr(hand_mod, n, None), f"funcnn.reference.{m}.{n} is the hand op itself"
            # nothing under it is a custom rule: its jaxpr for a float64 point has no custom_vjp call
    for case in gradcheck.CASES:
        fn, diff, ct = _case_functions(case, "autodiff")
        prims = {e.primitive.name for e in _eqns(jax.make_jaxpr(fn)(*diff).jaxpr)}
        assert not any("custom_vjp" in p for p in prims), (case.op, prims)  # (jnp's own custom_jvp is fine)
