#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the tools the real-client tests use
# (Python and Node WebSocket clients, headless Chromium), then runs every test: unit tests
# beside the code, the integration tests against the real binary (tests/main.rs), and the
# replay of the fuzz corpora. Fuzzing itself runs separately: fuzz/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f tests/install-tools.sh ]; then
    bash tests/install-tools.sh
fi
cargo test --locked "$@"
