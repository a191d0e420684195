"""The old import path of :mod:`funcnn.nn.diagnostics`, which it is (the same module object)."""

import sys

import funcnn.nn.diagnostics

sys.modules[__name__] = funcnn.nn.diagnostics
