"""The public path of :mod:`funcnn._ops.registry`, which it is (the same module object)."""

import sys

import funcnn._ops.registry

sys.modules[__name__] = funcnn._ops.registry
