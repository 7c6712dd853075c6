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
exit "$rc"
