//! Wrap mode with a YubiKey: the software keystore's data key is sealed
//! under a key derived from ECDH between an ephemeral P-256 key (made once,
//! at set-up; its secret is discarded) and the card's key-agreement key in
//! slot 9d, which never leaves the card. Unlocking asks the card for the
//! same ECDH (PIN, and touch if its policy says so); nothing on disk alone
//! recovers the data key.

use super::card::{self, CardLink};
use crate::keystore::piv::{alg, slot};
use crate::keystore::KeystoreError;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// What `keystore.json` keeps to unwrap, and the key to seal with.
pub struct WrapKey {
    pub serial: u32,
    /// The 9d key, uncompressed.
    pub card_public: Vec<u8>,
    /// The ephemeral key, uncompressed.
    pub ephemeral_public: Vec<u8>,
    pub kek: Zeroizing<[u8; 32]>,
}

/// Binds the KEK to both public keys and to its purpose.
fn kek(shared: &[u8], ephemeral_public: &[u8], card_public: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"cryptoid-agent yubikey wrap v1");
    h.update(shared);
    h.update(ephemeral_public);
    h.update(card_public);
    Zeroizing::new(h.finalize().into())
}

fn bad_point(what: &str) -> KeystoreError {
    KeystoreError::Unavailable(format!("{what} is not a P-256 point"))
}

/// Set-up: picks the card, makes sure slot 9d holds a P-256 key (generating
/// one there if the slot is empty; an existing P-256 key is used as it is:
/// ECDH does not change it), and derives a fresh KEK.
pub fn new_wrap_key(serial: Option<u32>, pin: &str, touch: u8) -> Result<WrapKey, KeystoreError> {
    let serial = card::pick(serial)?;
    let mut link = CardLink::new(serial);
    link.verify_pin(pin)?;
    let card_public = match link.slot_public(slot::KEY_MANAGEMENT)? {
        Some((alg::P256, point)) => point,
        Some((other, _)) => {
            return Err(KeystoreError::Unavailable(format!(
                "slot 9d of YubiKey {serial} holds a key of algorithm {other:#04x}, not P-256; \
                 wrap mode needs a P-256 key there (`ykman piv keys generate -a ECCP256 9d -`)"
            )))
        }
        None => card::generate(serial, pin, slot::KEY_MANAGEMENT, alg::P256, touch)?,
    };
    let card_key = p256::PublicKey::from_sec1_bytes(&card_public).map_err(|_| bad_point("slot 9d's key"))?;
    let ephemeral = loop {
        let mut b = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut b[..]);
        if let Ok(k) = p256::SecretKey::from_slice(&b[..]) {
            break k;
        }
    };
    let ephemeral_public = ephemeral.public_key().to_sec1_bytes().to_vec();
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), card_key.as_affine());
    let kek = kek(shared.raw_secret_bytes(), &ephemeral_public, &card_public);
    // The card must agree, or the keystore could never be unlocked again.
    let check = link.ecdh(pin, &ephemeral_public)?;
    if check.as_slice() != shared.raw_secret_bytes().as_slice() {
        return Err(KeystoreError::Unavailable(format!(
            "YubiKey {serial}'s key agreement gave another result than its public key predicts"
        )));
    }
    Ok(WrapKey { serial, card_public, ephemeral_public, kek })
}

/// Unlock: the card's ECDH with the stored ephemeral key gives the KEK.
pub fn unwrap_key(
    serial: u32,
    card_public: &[u8],
    ephemeral_public: &[u8],
    pin: &str,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let mut link = CardLink::new(serial);
    tracing::info!("unlocking the keystore with YubiKey {serial} (touch it if it blinks)");
    let shared = Zeroizing::new(link.ecdh(pin, ephemeral_public)?);
    Ok(kek(&shared, ephemeral_public, card_public))
}
