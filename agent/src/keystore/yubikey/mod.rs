//! YubiKey PIV: cryptoIDs as Ed25519 keys generated on the card in the
//! twenty retired slots (firmware 5.7+).
//!
//! Management (finding the management key, generating) goes through the
//! `yubikey` crate; signing and key agreement send their own APDUs through
//! [`card::CardLink`], because the crate's signing panics or refuses on
//! long messages (see [`super::piv`]). Every card operation is one short
//! PC/SC transaction; the PIN is verified inside it, so a card reset by
//! another program in between costs nothing.

mod card;
pub mod holders;

use super::{Backend, KeystoreError, NewKey, UnlockSecret, YubiKeySettings};
use crate::keystore::piv::{alg, slot};
use crate::sync::MutexExt;
use card::CardLink;
use cryptoid_protocol::json::{Int, Object, Value};
use cryptoid_protocol::keys::PublicKey;
use cryptoid_protocol::wire::agent::BackendInfo;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

pub use card::{list, pick, Found};

pub mod wrap;

/// Told when the card waits for a touch and when it is done; the agent
/// logs it, signals it on D-Bus and shows a desktop notification.
pub type TouchNotice = Arc<dyn Fn(Touch) + Send + Sync>;

/// A touch the card waits for, or its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Touch {
    /// Awaited; the text says which card, which key and why.
    Awaited(String),
    /// The card answered (signed, or failed): nothing is awaited any more.
    Done,
}

/// The retired slots the agent's key records name: `(active, deleted)`.
/// Deleted keys' slots may be reused; nothing else on the card is touched.
pub type SlotsInUse = Arc<dyn Fn() -> (Vec<u8>, Vec<u8>) + Send + Sync>;

/// How the agent talks back to the YubiKey backend.
#[derive(Clone)]
pub struct Hooks {
    pub touch: TouchNotice,
    pub slots: SlotsInUse,
}

pub struct YubiKeyBackend {
    settings: YubiKeySettings,
    link: Mutex<CardLink>,
    pin: Mutex<Option<Zeroizing<String>>>,
    hooks: Hooks,
}

/// The slot a key handle names (for [`SlotsInUse`]).
pub fn handle_slot(handle: &Value) -> Option<u8> {
    handle.as_object()?.get("slot")?.as_int().and_then(|s| u8::try_from(s).ok())
}

/// A touch policy by name, as the card encodes it.
pub fn touch_policy(name: &str) -> Result<u8, KeystoreError> {
    match name {
        "never" => Ok(0x01),
        "always" => Ok(0x02),
        "cached" => Ok(0x03),
        other => Err(KeystoreError::Invalid(format!(
            "unknown touch policy {other:?}: use never, always or cached"
        ))),
    }
}

fn touch_name(policy: u8) -> &'static str {
    match policy {
        0x02 => "always",
        0x03 => "cached",
        _ => "never",
    }
}

impl YubiKeyBackend {
    /// Opens the card with `settings.serial`; fails if it is not present.
    pub fn open(settings: YubiKeySettings, hooks: Hooks) -> Result<YubiKeyBackend, KeystoreError> {
        touch_policy(&settings.touch)?;
        let link = CardLink::new(settings.serial);
        let b = YubiKeyBackend { settings, link: Mutex::new(link), pin: Mutex::new(None), hooks };
        b.link().card()?;
        Ok(b)
    }

    pub fn settings(&self) -> &YubiKeySettings {
        &self.settings
    }

    fn link(&self) -> std::sync::MutexGuard<'_, CardLink> {
        self.link.locked()
    }

    fn cached_pin(&self) -> Option<Zeroizing<String>> {
        self.pin.locked().clone()
    }

    /// The slot a handle names, checked.
    fn handle_slot(&self, handle: &Value) -> Result<(u8, u8), KeystoreError> {
        let o = handle.as_object();
        let get = |k: &str| o.and_then(|o| o.get(k));
        let serial = get("serial").and_then(Value::as_int);
        let slot = handle_slot(handle);
        let touch = get("touch").and_then(Value::as_str).unwrap_or("never");
        match (serial, slot) {
            (Some(s), Some(k)) if s == i64::from(self.settings.serial) && slot::RETIRED.contains(&k) => {
                Ok((k, touch_policy(touch)?))
            }
            (Some(s), Some(_)) => Err(KeystoreError::Unavailable(format!(
                "this key is on YubiKey {s}, but the agent is set up for YubiKey {}",
                self.settings.serial
            ))),
            _ => Err(KeystoreError::Corrupt { path: "key record".into(), why: "bad YubiKey handle".into() }),
        }
    }

    /// A PIN the card refuses now was changed behind our back: forget it,
    /// or every signature would cost one of the card's few tries.
    fn forget_refused_pin(&self, e: KeystoreError) -> KeystoreError {
        match e {
            e @ KeystoreError::BadPin(_) => {
                self.lock();
                KeystoreError::PinNoLongerAccepted(Box::new(e))
            }
            e => e,
        }
    }

    /// The PIN, or `pin_required` with the command that gives it.
    fn pin(&self) -> Result<Zeroizing<String>, KeystoreError> {
        self.cached_pin().ok_or(KeystoreError::PinRequired("yubikey"))
    }
}

impl Backend for YubiKeyBackend {
    fn name(&self) -> &'static str {
        "yubikey"
    }

    fn info(&self, keys: u64) -> BackendInfo {
        BackendInfo {
            name: "yubikey".into(),
            available: self.link().present(),
            locked: self.is_locked(),
            protection: self.settings.protection(),
            algorithms: vec!["ed25519".into()],
            max_message_len: Some(card::MAX_MESSAGE as u64),
            capacity: Some(slot::RETIRED.count() as u64),
            keys,
        }
    }

    fn is_locked(&self) -> bool {
        self.cached_pin().is_none()
    }

    fn unlock(&self, secret: &UnlockSecret<'_>) -> Result<(), KeystoreError> {
        let pin = secret.pin.ok_or(KeystoreError::PinRequired("yubikey"))?;
        self.link().verify_pin(pin)?;
        *self.pin.locked() = Some(Zeroizing::new(pin.to_owned()));
        Ok(())
    }

    fn lock(&self) {
        *self.pin.locked() = None;
    }

    fn generate(&self) -> Result<NewKey, KeystoreError> {
        let pin = self.pin()?;
        let touch = touch_policy(&self.settings.touch)?;
        let mut link = self.link();
        let found = link.card()?;
        if found.version < [5, 7, 0] {
            let [major, minor, patch] = found.version;
            return Err(KeystoreError::FirmwareTooOld {
                serial: found.serial,
                version: format!("{major}.{minor}.{patch}"),
            });
        }
        let (active, deleted) = (self.hooks.slots)();
        let free = link.free_retired_slot(&active, &deleted)?;
        let public = card::generate(self.settings.serial, &pin, free, alg::ED25519, touch)?;
        let public: [u8; 32] = public.try_into().map_err(|_| {
            KeystoreError::Unavailable("the YubiKey returned a malformed Ed25519 public key".into())
        })?;
        let mut h = Object::new();
        h.insert("serial".into(), Value::from(Int::from(self.settings.serial)));
        h.insert("slot".into(), Value::from(Int::from(u32::from(free))));
        h.insert("touch".into(), Value::from(touch_name(touch)));
        Ok(NewKey { public: PublicKey::from_bytes(public), handle: Value::Object(h) })
    }

    fn sign(&self, public: &PublicKey, handle: &Value, message: &[u8]) -> Result<[u8; 64], KeystoreError> {
        let (key, touch) = self.handle_slot(handle)?;
        let pin = self.pin()?;
        let touching = touch != 0x01;
        if touching {
            (self.hooks.touch)(Touch::Awaited(format!(
                "touch your YubiKey {} to sign with cryptoID {} (touch policy: {})",
                self.settings.serial,
                public.to_base64(),
                touch_name(touch)
            )));
        }
        let sig = self.link().sign(&pin, key, message);
        if touching {
            (self.hooks.touch)(Touch::Done);
        }
        let sig = sig.map_err(|e| self.forget_refused_pin(e))?;
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| KeystoreError::Unavailable("the YubiKey returned a malformed signature".into()))?;
        // A card that signs with another key than the record says is a
        // wrong slot or a swapped card: never hand out its signature.
        if public.verify(message, &sig).is_err() {
            return Err(KeystoreError::Unavailable(format!(
                "slot {key:02x} of YubiKey {} no longer holds cryptoID {} (was it replaced on the card?)",
                self.settings.serial,
                public.to_base64()
            )));
        }
        Ok(sig)
    }

    fn destroy(&self, _public: &PublicKey, handle: &Value) -> Result<(), KeystoreError> {
        // PIV has no "delete key"; the slot is overwritten by the next key
        // generated there, and the record no longer points at it.
        self.handle_slot(handle).map(|_| ())
    }
}
