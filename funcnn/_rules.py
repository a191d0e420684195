"""``hand_rule``: ``jax.custom_vjp`` that names the funcnn op when forward mode is asked of it.

A hand-written rule is a reverse-mode rule: ``jax.grad``, ``jax.vjp``, ``jax.jacrev`` and
gradients of gradients work; forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.linearize``,
``jax.hessian``, which is forward-over-reverse) does not. JAX's own error names neither the
op nor the way out; this one does.
"""

from __future__ import annotations

from typing import Any

import jax

__all__ = ["hand_rule"]


class hand_rule(jax.custom_vjp):  # noqa: N801 - used as a decorator, like jax.custom_vjp
    """``jax.custom_vjp`` whose forward-mode error names the op and ``rule="autodiff"``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except TypeError as e:
            if "forward-mode autodiff" not in str(e):
                raise
            op = getattr(self.fun, "__name__", "op").strip("_").removesuffix("_core")
            # Cores shared by the 1-d and 2-d ops: name both.
            op = {"conv2d": "conv1d/conv2d", "max_pool": "max_pool1d/2d", "avg_pool": "avg_pool1d/2d"}.get(op, op)
            raise TypeError(
                f"funcnn.{op}: forward-mode differentiation (jax.jvp, jax.jacfwd, jax.linearize, "
                f"jax.hessian) is not available for the hand-written rule, a reverse-mode "
                f"(custom_vjp) rule; jax.grad, jax.vjp, jax.jacrev and gradients of gradients "
                f"work. For forward mode use the autodiff twin: funcnn.reference.{op}, or "
                f"rule=\"autodiff\" on the layer or model (model.with_rule(\"autodiff\"))."
            ) from None
