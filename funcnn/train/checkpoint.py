"""Checkpoints with orbax-checkpoint: atomic saves, keep the newest N, restore the latest.

A checkpoint holds one pytree (params, optimizer state, model state, RNG keys, divergence
flags and the metric history, see :mod:`funcnn.train.loop`) and a small JSON ``meta``
dict. Orbax writes each step into a temporary directory and renames it when complete, so a
run killed mid-save (even with SIGKILL) leaves only complete checkpoints behind.

orbax-checkpoint is an optional dependency (the ``experiments`` extra); it is imported
only when a :class:`Checkpointer` is created.
"""

from __future__ import annotations

import os
from typing import Any


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message says which, where and why."""


def _cause(e: BaseException) -> str:
    """The first line of an error (orbax and tensorstore messages run to many lines)."""
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first[:300]}"


class Checkpointer:
    """A thin wrapper over ``orbax.checkpoint.CheckpointManager`` (synchronous saves).

    Args:
      directory: where step directories ``<directory>/<step>/`` live (created if needed).
      max_to_keep: how many of the newest checkpoints to keep (older ones are deleted).
    """

    def __init__(self, directory: str | os.PathLike[str], *, max_to_keep: int = 3) -> None:
        if not isinstance(max_to_keep, int) or isinstance(max_to_keep, bool) or max_to_keep < 1:
            raise ValueError(f"Checkpointer: max_to_keep must be an int >= 1, got {max_to_keep!r}")
        try:
            import orbax.checkpoint as ocp
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "Checkpointer: checkpoints need orbax-checkpoint; install funcnn[experiments]"
            ) from e
        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or ``None`` if there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of the complete checkpoints kept on disk, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, tree: Any, meta: dict[str, Any] | None = None) -> None:
        """Save ``tree`` (a pytree of arrays) and ``meta`` (JSON-able) as ``step``; blocks.

        Raises:
          CheckpointError: the save failed (a full disk, a read-only folder, ...); its
            message is one line: the step, the folder and the cause.
        """
        ocp = self._ocp
        args = ocp.args.Composite(
            tree=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(dict(meta or {}))
        )
        try:
            self._manager.save(int(step), args=args, force=True)
            self._manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - re-raised as one clear line
            raise CheckpointError(f"Checkpointer.save: could not write step {step} to {self.directory}: {_cause(e)}") from e

    def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
        """Restore checkpoint ``step`` into the structure, shapes and dtypes of ``target``."""
        ocp = self._ocp
        args = ocp.args.Composite(tree=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
        out = self._manager.restore(int(step), args=args)
        return out["tree"], dict(out["meta"] or {})

    def restore_newest(self, target: Any, *, warn: Any = None) -> tuple[int, Any, dict[str, Any]] | None:
        """Restore the newest checkpoint that restores, walking back past damaged ones.

        Each skipped checkpoint is reported in one line through ``warn`` (default: stderr).
        Returns ``(step, tree, meta)``, or ``None`` when there is no checkpoint at all.

        Raises:
          CheckpointError: checkpoints exist but none restores.
        """
        import sys

        warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
        steps = self.all_steps()
        errors = []
        for step in reversed(steps):
            try:
                tree, meta = self.restore(step, target)
            except Exception as e:  # noqa: BLE001 - a damaged checkpoint: try the one before
                errors.append(f"step {step}: {_cause(e)}")
                warn(f"resume: skipped checkpoint step {step} in {self.directory}: {_cause(e)}")
                continue
            return step, tree, meta
        if steps:
            raise CheckpointError(f"Checkpointer: no checkpoint in {self.directory} restores ({'; '.join(errors)})")
        return None

    def close(self) -> None:
        """Release the manager (waits for pending work)."""
        try:
            self._manager.close()
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"Checkpointer.close: {self.directory}: {_cause(e)}") from e

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
