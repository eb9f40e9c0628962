//! Opening the TPM. The TSS's own errors say little ("tcti initialization
//! failed"), so a device path is looked at first: a missing device and a
//! refused one are different problems with different fixes.

use crate::keystore::KeystoreError;
use std::str::FromStr;
use tss_esapi::{Context, TctiNameConf};

fn unavailable(why: String) -> KeystoreError {
    KeystoreError::TpmUnavailable(why)
}

/// A context on the TPM `tcti` names (`device:/dev/tpmrm0`,
/// `swtpm:host=H,port=P`, `mssim:…`, `tabrmd:…`).
pub fn open(tcti: &str) -> Result<Context, KeystoreError> {
    let conf = TctiNameConf::from_str(tcti).map_err(|_| {
        unavailable(format!(
            "[tpm] tcti = {tcti:?} is not a TCTI the agent knows: use \"device:/dev/tpmrm0\" \
             (the default), \"swtpm:host=127.0.0.1,port=2321\", \"mssim:…\" or \"tabrmd:…\""
        ))
    })?;
    if let Some(path) = tcti.strip_prefix("device:").or((tcti == "device").then_some("/dev/tpm0")) {
        check_device(path)?;
    }
    Context::new(conf).map_err(|e| {
        unavailable(format!(
            "cannot reach the TPM through {tcti} ({e}); is the TPM (or swtpm) there? \
             `[tpm] tcti` in config.toml names it"
        ))
    })
}

fn check_device(path: &str) -> Result<(), KeystoreError> {
    use std::io::ErrorKind;
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(unavailable(format!(
            "this machine has no TPM at {path}: is a TPM 2.0 enabled in the firmware settings \
             (`ls /dev/tpm*` shows what the kernel found)? Without one, keep the passphrase \
             (or wrap with a YubiKey or PKCS#11 token)"
        ))),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => Err(unavailable(format!(
            "the TPM at {path} refuses this user ({e}): add yourself to the `tss` group \
             (`sudo usermod -aG tss $USER`, then log in again); an agent run by systemd needs \
             `DeviceAllow={path} rw` in its unit (the packaged unit has it)"
        ))),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(unavailable(format!(
            "the TPM at {path} is held by another program: use the kernel's resource manager, \
             `[tpm] tcti = \"device:/dev/tpmrm0\"`"
        ))),
        Err(e) => Err(unavailable(format!("cannot open the TPM at {path}: {e}"))),
    }
}
