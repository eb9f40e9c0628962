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
            .finish()
    }
}

impl Drop for InitParams {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.pin.zeroize();
    }
}
