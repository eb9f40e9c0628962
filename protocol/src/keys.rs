//! Ed25519 keys and cryptoIDs.
//!
//! A cryptoID is the standard unpadded Base64 of a 32-byte Ed25519 public key
//! (no sigil). It is both the event `sender` and the signature entity, with
//! the fixed key ID [`CRYPTOID_KEY_ID`].

use crate::base64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use std::fmt;
use zeroize::Zeroizing;

/// The key ID every cryptoID signs under (gomatrixserverlib `JSONVerifierSelf`,
/// matrix-rust-sdk `Ed25519KeyPair(.., "1")`).
pub const CRYPTOID_KEY_ID: &str = "ed25519:1";

/// Errors about key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid Ed25519 public key {0:?}: expected unpadded Base64 of 32 bytes")]
    BadPublicKey(String),
    #[error("not a valid Ed25519 point: {0:?}")]
    NotOnCurve(String),
    #[error("invalid Ed25519 seed: expected unpadded Base64 of 32 bytes")]
    BadSeed,
    #[error("invalid signature: expected unpadded Base64 of 64 bytes")]
    BadSignatureEncoding,
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }

    /// Parses a Base64 public key (a cryptoID, a server key).
    pub fn from_base64(s: &str) -> Result<PublicKey, KeyError> {
        base64::decode_array::<32>(s).map(PublicKey).map_err(|_| KeyError::BadPublicKey(s.to_owned()))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The canonical cryptoID string: standard unpadded Base64.
    pub fn to_base64(&self) -> String {
        base64::encode(&self.0)
    }

    /// Verifies with the strict rules (no small-order keys, canonical `S`),
    /// as gomatrixserverlib's `StrictValiditySignatureCheck` requires.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), VerifyFailure> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| VerifyFailure::BadKey)?;
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &sig).map_err(|_| VerifyFailure::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// Why a signature did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    #[error("the public key is not a valid Ed25519 point")]
    BadKey,
    #[error("the signature does not verify")]
    BadSignature,
}

/// An Ed25519 key pair held in memory. The secret is zeroized on drop.
pub struct KeyPair {
    signing: SigningKey,
}

impl KeyPair {
    /// Builds a key pair from a 32-byte seed (the secret key).
    pub fn from_seed(seed: &[u8; 32]) -> KeyPair {
        KeyPair { signing: SigningKey::from_bytes(seed) }
    }

    /// Builds a key pair from a Base64 seed, as in Synapse key files.
    pub fn from_base64_seed(s: &str) -> Result<KeyPair, KeyError> {
        let seed = Zeroizing::new(base64::decode_array::<32>(s.trim()).map_err(|_| KeyError::BadSeed)?);
        Ok(KeyPair::from_seed(&seed))
    }

    /// The secret seed. Callers must keep it in zeroizing storage.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// The cryptoID of this key: its public key in standard unpadded Base64.
    pub fn cryptoid(&self) -> String {
        self.public_key().to_base64()
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "KeyPair({})", self.cryptoid())
    }
}

/// Anything that can produce Ed25519 signatures: an in-memory [`KeyPair`], or
/// a hardware key in the agent.
pub trait Signer {
    type Error;
    fn public_key(&self) -> PublicKey;
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], Self::Error>;
}

impl Signer for KeyPair {
    type Error = std::convert::Infallible;

    fn public_key(&self) -> PublicKey {
        KeyPair::public_key(self)
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], Self::Error> {
        Ok(KeyPair::sign(self, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_seed_gives_spec_public_key() {
        let kp = KeyPair::from_base64_seed("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1").expect("seed");
        assert_eq!(kp.cryptoid(), "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI");
        assert_eq!(format!("{kp:?}"), "KeyPair(XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI)");
    }

    #[test]
    fn sign_and_verify() {
        let kp = KeyPair::from_seed(&[7; 32]);
        let sig = kp.sign(b"msg");
        assert_eq!(kp.public_key().verify(b"msg", &sig), Ok(()));
        assert_eq!(kp.public_key().verify(b"msh", &sig), Err(VerifyFailure::BadSignature));
    }

    #[test]
    fn bad_keys() {
        assert!(matches!(PublicKey::from_base64("abc"), Err(KeyError::BadPublicKey(_))));
        assert!(KeyPair::from_base64_seed("Zm9v").is_err());
    }
}
