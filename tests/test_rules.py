"""funcnn._ops.rules.hand_rule: every hand rule runs in a named scope of its own (for profiles)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn
from funcnn import reference


def _scopes(f, *args):
    text = jax.jit(f).lower(*args).as_text(debug_info=True)
    return set(re.findall(r"funcnn\.([a-z0-9_]+)/(fwd|bwd)", text))


def test_each_hand_rule_names_its_forward_and_backward():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)))
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)))
    labels = jnp.array([0, 3])

    def loss(x, w):
        h = funcnn.tanh(funcnn.conv2d(x, w, padding="SAME"))
        h = funcnn.max_pool2d(h, 2)
        logits = h.reshape(2, -1)[:, :5]
        return funcnn.softmax_cross_entropy(logits, labels) + jnp.sum(funcnn.avg_pool2d(h, 2))

    # The backward needs the forward values, so both scopes survive in the gradient program.
    found = _scopes(jax.grad(loss, argnums=(0, 1)), x, w)
    for op in ("conv1d_conv2d", "tanh", "max_pool1d_2d", "softmax_cross_entropy", "avg_pool1d_2d"):
        assert (op, "bwd") in found, (op, sorted(found))
    for op in ("conv1d_conv2d", "tanh", "max_pool1d_2d"):
        assert (op, "fwd") in found, (op, sorted(found))


@pytest.mark.parametrize("name", ["conv2d", "tanh"])
def test_twins_have_no_hand_scope(name):
    """The autodiff twins carry no custom rule, hence no funcnn.<op>/bwd scope."""
    x = jnp.ones((2, 6, 6, 3))
    args = (x, jnp.ones((3, 3, 3, 2))) if name == "conv2d" else (x,)
    twin = getattr(reference, name)
    assert _scopes(jax.grad(lambda *a: jnp.sum(twin(*a))), *args) == set()


HAND_MODULES = {f"funcnn.{m}" for m in ("activations", "linear", "conv", "pooling", "losses", "normalization")}


def test_twins_import_nothing_from_the_hand_modules():
    """funcnn.reference.* share validation (funcnn._ops.validation, funcnn._ops.geometry) and forwards
    (funcnn._ops.conv_algorithms, funcnn._ops.pool_algorithms) with the hand modules, never their code."""
    import ast
    import pathlib

    import funcnn.reference as ref_pkg

    for path in pathlib.Path(ref_pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            bad = [n for n in names if n in HAND_MODULES or n.rsplit(".", 1)[0] in HAND_MODULES]
            assert not bad, (path.name, bad)


def test_no_module_is_shadowed_by_a_function_of_its_name():
    import importlib
    import pkgutil

    for pkg_name in ("funcnn", "funcnn._ops", "funcnn.nn", "funcnn.reference", "funcnn.train", "funcnn.train.engine",
                     "funcnn.study", "funcnn.data"):
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__):
            module = importlib.import_module(f"{pkg_name}.{info.name}")
            assert getattr(pkg, info.name) is module, f"{pkg_name}.{info.name}"
