//! The YubiKey backend's place among the backends: opened lazily from
//! `backends.json`, set up by `backend.init yubikey`, told which retired
//! slots the key records use, and heard when it waits for a touch.

use super::backends::Backends;
use crate::error::{KeystoreError, Result};
use crate::keys::Registry;
use crate::keystore::Backend;
#[cfg(feature = "yubikey")]
use crate::sync::MutexExt;
use cryptoid_protocol::wire::agent::BackendInfo;
use cryptoid_protocol::wire::backend::InitParams;
use std::sync::Arc;

#[cfg(not(feature = "yubikey"))]
fn built_without_yubikey() -> crate::error::Error {
    KeystoreError::NotBuilt { what: "YubiKey", feature: "yubikey" }.into()
}

#[cfg(not(feature = "yubikey"))]
impl Backends {
    pub(super) fn yubikey_backend(&self) -> Result<Arc<dyn Backend>> {
        Err(built_without_yubikey())
    }

    pub(super) fn yubikey_init(&self, _p: &InitParams, _registry: &Registry) -> Result<BackendInfo> {
        Err(built_without_yubikey())
    }

    pub(super) fn yubikey_lock(&self) {}

    pub(super) fn wrap_with_yubikey(&self, _p: &InitParams, _registry: &Registry) -> Result<BackendInfo> {
        Err(built_without_yubikey())
    }

    pub(super) fn yubikey_info(&self, _registry: &Registry) -> Option<BackendInfo> {
        None
    }
}

#[cfg(feature = "yubikey")]
pub(super) use enabled::hooks;

#[cfg(feature = "yubikey")]
mod enabled {
    use super::*;
    use crate::keystore::yubikey::{self, Hooks, Touch, YubiKeyBackend};
    use crate::keystore::{UnlockSecret, YubiKeySettings};
    use crate::service::backends::{open_once, unavailable_info};
    use crate::service::Event;
    use cryptoid_protocol::wire::keys::KeyState;

    /// What the card tells the service: a touch is awaited (logged and
    /// announced), and which slots the key records use.
    pub(in crate::service) fn hooks(
        registry: Arc<Registry>,
        events: tokio::sync::broadcast::Sender<Event>,
    ) -> Hooks {
        Hooks {
            touch: Arc::new(move |t: Touch| match t {
                Touch::Awaited(why) => {
                    tracing::warn!("{why}");
                    let _ = events.send(Event::TouchRequested(why));
                }
                Touch::Done => drop(events.send(Event::TouchDone)),
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

    impl Backends {
        fn yubikey(&self) -> Result<Arc<YubiKeyBackend>> {
            open_once(&self.yubikey, || {
                let settings = self.read_file()?.yubikey.ok_or(KeystoreError::NotSetUp {
                    what: "YubiKey",
                    fix: "cryptoidctl backend init yubikey",
                })?;
                Ok(YubiKeyBackend::open(settings, self.hooks.clone())?)
            })
        }

        pub(in crate::service) fn yubikey_backend(&self) -> Result<Arc<dyn Backend>> {
            Ok(self.yubikey()?)
        }

        /// `backend.init yubikey`: finds the card (by serial, or the only
        /// one), checks the PIN if given, and remembers the card.
        pub(in crate::service) fn yubikey_init(
            &self,
            p: &InitParams,
            registry: &Registry,
        ) -> Result<BackendInfo> {
            let serial = yubikey::pick(serial_param(p)?)?;
            let settings =
                YubiKeySettings { serial, touch: p.touch.clone().unwrap_or_else(|| "never".into()) };
            let b = Arc::new(YubiKeyBackend::open(settings.clone(), self.hooks.clone())?);
            if let Some(pin) = &p.pin {
                b.unlock(&UnlockSecret { passphrase: None, pin: Some(pin) })?;
            }
            self.update_file(|all| all.yubikey = Some(settings))?;
            *self.yubikey.locked() = Some(b.clone());
            if p.pin.is_some() {
                self.set_unlocked();
            }
            Ok(b.info(registry.count_backend("yubikey")))
        }

        /// `backend.init soft --wrap-with yubikey`.
        pub(in crate::service) fn wrap_with_yubikey(
            &self,
            p: &InitParams,
            registry: &Registry,
        ) -> Result<BackendInfo> {
            let pin = p.pin.as_deref().ok_or(crate::keystore::KeystoreError::PinRequired("yubikey"))?;
            let serial = serial_param(p)?;
            let touch = yubikey::touch_policy(p.touch.as_deref().unwrap_or("never"))?;
            let serial = self.soft.wrap_with_yubikey(serial, pin, touch, p.current.as_deref())?;
            tracing::info!(serial, "the software keystore is now wrapped by a YubiKey");
            self.set_unlocked();
            Ok(self.soft.info(registry.count_backend("soft")))
        }

        pub(in crate::service) fn yubikey_lock(&self) {
            if let Some(b) = self.yubikey.locked().as_ref() {
                b.lock();
            }
        }

        /// For `agent.hello`, when a YubiKey is set up.
        pub(in crate::service) fn yubikey_info(&self, registry: &Registry) -> Option<BackendInfo> {
            let settings = self.read_file().ok()?.yubikey?;
            let keys = registry.count_backend("yubikey");
            Some(match self.yubikey() {
                Ok(b) => b.info(keys),
                Err(_) => unavailable_info("yubikey", settings.protection(), keys),
            })
        }
    }

    /// `--serial` (sent as `token`), if given.
    fn serial_param(p: &InitParams) -> Result<Option<u32>> {
        if p.token.is_empty() {
            return Ok(None);
        }
        p.token.parse().map(Some).map_err(|_| {
            KeystoreError::Invalid(format!("{:?} is not a YubiKey serial number", p.token)).into()
        })
    }
}
