"""What every layer family shares: input checks, display names and the rule dispatch.

The checks raise the errors the layer docstrings promise (they name the layer and show the
shape that arrived); ``op_by_rule`` picks an op's hand-ruled form or its autodiff twin.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from funcnn._ops.checks import shape_of
from funcnn._ops.geometry import resolve_padding
from funcnn.nn.choice import Choice


_LAYOUT = {1: "(N, W, C)", 2: "(N, H, W, C)"}


def _op(modules: dict[str, Any], rule: Any, name: str) -> Callable[..., Any]:
    """The op ``name`` under ``rule`` (hand-ruled module or its autodiff twin).

    For a :class:`Choice` of rules, the op picks by data: ``lax.switch`` between the hand
    rule and the twin (array arguments as operands, settings as constants).
    """
    if not isinstance(rule, Choice):
        return getattr(modules[rule], name)
    ops = {r: getattr(modules[r], name) for r in rule.options}

    def op(*args: Any, **settings: Any) -> Any:
        return rule.switch({r: (lambda *a, f=f: f(*a, **settings)) for r, f in ops.items()}, *args)

    return op


def _fmt(args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> str:
    """``"16, 3, stride=2"``: positional reprs then ``k=v`` pairs."""
    parts = [repr(a) for a in args]
    parts += [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return ", ".join(parts)


def _int_setting(v: Any) -> Any:
    """An int-or-tuple setting as written by the user, normalized for display."""
    return tuple(int(x) for x in v) if isinstance(v, (tuple, list)) else v


def _check_in_shape(
    name: str, in_shape: Any, ranks: Sequence[int] | None, layout: str, *, min_rank: int = 1
) -> tuple[int, ...]:
    """Validate ``in_shape``: a tuple of ints, batch dim ``>= 0`` or ``-1``, others ``>= 1``."""
    if isinstance(in_shape, (str, bytes)) or not isinstance(in_shape, Sequence):
        raise TypeError(f"{name}: in_shape must be a tuple of ints, got {in_shape!r}")
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in in_shape):
        raise TypeError(f"{name}: in_shape must be a tuple of ints, got {tuple(in_shape)!r}")
    shape = tuple(int(d) for d in in_shape)
    if (ranks is not None and len(shape) not in ranks) or len(shape) < min_rank:
        raise ValueError(f"{name}: in_shape must be {layout}, got {shape}")
    if shape and (shape[0] < -1 or any(d < 1 for d in shape[1:])):
        raise ValueError(
            f"{name}: in_shape must have a batch size >= 0 (or -1 for unknown) and positive "
            f"other dims, got {shape}"
        )
    return shape


def _check_x(name: str, x: Any, ranks: Sequence[int] | None, layout: str, *, min_rank: int = 1):
    """Validate the rank of ``x`` at apply time."""
    shape = shape_of(x)
    if (ranks is not None and len(shape) not in ranks) or len(shape) < min_rank:
        raise ValueError(f"{name}: x must be {layout}, got x.shape={shape}")
    return shape


def _check_channels(name: str, x_shape: tuple[int, ...], expected: int, what: str) -> None:
    if x_shape[-1] != expected:
        raise ValueError(
            f"{name}: x has {x_shape[-1]} features on its last axis but the layer's {what} "
            f"expects {expected} (x.shape={x_shape}); init the layer with this input's shape"
        )


def _check_tree(name: str, what: str, tree: Any, expected: Mapping[str, tuple[int, ...] | None]) -> None:
    """``tree`` (the layer's params or state) must be a dict with exactly these arrays; a
    shape of ``None`` only needs the key. The check reads shapes, so it also runs under jit."""
    wanted = ", ".join(f"{k!r}" for k in expected)
    if not isinstance(tree, Mapping):
        raise TypeError(
            f"{name}: {what} must be the dict with keys {wanted} that init returned, got {type(tree).__name__} "
            f"{tree!r:.80}"
        )
    missing = [k for k in expected if k not in tree]
    if missing:
        raise ValueError(f"{name}: {what} lack {', '.join(map(repr, missing))}; expected keys {wanted}, got {sorted(tree)}")
    for k, shp in expected.items():
        if shp is not None and tuple(np.shape(tree[k])) != tuple(shp):
            raise ValueError(
                f"{name}: {what}[{k!r}] has shape {tuple(np.shape(tree[k]))} but this layer expects {tuple(shp)}; "
                f"were these {what} made by another layer's init?"
            )


def _check_key(name: str, key: Any) -> None:
    if key is None:
        raise ValueError(f"{name}: init needs a PRNG key (e.g. jax.random.key(0)) to draw its params")


def _warn_if_channels_first(name: str, shape: tuple[int, ...], layout: str) -> None:
    """Warn when an input looks channels-first: funcnn is channels-last, and a (N, C, H, W)
    batch would otherwise train silently as C x H images of W channels."""
    first, last = shape[1], shape[-1]
    if first <= 4 and all(d >= 2 * first for d in shape[2:]):
        perm = (0, *range(2, len(shape)), 1)
        warnings.warn(
            f"{name}: in_shape {shape} looks channels-first (axis 1 has {first} entries, the last axis {last}); "
            f"funcnn is channels-last {layout}: if axis 1 holds the channels, use x.transpose{perm}",
            UserWarning,
            stacklevel=3,
        )


def _batch(n: int) -> int:
    """Batch size for MAC counts: an unknown batch (-1) counts one example."""
    return 1 if n < 0 else n


def _check_padding_form(name: str, padding: Any, n: int) -> None:
    """Reject a malformed padding at construction (sizes are only known at init)."""
    resolve_padding(name, padding, (1 << 20,) * n, (1,) * n, (1,) * n)



def _check_algorithm(name: str, algorithm: Any, rule: Any, table: Any) -> str:
    """A layer's ``algorithm`` setting: ``"auto"``, a name in ``table`` or, for the autodiff
    rule alone, ``"plain"`` (the twin's own forward)."""
    allowed = ("auto", *table) + (("plain",) if rule == "autodiff" else ())
    if not isinstance(algorithm, str) or algorithm not in allowed:
        raise ValueError(f"{name}: algorithm must be None or one of {allowed}, got {algorithm!r}")
    return algorithm

