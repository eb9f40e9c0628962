//! Where secrets live (the TPM only wraps the software keystore's key).
//! Every backend (software, PKCS#11, YubiKey PIV)
//! implements [`Backend`]: it makes keys, signs with them and reports
//! its capabilities, so the service never assumes a feature.
//!
//! A backend never sees key metadata (rooms, states): it hands back an opaque
//! *handle* (JSON) for each key it makes, which the registry stores in the
//! key record, and it is given that handle again to sign.

pub mod piv;
pub mod pkcs11;
pub mod soft;
pub mod tpm;
#[cfg(feature = "yubikey")]
pub mod yubikey;

use cryptoid_protocol::json::Value;
use cryptoid_protocol::keys::PublicKey;
use cryptoid_protocol::wire::agent::BackendInfo;

/// `backends.json` settings of the YubiKey backend (read even by builds
/// without it, which then say so).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YubiKeySettings {
    /// The card's serial number.
    pub serial: u32,
    /// Touch policy of new keys: `never`, `always` or `cached`.
    #[serde(default = "touch_never")]
    pub touch: String,
}

fn touch_never() -> String {
    "never".into()
}

impl YubiKeySettings {
    /// What signing with a key made under these settings needs.
    pub fn protection(&self) -> cryptoid_protocol::wire::agent::Protection {
        use cryptoid_protocol::wire::agent::Protection;
        if self.touch == "never" {
            Protection::Pin
        } else {
            Protection::PinAndTouch
        }
    }
}

/// A key a backend has just made.
pub struct NewKey {
    pub public: PublicKey,
    /// What the backend needs to find (or unseal) the secret again.
    pub handle: Value,
}

/// Secrets offered to `unlock`.
pub struct UnlockSecret<'a> {
    pub passphrase: Option<&'a str>,
    pub pin: Option<&'a str>,
}

/// Backend failures; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("the agent is locked: run `cryptoidctl unlock`")]
    Locked,
    #[error("wrong passphrase")]
    BadPassphrase,
    #[error("a passphrase is required{0}")]
    PassphraseRequired(&'static str),
    #[error("the keystore at {path} is damaged: {why}")]
    Corrupt { path: String, why: String },
    #[error("keystore storage failed: {0} (nothing was changed)")]
    Io(#[from] std::io::Error),
    #[error("the key's secret does not decrypt under this keystore's data key (wrong keystore, or a damaged record)")]
    Unseal,
    #[error("encryption failed")]
    Seal,
    #[error("wrong PIN{0}")]
    BadPin(String),
    #[error("the token needs its PIN: run `cryptoidctl unlock --backend {0}`")]
    PinRequired(&'static str),
    #[error("{0}")]
    PinBlocked(String),
    #[error("{0}")]
    MessageTooLarge(String),
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("this keystore is wrapped by a {0}, not a passphrase: unlock with its PIN (cryptoidctl unlock --pin-file F|-)")]
    WrappedBy(&'static str),
    #[error(
        "PKCS#11 module {module} is outside the allowed directories ({allowed}); add its directory to `pkcs11_module_dirs` in config.toml"
    )]
    ModuleNotAllowed { module: String, allowed: String },
    #[error("{0}: the YubiKey refused the PIN the agent had (was it changed?); it is forgotten, unlock again with `cryptoidctl unlock --backend yubikey`")]
    PinNoLongerAccepted(Box<KeystoreError>),
    #[error(
        "Ed25519 needs YubiKey firmware 5.7 or later; YubiKey {serial} has {version}: keep the keys in the software keystore (`--backend soft`), bound to this YubiKey with `cryptoidctl backend init soft --wrap-with yubikey`"
    )]
    FirmwareTooOld { serial: u32, version: String },
    #[error(
        "YubiKey {0}'s management key is neither the factory default nor PIN-protected, so the agent cannot generate keys on it: make it PIN-protected with `ykman piv access change-management-key --generate --protect`"
    )]
    ManagementKeyUnusable(u32),
    #[error("{} YubiKeys are plugged in ({}): pick one with --serial", .0.len(), .0.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))]
    SeveralCards(Vec<u32>),
    #[error("backend {0:?} is not available in this agent (available: soft, pkcs11, yubikey)")]
    NoSuchBackend(String),
    #[error("no {what} is set up: run `{fix}`")]
    NotSetUp { what: &'static str, fix: &'static str },
    #[error("this agent was built without {what} support (cargo feature `{feature}`)")]
    NotBuilt { what: &'static str, feature: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("TPM unavailable: {0}")]
    TpmUnavailable(String),
    #[error(
        "this keystore was sealed by another TPM, or by this one before it was cleared (`tpm2_clear`, a firmware reset): no PIN opens it here, and nothing was tried. Recover it with its recovery passphrase (`cryptoidctl unlock --recovery`) or from secret storage on a new keystore (`cryptoidctl share pull`), then seal it to this TPM: `cryptoidctl backend init soft --wrap-with tpm`"
    )]
    TpmMismatch,
    #[error(
        "PCR {0} changed since the keystore was sealed to it (Secure Boot state, firmware or boot chain): the TPM will not release the key, and the PIN was not tried. If the change is yours, unlock with the recovery passphrase (`cryptoidctl unlock --recovery`) and seal again: `cryptoidctl backend init soft --wrap-with tpm --pcrs …`"
    )]
    PcrChanged(String),
    #[error("this keystore is sealed by the TPM and has no recovery passphrase: unlock it with its PIN (`cryptoidctl unlock`)")]
    NoRecovery,
    #[error("wrong recovery passphrase (the TPM's PIN is asked by `cryptoidctl unlock` without --recovery)")]
    BadRecoveryPassphrase,
}

/// One place keys can live.
pub trait Backend: Send + Sync {
    /// `soft`, `pkcs11`, `yubikey`.
    fn name(&self) -> &'static str;
    /// Capabilities, availability and lock state, for `agent.hello`.
    fn info(&self, keys: u64) -> BackendInfo;
    fn is_locked(&self) -> bool;
    fn unlock(&self, secret: &UnlockSecret<'_>) -> Result<(), KeystoreError>;
    /// Forgets every secret it holds in memory.
    fn lock(&self);
    /// Makes a key. The returned handle must be persisted by the caller
    /// before the public key is given to anyone.
    fn generate(&self) -> Result<NewKey, KeystoreError>;
    fn sign(&self, public: &PublicKey, handle: &Value, message: &[u8]) -> Result<[u8; 64], KeystoreError>;
    /// Destroys the secret behind `handle` (where the backend holds it) and
    /// forgets any copy in memory.
    fn destroy(&self, public: &PublicKey, handle: &Value) -> Result<(), KeystoreError>;
    /// Drops any copy of the key's secret held in memory (a key deleted
    /// while a signature was being made). Hardware keeps none.
    fn forget(&self, _public: &PublicKey) {}
}
