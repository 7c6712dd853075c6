#!/usr/bin/env bash
# Run the whole test suite from .venv (after `bash tools/setup.sh --dev`).
# Extra arguments go to pytest. "No tests collected" (pytest exit 5) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED=0
.venv/bin/python -m pytest -x -q "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "run_tests: error: pytest collected no tests" >&2
  exit 1
fi
[ "$rc" = 0 ] || exit "$rc"
# Second pass: the numba kernels' tests again as plain Python (no JIT).
NUMBA_DISABLE_JIT=1 .venv/bin/python -m pytest -x -q -m nojit -p no:cacheprovider "$@"
rc=$?
[ "$rc" = 5 ] && { echo "run_tests: error: no tests marked nojit" >&2; exit 1; }
exit "$rc"
