"""Test configuration: float64 is available everywhere; tests pick dtypes explicitly.

Convolutions' ``algorithm="auto"`` uses the fixed CPU thresholds here, not a measurement
(``FUNCNN_CONV_AUTOTUNE=0``, inherited by the scripts the tests start), so every run traces
the same programs; tests/test_conv_autotune.py turns the measurement on where it tests it.

XLA compiles with most of its optimizations off (``JAX_DISABLE_MOST_OPTIMIZATIONS=1``, also
inherited by the scripts the tests start): the tests check values, gradients and what runs
write, never speed, and most of their time is compilation of small programs, which this
makes about a quarter cheaper. ``JAX_DISABLE_MOST_OPTIMIZATIONS=0 python -m pytest`` runs
the suite on fully optimized programs.
"""

import os

os.environ.setdefault("FUNCNN_CONV_AUTOTUNE", "0")
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
