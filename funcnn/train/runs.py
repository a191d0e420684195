"""The old import path of :mod:`funcnn.study.runs`, which it is (the same module object)."""

import sys

import funcnn.study.runs

sys.modules[__name__] = funcnn.study.runs
