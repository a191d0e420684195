"""The benchmark models in PyTorch (eager), for the train-step comparison. Optional.

PyTorch is a benchmark extra, never a funcnn dependency: everything here imports ``torch``
lazily, and :func:`torch_status` says whether it is there (and why not) so callers can skip
the PyTorch rows cleanly. Install the pinned CPU build with ``pip install torch==2.13.0``.

The models mirror :func:`funcnn.nn.models.lenet5` (tanh, average pooling, SAME first conv) and
:func:`funcnn.nn.models.mlp` (ReLU). LeNet runs channels-last (``torch.channels_last``), the
layout oneDNN prefers on CPU and the one funcnn uses. A step is the usual eager loop:
``zero_grad(set_to_none=True)``, forward, cross-entropy, ``backward()``, ``Adam.step()``.
Initialisation is PyTorch's default (irrelevant to timing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["torch_status", "torch_device", "lenet5_torch", "mlp_torch", "make_torch_step"]

#: The version the benchmarks were written against (a different one runs, with a note).
TORCH_VERSION = "2.13.0"


def torch_status() -> tuple[bool, str]:
    """``(available, note)``: whether ``import torch`` works, and a line for the report."""
    try:
        import torch
    except ImportError as e:  # the optional extra is absent: skip, say how to get it
        return False, f"PyTorch not installed ({e}); `pip install torch=={TORCH_VERSION}` adds the comparison"
    note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    if not torch.__version__.startswith(TORCH_VERSION):
        note += f" (benchmarks written for {TORCH_VERSION})"
    return True, note


def torch_device(jax_platform: str) -> tuple[str | None, str]:
    """The torch device matching JAX's platform (``"cpu"`` or ``"cuda"``), or None + why not."""
    import torch

    if jax_platform == "cpu":
        # Same cores for both frameworks: one intra-op thread per core.
        torch.set_num_threads(os.cpu_count() or 1)
        return "cpu", f"CPU eager, {torch.get_num_threads()} threads"
    if jax_platform in ("gpu", "cuda") and torch.cuda.is_available():
        return "cuda", f"CUDA eager ({torch.cuda.get_device_name(0)})"
    return None, f"no torch device matches JAX platform {jax_platform!r}"


def lenet5_torch(out: int = 10, activation: str = "tanh", pool: str = "avg") -> Any:
    """LeNet-5 for 28x28x1 inputs, as :func:`funcnn.nn.models.lenet5` (default tanh + avg pool;
    ``activation="relu", pool="max"`` is the variant most users train)."""
    from torch import nn

    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    pool_cls = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}[pool]
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), act(), pool_cls(2),
        nn.Conv2d(6, 16, 5), act(), pool_cls(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), act(),
        nn.Linear(120, 84), act(),
        nn.Linear(84, out),
    )


def mlp_torch(d_in: int, widths: Sequence[int], out: int) -> Any:
    """``[Linear(w) -> ReLU] * len(widths) -> Linear(out)``, as :func:`funcnn.nn.models.mlp`."""
    from torch import nn

    layers: list[Any] = [nn.Flatten()]
    d = d_in
    for w in widths:
        layers += [nn.Linear(d, w), nn.ReLU()]
        d = w
    layers.append(nn.Linear(d, out))
    return nn.Sequential(*layers)


def make_torch_step(
    model: Any,
    x_nhwc_or_nd: Any,
    labels: Any,
    *,
    channels_last: bool,
    device: str = "cpu",
    lr: float = 1e-3,
) -> tuple[Callable[[], None], str]:
    """A zero-argument callable doing one Adam train step on a fixed batch, and a description.

    ``x_nhwc_or_nd``: a NumPy batch in funcnn's layout (``(N, H, W, C)`` images, or
    ``(N, D)``); images are turned into NCHW tensors stored channels-last when
    ``channels_last``. The callable synchronizes (CUDA) so timing it is honest.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(x_nhwc_or_nd, dtype=np.float32))
    if x.ndim == 4:
        x = x.permute(0, 3, 1, 2)  # NHWC data -> NCHW logical view
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    model = model.to(device)
    x, y = x.to(device), y.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        x = x.contiguous()
    # Pick the fastest Adam this build offers: fused (one kernel over all params), else
    # foreach (multi-tensor), else the per-parameter loop.
    opt, kind = None, "loop"
    for kw, name in (({"fused": True}, "fused"), ({"foreach": True}, "foreach")):
        try:
            opt = torch.optim.Adam(model.parameters(), lr=lr, **kw)
            kind = name
            break
        except (RuntimeError, TypeError, ValueError):
            continue
    if opt is None:  # pragma: no cover - very old torch
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sync()

    # The fused optimizer may refuse at the first step on some builds: fall back then.
    try:
        step()
    except RuntimeError:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        kind = "loop"
        step()
    layout = "channels-last" if channels_last else "contiguous"
    return step, f"{device}, {layout}, Adam({kind})"
