//! Harness for the end-to-end tests: finds the real binaries built by
//! `cargo build --workspace --bins` and runs them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The path of a workspace binary next to the test executable
/// (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// Runs `cryptoidctl` with `args`, feeding `stdin`.
pub fn ctl(args: &[&str], stdin: &[u8]) -> Output {
    run(Command::new(bin("cryptoidctl")).args(args), stdin)
}

/// Runs a prepared command to completion with `stdin` as its input.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    // A child that exits early closes its stdin; that is not a test failure.
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("wait")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The shared public vectors, as copied into the protocol crate.
pub mod vectors {
    pub const SPEC: &str = include_str!("../../protocol/tests/vectors/spec.json");
    pub const MSC4080: &str = include_str!("../../protocol/tests/vectors/msc4080.json");
    pub const SPEC_SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    pub const SPEC_PUBLIC: &str = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";
}
