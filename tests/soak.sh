#!/usr/bin/env bash
# Soak test (not in CI): a release agent under steady load for a long time,
# its resident memory sampled; fails when RSS grows by 10 % or more between
# the end of the warm-up and the end of the run.
#
#   tests/soak.sh [SECONDS] [CONNECTIONS]      default 600 s, 8 connections
#
# Load: `cryptoidctl bench` signing fresh PDUs on all connections, plus a
# management client (keys list, journal tail, otk generate, hello) every
# second. RSS is read from /proc/<pid>/status every 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
connections=${2:-8}
warmup=60
[ "$seconds" -gt $((warmup * 2)) ] || { echo "run for more than $((warmup * 2)) s" >&2; exit 2; }

cargo build --release --bins --locked -q
bin=target/release
work=$(mktemp -d)
trap 'kill "${agent:-}" "${mgmt:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export CRYPTOID_AUTH_SOCK=$work/run/agent.sock

"$bin/cryptoid-agent" --no-dbus --socket "$CRYPTOID_AUTH_SOCK" --data-dir "$work/data" \
    --config tests/bench.toml >"$work/agent.out" 2>"$work/agent.log" &
agent=$!
for _ in $(seq 100); do [ -S "$CRYPTOID_AUTH_SOCK" ] && break; sleep 0.1; done
echo "soak passphrase" | "$bin/cryptoidctl" unlock --passphrase-file - >/dev/null

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$agent/status"; }

# The management side of the load.
(
    while kill -0 "$agent" 2>/dev/null; do
        "$bin/cryptoidctl" keys list >/dev/null
        "$bin/cryptoidctl" journal tail --limit 20 >/dev/null
        "$bin/cryptoidctl" otk generate 1 >/dev/null
        "$bin/cryptoidctl" status >/dev/null
        sleep 1
    done
) &
mgmt=$!

"$bin/cryptoidctl" bench --connections "$connections" --seconds "$seconds" --floor-seconds 5 --json >"$work/bench.json" &
bench=$!
echo "soak: ${seconds}s, $connections connections, agent pid $agent"
echo "elapsed_s rss_kib"
start=$(date +%s)
base=""
while kill -0 "$bench" 2>/dev/null; do
    sleep 10
    now=$(( $(date +%s) - start ))
    [ "$now" -le "$seconds" ] || break
    r=$(rss)
    echo "$now $r"
    if [ -z "$base" ] && [ "$now" -ge "$warmup" ]; then base=$r; fi
done
last=$(rss)
wait "$bench"
echo "bench: $(cat "$work/bench.json")"
"$bin/cryptoidctl" journal verify
growth=$(awk -v a="$base" -v b="$last" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')
echo "RSS after warm-up ${base} KiB, at the end ${last} KiB: growth ${growth} %"
awk -v g="$growth" 'BEGIN { exit !(g < 10) }' || { echo "FAIL: RSS grew by 10 % or more" >&2; exit 1; }
echo "PASS"
