"""Ready-made architectures used across the experiments: MLPs, 1-D/2-D CNNs, LeNet-5.

Each builder returns a :class:`funcnn.Layer` made with :func:`funcnn.serial`, so it has the
usual ``init``/``apply`` pair, takes ``rule="hand"`` or ``"autodiff"``, and can be inspected
by :mod:`funcnn.nn.diagnostics`. The activation is given by name (any of
:data:`funcnn.ACTIVATION_NAMES`, with its settings in ``activation_kwargs``).
"""

from __future__ import annotations

import inspect

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from funcnn._ops.checks import check_choice
from funcnn.nn.layer import Layer, check_rule
from funcnn.nn.combinators import serial
from funcnn.nn import (
    Activation,
    AvgPool1D,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    MaxPool1D,
    MaxPool2D,
)

Init = Callable[..., jax.Array]
POOLS = (None, "max", "avg")


def _check_widths(fn: str, name: str, widths: Sequence[int]) -> tuple[int, ...]:
    if isinstance(widths, (int, str)) or not all(
        isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths
    ):
        raise ValueError(f"{fn}: {name} must be a sequence of positive ints, got {widths!r}")
    return tuple(widths)


def _check_out(fn: str, out: Any) -> None:
    if not isinstance(out, int) or isinstance(out, bool) or out < 1:
        raise ValueError(f"{fn}: out must be a positive int (number of outputs), got {out!r}")


def _act(activation: str, kwargs: Mapping[str, Any] | None, rule: str) -> Layer:
    return Activation(activation, rule=rule, **dict(kwargs or {}))


def mlp(
    widths: Sequence[int],
    out: int,
    activation: str = "relu",
    *,
    activation_kwargs: Mapping[str, Any] | None = None,
    w_init: Init | None = None,
    b_init: Init | None = None,
    batch_norm: bool = False,
    rule: str = "hand",
) -> Layer:
    """Multi-layer perceptron: ``[Dense(w) -> (BatchNorm) -> activation] * len(widths) -> Dense(out)``.

    Args:
        widths: hidden-layer widths, e.g. ``(256, 256)``; ``()`` gives a linear model.
        out: number of outputs (classes, or regression targets).
        activation: hidden activation name.
        activation_kwargs: settings of the activation (e.g. ``{"negative_slope": 0.1}``).
        w_init, b_init: initializers of every Dense layer (defaults: Dense's).
        batch_norm: insert BatchNorm between each hidden Dense and its activation.
        rule: ``"hand"`` or ``"autodiff"`` for every layer.

    Returns:
        A serial Layer mapping ``(N, D) -> (N, out)`` (inputs of higher rank are flattened).
    """
    fn = "mlp"
    widths = _check_widths(fn, "widths", widths)
    _check_out(fn, out)
    check_rule(fn, rule)
    layers: list[Layer] = [Flatten()]
    for w in widths:
        layers.append(Dense(w, w_init=w_init, b_init=b_init, rule=rule))
        if batch_norm:
            layers.append(BatchNorm(rule=rule))
        layers.append(_act(activation, activation_kwargs, rule))
    layers.append(Dense(out, w_init=w_init, b_init=b_init, rule=rule))
    return serial(*layers)


def _cnn_settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``cnn1d``'s / ``cnn2d``'s own arguments, as ``_cnn``'s keywords (the two share them all)."""
    return {k: arguments[k] for k in inspect.signature(_cnn).parameters if k not in ("fn", "ndim")}


def _cnn(
    fn: str,
    ndim: int,
    *,
    channels: Sequence[int],
    out: int,
    activation: str,
    kernel: int,
    stride: int,
    padding: Any,
    pool: str | None,
    pool_window: int,
    hidden: Sequence[int],
    activation_kwargs: Mapping[str, Any] | None,
    w_init: Init | None,
    b_init: Init | None,
    batch_norm: bool,
    rule: str,
) -> Layer:
    channels = _check_widths(fn, "channels", channels)
    hidden = _check_widths(fn, "hidden", hidden)
    _check_out(fn, out)
    check_choice(fn, "pool", pool, POOLS)
    check_rule(fn, rule)
    conv = Conv1D if ndim == 1 else Conv2D
    pools = {"max": MaxPool1D if ndim == 1 else MaxPool2D, "avg": AvgPool1D if ndim == 1 else AvgPool2D}
    layers: list[Layer] = []
    for c in channels:
        layers.append(conv(c, kernel, stride=stride, padding=padding, w_init=w_init, b_init=b_init, rule=rule))
        if batch_norm:
            layers.append(BatchNorm(rule=rule))
        layers.append(_act(activation, activation_kwargs, rule))
        if pool is not None:
            layers.append(pools[pool](pool_window, rule=rule))
    layers.append(Flatten())
    for h in hidden:
        layers.append(Dense(h, w_init=w_init, b_init=b_init, rule=rule))
        layers.append(_act(activation, activation_kwargs, rule))
    layers.append(Dense(out, w_init=w_init, b_init=b_init, rule=rule))
    return serial(*layers)


def cnn1d(
    channels: Sequence[int] = (25, 25, 25),
    out: int = 10,
    activation: str = "relu",
    *,
    kernel: int = 5,
    stride: int = 2,
    padding: Any = 1,
    pool: str | None = None,
    pool_window: int = 2,
    hidden: Sequence[int] = (),
    activation_kwargs: Mapping[str, Any] | None = None,
    w_init: Init | None = None,
    b_init: Init | None = None,
    batch_norm: bool = False,
    rule: str = "hand",
) -> Layer:
    """1-D CNN over ``(N, W, C)`` sequences; the defaults are MNIST-1D's baseline CNN.

    ``[Conv1D(c, kernel, stride, padding) -> (BatchNorm) -> activation -> (pool)] per c in
    channels -> Flatten -> [Dense(h) -> activation] per h in hidden -> Dense(out)``.
    Greydanus (2020), "Scaling down deep learning", uses three conv layers of 25 channels,
    kernel 5, stride 2, padding 1 with ReLU, then a linear read-out.

    Returns:
        A serial Layer mapping ``(N, W, C) -> (N, out)``.
    """
    return _cnn("cnn1d", 1, **_cnn_settings(locals()))


def cnn2d(
    channels: Sequence[int] = (16, 32),
    out: int = 10,
    activation: str = "relu",
    *,
    kernel: int = 3,
    stride: int = 1,
    padding: Any = "SAME",
    pool: str | None = "max",
    pool_window: int = 2,
    hidden: Sequence[int] = (),
    activation_kwargs: Mapping[str, Any] | None = None,
    w_init: Init | None = None,
    b_init: Init | None = None,
    batch_norm: bool = False,
    rule: str = "hand",
) -> Layer:
    """2-D CNN over ``(N, H, W, C)`` images (defaults suit the 8x8 digits).

    Same layout as :func:`cnn1d` with 2-D convolutions and pools.

    Returns:
        A serial Layer mapping ``(N, H, W, C) -> (N, out)``.
    """
    return _cnn("cnn2d", 2, **_cnn_settings(locals()))


def lenet5(out: int = 10, activation: str = "tanh", *, pool: str = "avg", rule: str = "hand") -> Layer:
    """LeNet-5 (LeCun et al. 1998) for ``(N, 28, 28, 1)`` images.

    ``Conv2D(6, 5, SAME) -> act -> pool 2 -> Conv2D(16, 5) -> act -> pool 2 -> Flatten ->
    Dense(120) -> act -> Dense(84) -> act -> Dense(out)``.
    """
    fn = "lenet5"
    _check_out(fn, out)
    check_choice(fn, "pool", pool, ("max", "avg"))
    check_rule(fn, rule)
    p = MaxPool2D if pool == "max" else AvgPool2D
    a = lambda: Activation(activation, rule=rule)  # noqa: E731
    return serial(
        Conv2D(6, 5, padding="SAME", rule=rule), a(), p(2, rule=rule),
        Conv2D(16, 5, rule=rule), a(), p(2, rule=rule),
        Flatten(),
        Dense(120, rule=rule), a(),
        Dense(84, rule=rule), a(),
        Dense(out, rule=rule),
    )


def _check_depth(fn: str, depth: Any) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"{fn}: depth must be a positive int (number of residual blocks), got {depth!r}")
    return depth


def _check_branch_scale(fn: str, branch_scale: Any) -> float | None:
    if branch_scale is None:
        return None
    if isinstance(branch_scale, bool) or not isinstance(branch_scale, (int, float)):
        raise TypeError(f"{fn}: branch_scale must be None or a number (the initial alpha), got {branch_scale!r}")
    return float(branch_scale)


def residual_mlp(
    depth: int,
    width: int,
    out: int,
    activation: str = "relu",
    *,
    activation_kwargs: Mapping[str, Any] | None = None,
    w_init: Init | str | None = None,
    b_init: Init | str | None = None,
    branch_scale: float | None = None,
    rule: str = "hand",
) -> Layer:
    """Residual MLP: ``Dense(width) -> act -> [x + alpha * act(Dense(width)(x))] * depth -> Dense(out)``.

    Each block is ``Residual(Dense(width), activation)`` (He et al., 2016, in its one-layer
    form): the error term reaching a block's input is the one from above *plus* the one
    through the branch, so it cannot vanish with depth the way a plain chain's product of
    Jacobians does. ``depth`` counts weighted hidden layers, as ``len(widths)`` does for
    :func:`mlp`: ``residual_mlp(L, w, k)`` is the residual twin of ``mlp((w,) * (L + 1), k)``
    (the first hidden layer is the plain input projection).

    Args:
        depth: number of residual blocks.
        width: the width of every hidden layer.
        out: number of outputs.
        activation, activation_kwargs: the hidden activation (any registered name).
        w_init, b_init: initializers of every Dense (a function, a name or a Choice of names).
        branch_scale: ``None`` for ``y = x + F(x)``; a number for a learnable scalar ``alpha``
            on every branch initialised to it (``0.0``: SkipInit, De & Smith 2020: each block
            starts as the identity).
        rule: ``"hand"`` or ``"autodiff"``.

    Returns:
        A serial Layer mapping ``(N, D) -> (N, out)``.
    """
    from funcnn.nn.combinators import Residual

    fn = "residual_mlp"
    depth = _check_depth(fn, depth)
    (width,) = _check_widths(fn, "width", (width,))
    _check_out(fn, out)
    check_rule(fn, rule)
    scale = _check_branch_scale(fn, branch_scale)
    layers: list[Layer] = [Flatten(), Dense(width, w_init=w_init, b_init=b_init, rule=rule),
                           _act(activation, activation_kwargs, rule)]
    for _ in range(depth):
        layers.append(Residual(Dense(width, w_init=w_init, b_init=b_init, rule=rule),
                               _act(activation, activation_kwargs, rule), branch_scale=scale, rule=rule))
    layers.append(Dense(out, w_init=w_init, b_init=b_init, rule=rule))
    return serial(*layers)


def residual_cnn1d(
    depth: int,
    channels: int,
    out: int,
    activation: str = "relu",
    *,
    kernel: int = 3,
    pool: str | None = "max",
    activation_kwargs: Mapping[str, Any] | None = None,
    w_init: Init | str | None = None,
    b_init: Init | str | None = None,
    branch_scale: float | None = None,
    rule: str = "hand",
) -> Layer:
    """A small residual 1-D CNN for MNIST-1D-like signals ``(N, W, C)``.

    ``Conv1D(channels, kernel, SAME) -> act -> [x + alpha * act(Conv1D(channels, kernel, SAME)(x))] * depth
    -> (pool 2) -> Flatten -> Dense(out)``; SAME padding keeps every block's shape, so no
    projection shortcut is needed.

    Args:
        depth: number of residual blocks.
        channels: channels of every conv layer.
        out: number of outputs.
        activation, activation_kwargs: the hidden activation (any registered name).
        kernel: conv kernel size.
        pool: ``"max"``, ``"avg"`` or ``None``: a window-2 pool before the classifier.
        w_init, b_init: initializers (a function, a name or a Choice of names).
        branch_scale: as for :func:`residual_mlp`.
        rule: ``"hand"`` or ``"autodiff"``.
    """
    from funcnn.nn.combinators import Residual

    fn = "residual_cnn1d"
    depth = _check_depth(fn, depth)
    (channels,) = _check_widths(fn, "channels", (channels,))
    _check_out(fn, out)
    check_rule(fn, rule)
    check_choice(fn, "pool", pool, POOLS)
    scale = _check_branch_scale(fn, branch_scale)

    def conv() -> Layer:
        return Conv1D(channels, kernel, padding="SAME", w_init=w_init, b_init=b_init, rule=rule)

    layers: list[Layer] = [conv(), _act(activation, activation_kwargs, rule)]
    for _ in range(depth):
        layers.append(Residual(conv(), _act(activation, activation_kwargs, rule), branch_scale=scale, rule=rule))
    if pool == "max":
        layers.append(MaxPool1D(2, rule=rule))
    elif pool == "avg":
        layers.append(AvgPool1D(2, rule=rule))
    layers += [Flatten(), Dense(out, w_init=w_init, b_init=b_init, rule=rule)]
    return serial(*layers)
