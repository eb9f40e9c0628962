//! `virtual-piv --port N --state FILE [--serial N] [--version X.Y.Z]`:
//! a virtual YubiKey PIV card for the tests, plugged into pcscd's vpcd
//! reader on `port`. The card's keys live in FILE (created on first use);
//! killing the process pulls the card out, running it again puts it back.

use cryptoid_tests::vcard::{self, state::CardState};
use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("virtual-piv: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut path, mut state) = (vcard::FIRST_PORT, None::<PathBuf>, CardState::default());
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--state" => path = Some(value()?.into()),
            "--serial" => state.serial = value()?.parse().map_err(|e| format!("--serial: {e}"))?,
            "--version" => {
                let v: Vec<u8> = value()?.split('.').filter_map(|p| p.parse().ok()).collect();
                state.version = v.try_into().map_err(|_| "--version: X.Y.Z".to_owned())?;
            }
            "--pin" => state.pin = value()?,
            "--touch-ms" => state.touch_ms = value()?.parse().map_err(|e| format!("--touch-ms: {e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let path = path.ok_or("--state FILE is required")?;
    if !path.exists() {
        state.save(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    vcard::serve(port, &path).map_err(|e| e.to_string())
}
