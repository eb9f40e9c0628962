#!/usr/bin/env bash
# Where a request's microseconds go (not in CI): a release agent on a temp
# dir with tests/bench.toml, loaded by `cryptoidctl bench` on one connection,
# while `perf record` samples the agent (the software clock: this VM has no
# hardware counters) and /proc tells the CPU time the agent and the bench
# spent. Prints the agent's CPU µs per request, split by area (kernel, JSON,
# signing crypto, journal, runtime, allocator, ...), and the top symbols.
#
#   tests/profile.sh [SECONDS] [OP]    OP: sign (default), hello, pipeline
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-5}
op=${2:-sign}
command -v perf >/dev/null || { echo "perf is needed (Debian: linux-perf)" >&2; exit 2; }
cargo build --release --bins --locked -q
bin=$PWD/target/release
work=$(mktemp -d)
cleanup() { kill "${agent:-}" 2>/dev/null && wait "${agent:-}" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export CRYPTOID_AUTH_SOCK=$work/run/agent.sock

"$bin/cryptoid-agent" --socket "$CRYPTOID_AUTH_SOCK" --data-dir "$work/data" --config tests/bench.toml \
    >"$work/agent.out" 2>"$work/agent.log" &
agent=$!
for _ in $(seq 100); do [ -S "$CRYPTOID_AUTH_SOCK" ] && break; sleep 0.1; done
echo "perf passphrase" | "$bin/cryptoidctl" unlock --passphrase-file - >/dev/null

case $op in
    sign) args=(--connections 1) ;;
    hello) args=(--connections 1 --op hello) ;;
    pipeline) args=(--connections 1 --pipeline 16) ;;
    *) echo "unknown op $op" >&2; exit 2 ;;
esac

# CPU ticks (utime + stime) of a process and all its threads.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks "$agent")
perf record -q -F 1999 -e cpu-clock -p "$agent" -o "$work/perf.data" -- sleep "$((seconds + 1))" 2>/dev/null &
recorder=$!
TIMEFORMAT='%U %S'
{ time "$bin/cryptoidctl" bench --seconds "$seconds" --floor-seconds 1 --json "${args[@]}" >"$work/report"; } 2>"$work/bench.time"
after=$(ticks "$agent")
wait "$recorder" || true
cat "$work/report"

perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio --percent-limit 0 2>/dev/null \
    | grep -E '^ +[0-9.]+%' >"$work/symbols" || true
python3 - "$work/report" "$work/symbols" "$((after - before))" "$hz" "$work/bench.time" "$op" <<'PY'
import json, re, sys
report = json.loads(open(sys.argv[1]).read())
lines = open(sys.argv[2]).read().splitlines()
agent_ticks, hz = int(sys.argv[3]), int(sys.argv[4])
user, sys_ = (float(x) for x in open(sys.argv[5]).read().split()[-2:])
op = sys.argv[6]
n = report.get("signatures") or report.get("ops") or 0
if not n:
    sys.exit("the bench did nothing")
agent_us = agent_ticks / hz * 1e6 / n
# The bench's CPU includes its 1 s floor afterwards (sign only): take it out.
floor_s = 1.0 if "floor_sigs_per_sec" in report else 0.0
bench_us = max(0.0, user + sys_ - floor_s) * 1e6 / n
rate = report.get("sigs_per_sec") or report.get("ops_per_sec")
print(f"\n{op}: {n} requests, {rate:.0f}/s = {1e6 / rate:.1f} µs each on the wall")
print(f"  CPU per request: agent {agent_us:.1f} µs, bench client {bench_us:.1f} µs")
if "floor_sigs_per_sec" in report:
    print(f"  in-process floor: {1e6 / report['floor_sigs_per_sec']:.1f} µs a signature")

# Areas by symbol (first match wins); the rest is "other".
areas = [
    ("kernel: socket, epoll, futex, scheduler", lambda d, s: d.startswith("[kernel")),
    ("journal (entry, chain hash, write)", lambda d, s: "journal" in s),
    ("ed25519 + curve arithmetic", lambda d, s: re.search(r"ed25519|curve25519|scalar|edwards|field|backend::", s)),
    ("SHA-2", lambda d, s: re.search(r"sha2|sha256|sha512|compress", s)),
    ("JSON parse", lambda d, s: re.search(r"json::parse|Parser|from_slice|serde_impl|deserial|visit", s)),
    ("JSON encode (canonical, serde_json)", lambda d, s: re.search(r"serialize|write_object|write_value|canonical|serde_json|escape", s)),
    ("allocator (malloc, free, memcpy)", lambda d, s: re.search(r"malloc|free|realloc|memcpy|memmove|memset|cfree|_int_", s)),
    ("tokio runtime", lambda d, s: "tokio" in s),
    ("policy, room view, registry", lambda d, s: re.search(r"policy|rooms|registry|decide|rate|facts", s)),
    ("sign path (checks, prepare, redact)", lambda d, s: re.search(r"sign|event::|redact|check|prepare", s)),
]
totals = {name: 0.0 for name, _ in areas}
totals["other"] = 0.0
top = []
for line in lines:
    m = re.match(r"\s+([0-9.]+)%\s+(\S+)\s+\[[^\]]\]\s+(.*)", line)
    if not m:
        continue
    pct, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    top.append((pct, dso, sym))
    for name, match in areas:
        if match(dso, sym):
            totals[name] += pct
            break
    else:
        totals["other"] += pct
print("\n  agent CPU by area (µs per request, share of samples):")
for name, pct in sorted(totals.items(), key=lambda kv: -kv[1]):
    if pct >= 0.5:
        print(f"    {agent_us * pct / 100:6.1f} µs  {pct:5.1f}%  {name}")
print("\n  top symbols:")
for pct, dso, sym in [t for t in top if not t[1].startswith("[kernel")][:int(__import__("os").environ.get("TOP", "25"))]:
    print(f"    {pct:5.1f}%  {dso:24.24}  {sym[:100]}")
PY
