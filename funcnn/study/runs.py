"""Run directories and what goes in them: atomic writes, JSON, ``metrics.jsonl``, summaries, tables.

Layout written by :class:`RunDir`::

    results/<experiment>/<run-name>/
      config.json      everything to rerun: the config, defaults, command, library versions
      metrics.jsonl    one JSON record per line (per member and evaluation), appended
      summary.json     per configuration: mean/std over seeds of the final metrics
      summary.md       the same as a markdown table
      *.png            plots (:mod:`funcnn.study.plots`)

Every write is atomic (a temporary file in the same directory, then ``os.replace``), so a
killed run never leaves a half-written file, and a write that fails (disk full, read-only
file system) leaves the file as it was and raises :class:`RunWriteError`: one line naming the
file, the run directory and the cause. An existing, non-empty run directory is never
silently reused: :class:`RunDir` raises ``FileExistsError`` unless ``overwrite=True``
(the old directory is deleted) or ``resume=True`` (it is reused, e.g. to continue from
its checkpoints).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same dir + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:  # gone already, or the folder turned read-only: the first error is the one to see
            pass
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values from numpy/JAX scalars and arrays, dataclasses, tuples and paths.

    Non-finite floats become ``None`` (standard JSON has no NaN).
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return to_jsonable(np.asarray(obj).tolist())
    if callable(obj):
        return getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
    return repr(obj)


def json_dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=False, allow_nan=False)


def library_versions() -> dict[str, str]:
    """Versions of python, platform, jax, jaxlib, optax, numpy, funcnn (and the optional
    orbax-checkpoint, matplotlib, tyro when installed), plus the jax backend."""
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("jax", "jaxlib", "optax", "numpy", "funcnn", "orbax-checkpoint", "matplotlib", "tyro"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        import jax

        out["jax_backend"] = jax.default_backend()
        out["jax_devices"] = str(jax.device_count())
        out["jax_enable_x64"] = str(bool(jax.config.jax_enable_x64))
    except Exception:  # pragma: no cover
        pass
    if os.environ.get("XLA_FLAGS"):
        out["XLA_FLAGS"] = os.environ["XLA_FLAGS"]
    return out


# --------------------------------------------------------------------------- run directory


class RunInUseError(RuntimeError):
    """Another process is writing the run directory (its lock is held); ``pid`` is the
    holder's process id (a string, ``"?"`` when unknown), ``path`` the run directory."""

    pid: str = "?"
    path: Path | None = None


class RunWriteError(OSError):
    """A file of a run directory could not be written (disk full, read-only file system, ...).

    ``str(e)`` is one line, ``cannot write metrics.jsonl in results/exp/r: No space left on
    device (OSError)``; ``errno``/``strerror`` are the cause's, ``cause`` the original
    exception, ``name`` the file and ``run_path`` the run directory. What was written before
    stays as it was (every write is atomic).
    """

    def __init__(self, name: str, run_path: str | os.PathLike[str], cause: OSError) -> None:
        why = cause.strerror or (os.strerror(cause.errno) if cause.errno else "") or str(cause) or "write failed"
        super().__init__(cause.errno, why)
        self.name, self.run_path, self.cause = name, Path(run_path), cause
        self.message = f"cannot write {name} in {run_path}: {why} ({type(cause).__name__})"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        return (type(self), (self.name, str(self.run_path), self.cause))


# Run directories this process holds the lock of: path -> [file object, holders].
_HELD: dict[str, list[Any]] = {}


def _lock_run(path: Path) -> str | None:
    """Take the advisory lock of run directory ``path`` (a ``.<name>.lock`` file beside it,
    ``fcntl.flock``, released by the OS when the process ends, even on SIGKILL). Raises
    :class:`RunInUseError` naming the holder's pid when another process holds it. Returns the
    key to release, or ``None`` where file locks are not available."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return None
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        return key
    lock = path.parent / f".{path.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    f = open(lock, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        err = RunInUseError(
            f"RunDir: run directory {str(path)!r} is in use by another process (pid {holder}); "
            f"wait for it to finish, or choose another run name"
        )
        err.pid, err.path = holder, path
        raise err from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    _HELD[key] = [f, 1]
    return key


def _unlock_run(key: str | None) -> None:
    if key is None or key not in _HELD:
        return
    _HELD[key][1] -= 1
    if _HELD[key][1] == 0:
        f, _ = _HELD.pop(key)
        f.close()  # closing the file releases the lock


class RunDir:
    """The directory of one run: ``<out_dir>/<experiment>/<run_name>/``.

    Args:
      out_dir: the results root (e.g. ``"results"``).
      experiment: the experiment's name (a directory).
      run_name: the run's name; default: a timestamp ``YYYYmmdd-HHMMSS``.
      overwrite: delete an existing non-empty run directory first.
      resume: reuse an existing run directory (keeps metrics.jsonl and checkpoints).

    While it is open, the run directory is locked against other processes (a second writer
    gets :class:`RunInUseError` naming the holder's pid, before anything is written or
    deleted); the lock goes with :meth:`close` or the process.

    A write that fails (:meth:`write_json`, :meth:`write_text`, :meth:`append_metrics`,
    :meth:`save_figure`, ...) raises :class:`RunWriteError` and leaves the file as it was.

    Raises:
      FileExistsError: the directory exists, is not empty, and neither flag is set.
      RunInUseError: another process holds the run directory.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        experiment: str,
        run_name: str | None = None,
        *,
        overwrite: bool = False,
        resume: bool = False,
    ) -> None:
        for nm, v in (("experiment", experiment), ("run_name", run_name)):
            if v is not None and (not isinstance(v, str) or not v or "/" in v or v in (".", "..")):
                raise ValueError(f"RunDir: {nm} must be a non-empty name without '/', got {v!r}")
        if overwrite and resume:
            raise ValueError("RunDir: overwrite=True and resume=True contradict each other")
        run_name = run_name or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.path = Path(out_dir) / experiment / run_name
        self.experiment, self.run_name = experiment, run_name
        # metrics.jsonl is rewritten whole on every append: grids trained concurrently
        # (run_grids on a multi-core CPU) take turns.
        self._metrics_lock = threading.RLock()
        self._lock = _lock_run(self.path)
        try:
            self._open(overwrite, resume)
        except BaseException:
            _unlock_run(self._lock)
            self._lock = None
            raise

    def _open(self, overwrite: bool, resume: bool) -> None:
        existed = self.path.exists() and any(self.path.iterdir())
        #: True when this RunDir made the run (the directory was absent or empty, or replaced with
        #: overwrite): :meth:`discard_if_unused` may then remove it again.
        self.created = not resume and (overwrite or not existed)
        if existed:
            if overwrite:
                shutil.rmtree(self.path)
            elif not resume:
                raise FileExistsError(
                    f"RunDir: run directory {str(self.path)!r} already exists and is not empty; "
                    f"pass overwrite=True (--overwrite) to replace it, resume=True (--resume) to "
                    f"continue it, or choose another run_name"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        self._metrics: list[str] | None = None
        self.started = time.perf_counter()
        self.compile_stats: Any = None  # a funcnn.study.compilation.CompileStats (open_run sets it)
        self.compile_cache: str | None = None
        self.stop_signal: int | None = None  # SIGTERM's number once one stopped the run

    @property
    def stop_reason(self) -> str:
        """How a stopped run was stopped, for its summary: ``"stopped by SIGTERM"`` (a signal
        recorded in :attr:`stop_signal`) or ``"interrupted (Ctrl-C)"``."""
        if self.stop_signal is None:
            return "interrupted (Ctrl-C)"
        import signal

        try:
            name = signal.Signals(self.stop_signal).name
        except ValueError:
            name = f"signal {self.stop_signal}"
        return f"stopped by {name}"

    def discard_if_unused(self) -> bool:
        """Remove the run directory if this RunDir created it and nothing but ``config.json``
        is in it (a run that failed before training wrote anything), so that its name is free
        again; a resumed run, or one holding anything else, is never touched. Closes the lock.
        Returns whether the directory was removed."""
        removed = False
        try:
            if getattr(self, "created", False) and self.path.is_dir():
                names = {p.name for p in self.path.iterdir()}
                if names <= {"config.json"}:
                    if names:
                        (self.path / "config.json").unlink()
                    self.path.rmdir()
                    removed = True
                    try:
                        (self.path.parent / f".{self.path.name}.lock").unlink()
                    except OSError:
                        pass
        except OSError:  # a folder we cannot clean up stays; the run's own error is what matters
            pass
        self.close()
        return removed

    def _writing(self, name: str) -> Any:
        """Context manager: an OSError while writing ``name`` becomes one :class:`RunWriteError`."""
        return _WriteGuard(name, self.path)

    def close(self) -> None:
        """Release the run directory's lock (also released when the process ends)."""
        _unlock_run(self._lock)
        self._lock = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def exit_code(self, interrupted: bool) -> int:
        """The script's exit status: 0, 130 after Ctrl-C, 143 (128 + 15) after SIGTERM."""
        if not interrupted and self.stop_signal is None:
            return 0
        return 128 + self.stop_signal if self.stop_signal is not None else 130

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """The path of ``name`` inside the run directory."""
        return self.path / name

    @property
    def checkpoint_dir(self) -> str:
        """``<run>/checkpoints``: pass as ``checkpoint_dir`` to fit/run_grid."""
        return str(self.path / "checkpoints")

    # -- json / text
    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as JSON (numpy values converted, NaN -> null) atomically."""
        p = self.file(name)
        text = json_dumps(obj) + "\n"
        with self._writing(name):
            atomic_write_text(p, text)
        return p

    def read_json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text())

    def write_text(self, name: str, text: str) -> Path:
        """Write ``text`` atomically; ``summary.md`` gets the run's time line appended
        (:meth:`run_facts`)."""
        if name == "summary.md":
            text = text.rstrip("\n") + "\n\n" + self.run_facts() + "\n"
        p = self.file(name)
        with self._writing(name):
            atomic_write_text(p, text)
        return p

    def run_facts(self) -> str:
        """``Run: 41.2 s wall; XLA compiled 57 programs, 9.8 s compiling and loading (persistent
        compilation cache: on, 3 more programs loaded from it).``"""
        st = self.run_stats()
        line = f"Run: {st['wall_seconds']:.1f} s wall"
        if "compilations" in st:
            hits = st["compile_cache_hits"]
            cache = "off" if st["compile_cache"] is None else f"on, {hits} more programs loaded from it"
            line += (f"; XLA compiled {st['compilations']} programs, {st['compile_seconds']:.1f} s compiling and "
                     f"loading (persistent compilation cache: {cache})")
        return line + "."

    def run_stats(self) -> dict[str, Any]:
        """Wall seconds and compile statistics so far, for summary.json."""
        out: dict[str, Any] = {"wall_seconds": time.perf_counter() - self.started}
        if self.compile_stats is not None:
            st = self.compile_stats.read()
            out.update(compilations=st.compilations, compile_seconds=st.seconds, compile_cache_hits=st.cache_hits,
                       compile_cache=self.compile_cache)
        return out

    def write_config(self, config: Any, *, defaults: Any = None, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``config.json``: ``config`` (dict or dataclass), the ``defaults`` used
        (e.g. the config class's defaults), the command line, the time, library versions."""
        record = {
            "experiment": self.experiment,
            "run_name": self.run_name,
            "config": config,
            "defaults": defaults if defaults is not None else _defaults_of(config),
            "command": [sys.executable, *sys.argv],
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "versions": library_versions(),
        }
        if extra:
            record.update(extra)
        return self.write_json("config.json", record)

    # -- metrics.jsonl
    def _load_metrics(self) -> list[str]:
        with self._metrics_lock:
            if self._metrics is None:
                p = self.file("metrics.jsonl")
                lines = p.read_text().splitlines() if p.exists() else []
                self._metrics = [ln for ln in lines if ln.strip()]
            return self._metrics

    def append_metrics(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append records (one JSON object per line) to ``metrics.jsonl`` atomically.

        Raises:
          RunWriteError: the file could not be written; it keeps every record written before.
        """
        new = [json.dumps(to_jsonable(r), allow_nan=False) for r in records]
        with self._metrics_lock:
            lines = self._load_metrics()
            n = len(lines)
            lines.extend(new)
            try:
                with self._writing("metrics.jsonl"):
                    atomic_write_text(self.file("metrics.jsonl"), "".join(ln + "\n" for ln in lines))
            except BaseException:
                del lines[n:]  # what is held stays what is on disk
                raise

    def read_metrics(self) -> list[dict[str, Any]]:
        """All records of ``metrics.jsonl``."""
        with self._metrics_lock:
            return [json.loads(ln) for ln in self._load_metrics()]

    def truncate_metrics(self, drop: Callable[[dict[str, Any]], bool]) -> int:
        """Remove the records for which ``drop(record)`` is true (used on resume to forget
        what was logged after the restored checkpoint); returns how many were removed."""
        with self._metrics_lock:
            lines = self._load_metrics()
            keep = [ln for ln in lines if not drop(json.loads(ln))]
            removed = len(lines) - len(keep)
            if removed:
                with self._writing("metrics.jsonl"):
                    atomic_write_text(self.file("metrics.jsonl"), "".join(ln + "\n" for ln in keep))
                self._metrics = keep
            return removed

    # -- summaries
    def write_summary(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        columns: Sequence[str] | None = None,
        title: str | None = None,
        notes: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[Path, Path]:
        """Write ``summary.json`` (``{"rows": rows, ...extra}``, every key of every row) and
        ``summary.md``: the title, a markdown table of the rows (``columns`` in that order, else
        every key, see :func:`markdown_table`), then ``notes`` (markdown, or a
        :class:`funcnn.study.report.Report`)."""
        record = {"experiment": self.experiment, "run_name": self.run_name, "rows": list(rows)}
        if extra:
            record.update(extra)
        record.setdefault("run", self.run_stats())
        pj = self.write_json("summary.json", record)
        md = f"# {title or self.experiment + ' / ' + self.run_name}\n\n"
        md += markdown_table(rows, columns) + "\n"
        notes = str(notes) if notes is not None else ""
        if notes.strip():
            md += "\n" + notes.rstrip() + "\n"
        pm = self.write_text("summary.md", md)
        return pj, pm

    # -- arrays and figures
    def save_arrays(self, name: str, **arrays: Any) -> Path:
        """Save arrays as ``<name>.npz`` atomically."""
        import io

        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        p = self.file(name if name.endswith(".npz") else name + ".npz")
        with self._writing(p.name):
            atomic_write_bytes(p, buf.getvalue())
        return p

    def save_figure(self, fig: Any, name: str, *, dpi: int = 120, close: bool = True) -> Path:
        """Save a matplotlib figure as ``<name>.png`` atomically (and close it)."""
        p = self.file(name if name.endswith(".png") else name + ".png")
        with self._writing(p.name):
            return save_figure(fig, p, dpi=dpi, close=close)


class _WriteGuard:
    """``with _WriteGuard(name, run_path):`` turns an OSError into a :class:`RunWriteError`."""

    def __init__(self, name: str, run_path: Path) -> None:
        self.name, self.run_path = name, run_path

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: Any, tb: Any) -> bool:
        if exc is not None and isinstance(exc, OSError) and not isinstance(exc, RunWriteError):
            err = RunWriteError(self.name, self.run_path, exc)
            err.__suppress_context__ = True
            raise err from None
        return False


def _defaults_of(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        out = {}
        for f in dataclasses.fields(config):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                out[f.name] = f.default_factory()  # type: ignore[misc]
        return out
    return None


# --------------------------------------------------------------------------- summaries


def summarize(
    records: Sequence[Mapping[str, Any]],
    *,
    over: str = "seed",
    metrics: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Aggregate member results over ``over`` (seeds): one row per configuration.

    Args:
      records: ``[{"config": {...}, "metrics": {name: float}, "diverged": str | None}]``
        (``GridResult.records()``, or built by hand for ``fit`` runs); a record may carry
        ``"step"``, the step its member reached (an interrupted run stops short).
      over: the config key to aggregate over.
      metrics: which metrics (default: every scalar metric seen).

    Returns:
      rows ``{**config_without_over, "n": seeds, "n_diverged": k, "<m>_mean", "<m>_std"}``
      in first-appearance order; ``"step"`` after ``"n_diverged"`` (the least step the row's
      members reached) when the records carry steps. Mean and std (sample std, ``ddof=1``; 0 for one seed) are
      over the members that did not diverge and have a finite value; NaN when none.
    """
    groups: dict[str, tuple[dict[str, Any], list[Mapping[str, Any]]]] = {}
    for r in records:
        if "config" not in r:
            raise ValueError(f"summarize: each record needs a 'config' dict, got keys {sorted(r)}")
        cfg = {k: v for k, v in r["config"].items() if k != over}
        groups.setdefault(json.dumps(to_jsonable(cfg), sort_keys=True), (cfg, []))[1].append(r)
    if metrics is None:
        seen: dict[str, None] = {}
        for r in records:
            for k, v in (r.get("metrics") or {}).items():
                if np.ndim(v) == 0:
                    seen[k] = None
        metrics = list(seen)
    rows = []
    for cfg, rs in groups.values():
        row: dict[str, Any] = dict(cfg)
        row["n"] = len(rs)
        row["n_diverged"] = sum(1 for r in rs if r.get("diverged"))
        steps = [int(r["step"]) for r in rs if r.get("step") is not None]
        if steps:
            row["step"] = min(steps)
        for m in metrics:
            vals = [
                float(r["metrics"][m])
                for r in rs
                if not r.get("diverged") and r.get("metrics", {}).get(m) is not None
                and np.isfinite(float(r["metrics"][m]))
            ]
            a = np.asarray(vals, np.float64)
            row[f"{m}_mean"] = float(a.mean()) if a.size else float("nan")
            row[f"{m}_std"] = float(a.std(ddof=1)) if a.size > 1 else (0.0 if a.size else float("nan"))
        rows.append(row)
    return rows


def first_reach(steps: Any, values: Any, threshold: float, *, below: bool = False) -> int | None:
    """The first of ``steps`` ``(E,)`` at which ``values`` ``(E,)`` reaches ``threshold``
    (``>=``; ``<=`` with ``below``), e.g. the evaluation step where test accuracy first hits 90%;
    ``None`` if it never does. NaNs (a diverged member) never reach it."""
    values = np.asarray(values, np.float64)
    ok = values <= threshold if below else values >= threshold
    idx = np.flatnonzero(ok & np.isfinite(values))
    return int(np.asarray(steps)[idx[0]]) if idx.size else None


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            return "nan" if math.isnan(float(v)) else str(float(v))
        return f"{float(v):.4g}"
    if v is None:
        return ""
    return str(v)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A markdown table; ``<m>_mean``/``<m>_std`` column pairs are merged into ``m`` shown
    as ``mean ± std``."""
    if not rows:
        return "(no rows)"
    if columns is None:
        cols: list[str] = []
        for r in rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        columns = cols
    merged: list[tuple[str, str | None]] = []
    for c in columns:
        if c.endswith("_std") and c[:-4] + "_mean" in columns:
            continue
        if c.endswith("_mean") and c[:-5] + "_std" in columns:
            merged.append((c[:-5], c[:-5]))
        else:
            merged.append((c, None))
    head = "| " + " | ".join(h for h, _ in merged) + " |"
    sep = "| " + " | ".join("---" for _ in merged) + " |"
    lines = [head, sep]
    for r in rows:
        cells = []
        for h, base in merged:
            if base is not None:
                mu, sd = r.get(base + "_mean"), r.get(base + "_std")
                cells.append(f"{_fmt(mu)} ± {_fmt(sd)}" if mu is not None else "")
            else:
                cells.append(_fmt(r.get(h)))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 120, close: bool = True) -> Path:
    """Save a matplotlib figure as PNG atomically (and close it)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    if close:
        from funcnn.study.plots import pyplot

        pyplot().close(fig)
    return Path(path)
