"""What experiment scripts share: run folders, the command line, plots, timing, the compile cache.

- :mod:`funcnn.study.runs`: run directories (atomic writes, JSON, metrics.jsonl, a lock),
  summaries over seeds, markdown tables, figures.
- :mod:`funcnn.study.cli`: an experiment's config parsed from the command line
  (:func:`parse_config`) and the run directory it opens (:func:`open_run`).
- :mod:`funcnn.study.plots`: band, line and bar plots.
- :mod:`funcnn.study.timing`: what a rule or a step costs, timed interleaved.
- :mod:`funcnn.study.compilation`: JAX's persistent compilation cache and compile counts.

It sits on top of :mod:`funcnn.train`; nothing in the library below imports it at load time.
"""

from funcnn.study.cli import ExperimentConfig, open_run, parse_config
from funcnn.study.plots import band, plot_bands, plot_bars, plot_lines
from funcnn.study.runs import (
    RunDir,
    RunInUseError,
    first_reach,
    library_versions,
    markdown_table,
    save_figure,
    summarize,
)
from funcnn.study.timing import time_interleaved

__all__ = [
    "ExperimentConfig", "RunDir", "RunInUseError", "band", "first_reach", "library_versions", "markdown_table",
    "open_run", "parse_config", "plot_bands", "plot_bars", "plot_lines", "save_figure", "summarize",
    "time_interleaved",
]
