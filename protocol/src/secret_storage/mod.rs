//! Matrix secret storage (client-server API, "Secret storage"), algorithm
//! `m.secret_storage.v1.aes-hmac-sha2`: how a secret is encrypted into
//! account data under a user's secret-storage key, how that key is checked
//! against its key description, and how it is written down (a recovery key,
//! see [`recovery_key`]) or derived from a passphrase (`m.pbkdf2`).
//!
//! Pure functions: the caller brings the randomness (IVs) and does the I/O.
//!
//! - Per secret, HKDF-SHA-256 (salt: 32 zero bytes, info: the secret's
//!   name) gives a 32-byte AES key and a 32-byte HMAC key; the name is thus
//!   bound to the ciphertext: a secret moved under another name fails its
//!   MAC.
//! - AES-256-CTR with a 16-byte IV whose bit 63 is cleared (so that
//!   implementations counting in 64 or in 128 bits agree); HMAC-SHA-256 over
//!   the ciphertext.
//! - The key check of a key description is the encryption of 32 zero bytes
//!   under the empty name.
//!
//! Base64 is written unpadded, as everywhere in Matrix, and read padded or
//! not (matrix-js-sdk writes it padded).

pub mod recovery_key;

use crate::base64;
use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

/// The algorithm this module implements.
pub const ALGORITHM: &str = "m.secret_storage.v1.aes-hmac-sha2";
/// The passphrase algorithm of a key description.
pub const PBKDF2: &str = "m.pbkdf2";
/// Account data naming the default key: `{"key": key_id}`.
pub const DEFAULT_KEY_TYPE: &str = "m.secret_storage.default_key";
/// Most PBKDF2 iterations accepted from a key description: a homeserver
/// could otherwise make the agent spin for hours.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// AES-CTR as matrix-js-sdk does it (WebCrypto, a 64-bit counter in the
/// last 8 bytes). With bit 63 of the IV cleared, a 128-bit counter gives the
/// same stream for any secret shorter than 2^63 blocks.
type Aes256Ctr = ctr::Ctr64BE<aes::Aes256>;

/// The account-data type of a key description.
pub fn key_type(key_id: &str) -> String {
    format!("m.secret_storage.key.{key_id}")
}

/// A 32-byte secret-storage key, wiped when dropped.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key of a passphrase, by the key description's `m.pbkdf2`
    /// parameters (PBKDF2-HMAC-SHA-512).
    pub fn from_passphrase(passphrase: &str, p: &PassphraseInfo) -> Result<SecretKey, SecretStorageError> {
        if p.algorithm != PBKDF2 {
            return Err(SecretStorageError::UnsupportedPassphrase(p.algorithm.clone()));
        }
        if p.bits.is_some_and(|b| b != 256) {
            return Err(SecretStorageError::UnsupportedPassphrase(format!("{} bits", p.bits.unwrap_or(0))));
        }
        if p.iterations == 0 || p.iterations > MAX_PBKDF2_ITERATIONS {
            return Err(SecretStorageError::Iterations(p.iterations));
        }
        let mut out = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<Sha512>(passphrase.as_bytes(), p.salt.as_bytes(), p.iterations, out.as_mut());
        Ok(SecretKey(out))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

/// `passphrase` of a key description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassphraseInfo {
    pub algorithm: String,
    pub salt: String,
    pub iterations: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
}

/// The content of `m.secret_storage.key.<key_id>`. Unknown fields are kept
/// out of the type but tolerated: other clients may add their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDescription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<PassphraseInfo>,
    /// The key check; a description without one cannot prove a key right,
    /// and is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl KeyDescription {
    /// A description for `key`, with its key check under `iv`.
    pub fn new(key: &SecretKey, iv: [u8; 16], passphrase: Option<PassphraseInfo>) -> KeyDescription {
        let check = encrypt(key, "", &[0u8; 32], iv);
        KeyDescription {
            name: None,
            algorithm: ALGORITHM.into(),
            passphrase,
            iv: Some(check.iv),
            mac: Some(check.mac),
        }
    }

    /// Checks `key` against the key check; `Ok` only if it is this key.
    pub fn check(&self, key: &SecretKey) -> Result<(), SecretStorageError> {
        if self.algorithm != ALGORITHM {
            return Err(SecretStorageError::UnsupportedAlgorithm(self.algorithm.clone()));
        }
        let (Some(iv), Some(mac)) = (&self.iv, &self.mac) else {
            return Err(SecretStorageError::NoKeyCheck);
        };
        let iv = decode_iv(iv)?;
        let expected = base64::decode(mac).map_err(|_| SecretStorageError::Malformed("mac"))?;
        let (aes_key, hmac_key) = derive(key, "");
        let ciphertext = apply_ctr(&aes_key, &iv, &[0u8; 32]);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(hmac_key.as_ref())
            .map_err(|_| SecretStorageError::Crypto)?;
        m.update(&ciphertext);
        m.verify_slice(&expected).map_err(|_| SecretStorageError::WrongKey)
    }
}

/// One secret as stored under one key: `encrypted.<key_id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedSecret {
    pub iv: String,
    pub ciphertext: String,
    pub mac: String,
}

/// What can go wrong with secret storage; each says what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretStorageError {
    #[error("the key does not match the key description's check: wrong recovery key or passphrase")]
    WrongKey,
    #[error(
        "the secret's MAC does not verify: wrong key, or the secret was altered or stored under another name"
    )]
    BadMac,
    #[error("the key description has no key check (iv and mac), so no key can be proven right; set up secret storage again in a client")]
    NoKeyCheck,
    #[error("secret-storage algorithm {0:?} is not supported (only {ALGORITHM})")]
    UnsupportedAlgorithm(String),
    #[error("passphrase scheme {0} is not supported (only m.pbkdf2 with 256 bits)")]
    UnsupportedPassphrase(String),
    #[error(
        "the key description asks for {0} PBKDF2 iterations (1 to {MAX_PBKDF2_ITERATIONS} are accepted)"
    )]
    Iterations(u32),
    #[error("the key description has no passphrase parameters: use the recovery key")]
    NoPassphrase,
    #[error("`{0}` is not valid Base64 of the right length")]
    Malformed(&'static str),
    #[error("the secret is not UTF-8 text")]
    NotText,
    #[error("{0}")]
    RecoveryKey(#[from] recovery_key::RecoveryKeyError),
    #[error("a cryptographic primitive refused its input")]
    Crypto,
}

/// HKDF-SHA-256 of the key for one secret name: (AES key, HMAC key).
fn derive(key: &SecretKey, name: &str) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), key.as_bytes());
    let mut okm = Zeroizing::new([0u8; 64]);
    // 64 bytes is far below HKDF-SHA-256's limit of 8160: cannot fail.
    let _ = hk.expand(name.as_bytes(), okm.as_mut());
    let mut aes = Zeroizing::new([0u8; 32]);
    let mut mac = Zeroizing::new([0u8; 32]);
    aes.copy_from_slice(&okm[..32]);
    mac.copy_from_slice(&okm[32..]);
    (aes, mac)
}

fn apply_ctr(aes_key: &[u8; 32], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut c = Aes256Ctr::new(aes_key.into(), iv.into());
    c.apply_keystream(&mut out);
    out
}

fn decode_iv(iv: &str) -> Result<[u8; 16], SecretStorageError> {
    base64::decode(iv).ok().and_then(|v| v.try_into().ok()).ok_or(SecretStorageError::Malformed("iv"))
}

/// Encrypts `secret` as `name` under `key`. `iv` must be fresh random
/// bytes; its bit 63 is cleared here.
pub fn encrypt(key: &SecretKey, name: &str, secret: &[u8], mut iv: [u8; 16]) -> EncryptedSecret {
    iv[8] &= 0x7f;
    let (aes_key, hmac_key) = derive(key, name);
    let ciphertext = apply_ctr(&aes_key, &iv, secret);
    // HMAC takes keys of any length: cannot fail.
    let mac = <Hmac<Sha256> as Mac>::new_from_slice(hmac_key.as_ref())
        .map(|mut m| {
            m.update(&ciphertext);
            m.finalize().into_bytes().to_vec()
        })
        .unwrap_or_default();
    EncryptedSecret {
        iv: base64::encode(&iv),
        ciphertext: base64::encode(&ciphertext),
        mac: base64::encode(&mac),
    }
}

/// Decrypts a secret stored as `name`; the MAC is checked (in constant
/// time) before anything is decrypted.
pub fn decrypt(
    key: &SecretKey,
    name: &str,
    s: &EncryptedSecret,
) -> Result<Zeroizing<Vec<u8>>, SecretStorageError> {
    let iv = decode_iv(&s.iv)?;
    let ciphertext =
        base64::decode(&s.ciphertext).map_err(|_| SecretStorageError::Malformed("ciphertext"))?;
    let mac = base64::decode(&s.mac).map_err(|_| SecretStorageError::Malformed("mac"))?;
    let (aes_key, hmac_key) = derive(key, name);
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(hmac_key.as_ref()).map_err(|_| SecretStorageError::Crypto)?;
    m.update(&ciphertext);
    m.verify_slice(&mac).map_err(|_| SecretStorageError::BadMac)?;
    Ok(Zeroizing::new(apply_ctr(&aes_key, &iv, &ciphertext)))
}

/// [`decrypt`], for a secret that is text.
pub fn decrypt_text(
    key: &SecretKey,
    name: &str,
    s: &EncryptedSecret,
) -> Result<Zeroizing<String>, SecretStorageError> {
    let bytes = decrypt(key, name, s)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| SecretStorageError::NotText)?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests;
