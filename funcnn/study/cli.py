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

Before anything starts, a script validates its whole configuration with :func:`validate`
(the fields every script shares, then its own ``check_config``, built from :func:`require`,
:func:`check_int`, :func:`check_number`, :func:`check_values`, :func:`check_choice` and
:func:`check_hidden_activations`). A setting that cannot be right is one line on stderr,
``<experiment>: --lr must be a finite number > 0, got -1.0``, exit status 2, no traceback, no
run directory. Its ``main`` is wrapped in :func:`experiment_main`, which turns the errors
that come later into one line too (a run name in use, a file of the run that cannot be
written: exit status 1, every record written before kept) and removes a run directory that
the failed start left with nothing but ``config.json`` in it::

    @experiment_main("my_study")
    def main(argv=None) -> int:
        cfg = apply_smoke(parse_config(Config, argv, description=__doc__), SMOKE)
        validate(cfg, "my_study", check_config)
        run = open_run(cfg, "my_study")
        ...

:func:`open_run` does the starting: it joins a multi-process run when one is asked for
(:func:`funcnn.train.parallel.initialize_distributed`), turns on the persistent compilation cache,
creates the run directory (:class:`funcnn.train.RunDir`), makes SIGTERM stop the run like
Ctrl-C and writes ``config.json`` from the config it is given (the final one, smoke values
included) with the fields the command line set and the modules it imported.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import os
import sys
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from funcnn._ops.imports import import_module_or_file
from funcnn.study.runs import RunDir, RunInUseError, RunWriteError
from funcnn.train.step import _OPTIMIZERS

#: The optimizer names of :func:`funcnn.train.make_optimizer`, as a type: a config field
#: ``optimizer: OptimizerName = "sgd"`` makes tyro refuse any other value (exit code 2).
OptimizerName = Literal[_OPTIMIZERS]  # type: ignore[valid-type]



# --------------------------------------------------------------------------- one-line errors


class ScriptError(Exception):
    """What an experiment script reports as one line, ``<experiment>: <message>``, with exit
    status ``code`` (2: a setting that cannot be right; 1: the run could not go on), no
    traceback (:func:`experiment_main` prints it)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class RunExistsError(ScriptError, FileExistsError):
    """:func:`open_run`: the run directory exists and is not empty (and neither ``--overwrite``
    nor ``--resume`` was given). A ``FileExistsError`` for callers that catch one."""


class ConfigError(ValueError):
    """A setting that cannot be right: the message names the flag, what was expected and what
    arrived (``--lr must be a finite number > 0, got -1.0``). Raised by the ``check_*`` helpers;
    :func:`validate` turns it into one line and exit status 2."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def fail(experiment: str, message: str, code: int = 2) -> typing.NoReturn:
    """Print ``<experiment>: <message>`` as one line on stderr and exit with ``code``."""
    print(f"{experiment}: {_one_line(message)}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _show(v: Any) -> str:
    """A value as the user typed it: ``-1.0``, ``'foo'``, ``0 0`` for a list, ``nothing``."""
    if isinstance(v, (list, tuple)):
        return " ".join(_show(x) for x in v) if v else "nothing"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return repr(v) if isinstance(v, str) else str(v)


def require(cond: Any, flag: str, expected: str, got: Any) -> None:
    """Raise :class:`ConfigError` ``<flag> must be <expected>, got <got>`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"{flag} must be {expected}, got {_show(got)}")


def _is_int(v: Any) -> bool:
    import numpy as np

    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_int(flag: str, v: Any, *, minimum: int | None = 1, maximum: int | None = None, why: str = "") -> int:
    """``v`` must be an int in ``[minimum, maximum]`` (either bound may be None); ``why`` is
    appended to the expectation (``" (the digits training set has 1437 examples)"``)."""
    if minimum is not None and maximum is not None:
        expected = f"an int in [{minimum}, {maximum}]"
    elif minimum is not None:
        expected = f"an int >= {minimum}"
    elif maximum is not None:
        expected = f"an int <= {maximum}"
    else:
        expected = "an int"
    ok = _is_int(v) and (minimum is None or v >= minimum) and (maximum is None or v <= maximum)
    require(ok, flag, expected + why, v)
    return int(v)


def check_number(flag: str, v: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``v`` must be a finite number within the bounds (``low_open``: ``> low``, else ``>=``)."""
    parts = []
    if low is not None and high is not None:
        expected = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    else:
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        expected = "a finite number" + (" " + " and ".join(parts) if parts else "")
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    require(ok, flag, expected, v)
    return float(v)


def check_positive(flag: str, v: Any) -> float:
    """``v`` must be a finite number > 0 (a learning rate, a threshold, a gain)."""
    return check_number(flag, v, low=0, low_open=True)


def check_choice(flag: str, v: Any, choices: Iterable[Any]) -> Any:
    """``v`` must be one of ``choices``."""
    choices = tuple(choices)
    require(v in choices, flag, "one of " + ", ".join(_show(c) for c in choices), v)
    return v


def check_values(flag: str, values: Sequence[Any], *, allow_empty: bool = False, unique: bool = True,
                 each: Callable[[str, Any], Any] | None = None) -> tuple[Any, ...]:
    """A list flag: at least one value (unless ``allow_empty``), no value twice (unless not
    ``unique``), and ``each(flag, value)`` (e.g. ``check_int``) for every value."""
    values = tuple(values)
    if not values and not allow_empty:
        raise ConfigError(f"{flag} must list at least one value, got nothing")
    if unique:
        seen: list[Any] = []
        for v in values:
            if v in seen:
                raise ConfigError(f"{flag} must not repeat a value, got {_show(values)} ({_show(v)} twice)")
            seen.append(v)
    if each is not None:
        for v in values:
            each(flag, v)
    return values


def check_common(cfg: Any) -> None:
    """The fields every script shares (:class:`ExperimentConfig`): ``--seeds`` (at least one,
    none twice), ``--devices``, ``--mesh``, ``--run-name``, ``--overwrite`` with ``--resume``."""
    check_values("--seeds", cfg.seeds, each=lambda f, v: check_int(f, v, minimum=None))
    require(isinstance(cfg.out_dir, str) and cfg.out_dir.strip(), "--out-dir", "a folder", cfg.out_dir)
    name = cfg.run_name
    if name is not None:
        require(isinstance(name, str) and name and "/" not in name and name not in (".", ".."), "--run-name",
                "a folder name (not empty, no '/', not '.' or '..')", name)
    if cfg.overwrite and cfg.resume:
        raise ConfigError("--overwrite and --resume contradict each other: give one of them")
    if cfg.devices is not None:
        check_int("--devices", cfg.devices)
    if cfg.mesh is not None and cfg.mesh.strip():
        from funcnn.train.parallel import parse_mesh

        try:
            parse_mesh(cfg.mesh)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"--mesh: {str(e).removeprefix('parse_mesh: ')}") from None


def validate(cfg: Any, experiment: str, check: Callable[[Any], Any] | None = None) -> None:
    """Validate the whole configuration before anything runs: :func:`check_common`, then the
    script's ``check(cfg)``. A ``ValueError`` or ``TypeError`` either raises (a
    :class:`ConfigError`, or a library error such as ``Dropout: rate must be in [0, 1)``) becomes
    one line on stderr, ``<experiment>: <message>``, and exit status 2 (:func:`fail`).
    """
    try:
        check_common(cfg)
        if check is not None:
            check(cfg)
    except (ValueError, TypeError) as e:
        fail(experiment, str(e), 2)


#: The run directories :func:`open_run` opened inside the current :func:`experiment_main` call.
_OPENED: contextvars.ContextVar[list[RunDir] | None] = contextvars.ContextVar("funcnn_opened_runs", default=None)
_EXPERIMENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("funcnn_experiment", default=None)


def experiment_main(experiment: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a script's ``main(argv=None) -> int`` so that what goes wrong is one line.

    - :class:`ScriptError` (:func:`open_run`'s: a run name in use, a run that exists, a
      ``--resume`` that cannot resume): ``<experiment>: <message>`` on stderr, its exit status
      (2, or 1 for an ``--out-dir`` that cannot be created).
    - :class:`funcnn.study.runs.RunWriteError` (a file of the run could not be written: disk
      full, read-only file system): ``<experiment>: cannot write <file> in <run dir>: <cause>``,
      exit status 1; what was written before stays.
    - Ctrl-C or SIGTERM before training caught it: one line, exit status 130 or 143.
    - A flag :func:`parse_config` cannot parse (``--depth abc``, ``--optimizer foo``, an
      unknown flag): ``<experiment>: <flag> ...`` in one line, exit status 2.

    Whatever stops ``main`` (those, or any other exception, which keeps its traceback), a run
    directory that :func:`open_run` created in this call and that holds nothing but
    ``config.json`` is removed, so that the failed start leaves no folder blocking its name.
    """

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None, *args: Any, **kwargs: Any) -> int:
            opened: list[RunDir] = []
            token, named = _OPENED.set(opened), _EXPERIMENT.set(experiment)
            try:
                return main(argv, *args, **kwargs)
            except BaseException as e:
                kept = [r for r in opened if not r.discard_if_unused()]
                if isinstance(e, ScriptError):
                    fail(experiment, str(e), e.code)
                if isinstance(e, RunWriteError):
                    fail(experiment, str(e), 1)
                if isinstance(e, KeyboardInterrupt):
                    code = opened[-1].exit_code(True) if opened else 130
                    why = opened[-1].stop_reason if opened else "interrupted (Ctrl-C)"
                    if kept:
                        fail(experiment, f"{why} before the summary was written; what was written is in "
                                         f"{kept[-1].path}", code)
                    fail(experiment, f"{why} before any result was written", code)
                raise
            finally:
                _OPENED.reset(token)
                _EXPERIMENT.reset(named)

        return run

    return wrap


# --------------------------------------------------------------------------- datasets


def dataset_facts(name: str) -> dict[str, Any]:
    """``{n_train, n_test, num_classes, shape}`` of a bundled dataset without loading it
    (``"mnist1d"``, ``"mnist1d_shuffled"``, ``"digits"``), for checks before a run starts.

    Raises:
      ValueError: an unknown name.
    """
    if name in ("mnist1d", "mnist1d_shuffled"):
        from funcnn.data import mnist1d as m

        return dict(n_train=m.NUM_TRAIN, n_test=m.NUM_TEST, num_classes=m.NUM_CLASSES, shape=(m.LENGTH, 1))
    if name == "digits":
        from funcnn.data import digits as d

        n_test = math.ceil(d.TEST_SIZE * d.NUM_EXAMPLES)  # scikit-learn's train_test_split
        return dict(n_train=d.NUM_EXAMPLES - n_test, n_test=n_test, num_classes=d.NUM_CLASSES, shape=d.IMAGE_SHAPE)
    raise ValueError(f"dataset_facts: unknown dataset {name!r}")


def check_batch(flag: str, v: Any, dataset: str, *, n: int | None = None, what: str = "training set") -> int:
    """``v`` must be an int in ``[1, N]``, N the examples of ``dataset``'s training set (or ``n``)."""
    n = dataset_facts(dataset)["n_train"] if n is None else n
    return check_int(flag, v, minimum=1, maximum=n, why=f" (the {dataset} {what} has {n} examples)")


# --------------------------------------------------------------------------- interrupted runs


def grid_progress(result: Any, total: int, *, prefix: str = "") -> list[tuple[str, int, int]]:
    """``[(group name, step reached, total steps)]`` of a :class:`funcnn.train.GridResult`."""
    out = []
    for g in result.groups:
        step = result.members[g.members[0]].step if g.members else 0
        out.append((prefix + g.name, int(step), int(total)))
    return out


def interrupted_at(progress: Sequence[tuple[str, int, int]]) -> str:
    """Where an interrupted run stopped, for its summary's title: ``"interrupted at step 412 of
    3000"`` (the first group that stopped short), ``"interrupted before group model=b started"``
    (between groups), ``"interrupted before the first step"`` or ``"interrupted after the last
    step"``. ``progress``: ``[(group, step reached, total steps)]``, in run order."""
    partial = [p for p in progress if 0 < p[1] < p[2]]
    if partial:
        return f"interrupted at step {partial[0][1]} of {partial[0][2]}"
    never = [p for p in progress if p[1] == 0]
    if never and len(never) < len(progress):
        return f"interrupted before group {never[0][0]} started"
    return "interrupted before the first step" if never else "interrupted after the last step"


def stopped_note(run: RunDir, progress: Sequence[tuple[str, int, int]], *, table: bool = True) -> str:
    """The sentences an interrupted run's summary opens with: where it stopped
    (:func:`interrupted_at`) and how (``Interrupted by SIGTERM at step 412 of 3000 (group
    model=valid).``; Ctrl-C or
    the signal of :attr:`RunDir.stop_signal`), which groups finished and which had not started
    (their members are left out of the tables).

    ``progress``: ``[(group, step reached, total steps)]`` (:func:`grid_progress`), in run order.
    ``table``: the summary's table has a ``step`` column (the sentence says so).
    """
    done = [p for p in progress if p[1] >= p[2]]
    never = [p for p in progress if p[1] == 0]
    partial = [p for p in progress if 0 < p[1] < p[2]]
    by = "Ctrl-C" if run.stop_signal is None else run.stop_reason.removeprefix("stopped by ")
    text = f"Interrupted by {by} {interrupted_at(progress).removeprefix('interrupted ')}"
    text += f" (group {partial[0][0]})." if partial else "."
    if len(progress) > 1:
        text += f" {len(done)} of {len(progress)} groups finished"
        if never:
            text += f"; {len(never)} had not started and are not reported ({', '.join(p[0] for p in never)})"
        text += "."
    if table:
        text += (" The step column gives the step each configuration reached; its numbers are from its last "
                 "evaluation at or before that step.")
    return text


def grid_stop(run: RunDir, result: Any, total: int, experiment: str) -> tuple[str, str]:
    """``(stopped, suffix)`` of a grid run: its :func:`stopped_note` and the title's
    ``" (interrupted at ...)"`` when ``result`` was interrupted (saying so on stderr), else
    ``("", "")``. ``total``: the steps every group trains."""
    if not result.interrupted:
        return "", ""
    progress = grid_progress(result, total)
    print(f"{experiment}: {run.stop_reason}; summarizing what was trained", file=sys.stderr)
    return stopped_note(run, progress), f" ({interrupted_at(progress)})"


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
        (see :func:`funcnn.train.parallel.initialize_distributed`; ``JAX_COORDINATOR_ADDRESS``,
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
        from funcnn.train.parallel import mesh_from_flags

        return mesh_from_flags(self.devices, self.mesh)


def _check_resume(cfg: Any, experiment: str, name: str | None, resumable: bool) -> None:
    """``--resume`` must name an existing run that has checkpoints, in a script that keeps them
    (else :class:`ScriptError`, exit status 2)."""
    if not resumable:
        raise ScriptError(
            "--resume is not available here: this script keeps no checkpoints "
            "(it reruns in minutes); start a new run (or --overwrite the old one)"
        )
    if name is None:
        raise ScriptError("--resume needs --run-name, the name of the run to continue")
    path = Path(cfg.out_dir) / experiment / name
    if not path.is_dir():
        raise ScriptError(f"--resume: there is no run {str(path)!r} to continue")
    if not _has_checkpoints(path):
        raise ScriptError(
            f"--resume: run {str(path)!r} has no checkpoints (it ran without --checkpoint, "
            f"or stopped before the first one); start it again with --overwrite"
        )


def _has_checkpoints(path: Path) -> bool:
    ckpt = path / "checkpoints"
    try:
        return ckpt.is_dir() and any(ckpt.iterdir())
    except OSError:
        return False


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
    with _one_line_parse_errors():
        cfg = tyro.cli(cls, args=args, description=description)
    import_user_modules(getattr(cfg, "imports", ()))
    return _with_explicit(cfg, _fields_on_command_line(cls, args))


def _flag_of(argument: Any) -> str:
    names = getattr(getattr(argument, "lowered", None), "name_or_flags", None) or ()
    return "/".join(names) if names else str(getattr(getattr(argument, "lowered", None), "metavar", "?"))


def _parse_error_line(event: Any) -> str | None:
    """One line for a tyro parse error: the flag, what it expects, what arrived (None: an event
    this function does not know, which keeps tyro's own message)."""
    name = type(event).__name__
    argument = getattr(event, "argument", None)
    expects = ""
    if argument is not None:
        metavar = getattr(getattr(argument, "lowered", None), "metavar", None)
        expects = f" (expects {metavar})" if metavar else ""
    if name == "InvalidChoice":
        return (f"{_flag_of(argument)} must be one of {', '.join(map(str, event.choices))}, "
                f"got {event.value!r}")
    if name == "BadValue":
        why = {"too_few_values": "too few values", "fixed": "cannot be set from the command line"}
        got = "" if event.offending_value is None else f", got {event.offending_value!r}"
        return f"{_flag_of(argument)}{expects}: {why.get(event.reason, 'a bad value')}{got}"
    if name == "InstantiationFailure" and argument is not None:
        return f"{_flag_of(argument)}{expects}: {event.message}"
    if name == "UnrecognizedArgs":
        return f"unrecognized arguments: {' '.join(event.tokens)}"
    return None


@contextlib.contextmanager
def _one_line_parse_errors() -> Any:
    """While tyro parses: a bad value, an unknown choice or flag is one line on stderr
    (``gradient_stability: --depth (expects INT): invalid literal for int() ...: 'abc' (see
    --help)``; the name is :func:`experiment_main`'s)
    and exit status 2. Uses tyro's parse-error hook where this tyro has it; other tyro
    versions, and errors the hook does not know, keep tyro's own message (exit status 2 too)."""
    try:
        from tyro import _errors as te

        register = te.on_parse_error
    except (ImportError, AttributeError):
        yield
        return

    def hook(event: Any) -> None:
        try:
            line = _parse_error_line(event)
        except Exception:  # an event whose fields differ in this tyro: its own message
            return None
        if line is not None:
            prog = _EXPERIMENT.get() or Path(sys.argv[0]).stem
            raise _ParseLine(f"{prog}: {_one_line(line)} (see --help)")  # tyro's messages may span lines
        return None

    try:
        with register(hook):
            yield
    except _ParseLine as e:
        print(str(e), file=sys.stderr, flush=True)
        raise SystemExit(2) from None


class _ParseLine(Exception):
    pass


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


def check_hidden_activations(names: Sequence[str], *, experiment: str = "", flag: str = "--activations") -> None:
    """Raise :class:`ConfigError` (one line and exit status 2 under :func:`validate`) unless
    every name is a registered hidden-layer activation: an elementwise one of
    :mod:`funcnn._ops.registry`, the built-ins and whatever ``--import`` registered (softmax and
    log_softmax are output nonlinearities). Read when called, so call it after
    :func:`parse_config`. ``experiment`` is accepted for old callers and not used.
    """
    from funcnn._ops import registry

    hidden = registry.activation_names(hidden=True)
    for name in names:
        if name not in hidden:
            why = " (an output nonlinearity)" if registry.is_registered(name) else ""
            raise ConfigError(
                f"{flag}: activation {name!r}{why} is not a hidden-layer activation; choose from "
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
            mods.append(import_module_or_file(name))
        except Exception as e:  # noqa: BLE001 -- whatever the user's module raised, reported in one line
            prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "funcnn"
            msg = " ".join(str(e).split()) or "(no message)"
            print(f"{prog}: error: {flag} {name}: cannot import it: {type(e).__name__}: {msg}", file=sys.stderr)
            raise SystemExit(2) from None
    return mods


def open_run(
    cfg: ExperimentConfig, experiment: str, *, extra: Mapping[str, Any] | None = None, resumable: bool = False
) -> RunDir:
    """Create (or, with ``cfg.resume``, reopen) the run directory and write ``config.json``.

    ``config.json`` records ``cfg`` as given (pass the final config: after
    :func:`apply_smoke`), its ``imports`` among them, and the fields its command line set
    (``"set_on_command_line"``).

    First, before any computation creates a JAX backend, joins a multi-process run if one is
    asked for (``cfg.distributed`` or the environment: :func:`funcnn.train.parallel.initialize_distributed`);
    a single-process run initializes nothing.

    Raises (one line each under :func:`experiment_main`):
      RunExistsError: (a ``FileExistsError``, exit status 2) the run exists and is not empty:
        the message suggests ``--overwrite`` or another ``--run-name``, and ``--resume`` where the
        script can resume that run (``resumable`` and the run has checkpoints).
      ScriptError: (exit status 2) another process holds the run (its pid named), or
        ``--resume`` cannot resume; (exit status 1) the run directory cannot be created.
    """
    from funcnn.train.parallel import initialize_distributed

    initialize_distributed(multiprocess=True if getattr(cfg, "distributed", False) else None)
    from funcnn.study.compilation import CompileStats, enable_compilation_cache

    cache = enable_compilation_cache(getattr(cfg, "compile_cache", True))
    name = cfg.run_name or ("smoke" if cfg.smoke else None)
    if cfg.resume:
        _check_resume(cfg, experiment, name, resumable)
    where = Path(cfg.out_dir) / experiment / (name or "<timestamp>")
    try:
        run = RunDir(cfg.out_dir, experiment, name, overwrite=cfg.overwrite, resume=cfg.resume)
    except FileExistsError:
        hint = "pass --overwrite to replace it"
        if resumable and _has_checkpoints(where):
            hint += ", --resume to continue it"
        raise RunExistsError(
            f"run directory {str(where)!r} already exists and is not empty; {hint}, or choose another --run-name"
        ) from None
    except RunInUseError as e:
        raise ScriptError(
            f"run directory {str(where)!r} is in use by another process (pid {e.pid}); wait for it to finish, "
            f"or choose another --run-name"
        ) from None
    except OSError as e:
        raise ScriptError(
            f"cannot create the run directory {str(where)!r} under --out-dir {cfg.out_dir!r}: "
            f"{e.strerror or e} ({type(e).__name__}); choose a writable folder with --out-dir", code=1
        ) from None
    opened = _OPENED.get()
    if opened is not None:
        opened.append(run)
    _stop_on_sigterm(run)
    run.compile_stats = CompileStats.start()
    run.compile_cache = cache
    record = {"compile_cache": cache, "set_on_command_line": sorted(explicit_fields(cfg))}
    run.write_config(cfg, extra={**record, **(extra or {})})
    return run
