//! `agent.*`: hello, lock, unlock, passwd.

use super::{Method, NoParams};
use serde::{Deserialize, Serialize};

/// `agent.hello`: versions, backends and lock state.
pub struct Hello;
impl Method for Hello {
    const NAME: &'static str = "agent.hello";
    type Params = NoParams;
    type Result = HelloResult;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResult {
    /// The wire protocol version ([`super::PROTOCOL_VERSION`]).
    pub protocol: u32,
    pub agent_version: String,
    pub locked: bool,
    /// False until the first `agent.unlock` has set a passphrase.
    pub passphrase_set: bool,
    pub backends: Vec<BackendInfo>,
}

/// What the user must provide to use a backend's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// Nothing (software keystore in `--no-passphrase` mode).
    None,
    Passphrase,
    Pin,
    PinAndTouch,
    /// The software keystore sealed by the machine's TPM, behind a PIN.
    #[serde(rename = "tpm+pin")]
    TpmPin,
    /// As `TpmPin`, and released only while chosen PCRs hold their values
    /// at sealing (Secure Boot state).
    #[serde(rename = "tpm+pin+pcr")]
    TpmPinPcr,
}

/// The names a client reads in `agent.hello`, and `as_str` beside them.
#[cfg(test)]
mod protection_names {
    use super::Protection;

    #[test]
    fn wire_names_and_as_str_agree() {
        for (p, name) in [
            (Protection::None, "none"),
            (Protection::Passphrase, "passphrase"),
            (Protection::Pin, "pin"),
            (Protection::PinAndTouch, "pin_and_touch"),
            (Protection::TpmPin, "tpm+pin"),
            (Protection::TpmPinPcr, "tpm+pin+pcr"),
        ] {
            assert_eq!(serde_json::to_string(&p).expect("json"), format!("\"{name}\""));
            assert_eq!(p.as_str(), name);
            assert_eq!(serde_json::from_str::<Protection>(&format!("\"{name}\"")).expect("parse"), p);
        }
    }
}

impl Protection {
    /// Whether what protects it is unlocked with a PIN (a token, a card, the
    /// TPM) rather than a passphrase.
    pub fn unlocks_with_pin(self) -> bool {
        matches!(self, Protection::Pin | Protection::PinAndTouch | Protection::TpmPin | Protection::TpmPinPcr)
    }

    /// The wire name (`none`, `passphrase`, `pin`, `pin_and_touch`,
    /// `tpm+pin`, `tpm+pin+pcr`), for people too.
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::None => "none",
            Protection::Passphrase => "passphrase",
            Protection::Pin => "pin",
            Protection::PinAndTouch => "pin_and_touch",
            Protection::TpmPin => "tpm+pin",
            Protection::TpmPinPcr => "tpm+pin+pcr",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `soft`, `pkcs11`, `yubikey`.
    pub name: String,
    pub available: bool,
    pub locked: bool,
    pub protection: Protection,
    pub algorithms: Vec<String>,
    /// Longest message the backend can sign, if limited.
    pub max_message_len: Option<u64>,
    /// How many keys it can hold, if limited.
    pub capacity: Option<u64>,
    pub keys: u64,
}

/// `agent.lock`: forget every secret until the next unlock.
pub struct Lock;
impl Method for Lock {
    const NAME: &'static str = "agent.lock";
    type Params = NoParams;
    type Result = LockState;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockState {
    pub locked: bool,
}

/// `agent.unlock`. The first unlock of a new keystore sets the passphrase.
pub struct Unlock;
impl Method for Unlock {
    const NAME: &'static str = "agent.unlock";
    const SECRET_PARAMS: bool = true;
    type Params = UnlockParams;
    type Result = LockState;
}

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
}

impl std::fmt::Debug for UnlockParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line through Debug.
        f.debug_struct("UnlockParams")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<redacted>"))
            .field("backend", &self.backend)
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Drop for UnlockParams {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.passphrase.zeroize();
        self.pin.zeroize();
    }
}

/// `agent.passwd`: change the passphrase (rewraps only the data key).
pub struct Passwd;
impl Method for Passwd {
    const NAME: &'static str = "agent.passwd";
    const SECRET_PARAMS: bool = true;
    type Params = PasswdParams;
    type Result = NoParams;
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswdParams {
    pub passphrase: String,
    pub new_passphrase: String,
}

impl std::fmt::Debug for PasswdParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswdParams { <redacted> }")
    }
}

impl Drop for PasswdParams {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.passphrase.zeroize();
        self.new_passphrase.zeroize();
    }
}
