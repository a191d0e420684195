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
    forward-mode error names the op and the way out (its autodiff twin).

    The public rule decorator of funcnn, for any op (the built-ins use it too)::

        @funcnn.hand_rule(name="my_op")            # or @funcnn.hand_rule, named after the function
        def my_op(x, w):
            return jnp.tanh(x @ w)

        def my_op_fwd(x, w):
            y = my_op.fun(x, w)
            return y, (x, w, y)

        # d/dx = (g * (1 - y^2)) w^T,  d/dw = x^T (g * (1 - y^2))
        def my_op_bwd(res, g):
            x, w, y = res
            e = g * (1 - y * y)
            return e @ w.T, x.T @ e

        my_op.defvjp(my_op_fwd, my_op_bwd)

    Args:
      fun: the primal (undecorated forward).
      nondiff_argnums: static settings, as in ``jax.custom_vjp``.
      name: the op's name in named scopes (``<name>/fwd``, ``<name>/bwd``) and errors; default
        the function's name, and built-in cores are shown as ``funcnn.<op>``.
    """

    def __new__(cls, fun: Any = None, nondiff_argnums: Any = (), *, name: str | None = None, **kwargs: Any):
        if fun is None:  # @hand_rule(name=...): a decorator
            return lambda f: cls(f, nondiff_argnums, name=name, **kwargs)
        return super().__new__(cls, fun, nondiff_argnums)

    def __init__(self, fun: Any, nondiff_argnums: Any = (), *, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(fun, nondiff_argnums, **kwargs)
        self._user_name = name

    @property
    def op_name(self) -> str:
        """The public op this core implements (cores shared by the 1-d and 2-d ops name both)."""
        if self._user_name is not None:
            return self._user_name
        op = getattr(self.fun, "__name__", "op").strip("_").removesuffix("_core")
        return {"conv2d": "conv1d/conv2d", "max_pool": "max_pool1d/2d", "avg_pool": "avg_pool1d/2d"}.get(op, op)

    @property
    def _builtin(self) -> bool:
        return self._user_name is None and getattr(self.fun, "__module__", "").startswith("funcnn.")

    def defvjp(self, fwd: Any, bwd: Any, *args: Any, **kwargs: Any) -> Any:
        op = self.op_name.replace("/", "_")
        scope = ("funcnn." + op) if self._builtin else "".join(c if c.isalnum() or c in "._-" else "_" for c in op)
        return super().defvjp(_scoped(fwd, scope + "/fwd"), _scoped(bwd, scope + "/bwd"), *args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except TypeError as e:
            if "forward-mode autodiff" not in str(e):
                raise
            op = self.op_name
            if self._builtin:
                raise TypeError(
                    f"funcnn.{op}: forward-mode differentiation (jax.jvp, jax.jacfwd, jax.linearize, "
                    f"jax.hessian) is not available for the hand-written rule, a reverse-mode "
                    f"(custom_vjp) rule; jax.grad, jax.vjp, jax.jacrev and gradients of gradients "
                    f"work. For forward mode use the autodiff twin: funcnn.reference.{op}, or "
                    f"rule=\"autodiff\" on the layer or model (model.with_rule(\"autodiff\"))."
                ) from None
            raise TypeError(
                f"{op}: forward-mode differentiation (jax.jvp, jax.jacfwd, jax.linearize, jax.hessian) is "
                f"not available for the hand-written rule of {op!r}, a reverse-mode (custom_vjp) rule; "
                f"jax.grad, jax.vjp and jax.jacrev work. For forward mode use its autodiff twin "
                f"({op}.reference for a registered activation) or rule=\"autodiff\" on the layer or model."
            ) from None
