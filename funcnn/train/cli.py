"""Experiment scripts' command line: a config dataclass parsed by tyro, and the run it opens.

Subclass :class:`ExperimentConfig` (a dataclass) and call :func:`parse_config` (tyro) and
:func:`open_run`::

    @dataclasses.dataclass
    class Config(ExperimentConfig):
        epochs: int = 10

    cfg = parse_config(Config, description=__doc__)
    run = open_run(cfg, "activation_ablation")

Parsing has no side effect. :func:`open_run` does the starting: it joins a multi-process run
when one is asked for (:func:`funcnn.parallel.initialize_distributed`), turns on the
persistent compilation cache, creates the run directory (:class:`funcnn.train.RunDir`) and
makes SIGTERM stop the run like Ctrl-C.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from funcnn.train.runs import RunDir


@dataclasses.dataclass
class ExperimentConfig:
    """Fields every experiment script shares; subclass it and add your own.

    Attributes:
      out_dir: results root; the run goes to ``<out_dir>/<experiment>/<run_name>``.
      run_name: the run's directory name (default: a timestamp; ``smoke`` in smoke mode).
      seeds: the seeds every configuration is run with.
      smoke: a seconds-long run (tiny grid and step counts), used by the tests.
      resume: continue an existing run from its checkpoints.
      overwrite: replace an existing run directory.
      progress: show progress bars.
      devices: use only the first N devices (default: every device JAX sees).
      mesh: a device mesh spec such as ``grid=4,data=2`` (``grid``: ablation members split
        over devices; ``data``: each batch split over devices). Default: every visible device
        on the ``grid`` axis; a single device runs the plain engine.
      distributed: join a multi-process run even when no environment variable asks for one
        (see :func:`funcnn.parallel.initialize_distributed`; ``JAX_COORDINATOR_ADDRESS``,
        ``JAX_NUM_PROCESSES`` > 1, ``SLURM_NTASKS`` > 1 or ``mpirun`` start one without it).

    A script that keeps no checkpoints (a stopped run is rerun) declares
    ``class Config(ExperimentConfig, resumable=False)``: its command line has no ``--resume``.
    """

    def __init_subclass__(cls, *, resumable: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not resumable:
            import tyro  # only scripts parse command lines

            cls.__annotations__ = {**cls.__dict__.get("__annotations__", {}), "resume": tyro.conf.Suppress[bool]}
            cls.resume = False

    out_dir: str = "results"
    run_name: str | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    smoke: bool = False
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    devices: int | None = None
    mesh: str | None = None
    distributed: bool = False
    compile_cache: bool = True
    """Keep compiled programs in JAX's persistent compilation cache (a folder under the user's
    cache directory; FUNCNN_NO_COMPILE_CACHE=1 also turns it off), so a rerun compiles almost
    nothing. config.json records the folder used (null: off)."""

    def device_mesh(self) -> Any:
        """The :class:`jax.sharding.Mesh` the flags ask for, or ``None`` for one device.

        Pass it as ``mesh=`` to :func:`funcnn.train.run_grid` / :func:`funcnn.train.fit`.
        """
        from funcnn.parallel import mesh_from_flags

        return mesh_from_flags(self.devices, self.mesh)


def _check_resume(cfg: Any, experiment: str, name: str | None, resumable: bool) -> None:
    """``--resume`` must name an existing run that has checkpoints, in a script that keeps them."""
    if not resumable:
        raise SystemExit(
            f"{experiment}: --resume is not available here: this script keeps no checkpoints "
            f"(it reruns in minutes); start a new run (or --overwrite the old one)"
        )
    if name is None:
        raise SystemExit(f"{experiment}: --resume needs --run-name, the name of the run to continue")
    path = Path(cfg.out_dir) / experiment / name
    if not path.is_dir():
        raise SystemExit(f"{experiment}: --resume: there is no run {str(path)!r} to continue")
    ckpt = path / "checkpoints"
    if not ckpt.is_dir() or not any(ckpt.iterdir()):
        raise SystemExit(
            f"{experiment}: --resume: run {str(path)!r} has no checkpoints (it ran without --checkpoint, "
            f"or stopped before the first one); start it again with --overwrite"
        )


def _stop_on_sigterm(run: RunDir) -> None:
    """SIGTERM (``timeout``, SLURM, Kubernetes) stops the run like Ctrl-C: a KeyboardInterrupt
    that the training loop turns into a checkpoint at the current step and an interrupted
    summary; :meth:`RunDir.exit_code` then gives 143. Only from the main thread."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        run.stop_signal = signum
        raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")

    signal.signal(signal.SIGTERM, on_sigterm)


def parse_config(cls: type, args: Sequence[str] | None = None, *, description: str | None = None) -> Any:
    """Parse the command line into the dataclass ``cls`` with tyro (``--help`` included)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"parse_config: cls must be a dataclass type, got {cls!r}")
    import tyro

    return tyro.cli(cls, args=args, description=description)


def open_run(
    cfg: ExperimentConfig, experiment: str, *, extra: Mapping[str, Any] | None = None, resumable: bool = False
) -> RunDir:
    """Create (or, with ``cfg.resume``, reopen) the run directory and write ``config.json``.

    First, before any computation creates a JAX backend, joins a multi-process run if one is
    asked for (``cfg.distributed`` or the environment: :func:`funcnn.parallel.initialize_distributed`);
    a single-process run initializes nothing.
    """
    from funcnn.parallel import initialize_distributed

    initialize_distributed(multiprocess=True if getattr(cfg, "distributed", False) else None)
    from funcnn.train.compilation import CompileStats, enable_compilation_cache

    cache = enable_compilation_cache(getattr(cfg, "compile_cache", True))
    name = cfg.run_name or ("smoke" if cfg.smoke else None)
    if cfg.resume:
        _check_resume(cfg, experiment, name, resumable)
    try:
        run = RunDir(cfg.out_dir, experiment, name, overwrite=cfg.overwrite, resume=cfg.resume)
    except FileExistsError:
        raise
    except OSError as e:
        where = Path(cfg.out_dir) / experiment / (name or "<timestamp>")
        raise SystemExit(
            f"{experiment}: cannot create the run directory {str(where)!r} under --out-dir {cfg.out_dir!r}: "
            f"{e.strerror or e} ({type(e).__name__}); choose a writable folder with --out-dir"
        ) from None
    _stop_on_sigterm(run)
    run.compile_stats = CompileStats.start()
    run.compile_cache = cache
    run.write_config(cfg, extra={"compile_cache": cache, **(extra or {})})
    return run
