"""The old import path of :mod:`funcnn.study.compilation`, which it is (the same module object)."""

import sys

import funcnn.study.compilation

sys.modules[__name__] = funcnn.study.compilation
