"""Training engine: jitted steps, the ``fit`` loop, vmapped ablation grids, checkpoints, results.

- :func:`make_train_step`, :func:`make_eval_fn`: pure, jit-able building blocks.
- :func:`fit`: train one model (evaluation, progress bar, checkpoints/resume, Ctrl-C).
- :func:`run_grid`: train an ablation grid, one vmapped program per structural group.
- :class:`TrainOptions`: the settings both take (as keywords or ``options=``), with their
  defaults, documented once.
- :mod:`funcnn.train.runs`: run directories (atomic writes, JSON, metrics), summaries, tables.
- :mod:`funcnn.train.plots`: band, line and bar plots.
- :mod:`funcnn.train.cli`: experiment configs parsed from the command line, and the run they open.
- :mod:`funcnn.train.results`: the names of those three, where they used to live.
- :func:`time_interleaved`: what a rule or a step costs, timed interleaved (medians per round).

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
from funcnn.train.cli import ExperimentConfig, open_run, parse_config
from funcnn.train.plots import band, plot_bands, plot_bars, plot_lines
from funcnn.train.runs import RunDir, RunInUseError, first_reach, library_versions, markdown_table, save_figure, summarize
from funcnn.train.timing import time_interleaved
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
