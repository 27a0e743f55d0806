#!/usr/bin/env bash
# The test command: fast unit tests, then the marked slow end-to-end tests on the embedded default model.
set -uo pipefail
cd "$(dirname "$0")/.."
run() {  # pytest exits 5 when it collected no test: that is a failure of this script, not a pass
  python -m pytest "$@"
  rc=$?
  if [ "$rc" -eq 5 ]; then echo "no tests ran for: $*" >&2; exit 1; fi
  [ "$rc" -eq 0 ] || exit "$rc"
}
run tests/unit -q
run tests/slow -q -m slow
