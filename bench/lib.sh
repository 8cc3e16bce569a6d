# Shared by run.sh, callgrind.sh and perf.sh: paths, the release build, and starting one
# server under test in the background (optionally under a wrapper such as valgrind).
# shellcheck shell=bash

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root_dir="$(dirname "$bench_dir")"
root_target="${CARGO_TARGET_DIR:-$root_dir/target}/release"
bench_target="${CARGO_TARGET_DIR:-$bench_dir/target}/release"
secret="bench-secret-0123456789abcdef"

build_all() {
    echo "bench: building wson (release)" >&2
    (cd "$root_dir" && cargo build --release --bin wson) >&2
    echo "bench: building the harness, raw-server and tt-server (release)" >&2
    (cd "$bench_dir" && cargo build --release) >&2
}

install_peers() {
    echo "bench: installing the Node.js peers (npm ci)" >&2
    (cd "$bench_dir/peers" && npm ci --no-audit --no-fund --ignore-scripts --omit=optional) >&2
}

# Crossbar.io, the WAMP peer of issue 11: PyPI's crossbar, every package pinned in
# tests/clients/requirements-crossbar.txt (the same Crossbar the parity tests compare with),
# in its own venv (peers/.crossbar-venv, not committed).
# Idempotent: skipped while the venv has crossbar and was made from the same pins.
crossbar_venv="$bench_dir/peers/.crossbar-venv"
crossbar_bin="$crossbar_venv/bin/crossbar"
install_crossbar() {
    local pins="$bench_dir/../tests/clients/requirements-crossbar.txt"
    local stamp="$crossbar_venv/.pins" python="${PYTHON:-python3}"
    if [ -x "$crossbar_bin" ] && [ -f "$stamp" ] && cmp -s "$pins" "$stamp"; then
        return 0
    fi
    echo "bench: installing Crossbar.io into $crossbar_venv (pip, about a minute)" >&2
    rm -rf "$crossbar_venv"
    "$python" -m venv "$crossbar_venv" >&2
    "$crossbar_venv/bin/pip" install --quiet --disable-pip-version-check -r "$pins" >&2
    "$crossbar_bin" version >/dev/null 2>&1 || {
        echo "bench: crossbar does not run after installing it" >&2
        return 1
    }
    cp "$pins" "$stamp"
}

# wants_crossbar ARGS...: true unless the arguments leave the WAMP workloads or Crossbar out.
wants_crossbar() {
    local previous=""
    for arg in "$@"; do
        case "$arg" in
        --no-wamp | --issue10-only | --cluster | --cluster-57k | --cluster-cost | --deflate) return 1 ;;
        esac
        if [ "$previous" = --servers ] && [[ ",$arg," != *,crossbar,* && ",$arg," != *,xbar,* ]]; then
            return 1
        fi
        previous="$arg"
    done
    return 0
}

# cluster_run ARGS...: true when the arguments ask for the cluster workloads (issue 13), which
# run on wson alone.
cluster_run() {
    local arg
    for arg in "$@"; do
        case "$arg" in
        --cluster | --cluster-57k | --cluster-cost) return 0 ;;
        esac
    done
    return 1
}

# deflate_run ARGS...: true when the arguments ask for the permessage-deflate workloads
# (issue 14), which run on wson alone.
deflate_run() {
    local arg
    for arg in "$@"; do
        [ "$arg" = --deflate ] && return 0
    done
    return 1
}

# storm_run ARGS...: true when the arguments ask for the reconnect storm (issue 15), which
# runs on wson alone through `wsbench storm`.
storm_run() {
    local arg
    for arg in "$@"; do
        [ "$arg" = --storm ] && return 0
    done
    return 1
}

# require_redis: the cluster workloads start a redis-server of their own (the harness's
# --redis-server, redis-server on PATH by default).
require_redis() {
    if ! command -v redis-server >/dev/null; then
        echo "bench: redis-server not found (tests/install-tools.sh installs it)" >&2
        return 1
    fi
}

# start_server KIND CORE WORKDIR [WRAPPER...]: starts wson|raw|tt pinned to CORE, writes
# its pid to $server_pid and its addresses to $server_ws and $server_control.
start_server() {
    local kind="$1" core="$2" work="$3"
    shift 3
    local log="$work/server.log"
    : >"$log"
    case "$kind" in
    wson)
        cat >"$work/wson.toml" <<CONF
servers = ["tcp://127.0.0.1:0"]
control = "tcp://127.0.0.1:0"
pid = "$work/wson.pid"
log_file = "$work/wson.log"
secret = "$secret"
origins = ["*"]
log_level = "info"
max_connections = 20000
# Long enough that no keepalive ping lands inside a measured run.
ping_interval = 3600
# perf.sh --wamp: a WAMP session per client, and one to publish.
[wamp]
realms = ["realm1"]
max_sessions = 20000
CONF
        taskset -c "$core" "$@" "$root_target/wson" start -c "$work/wson.toml" >"$log" 2>&1 &
        ;;
    raw) taskset -c "$core" "$@" "$bench_target/raw-server" >"$log" 2>&1 & ;;
    tt) taskset -c "$core" "$@" "$bench_target/tt-server" --secret "$secret" >"$log" 2>&1 & ;;
    *)
        echo "bench: unknown server $kind (wson, raw or tt)" >&2
        return 2
        ;;
    esac
    server_pid=$!
    local i
    for i in $(seq 1 600); do
        if [ "$kind" = wson ]; then
            server_ws=$(sed -n 's/.*listening kind=websocket endpoint=tcp:\/\/\([^ ]*\).*/\1/p' "$log" | head -1)
            server_control=$(sed -n 's/.*listening kind=control endpoint=tcp:\/\/\([^ ]*\).*/\1/p' "$log" | head -1)
            grep -q ' started pid=' "$log" || server_ws=""
        else
            server_ws=$(sed -n 's/^listening ws=\([^ ]*\).*/\1/p' "$log" | head -1)
            server_control=$(sed -n 's/^listening .*control=\([^ ]*\).*/\1/p' "$log" | head -1)
        fi
        if [ -n "$server_ws" ] && [ -n "$server_control" ]; then
            return 0
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "bench: $kind exited during startup:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "bench: $kind did not start within 60 s:" >&2
    cat "$log" >&2
    return 1
}

# stop_server: SIGTERM (callgrind writes its profile on the way out), then wait.
stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}
