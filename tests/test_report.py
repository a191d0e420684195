"""funcnn.study.report: the run's clock (wall, CPU, seconds since the process's launch) and
the summary notes it writes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from funcnn.study.report import Clock, Report, process_age


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the launch time is read from /proc")
def test_process_age_counts_from_the_launch_not_from_the_import():
    # a child that sleeps before importing: its age at the import includes the sleep
    code = "import time; time.sleep(0.6); from funcnn.study.report import process_age; print(process_age())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    age = float(out.stdout.strip())
    assert 0.6 <= age < 60
    assert process_age() > 0


def test_since_launch_adds_the_clock_offset_to_a_perf_counter_stamp():
    clock = Clock(launched=2.5)
    stamp = clock.wall0 + 1.25
    assert clock.since_launch(stamp) == pytest.approx(3.75)
    assert Clock(launched=None).since_launch(time.perf_counter()) is None


def test_runtime_line_names_the_first_step_only_when_known():
    clock = Clock()
    assert "first training step" not in str(Report().runtime(clock, train_s=1.0))
    line = str(Report().runtime(clock, train_s=1.0, first_step_s=7.25))
    assert line.startswith("Runtime: ") and "The first training step started 7.2 s after launch." in line
