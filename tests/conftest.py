"""Test configuration: float64 is available everywhere; tests pick dtypes explicitly.

Convolutions' ``algorithm="auto"`` uses the fixed CPU thresholds here, not a measurement
(``FUNCNN_CONV_AUTOTUNE=0``, inherited by the scripts the tests start), so every run traces
the same programs; tests/test_conv_autotune.py turns the measurement on where it tests it.
"""

import os

os.environ.setdefault("FUNCNN_CONV_AUTOTUNE", "0")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
