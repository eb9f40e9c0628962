#!/usr/bin/env bash
# Start-up time and memory of a release agent holding many keys (not in CI).
#
#   tests/startup.sh [KEYS] [RUNS]      default 10,000 keys, 5 runs
#
# Makes KEYS one-time cryptoIDs (otk generate, 1,000 a call), then restarts
# the agent RUNS times and reports, as medians: the time from exec until it
# announces its socket, the time `unlock` takes (Argon2id dominates), the
# time the first `otk list` of all keys takes, and the agent's RSS after it.
set -euo pipefail
cd "$(dirname "$0")/.."

keys=${1:-10000}
runs=${2:-5}
cargo build --release --bins --locked -q
bin=$PWD/target/release
work=$(mktemp -d)
trap 'kill "${agent:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export CRYPTOID_AUTH_SOCK=$work/run/agent.sock
echo "soak passphrase" >"$work/pass"

ms() { echo $(( $(date +%s%N) / 1000000 )); }

start_agent() {
    local t0 line
    t0=$(ms)
    coproc AGENT { exec "$bin/cryptoid-agent" --no-dbus --socket "$CRYPTOID_AUTH_SOCK" \
        --data-dir "$work/data" --config tests/bench.toml 2>>"$work/agent.log"; }
    agent=$AGENT_PID
    read -r line <&"${AGENT[0]}"
    [[ $line == CRYPTOID_AUTH_SOCK=* ]] || { echo "agent did not start" >&2; cat "$work/agent.log" >&2; exit 1; }
    echo $(( $(ms) - t0 ))
}

stop_agent() { kill "$agent"; wait "$agent" 2>/dev/null || true; }

start_agent >/dev/null
"$bin/cryptoidctl" unlock --passphrase-file "$work/pass" >/dev/null
made=0
while [ "$made" -lt "$keys" ]; do
    n=$(( keys - made < 1000 ? keys - made : 1000 ))
    "$bin/cryptoidctl" otk generate "$n" >/dev/null 2>&1
    made=$(( made + n ))
done
stop_agent
echo "keys: $keys (one-time cryptoIDs), data dir $(du -sh "$work/data" | cut -f1)"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
: >"$work/start" ; : >"$work/unlock" ; : >"$work/list" ; : >"$work/rss"
for _ in $(seq "$runs"); do
    start_agent >>"$work/start"
    t0=$(ms); "$bin/cryptoidctl" unlock --passphrase-file "$work/pass" >/dev/null; echo $(( $(ms) - t0 )) >>"$work/unlock"
    t0=$(ms); count=$("$bin/cryptoidctl" --json otk list | grep -o '"cryptoid"' | wc -l); echo $(( $(ms) - t0 )) >>"$work/list"
    [ "$count" -eq "$keys" ] || { echo "listed $count keys, expected $keys" >&2; exit 1; }
    awk '/^VmRSS:/ {print $2}' "/proc/$agent/status" >>"$work/rss"
    stop_agent
done
echo "start-up to socket: $(median <"$work/start") ms (median of $runs)"
echo "unlock:             $(median <"$work/unlock") ms"
echo "otk list (all):     $(median <"$work/list") ms"
echo "RSS after list:     $(median <"$work/rss") KiB"
