"""A tiny MLP and cross-entropy shared by tests/test_train.py and tests/_train_resume_script.py.

Plain JAX (no funcnn layers), so the training engine is tested on its own; no pytest import,
so the resume script can use it as a subprocess.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.nn.layer import Layer


def mlp(act=jnp.tanh, hidden: int = 8, out: int = 3) -> Layer:
    def init(key, in_shape):
        k1, k2 = jax.random.split(key)
        d = in_shape[-1]
        params = {
            "w1": jax.random.normal(k1, (d, hidden), jnp.float32) / float(np.sqrt(d)),
            "b1": jnp.zeros((hidden,), jnp.float32),
            "w2": jax.random.normal(k2, (hidden, out), jnp.float32) / float(np.sqrt(hidden)),
            "b2": jnp.zeros((out,), jnp.float32),
        }
        return (in_shape[0], out), params, ()

    def apply(params, state, x, *, key=None, train=False):
        return act(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"], state

    return Layer(init, apply, "mlp")


def xent(logits, labels):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))
