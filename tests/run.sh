#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the tools the real-client tests use
# (Python and Node WebSocket clients, headless Chromium), then runs every test: unit tests
# beside the code, the integration tests against the real binary (tests/main.rs), and the
# replay of the fuzz corpora. Fuzzing itself runs separately: fuzz/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/install-tools.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test binary, e.g. "tests: 379 passed, 0 failed".
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
