"""The old import path of :mod:`funcnn.nn.initializers`, which it is (the same module object)."""

import sys

import funcnn.nn.initializers

sys.modules[__name__] = funcnn.nn.initializers
