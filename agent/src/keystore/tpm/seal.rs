//! The sealed data object that holds the KEK.
//!
//! - Parent: the owner hierarchy's storage key, made again at each use from
//!   one fixed ECC P-256 template (a TPM derives the same key from the same
//!   template until it is cleared). Its *name* is kept: another TPM, or this
//!   one after `tpm2_clear`, gives another name, which is how "sealed
//!   elsewhere" is told apart from a wrong PIN.
//! - The object: KeyedHash, `fixedTPM | fixedParent`, dictionary-attack
//!   protected (no `noDA`), `userWithAuth` clear and `adminWithPolicy`
//!   set, so neither role opens without its policy: `PolicyAuthValue` (the
//!   PIN) and, when asked, `PolicyPCR` (the PCRs' values at sealing). A PIN
//!   change is therefore an unseal and a new seal.
//! - Every command that carries the PIN's auth value or the KEK runs in a
//!   session salted with the storage key, with parameter encryption both
//!   ways: neither crosses the bus to a discrete TPM in the clear.

use super::{device, lockout, Sealed};
use crate::keystore::KeystoreError;
use sha2::{Digest as _, Sha256};
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::{SessionType, Tss2ResponseCodeKind};
use tss_esapi::handles::{KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Auth, Digest, EccPoint, EccScheme, KeyDerivationFunctionScheme, KeyedHashScheme, PcrSelectionList,
    PcrSelectionListBuilder, PcrSlot, Private, Public, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyedHashParameters, SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;
use zeroize::Zeroizing;

fn tss(what: &str) -> impl FnOnce(tss_esapi::Error) -> KeystoreError + '_ {
    move |e| KeystoreError::TpmUnavailable(format!("the TPM failed to {what}: {e}"))
}

fn kind(e: &tss_esapi::Error) -> Option<Tss2ResponseCodeKind> {
    match e {
        tss_esapi::Error::Tss2Error(rc) => rc.kind(),
        _ => None,
    }
}

/// The auth value: a digest of the PIN, bound to this TPM's storage key
/// (its name, which is checked before any try, so no field of the file can
/// turn a right PIN into a wrong one and spend the TPM's tries); its length
/// never depends on the PIN's.
fn pin_auth(pin: &str, srk_name: &[u8]) -> Result<Auth, KeystoreError> {
    let mut h = Sha256::new();
    h.update(b"cryptoid-agent tpm pin v1\0");
    h.update(srk_name);
    h.update(pin.as_bytes());
    let mut d = Zeroizing::new([0u8; 32]);
    d.copy_from_slice(&h.finalize_reset());
    Auth::try_from(d.to_vec()).map_err(tss("take the PIN"))
}

/// The shortest PIN taken at all, and the shortest while the TPM's lockout
/// authorization is empty: then anyone who reaches the TPM (root, another
/// system booted on this machine) can reset its dictionary-attack counter
/// and guess without end, so the PIN itself must hold.
const MIN_PIN: usize = 4;
const MIN_PIN_WITHOUT_LOCKOUT_AUTH: usize = 8;

fn check_pin_strength(ctx: &mut Context, pin: &str) -> Result<(), KeystoreError> {
    let n = pin.chars().count();
    if n < MIN_PIN {
        return Err(KeystoreError::Invalid(format!("a TPM PIN has at least {MIN_PIN} characters")));
    }
    // TPMA_PERMANENT bit 2: lockoutAuthSet.
    let lockout_auth_set = ctx
        .get_tpm_property(tss_esapi::constants::PropertyTag::Permanent)
        .map_err(tss("read its settings"))?
        .is_some_and(|bits| bits & (1 << 2) != 0);
    if !lockout_auth_set && n < MIN_PIN_WITHOUT_LOCKOUT_AUTH {
        return Err(KeystoreError::Invalid(format!(
            "this TPM's lockout authorization is empty, so anyone who can reach the TPM (root, or \
             another system booted on this machine) can reset its dictionary-attack counter and \
             guess a PIN without end: choose a PIN of at least {MIN_PIN_WITHOUT_LOCKOUT_AUTH} \
             characters, or first give the TPM a lockout authorization and keep it offline \
             (`tpm2_changeauth -c lockout`, as root)"
        )));
    }
    Ok(())
}

/// A TPM context with the objects and sessions it loaded, flushed when it
/// ends whatever happened (a TPM without a resource manager, as swtpm,
/// would otherwise fill up after a few failed tries).
struct Tpm {
    ctx: Context,
    loaded: Vec<ObjectHandle>,
    tcti: String,
}

impl Drop for Tpm {
    fn drop(&mut self) {
        for h in self.loaded.drain(..).rev() {
            let _ = self.ctx.flush_context(h);
        }
    }
}

impl Tpm {
    fn open(tcti: &str) -> Result<Tpm, KeystoreError> {
        Ok(Tpm { ctx: device::open(tcti)?, loaded: Vec::new(), tcti: tcti.to_owned() })
    }

    /// The storage key, from the fixed template, and its name.
    fn storage_key(&mut self) -> Result<(KeyHandle, Vec<u8>), KeystoreError> {
        let ecc = PublicEccParametersBuilder::new_restricted_decryption_key(
            SymmetricDefinitionObject::AES_128_CFB,
            EccCurve::NistP256,
        )
        .with_ecc_scheme(EccScheme::Null)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .build()
        .map_err(tss("describe its storage key"))?;
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_decrypt(true)
            .with_restricted(true)
            .with_no_da(true)
            .build()
            .map_err(tss("describe its storage key"))?;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_ecc_parameters(ecc)
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
            .map_err(tss("describe its storage key"))?;
        let key = self
            .ctx
            .execute_with_nullauth_session(|c| {
                c.create_primary(Hierarchy::Owner, public, None, None, None, None)
            })
            .map_err(|e| match kind(&e) {
                Some(Tss2ResponseCodeKind::BadAuth | Tss2ResponseCodeKind::AuthFail) => {
                    KeystoreError::TpmUnavailable(
                        "the TPM's owner hierarchy has a password, so the agent cannot make its storage \
                         key there (systemd-cryptenroll needs the same); clear that password with \
                         `tpm2_changeauth -c owner -p OLD`"
                            .into(),
                    )
                }
                _ => tss("make its storage key")(e),
            })?
            .key_handle;
        self.loaded.push(key.into());
        let name = self.ctx.tr_get_name(key.into()).map_err(tss("name its storage key"))?;
        Ok((key, name.value().to_vec()))
    }

    /// A session salted with the storage key, encrypting the first
    /// parameter both ways.
    fn salted(&mut self, srk: KeyHandle, ty: SessionType) -> Result<AuthSession, KeystoreError> {
        let s = self
            .ctx
            .start_auth_session(
                Some(srk),
                None,
                None,
                ty,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(tss("start a session"))?
            .ok_or_else(|| KeystoreError::TpmUnavailable("the TPM started no session".into()))?;
        self.loaded.push(SessionHandle::from(s).into());
        let (attrs, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .with_continue_session(true)
            .build();
        self.ctx.tr_sess_set_attributes(s, attrs, mask).map_err(tss("set up a session"))?;
        Ok(s)
    }

    fn pcr_value(&mut self, pcr: u8) -> Result<Vec<u8>, KeystoreError> {
        let list = selection(&[pcr])?;
        let (_, _, values) = self.ctx.pcr_read(list).map_err(tss("read the PCRs"))?;
        values.value().first().map(|d| d.value().to_vec()).ok_or_else(|| {
            KeystoreError::TpmUnavailable(format!(
                "the TPM has no SHA-256 PCR {pcr} (is its SHA-256 bank enabled?)"
            ))
        })
    }

    /// The object's policy, on `session` (a trial one gives the digest).
    fn policy(&mut self, session: PolicySession, pcrs: &[(u8, Vec<u8>)]) -> Result<(), KeystoreError> {
        if !pcrs.is_empty() {
            let indices: Vec<u8> = pcrs.iter().map(|(i, _)| *i).collect();
            let mut h = Sha256::new();
            for (_, v) in pcrs {
                h.update(v);
            }
            let digest = Digest::try_from(h.finalize().to_vec()).map_err(tss("hash the PCRs"))?;
            self.ctx.policy_pcr(session, digest, selection(&indices)?).map_err(|e| match kind(&e) {
                Some(Tss2ResponseCodeKind::Value) => pcrs_changed(&indices),
                _ => tss("check the PCRs")(e),
            })?;
        }
        self.ctx.policy_auth_value(session).map_err(tss("ask for the PIN"))
    }

    fn load(&mut self, srk: KeyHandle, sealed: &Sealed) -> Result<KeyHandle, KeystoreError> {
        let public = Public::unmarshall(&sealed.public).map_err(|_| damaged("public part"))?;
        let private = Private::try_from(sealed.private.clone()).map_err(|_| damaged("private part"))?;
        let h =
            self.ctx.execute_with_nullauth_session(|c| c.load(srk, private, public)).map_err(
                |e| match kind(&e) {
                    // The storage key's name matched: not another TPM.
                    Some(Tss2ResponseCodeKind::Integrity) => KeystoreError::TpmUnavailable(
                        "the sealed key does not load under the storage key the file names: keystore.json \
                     was altered or damaged; unlock with the recovery passphrase \
                     (`cryptoidctl unlock --recovery`) and seal again"
                            .into(),
                    ),
                    _ => tss("load the sealed key")(e),
                },
            )?;
        self.loaded.push(h.into());
        Ok(h)
    }

    /// Storage key, checked to be the one the object was sealed under.
    fn storage_key_of(&mut self, sealed: &Sealed) -> Result<KeyHandle, KeystoreError> {
        lockout::refuse_if_locked_out(&mut self.ctx)?;
        let (srk, name) = self.storage_key()?;
        if name != sealed.srk_name {
            return Err(KeystoreError::TpmMismatch);
        }
        Ok(srk)
    }

    /// A TPM refusal of a PIN, told as the user needs it.
    fn pin_error(&mut self, what: &str, e: tss_esapi::Error) -> KeystoreError {
        match kind(&e) {
            Some(Tss2ResponseCodeKind::AuthFail | Tss2ResponseCodeKind::BadAuth) => {
                match device::open(&self.tcti) {
                    Ok(mut fresh) => lockout::after_wrong_pin(&mut fresh),
                    Err(_) => lockout::after_wrong_pin(&mut self.ctx),
                }
            }
            Some(Tss2ResponseCodeKind::Lockout) => lockout::locked_out(&mut self.ctx),
            _ => tss(what)(e),
        }
    }
}

fn damaged(what: &str) -> KeystoreError {
    KeystoreError::TpmUnavailable(format!(
        "the keystore's sealed key ({what}) does not parse: the file is damaged"
    ))
}

fn pcrs_changed(pcrs: &[u8]) -> KeystoreError {
    KeystoreError::PcrChanged(pcrs.iter().map(u8::to_string).collect::<Vec<_>>().join(", "))
}

fn selection(pcrs: &[u8]) -> Result<PcrSelectionList, KeystoreError> {
    let slots = pcrs
        .iter()
        .map(|&i| {
            // Checked, not shifted blindly: indices come from the file too.
            1u32.checked_shl(u32::from(i))
                .filter(|_| i <= 23)
                .and_then(|bit| PcrSlot::try_from(bit).ok())
                .ok_or_else(|| KeystoreError::Invalid(format!("PCR {i} does not exist (PCRs are 0 to 23)")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(tss("select the PCRs"))
}

/// Seals `kek` under the TPM `tcti` names, behind `pin` and, if `pcrs` is
/// not empty, the current values of those SHA-256 PCRs. Checks the TPM gives
/// it back before returning: a keystore that cannot be unsealed must never
/// be written.
pub(super) fn seal(tcti: &str, pin: &str, pcrs: &[u8], kek: &[u8; 32]) -> Result<Sealed, KeystoreError> {
    let mut pcr_list: Vec<u8> = pcrs.to_vec();
    pcr_list.sort_unstable();
    pcr_list.dedup();
    if let Some(bad) = pcr_list.iter().find(|&&i| i > 23) {
        return Err(KeystoreError::Invalid(format!("PCR {bad} does not exist (PCRs are 0 to 23)")));
    }
    let mut tpm = Tpm::open(tcti)?;
    check_pin_strength(&mut tpm.ctx, pin)?;
    lockout::refuse_if_locked_out(&mut tpm.ctx)?;
    let (srk, srk_name) = tpm.storage_key()?;
    let pcrs =
        pcr_list.iter().map(|&i| Ok((i, tpm.pcr_value(i)?))).collect::<Result<Vec<_>, KeystoreError>>()?;

    let trial = tpm
        .ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Trial,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(tss("start a trial session"))?
        .ok_or_else(|| KeystoreError::TpmUnavailable("the TPM started no session".into()))?;
    tpm.loaded.push(SessionHandle::from(trial).into());
    let trial = PolicySession::try_from(trial).map_err(tss("start a trial session"))?;
    tpm.policy(trial, &pcrs)?;
    let policy = tpm.ctx.policy_get_digest(trial).map_err(tss("compute the policy"))?;

    // Neither the user role nor the admin role opens without the policy:
    // no PIN test by ObjectChangeAuth in a foreign boot state.
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(false)
        .with_admin_with_policy(true)
        .with_no_da(false)
        .build()
        .map_err(tss("describe the sealed key"))?;
    let public = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(tss("describe the sealed key"))?;
    let auth = pin_auth(pin, &srk_name)?;
    let data = SensitiveData::try_from(kek.to_vec()).map_err(tss("take the key"))?;
    let session = tpm.salted(srk, SessionType::Hmac)?;
    let created = tpm
        .ctx
        .execute_with_session(Some(session), |c| c.create(srk, public, Some(auth), Some(data), None, None))
        .map_err(tss("seal the key"))?;
    let sealed = Sealed {
        srk_name,
        public: created.out_public.marshall().map_err(tss("seal the key"))?,
        private: created.out_private.value().to_vec(),
        pcrs,
    };
    drop(tpm);
    let back = unseal(tcti, &sealed, pin)?;
    if back.as_slice() != kek.as_slice() {
        return Err(KeystoreError::TpmUnavailable("the TPM gave back another key than it sealed".into()));
    }
    Ok(sealed)
}

/// The KEK, if this TPM sealed it and `pin` is its PIN (and the PCRs hold
/// their values at sealing).
pub(super) fn unseal(tcti: &str, sealed: &Sealed, pin: &str) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let mut tpm = Tpm::open(tcti)?;
    let srk = tpm.storage_key_of(sealed)?;
    // Told before the PIN is tried: a try that cannot succeed must not
    // count against the user.
    let changed: Vec<u8> = sealed
        .pcrs
        .iter()
        .map(|(i, v)| Ok((*i, tpm.pcr_value(*i)? != *v)))
        .collect::<Result<Vec<_>, KeystoreError>>()?
        .into_iter()
        .filter_map(|(i, changed)| changed.then_some(i))
        .collect();
    if !changed.is_empty() {
        return Err(pcrs_changed(&changed));
    }
    let object = tpm.load(srk, sealed)?;
    let session = tpm.salted(srk, SessionType::Policy)?;
    let policy = PolicySession::try_from(session).map_err(tss("start a policy session"))?;
    tpm.policy(policy, &sealed.pcrs)?;
    tpm.ctx.tr_set_auth(object.into(), pin_auth(pin, &sealed.srk_name)?).map_err(tss("take the PIN"))?;
    let out = tpm.ctx.execute_with_session(Some(session), |c| c.unseal(object.into()));
    let data = match out {
        Ok(d) => d,
        Err(e) => return Err(tpm.pin_error("unseal the key", e)),
    };
    let arr: [u8; 32] = data
        .value()
        .try_into()
        .map_err(|_| KeystoreError::TpmUnavailable("the TPM gave back a key of the wrong size".into()))?;
    Ok(Zeroizing::new(arr))
}

/// The KEK sealed again behind `new`, once `old` has unsealed it (through
/// the whole policy: the object has no admin role to change its auth
/// value by). The PCRs are bound to the same values: they held them, or
/// the unseal would have failed.
pub(super) fn change_pin(tcti: &str, sealed: &Sealed, old: &str, new: &str) -> Result<Sealed, KeystoreError> {
    let kek = unseal(tcti, sealed, old)?;
    let pcrs: Vec<u8> = sealed.pcrs.iter().map(|(i, _)| *i).collect();
    seal(tcti, new, &pcrs, &kek)
}
