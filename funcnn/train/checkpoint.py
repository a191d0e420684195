"""Checkpoints with orbax-checkpoint: atomic saves, keep the newest N, restore the latest.

A checkpoint holds one pytree (params, optimizer state, model state, RNG keys, divergence
flags and the metric history, see :mod:`funcnn.train.loop`) and a small JSON ``meta``
dict. Orbax writes each step into a temporary directory and renames it when complete, so a
run killed mid-save (even with SIGKILL) leaves only complete checkpoints behind.

Every saved step also gets a manifest (``funcnn_checksums.json`` in its folder: the size and
SHA-256 of every file), checked before it is restored, so a truncated, zeroed or flipped
byte, a deleted metadata file or an empty step folder makes the checkpoint *damaged*.
:meth:`Checkpointer.restore_newest` walks back past damaged checkpoints and moves each one
aside (to ``<directory>.damaged/<step>``, one line each), so the run continues from the
newest good one and later saves of those steps succeed.

orbax-checkpoint is an optional dependency (the ``experiments`` extra); it is imported
only when a :class:`Checkpointer` is created.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

#: The manifest file written into each step folder after it is saved.
MANIFEST = "funcnn_checksums.json"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message says which, where and why."""


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(folder: Path) -> dict[str, list[Any]]:
    """``{relative path: [size, sha256]}`` of every file under ``folder`` but the manifest."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out[p.relative_to(folder).as_posix()] = [p.stat().st_size, _digest(p)]
    return out


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
        folder = Path(self.directory) / str(int(step))
        if folder.exists() and int(step) not in self._manager.all_steps():
            self._quarantine(int(step))  # an incomplete or empty folder left by a crash
        try:
            self._manager.save(int(step), args=args, force=True)
            self._manager.wait_until_finished()
            tmp = folder / (MANIFEST + ".tmp")
            tmp.write_text(json.dumps(_manifest(folder)))
            os.replace(tmp, folder / MANIFEST)
        except Exception as e:  # noqa: BLE001 - re-raised as one clear line
            raise CheckpointError(f"Checkpointer.save: could not write step {step} to {self.directory}: {_cause(e)}") from e

    def verify(self, step: int) -> None:
        """Raise :class:`CheckpointError` unless step ``step`` matches its manifest (every file
        present, same size, same SHA-256). A step saved without a manifest passes."""
        folder = Path(self.directory) / str(int(step))
        path = folder / MANIFEST
        if not folder.is_dir():
            raise CheckpointError(f"checkpoint step {step}: no folder {str(folder)!r}")
        if not path.is_file():
            return
        try:
            want = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"checkpoint step {step}: unreadable manifest ({_cause(e)})") from None
        have = _manifest(folder)
        for rel, (size, digest) in want.items():
            if rel not in have:
                raise CheckpointError(f"checkpoint step {step}: file {rel} is missing")
            if have[rel][0] != size:
                raise CheckpointError(f"checkpoint step {step}: file {rel} has {have[rel][0]} bytes, {size} were saved")
            if have[rel][1] != digest:
                raise CheckpointError(f"checkpoint step {step}: file {rel} does not match its saved checksum")

    def _quarantine(self, step: int) -> Path | None:
        """Move step folder ``step`` out of the manager's sight, to ``<directory>.damaged/``."""
        src = Path(self.directory) / str(step)
        if not src.exists():
            return None
        dest_root = Path(self.directory + ".damaged")
        dest_root.mkdir(parents=True, exist_ok=True)
        dest = dest_root / str(step)
        if dest.exists():
            dest = dest_root / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        shutil.move(str(src), str(dest))
        self._manager.reload()
        return dest

    def _stray_steps(self) -> list[int]:
        """Numeric step folders the manager does not list (incomplete, empty)."""
        known = set(self._manager.all_steps())
        root = Path(self.directory)
        return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) not in known) if root.is_dir() else []

    def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
        """Restore checkpoint ``step`` into the structure, shapes and dtypes of ``target``."""
        ocp = self._ocp
        self.verify(step)
        args = ocp.args.Composite(tree=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
        out = self._manager.restore(int(step), args=args)
        return out["tree"], dict(out["meta"] or {})

    def restore_newest(self, target: Any, *, warn: Any = None) -> tuple[int, Any, dict[str, Any]] | None:
        """Restore the newest checkpoint that restores, walking back past damaged ones.

        Each skipped checkpoint is reported in one line through ``warn`` (default: stderr) and
        moved aside to ``<directory>.damaged/<step>`` once a good one is found (so the run
        continues from there and saves those steps again); so are step folders the manager
        does not list (empty or incomplete). Returns ``(step, tree, meta)``, or ``None`` when
        there is no checkpoint at all.

        Raises:
          CheckpointError: checkpoints exist but none restores (nothing is moved then).
        """
        import sys

        warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
        for stray in self._stray_steps():
            dest = self._quarantine(stray)
            warn(f"resume: skipped incomplete checkpoint step {stray} in {self.directory}; moved it to {dest}")
        steps = self.all_steps()
        errors = []
        for step in reversed(steps):
            try:
                tree, meta = self.restore(step, target)
            except Exception as e:  # noqa: BLE001 - a damaged checkpoint: try the one before
                errors.append(f"step {step}: {_cause(e)}")
                warn(f"resume: skipped checkpoint step {step} in {self.directory}: {_cause(e)}")
                continue
            for bad in (s for s in steps if s > step):
                self._quarantine(bad)
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
