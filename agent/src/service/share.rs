//! `share.export` and `share.import`: a user's software cryptoIDs moved to
//! their other devices through Matrix secret storage (MSC4080).
//!
//! Export takes every software key bound to a room and every published,
//! unbound one-time key; hardware keys stay on their token. Import merges:
//! a new room is added, the same key is a no-op, another key for a room
//! this device already has a key in is a conflict (the local key is kept
//! unless `replace`). The whole import lands in one atomic batch.
//!
//! The secret-storage key is checked against its key description before
//! anything is encrypted or decrypted; it and the seeds are wiped after use.
//!
//! Against a homeserver that serves old account data back: an export
//! carries its time and the cryptoIDs deleted on its device (tombstones);
//! an import older than one this device took before under the same key is
//! refused (`share.json` remembers), and a tombstoned key is never added.

use super::{Audit, Service};
use crate::error::{Error, Result, ShareFailure};
use crate::keys::KeyRecord;
use crate::keystore::soft::random;
use crate::keystore::Backend;
use cryptoid_protocol::base64;
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::keys::{KeyPair, PublicKey};
use cryptoid_protocol::secret_storage::{self as ssss, recovery_key, EncryptedSecret, SecretKey};
use cryptoid_protocol::share::{self, Part, SharedKey};
use cryptoid_protocol::wire::keys::{KeyInfo, KeyKind, KeyState};
use cryptoid_protocol::wire::share::{
    AccountData, Conflict, ExportResult, ImportParams, ImportReport, Imported, Left, StorageKey,
};
use std::collections::HashMap;
use zeroize::Zeroizing;

/// The secret-storage key of a request, checked against its description.
fn storage_key(p: &StorageKey) -> Result<SecretKey> {
    let key = match (p.recovery_key.as_deref(), p.passphrase.as_deref()) {
        (Some(r), None) => recovery_key::decode(r).map_err(|e| ShareFailure::Storage(e.into()))?,
        (None, Some(pass)) => {
            let info = p
                .key_description
                .passphrase
                .as_ref()
                .ok_or(ShareFailure::Storage(ssss::SecretStorageError::NoPassphrase))?;
            SecretKey::from_passphrase(pass, info).map_err(ShareFailure::Storage)?
        }
        _ => return Err(ShareFailure::OneSecret.into()),
    };
    p.key_description.check(&key).map_err(ShareFailure::Storage)?;
    Ok(key)
}

/// What an export leaves out, and why.
fn left(rec: &KeyRecord, reason: impl Into<String>) -> Left {
    Left {
        cryptoid: rec.info.cryptoid.clone(),
        kind: rec.info.kind,
        room_id: rec.info.room_id.clone(),
        backend: rec.info.backend.clone(),
        reason: reason.into(),
    }
}

fn imported(k: &SharedKey) -> Imported {
    Imported { cryptoid: k.cryptoid.clone(), kind: k.kind, room_id: k.room_id.clone() }
}

impl Service {
    pub fn share_export(&self, p: &StorageKey, audit: &mut Audit) -> Result<ExportResult> {
        self.require_unlocked()?;
        let key = storage_key(p)?;
        let soft = self.backends.soft.clone();
        let (mut keys, mut stays, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        // One pass over the records: the deleted ones become tombstones.
        let (retired, mut recs): (Vec<KeyRecord>, Vec<KeyRecord>) =
            self.registry.find(|_| true).into_iter().partition(|r| r.info.state == KeyState::Retired);
        let retired: Vec<String> = retired.into_iter().map(|r| r.info.cryptoid).collect();
        recs.sort_by(|a, b| {
            (a.info.created_at, &a.info.cryptoid).cmp(&(b.info.created_at, &b.info.cryptoid))
        });
        for rec in recs {
            if rec.info.backend != "soft" {
                stays.push(left(
                    &rec,
                    format!(
                        "a {} key never leaves its token; keep keys to share in the software keystore wrapped by the token (`cryptoidctl backend init soft --wrap-with pkcs11|yubikey`)",
                        rec.info.backend
                    ),
                ));
                continue;
            }
            let shareable = matches!(
                (rec.info.kind, rec.info.state),
                (_, KeyState::Bound) | (KeyKind::OneTime, KeyState::Published)
            );
            if !shareable {
                let why = match rec.info.kind {
                    KeyKind::Room => "not bound to a room yet: it is shared once its room exists",
                    KeyKind::OneTime => "not published yet: no one can invite with it",
                };
                skipped.push(left(&rec, why));
                continue;
            }
            let public = rec.public_key()?;
            let seed = soft.export_seed(&public, &rec.handle)?;
            keys.push(SharedKey {
                kind: rec.info.kind,
                cryptoid: rec.info.cryptoid.clone(),
                seed: base64::encode(seed.as_ref()),
                room_id: rec.info.room_id.clone(),
                user_id: rec.info.user_id.clone(),
                key_id: rec.info.key_id.clone(),
            });
        }
        let rooms = keys.iter().filter(|k| k.room_id.is_some()).count() as u64;
        let one_time = keys.len() as u64 - rooms;
        audit.count = Some(keys.len() as u64);
        let export_id = base64::encode(&random::<16>());
        let mut parts = share::split(&export_id, keys);
        parts[0].exported_at = Some(self.now());
        parts[0].retired = retired;
        let mut account_data = Vec::new();
        for (i, part) in parts.into_iter().enumerate() {
            let name = share::part_name(i);
            let plain = Zeroizing::new(serde_json::to_vec(&part).map_err(Error::internal)?);
            let sealed = ssss::encrypt(&key, &name, &plain, random());
            account_data.push(AccountData { event_type: name, content: content(&p.key_id, &sealed)? });
        }
        Ok(ExportResult { account_data, rooms, one_time, stays, skipped })
    }

    pub fn share_import(&self, p: &ImportParams, audit: &mut Audit) -> Result<ImportReport> {
        self.require_unlocked()?;
        let key = storage_key(&p.key)?;
        let (first, keys) = read_parts(&key, &p.key.key_id, &p.account_data)?;
        audit.count = Some(keys.len() as u64);
        let state = SeenExports::path(&self.data_dir);
        let mut seen = SeenExports::load(&state)?;
        seen.check(&p.key.key_id, first.exported_at)?;
        let tombstones: std::collections::HashSet<&str> = first.retired.iter().map(String::as_str).collect();
        let mut report = ImportReport { exported_at: first.exported_at, ..Default::default() };
        // Keys whose seed does not make their cryptoID, or that name no
        // room where they must, are refused one by one.
        let mut valid = Vec::new();
        // One-time key IDs in use here, and by which key.
        let local_ids: HashMap<String, String> = self
            .registry
            .find(|r| r.info.kind == KeyKind::OneTime)
            .into_iter()
            .filter_map(|r| Some((r.info.key_id?, r.info.cryptoid)))
            .collect();
        for k in keys {
            let refused = if tombstones.contains(k.cryptoid.as_str()) {
                Err("deleted on the exporting device: a deleted key is not brought back".to_owned())
            } else if k
                .key_id
                .as_ref()
                .and_then(|id| local_ids.get(id))
                .is_some_and(|owner| *owner != k.cryptoid)
            {
                Err("its one-time key ID is already used by a key of this device".to_owned())
            } else {
                check_shared(&k)
            };
            match refused {
                Ok(seed) => valid.push((k, seed)),
                Err(why) => report.skipped.push(Left {
                    cryptoid: k.cryptoid.clone(),
                    kind: k.kind,
                    room_id: k.room_id.clone(),
                    backend: "soft".into(),
                    reason: why,
                }),
            }
        }
        let now = self.now();
        let soft = self.backends.soft.clone();
        let (_, replaced_locals) = self.registry.commit_batch(|existing| {
            let mut writes = Vec::new();
            let mut retired = Vec::new();
            let mut taken: HashMap<(String, Option<String>), String> = existing
                .values()
                .filter(|r| r.info.state == KeyState::Bound)
                .filter_map(|r| {
                    Some(((r.info.room_id.clone()?, r.info.user_id.clone()), r.info.cryptoid.clone()))
                })
                .collect();
            for (k, seed) in &valid {
                if let Some(rec) = existing.get(&k.cryptoid) {
                    if rec.info.state == KeyState::Retired {
                        report
                            .skipped
                            .push(left(rec, "deleted on this device: a deleted key is not brought back"));
                    } else {
                        report.same.push(imported(k));
                    }
                    continue;
                }
                if let Some(room) = &k.room_id {
                    let slot = (room.clone(), k.user_id.clone());
                    if let Some(local) = taken.get(&slot).cloned() {
                        let conflict = Conflict {
                            room_id: room.clone(),
                            user_id: k.user_id.clone(),
                            local: local.clone(),
                            remote: k.cryptoid.clone(),
                        };
                        // A key this import adds is not replaced by
                        // another of the same import; a hardware key is
                        // deleted with `keys delete`, which destroys it.
                        let replaceable = existing.get(&local).filter(|r| r.info.backend == "soft");
                        let Some(old) = replaceable.filter(|_| p.replace) else {
                            report.conflicts.push(conflict);
                            continue;
                        };
                        let mut old = old.clone();
                        old.info.state = KeyState::Retired;
                        old.handle = Value::Null;
                        retired.push(old.clone());
                        writes.push(old);
                        report.replaced.push(conflict);
                    }
                    taken.insert(slot, k.cryptoid.clone());
                }
                let new = soft.import_seed(seed)?;
                writes.push(KeyRecord {
                    version: 1,
                    info: KeyInfo {
                        cryptoid: k.cryptoid.clone(),
                        algorithm: "ed25519".into(),
                        kind: k.kind,
                        key_id: k.key_id.clone(),
                        state: if k.room_id.is_some() { KeyState::Bound } else { KeyState::Published },
                        room_id: k.room_id.clone(),
                        user_id: k.user_id.clone(),
                        backend: "soft".into(),
                        created_at: now,
                        last_used_at: None,
                    },
                    handle: new.handle,
                });
                report.added.push(imported(k));
            }
            Ok((writes, retired))
        })?;
        for old in replaced_locals {
            if let Ok(public) = PublicKey::from_base64(&old.info.cryptoid) {
                soft.forget(&public);
            }
        }
        // Local keys the exporting device deleted: told, not deleted here.
        for id in &first.retired {
            if let Some(rec) = self.registry.get(id).filter(|r| r.info.state != KeyState::Retired) {
                report.skipped.push(left(
                    &rec,
                    "deleted on the exporting device but still active here: delete it with `cryptoidctl keys delete` if that was you",
                ));
            }
        }
        seen.record(&state, &p.key.key_id, first.exported_at)?;
        Ok(report)
    }
}

/// `{"encrypted": {key_id: {iv, ciphertext, mac}}}`.
fn content(key_id: &str, sealed: &EncryptedSecret) -> Result<Value> {
    let secret: Value =
        serde_json::to_value(sealed).and_then(serde_json::from_value).map_err(Error::internal)?;
    let mut by_key = Object::new();
    by_key.insert(key_id.to_owned(), secret);
    let mut c = Object::new();
    c.insert("encrypted".into(), Value::Object(by_key));
    Ok(Value::Object(c))
}

/// Decrypts part 0 and every part it names, checked to be one export:
/// part 0 (its keys moved out) and all the keys.
fn read_parts(key: &SecretKey, key_id: &str, data: &[AccountData]) -> Result<(Part, Vec<SharedKey>)> {
    let read = |name: &str| -> Result<Part> {
        let item = data
            .iter()
            .find(|d| d.event_type == name)
            .ok_or_else(|| ShareFailure::Missing(name.to_owned()))?;
        let sealed = item
            .content
            .as_object()
            .and_then(|c| c.get("encrypted"))
            .and_then(Value::as_object)
            .and_then(|e| e.get(key_id))
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|s| serde_json::from_value::<EncryptedSecret>(s).ok())
            .ok_or_else(|| ShareFailure::NotForKey { name: name.to_owned(), key_id: key_id.to_owned() })?;
        let text = ssss::decrypt_text(key, name, &sealed).map_err(ShareFailure::Storage)?;
        Ok(Part::parse(&text).map_err(ShareFailure::Document)?)
    };
    let mut first = read(share::SECRET_NAME)?;
    let others = first.others().map_err(ShareFailure::Document)?.to_vec();
    let mut keys = std::mem::take(&mut first.keys);
    for (i, name) in others.iter().enumerate() {
        let mut part = read(name)?;
        part.follows(&first, i + 1).map_err(ShareFailure::Document)?;
        keys.append(&mut part.keys);
    }
    Ok((first, keys))
}

/// `share.json`: per secret-storage key, the newest export this device
/// imported, so that an older one served again is refused.
#[derive(Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenExports {
    newest: std::collections::BTreeMap<String, u64>,
}

impl SeenExports {
    fn path(data_dir: &std::path::Path) -> std::path::PathBuf {
        data_dir.join("share.json")
    }

    fn load(path: &std::path::Path) -> Result<SeenExports> {
        Error::read_state(path, "remove it (it only guards against old exports served again)")
    }

    fn check(&self, key_id: &str, exported_at: Option<u64>) -> Result<()> {
        let newest = self.newest.get(key_id).copied().unwrap_or(0);
        match exported_at {
            Some(t) if t < newest => Err(ShareFailure::RolledBack { exported_at: t, newest }.into()),
            None if newest > 0 => Err(ShareFailure::RolledBack { exported_at: 0, newest }.into()),
            _ => Ok(()),
        }
    }

    fn record(&mut self, path: &std::path::Path, key_id: &str, exported_at: Option<u64>) -> Result<()> {
        let Some(t) = exported_at else { return Ok(()) };
        let e = self.newest.entry(key_id.to_owned()).or_insert(0);
        *e = (*e).max(t);
        let bytes = serde_json::to_vec(self).map_err(Error::internal)?;
        crate::fsutil::write_atomic(path, &bytes)?;
        Ok(())
    }
}

/// The seed of a shared key, if it makes the key's cryptoID and the key
/// names a room where it must; else why not.
fn check_shared(k: &SharedKey) -> std::result::Result<Zeroizing<[u8; 32]>, String> {
    let seed = Zeroizing::new(base64::decode(&k.seed).unwrap_or_default());
    if seed.len() != 32 {
        return Err("the seed is not 32 bytes of Base64".into());
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    bytes.copy_from_slice(&seed);
    if KeyPair::from_seed(&bytes).cryptoid() != k.cryptoid {
        return Err("the seed does not make this cryptoID".into());
    }
    if let Some(id) = &k.key_id {
        // A one-time key ID as this agent makes them, with a counter that
        // cannot overflow the local one.
        match crate::keys::parse_otk_key_id(id) {
            Some(n) if k.kind == KeyKind::OneTime && n < (1 << 53) => {}
            _ => return Err(format!("{id:?} is not a one-time key ID")),
        }
    }
    match (&k.room_id, &k.user_id) {
        (Some(r), _) if !r.starts_with('!') || r.len() > 255 => Err(format!("{r:?} is not a room ID")),
        (_, Some(u)) if !u.starts_with('@') || u.len() > 255 => Err(format!("{u:?} is not a user ID")),
        (None, _) if k.kind == KeyKind::Room => Err("a room key without its room".into()),
        _ => Ok(bytes),
    }
}
