//! Recovery keys: a secret-storage key written for people. The bytes
//! `0x8B 0x01`, the 32-byte key, and a parity byte (the XOR of all bytes
//! before it), in Base58 (the Bitcoin alphabet), shown in groups of four.
//! Reading ignores whitespace.

use super::SecretKey;
use zeroize::Zeroizing;

const PREFIX: [u8; 2] = [0x8b, 0x01];
const LEN: usize = PREFIX.len() + 32 + 1;

/// Why a recovery key does not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoveryKeyError {
    #[error(
        "the recovery key has a character outside Base58 (typo? letters O, I, l and digit 0 are never used)"
    )]
    NotBase58,
    #[error("the recovery key is {0} bytes long, not {LEN}: a group is missing or extra")]
    Length(usize),
    #[error("this is not a Matrix recovery key (wrong prefix)")]
    Prefix,
    #[error("the recovery key's parity check fails: a character is mistyped")]
    Parity,
}

/// The recovery key of `key`, in groups of four characters.
pub fn encode(key: &SecretKey) -> Zeroizing<String> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(LEN));
    bytes.extend_from_slice(&PREFIX);
    bytes.extend_from_slice(key.as_bytes());
    let parity = bytes.iter().fold(0u8, |a, b| a ^ b);
    bytes.push(parity);
    let plain = Zeroizing::new(bs58::encode(bytes.as_slice()).into_string());
    let mut out = Zeroizing::new(String::with_capacity(plain.len() + plain.len() / 4));
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Longest text read as a recovery key: 48 Base58 characters in groups of
/// four take 59; more is not a recovery key (and Base58 decoding is
/// quadratic in its length).
const MAX_TEXT: usize = 128;

/// Reads a recovery key (whitespace anywhere is ignored).
pub fn decode(text: &str) -> Result<SecretKey, RecoveryKeyError> {
    if text.len() > MAX_TEXT {
        return Err(RecoveryKeyError::Length(text.len()));
    }
    let compact: Zeroizing<String> = Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    let bytes =
        Zeroizing::new(bs58::decode(compact.as_str()).into_vec().map_err(|_| RecoveryKeyError::NotBase58)?);
    if bytes.len() != LEN {
        return Err(RecoveryKeyError::Length(bytes.len()));
    }
    if bytes[..2] != PREFIX {
        return Err(RecoveryKeyError::Prefix);
    }
    if bytes.iter().fold(0u8, |a, b| a ^ b) != 0 {
        return Err(RecoveryKeyError::Parity);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[2..34]);
    let k = SecretKey::from_bytes(key);
    zeroize::Zeroize::zeroize(&mut key);
    Ok(k)
}
