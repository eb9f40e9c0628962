#!/usr/bin/env bash
# The README's "through the agent" figures, in one go (not in CI): a release
# agent on a temp dir with tests/bench.toml, loaded by `cryptoidctl bench`
# over the socket (1 and 8 connections, and 1 with both pinned to one CPU),
# over D-Bus (a private dbus-daemon; 1 connection with 1 and 4 calls in
# flight, and 4 connections) and, when SoftHSM2
# is installed, with keys on a fresh SoftHSM2 token (1 and 4 connections).
# Beside them, in the same run: OpenSSH's ssh-agent (Debian openssh-client)
# with an Ed25519 key, loaded by the same bench client over the same kind of
# socket (sign at 1 and 8 connections, and REQUEST_IDENTITIES, its no-crypto
# round trip), and the agent's own round trip (agent.hello).
# Prints one JSON report a line, then a summary table with each figure as a
# ratio to its peer or floor.
#
# Then the scale section (tests/scale.py): the room view fed to a
# 50,000-member room, disk bytes per observe and per signature, sign p99
# in another room during a feed, RSS under a 500,000-join flood and after
# a restart, each beside its floor from the same run.
#
#   tests/perf.sh [SECONDS]      default 5 s a run
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-5}
cargo build --release --bins --locked -q
bin=$PWD/target/release
work=$(mktemp -d)
cleanup() { kill "${agent:-}" "${bus:-}" "${sshagent:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export CRYPTOID_AUTH_SOCK=$work/run/agent.sock
module=/usr/lib/softhsm/libsofthsm2.so

# A private session bus, so the agent serves D-Bus too.
dbus-daemon --session --address="unix:path=$work/bus" --nofork --print-address >"$work/bus.addr" &
bus=$!
for _ in $(seq 50); do [ -s "$work/bus.addr" ] && break; sleep 0.1; done
export DBUS_SESSION_BUS_ADDRESS=$(head -n1 "$work/bus.addr")

# SoftHSM2 token for the pkcs11 runs.
if [ -e "$module" ]; then
    mkdir -p "$work/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$work/softhsm2.conf"
    export SOFTHSM2_CONF=$work/softhsm2.conf
    softhsm2-util --init-token --free --label cryptoid --pin 123456 --so-pin 87654321 >/dev/null
    echo 123456 >"$work/pin"
fi

# The peer: a private ssh-agent with one Ed25519 key.
ssh-agent -a "$work/ssh.sock" -D >/dev/null 2>&1 &
sshagent=$!
for _ in $(seq 50); do [ -S "$work/ssh.sock" ] && break; sleep 0.1; done
ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
SSH_AUTH_SOCK=$work/ssh.sock ssh-add -q "$work/id_ed25519"

"$bin/cryptoid-agent" --socket "$CRYPTOID_AUTH_SOCK" --data-dir "$work/data" --config tests/bench.toml \
    >"$work/agent.out" 2>"$work/agent.log" &
agent=$!
for _ in $(seq 100); do [ -S "$CRYPTOID_AUTH_SOCK" ] && break; sleep 0.1; done
echo "perf passphrase" | "$bin/cryptoidctl" unlock --passphrase-file - >/dev/null

run() { "$bin/cryptoidctl" bench --seconds "$seconds" --json "$@" | tee -a "$work/reports"; }
run --connections 1 --ssh-agent "$work/ssh.sock" --ssh-op identities
run --connections 1 --op hello
run --connections 1 --ssh-agent "$work/ssh.sock" --ssh-op sign
run --connections 8 --ssh-agent "$work/ssh.sock" --ssh-op sign
run --connections 1
run --connections 1 --pipeline 16
run --connections 8
# Pinned: the agent's threads and the bench on CPU 0.
taskset -a -p -c 0 "$agent" >/dev/null
taskset -c 0 "$bin/cryptoidctl" bench --seconds "$seconds" --json --connections 1 | sed 's/^{/{"pinned":true,/' | tee -a "$work/reports"
taskset -a -p -c 0-1 "$agent" >/dev/null
run --connections 1 --transport dbus --op ping
run --connections 1 --transport dbus
run --connections 1 --transport dbus --pipeline 4
run --connections 4 --transport dbus
if [ -e "$module" ]; then
    "$bin/cryptoidctl" backend init pkcs11 --module "$module" --token cryptoid --pin-file "$work/pin" >/dev/null
    run --connections 1 --backend pkcs11 --module "$module" --token cryptoid --pin-file "$work/pin"
    run --connections 4 --backend pkcs11 --module "$module" --token cryptoid --pin-file "$work/pin"
fi

echo
python3 - "$work/reports" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def peer(op, conns):
    return next((r for r in rows if r.get("peer") == "ssh-agent" and r["op"] == op and r["connections"] == conns), None)
print(f"{'run':<40} {'per s':>9} {'p50 us':>7} {'p99 us':>7}  ratio")
for r in rows:
    if "peer" in r:
        name = f"{r['peer']} {r['op']} {r['connections']} conn"
        ratio = ""
        if r["peer"] == "cryptoid-agent":
            p = peer("request_identities", r["connections"])
            if p and r["ops_per_sec"]:
                ratio = f"round trip {p['ops_per_sec'] / r['ops_per_sec']:.2f}x ssh-agent's REQUEST_IDENTITIES"
        print(f"{name:<40} {r['ops_per_sec']:>9,.0f} {r['p50_us']:>7} {r['p99_us']:>7}  {ratio}")
        continue
    name = f"{r['transport']} {r['backend']} {r['connections']} conn" + (" pinned" if r.get("pinned") else "") + (f" pipeline {r['pipeline']}" if r.get("pipeline", 1) > 1 else "")
    ratio = f"{r['ratio_to_floor']:.2f}x floor ({r['floor_sigs_per_sec']:,.0f}/s)"
    p = peer("sign", r["connections"]) if r["transport"] == "socket" and r["backend"] == "soft" and not r.get("pinned") and r.get("pipeline", 1) == 1 else None
    if p:
        ratio += f", {r['sigs_per_sec'] / p['ops_per_sec']:.1f}x ssh-agent's sign"
    if r["backend"] == "pkcs11":
        ratio += f", {1e6 / r['sigs_per_sec'] - 1e6 / r['floor_sigs_per_sec']:.0f} us a signature over the token"
    ping = next((q for q in rows if q.get("peer") == "dbus-daemon" and q["connections"] == 1), None)
    if r["transport"] == "dbus" and ping and r["connections"] == 1 and r.get("pipeline", 1) == 1:
        ratio += f", {r['sigs_per_sec'] / ping['ops_per_sec']:.2f}x the bus's ping"
    print(f"{name:<40} {r['sigs_per_sec']:>9,.0f} {r['p50_us']:>7} {r['p99_us']:>7}  {ratio}")
PY

echo
echo "== scale (tests/scale.py)"
python3 tests/scale.py "$bin" "$work/scale" --seconds "$seconds"
