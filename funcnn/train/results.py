"""Results of a study: the names of :mod:`funcnn.study.runs`, :mod:`~funcnn.study.plots` and
:mod:`~funcnn.study.cli` in one place (their old home; ``from funcnn.train.results import X``
keeps working).

- :mod:`funcnn.study.runs`: ``results/<experiment>/<run-name>/`` (:class:`RunDir`), atomic
  writes, JSON, ``metrics.jsonl``, summaries and markdown tables.
- :mod:`funcnn.study.plots`: band, line and bar plots (matplotlib, Agg backend).
- :mod:`funcnn.study.cli`: :class:`ExperimentConfig`, :func:`parse_config` (tyro) and
  :func:`open_run` for experiment scripts.
"""

from __future__ import annotations

# The private names too: scripts and tests reached for them here.
from funcnn.study.cli import ExperimentConfig, _check_resume, _stop_on_sigterm, open_run, parse_config  # noqa: F401
from funcnn.study.plots import _decorate, _plt, plot_bands, plot_bars, plot_lines, pyplot  # noqa: F401
from funcnn.study.runs import (  # noqa: F401
    RunDir,
    _defaults_of,
    _fmt,
    atomic_write_bytes,
    atomic_write_text,
    json_dumps,
    library_versions,
    markdown_table,
    save_figure,
    summarize,
    to_jsonable,
)

