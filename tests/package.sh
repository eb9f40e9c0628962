#!/usr/bin/env bash
# Packaging check (part of tests/run.sh): builds the .deb, installs it with
# dpkg on this machine, verifies the installed systemd user units (any output
# of `systemd-analyze verify` fails), renders the man pages, and runs the
# installed binaries against a temporary home: the agent starts, a key is made
# and a PDU is signed and verified.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

echo "== building the .deb"
packaging/build-deb.sh
deb=$(ls -t target/debian/cryptoid-agent_*.deb | head -n 1)
echo "== installing $deb"
"${sudo_cmd[@]}" dpkg -i "$deb"
for f in /usr/bin/cryptoid-agent /usr/bin/cryptoidctl \
         /usr/lib/systemd/user/cryptoid-agent.socket /usr/lib/systemd/user/cryptoid-agent.service \
         /usr/share/dbus-1/services/org.cryptoid.Agent1.service /usr/share/man/man1/cryptoid-agent.1.gz \
         /usr/share/man/man1/cryptoidctl.1.gz /usr/share/bash-completion/completions/cryptoidctl \
         /usr/share/zsh/vendor-completions/_cryptoidctl /usr/share/fish/vendor_completions.d/cryptoidctl.fish \
         /usr/share/doc/cryptoid-agent/config.example.toml; do
    [ -e "$f" ] || { echo "missing after install: $f"; exit 1; }
done
dpkg-deb -f "$deb" Recommends | grep -q pcscd || { echo "Recommends lacks pcscd"; exit 1; }
dpkg-deb -f "$deb" Recommends | grep -q "pinentry-gnome3 | pinentry" || { echo "Recommends lacks pinentry-gnome3 | pinentry"; exit 1; }
dpkg-deb -f "$deb" Depends | grep -q "libtss2-esys" || { echo "Depends lacks libtss2-esys (the TPM wrap mode)"; exit 1; }
dpkg-deb -f "$deb" Recommends | grep -q "libtss2-tcti-device0" || { echo "Recommends lacks libtss2-tcti-device0"; exit 1; }
grep -qx "DeviceAllow=/dev/tpmrm0 rw" /usr/lib/systemd/user/cryptoid-agent.service || { echo "the unit cannot reach the TPM"; exit 1; }

work=$(mktemp -d)
trap 'kill "${agent_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -m 0700 "$work/run"

echo "== systemd-analyze verify (no output allowed)"
out=$(XDG_RUNTIME_DIR="$work/run" systemd-analyze --user verify \
      /usr/lib/systemd/user/cryptoid-agent.socket /usr/lib/systemd/user/cryptoid-agent.service 2>&1) || true
if [ -n "$out" ]; then echo "$out"; exit 1; fi
XDG_RUNTIME_DIR="$work/run" systemd-analyze --user security --offline=true \
    /usr/lib/systemd/user/cryptoid-agent.service | tail -n 1

echo "== man pages render"
for page in cryptoid-agent cryptoidctl; do
    text=$(MANWIDTH=80 man -l "/usr/share/man/man1/$page.1.gz" 2>&1)
    echo "$text" | grep -q "^NAME" || { echo "$page.1 did not render: $text"; exit 1; }
done

echo "== installed binaries against a temporary home"
export HOME="$work/home" XDG_RUNTIME_DIR="$work/run"
mkdir -p "$HOME/.config/cryptoid-agent"
# Trust the installed CLI so the smoke test needs no confirmation prompt.
cat > "$HOME/.config/cryptoid-agent/config.toml" <<'TOML'
[[policy.clients]]
exe = "/usr/bin/cryptoidctl"
sign = "allow"
manage = "allow"
TOML
/usr/bin/cryptoid-agent --no-dbus > "$work/agent.out" 2> "$work/agent.err" &
agent_pid=$!
for _ in $(seq 100); do grep -q CRYPTOID_AUTH_SOCK "$work/agent.out" 2>/dev/null && break; sleep 0.1; done
export CRYPTOID_AUTH_SOCK="$XDG_RUNTIME_DIR/cryptoid-agent/agent.sock"
grep -qx "CRYPTOID_AUTH_SOCK=$CRYPTOID_AUTH_SOCK" "$work/agent.out" || { cat "$work/agent.err"; exit 1; }
echo "smoke passphrase" | /usr/bin/cryptoidctl unlock --passphrase-file -
key=$(/usr/bin/cryptoidctl --json keys create --room '!smoke:example.org' | python3 -c 'import json,sys; print(json.load(sys.stdin)["cryptoid"])')
now=$(python3 -c 'import time; print(int(time.time()*1000))')
cat > "$work/pdu.json" <<JSON
{"auth_events":["\$$(printf 'a%.0s' $(seq 43))"],"content":{"body":"hello from the .deb","msgtype":"m.text"},
 "depth":1,"origin_server_ts":$now,"prev_events":["\$$(printf 'b%.0s' $(seq 43))"],
 "room_id":"!smoke:example.org","sender":"$key","type":"m.room.message"}
JSON
/usr/bin/cryptoidctl sign --room-version org.matrix.msc4080 "$work/pdu.json" > "$work/signed.json"
/usr/bin/cryptoidctl pdu verify --room-version org.matrix.msc4080 --public-key "$key" "$work/signed.json"
/usr/bin/cryptoidctl journal verify
kill "$agent_pid"; wait "$agent_pid" || true
echo "== package: ok"
