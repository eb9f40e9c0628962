#!/usr/bin/env bash
# First run from a checkout, on a fresh Debian with only a Rust toolchain:
# installs the system packages the build needs (with sudo when not root),
# builds the release binaries and starts the agent in the foreground. Any
# arguments go to cryptoid-agent (see `cryptoid-agent --help`).
#
#   packaging/first-run.sh [--no-dbus] [--data-dir DIR] …
#
# The packages named here are a subset of tests/run.sh's; .ci/run checks
# that (tests/check-deps.sh), so the two lists cannot drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the build needs, by the command (or `file:` path) that shows it is there:
# a C compiler and libc headers (crates with C parts, linking), pkg-config,
# libpcsclite (the YubiKey backend talks to pcscd) and the TSS 2.0
# libraries (the TPM wrap mode, through tss-esapi).
declare -A FIRST_RUN_DEPS=([cc]=gcc [file:/usr/include/stdio.h]=libc6-dev [pkg-config]=pkg-config
                          [file:/usr/include/PCSC/winscard.h]=libpcsclite-dev
                          [file:/usr/include/tss2/tss2_esys.h]=libtss2-dev)

# shellcheck source=install-missing.sh
. packaging/install-missing.sh
install_missing FIRST_RUN_DEPS

echo "== cargo build --release (a few minutes the first time)" >&2
cargo build --release --workspace --locked

args=()
# A root shell in a container often has no XDG_RUNTIME_DIR: pick a private
# socket directory instead of failing.
if [ -z "${XDG_RUNTIME_DIR:-}" ] && [[ " $* " != *" --socket "* ]]; then
    dir="${TMPDIR:-/tmp}/cryptoid-agent-$(id -u)"
    mkdir -p -m 0700 "$dir"
    args+=(--socket "$dir/agent.sock")
    echo "== XDG_RUNTIME_DIR is not set: the socket is $dir/agent.sock" >&2
fi
echo "== starting cryptoid-agent in the foreground (Ctrl-C stops it)" >&2
exec ./target/release/cryptoid-agent "${args[@]}" "$@"
