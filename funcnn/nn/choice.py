"""A choice among same-shaped alternatives, made by data: one compiled program for all of them.

An ablation grid often differs only in a choice — the hidden activation, hand rule vs
autodiff twin, the cost function — among alternatives of the same shape. Compiling one
program per alternative costs seconds each; a :class:`Choice` instead carries the
alternatives statically and the member's pick as data (an int, or a traced int scalar),
so one program serves every member:

    >>> act = Choice(("relu", "tanh", "gelu"), index)     # index: int or traced int32
    >>> y = act.switch({"relu": funcnn.relu, "tanh": funcnn.tanh, "gelu": funcnn.gelu}, x)

``switch`` is ``lax.switch`` over the alternatives, each keeping its own hand-written rule
(``jax.grad`` differentiates the branch taken). With a concrete ``index`` it just calls the
chosen alternative. Under ``jax.vmap`` with a batched index ``lax.switch`` computes every
branch and selects per member; :func:`funcnn.train.run_grid` avoids that by running members
that share a choice as one block, with the index unbatched (a real branch).

Layers take a ``Choice`` where a name would go: ``Activation(Choice(...))`` (a union of the
alternatives' parameters), and ``rule=Choice(("hand", "autodiff"), i)`` on any layer or model
makes each op pick its hand rule or its twin by data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["Choice"]


def _fmt_shapes(leaves: list[tuple[tuple[int, ...], str]]) -> str:
    return ", ".join(f"{dt}{list(sh)}" for sh, dt in leaves) or "nothing"


@dataclasses.dataclass(frozen=True, eq=False)
class Choice:
    """The pick ``options[index]`` among static ``options``; ``index`` may be traced.

    Attributes:
      options: the alternatives' names (distinct strings), in a fixed order.
      index: which one: a Python int (concrete) or an integer JAX scalar (traced in a
        compiled grid program).
    """

    options: tuple[str, ...]
    index: Any

    def __post_init__(self) -> None:
        opts = self.options
        if isinstance(opts, str) or not isinstance(opts, Sequence) or not opts:
            raise TypeError(f"Choice: options must be a non-empty sequence of names, got {opts!r}")
        if not all(isinstance(o, str) for o in opts) or len(set(opts)) != len(opts):
            raise ValueError(f"Choice: options must be distinct strings, got {tuple(opts)!r}")
        object.__setattr__(self, "options", tuple(opts))
        i = self.index
        if isinstance(i, (bool, np.bool_)):
            raise TypeError(f"Choice: index must be an int or an integer scalar array, got {i!r}")
        if isinstance(i, (int, np.integer)):
            if not 0 <= int(i) < len(opts):
                raise ValueError(f"Choice: index {int(i)} is out of range for {len(opts)} options {tuple(opts)}")
            object.__setattr__(self, "index", int(i))
        elif not (hasattr(i, "dtype") and jnp.issubdtype(i.dtype, jnp.integer) and np.ndim(i) == 0):
            raise TypeError(f"Choice: index must be an int or an integer scalar array, got {i!r}")

    @classmethod
    def of(cls, options: Sequence[str], value: str) -> Choice:
        """The concrete choice of ``value`` among ``options``."""
        options = tuple(options)
        if value not in options:
            raise ValueError(f"Choice.of: {value!r} is not one of the options {options}")
        return cls(options, options.index(value))

    @property
    def concrete(self) -> bool:
        """Whether the pick is known in Python (a plain int index)."""
        return isinstance(self.index, int)

    @property
    def value(self) -> str:
        """The chosen name (concrete choices only)."""
        if not self.concrete:
            raise TypeError(f"Choice.value: the pick among {self.options} is traced; it is data, not a Python value")
        return self.options[self.index]

    @property
    def label(self) -> str:
        """``relu`` for a concrete choice, ``relu|tanh|...`` for a traced one."""
        return self.value if self.concrete else "|".join(self.options)

    def switch(self, branches: Mapping[str, Callable[..., Any]], *operands: Any) -> Any:
        """``branches[options[index]](*operands)``: a call for a concrete index, else ``lax.switch``."""
        missing = [o for o in self.options if o not in branches]
        if missing:
            raise ValueError(f"Choice.switch: no branch for {missing}; branches: {sorted(branches)}")
        if self.concrete:
            return branches[self.value](*operands)
        import jax

        outs = {o: jax.eval_shape(branches[o], *operands) for o in self.options}
        first = jax.tree_util.tree_structure(outs[self.options[0]])
        shapes = {o: [(tuple(a.shape), str(a.dtype)) for a in jax.tree_util.tree_leaves(v)] for o, v in outs.items()}
        ref = shapes[self.options[0]]
        for o in self.options[1:]:
            if jax.tree_util.tree_structure(outs[o]) != first or shapes[o] != ref:
                raise ValueError(
                    f"Choice.switch: the alternatives must return the same shapes and dtypes to be picked by "
                    f"data; {self.options[0]!r} returns {_fmt_shapes(ref)} but {o!r} returns {_fmt_shapes(shapes[o])}"
                )
        return lax.switch(self.index, [branches[o] for o in self.options], *operands)

    def pick(self, values: Sequence[Any]) -> Any:
        """``values[index]`` for per-option arrays of one shape (a gather when traced)."""
        if len(values) != len(self.options):
            raise ValueError(f"Choice.pick: {len(values)} values for {len(self.options)} options")
        if self.concrete:
            return values[self.index]
        return jnp.stack([jnp.asarray(v) for v in values])[self.index]

    def __repr__(self) -> str:
        return f"Choice({self.label})"

