"""The old import path of :mod:`funcnn.study.timing`, which it is (the same module object)."""

import sys

import funcnn.study.timing

sys.modules[__name__] = funcnn.study.timing
