#!/usr/bin/env bash
# Starts pcscd for the YubiKey tests with a private reader configuration:
# one vsmartcard-vpcd reader with two slots, whose driver listens on TCP
# ports 40000 and 40001 (on all interfaces: vpcd's choice) for the
# `virtual-piv` cards the tests plug in.
#
#   tests/pcscd.sh start DIR   # prints the pcscd pid; logs to DIR/pcscd.log
#   tests/pcscd.sh stop DIR
#
# Only one pcscd can run on a machine (its socket is /run/pcscd/pcscd.comm,
# whatever PCSCLITE_CSOCK_NAME says), so `start` stops a running one first:
# on a desktop, systemd's pcscd.socket starts the system one again on the
# next use.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
driver=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
case "$cmd" in
start)
    [ -e "$driver" ] || { echo "pcscd.sh: $driver missing (package vsmartcard-vpcd)" >&2; exit 1; }
    mkdir -p "$dir/reader.conf.d"
    cat > "$dir/reader.conf.d/cryptoid-vpcd" <<CONF
FRIENDLYNAME "cryptoid virtual PIV"
DEVICENAME   /dev/null:0x9C40
LIBPATH      $driver
CHANNELID    0x9C40
CONF
    if pgrep -x pcscd >/dev/null; then
        echo "pcscd.sh: stopping the running pcscd (only one can run)" >&2
        pkill -x pcscd || true
        for _ in $(seq 50); do pgrep -x pcscd >/dev/null || break; sleep 0.1; done
    fi
    pcscd --foreground --info -c "$dir/reader.conf.d" > "$dir/pcscd.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        grep -q "daemon ready" "$dir/pcscd.log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { cat "$dir/pcscd.log" >&2; exit 1; }
        sleep 0.1
    done
    grep -q "daemon ready" "$dir/pcscd.log" || { echo "pcscd.sh: pcscd did not start" >&2; cat "$dir/pcscd.log" >&2; exit 1; }
    echo "$pid" > "$dir/pcscd.pid"
    echo "$pid"
    ;;
stop)
    [ -f "$dir/pcscd.pid" ] && kill "$(cat "$dir/pcscd.pid")" 2>/dev/null || true
    ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
