#!/usr/bin/env bash
# Instructions per delivered message, a deterministic figure: a fixed fan-out run of the
# server under `valgrind --tool=callgrind`, done twice with a different number of
# broadcasts; the difference in instructions divided by the difference in deliveries
# cancels startup, the handshakes and shutdown.
#
#   bench/callgrind.sh [--server wson|raw|tt] [--clients N] [--broadcasts M] [--size BYTES]
#                      [--window W] [--topics T]
#
# Defaults: wson, 1,000 clients, 10 and 10+M broadcasts with M = 100, 100-byte messages,
# window 1 (one broadcast in flight: every client gets one writev per broadcast, so the
# count does not depend on timing; with W > 1 batching, hence the count, varies a little).
# Counts user-space instructions only (callgrind does not see the kernel).
# `--topics T` (wson only): the clients are subscribed to T topics (`j`, client i to topic
# i mod T) and each "broadcast" is a publication (`x`) to a random topic, reaching N/T clients.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

server=wson clients=1000 extra=100 size=100 window=1 base=10 topics=0
while [ $# -gt 0 ]; do
    case "$1" in
    --server) server="$2" ;;
    --clients) clients="$2" ;;
    --broadcasts) extra="$2" ;;
    --size) size="$2" ;;
    --window) window="$2" ;;
    --topics) topics="$2" ;;
    *)
        sed -n '2,18p' "$0" >&2
        exit 2
        ;;
    esac
    shift 2
done
command -v valgrind >/dev/null || {
    echo "bench: valgrind is not installed (apt-get install valgrind)" >&2
    exit 1
}
build_all
work="$(mktemp -d)"
trap 'kill -KILL "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
proto=ws
[ "$server" = raw ] && proto=raw
group_args=() per_message="$clients" what=broadcasts
if [ "$topics" -gt 0 ]; then
    [ "$server" = wson ] || { echo "bench: --topics needs --server wson" >&2; exit 2; }
    group_args=(--topics "$topics") per_message=$((clients / topics)) what="publications to $topics topics"
fi

# instructions BROADCASTS: total Ir of one run.
instructions() {
    local out="$work/callgrind.out.$1"
    start_server "$server" 0 "$work" valgrind --tool=callgrind --callgrind-out-file="$out"
    "$bench_target/wsbench" drive --proto "$proto" --ws "$server_ws" --control "$server_control" \
        --clients "$clients" --broadcasts "$1" --window "$window" --size "$size" --gen-core 1 \
        "${group_args[@]}" >&2
    sleep 0.5
    stop_server
    sed -n 's/^totals: *\([0-9]*\).*/\1/p; s/^summary: *\([0-9]*\).*/\1/p' "$out" | head -1
}

echo "bench: $server under callgrind, $clients clients, $base then $((base + extra)) $what of $size bytes, window $window" >&2
low=$(instructions "$base")
high=$(instructions "$((base + extra))")
deliveries=$((per_message * extra))
awk -v l="$low" -v h="$high" -v d="$deliveries" -v s="$server" -v c="$clients" -v w="$window" -v z="$size" 'BEGIN {
    printf "%s: %.0f instructions per delivered message (%d clients, %d-byte messages, window %d; Ir %.0f -> %.0f over %.0f deliveries)\n", s, (h - l) / d, c, z, w, l, h, d
}'
