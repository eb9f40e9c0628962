#!/usr/bin/env bash
# Builds target/debian/cryptoid-agent_<version>_<arch>.deb: release binaries,
# man pages and shell completions generated from the binaries' clap
# definitions, then cargo-deb with the metadata in agent/Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb"
    cargo install --locked cargo-deb
fi

cargo build --release --locked --workspace --bins
assets=target/release/package-assets
rm -rf "$assets" && mkdir -p "$assets"
target/release/cryptoid-agent --print-man-page | gzip -9n > "$assets/cryptoid-agent.1.gz"
target/release/cryptoidctl man-page | gzip -9n > "$assets/cryptoidctl.1.gz"
target/release/cryptoidctl completions bash > "$assets/cryptoidctl.bash"
target/release/cryptoidctl completions zsh > "$assets/_cryptoidctl"
target/release/cryptoidctl completions fish > "$assets/cryptoidctl.fish"
cargo deb -p cryptoid-agent --no-build --locked --output target/debian/
