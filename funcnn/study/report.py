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
import time
from collections.abc import Sequence


@dataclasses.dataclass
class Clock:
    """Wall and CPU seconds since it was made (CPU: this process, every thread)."""

    wall0: float = dataclasses.field(default_factory=time.perf_counter)
    cpu0: float = dataclasses.field(default_factory=time.process_time)

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

    def runtime(self, clock: Clock, *, train_s: float | None = None) -> Report:
        """``Runtime: W s wall (T s training), C s CPU (this process).``"""
        train = "" if train_s is None else f" ({train_s:.0f} s training)"
        return self.text(f"Runtime: {clock.wall:.0f} s wall{train}, {clock.cpu:.0f} s CPU (this process).")

    def __str__(self) -> str:
        return "\n\n".join(b.rstrip() for b in self.blocks) + ("\n" if self.blocks else "")
