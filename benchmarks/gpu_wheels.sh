#!/usr/bin/env bash
# Fetch, into .whl/ (git-ignored), the wheels that `benchmarks/gpu.sh --check` needs on the
# lent GPU machine and that its python3 (3.12, x86-64) lacks: tyro and mnist1d for the
# experiments, hypothesis and pytest-timeout for the tests, and what they need in turn.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  -d .whl tyro==1.0.17 docstring-parser typeguard typing-extensions mnist1d==0.0.2.post1 \
  hypothesis sortedcontainers pytest-timeout
ls -1 .whl
