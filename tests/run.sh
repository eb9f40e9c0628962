#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with a Rust toolchain:
# installs the system packages the tests need, then checks formatting and
# lints, builds the binaries the end-to-end tests spawn, and runs every test.
# This is the README's test command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage's line carries the wall clock and the seconds since the start,
# so a CI log shows where the minutes go.
stage() { printf '== [%s +%ds] %s\n' "$(date -u +%H:%M:%S)" "$SECONDS" "$*"; }

# System packages the tests use, by the command that needs them: python3
# launches the agent the way systemd socket activation does; setpriv runs a
# client as another uid; dbus-daemon runs a private session bus for the D-Bus
# tests; systemd-analyze, man and dpkg check the package; SoftHSM2 and
# pkcs11-tool (opensc) are the PKCS#11 token of the PKCS#11 tests; mount
# puts the full-disk test's data directory on a small tmpfs; python3 also
# writes the fuzz seeds; pcscd with the vsmartcard-vpcd reader driver is the
# PC/SC stack of the YubiKey tests (virtual cards), and the agent's YubiKey
# backend builds against libpcsclite (pkg-config finds it). node and npm run
# matrix-js-sdk for the secret-storage interop tests; python3's venv and
# ensurepip make the venv of the Synapse homeserver the sharing tests push
# to and pull from. The desktop tests ask a person through real programs:
# pinentry-tty in a tmux terminal, pinentry-gtk-2 on an Xvfb display
# (and, with pinentry-curses, as the `pinentry` of the newcomer's first
# minute in a terminal, which needs the release build of the first-run stage)
# (clicked with xdotool, photographed with ImageMagick's import), and the
# dunst notification daemon. OpenSSH's ssh-agent is the bench's peer.
# A key is a command (or `file:` a path) whose absence means the package is
# missing. swtpm (with swtpm-tools) is the TPM 2.0 of the TPM tests, and
# tpm2-tools extends its PCRs, clears it and reads its lockout counter;
# the agent's TPM wrap mode builds against libtss2-dev (tss-esapi).
# The build's own needs (cc, libc headers, pkg-config, libpcsclite, libtss2)
# are packaging/first-run.sh's too: tests/check-deps.sh keeps them in step.
declare -A NEEDS=([python3]=python3 [setpriv]=util-linux [dbus-daemon]=dbus-daemon
               [systemd-analyze]=systemd [man]=man-db [dpkg-deb]=dpkg
               [softhsm2-util]=softhsm2 [pkcs11-tool]=opensc [mount]=mount
               [pcscd]=pcscd [pkg-config]=pkg-config [pgrep]=procps [cc]=gcc
               [file:/usr/include/stdio.h]=libc6-dev
               [file:/usr/share/dbus-1/session.conf]=dbus-session-bus-common
               [file:/usr/lib/pcsc/drivers/serial/libifdvpcd.so]=vsmartcard-vpcd
               [file:/usr/include/PCSC/winscard.h]=libpcsclite-dev
               [file:/usr/include/tss2/tss2_esys.h]=libtss2-dev
               [swtpm]=swtpm [swtpm_setup]=swtpm-tools [tpm2_pcrextend]=tpm2-tools
               [node]=nodejs [npm]=npm [python:ensurepip]=python3-venv
               [tmux]=tmux [pinentry-tty]=pinentry-tty [pinentry-gtk-2]=pinentry-gtk2
               [pinentry-curses]=pinentry-curses
               [Xvfb]=xvfb [xdotool]=xdotool [dunst]=dunst [import]=imagemagick
               [ssh-agent]=openssh-client)

# shellcheck source=../packaging/install-missing.sh
. packaging/install-missing.sh
install_missing NEEDS

if ! cargo nextest --version >/dev/null 2>&1; then
    stage "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

stage "cargo fmt --check"
cargo fmt --all -- --check
stage "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The agent without its YubiKey backend (no libpcsclite) and its TPM wrap
# mode (no libtss2) must build clean too.
cargo clippy -p cryptoid-agent --no-default-features --locked -- -D warnings
stage "cargo build (binaries for the end-to-end tests)"
cargo build --workspace --bins --locked
stage "package (.deb build, install, checks)"
tests/package.sh
stage "first run (the README's first command starts an agent)"
tests/first-run.sh
stage "doc tests"
cargo test --workspace --doc --locked
stage "fuzz smoke (each fuzz target briefly; skipped without a nightly toolchain)"
tests/fuzz-smoke.sh 20
stage "matrix-js-sdk for the interop tests (npm ci, pinned in tests/interop/js)"
npm ci --prefix tests/interop/js --no-audit --no-fund --loglevel=error
export CRYPTOID_TEST_JS=1
stage "Synapse for the sharing tests (pip, pinned in tests/synapse.sh)"
tests/synapse.sh install
export CRYPTOID_TEST_SYNAPSE=1
stage "authorization rules against Synapse's event_auth (differential: the kept regressions, a fixed seed, a new seed)"
auth_py=${CRYPTOID_SYNAPSE_VENV:-$HOME/.cache/cryptoid-tests/synapse-venv}/bin/python
"$auth_py" tests/interop/auth_diff.py target/debug/auth-oracle --cases 4000 --seed 1 \
    --regressions tests/interop/auth_regressions.jsonl
"$auth_py" tests/interop/auth_diff.py target/debug/auth-oracle --cases 4000
export CRYPTOID_TEST_DESKTOP=1
stage "pcscd with the virtual readers (YubiKey tests)"
pcsc_dir=$(mktemp -d)
tests/pcscd.sh start "$pcsc_dir" >/dev/null
trap 'tests/pcscd.sh stop "$pcsc_dir"' EXIT
export CRYPTOID_TEST_PCSCD=1
stage "tests (nextest: one process per test; its summary line closes the run)"
cargo nextest run --workspace --locked --no-fail-fast
