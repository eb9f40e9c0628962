//! The backends that hold secrets, composed in one place with their own
//! state and locks: the software keystore (always there), the PKCS#11 token
//! and the YubiKey (opened lazily from `backends.json`, opened again after
//! they went away), and the agent's lock state.

use crate::error::{Error, Result};
use crate::keys::Registry;
use crate::keystore::pkcs11::{Pkcs11Backend, Pkcs11Settings};
use crate::keystore::soft::SoftBackend;
use crate::keystore::{Backend, KeystoreError, UnlockSecret};
use crate::sync::MutexExt;
use cryptoid_protocol::wire::agent::{BackendInfo, LockState, UnlockParams};
use cryptoid_protocol::wire::backend::{InitParams, TpmChangePinParams};
use cryptoid_protocol::wire::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(super) struct Backends {
    pub(super) soft: Arc<SoftBackend>,
    /// Opened lazily from `backends.json`.
    pkcs11: Mutex<Option<Arc<Pkcs11Backend>>>,
    #[cfg(feature = "yubikey")]
    pub(super) yubikey: Mutex<Option<Arc<crate::keystore::yubikey::YubiKeyBackend>>>,
    /// What the YubiKey backend tells the service (touches, slots in use).
    #[cfg(feature = "yubikey")]
    pub(super) hooks: crate::keystore::yubikey::Hooks,
    /// `backends.json`.
    file: PathBuf,
    /// Its contents once read: the agent is its only writer
    /// (`update_file`), so `agent.hello` need not read it again.
    contents: Mutex<Option<BackendsFile>>,
    module_dirs: Vec<PathBuf>,
    locked: AtomicBool,
}

impl Backends {
    pub(super) fn new(
        soft: Arc<SoftBackend>,
        file: PathBuf,
        module_dirs: Vec<PathBuf>,
        #[cfg(feature = "yubikey")] hooks: crate::keystore::yubikey::Hooks,
    ) -> Backends {
        let locked = soft.is_locked();
        Backends {
            soft,
            pkcs11: Mutex::new(None),
            #[cfg(feature = "yubikey")]
            yubikey: Mutex::new(None),
            #[cfg(feature = "yubikey")]
            hooks,
            file,
            contents: Mutex::new(None),
            module_dirs,
            locked: AtomicBool::new(locked),
        }
    }

    pub(super) fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    pub(super) fn set_unlocked(&self) {
        self.locked.store(false, Ordering::Release);
    }

    pub(super) fn require_unlocked(&self) -> Result<()> {
        if self.is_locked() {
            return Err(KeystoreError::Locked.into());
        }
        Ok(())
    }

    /// The backend called `name` (default `soft`).
    pub(super) fn get(&self, name: Option<&str>) -> Result<Arc<dyn Backend>> {
        match name.unwrap_or("soft") {
            "soft" => Ok(self.soft.clone()),
            "pkcs11" => Ok(self.pkcs11()?),
            "yubikey" => self.yubikey_backend(),
            other => Err(KeystoreError::NoSuchBackend(other.to_owned()).into()),
        }
    }

    pub(super) fn read_file(&self) -> Result<BackendsFile> {
        loaded(&mut self.contents.locked(), &self.file).cloned()
    }

    /// The PKCS#11 backend, opened on first use (and again after its token
    /// went away and came back).
    fn pkcs11(&self) -> Result<Arc<Pkcs11Backend>> {
        open_once(&self.pkcs11, || {
            let settings = self.read_file()?.pkcs11.ok_or(KeystoreError::NotSetUp {
                what: "PKCS#11 token",
                fix: "cryptoidctl backend init pkcs11 --module M --token LABEL",
            })?;
            Ok(Pkcs11Backend::open(settings, &self.module_dirs)?)
        })
    }

    /// Forgets an open PKCS#11 backend whose token is gone, so the next use
    /// reopens it.
    pub(super) fn drop_pkcs11_if_gone(&self, err: &Error) {
        if err.kind() == ErrorKind::BackendUnavailable {
            *self.pkcs11.locked() = None;
        }
    }

    /// `backend.init`: sets up a token or card (or wraps the software
    /// keystore with one) and remembers it.
    pub(super) fn init(&self, p: &InitParams, registry: &Registry) -> Result<BackendInfo> {
        if p.backend == "soft" {
            if p.wrap_with.as_deref() == Some("yubikey") {
                return self.wrap_with_yubikey(p, registry);
            }
            if p.wrap_with.as_deref() == Some("tpm") {
                let pin = p.pin.as_deref().ok_or(KeystoreError::PinRequired("soft"))?;
                let pcrs = p.pcrs.as_deref().unwrap_or_default();
                self.soft.wrap_with_tpm(pin, pcrs, p.recovery_passphrase.as_deref(), p.current.as_deref())?;
                self.set_unlocked();
                return Ok(self.soft.info(registry.count_backend("soft")));
            }
            if p.wrap_with.as_deref() != Some("pkcs11") {
                return Err(KeystoreError::Invalid(
                    "the software keystore is set up by the first unlock; `--wrap-with pkcs11|yubikey|tpm` wraps it with a token or the TPM"
                        .into(),
                )
                .into());
            }
            if p.pcrs.is_some() || p.recovery_passphrase.is_some() {
                return Err(KeystoreError::Invalid(
                    "--pcrs and --recovery-passphrase belong to `--wrap-with tpm`".into(),
                )
                .into());
            }
            let pin = p.pin.as_deref().ok_or(KeystoreError::PinRequired("pkcs11"))?;
            let settings = Pkcs11Settings { module: PathBuf::from(&p.module), token: p.token.clone() };
            self.soft.wrap_with_pkcs11(&settings, pin, p.current.as_deref())?;
            self.set_unlocked();
            return Ok(self.soft.info(registry.count_backend("soft")));
        }
        if p.backend == "yubikey" {
            return self.yubikey_init(p, registry);
        }
        if p.backend != "pkcs11" {
            return Err(KeystoreError::Invalid(format!(
                "backend {:?} cannot be initialised (use pkcs11 or yubikey)",
                p.backend
            ))
            .into());
        }
        let settings = Pkcs11Settings { module: PathBuf::from(&p.module), token: p.token.clone() };
        let b = Arc::new(Pkcs11Backend::open(settings.clone(), &self.module_dirs)?);
        if let Some(pin) = &p.pin {
            b.unlock(&UnlockSecret { passphrase: None, pin: Some(pin) })?;
        }
        self.update_file(|all| all.pkcs11 = Some(settings))?;
        *self.pkcs11.locked() = Some(b.clone());
        // Logged in with the PIN: as `agent.unlock --backend pkcs11` would.
        if p.pin.is_some() {
            self.set_unlocked();
        }
        Ok(b.info(registry.count_backend("pkcs11")))
    }

    /// `backend.tpm_change_pin`: the TPM-sealed keystore's new PIN.
    pub(super) fn tpm_change_pin(&self, p: &TpmChangePinParams, registry: &Registry) -> Result<BackendInfo> {
        self.soft.change_tpm_pin(&p.pin, &p.new_pin)?;
        Ok(self.soft.info(registry.count_backend("soft")))
    }

    /// Rewrites `backends.json` (atomically) with `f` applied.
    pub(super) fn update_file(&self, f: impl FnOnce(&mut BackendsFile)) -> Result<()> {
        // Held across the write: two updates must not lose one another's.
        let mut cached = self.contents.locked();
        let mut all = loaded(&mut cached, &self.file)?.clone();
        f(&mut all);
        let bytes = serde_json::to_vec(&all).map_err(Error::internal)?;
        // A write that failed late may have replaced the file all the same:
        // read it again next time rather than trust either version.
        *cached = None;
        crate::fsutil::write_atomic(&self.file, &bytes)?;
        *cached = Some(all);
        Ok(())
    }

    /// Every backend for `agent.hello`, with its key count.
    pub(super) fn infos(&self, registry: &Registry) -> Vec<BackendInfo> {
        let mut out = vec![self.soft.info(registry.count_backend("soft"))];
        let configured = self.read_file().ok().and_then(|b| b.pkcs11).is_some();
        if configured {
            let keys = registry.count_backend("pkcs11");
            out.push(match self.pkcs11() {
                Ok(b) => b.info(keys),
                Err(_) => unavailable_info("pkcs11", cryptoid_protocol::wire::agent::Protection::Pin, keys),
            });
        }
        out.extend(self.yubikey_info(registry));
        out
    }

    /// Drops every secret from memory.
    pub(super) fn lock(&self) -> LockState {
        self.locked.store(true, Ordering::Release);
        self.soft.lock();
        if let Some(b) = self.pkcs11.locked().as_ref() {
            b.lock();
        }
        self.yubikey_lock();
        LockState { locked: true }
    }

    /// Unlocks; the first unlock of a new keystore sets its passphrase.
    /// Slow on purpose (Argon2id): call off the async runtime.
    pub(super) fn unlock(&self, p: &UnlockParams) -> Result<LockState> {
        let backend = self.get(p.backend.as_deref())?;
        backend
            .unlock(&UnlockSecret { passphrase: p.passphrase.as_deref(), pin: p.pin.as_deref() })
            .map_err(Error::from)
            .inspect_err(|e| self.drop_pkcs11_if_gone(e))?;
        self.set_unlocked();
        Ok(LockState { locked: false })
    }
}

/// `backends.json`: hardware backends set up with `backend.init`.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackendsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pkcs11: Option<Pkcs11Settings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) yubikey: Option<crate::keystore::YubiKeySettings>,
}

/// The cached contents of `backends.json`, read on first use.
fn loaded<'a>(cached: &'a mut Option<BackendsFile>, path: &Path) -> Result<&'a BackendsFile> {
    if cached.is_none() {
        *cached = Some(read_backends(path)?);
    }
    cached.as_ref().ok_or_else(|| Error::internal("backends.json not loaded"))
}

fn read_backends(path: &Path) -> Result<BackendsFile> {
    Error::read_state(path, "run `cryptoidctl backend init` again")
}

/// A hardware backend opened on first use, kept while it works (and opened
/// again after it was dropped).
pub(super) fn open_once<B>(slot: &Mutex<Option<Arc<B>>>, open: impl FnOnce() -> Result<B>) -> Result<Arc<B>> {
    let mut slot = slot.locked();
    if let Some(b) = slot.as_ref() {
        return Ok(b.clone());
    }
    let b = Arc::new(open()?);
    *slot = Some(b.clone());
    Ok(b)
}

/// `agent.hello`'s entry for a configured backend that cannot be opened.
pub(super) fn unavailable_info(
    name: &str,
    protection: cryptoid_protocol::wire::agent::Protection,
    keys: u64,
) -> BackendInfo {
    BackendInfo {
        name: name.into(),
        available: false,
        locked: true,
        protection,
        algorithms: vec!["ed25519".into()],
        max_message_len: None,
        capacity: None,
        keys,
    }
}
