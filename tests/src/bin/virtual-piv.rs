//! `virtual-piv --port N --state FILE [--serial N] [--version X.Y.Z]
//! [--pin P] [--mgm-key HEX | --protected-mgm-key HEX] [--touch-ms MS]`:
//! a virtual YubiKey PIV card for the tests, plugged into pcscd's vpcd
//! reader on `port`. The card's keys live in FILE (created on first use);
//! killing the process pulls the card out, running it again puts it back.

use cryptoid_agent::keystore::piv::tlv;
use cryptoid_tests::vcard::{self, card, state::CardState};
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
            // A management key of the user's, kept only in their head...
            "--mgm-key" => state.mgm_key = value()?,
            // ...or PIN-protected: stored on the card (PRINTED object, read
            // after the PIN), as `ykman ... change-management-key --protect`
            // leaves it.
            "--protected-mgm-key" => {
                let key = value()?;
                let bytes = card::hex(&key).ok_or("--protected-mgm-key: hex")?;
                let printed = tlv::tlv(&[0x88], &tlv::tlv(&[0x89], &bytes));
                state.objects.insert(0x5f_c109, card::to_hex(&printed));
                state.mgm_key = key;
            }
            "--touch-ms" => state.touch_ms = value()?.parse().map_err(|e| format!("--touch-ms: {e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    // The factory management key is 3DES before firmware 5.7, AES-192 after.
    if state.version < [5, 7, 0] {
        state.mgm_alg = cryptoid_agent::keystore::piv::alg::TDES;
    }
    let path = path.ok_or("--state FILE is required")?;
    if !path.exists() {
        state.save(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    vcard::serve(port, &path).map_err(|e| e.to_string())
}
