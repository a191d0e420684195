"""A run's written report: the notes of ``summary.md`` built section by section, and the clock
that times the run (wall and CPU).

Every experiment script writes its summary the same way::

    clock = Clock()
    ...
    report = Report().stopped(stopped_note).text("Adam on softmax cross-entropy; ...")
    report.section("High learning rate", markdown_table(rows, columns))
    report.findings(findings)
    report.runtime(clock, train_s=t_train)
    run.write_summary(rows, columns=main_columns, title=..., notes=report, extra=...)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence


def process_age() -> float | None:
    """Seconds since this process was started (interpreter start-up and imports included),
    read from ``/proc``; None where there is none."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


@dataclasses.dataclass
class Clock:
    """Wall and CPU seconds since it was made (CPU: this process, every thread).

    ``launched``: how long the process had been running when the clock was made (start-up
    and imports: :func:`process_age`), None where unknown; :meth:`since_launch` turns a
    ``time.perf_counter()`` stamp into seconds after the launch."""

    wall0: float = dataclasses.field(default_factory=time.perf_counter)
    cpu0: float = dataclasses.field(default_factory=time.process_time)
    launched: float | None = dataclasses.field(default_factory=process_age)

    def since_launch(self, stamp: float) -> float | None:
        """Seconds from the process's launch to the ``time.perf_counter()`` value ``stamp``."""
        return None if self.launched is None else self.launched + (stamp - self.wall0)

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    @property
    def cpu(self) -> float:
        return time.process_time() - self.cpu0


@dataclasses.dataclass
class Report:
    """Markdown blocks in order; ``str(report)`` joins them with blank lines."""

    blocks: list[str] = dataclasses.field(default_factory=list)

    def stopped(self, note: str | None) -> Report:
        """A run that stopped early says so first, in bold (nothing for a finished run)."""
        if note:
            self.blocks.append(f"**{note}**")
        return self

    def text(self, *paragraphs: str) -> Report:
        self.blocks.extend(p for p in paragraphs if p)
        return self

    def section(self, title: str, *blocks: str) -> Report:
        """``## title`` and its blocks (tables, paragraphs)."""
        self.blocks.append(f"## {title}")
        return self.text(*blocks)

    def findings(self, items: Sequence[str], *, title: str = "Findings") -> Report:
        """The findings, one bullet each (sentences computed from the measured numbers)."""
        return self.section(title, "\n".join(f"- {f}" for f in items))

    def runtime(self, clock: Clock, *, train_s: float | None = None, first_step_s: float | None = None) -> Report:
        """``Runtime: W s wall (T s training), C s CPU (this process).``, and with
        ``first_step_s`` (seconds from the launch to the first training step) `` The first
        training step started F s after launch.``"""
        train = "" if train_s is None else f" ({train_s:.0f} s training)"
        first = "" if first_step_s is None else f" The first training step started {first_step_s:.1f} s after launch."
        return self.text(f"Runtime: {clock.wall:.0f} s wall{train}, {clock.cpu:.0f} s CPU (this process).{first}")

    def __str__(self) -> str:
        return "\n\n".join(b.rstrip() for b in self.blocks) + ("\n" if self.blocks else "")
