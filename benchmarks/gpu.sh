#!/usr/bin/env bash
# Run the benchmark suite on a lent NVIDIA GPU in one call:
#
#     bash benchmarks/gpu.sh              # quick suite (fits one 10-minute device call)
#     bash benchmarks/gpu.sh --full       # the full suite (same repeats as on CPU)
#     bash benchmarks/gpu.sh --only train,grid
#     bash benchmarks/gpu.sh --check      # the whole GPU check, under 10 minutes: gradcheck,
#                                         # the test suite (-n 8), the main job (timed) and the
#                                         # quick benchmark; logs under $OUT
#
# The machine has no tyro, mnist1d, hypothesis or pytest-timeout; fetch their wheels here
# first with `bash benchmarks/gpu_wheels.sh` (into .whl/, git-ignored) and carry ".whl":
#     run(command="bash benchmarks/gpu.sh --check", carry=[".whl"], timeout_s=600)
#
# From a session with the device tool, e.g.:  run(command="bash benchmarks/gpu.sh", timeout_s=600)
# It needs no install: the machine's python3 must already have jax with CUDA (plus optax and
# numpy); funcnn is used from this checkout (PYTHONPATH), PyTorch rows use CUDA torch if
# present. Nothing can be downloaded there, so a missing piece makes it stop with a message
# (exit 0), not fail. The report goes to $OUT/BENCHMARKS_gpu.md (or ./BENCHMARKS_gpu.md),
# never over the CPU BENCHMARKS.md.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
dest="${OUT:-.}/BENCHMARKS_gpu.md"

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

check=0
args=(--quick)
if [ "${1:-}" = "--full" ]; then args=(); shift; fi
if [ "${1:-}" = "--check" ]; then check=1; shift; fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  || echo "gpu.sh: nvidia-smi not found or failed"

if ! "$PY" - <<'PY'
import sys
try:
    import jax, optax, numpy  # noqa: F401
except ImportError as e:
    sys.exit(f"gpu.sh: missing package ({e}); nothing can be installed offline there: skipping")
if jax.default_backend() != "gpu":
    sys.exit(f"gpu.sh: JAX sees no GPU (backend {jax.default_backend()!r}, devices {jax.devices()}): skipping")
print(f"gpu.sh: jax {jax.__version__} on {jax.devices()}")
PY
then
  exit 0
fi

if [ "$check" = 1 ]; then
  # Budgets (seconds) add up to ~560: each step is cut at its own limit and the next one runs.
  logs="${OUT:-.}"
  fail=0
  step() {  # step NAME SECONDS COMMAND...: run, time, log to $logs/NAME.log
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "== gpu.sh --check: $name (limit ${limit}s)"
    timeout "$limit" "$@" >"$logs/$name.log" 2>&1
    local rc=$?
    tail -n 15 "$logs/$name.log"
    echo "== $name: exit $rc after $((SECONDS - t0)) s"
    [ $rc -ne 0 ] && fail=1
    return 0
  }
  step gradcheck 60 "$PY" -m funcnn.gradcheck
  step tests 250 "$PY" -m pytest -n 8 -q -p no:cacheprovider -o addopts='-m "not slow"'
  step main_job 120 env JAX_LOG_COMPILES=0 "$PY" experiments/activation_ablation.py --no-progress \
    --out-dir /tmp/gpu_check_results --run-name main
  [ -f /tmp/gpu_check_results/activation_ablation/main/summary.md ] \
    && cp /tmp/gpu_check_results/activation_ablation/main/summary.md "$logs/main_job_summary.md"
  step benchmark 130 "$PY" -m benchmarks.run --quick --out "$dest"
  echo "gpu.sh --check: $([ $fail = 0 ] && echo 'every step passed' || echo 'a step failed (see its log)')"
  exit $fail
fi

# One process, one run; the XLA CPU flag comparison is CPU-only and is left out.
timeout "${GPU_BENCH_TIMEOUT:-560}" "$PY" -m benchmarks.run "${args[@]}" --out "$dest" "$@"
rc=$?
[ -f "$dest" ] && echo "gpu.sh: wrote $dest"
exit $rc
