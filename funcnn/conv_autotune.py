"""The public path of :mod:`funcnn._ops.conv_autotune`, which it is (the same module object)."""

import sys

import funcnn._ops.conv_autotune

sys.modules[__name__] = funcnn._ops.conv_autotune
