//! What the card keeps across a removal: saved as JSON beside the test,
//! so that a card pulled out (its process killed) comes back the same.

use super::card::{hex, to_hex, DEFAULT_MGM};
use cryptoid_agent::keystore::piv::alg;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CardState {
    pub serial: u32,
    pub version: [u8; 3],
    pub pin: String,
    pub pin_max: u8,
    pub pin_retries: u8,
    pub mgm_alg: u8,
    /// Hex.
    pub mgm_key: String,
    pub slots: BTreeMap<u8, SlotKey>,
    /// Data objects by id, hex.
    pub objects: BTreeMap<u32, String>,
    /// How long a "touch" takes.
    pub touch_ms: u64,
}

impl Default for CardState {
    fn default() -> CardState {
        CardState {
            serial: 0,
            version: [5, 7, 1],
            pin: "123456".into(),
            pin_max: 3,
            pin_retries: 3,
            mgm_alg: alg::AES192,
            mgm_key: DEFAULT_MGM.into(),
            slots: BTreeMap::new(),
            objects: BTreeMap::new(),
            touch_ms: 200,
        }
    }
}

impl CardState {
    pub fn load(path: &Path) -> std::io::Result<CardState> {
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }

    /// Written to a temp file and renamed: a kill never leaves half a card.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlotKey {
    pub alg: u8,
    /// The secret scalar or seed, hex (a test card: no secrecy needed).
    pub secret: String,
    pub pin_policy: u8,
    pub touch_policy: u8,
}

impl SlotKey {
    pub fn generate(alg: u8, pin_policy: u8, touch_policy: u8) -> SlotKey {
        let secret = loop {
            let mut b = [0u8; 32];
            OsRng.fill_bytes(&mut b);
            // Not every 32 bytes are a P-256 scalar.
            if alg != alg::P256 || p256::SecretKey::from_slice(&b).is_ok() {
                break b;
            }
        };
        SlotKey { alg, secret: to_hex(&secret), pin_policy, touch_policy }
    }

    pub fn ed25519(&self) -> Option<ed25519_dalek::SigningKey> {
        let seed: [u8; 32] = hex(&self.secret)?.try_into().ok()?;
        Some(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub fn p256(&self) -> Option<p256::SecretKey> {
        p256::SecretKey::from_slice(&hex(&self.secret)?).ok()
    }

    /// The public key as the card reports it: 32 bytes for Ed25519, an
    /// uncompressed point for P-256.
    pub fn public(&self) -> Vec<u8> {
        match self.alg {
            alg::ED25519 => self.ed25519().map(|k| k.verifying_key().to_bytes().to_vec()),
            _ => self.p256().map(|k| k.public_key().to_sec1_bytes().to_vec()),
        }
        .unwrap_or_default()
    }
}
