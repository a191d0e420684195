"""The old import path of :mod:`funcnn.train.parallel`, which it is (the same module object)."""

import sys

import funcnn.train.parallel

sys.modules[__name__] = funcnn.train.parallel
