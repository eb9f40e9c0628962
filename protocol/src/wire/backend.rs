//! `backend.*`: configuring key backends.

use super::agent::BackendInfo;
use super::Method;
use serde::{Deserialize, Serialize};

/// `backend.init`: set up a hardware backend. `pkcs11`: the agent loads the
/// module, finds the token by label, checks it can do Ed25519, logs in when
/// a PIN is given. `yubikey`: finds the card by serial and checks the PIN.
/// The settings are remembered.
pub struct Init;
impl Method for Init {
    const NAME: &'static str = "backend.init";
    const SECRET_PARAMS: bool = true;
    type Params = InitParams;
    type Result = BackendInfo;
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitParams {
    pub backend: String,
    /// Path of the PKCS#11 module (`.so`); empty for `yubikey`.
    #[serde(default)]
    pub module: String,
    /// Label of the PKCS#11 token, or the YubiKey's serial number (empty:
    /// the only YubiKey plugged in).
    #[serde(default)]
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// With `backend: "soft"`: wrap the software keystore's data key with a
    /// key on this backend's token (`pkcs11`), so unlocking needs the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_with: Option<String>,
    /// `yubikey`: touch policy of keys generated from now on (`never`,
    /// `always`, `cached`; default `never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touch: Option<String>,
    /// `soft` wrapped with `tpm`: the SHA-256 PCRs (0 to 23) the seal is
    /// bound to (e.g. `[7]`, Secure Boot state); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcrs: Option<Vec<u8>>,
    /// `soft` wrapped with `tpm`: a passphrase that also unlocks the
    /// keystore (another machine, a cleared TPM), to be kept offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_passphrase: Option<String>,
    /// `soft` with `wrap_with`, on a keystore that exists: its current
    /// secret (passphrase; the PIN of its token or TPM; or the TPM
    /// recovery passphrase), as `agent.passwd` needs the old passphrase. An
    /// unlocked agent alone does not let a client rewrap the keys' key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
}

impl std::fmt::Debug for InitParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitParams")
            .field("backend", &self.backend)
            .field("module", &self.module)
            .field("token", &self.token)
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .field("wrap_with", &self.wrap_with)
            .field("touch", &self.touch)
            .field("pcrs", &self.pcrs)
            .field("recovery_passphrase", &self.recovery_passphrase.as_ref().map(|_| "<redacted>"))
            .field("current", &self.current.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Drop for InitParams {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.pin.zeroize();
        self.recovery_passphrase.zeroize();
        self.current.zeroize();
    }
}

/// `backend.tpm_change_pin`: change the PIN of the TPM-sealed keystore
/// (its key-encryption key is unsealed with the current PIN and sealed
/// again behind the new one; the keys are not touched). A wrong current
/// PIN counts against the TPM's dictionary-attack limit.
pub struct TpmChangePin;
impl Method for TpmChangePin {
    const NAME: &'static str = "backend.tpm_change_pin";
    const SECRET_PARAMS: bool = true;
    type Params = TpmChangePinParams;
    type Result = BackendInfo;
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmChangePinParams {
    pub pin: String,
    pub new_pin: String,
}

impl std::fmt::Debug for TpmChangePinParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TpmChangePinParams { <redacted> }")
    }
}

impl Drop for TpmChangePinParams {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.pin.zeroize();
        self.new_pin.zeroize();
    }
}
