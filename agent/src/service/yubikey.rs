//! The YubiKey backend's place in the service: opened lazily from
//! `backends.json`, set up by `backend.init yubikey`, told which retired
//! slots the key records use, and heard when it waits for a touch.

use super::Service;
use crate::error::{Error, Result};
use crate::keystore::Backend;
#[cfg(feature = "yubikey")]
use crate::sync::MutexExt;
use cryptoid_protocol::wire::agent::BackendInfo;
use cryptoid_protocol::wire::backend::InitParams;
use cryptoid_protocol::wire::ErrorKind;
use std::sync::Arc;

#[cfg(not(feature = "yubikey"))]
fn built_without_yubikey() -> Error {
    Error::new(
        ErrorKind::BackendUnavailable,
        "this agent was built without YubiKey support (cargo feature `yubikey`)",
    )
}

#[cfg(not(feature = "yubikey"))]
impl Service {
    pub(super) fn yubikey_backend(&self) -> Result<Arc<dyn Backend>> {
        Err(built_without_yubikey())
    }

    pub(super) fn yubikey_init(&self, _p: &InitParams) -> Result<BackendInfo> {
        Err(built_without_yubikey())
    }

    pub(super) fn yubikey_lock(&self) {}

    pub(super) fn wrap_with_yubikey(&self, _p: &InitParams) -> Result<BackendInfo> {
        Err(built_without_yubikey())
    }

    pub(super) fn yubikey_info(&self) -> Option<BackendInfo> {
        None
    }
}

#[cfg(feature = "yubikey")]
mod enabled {
    use super::*;
    use crate::keystore::yubikey::{self, Hooks, YubiKeyBackend};
    use crate::keystore::{UnlockSecret, YubiKeySettings};
    use crate::service::{open_once, read_backends, unavailable_info, Event};
    use cryptoid_protocol::wire::keys::KeyState;
    use std::sync::atomic::Ordering;

    impl Service {
        fn yubikey_hooks(&self) -> Hooks {
            let events = self.events.clone();
            let registry = self.registry.clone();
            Hooks {
                touch: Arc::new(move |why: String| {
                    tracing::warn!("{why}");
                    let _ = events.send(Event::TouchRequested(why));
                }),
                slots: Arc::new(move || {
                    let (mut active, mut deleted) = (Vec::new(), Vec::new());
                    for r in registry.find(|r| r.info.backend == "yubikey") {
                        if let Some(s) = yubikey::handle_slot(&r.handle) {
                            if r.info.state == KeyState::Retired {
                                deleted.push(s);
                            } else {
                                active.push(s);
                            }
                        }
                    }
                    (active, deleted)
                }),
            }
        }

        fn yubikey(&self) -> Result<Arc<YubiKeyBackend>> {
            open_once(&self.yubikey, || {
                let settings = read_backends(&self.backends_path())?.yubikey.ok_or_else(|| {
                    Error::new(
                        ErrorKind::BackendUnavailable,
                        "no YubiKey is set up: run `cryptoidctl backend init yubikey`",
                    )
                })?;
                Ok(YubiKeyBackend::open(settings, self.yubikey_hooks())?)
            })
        }

        pub(in crate::service) fn yubikey_backend(&self) -> Result<Arc<dyn Backend>> {
            Ok(self.yubikey()?)
        }

        /// `backend.init yubikey`: finds the card (by serial, or the only
        /// one), checks the PIN if given, and remembers the card.
        pub(in crate::service) fn yubikey_init(&self, p: &InitParams) -> Result<BackendInfo> {
            let serial = yubikey::pick(self.serial_param(p)?)?;
            let settings =
                YubiKeySettings { serial, touch: p.touch.clone().unwrap_or_else(|| "never".into()) };
            let b = Arc::new(YubiKeyBackend::open(settings.clone(), self.yubikey_hooks())?);
            if let Some(pin) = &p.pin {
                b.unlock(&UnlockSecret { passphrase: None, pin: Some(pin) })?;
            }
            self.update_backends(|all| all.yubikey = Some(settings))?;
            *self.yubikey.locked() = Some(b.clone());
            if p.pin.is_some() {
                self.locked.store(false, Ordering::Release);
            }
            Ok(b.info(self.registry.count_backend("yubikey")))
        }

        /// `backend.init soft --wrap-with yubikey`.
        pub(in crate::service) fn wrap_with_yubikey(&self, p: &InitParams) -> Result<BackendInfo> {
            let pin = p.pin.as_deref().ok_or(crate::keystore::KeystoreError::PinRequired("yubikey"))?;
            let serial = self.serial_param(p)?;
            let touch = yubikey::touch_policy(p.touch.as_deref().unwrap_or("never"))?;
            let serial = self.soft.wrap_with_yubikey(serial, pin, touch)?;
            tracing::info!(serial, "the software keystore is now wrapped by a YubiKey");
            self.locked.store(false, Ordering::Release);
            Ok(self.soft.info(self.registry.count_backend("soft")))
        }

        /// `--serial` (sent as `token`), if given.
        fn serial_param(&self, p: &InitParams) -> Result<Option<u32>> {
            if p.token.is_empty() {
                return Ok(None);
            }
            p.token.parse().map(Some).map_err(|_| {
                Error::new(ErrorKind::InvalidParams, format!("{:?} is not a YubiKey serial number", p.token))
            })
        }

        pub(in crate::service) fn yubikey_lock(&self) {
            if let Some(b) = self.yubikey.locked().as_ref() {
                b.lock();
            }
        }

        /// For `agent.hello`, when a YubiKey is set up.
        pub(in crate::service) fn yubikey_info(&self) -> Option<BackendInfo> {
            let settings = read_backends(&self.backends_path()).ok()?.yubikey?;
            let keys = self.registry.count_backend("yubikey");
            Some(match self.yubikey() {
                Ok(b) => b.info(keys),
                Err(_) => unavailable_info("yubikey", settings.protection(), keys),
            })
        }
    }
}
