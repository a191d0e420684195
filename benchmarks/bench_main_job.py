"""The main job, timed as a user runs it: ``python experiments/activation_ablation.py``.

    python -m benchmarks.bench_main_job [--extra "--archs mlp"] [--out /tmp/main_job.md]

Runs the script twice in fresh processes: first with an empty persistent compilation cache
(a cold start), then again with the cache the first run left (a rerun). For each it reports
the wall time, the XLA compilations and their seconds (from the run's summary.json), and the
member programs: how many were compiled and their train/eval compile seconds. The per-step
time of each program comes from ``benchmarks/bench_choices.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(out_dir: str, name: str, cache: str, extra: list[str]) -> dict:
    env = dict(os.environ, FUNCNN_COMPILE_CACHE_DIR=cache, JAX_LOG_COMPILES="1")
    cmd = [sys.executable, str(ROOT / "experiments" / "activation_ablation.py"), "--no-progress",
           "--out-dir", out_dir, "--run-name", name, *extra]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"bench_main_job: the run failed:\n{p.stderr[-3000:]}")
    summary = json.loads((Path(out_dir) / "activation_ablation" / name / "summary.json").read_text())
    member = [ln for ln in p.stderr.splitlines() if "Finished XLA compilation of jit(" in ln
              and any(f"jit({n})" in ln for n in ("chunk", "evaluate", "member_init", "member_chunk", "member_eval"))]
    secs = sum(float(ln.rsplit(" in ", 1)[1].split()[0]) for ln in member)
    return {"wall_s": wall, **summary["run"], "member_programs": len(member), "member_compile_s": secs,
            "programs": summary.get("compilations")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra", default="", help="extra flags for the script, e.g. '--archs mlp'")
    ap.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    extra = shlex.split(args.extra)
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "cache")
        rows = [("cold (empty cache)", run_once(tmp, "cold", cache, extra)),
                ("rerun (warm cache)", run_once(tmp, "warm", cache, extra))]
    lines = ["| run | wall (s) | XLA compilations | compile + load (s) | loaded from cache | member programs compiled | their compile (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, r in rows:
        lines.append(f"| {label} | {r['wall_s']:.1f} | {r['compilations']} | {r['compile_seconds']:.1f} | "
                     f"{r['compile_cache_hits']} | {r['member_programs']} | {r['member_compile_s']:.1f} |")
    text = "\n".join(lines)
    print(text)
    print("programs (traces per group):", rows[0][1]["programs"])
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
