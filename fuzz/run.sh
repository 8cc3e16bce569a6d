#!/usr/bin/env bash
# Runs the fuzz targets one after another, SECONDS each (default 60), and stops at the first
# crash with a non-zero exit. Usage: fuzz/run.sh [SECONDS] [TARGET...] (default: every target).
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address, sanitizer coverage);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. New inputs the fuzzer finds go to
# fuzz/target/work-corpus/TARGET (git-ignored); the committed seeds in fuzz/corpus/TARGET are
# only read. A crash input lands in fuzz/artifacts/TARGET/; fuzz/README.md says how it becomes
# a regression test.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
    '' | *[!0-9]* | 0)
        echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
        exit 2
        ;;
esac
shift $(($# > 0 ? 1 : 0))

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."

all_targets=(ws_frame ws_message ws_deflate ws_handshake control_codec control_fields auth_cookie config wamp_message wamp_v1_message access cluster_message http_api resume)
targets=("${@:-${all_targets[@]}}")
for target in "${targets[@]}"; do
    if [[ ! -f "$fuzz_dir/fuzz_targets/$target.rs" ]]; then
        echo "run.sh: no fuzz target $target (targets: ${all_targets[*]})" >&2
        exit 2
    fi
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# Build everything first, so each target's time is spent fuzzing.
cargo fuzz build

logs="$fuzz_dir/target/fuzz-logs"
mkdir -p "$logs"
summary=()
for target in "${targets[@]}"; do
    work="$fuzz_dir/target/work-corpus/$target"
    artifacts="$fuzz_dir/artifacts/$target"
    mkdir -p "$work" "$artifacts"
    log="$logs/$target.log"
    # A dictionary of the format's keywords, where the target has one.
    dict=()
    if [[ -f "$fuzz_dir/dict/$target.dict" ]]; then
        dict=(-dict="$fuzz_dir/dict/$target.dict")
    fi
    echo "== $target: ${seconds}s (log: $log)"
    # -timeout: one input running 10 s is a hang, reported like a crash.
    # -rss_limit_mb also caps a single allocation (libFuzzer's -malloc_limit_mb defaults to
    # it), so a length field that makes us allocate gigabytes is found too.
    if ! cargo fuzz run "$target" "$work" "$fuzz_dir/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        "${dict[@]}" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo
        echo "run.sh: $target FAILED. Input(s) that broke it:" >&2
        ls -t "$artifacts" | head -n 5 | sed "s|^|  $artifacts/|" >&2
        echo "Reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $target <input>; see fuzz/README.md." >&2
        exit 1
    fi
    executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    coverage="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)"
    summary+=("$target: ${executions:-?} executions, ${coverage:-cov: ?} edges, no crash")
done

echo "== all targets passed (${seconds}s each)"
printf '  %s\n' "${summary[@]}"
