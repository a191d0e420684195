"""Shared steps of the experiment smoke tests: run a script in a subprocess, check what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def script_path(name: str) -> Path:
    return REPO / "experiments" / f"{name}.py"


def run_help(name: str) -> str:
    """``--help`` exits 0; returns its text."""
    out = subprocess.run([sys.executable, str(script_path(name)), "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--smoke" in out.stdout
    return out.stdout


def run_script(name: str, *args: str, cwd: Path = REPO, timeout: int = 580) -> subprocess.CompletedProcess:
    """Run ``experiments/<name>.py *args`` in a subprocess (from ``cwd``, with the repository
    importable from there); return the finished process, whatever its exit code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, str(script_path(name)), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_script_smoke(name: str, out_dir: Path, *extra: str, cwd: Path = REPO,
                     timeout: int = 580) -> tuple[Path, subprocess.CompletedProcess]:
    """Run ``--smoke`` (and the flags ``extra``) into ``out_dir``; check it exited 0; return its
    run directory and the process."""
    out = run_script(name, "--smoke", "--out-dir", str(out_dir), "--no-progress", *extra, cwd=cwd, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out_dir / name / "smoke", out


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def members(run: Path, key: tuple[str, ...] = ("group", "member")) -> dict[Any, list[dict[str, Any]]]:
    """metrics.jsonl as ``{(group, member): [records by step]}`` (``key=("member",)``: by
    member alone)."""
    out: dict[Any, list[dict[str, Any]]] = {}
    for line in (Path(run) / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        k = tuple(rec[f] for f in key)
        out.setdefault(k if len(k) > 1 else k[0], []).append(rec)
    return {k: sorted(v, key=lambda r: r["step"]) for k, v in out.items()}


def run_smoke(name: str, out_dir: Path, pngs: tuple[str, ...], *, timeout: int = 580) -> tuple[Path, dict[str, Any]]:
    """Run ``--smoke`` into ``out_dir``; check the run directory's files; return it and the summary."""
    run, out = run_script_smoke(name, out_dir, timeout=timeout)
    for f in ("config.json", "metrics.jsonl", "summary.json", "summary.md"):
        assert (run / f).stat().st_size > 0, f
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rows"] and summary["findings"]
    md = (run / "summary.md").read_text()
    assert "| --- |" in md and "## Findings" in md
    for png in pngs:
        assert (run / png).stat().st_size > 1000, png
    assert str(run) in out.stdout
    return run, summary
