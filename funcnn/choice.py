"""The old import path of :mod:`funcnn.nn.choice`, which it is (the same module object)."""

import sys

import funcnn.nn.choice

sys.modules[__name__] = funcnn.nn.choice
