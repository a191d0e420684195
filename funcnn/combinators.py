"""The old import path of :mod:`funcnn.nn.combinators`, which it is (the same module object)."""

import sys

import funcnn.nn.combinators

sys.modules[__name__] = funcnn.nn.combinators
