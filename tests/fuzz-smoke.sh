#!/usr/bin/env bash
# A short run of every fuzz target (fuzz/, cargo-fuzz + libFuzzer), from the
# seeds written by fuzz/seeds.py plus whatever corpus is already there. Needs
# a nightly toolchain; without one it says so and does nothing. The long runs
# behind the README's figures use `cargo +nightly fuzz run TARGET` (release
# build, AddressSanitizer).
#
#   tests/fuzz-smoke.sh [SECONDS]      default 20 s a target
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-20}
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz smoke skipped: no nightly toolchain (cargo-fuzz needs one)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
python3 seeds.py
# A debug build without a sanitizer builds faster than the release ASan one;
# debug assertions still catch overflows.
flags=(--dev --sanitizer none)
cargo +nightly fuzz build "${flags[@]}"
for target in $(cargo +nightly fuzz list); do
    echo "== fuzz $target for ${seconds}s"
    log=$(mktemp)
    status=0
    cargo +nightly fuzz run "${flags[@]}" "$target" -- -max_total_time="$seconds" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    rm -f "$log"
done
