"""``hand_rule``: ``jax.custom_vjp`` that names the funcnn op when forward mode is asked of it.

Each rule's forward and backward run under ``jax.named_scope`` (``funcnn.<op>/fwd``,
``funcnn.<op>/bwd``), so a profile or the HLO's op names separate the hand rules from
the rest of the program and from each other.

A hand-written rule is a reverse-mode rule: ``jax.grad``, ``jax.vjp``, ``jax.jacrev`` and
gradients of gradients work; forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.linearize``,
``jax.hessian``, which is forward-over-reverse) does not. JAX's own error names neither the
op nor the way out; this one does.
"""

from __future__ import annotations

import functools
from typing import Any

import jax

__all__ = ["hand_rule"]


def _scoped(f: Any, scope: str) -> Any:
    """``f`` run under ``jax.named_scope(scope)``."""

    @functools.wraps(f)
    def run(*args: Any) -> Any:
        with jax.named_scope(scope):
            return f(*args)

    return run


class hand_rule(jax.custom_vjp):  # noqa: N801 - used as a decorator, like jax.custom_vjp
    """``jax.custom_vjp`` whose forward and backward run in a named scope per op and whose
    forward-mode error names the op and ``rule="autodiff"``."""

    @property
    def op_name(self) -> str:
        """The public op this core implements (cores shared by the 1-d and 2-d ops name both)."""
        op = getattr(self.fun, "__name__", "op").strip("_").removesuffix("_core")
        return {"conv2d": "conv1d/conv2d", "max_pool": "max_pool1d/2d", "avg_pool": "avg_pool1d/2d"}.get(op, op)

    def defvjp(self, fwd: Any, bwd: Any, *args: Any, **kwargs: Any) -> Any:
        scope = "funcnn." + self.op_name.replace("/", "_")
        return super().defvjp(_scoped(fwd, scope + "/fwd"), _scoped(bwd, scope + "/bwd"), *args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except TypeError as e:
            if "forward-mode autodiff" not in str(e):
                raise
            op = self.op_name
            raise TypeError(
                f"funcnn.{op}: forward-mode differentiation (jax.jvp, jax.jacfwd, jax.linearize, "
                f"jax.hessian) is not available for the hand-written rule, a reverse-mode "
                f"(custom_vjp) rule; jax.grad, jax.vjp, jax.jacrev and gradients of gradients "
                f"work. For forward mode use the autodiff twin: funcnn.reference.{op}, or "
                f"rule=\"autodiff\" on the layer or model (model.with_rule(\"autodiff\"))."
            ) from None
