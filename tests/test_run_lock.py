"""A run directory is locked while a process writes it: a second writer is refused with one
line naming the holder's pid, before it deletes or writes anything."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from funcnn.train import RunDir, RunInUseError

HOLD = textwrap.dedent("""
    import sys, time
    from funcnn.train import RunDir
    run = RunDir(sys.argv[1], "exp", "r")
    run.write_text("note.txt", "mine")
    print("ready", flush=True)
    time.sleep(120)
""")


def test_a_second_writer_is_refused_and_the_lock_dies_with_its_holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        for kw in ({"overwrite": True}, {"resume": True}, {}):
            with pytest.raises(RunInUseError, match=rf"is in use by another process \(pid {proc.pid}\)"):
                RunDir(tmp_path, "exp", "r", **kw)
        assert (tmp_path / "exp" / "r" / "note.txt").read_text() == "mine"  # --overwrite deleted nothing
        RunDir(tmp_path, "exp", "other").close()  # other runs of the experiment are free
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    run = RunDir(tmp_path, "exp", "r", overwrite=True)  # the OS released the dead holder's lock
    assert not (run.path / "note.txt").exists()
    again = RunDir(tmp_path, "exp", "r", resume=True)  # the same process may reopen its own run
    again.close()
    run.close()
