#!/usr/bin/env bash
# Run the benchmark suite on a lent NVIDIA GPU in one call:
#
#     bash benchmarks/gpu.sh              # quick suite (fits one 10-minute device call)
#     bash benchmarks/gpu.sh --full       # the full suite (same repeats as on CPU)
#     bash benchmarks/gpu.sh --only train,grid
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

args=(--quick)
if [ "${1:-}" = "--full" ]; then args=(); shift; fi

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

# One process, one run; the XLA CPU flag comparison is CPU-only and is left out.
timeout "${GPU_BENCH_TIMEOUT:-560}" "$PY" -m benchmarks.run "${args[@]}" --out "$dest" "$@"
rc=$?
[ -f "$dest" ] && echo "gpu.sh: wrote $dest"
exit $rc
