"""float32 without x64, the configuration users run by default.

tests/conftest.py enables jax_enable_x64 for the whole test process, so float32 is otherwise
tested only where a test asks for it, with float64 available underneath. This test runs
tests/_float32_worker.py in a fresh interpreter with x64 off: the quick gradcheck subset at
float32 points (hand rule vs autodiff), the default dtypes of an MLP's and LeNet-5's params,
outputs and gradients, and a few funcnn.train steps of a tiny MLP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_float32_without_x64():
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_ENABLE_X64")}
    env["JAX_ENABLE_X64"] = "0"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "_float32_worker.py")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, (
        f"tests/_float32_worker.py (JAX_ENABLE_X64=0) exited {proc.returncode}\n"
        f"--- stderr ---\n{proc.stderr[-6000:]}\n--- stdout ---\n{proc.stdout[-2000:]}"
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(lines[0][len("RESULT "):])
    # what the worker asserted, checked again here so a worker that skipped a part fails
    gc = res["gradcheck"]
    assert gc["cases"] >= 10 and gc["max_rel_err"] <= 1e-4, gc
    assert {"dense", "conv2d", "batch_norm", "softmax_cross_entropy"} <= set(gc["ops"]), gc["ops"]
    for name in ("mlp", "lenet5"):
        assert res[name] == {"params": ["float32"], "output": "float32", "grads": ["float32"]}, res[name]
    loss = res["train"]["train_loss"]
    assert res["train"]["params"] == ["float32"]
    assert len(loss) == 3 and all(b < a for a, b in zip(loss, loss[1:])), loss
