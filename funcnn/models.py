"""The old import path of :mod:`funcnn.nn.models`, which it is (the same module object)."""

import sys

import funcnn.nn.models

sys.modules[__name__] = funcnn.nn.models
