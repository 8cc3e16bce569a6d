#!/usr/bin/env bash
# The benchmark of issue 4 in one command: builds wson and the bench in release, installs
# the Node.js peers, then runs every workload on every server and prints a table and one
# JSON line (also appended to bench/out/results.jsonl).
#
#   bench/run.sh            full run (3 rounds, 1,000 / 10,000 / 19,000 clients, WAMP at 10,000;
#                           ~25 min)
#   bench/run.sh --quick    smoke run (1 round, 200 / 1,000 clients; ~1 min)
#   bench/run.sh --wamp-only --n 10000 --rounds 3   the WAMP workloads of issues 11 and 12
#                           only (WAMP-CRA logins among them, --logins 2000), wson and
#                           Crossbar.io (installed into peers/.crossbar-venv)
#   bench/run.sh --cluster --n 10000 --rounds 3   the cluster workloads of issue 13 only:
#                           one wson node, one with [cluster], two on one port joined by a
#                           redis-server of the run's own (needs redis-server; ~80 s)
#   bench/run.sh --deflate --n 10000 --rounds 3   issue 14's permessage-deflate workloads only:
#                           JSON broadcasts (512 B, 2 KiB) to clients without deflate, then
#                           with it, on fresh wson servers (~1 min)
#   bench/run.sh --storm [--rounds 3]   issue 15's reconnect storm only (wsbench storm): 10,000
#                           clients resume after 1,000 missed publications over 100 topics;
#                           CPU per replayed message against a live delivery (~10 s a round)
#   bench/run.sh --cluster-57k --cluster-cost --rounds 3   issue 13's other two: three nodes
#                           x 19,000 clients (57,000, in three holder processes) against one
#                           node of 19,000, and cross-node `d` and WAMP RPC against local
#                           ones (~2 min; --quick: 3 x 1,000 clients, N = 1,000)
#
# Any other argument goes to the harness: bench/run.sh --servers wson,raw --rounds 5 ...
# (bench/target/release/wsbench --help lists them).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_all
if storm_run "$@"; then
    # wson alone (issue 15): its own subcommand, which takes the other arguments.
    args=()
    for arg in "$@"; do
        [ "$arg" = --storm ] || args+=("$arg")
    done
    mkdir -p "$bench_dir/out"
    exec "$bench_target/wsbench" storm --wson "$root_target/wson" \
        --json "$bench_dir/out/results.jsonl" "${args[@]}"
fi
if cluster_run "$@"; then
    # wson alone: no peers to install, but a Redis to join its nodes.
    require_redis
elif deflate_run "$@"; then
    # wson alone (issue 14): nothing to install.
    :
else
    install_peers
    if wants_crossbar "$@"; then
        install_crossbar
    fi
fi
mkdir -p "$bench_dir/out"
exec "$bench_target/wsbench" \
    --wson "$root_target/wson" \
    --raw "$bench_target/raw-server" \
    --tt "$bench_target/tt-server" \
    --peers "$bench_dir/peers" \
    --crossbar "$crossbar_bin" \
    --json "$bench_dir/out/results.jsonl" \
    "$@"
