#!/usr/bin/env bash
# The README's first command, run as a new user would: packaging/first-run.sh
# (packages already there, so it installs nothing) builds the release
# binaries and starts the agent in the foreground; this waits for it to
# announce its socket, asks it agent.hello through cryptoidctl, and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
log="$work/log"
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
# No XDG_RUNTIME_DIR, as in a root shell of a fresh container.
env -u XDG_RUNTIME_DIR TMPDIR="$work" packaging/first-run.sh --no-dbus --data-dir "$work/data" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    grep -q "CRYPTOID_AUTH_SOCK=" "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "first-run.sh exited before the agent listened" >&2; exit 1; }
    sleep 1
done
sock=$(grep -o "CRYPTOID_AUTH_SOCK=[^ ;]*" "$log" | head -1 | cut -d= -f2)
[ -S "$sock" ] || { cat "$log"; echo "no socket announced" >&2; exit 1; }
CRYPTOID_AUTH_SOCK="$sock" ./target/release/cryptoidctl status >"$work/status" 2>&1 \
    || { cat "$log" "$work/status"; exit 1; }
grep -q "locked" "$work/status" || { cat "$work/status"; exit 1; }
echo "first run: ok (agent at $sock answered)"
