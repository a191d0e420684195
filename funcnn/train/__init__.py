"""Training engine: jitted steps, the ``fit`` loop, vmapped ablation grids, checkpoints, results.

- :func:`make_train_step`, :func:`make_eval_fn`: pure, jit-able building blocks.
- :func:`fit`: train one model (evaluation, progress bar, checkpoints/resume, Ctrl-C).
- :func:`run_grid`: train an ablation grid, one vmapped program per structural group.
- :class:`TrainOptions`: the settings both take (as keywords or ``options=``), with their
  defaults, documented once.
- :mod:`funcnn.train.engine`: the engine both run on (plan, carry, programs, runner);
  :mod:`funcnn.train.parallel`: meshes and shardings for many devices.

What experiment scripts share (run directories, the CLI, plots, timing, the compile cache)
lives in :mod:`funcnn.study`; its names are also found here, where they used to live
(``funcnn.train.RunDir`` is ``funcnn.study.RunDir``), loaded on first use.

orbax-checkpoint, tqdm, matplotlib and tyro (the ``experiments`` extra) are imported only
when checkpoints, progress bars, plots or CLI parsing are used.
"""

from funcnn.train.checkpoint import CheckpointError, Checkpointer
from funcnn.train.grid import (
    GridResult,
    GroupInfo,
    MemberResult,
    PreparedGrid,
    expand_grid,
    prepare_grid,
    run_grid,
    grid_workers,
    run_grids,
)
from funcnn.train.loop import FitResult, History, TrainSpec, fit
from funcnn.train.options import TrainOptions
from funcnn.train.step import (
    LOSS_NAMES,
    STEP_METRICS,
    correct,
    get_hyperparam,
    make_eval_fn,
    make_optimizer,
    make_train_step,
    resolve_loss,
    set_hyperparam,
    with_clipping,
)

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "ExperimentConfig",
    "FitResult",
    "GridResult",
    "GroupInfo",
    "History",
    "LOSS_NAMES",
    "MemberResult",
    "RunDir",
    "RunInUseError",
    "STEP_METRICS",
    "TrainOptions",
    "TrainSpec",
    "band",
    "correct",
    "expand_grid",
    "first_reach",
    "fit",
    "get_hyperparam",
    "library_versions",
    "make_eval_fn",
    "make_optimizer",
    "make_train_step",
    "markdown_table",
    "open_run",
    "parse_config",
    "plot_bands",
    "plot_bars",
    "plot_lines",
    "resolve_loss",
    "run_grid",
    "grid_workers",
    "run_grids",
    "prepare_grid",
    "PreparedGrid",
    "save_figure",
    "set_hyperparam",
    "summarize",
    "time_interleaved",
    "with_clipping",
]

# The study harness sits above training (it imports funcnn.train); its names are found here
# too, as before it moved, resolved on first use so neither package imports the other at load.
_STUDY_NAMES = {
    "ExperimentConfig": "cli", "open_run": "cli", "parse_config": "cli",
    "band": "plots", "plot_bands": "plots", "plot_bars": "plots", "plot_lines": "plots",
    "RunDir": "runs", "RunInUseError": "runs", "first_reach": "runs", "library_versions": "runs",
    "markdown_table": "runs", "save_figure": "runs", "summarize": "runs",
    "time_interleaved": "timing",
}


def __getattr__(name: str):
    import importlib

    if name in _STUDY_NAMES:
        return getattr(importlib.import_module(f"funcnn.study.{_STUDY_NAMES[name]}"), name)
    if name in ("cli", "plots", "runs", "timing", "compilation", "results"):
        return importlib.import_module(f"funcnn.train.{name}")
    raise AttributeError(f"module 'funcnn.train' has no attribute {name!r}")
