//! The TPM-sealed keystore: `backend init soft --wrap-with tpm` (seal, or
//! seal again) and `backend tpm change-pin`.

use crate::secret::{new_secret, read_secret_lines};
use anyhow::Result;
use clap::{Args, Subcommand};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::wire::agent::BackendInfo;
use cryptoid_protocol::wire::backend::{Init, InitParams, TpmChangePin, TpmChangePinParams};
use std::path::PathBuf;

#[derive(Args, Default)]
pub struct SealArgs {
    /// tpm: also bind the seal to these SHA-256 PCRs' current values, e.g.
    /// `--pcrs 7` (Secure Boot state). Off by default: a firmware update
    /// changes PCRs, and the keystore then needs the recovery passphrase.
    #[arg(long, value_name = "N,…", value_delimiter = ',')]
    pub pcrs: Vec<u8>,
    /// tpm: add a recovery passphrase (asked twice), which unlocks the
    /// keystore where the TPM cannot: another machine, a cleared TPM,
    /// changed PCRs. Keep it offline. Sealing again keeps an existing one.
    #[arg(long)]
    pub recovery_passphrase: bool,
    /// tpm: read the recovery passphrase from this file (first line), or
    /// `-` for standard input.
    #[arg(long, value_name = "F")]
    pub recovery_passphrase_file: Option<PathBuf>,
}

impl SealArgs {
    pub fn given(&self) -> bool {
        !self.pcrs.is_empty() || self.recovery_passphrase || self.recovery_passphrase_file.is_some()
    }
}

#[derive(Subcommand)]
pub enum TpmCommand {
    /// Change the PIN of the TPM-sealed keystore. A wrong current PIN counts
    /// against the TPM's dictionary-attack limit, as an unlock does.
    ChangePin {
        /// Read the current and the new PIN from this file (first and
        /// second line), or `-` for standard input.
        #[arg(long, value_name = "F")]
        pin_file: Option<PathBuf>,
    },
}

/// `backend.init soft --wrap-with tpm`: a new PIN, the PCRs, a recovery
/// passphrase if asked for.
pub fn seal(
    c: &mut Client,
    mut params: InitParams,
    a: &SealArgs,
    pin_file: Option<&PathBuf>,
) -> Result<BackendInfo> {
    params.pin = Some(new_secret(pin_file, "New TPM PIN")?.to_string());
    if !a.pcrs.is_empty() {
        params.pcrs = Some(a.pcrs.clone());
    }
    if a.recovery_passphrase || a.recovery_passphrase_file.is_some() {
        let p = new_secret(a.recovery_passphrase_file.as_ref(), "Recovery passphrase (keep it offline)")?;
        params.recovery_passphrase = Some(p.to_string());
    }
    eprintln!("sealing the keystore's key in the TPM…");
    Ok(c.call::<Init>(&params)?)
}

pub fn run(c: &mut Client, cmd: TpmCommand) -> Result<BackendInfo> {
    match cmd {
        TpmCommand::ChangePin { pin_file } => {
            let (old, new) = match &pin_file {
                Some(_) => {
                    let mut l = read_secret_lines(pin_file.as_ref(), &["", ""])?;
                    let new = l.remove(1);
                    (l.remove(0), new)
                }
                None => {
                    let old = read_secret_lines(None, &["Current TPM PIN: "])?.remove(0);
                    (old, new_secret(None, "New TPM PIN")?)
                }
            };
            let info = c.call::<TpmChangePin>(&TpmChangePinParams {
                pin: old.to_string(),
                new_pin: new.to_string(),
            })?;
            eprintln!("the TPM PIN is changed");
            Ok(info)
        }
    }
}
