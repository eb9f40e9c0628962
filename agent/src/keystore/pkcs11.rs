//! The PKCS#11 backend (HSMs, smart cards; tested on SoftHSM2) with
//! `cryptoki`.
//!
//! One key pair per cryptoID, generated on the token (`CKK_EC_EDWARDS`,
//! `CKA_TOKEN`, `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`), found again by its
//! random `CKA_ID` (the handle the agent stores); signing is single-part
//! `CKM_EDDSA`. The token is found by label, never by slot number (slots
//! change). The module must live under an allowed directory (like
//! `ssh-agent -P`). The PIN is only ever sent when the user gives one, so
//! the agent never burns PIN retries on probes. A token that goes away makes
//! its keys `backend_unavailable`; the next use reopens it (after a new PIN).

use super::{Backend, KeystoreError, NewKey, UnlockSecret};
use crate::sync::MutexExt;
use cryptoid_protocol::base64;
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::keys::PublicKey;
use cryptoid_protocol::wire::agent::{BackendInfo, Protection};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rand_core::{OsRng, RngCore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use zeroize::Zeroizing;

/// DER of the Ed25519 curve as EC_PARAMS: the printable string
/// "edwards25519" (what SoftHSM and pkcs11-tool use) …
const EC_PARAMS_NAME: &[u8] = b"\x13\x0cedwards25519";
/// … and the OID 1.3.101.112 form, also accepted when reading.
const EC_PARAMS_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// Label of every object the agent makes.
const LABEL: &str = "cryptoid-agent";

/// Directories modules may be loaded from (after resolving links).
pub const DEFAULT_MODULE_DIRS: [&str; 5] = ["/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib", "/lib64"];

/// Where the backend's settings come from (`backend.init`, persisted).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Settings {
    pub module: PathBuf,
    pub token: String,
}

struct Open {
    session: Session,
    /// The slot the session is on (the pool opens its sessions there).
    slot: Slot,
    logged_in: bool,
    /// Private-key handles by CKA_ID (valid while the session lives).
    keys: HashMap<Vec<u8>, ObjectHandle>,
}

/// Most sessions signing at once besides the main one. A login is per
/// application, so they share its login; token objects have the same handle
/// in every session of an application.
const MAX_SIGNERS: usize = 4;

/// Extra sessions so that concurrent requests sign in parallel instead of
/// queueing on the main session's lock.
#[derive(Default)]
struct Signers {
    idle: Vec<Session>,
    /// Open sessions of the pool, idle or signing.
    open: usize,
}

pub struct Pkcs11Backend {
    settings: Pkcs11Settings,
    ctx: Arc<Pkcs11>,
    state: Mutex<Option<Open>>,
    signers: Mutex<Signers>,
}

/// One initialised context per module in the process: a second
/// `C_Initialize` fails, and a `C_Finalize` would pull the rug from under
/// every other user of the module (the backend and wrap mode may share one).
fn context(module: &Path) -> Result<Arc<Pkcs11>, KeystoreError> {
    static CONTEXTS: Mutex<Vec<(PathBuf, Weak<Pkcs11>)>> = Mutex::new(Vec::new());
    let mut all = CONTEXTS.locked();
    all.retain(|(_, w)| w.strong_count() > 0);
    if let Some(ctx) = all.iter().find(|(m, _)| m == module).and_then(|(_, w)| w.upgrade()) {
        return Ok(ctx);
    }
    let ctx = Pkcs11::new(module).map_err(ck)?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).map_err(ck)?;
    let ctx = Arc::new(ctx);
    all.push((module.to_owned(), Arc::downgrade(&ctx)));
    Ok(ctx)
}

/// The slot of the token labelled `label`.
fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, KeystoreError> {
    for slot in ctx.get_slots_with_token().map_err(ck)? {
        if let Ok(info) = ctx.get_token_info(slot) {
            if info.label().trim_end() == label {
                return Ok(slot);
            }
        }
    }
    Err(KeystoreError::Unavailable(format!("no PKCS#11 token labelled {label:?} is present")))
}

/// Opens a session and logs in with `pin`, always checking the PIN (a
/// login while the application is logged in would pass any PIN).
fn login(ctx: &Pkcs11, slot: Slot, pin: &str) -> Result<Session, KeystoreError> {
    let session = ctx.open_rw_session(slot).map_err(ck)?;
    let _ = session.logout();
    match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
        Ok(()) => Ok(session),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
            let info = ctx.get_token_info(slot).ok();
            let hint = match info {
                Some(i) if i.user_pin_final_try() => {
                    " (the token says: one try left before the PIN is blocked)"
                }
                Some(i) if i.user_pin_count_low() => " (the token says: few tries left)",
                _ => "",
            };
            Err(KeystoreError::BadPin(hint.to_owned()))
        }
        Err(e) => Err(ck(e)),
    }
}

/// A data key wrapped by an AES key that never leaves the token.
pub struct Wrapped {
    pub key_id: Vec<u8>,
    pub iv: [u8; 12],
    pub ciphertext: Vec<u8>,
}

const WRAP_AAD: &[u8] = b"cryptoid-agent data key";

/// Wrap mode: makes an AES-256 key on the token (sensitive, never
/// extractable) and encrypts `data_key` under it with AES-GCM.
pub fn wrap_data_key(
    settings: &Pkcs11Settings,
    allowed: &[PathBuf],
    pin: &str,
    data_key: &[u8; 32],
) -> Result<Wrapped, KeystoreError> {
    let module = check_module(&settings.module, allowed)?;
    let ctx = context(&module)?;
    let slot = find_slot(&ctx, &settings.token)?;
    let mechs = ctx.get_mechanism_list(slot).map_err(ck)?;
    if !mechs.contains(&MechanismType::AES_KEY_GEN) || !mechs.contains(&MechanismType::AES_GCM) {
        return Err(KeystoreError::Unavailable(format!(
            "token {:?} has no AES-GCM, which wrap mode needs",
            settings.token
        )));
    }
    let session = login(&ctx, slot, pin)?;
    let mut key_id = vec![0u8; 16];
    OsRng.fill_bytes(&mut key_id);
    let key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::ValueLen(32u64.into()),
                Attribute::Label(b"cryptoid-agent wrap".to_vec()),
                Attribute::Id(key_id.clone()),
            ],
        )
        .map_err(ck)?;
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let mut iv_param = iv;
    let params = GcmParams::new(&mut iv_param, WRAP_AAD, 128.into()).map_err(ck)?;
    let ciphertext = session.encrypt(&Mechanism::AesGcm(params), key, data_key).map_err(ck)?;
    let _ = session.logout();
    Ok(Wrapped { key_id, iv, ciphertext })
}

/// Wrap mode: decrypts the data key with the token's AES key.
pub fn unwrap_data_key(
    settings: &Pkcs11Settings,
    allowed: &[PathBuf],
    pin: &str,
    w: &Wrapped,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let module = check_module(&settings.module, allowed)?;
    let ctx = context(&module)?;
    let slot = find_slot(&ctx, &settings.token)?;
    let session = login(&ctx, slot, pin)?;
    let found = session
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Id(w.key_id.clone())])
        .map_err(ck)?;
    let key = *found.first().ok_or_else(|| {
        KeystoreError::Unavailable(format!(
            "the wrapping key is not on token {:?} (another token?)",
            settings.token
        ))
    })?;
    let mut iv = w.iv;
    let params = GcmParams::new(&mut iv, WRAP_AAD, 128.into()).map_err(ck)?;
    let plain = Zeroizing::new(session.decrypt(&Mechanism::AesGcm(params), key, &w.ciphertext).map_err(ck)?);
    let _ = session.logout();
    let arr: [u8; 32] = plain.as_slice().try_into().map_err(|_| KeystoreError::Unseal)?;
    Ok(Zeroizing::new(arr))
}

fn ck(e: CkError) -> KeystoreError {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => KeystoreError::BadPin(String::new()),
        CkError::Pkcs11(RvError::PinLocked, _) => KeystoreError::Unavailable(
            "the token's user PIN is blocked: reset it with the SO PIN (pkcs11-tool --init-pin, softhsm2-util)".into(),
        ),
        CkError::Pkcs11(
            rv @ (RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::SlotIdInvalid),
            f,
        ) => KeystoreError::Unavailable(format!("the token went away ({f}: {rv})")),
        CkError::Pkcs11(RvError::UserNotLoggedIn, _) => KeystoreError::PinRequired("pkcs11"),
        other => KeystoreError::Unavailable(format!("PKCS#11: {other}")),
    }
}

/// Checks the module path against the allowlist (links resolved).
pub fn check_module(module: &Path, allowed: &[PathBuf]) -> Result<PathBuf, KeystoreError> {
    let real = std::fs::canonicalize(module)
        .map_err(|e| KeystoreError::Unavailable(format!("PKCS#11 module {}: {e}", module.display())))?;
    if allowed.iter().any(|dir| real.starts_with(dir)) {
        Ok(real)
    } else {
        Err(KeystoreError::ModuleNotAllowed {
            module: real.display().to_string(),
            allowed: allowed.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// The 32-byte key out of CKA_EC_POINT: raw, or a DER OCTET STRING.
pub fn parse_ec_point(point: &[u8]) -> Option<[u8; 32]> {
    match point {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest.try_into().ok(),
        raw if raw.len() == 32 => raw.try_into().ok(),
        _ => None,
    }
}

impl Pkcs11Backend {
    /// Loads the module and checks that the token exists and can do
    /// Ed25519. No PIN is used.
    pub fn open(settings: Pkcs11Settings, allowed: &[PathBuf]) -> Result<Pkcs11Backend, KeystoreError> {
        let module = check_module(&settings.module, allowed)?;
        let ctx = context(&module)?;
        let b =
            Pkcs11Backend { settings, ctx, state: Mutex::new(None), signers: Mutex::new(Signers::default()) };
        let slot = b.slot()?;
        let mechs = b.ctx.get_mechanism_list(slot).map_err(ck)?;
        if !mechs.contains(&MechanismType::EDDSA) || !mechs.contains(&MechanismType::ECC_EDWARDS_KEY_PAIR_GEN)
        {
            return Err(KeystoreError::Unavailable(format!(
                "token {:?} has no Ed25519 (CKM_EDDSA and CKM_EC_EDWARDS_KEY_PAIR_GEN): cryptoIDs cannot live on it",
                b.settings.token
            )));
        }
        Ok(b)
    }

    pub fn settings(&self) -> &Pkcs11Settings {
        &self.settings
    }

    fn slot(&self) -> Result<Slot, KeystoreError> {
        for slot in self.ctx.get_slots_with_token().map_err(ck)? {
            if let Ok(info) = self.ctx.get_token_info(slot) {
                if info.label().trim_end() == self.settings.token {
                    return Ok(slot);
                }
            }
        }
        Err(KeystoreError::Unavailable(format!(
            "no PKCS#11 token labelled {:?} is present",
            self.settings.token
        )))
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.state.locked()
    }

    /// Runs `f` on the logged-in session; a vanished token drops it.
    fn with_session<R>(&self, f: impl FnOnce(&mut Open) -> Result<R, CkError>) -> Result<R, KeystoreError> {
        let mut st = self.lock_state();
        let open = st.as_mut().filter(|o| o.logged_in).ok_or(KeystoreError::PinRequired("pkcs11"))?;
        let result = f(open).map_err(ck);
        drop(st);
        result.inspect_err(|e| self.forget_if_gone(e))
    }

    /// After an error from the token: when it is gone or logged out, forgets
    /// every session (main and pool); the next unlock reopens.
    fn forget_if_gone(&self, err: &KeystoreError) {
        if matches!(err, KeystoreError::Unavailable(_) | KeystoreError::PinRequired(_)) {
            self.close_signers();
            *self.lock_state() = None;
        }
    }

    fn signers(&self) -> std::sync::MutexGuard<'_, Signers> {
        self.signers.locked()
    }

    /// An idle pool session, or a new one while the pool is not full.
    fn take_signer(&self, slot: Slot) -> Option<Session> {
        let mut pool = self.signers();
        if let Some(s) = pool.idle.pop() {
            return Some(s);
        }
        if pool.open >= MAX_SIGNERS {
            return None;
        }
        let s = self.ctx.open_ro_session(slot).ok()?;
        pool.open += 1;
        Some(s)
    }

    /// Closes the idle pool sessions; busy ones are closed when they fail.
    fn close_signers(&self) {
        let mut pool = self.signers();
        pool.open -= pool.idle.len();
        pool.idle.clear();
    }

    fn find_private(open: &mut Open, id: &[u8]) -> Result<ObjectHandle, CkError> {
        if let Some(h) = open.keys.get(id) {
            return Ok(*h);
        }
        let found = open
            .session
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Id(id.to_vec())])?;
        let h = found
            .first()
            .copied()
            .ok_or(CkError::Pkcs11(RvError::KeyHandleInvalid, cryptoki::context::Function::FindObjects))?;
        open.keys.insert(id.to_vec(), h);
        Ok(h)
    }

    fn handle_id(handle: &Value) -> Result<Vec<u8>, KeystoreError> {
        handle
            .as_object()
            .and_then(|h| h.get("id"))
            .and_then(Value::as_str)
            .and_then(|s| base64::decode(s).ok())
            .ok_or_else(|| KeystoreError::Corrupt {
                path: "key record".into(),
                why: "no PKCS#11 key id".into(),
            })
    }

    /// Reads CKA_SENSITIVE/EXTRACTABLE of a key (for `keys.get` and tests).
    pub fn is_protected(&self, handle: &Value) -> Result<bool, KeystoreError> {
        let id = Self::handle_id(handle)?;
        self.with_session(|o| {
            let h = Self::find_private(o, &id)?;
            let attrs =
                o.session.get_attributes(h, &[AttributeType::Sensitive, AttributeType::Extractable])?;
            let sensitive = attrs.iter().any(|a| matches!(a, Attribute::Sensitive(true)));
            let extractable = attrs.iter().any(|a| matches!(a, Attribute::Extractable(true)));
            Ok(sensitive && !extractable)
        })
    }
}

impl Backend for Pkcs11Backend {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    fn info(&self, keys: u64) -> BackendInfo {
        BackendInfo {
            name: "pkcs11".into(),
            available: self.slot().is_ok(),
            locked: self.is_locked(),
            protection: Protection::Pin,
            algorithms: vec!["ed25519".into()],
            max_message_len: None,
            capacity: None,
            keys,
        }
    }

    fn is_locked(&self) -> bool {
        !self.lock_state().as_ref().is_some_and(|o| o.logged_in)
    }

    fn unlock(&self, secret: &UnlockSecret<'_>) -> Result<(), KeystoreError> {
        let pin = secret.pin.ok_or(KeystoreError::PinRequired("pkcs11"))?;
        self.lock();
        let slot = self.slot()?;
        let session = login(&self.ctx, slot, pin)?;
        *self.lock_state() = Some(Open { session, slot, logged_in: true, keys: HashMap::new() });
        Ok(())
    }

    fn lock(&self) {
        self.close_signers();
        if let Some(o) = self.lock_state().take() {
            let _ = o.session.logout();
        }
    }

    fn generate(&self) -> Result<NewKey, KeystoreError> {
        let mut id = vec![0u8; 16];
        OsRng.fill_bytes(&mut id);
        let (public, _) = self.with_session(|o| {
            let pub_tmpl = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::EcParams(EC_PARAMS_NAME.to_vec()),
                Attribute::Verify(true),
                Attribute::Label(LABEL.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            let priv_tmpl = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Label(LABEL.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            let (pubh, privh) =
                o.session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &pub_tmpl, &priv_tmpl)?;
            let attrs = o.session.get_attributes(pubh, &[AttributeType::EcPoint, AttributeType::EcParams])?;
            let mut point = None;
            for a in attrs {
                match a {
                    Attribute::EcPoint(p) => point = parse_ec_point(&p),
                    Attribute::EcParams(p) if p != EC_PARAMS_NAME && p != EC_PARAMS_OID => point = None,
                    _ => {}
                }
            }
            o.keys.insert(id.clone(), privh);
            Ok((point, privh))
        })?;
        let public = public.ok_or_else(|| {
            KeystoreError::Unavailable("the token returned no usable Ed25519 public key".into())
        })?;
        let mut handle = Object::new();
        handle.insert("id".into(), Value::String(base64::encode(&id)));
        handle.insert("token".into(), Value::String(self.settings.token.clone()));
        Ok(NewKey { public: PublicKey::from_bytes(public), handle: Value::Object(handle) })
    }

    fn sign(&self, public: &PublicKey, handle: &Value, message: &[u8]) -> Result<[u8; 64], KeystoreError> {
        let id = Self::handle_id(handle)?;
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let (h, slot) = self.with_session(|o| Ok((Self::find_private(o, &id)?, o.slot)))?;
        let sig = match self.take_signer(slot) {
            Some(session) => match session.sign(&mechanism, h, message) {
                Ok(sig) => {
                    self.signers().idle.push(session);
                    sig
                }
                Err(e) => {
                    drop(session);
                    self.signers().open -= 1;
                    let err = ck(e);
                    self.forget_if_gone(&err);
                    return Err(err);
                }
            },
            // All pool sessions busy: the main one, in turn.
            None => self.with_session(|o| o.session.sign(&mechanism, h, message))?,
        };
        let sig: [u8; 64] = sig.try_into().map_err(|_| {
            KeystoreError::Unavailable("the token returned a signature that is not 64 bytes".into())
        })?;
        // A token must never make us release a wrong signature.
        public
            .verify(message, &sig)
            .map_err(|_| KeystoreError::Unavailable("the token's signature does not verify".into()))?;
        Ok(sig)
    }

    fn destroy(&self, _public: &PublicKey, handle: &Value) -> Result<(), KeystoreError> {
        let id = Self::handle_id(handle)?;
        self.with_session(|o| {
            for obj in o.session.find_objects(&[Attribute::Id(id.clone())])? {
                o.session.destroy_object(obj)?;
            }
            o.keys.remove(&id);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_encodings() {
        let k = [7u8; 32];
        let mut der = vec![0x04, 0x20];
        der.extend_from_slice(&k);
        assert_eq!(parse_ec_point(&der), Some(k));
        assert_eq!(parse_ec_point(&k), Some(k));
        assert_eq!(parse_ec_point(&[0x04, 0x21, 1]), None);
    }

    #[test]
    fn module_allowlist() {
        let allowed = vec![PathBuf::from("/usr/lib")];
        assert!(check_module(Path::new("/nonexistent/lib.so"), &allowed).is_err());
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("evil.so");
        std::fs::write(&f, b"").expect("write");
        let e = check_module(&f, &allowed).expect_err("outside");
        assert!(matches!(e, KeystoreError::ModuleNotAllowed { .. }), "{e}");
    }
}
