"""Compilation: JAX's persistent compilation cache for experiment runs, and compile statistics.

- :func:`enable_compilation_cache` points JAX's persistent cache at a folder under the user's
  cache directory (``$FUNCNN_COMPILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/funcnn/jax-compile``,
  else ``~/.cache/funcnn/jax-compile``), so a rerun of the same experiment loads its programs
  instead of compiling them. ``FUNCNN_NO_COMPILE_CACHE=1`` (or ``enabled=False``, the
  scripts' ``--no-compile-cache``) leaves JAX's settings alone.
- :class:`CompileStats` counts the XLA compilations of this process (and their seconds) from
  JAX's own monitoring events, and the programs loaded from the persistent cache instead.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import jax

__all__ = ["CompileStats", "compile_cache_dir", "enable_compilation_cache"]

_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT = "/jax/compilation_cache/cache_hits"

_lock = threading.Lock()
_totals = {"compilations": 0, "seconds": 0.0, "cache_hits": 0}
_listening = False


def _on_duration(event: str, duration: float, **_: object) -> None:
    if event == _BACKEND_COMPILE:
        with _lock:
            _totals["compilations"] += 1
            _totals["seconds"] += float(duration)


def _on_event(event: str, **_: object) -> None:
    if event == _CACHE_HIT:
        with _lock:
            _totals["cache_hits"] += 1


def _listen() -> None:
    global _listening
    with _lock:
        if _listening:
            return
        _listening = True
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    jax.monitoring.register_event_listener(_on_event)


@dataclasses.dataclass
class CompileStats:
    """XLA compilations since :meth:`start` (process-wide, every thread).

    Attributes:
      compilations: programs XLA compiled (eager ops included), not counting those loaded
        from the persistent compilation cache.
      seconds: time spent getting executables: compiling, plus loading cached ones (threads
        can overlap).
      cache_hits: programs loaded from the persistent compilation cache instead of compiled.
    """

    compilations: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    _base: dict | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def start(cls) -> CompileStats:
        _listen()
        with _lock:
            return cls(_base=dict(_totals))

    def read(self) -> CompileStats:
        """The counts so far (a new object; ``self`` keeps its starting point)."""
        with _lock:
            now = dict(_totals)
        base = self._base or {k: 0 for k in now}
        hits = now["cache_hits"] - base["cache_hits"]
        # JAX reports a backend-compile duration for cache loads too: count those as hits only.
        return CompileStats(
            compilations=now["compilations"] - base["compilations"] - hits,
            seconds=now["seconds"] - base["seconds"],
            cache_hits=hits,
        )


def compile_cache_dir() -> Path:
    """Where experiment runs keep JAX's persistent compilation cache."""
    if os.environ.get("FUNCNN_COMPILE_CACHE_DIR"):
        return Path(os.environ["FUNCNN_COMPILE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "funcnn" / "jax-compile"


def enable_compilation_cache(enabled: bool = True) -> str | None:
    """Turn on JAX's persistent compilation cache in :func:`compile_cache_dir`.

    Returns the folder, or ``None`` when off (``enabled=False``, ``FUNCNN_NO_COMPILE_CACHE=1``,
    or the folder cannot be created). Every program is cached, however fast it compiled:
    a rerun then compiles almost nothing.
    """
    if not enabled or os.environ.get("FUNCNN_NO_COMPILE_CACHE", "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    path = compile_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return str(path)
