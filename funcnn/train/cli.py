"""The old import path of :mod:`funcnn.study.cli`, which it is (the same module object)."""

import sys

import funcnn.study.cli

sys.modules[__name__] = funcnn.study.cli
