"""The old import path of :mod:`funcnn.study.plots`, which it is (the same module object)."""

import sys

import funcnn.study.plots

sys.modules[__name__] = funcnn.study.plots
