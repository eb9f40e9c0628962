//! The software keystore.
//!
//! Each Ed25519 seed is sealed with XChaCha20-Poly1305 under a random 32-byte
//! *data key* (the key's public key is the associated data, so sealed seeds
//! cannot be swapped between records). The data key is wrapped under
//! Argon2id(passphrase) in `keystore.json`; changing the passphrase rewraps
//! only the data key. In `--no-passphrase` mode the data key is stored
//! unwrapped and the agent starts unlocked: only as safe as the disk.

use super::pkcs11::{self, Pkcs11Settings};
use super::tpm::{self, Sealed, DEFAULT_TCTI};
use super::{Backend, KeystoreError, NewKey, UnlockSecret};
use crate::fsutil;
use crate::sync::{MutexExt, RwLockExt};
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use cryptoid_protocol::base64;
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::keys::{KeyPair, PublicKey};
use cryptoid_protocol::wire::agent::{BackendInfo, Protection};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use zeroize::Zeroizing;

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (RFC 9106's second choice).
const ARGON2_M_KIB: u32 = 64 * 1024;
const ARGON2_T: u32 = 3;
const ARGON2_P: u32 = 1;

type DataKey = Zeroizing<[u8; 32]>;

/// `keystore.json`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
enum KeystoreFile {
    Passphrase {
        version: u32,
        kdf: Kdf,
        nonce: String,
        wrapped_key: String,
    },
    Plaintext {
        version: u32,
        data_key: String,
    },
    /// Wrap mode: the data key is encrypted by an AES key on a PKCS#11 token.
    Pkcs11Wrapped {
        version: u32,
        module: String,
        token: String,
        key_id: String,
        iv: String,
        wrapped_key: String,
    },
    /// Wrap mode: the data key is sealed under ECDH of an ephemeral key and
    /// a YubiKey's slot 9d key (see `keystore::yubikey::wrap`).
    YubikeyWrapped {
        version: u32,
        serial: u32,
        card_public: String,
        ephemeral_public: String,
        nonce: String,
        wrapped_key: String,
    },
    /// Wrap mode: the data key is sealed under a KEK that a TPM 2.0 object
    /// releases for the PIN (see `keystore::tpm`), with an optional copy
    /// under a recovery passphrase.
    TpmWrapped {
        version: u32,
        srk_name: String,
        public: String,
        private: String,
        /// SHA-256 PCRs bound at sealing, with their values then.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pcrs: Vec<TpmPcr>,
        nonce: String,
        wrapped_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovery: Option<Recovery>,
    },
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TpmPcr {
    index: u8,
    value: String,
}

/// The data key under Argon2id(recovery passphrase), as in passphrase mode.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recovery {
    kdf: Kdf,
    nonce: String,
    wrapped_key: String,
}

impl KeystoreFile {
    fn protection(&self) -> Protection {
        match self {
            KeystoreFile::Plaintext { .. } => Protection::None,
            KeystoreFile::Passphrase { .. } => Protection::Passphrase,
            KeystoreFile::Pkcs11Wrapped { .. } | KeystoreFile::YubikeyWrapped { .. } => Protection::Pin,
            KeystoreFile::TpmWrapped { pcrs, .. } if pcrs.is_empty() => Protection::TpmPin,
            KeystoreFile::TpmWrapped { .. } => Protection::TpmPinPcr,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    algorithm: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

struct State {
    data_key: Option<DataKey>,
    /// Unsealed keys, so signing does not decrypt every time. Emptied on lock.
    cache: HashMap<PublicKey, Arc<KeyPair>>,
}

pub struct SoftBackend {
    path: PathBuf,
    /// Where PKCS#11 modules may be loaded from (wrap mode).
    module_dirs: Vec<PathBuf>,
    /// The TPM of the TPM wrap mode (`[tpm] tcti`).
    tpm_tcti: String,
    state: RwLock<State>,
    /// Serializes changes of `keystore.json`: two concurrent first unlocks
    /// must not both create a data key (keys sealed under the loser's would
    /// be lost).
    file_lock: Mutex<()>,
    /// How `keystore.json` protects the data key (`None`: no file yet),
    /// kept in memory so `agent.hello` reads no file: the agent is the
    /// file's only writer, and `write_file` keeps this current.
    protection: Mutex<Option<Protection>>,
}

fn corrupt(path: &Path, why: impl Into<String>) -> KeystoreError {
    KeystoreError::Corrupt { path: path.display().to_string(), why: why.into() }
}

/// Bytes from the OS random number generator.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

fn derive(passphrase: &str, kdf: &Kdf, path: &Path) -> Result<DataKey, KeystoreError> {
    let params = Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32)).map_err(|e| corrupt(path, e.to_string()))?;
    let salt = base64::decode(&kdf.salt).map_err(|e| corrupt(path, e.to_string()))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, out.as_mut())
        .map_err(|e| corrupt(path, e.to_string()))?;
    Ok(out)
}

fn seal(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    // Fails only for inputs beyond 2^38 bytes; never silently.
    XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| KeystoreError::Seal)
}

fn unseal(key: &[u8; 32], nonce: &[u8], sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if nonce.len() != 24 {
        return None;
    }
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
        .ok()
        .map(Zeroizing::new)
}

/// `keystore.json` of the TPM wrap mode; `nonce` and `wrapped_key` in
/// base64, as the file keeps them.
fn tpm_file(sealed: &Sealed, nonce: String, wrapped_key: String, recovery: Option<Recovery>) -> KeystoreFile {
    KeystoreFile::TpmWrapped {
        version: 1,
        srk_name: base64::encode(&sealed.srk_name),
        public: base64::encode(&sealed.public),
        private: base64::encode(&sealed.private),
        pcrs: sealed.pcrs.iter().map(|(i, v)| TpmPcr { index: *i, value: base64::encode(v) }).collect(),
        nonce,
        wrapped_key,
        recovery,
    }
}

/// The sealed object as `keystore.json` describes it.
fn sealed_of(
    path: &Path,
    srk_name: &str,
    public: &str,
    private: &str,
    pcrs: &[TpmPcr],
) -> Result<Sealed, KeystoreError> {
    let decode = |s: &str| base64::decode(s).map_err(|e| corrupt(path, e.to_string()));
    let pcrs = pcrs
        .iter()
        .map(|p| match p.index {
            0..=23 => Ok((p.index, decode(&p.value)?)),
            i => Err(corrupt(path, format!("PCR {i} does not exist"))),
        })
        .collect::<Result<_, KeystoreError>>()?;
    Ok(Sealed { srk_name: decode(srk_name)?, public: decode(public)?, private: decode(private)?, pcrs })
}

fn to_array32(v: &[u8]) -> Option<DataKey> {
    let arr: [u8; 32] = v.try_into().ok()?;
    Some(Zeroizing::new(arr))
}

impl SoftBackend {
    /// Opens (or prepares to create) the keystore at `path`. With
    /// `no_passphrase`, a missing keystore is created unwrapped.
    pub fn open(path: PathBuf, no_passphrase: bool) -> Result<SoftBackend, KeystoreError> {
        SoftBackend::open_with(path, no_passphrase, Vec::new())
    }

    /// As [`SoftBackend::open`], allowing wrap-mode modules from `module_dirs`.
    pub fn open_with(
        path: PathBuf,
        no_passphrase: bool,
        module_dirs: Vec<PathBuf>,
    ) -> Result<SoftBackend, KeystoreError> {
        let b = SoftBackend {
            path,
            module_dirs,
            tpm_tcti: DEFAULT_TCTI.into(),
            state: RwLock::new(State { data_key: None, cache: HashMap::new() }),
            file_lock: Mutex::new(()),
            protection: Mutex::new(None),
        };
        let file = b.read_file()?;
        *b.protection.locked() = file.as_ref().map(KeystoreFile::protection);
        match file {
            None if no_passphrase => {
                let key: DataKey = Zeroizing::new(random());
                b.write_file(&KeystoreFile::Plaintext {
                    version: 1,
                    data_key: base64::encode(key.as_ref()),
                })?;
                b.write_state().data_key = Some(key);
            }
            Some(KeystoreFile::Plaintext { .. }) => {
                b.unlock(&UnlockSecret { passphrase: None, pin: None })?
            }
            Some(_) if no_passphrase => return Err(KeystoreError::PassphraseRequired(
                ": this keystore is protected (passphrase or token); start the agent without --no-passphrase",
            )),
            _ => {}
        }
        Ok(b)
    }

    /// The TPM the TPM wrap mode uses (a TCTI: `device:/dev/tpmrm0`,
    /// `swtpm:host=H,port=P`).
    pub fn with_tpm_tcti(mut self, tcti: String) -> SoftBackend {
        self.tpm_tcti = tcti;
        self
    }

    /// Whether a keystore file exists (a passphrase has been set).
    pub fn initialized(&self) -> bool {
        self.protection.locked().is_some()
    }

    pub fn is_plaintext(&self) -> bool {
        *self.protection.locked() == Some(Protection::None)
    }

    pub fn is_token_wrapped(&self) -> bool {
        self.protection.locked().is_some_and(Protection::unlocks_with_pin)
    }

    /// The data key to wrap: the unlocked one, or a new one for a new
    /// keystore. Wrapping an existing keystore also needs its `current`
    /// secret, as a passphrase change needs the old one: otherwise any
    /// client allowed to manage keys could rewrap the data key under a
    /// token, PIN or recovery passphrase of its own, and take every key.
    /// `file`: `keystore.json` as the caller read it.
    fn data_key_to_wrap(
        &self,
        file: Option<KeystoreFile>,
        current: Option<&str>,
    ) -> Result<DataKey, KeystoreError> {
        let key = match (&file, self.read_state().data_key.clone()) {
            (None, _) => return Ok(Zeroizing::new(random())),
            (Some(_), Some(k)) => k,
            (Some(_), None) => return Err(KeystoreError::Locked),
        };
        let needed = || {
            KeystoreError::PassphraseRequired(
                ": wrapping an existing keystore needs its current passphrase or PIN (`--current-file F|-`, or asked)",
            )
        };
        let proven = match file {
            Some(KeystoreFile::Plaintext { .. }) | None => None,
            Some(KeystoreFile::Passphrase { .. }) => {
                self.unwrap_with(Some(current.ok_or_else(needed)?), None)?
            }
            // The recovery passphrase first: trying it spends no TPM try.
            Some(KeystoreFile::TpmWrapped { recovery: Some(_), .. }) => {
                let c = current.ok_or_else(needed)?;
                match self.unwrap_with(Some(c), None) {
                    Err(KeystoreError::BadRecoveryPassphrase) => self.unwrap_with(None, Some(c))?,
                    other => other?,
                }
            }
            Some(_) => self.unwrap_with(None, Some(current.ok_or_else(needed)?))?,
        };
        if proven.is_some_and(|p| p != key) {
            return Err(corrupt(&self.path, "its data key is not the one the agent unlocked"));
        }
        Ok(key)
    }

    /// Wrap mode with a YubiKey: from now on the data key is sealed under a
    /// key only the card's slot 9d key agreement can recompute; unlocking
    /// needs the card and its PIN. `touch` is the policy of a 9d key made
    /// now (an existing one keeps its own).
    #[cfg(feature = "yubikey")]
    pub fn wrap_with_yubikey(
        &self,
        serial: Option<u32>,
        pin: &str,
        touch: u8,
        current: Option<&str>,
    ) -> Result<u32, KeystoreError> {
        let _file = self.file_lock.locked();
        let key = self.data_key_to_wrap(self.read_file()?, current)?;
        let w = super::yubikey::wrap::new_wrap_key(serial, pin, touch)?;
        let nonce = random::<24>();
        let sealed = seal(&w.kek, &nonce, key.as_ref(), b"cryptoid-agent data key")?;
        self.write_file(&KeystoreFile::YubikeyWrapped {
            version: 1,
            serial: w.serial,
            card_public: base64::encode(&w.card_public),
            ephemeral_public: base64::encode(&w.ephemeral_public),
            nonce: base64::encode(&nonce),
            wrapped_key: base64::encode(&sealed),
        })?;
        self.write_state().data_key = Some(key);
        Ok(w.serial)
    }

    /// Wrap mode: from now on the data key is wrapped by a key on the token
    /// (made there, never extractable); unlocking needs the token and its
    /// PIN. The keystore must be unlocked (its data key is kept) or new.
    pub fn wrap_with_pkcs11(
        &self,
        settings: &Pkcs11Settings,
        pin: &str,
        current: Option<&str>,
    ) -> Result<(), KeystoreError> {
        let _file = self.file_lock.locked();
        let key = self.data_key_to_wrap(self.read_file()?, current)?;
        let w = pkcs11::wrap_data_key(settings, &self.module_dirs, pin, &key)?;
        self.write_file(&KeystoreFile::Pkcs11Wrapped {
            version: 1,
            module: settings.module.display().to_string(),
            token: settings.token.clone(),
            key_id: base64::encode(&w.key_id),
            iv: base64::encode(&w.iv),
            wrapped_key: base64::encode(&w.ciphertext),
        })?;
        self.write_state().data_key = Some(key);
        Ok(())
    }

    /// Wrap mode with the machine's TPM: from now on the data key is sealed
    /// under a KEK the TPM releases for `pin` (and, with `pcrs`, only while
    /// those PCRs hold today's values). `recovery`: a passphrase that also
    /// unlocks, kept offline for another machine or a cleared TPM; without
    /// one, a recovery copy already there (same data key) is kept. Sealing
    /// again (another TPM, other PCRs) is the same call while unlocked.
    pub fn wrap_with_tpm(
        &self,
        pin: &str,
        pcrs: &[u8],
        recovery: Option<&str>,
        current: Option<&str>,
    ) -> Result<Protection, KeystoreError> {
        let _file = self.file_lock.locked();
        // Checked first: a refusal here costs no Argon2id and no TPM try.
        if pin.is_empty() {
            return Err(KeystoreError::BadPin(": the TPM PIN must not be empty".into()));
        }
        if recovery == Some(pin) {
            return Err(KeystoreError::Invalid(
                "the recovery passphrase must not be the PIN: it is guessed offline, where the TPM's lockout does not count"
                    .into(),
            ));
        }
        if recovery == Some("") {
            return Err(KeystoreError::PassphraseRequired(": the recovery passphrase must not be empty"));
        }
        let file = self.read_file()?;
        // A recovery copy already there wraps this same data key: kept.
        let kept = match &file {
            Some(KeystoreFile::TpmWrapped { recovery, .. }) => recovery.clone(),
            _ => None,
        };
        let key = self.data_key_to_wrap(file, current)?;
        let recovery = match recovery {
            Some(p) => Some(Self::wrap_under_passphrase(p, &key, &self.path)?),
            None => kept,
        };
        let kek: DataKey = Zeroizing::new(random());
        let sealed = tpm::seal(&self.tpm_tcti, pin, pcrs, &kek)?;
        let nonce = random::<24>();
        let wrapped = seal(&kek, &nonce, key.as_ref(), b"cryptoid-agent data key")?;
        let file = tpm_file(&sealed, base64::encode(&nonce), base64::encode(&wrapped), recovery);
        let protection = file.protection();
        self.write_file(&file)?;
        self.write_state().data_key = Some(key);
        Ok(protection)
    }

    /// Changes the TPM PIN (the sealed object's auth value); the data key,
    /// the PCR binding and the recovery copy stay as they are. The file is
    /// replaced atomically: a crash leaves the old PIN or the new one.
    pub fn change_tpm_pin(&self, old: &str, new: &str) -> Result<(), KeystoreError> {
        let _file = self.file_lock.locked();
        if new.is_empty() {
            return Err(KeystoreError::BadPin(": the new TPM PIN must not be empty".into()));
        }
        let Some(KeystoreFile::TpmWrapped {
            srk_name,
            public,
            private,
            pcrs,
            nonce,
            wrapped_key,
            recovery,
            ..
        }) = self.read_file()?
        else {
            return Err(KeystoreError::NotSetUp {
                what: "TPM-sealed keystore",
                fix: "cryptoidctl backend init soft --wrap-with tpm",
            });
        };
        let sealed = sealed_of(&self.path, &srk_name, &public, &private, &pcrs)?;
        let changed = tpm::change_pin(&self.tpm_tcti, &sealed, old, new)?;
        self.write_file(&tpm_file(&changed, nonce, wrapped_key, recovery))
    }

    fn read_file(&self) -> Result<Option<KeystoreFile>, KeystoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| corrupt(&self.path, e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn write_file(&self, f: &KeystoreFile) -> Result<(), KeystoreError> {
        let bytes = serde_json::to_vec(f).map_err(|e| corrupt(&self.path, e.to_string()))?;
        let written = fsutil::write_atomic(&self.path, &bytes);
        // A write that failed late (the directory's fsync, after the rename)
        // may have replaced the file all the same: ask the file again.
        *self.protection.locked() = match &written {
            Ok(()) => Some(f.protection()),
            Err(_) => self.read_file().ok().flatten().as_ref().map(KeystoreFile::protection),
        };
        written?;
        Ok(())
    }

    fn wrap(passphrase: &str, data_key: &[u8; 32], path: &Path) -> Result<KeystoreFile, KeystoreError> {
        let Recovery { kdf, nonce, wrapped_key } = Self::wrap_under_passphrase(passphrase, data_key, path)?;
        Ok(KeystoreFile::Passphrase { version: 1, kdf, nonce, wrapped_key })
    }

    /// The data key under Argon2id(`passphrase`) with a fresh salt.
    fn wrap_under_passphrase(
        passphrase: &str,
        data_key: &[u8; 32],
        path: &Path,
    ) -> Result<Recovery, KeystoreError> {
        let kdf = Kdf {
            algorithm: "argon2id".into(),
            m_kib: ARGON2_M_KIB,
            t: ARGON2_T,
            p: ARGON2_P,
            salt: base64::encode(&random::<16>()),
        };
        let kek = derive(passphrase, &kdf, path)?;
        let nonce = random::<24>();
        let wrapped = seal(&kek, &nonce, data_key, b"cryptoid-agent data key")?;
        Ok(Recovery { kdf, nonce: base64::encode(&nonce), wrapped_key: base64::encode(&wrapped) })
    }

    /// The data key from its copy under a passphrase.
    fn unwrap_under_passphrase(
        &self,
        passphrase: &str,
        copy: &Recovery,
        wrong: KeystoreError,
    ) -> Result<DataKey, KeystoreError> {
        let decode = |s: &str| base64::decode(s).map_err(|e| corrupt(&self.path, e.to_string()));
        let kek = derive(passphrase, &copy.kdf, &self.path)?;
        let raw =
            unseal(&kek, &decode(&copy.nonce)?, &decode(&copy.wrapped_key)?, b"cryptoid-agent data key")
                .ok_or(wrong)?;
        to_array32(&raw).ok_or_else(|| corrupt(&self.path, "data key is not 32 bytes"))
    }

    fn unwrap_with(
        &self,
        passphrase: Option<&str>,
        pin: Option<&str>,
    ) -> Result<Option<DataKey>, KeystoreError> {
        let decode = |s: &str| base64::decode(s).map_err(|e| corrupt(&self.path, e.to_string()));
        match self.read_file()? {
            None => Ok(None),
            Some(KeystoreFile::Plaintext { data_key, .. }) => {
                let raw = Zeroizing::new(decode(&data_key)?);
                to_array32(&raw).map(Some).ok_or_else(|| corrupt(&self.path, "data key is not 32 bytes"))
            }
            Some(KeystoreFile::Passphrase { kdf, nonce, wrapped_key, .. }) => {
                let passphrase = passphrase.ok_or(KeystoreError::PassphraseRequired(" to unlock"))?;
                let copy = Recovery { kdf, nonce, wrapped_key };
                self.unwrap_under_passphrase(passphrase, &copy, KeystoreError::BadPassphrase).map(Some)
            }
            Some(KeystoreFile::TpmWrapped { recovery, .. }) if pin.is_none() => {
                match (passphrase, recovery) {
                    (Some(p), Some(copy)) => {
                        let key =
                            self.unwrap_under_passphrase(p, &copy, KeystoreError::BadRecoveryPassphrase)?;
                        tracing::warn!(
                            "the keystore was unlocked with its recovery passphrase: seal it to this \
                             machine's TPM again with `cryptoidctl backend init soft --wrap-with tpm`"
                        );
                        Ok(Some(key))
                    }
                    (Some(_), None) => Err(KeystoreError::NoRecovery),
                    (None, _) => Err(KeystoreError::WrappedBy("TPM")),
                }
            }
            Some(KeystoreFile::TpmWrapped {
                srk_name, public, private, pcrs, nonce, wrapped_key, ..
            }) => {
                let pin = pin.ok_or(KeystoreError::WrappedBy("TPM"))?;
                let sealed = sealed_of(&self.path, &srk_name, &public, &private, &pcrs)?;
                let kek = tpm::unseal(&self.tpm_tcti, &sealed, pin)?;
                let raw = unseal(&kek, &decode(&nonce)?, &decode(&wrapped_key)?, b"cryptoid-agent data key")
                    .ok_or(KeystoreError::Unseal)?;
                to_array32(&raw).map(Some).ok_or_else(|| corrupt(&self.path, "data key is not 32 bytes"))
            }
            Some(KeystoreFile::Pkcs11Wrapped { module, token, key_id, iv, wrapped_key, .. }) => {
                let pin = pin.ok_or(KeystoreError::WrappedBy("PKCS#11 token"))?;
                let iv: [u8; 12] =
                    decode(&iv)?.try_into().map_err(|_| corrupt(&self.path, "iv is not 12 bytes"))?;
                let w = pkcs11::Wrapped { key_id: decode(&key_id)?, iv, ciphertext: decode(&wrapped_key)? };
                let settings = Pkcs11Settings { module: module.into(), token };
                pkcs11::unwrap_data_key(&settings, &self.module_dirs, pin, &w).map(Some)
            }
            Some(KeystoreFile::YubikeyWrapped {
                serial,
                card_public,
                ephemeral_public,
                nonce,
                wrapped_key,
                ..
            }) => {
                let pin = pin.ok_or(KeystoreError::WrappedBy("YubiKey"))?;
                self.unwrap_yubikey(serial, &decode(&card_public)?, &decode(&ephemeral_public)?, pin)
                    .and_then(|kek| {
                        let raw = unseal(
                            &kek,
                            &decode(&nonce)?,
                            &decode(&wrapped_key)?,
                            b"cryptoid-agent data key",
                        )
                        .ok_or(KeystoreError::Unseal)?;
                        to_array32(&raw).ok_or_else(|| corrupt(&self.path, "data key is not 32 bytes"))
                    })
                    .map(Some)
            }
        }
    }

    #[cfg(feature = "yubikey")]
    fn unwrap_yubikey(
        &self,
        serial: u32,
        card_public: &[u8],
        ephemeral_public: &[u8],
        pin: &str,
    ) -> Result<DataKey, KeystoreError> {
        super::yubikey::wrap::unwrap_key(serial, card_public, ephemeral_public, pin)
    }

    #[cfg(not(feature = "yubikey"))]
    fn unwrap_yubikey(&self, serial: u32, _: &[u8], _: &[u8], _: &str) -> Result<DataKey, KeystoreError> {
        Err(KeystoreError::Unavailable(format!(
            "this keystore is wrapped by YubiKey {serial}, but this agent was built without YubiKey support"
        )))
    }

    /// Changes the passphrase: checks the old one, rewraps the data key.
    pub fn change_passphrase(&self, old: &str, new: &str) -> Result<(), KeystoreError> {
        let _file = self.file_lock.locked();
        if new.is_empty() {
            return Err(KeystoreError::PassphraseRequired(": the new passphrase must not be empty"));
        }
        if self.is_token_wrapped() {
            return Err(KeystoreError::WrappedBy(
                "token or TPM (its PIN: `cryptoidctl backend tpm change-pin`)",
            ));
        }
        let key = self.unwrap_with(Some(old), None)?.ok_or(KeystoreError::PassphraseRequired(
            ": no passphrase is set yet; the first `cryptoidctl unlock` sets it",
        ))?;
        if self.is_plaintext() {
            return Err(KeystoreError::PassphraseRequired(
                ": this keystore was created with --no-passphrase",
            ));
        }
        let file = Self::wrap(new, &key, &self.path)?;
        self.write_file(&file)
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent
        // (each field is replaced whole), so poisoning is ignored.
        self.state.write_now()
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read_now()
    }

    fn data_key(&self) -> Result<DataKey, KeystoreError> {
        self.read_state().data_key.clone().ok_or(KeystoreError::Locked)
    }

    /// The key pair of a sealed seed, checked against its public key.
    fn unseal_key(&self, public: &PublicKey, handle: &Value) -> Result<KeyPair, KeystoreError> {
        let seed = self.export_seed(public, handle)?;
        let kp = KeyPair::from_seed(&seed);
        if kp.public_key() != *public {
            return Err(KeystoreError::Unseal);
        }
        Ok(kp)
    }

    /// The seed of a key, for sharing it with the user's other devices
    /// (`share.export`): only ever to be encrypted again at once.
    pub fn export_seed(
        &self,
        public: &PublicKey,
        handle: &Value,
    ) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
        let data_key = self.data_key()?;
        let field = |k: &str| handle.as_object().and_then(|h| h.get(k)).and_then(Value::as_str);
        let (Some(nonce), Some(sealed)) = (field("nonce"), field("sealed")) else {
            return Err(KeystoreError::Unseal);
        };
        let nonce = base64::decode(nonce).map_err(|_| KeystoreError::Unseal)?;
        let sealed = base64::decode(sealed).map_err(|_| KeystoreError::Unseal)?;
        let seed = unseal(&data_key, &nonce, &sealed, public.as_bytes()).ok_or(KeystoreError::Unseal)?;
        to_array32(&seed).ok_or(KeystoreError::Unseal)
    }

    /// Seals a seed from another device (`share.import`) under this
    /// keystore's data key: a handle like one `generate` makes.
    pub fn import_seed(&self, seed: &[u8; 32]) -> Result<NewKey, KeystoreError> {
        let data_key = self.data_key()?;
        let public = KeyPair::from_seed(seed).public_key();
        let nonce = random::<24>();
        let sealed = seal(&data_key, &nonce, seed, public.as_bytes())?;
        let mut handle = Object::new();
        handle.insert("nonce".into(), Value::String(base64::encode(&nonce)));
        handle.insert("sealed".into(), Value::String(base64::encode(&sealed)));
        Ok(NewKey { public, handle: Value::Object(handle) })
    }

    fn signer(&self, public: &PublicKey, handle: &Value) -> Result<Arc<KeyPair>, KeystoreError> {
        {
            let st = self.read_state();
            if st.data_key.is_none() {
                return Err(KeystoreError::Locked);
            }
            if let Some(kp) = st.cache.get(public) {
                return Ok(kp.clone());
            }
        }
        let kp = Arc::new(self.unseal_key(public, handle)?);
        let mut st = self.write_state();
        // Locked meanwhile: do not repopulate the cache.
        if st.data_key.is_none() {
            return Err(KeystoreError::Locked);
        }
        st.cache.insert(*public, kp.clone());
        Ok(kp)
    }
}

impl Backend for SoftBackend {
    fn name(&self) -> &'static str {
        "soft"
    }

    fn info(&self, keys: u64) -> BackendInfo {
        BackendInfo {
            name: "soft".into(),
            available: true,
            locked: self.is_locked(),
            // A keystore not made yet gets a passphrase by default.
            protection: self.protection.locked().unwrap_or(Protection::Passphrase),
            algorithms: vec!["ed25519".into()],
            max_message_len: None,
            capacity: None,
            keys,
        }
    }

    fn is_locked(&self) -> bool {
        self.read_state().data_key.is_none()
    }

    fn unlock(&self, secret: &UnlockSecret<'_>) -> Result<(), KeystoreError> {
        let _file = self.file_lock.locked();
        let key = match self.unwrap_with(secret.passphrase, secret.pin)? {
            Some(k) => k,
            None => {
                // First unlock: this passphrase becomes the keystore's.
                let passphrase = secret.passphrase.filter(|p| !p.is_empty()).ok_or(
                    KeystoreError::PassphraseRequired(": the first unlock sets the keystore passphrase"),
                )?;
                let key: DataKey = Zeroizing::new(random());
                self.write_file(&Self::wrap(passphrase, &key, &self.path)?)?;
                key
            }
        };
        self.write_state().data_key = Some(key);
        Ok(())
    }

    fn lock(&self) {
        let mut st = self.write_state();
        st.data_key = None; // Zeroizing wipes the key
        st.cache.clear(); // KeyPair zeroizes on drop (once the last Arc goes)
    }

    fn generate(&self) -> Result<NewKey, KeystoreError> {
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(random());
        let new = self.import_seed(&seed)?;
        self.write_state().cache.insert(new.public, Arc::new(KeyPair::from_seed(&seed)));
        Ok(new)
    }

    fn sign(&self, public: &PublicKey, handle: &Value, message: &[u8]) -> Result<[u8; 64], KeystoreError> {
        Ok(self.signer(public, handle)?.sign(message))
    }

    fn forget(&self, public: &PublicKey) {
        self.write_state().cache.remove(public);
    }

    fn destroy(&self, public: &PublicKey, _handle: &Value) -> Result<(), KeystoreError> {
        // The sealed seed lives only in the key record, which the caller
        // rewrites without it.
        self.write_state().cache.remove(public);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(p: &str) -> UnlockSecret<'_> {
        UnlockSecret { passphrase: Some(p), pin: None }
    }

    #[test]
    fn first_unlock_sets_passphrase_then_checks_it() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("keystore.json");
        let b = SoftBackend::open(path.clone(), false).expect("open");
        assert!(b.is_locked() && !b.initialized());
        assert!(matches!(b.generate(), Err(KeystoreError::Locked)));
        b.unlock(&secret("correct horse")).expect("set passphrase");
        let k = b.generate().expect("generate");
        let sig = b.sign(&k.public, &k.handle, b"m").expect("sign");
        k.public.verify(b"m", &sig).expect("verifies");

        // A restarted agent: locked, wrong passphrase refused, right one works.
        let b2 = SoftBackend::open(path, false).expect("reopen");
        assert!(b2.is_locked());
        assert!(matches!(b2.sign(&k.public, &k.handle, b"m"), Err(KeystoreError::Locked)));
        assert!(matches!(b2.unlock(&secret("wrong")), Err(KeystoreError::BadPassphrase)));
        b2.unlock(&secret("correct horse")).expect("unlock");
        assert_eq!(b2.sign(&k.public, &k.handle, b"m").expect("sign"), sig);
        b2.lock();
        assert!(matches!(b2.sign(&k.public, &k.handle, b"m"), Err(KeystoreError::Locked)));
    }

    #[test]
    fn passwd_rewraps_only_the_data_key() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("keystore.json");
        let b = SoftBackend::open(path.clone(), false).expect("open");
        b.unlock(&secret("one")).expect("set");
        let k = b.generate().expect("generate");
        assert!(matches!(b.change_passphrase("nope", "two"), Err(KeystoreError::BadPassphrase)));
        b.change_passphrase("one", "two").expect("passwd");
        let b2 = SoftBackend::open(path, false).expect("reopen");
        assert!(matches!(b2.unlock(&secret("one")), Err(KeystoreError::BadPassphrase)));
        b2.unlock(&secret("two")).expect("new passphrase");
        b2.sign(&k.public, &k.handle, b"m").expect("old key still signs");
    }

    #[test]
    fn sealed_seed_is_bound_to_its_public_key() {
        let d = tempfile::tempdir().expect("tempdir");
        let b = SoftBackend::open(d.path().join("keystore.json"), true).expect("plaintext mode");
        assert!(!b.is_locked() && b.is_plaintext());
        let k1 = b.generate().expect("k1");
        let k2 = b.generate().expect("k2");
        b.lock();
        b.unlock(&UnlockSecret { passphrase: None, pin: None }).expect("plaintext unlock");
        // k2's sealed seed presented as k1's: refused, not a wrong signature.
        assert!(matches!(b.sign(&k1.public, &k2.handle, b"m"), Err(KeystoreError::Unseal)));
        assert!(b.sign(&k1.public, &k1.handle, b"m").is_ok());
    }

    #[test]
    fn concurrent_first_unlocks_make_one_data_key() {
        let d = tempfile::tempdir().expect("tempdir");
        let b = Arc::new(SoftBackend::open(d.path().join("keystore.json"), false).expect("open"));
        let threads: Vec<_> = ["one", "two", "three", "four"]
            .into_iter()
            .map(|p| {
                let b = b.clone();
                std::thread::spawn(move || b.unlock(&secret(p)).is_ok())
            })
            .collect();
        let ok = threads.into_iter().map(|t| t.join().expect("join")).filter(|ok| *ok).count();
        // The first sets the passphrase; the others are checked against it.
        assert_eq!(ok, 1);
    }

    /// The recovery copy of a TPM-sealed keystore opens without any TPM
    /// (that is its purpose: another machine, a cleared TPM), and only for
    /// its own passphrase; a PIN never reaches it.
    #[test]
    fn a_tpm_sealed_keystore_opens_with_its_recovery_copy_alone() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("keystore.json");
        let b = SoftBackend::open(path.clone(), false).expect("open");
        b.unlock(&secret("first")).expect("set");
        let k = b.generate().expect("generate");
        let key = b.data_key().expect("unlocked");
        let copy = SoftBackend::wrap_under_passphrase("recover", &key, &path).expect("copy");
        let sealed = Sealed {
            srk_name: vec![1; 34],
            public: vec![2; 8],
            private: vec![3; 8],
            pcrs: vec![(7, vec![0; 32])],
        };
        b.write_file(&tpm_file(&sealed, base64::encode(&[5; 24]), base64::encode(&[6; 48]), Some(copy)))
            .expect("write");
        let b = SoftBackend::open(path, false)
            .expect("reopen")
            .with_tpm_tcti("device:/nonexistent/tpmrm0".into());
        assert_eq!(b.info(0).protection, Protection::TpmPinPcr);
        assert!(matches!(b.unlock(&secret("first")), Err(KeystoreError::BadRecoveryPassphrase)));
        assert!(matches!(
            b.unlock(&UnlockSecret { passphrase: None, pin: Some("1234") }),
            Err(KeystoreError::TpmUnavailable(_) | KeystoreError::NotBuilt { .. })
        ));
        assert!(matches!(
            b.unlock(&UnlockSecret { passphrase: None, pin: None }),
            Err(KeystoreError::WrappedBy(_))
        ));
        // A PCR index from the file is checked, not shifted blindly.
        let text = std::fs::read_to_string(&b.path).expect("read");
        std::fs::write(&b.path, text.replace("\"index\":7", "\"index\":40")).expect("write");
        assert!(matches!(
            b.unlock(&UnlockSecret { passphrase: None, pin: Some("1234") }),
            Err(KeystoreError::Corrupt { .. })
        ));
        std::fs::write(&b.path, text).expect("write");
        b.unlock(&secret("recover")).expect("the recovery passphrase");
        b.sign(&k.public, &k.handle, b"m").expect("the old key signs");
    }

    /// Rewrapping an unlocked keystore needs its current secret: being
    /// allowed to manage keys is not enough to put the data key under a
    /// PIN or token of one's own. Checked before any TPM is reached.
    #[test]
    fn wrapping_an_existing_keystore_needs_its_current_secret() {
        let d = tempfile::tempdir().expect("tempdir");
        let b = SoftBackend::open(d.path().join("keystore.json"), false)
            .expect("open")
            .with_tpm_tcti("device:/nonexistent/tpmrm0".into());
        b.unlock(&secret("current")).expect("set");
        let wrap = |current| b.wrap_with_tpm("12345678", &[], None, current);
        assert!(matches!(wrap(None), Err(KeystoreError::PassphraseRequired(_))));
        assert!(matches!(wrap(Some("guess")), Err(KeystoreError::BadPassphrase)));
        // Control: the right one gets as far as the TPM (there is none here).
        assert!(matches!(
            wrap(Some("current")),
            Err(KeystoreError::TpmUnavailable(_) | KeystoreError::NotBuilt { .. })
        ));
        assert_eq!(b.info(0).protection, Protection::Passphrase);
    }

    #[test]
    fn keystore_file_has_no_plain_secret() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("keystore.json");
        let b = SoftBackend::open(path.clone(), false).expect("open");
        b.unlock(&secret("hunter2")).expect("set");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("hunter2"));
        assert!(text.contains("\"mode\":\"passphrase\""));
    }
}
