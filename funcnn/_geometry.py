"""Window geometry shared by convolution and pooling: padding resolution and output sizes.

One piece of code per idea: every op that slides a window over spatial dims resolves its
padding and predicts its output size here.

Padding forms accepted everywhere:

- ``"VALID"``: no padding; output = floor((n - k_eff) / stride) + 1.
- ``"SAME"``: output = ceil(n / stride); total padding max((out - 1) * stride + k_eff - n, 0),
  split with the extra element on the high side (TensorFlow/XLA convention).
- an int ``p``: ``p`` on both sides of every spatial dim.
- a sequence of ``(lo, hi)`` pairs, one per spatial dim.

``k_eff = dilation * (k - 1) + 1`` is the extent of a dilated window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np

Padding = Union[str, int, Sequence[tuple[int, int]]]


def effective_size(k: int, dilation: int = 1) -> int:
    """Extent of a window of ``k`` taps spaced ``dilation`` apart: ``dilation*(k-1)+1``."""
    return dilation * (k - 1) + 1


def resolve_padding(
    fn: str,
    padding: Any,
    in_sizes: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int] | None = None,
) -> tuple[tuple[int, int], ...]:
    """Turn any accepted padding form into explicit ``(lo, hi)`` pairs, one per spatial dim.

    Raises:
        ValueError: unknown padding string, wrong number of pairs, negative padding.
        TypeError: padding of an unsupported type.
    """
    n = len(in_sizes)
    dilations = tuple(dilations) if dilations is not None else (1,) * n
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0),) * n
        if mode == "SAME":
            pads = []
            for size, k, s, d in zip(in_sizes, window, strides, dilations):
                out = -(-size // s)
                total = max((out - 1) * s + effective_size(k, d) - size, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            f"{fn}: unknown padding {padding!r}; expected 'VALID', 'SAME', an int, "
            f"or a sequence of {n} (lo, hi) pairs"
        )
    if isinstance(padding, (bool, np.bool_)):
        raise TypeError(f"{fn}: padding must be 'VALID', 'SAME', an int or (lo, hi) pairs, got {padding!r}")
    if isinstance(padding, (int, np.integer)):
        if padding < 0:
            raise ValueError(f"{fn}: padding must be >= 0, got {padding}")
        return ((int(padding), int(padding)),) * n
    if isinstance(padding, Sequence):
        pairs = tuple(padding)
        if len(pairs) != n or not all(
            isinstance(p, Sequence) and len(p) == 2 and all(isinstance(v, (int, np.integer)) for v in p)
            for p in pairs
        ):
            raise ValueError(
                f"{fn}: explicit padding must be {n} (lo, hi) pair(s) of ints, one per spatial "
                f"dim, got {padding!r}"
            )
        out = tuple((int(lo), int(hi)) for lo, hi in pairs)
        if any(v < 0 for p in out for v in p):
            raise ValueError(f"{fn}: padding must be >= 0, got {padding!r}")
        return out
    raise TypeError(f"{fn}: padding must be 'VALID', 'SAME', an int or (lo, hi) pairs, got {padding!r}")


def output_size(n: int, k: int, stride: int, pad: tuple[int, int], dilation: int = 1) -> int:
    """Output length of one spatial dim given explicit padding: floor((n+lo+hi-k_eff)/s)+1."""
    return (n + pad[0] + pad[1] - effective_size(k, dilation)) // stride + 1


def output_sizes(
    fn: str,
    in_sizes: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilations: Sequence[int] | None = None,
    *,
    what: str = "kernel",
) -> tuple[int, ...]:
    """Output sizes per spatial dim; ValueError if a window does not fit the padded input."""
    dilations = tuple(dilations) if dilations is not None else (1,) * len(in_sizes)
    outs = []
    for i, (size, k, s, p, d) in enumerate(zip(in_sizes, window, strides, pads, dilations)):
        k_eff = effective_size(k, d)
        padded = size + p[0] + p[1]
        if k_eff > padded:
            raise ValueError(
                f"{fn}: {what} of effective size {k_eff} (size {k}, dilation {d}) is larger than "
                f"the padded input {padded} (input {size} + padding {p}) in spatial dim {i}"
            )
        outs.append(output_size(size, k, s, p, d))
    return tuple(outs)
