"""Importing a user's module by name or by file: what ``--import MODULE`` does, for the
experiment scripts (:mod:`funcnn.study.cli`) and ``python -m funcnn.gradcheck`` alike."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["import_module_or_file"]


def import_module_or_file(name: str) -> Any:
    """Import a user's module: a path to a ``.py`` file (loaded under its stem; the same file
    twice runs once; another module of that name already imported is an error), or a module
    name, imported with the current directory first on ``sys.path``."""
    if name.endswith(".py") or os.sep in name or "/" in name:
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no such file {str(path)!r}")
        mod_name = path.stem
        if not mod_name.isidentifier():
            raise ValueError(f"the file name {path.name!r} is not a module name (a Python identifier + .py)")
        old = sys.modules.get(mod_name)
        if old is not None:
            if getattr(old, "__file__", None) and Path(old.__file__).resolve() == path:
                return old
            raise ValueError(f"a module named {mod_name!r} is already imported (from "
                             f"{getattr(old, '__file__', None) or 'a built-in'}); rename the file")
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {str(path)!r} as a Python module")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod  # before running it, as `import` does (dataclasses, pickle need it)
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(mod_name, None)
            raise
        return mod
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(name)
