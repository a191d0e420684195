"""float32 checks run WITHOUT x64, in a subprocess of tests/test_float32_default.py.

tests/conftest.py turns jax_enable_x64 on for the whole pytest process, so this script runs
as its own interpreter (``JAX_ENABLE_X64=0``, no conftest) to test what users get by
default: float32 everywhere. It asserts as it goes (an AssertionError exits nonzero) and
prints one JSON line of what it measured, prefixed by ``RESULT ``.
"""

from __future__ import annotations

import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import funcnn.gradcheck as gradcheck
from funcnn.nn.models import lenet5, mlp
from funcnn.train import fit


def x64_off() -> None:
    assert not jax.config.read("jax_enable_x64"), "jax_enable_x64 is on: this script must run without x64"
    assert jnp.asarray(1.0).dtype == jnp.float32


def leaf_dtypes(tree) -> set[str]:
    return {str(a.dtype) for a in jax.tree.leaves(tree)}


def main() -> None:
    t0 = time.perf_counter()
    out: dict = {}
    x64_off()  # importing funcnn turned nothing on

    # 1. The quick gradcheck subset (about one case per op family), at float32 points (the
    #    default dtype of check_case without x64): every hand rule equals its autodiff twin
    #    within gradcheck's float32 tolerance. Finite differences in float32 are recorded,
    #    not required (gradcheck: only meaningful in float64).
    reports = gradcheck.run(quick=True)
    assert len(reports) >= 10, f"quick gradcheck subset has only {len(reports)} cases"
    bad = [f"{r.op} [{r.config}]: {r.error or f'max_rel_err {r.max_rel_err:.3g}'}"
           for r in reports if r.error or not r.autodiff_passed]
    assert not bad, "hand rule vs autodiff failed in float32:\n  " + "\n  ".join(bad)
    out["t_gradcheck"] = round(time.perf_counter() - t0, 1)
    out["gradcheck"] = {
        "cases": len(reports),
        "ops": sorted({r.op for r in reports}),
        "max_rel_err": max(r.max_rel_err for r in reports),
        "fd_failed": [r.op for r in reports if not r.fd_passed],
    }
    x64_off()

    # 2. Default dtypes of layer params, outputs and gradients: float32 for an MLP and LeNet-5.
    #    Init, forward and gradient in one jitted call per model (one compilation: eager
    #    init compiles a random draw per weight shape, ~8 s for LeNet on a busy CPU).
    key = jax.random.PRNGKey(0)
    rng = np.random.default_rng(0)
    for name, model, x in (
        ("mlp", mlp((16, 8), 3, "tanh"), rng.normal(size=(4, 5))),
        ("lenet5", lenet5(), rng.normal(size=(2, 28, 28, 1))),
    ):
        x = jnp.asarray(x)  # numpy's float64 -> jax's default float32
        assert x.dtype == jnp.float32

        def init_forward_grad(key, x, model=model):
            out_shape, params, state = model.init(key, x.shape)

            def loss(p):
                y = model.apply(p, state, x)[0]
                return jnp.sum(y**2), y

            (_, y), grads = jax.value_and_grad(loss, has_aux=True)(params)
            return params, y, grads

        params, y, grads = jax.jit(init_forward_grad)(key, x)
        # Eager apply on the NumPy float64 batch itself: JAX holds it as float32, so it
        # matches the float32 params as it does under jit (no dtype-mismatch error).
        state0 = model.init(key, x.shape)[2]
        y_eager = model.apply(params, state0, np.asarray(x, np.float64))[0]
        assert y_eager.dtype == jnp.float32, y_eager.dtype
        dtypes = {"params": leaf_dtypes(params), "output": str(y.dtype), "grads": leaf_dtypes(grads)}
        assert dtypes == {"params": {"float32"}, "output": "float32", "grads": {"float32"}}, (name, dtypes)
        assert y.shape == (x.shape[0], 3 if name == "mlp" else 10), (name, y.shape)
        assert np.all(np.isfinite(np.asarray(y))), name
        assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads)), name
        out[name] = {"params": sorted(dtypes["params"]), "output": dtypes["output"], "grads": sorted(dtypes["grads"])}
    x64_off()
    out["t_models"] = round(time.perf_counter() - t0, 1)

    # 3. A few training steps of a tiny MLP with funcnn.train: float32 params, finite loss
    #    that falls.
    xs = rng.normal(size=(128, 5)).astype(np.float32)
    ys = ((xs[:, 0] > 0).astype(np.int32) + (xs[:, 1] > 0.3)).astype(np.int32)
    res = fit(mlp((8,), 3, "tanh"), "softmax_cross_entropy", optax.adam(1e-2), (xs, ys),
              steps=40, batch_size=32, eval_every=20, progress=False)
    assert not res.diverged, res.diverged_step
    assert leaf_dtypes(res.params) == {"float32"}, leaf_dtypes(res.params)
    step_loss = np.asarray(res.history.step_metrics["loss"])
    train_loss = np.asarray(res.history.eval_metrics["train_loss"])
    assert step_loss.shape == (40,) and np.all(np.isfinite(step_loss)), step_loss
    assert list(res.history.eval_steps) == [0, 20, 40], res.history.eval_steps
    assert np.all(np.isfinite(train_loss)) and np.all(np.diff(train_loss) < 0), train_loss
    assert train_loss[-1] < 0.9 * train_loss[0], train_loss
    out["train"] = {"train_loss": [float(v) for v in train_loss], "params": sorted(leaf_dtypes(res.params))}
    x64_off()

    out["seconds"] = round(time.perf_counter() - t0, 1)
    assert all(math.isfinite(v) for v in out["train"]["train_loss"])
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
