"""Experiment scripts' command line: a config dataclass parsed by tyro, and the run it opens.

Subclass :class:`ExperimentConfig` (a dataclass) and call :func:`parse_config` (tyro) and
:func:`open_run`::

    @dataclasses.dataclass
    class Config(ExperimentConfig):
        epochs: int = 10

    cfg = parse_config(Config, description=__doc__)
    run = open_run(cfg, "activation_ablation")

Parsing starts nothing: no backend, no cluster, no run directory. It does two things past
tyro's: it imports the modules a script declared with ``class Config(ExperimentConfig,
imports=True)`` asks for (``--import MODULE``, repeatable: the user's own activations, made
with :func:`funcnn.define_activation`, then become valid activation names), and it records
which fields the command line set (:func:`explicit_fields`), so that :func:`apply_smoke`
shrinks only the others::

    SMOKE = dict(steps=10, seeds=lambda cfg: cfg.seeds[:1])   # values, or functions of cfg
    cfg = apply_smoke(parse_config(Config, description=__doc__), SMOKE)

:func:`open_run` does the starting: it joins a multi-process run when one is asked for
(:func:`funcnn.parallel.initialize_distributed`), turns on the persistent compilation cache,
creates the run directory (:class:`funcnn.train.RunDir`), makes SIGTERM stop the run like
Ctrl-C and writes ``config.json`` from the config it is given (the final one, smoke values
included) with the fields the command line set and the modules it imported.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from funcnn.train.runs import RunDir
from funcnn.train.step import _OPTIMIZERS

#: The optimizer names of :func:`funcnn.train.make_optimizer`, as a type: a config field
#: ``optimizer: OptimizerName = "sgd"`` makes tyro refuse any other value (exit code 2).
OptimizerName = Literal[_OPTIMIZERS]  # type: ignore[valid-type]

_IMPORT_HELP = (
    "import MODULE before the run (repeatable: --import a --import b): a module name importable "
    "from the current directory, or a path to a .py file. Activations it registers with "
    "funcnn.define_activation become valid activation names."
)


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
    A script that takes activation names declares ``imports=True``: its config gets the field
    ``imports`` (``--import MODULE``, repeatable), the modules :func:`parse_config` imports
    right after parsing (see :func:`import_user_modules`).
    """

    def __init_subclass__(cls, *, resumable: bool = True, imports: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not resumable or imports:
            import tyro  # only scripts parse command lines

            ann = dict(cls.__dict__.get("__annotations__", {}))
            if not resumable:
                ann["resume"] = tyro.conf.Suppress[bool]
                cls.resume = False
            if imports:
                ann["imports"] = typing.Annotated[
                    tuple[str, ...], tyro.conf.arg(name="import", metavar="MODULE", help=_IMPORT_HELP),
                    tyro.conf.UseAppendAction,
                ]
                cls.imports = ()
            cls.__annotations__ = ann

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
    """Parse the command line into the dataclass ``cls`` with tyro (``--help`` included).

    Then, for a config with an ``imports`` field (``imports=True``), imports its modules
    (:func:`import_user_modules`), and records the fields the command line set: read them
    back with :func:`explicit_fields` (:func:`apply_smoke` leaves them alone).

    Args:
      cls: the config dataclass (a subclass of :class:`ExperimentConfig`).
      args: the command line without the program name (default: ``sys.argv[1:]``).
      description: the ``--help`` text (the script's docstring).
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"parse_config: cls must be a dataclass type, got {cls!r}")
    import tyro

    args = list(sys.argv[1:] if args is None else args)
    cfg = tyro.cli(cls, args=args, description=description)
    import_user_modules(getattr(cfg, "imports", ()))
    return _with_explicit(cfg, _fields_on_command_line(cls, args))


#: The attribute of a parsed config that holds the names of the fields its command line set.
_EXPLICIT = "_fields_set_on_command_line"


def _with_explicit(cfg: Any, names: frozenset[str]) -> Any:
    object.__setattr__(cfg, _EXPLICIT, frozenset(names))  # not a field: not in config.json's "config"
    return cfg


def explicit_fields(cfg: Any) -> frozenset[str]:
    """The names of the fields of ``cfg`` that its command line set (empty when ``cfg`` was
    not made by :func:`parse_config` or :func:`apply_smoke`)."""
    return getattr(cfg, _EXPLICIT, frozenset())


def _cli_names(cls: type) -> dict[str, str]:
    """``{flag name without '--': field name}`` of every field: tyro's hyphenated name (and the
    underscored one, which tyro accepts too), ``no-<name>`` for a bool, and a name given with
    ``tyro.conf.arg(name=...)`` (``--import`` for ``imports``)."""
    import tyro

    arg_config = type(tyro.conf.arg(name="x"))
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # an annotation tyro resolved but typing cannot: fall back to field names
        hints = {}
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        names = [f.name]
        for meta in getattr(hints.get(f.name), "__metadata__", ()):
            if isinstance(meta, arg_config) and getattr(meta, "name", None):
                names = [meta.name]
        for n in names:
            for flag in {n.replace("_", "-"), n}:
                out[flag] = f.name
                out[f"no-{flag}"] = f.name
    return out


def _fields_on_command_line(cls: type, args: Sequence[str]) -> frozenset[str]:
    """The fields named by the ``--flag``, ``--flag=value`` and ``--no-flag`` tokens of ``args``
    (tokens after a bare ``--`` are values, not flags)."""
    names = _cli_names(cls)
    out = set()
    for tok in args:
        if tok == "--":
            break
        if tok.startswith("--"):
            flag = tok[2:].split("=", 1)[0]
            if flag in names:
                out.add(names[flag])
    return frozenset(out)


def apply_smoke(cfg: Any, values: Mapping[str, Any]) -> Any:
    """The ``--smoke`` version of ``cfg``: ``values`` for every field the command line did not set.

    ``cfg`` unchanged when ``cfg.smoke`` is false. A value may be a function of the config as
    parsed (``seeds=lambda cfg: cfg.seeds[:1]``). Fields set on the command line
    (:func:`explicit_fields`) keep their values: ``--smoke --seeds 5`` runs seed 5.

    Raises:
      TypeError: ``values`` names a field ``cfg`` does not have.
    """
    if not getattr(cfg, "smoke", False):
        return cfg
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise TypeError(f"apply_smoke: {type(cfg).__name__} has no field {unknown[0]!r}")
    explicit = explicit_fields(cfg)
    return replace_config(cfg, **{k: (v(cfg) if callable(v) else v) for k, v in values.items() if k not in explicit})


def replace_config(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace(cfg, **changes)`` that keeps :func:`explicit_fields` (a script's
    default that depends on other fields, e.g. ``compare_activation`` falling back to the first
    of ``activations``, is set with it)."""
    return _with_explicit(dataclasses.replace(cfg, **changes), explicit_fields(cfg))


def check_hidden_activations(names: Sequence[str], *, experiment: str, flag: str = "--activations") -> None:
    """Exit (``SystemExit``, before any run directory exists) unless every name is a registered
    hidden-layer activation: an elementwise one of :mod:`funcnn.registry`, the built-ins and
    whatever ``--import`` registered. Read when called, so call it after :func:`parse_config`.
    """
    from funcnn import registry

    hidden = registry.activation_names(hidden=True)
    for name in names:
        if name not in hidden:
            why = " (an output nonlinearity)" if registry.is_registered(name) else ""
            raise SystemExit(
                f"{experiment}: {flag}: activation {name!r}{why} is not a hidden-layer activation; choose from "
                f"{', '.join(hidden)} (or register your own with funcnn.define_activation in a module and add "
                f"--import MODULE)"
            )


def import_user_modules(names: Sequence[str], *, flag: str = "--import") -> list[Any]:
    """Import the modules ``names`` (what ``--import`` gave), in order; return them.

    A name ending in ``.py`` (or containing a path separator) is a file, loaded under its stem
    (``my_acts.py`` -> module ``my_acts``); any other is a module name, imported with the
    current directory first on ``sys.path`` (``--import my_acts`` finds ``./my_acts.py``).
    Importing a module twice runs it once.

    Raises:
      SystemExit: (exit code 2) a module could not be imported; one line on stderr names the
        flag, the module and the exception.
    """
    mods = []
    for name in names:
        try:
            mods.append(_import_one(name))
        except Exception as e:  # noqa: BLE001 -- whatever the user's module raised, reported in one line
            prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "funcnn"
            msg = " ".join(str(e).split()) or "(no message)"
            print(f"{prog}: error: {flag} {name}: cannot import it: {type(e).__name__}: {msg}", file=sys.stderr)
            raise SystemExit(2) from None
    return mods


def _import_one(name: str) -> Any:
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


def open_run(
    cfg: ExperimentConfig, experiment: str, *, extra: Mapping[str, Any] | None = None, resumable: bool = False
) -> RunDir:
    """Create (or, with ``cfg.resume``, reopen) the run directory and write ``config.json``.

    ``config.json`` records ``cfg`` as given (pass the final config: after
    :func:`apply_smoke`), its ``imports`` among them, and the fields its command line set
    (``"set_on_command_line"``).

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
    record = {"compile_cache": cache, "set_on_command_line": sorted(explicit_fields(cfg))}
    run.write_config(cfg, extra={**record, **(extra or {})})
    return run
