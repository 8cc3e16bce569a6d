#!/usr/bin/env bash
# Where the server's CPU goes during a fan-out: perf samples (cpu-clock, so it works where
# hardware counters do not) of the server while `wsbench drive` runs a fixed fan-out.
#
#   bench/perf.sh [--server wson|raw|tt] [--clients N] [--broadcasts M | --direct M]
#                 [--size BYTES] [--window W] [--topics T | --users-of K] [--wamp]
#
# Defaults: wson, 10,000 clients, 2,000 broadcasts of 100 bytes, window 32; `--direct M`
# sends M direct messages to clients picked at random instead. wson only: `--topics T`
# subscribes the clients to T topics and makes the M broadcasts publications to random
# topics; `--users-of K` gives K clients each user and makes them `u` to random users.
# `--wamp` (issue 11; with `--topics T`, default 1): the clients are WAMP sessions (wamp.2.json)
# subscribed with SUBSCRIBE, and the M publications are PUBLISH from one more session. Prints the top
# of `perf report` (self time per symbol, kernel included) and the number of writev calls
# per delivery (handshake responses included), and leaves perf.data in bench/out/.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

server=wson clients=10000 broadcasts=2000 direct=0 size=100 window=32 group_args=() wamp=0
while [ $# -gt 0 ]; do
    case "$1" in
    --server) server="$2" ;;
    --clients) clients="$2" ;;
    --broadcasts) broadcasts="$2" ;;
    --direct) direct="$2" ;;
    --size) size="$2" ;;
    --window) window="$2" ;;
    --topics | --users-of) group_args=("$1" "$2") ;;
    --wamp)
        wamp=1
        shift
        continue
        ;;
    *)
        sed -n '2,16p' "$0" >&2
        exit 2
        ;;
    esac
    shift 2
done
if [ "$wamp" = 1 ]; then
    [ ${#group_args[@]} -eq 0 ] && group_args=(--topics 1)
    group_args+=(--wamp)
fi
build_all
work="$(mktemp -d)"
trap 'kill -KILL "${server_pid:-}" "${perf_pid:-}" "${stat_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$bench_dir/out"
data="$bench_dir/out/perf-$server.data"
proto=ws
[ "$server" = raw ] && proto=raw
start_server "$server" 0 "$work"
# The profile covers the connect storm too; 10,000 handshakes take well under a second of
# the run. For call chains through wson's frames use `--call-graph dwarf` by hand.
perf record -e cpu-clock -F 4999 -g -o "$data" -p "$server_pid" 2>"$work/perf.log" &
perf_pid=$!
# Counting writev calls tells how many frames each kernel send carried.
perf stat -e syscalls:sys_enter_writev -x, -o "$work/writev.csv" -p "$server_pid" &
stat_pid=$!
sleep 0.3
"$bench_target/wsbench" drive --proto "$proto" --ws "$server_ws" --control "$server_control" \
    --clients "$clients" --broadcasts "$broadcasts" --direct "$direct" --window "$window" --size "$size" --gen-core 1 \
    "${group_args[@]}" |
    tee "$work/drive.log"
kill -INT "$perf_pid" "$stat_pid"
wait "$perf_pid" "$stat_pid" || true
stop_server
echo "== share of samples by binary (kernel vs server vs libc)"
perf report -i "$data" --no-children --sort dso -g none --stdio 2>/dev/null | grep '%' | head -6
echo "== symbols by self time"
perf report -i "$data" --no-children --sort symbol -g none --percent-limit 0.7 --stdio 2>/dev/null |
    grep '%' | head -40
writevs="$(awk -F, '/sys_enter_writev/ { print $1 }' "$work/writev.csv")"
delivered="$(sed -n 's/.*delivered=\([0-9]*\).*/\1/p' "$work/drive.log")"
# tt-server sends with write(2), not writev: no figure then.
if [[ "$writevs" =~ ^[1-9][0-9]*$ && "$delivered" =~ ^[1-9][0-9]*$ ]]; then
    echo "== kernel sends: $writevs writev calls for $delivered deliveries" \
        "($(awk -v d="$delivered" -v w="$writevs" 'BEGIN { printf "%.2f", d / w }') messages per writev)"
fi
echo "bench: full profile in $data (perf report -i $data)"
