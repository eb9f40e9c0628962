//! Key records: what the agent knows about each cryptoID (kind, state, room,
//! backend handle), one file per key under `keys/`, and the in-memory index.
//!
//! Every change is written durably (temp file, fsync, rename, fsync dir)
//! *before* it is visible in memory or returned to a client, and changes are
//! serialized by one writer lock that readers (signing) never wait on.

mod batch;

use crate::error::{Error, KeyError, Result};
use crate::fsutil;
use crate::sync::{MutexExt, RwLockExt};
use cryptoid_protocol::base64;
use cryptoid_protocol::json::Value;
use cryptoid_protocol::keys::PublicKey;
use cryptoid_protocol::wire::keys::{KeyInfo, KeyKind, KeyState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};

/// One key record as stored on disk: the public view plus the backend's
/// handle. (No `deny_unknown_fields`: serde cannot combine it with
/// `flatten`.)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyRecord {
    pub version: u32,
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The backend's handle (for `soft`: the sealed seed). `null` once retired.
    pub handle: Value,
}

impl KeyRecord {
    pub fn public_key(&self) -> Result<PublicKey> {
        PublicKey::from_base64(&self.info.cryptoid).map_err(Error::internal)
    }

    pub fn info(&self, last_used: Option<u64>) -> KeyInfo {
        let mut info = self.info.clone();
        info.last_used_at = last_used.or(info.last_used_at);
        info
    }

    /// Whether this key may sign for `room_id` as it stands.
    pub fn bound_to(&self, room_id: &str) -> bool {
        self.info.state == KeyState::Bound && self.info.room_id.as_deref() == Some(room_id)
    }

    /// Whether the key is waiting for the event that binds it to a room.
    pub fn awaiting_room(&self) -> bool {
        matches!(self.info.state, KeyState::Unbound | KeyState::Unpublished | KeyState::Published)
    }
}

/// Selects records for `keys.list`.
#[derive(Default)]
pub struct Filter<'a> {
    pub room_id: Option<&'a str>,
    pub kind: Option<KeyKind>,
    pub state: Option<KeyState>,
    pub backend: Option<&'a str>,
}

impl Filter<'_> {
    fn matches(&self, r: &KeyRecord) -> bool {
        self.room_id.is_none_or(|x| r.info.room_id.as_deref() == Some(x))
            && self.kind.is_none_or(|k| r.info.kind == k)
            && self.state.is_none_or(|s| r.info.state == s)
            && self.backend.is_none_or(|b| r.info.backend == b)
    }
}

/// One-time key IDs as matrix-rust-sdk/vodozemac write them: unpadded
/// Base64 of the 8-byte big-endian counter (`ed25519:AAAAAAAAAAA` for 0).
pub fn otk_key_id(n: u64) -> String {
    format!("ed25519:{}", base64::encode(&n.to_be_bytes()))
}

/// The counter of a one-time key ID (`ed25519:` and 11 characters of
/// URL-safe Base64 of 8 big-endian bytes).
pub fn parse_otk_key_id(id: &str) -> Option<u64> {
    let b64 = id.strip_prefix("ed25519:")?;
    let bytes = base64::decode_array::<8>(b64).ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// A record's file name: the URL-safe form (standard Base64 has '/').
fn file_name(cryptoid: &str) -> Result<String> {
    let public = PublicKey::from_base64(cryptoid)
        .map_err(|e| KeyError::Malformed(cryptoid.to_owned(), e.to_string()))?;
    Ok(format!("{}.json", base64::encode_url_safe(public.as_bytes())))
}

pub struct Registry {
    dir: PathBuf,
    records: RwLock<HashMap<String, KeyRecord>>,
    last_used: Mutex<HashMap<String, u64>>,
    /// Serializes durable changes; holds the next one-time key counter.
    writer: Mutex<u64>,
}

impl Registry {
    /// Loads every record under `dir` (created 0700 if missing).
    pub fn load(dir: PathBuf) -> Result<Registry> {
        fsutil::private_dir(&dir)?;
        match batch::recover(&dir)? {
            Some(true) => tracing::info!("finished an import interrupted after its commit"),
            Some(false) => tracing::info!("dropped an import interrupted before its commit"),
            None => {}
        }
        let stale = fsutil::remove_stale_temps(&dir)?;
        if stale > 0 {
            tracing::info!(stale, "removed temp files of interrupted key writes");
        }
        let mut records = HashMap::new();
        let mut next_otk = 0u64;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            let rec: KeyRecord = serde_json::from_slice(&bytes).map_err(|e| Error::Damaged {
                path: path.display().to_string(),
                why: e.to_string(),
                fix: "move the key record aside to start",
            })?;
            if let Some(n) = rec.info.key_id.as_deref().and_then(parse_otk_key_id) {
                next_otk = next_otk.max(n.saturating_add(1));
            }
            records.insert(rec.info.cryptoid.clone(), rec);
        }
        Ok(Registry {
            dir,
            records: RwLock::new(records),
            last_used: Mutex::new(HashMap::new()),
            writer: Mutex::new(next_otk),
        })
    }

    fn path_of(&self, cryptoid: &str) -> Result<PathBuf> {
        Ok(self.dir.join(file_name(cryptoid)?))
    }

    fn write_record(&self, rec: &KeyRecord, sync_dir: bool) -> Result<()> {
        let bytes = serde_json::to_vec(rec).map_err(Error::internal)?;
        let path = self.path_of(&rec.info.cryptoid)?;
        if sync_dir {
            fsutil::write_atomic(&path, &bytes)?;
        } else {
            fsutil::replace_file(&path, &bytes)?;
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, KeyRecord>> {
        self.records.read_now()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, KeyRecord>> {
        self.records.write_now()
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, u64> {
        self.writer.locked()
    }

    /// Runs `f` on a record without copying it.
    pub fn with<R>(&self, cryptoid: &str, f: impl FnOnce(&KeyRecord) -> R) -> Option<R> {
        self.read().get(cryptoid).map(f)
    }

    pub fn get(&self, cryptoid: &str) -> Option<KeyRecord> {
        self.with(cryptoid, Clone::clone)
    }

    pub fn info(&self, rec: &KeyRecord) -> KeyInfo {
        let last = self.last_used.locked().get(&rec.info.cryptoid).copied();
        rec.info(last)
    }

    pub fn list(&self, filter: &Filter<'_>) -> Vec<KeyInfo> {
        let recs: Vec<KeyRecord> = self.read().values().filter(|r| filter.matches(r)).cloned().collect();
        let mut infos: Vec<KeyInfo> = recs.iter().map(|r| self.info(r)).collect();
        // Creation order; one-time keys made in the same millisecond by
        // their counter.
        let counter = |k: &KeyInfo| k.key_id.as_deref().and_then(parse_otk_key_id);
        infos.sort_by(|a, b| {
            (a.created_at, counter(a), &a.cryptoid).cmp(&(b.created_at, counter(b), &b.cryptoid))
        });
        infos
    }

    pub fn count_backend(&self, backend: &str) -> u64 {
        self.read()
            .values()
            .filter(|r| r.info.backend == backend && r.info.state != KeyState::Retired)
            .count() as u64
    }

    pub fn touch(&self, cryptoid: &str, now_ms: u64) {
        self.last_used.locked().insert(cryptoid.to_owned(), now_ms);
    }

    /// Adds new records durably. `check` sees the current records under the
    /// writer lock and may refuse (e.g. a room that already has a key).
    /// `make` is given the next one-time key counter and returns the records.
    pub fn insert_new(
        &self,
        check: impl FnOnce(&HashMap<String, KeyRecord>) -> Result<()>,
        make: impl FnOnce(&mut u64) -> Result<Vec<KeyRecord>>,
    ) -> Result<Vec<KeyRecord>> {
        let mut next = self.lock_writer();
        check(&self.read())?;
        let mut counter = *next;
        let recs = make(&mut counter)?;
        for r in &recs {
            self.write_record(r, false)?;
        }
        fsutil::sync_dir(&self.dir)?;
        *next = counter;
        let mut map = self.write();
        for r in &recs {
            map.insert(r.info.cryptoid.clone(), r.clone());
        }
        Ok(recs)
    }

    /// Adds or changes many records, all or nothing, durably: after a
    /// crash at any point a restart finds every one of them or none (see
    /// [`batch`]). `plan` sees the records under the writer lock and
    /// returns the records to write, and what else it decided.
    pub fn commit_batch<T>(
        &self,
        plan: impl FnOnce(&HashMap<String, KeyRecord>) -> Result<(Vec<KeyRecord>, T)>,
    ) -> Result<(Vec<KeyRecord>, T)> {
        let mut next = self.lock_writer();
        let (recs, decided) = plan(&self.read())?;
        if recs.is_empty() {
            return Ok((recs, decided));
        }
        let files = recs
            .iter()
            .map(|r| Ok((file_name(&r.info.cryptoid)?, serde_json::to_string(r).map_err(Error::internal)?)))
            .collect::<Result<Vec<_>>>()?;
        match batch::write(&self.dir, &files) {
            Ok(()) => {}
            // Committed: the batch holds, and is applied again at the next
            // batch or restart; what is in memory must say so already.
            Err(f) if f.committed => {
                tracing::error!(error = %f.error, "a committed key batch is not fully written yet; it completes at the next write or restart");
            }
            Err(f) => return Err(f.error.into()),
        }
        // Imported one-time keys keep their IDs; new ones count past them.
        for n in recs.iter().filter_map(|r| r.info.key_id.as_deref().and_then(parse_otk_key_id)) {
            *next = (*next).max(n.saturating_add(1));
        }
        let mut map = self.write();
        for r in &recs {
            map.insert(r.info.cryptoid.clone(), r.clone());
        }
        Ok((recs, decided))
    }

    /// Changes one record durably: `f` edits a copy, which is written and
    /// then replaces the original. A refusal or a write error changes
    /// nothing.
    pub fn update(&self, cryptoid: &str, f: impl FnOnce(&mut KeyRecord) -> Result<()>) -> Result<KeyRecord> {
        let _w = self.lock_writer();
        let mut rec = self.get(cryptoid).ok_or_else(|| KeyError::Unknown(cryptoid.to_owned()))?;
        f(&mut rec)?;
        self.write_record(&rec, true)?;
        self.write().insert(rec.info.cryptoid.clone(), rec.clone());
        Ok(rec)
    }

    /// The records where `pred` holds, read under the writer lock (so the
    /// answer stays true until the lock is released by `f`'s caller).
    pub fn find(&self, pred: impl Fn(&KeyRecord) -> bool) -> Vec<KeyRecord> {
        self.read().values().filter(|r| pred(r)).cloned().collect()
    }

    /// Writes last-used times into the records (at shutdown).
    pub fn persist_last_used(&self) -> Result<usize> {
        let used: Vec<(String, u64)> = self.last_used.locked().iter().map(|(k, v)| (k.clone(), *v)).collect();
        let mut n = 0;
        for (cryptoid, t) in used {
            if self.with(&cryptoid, |r| r.info.last_used_at != Some(t)).unwrap_or(false) {
                self.update(&cryptoid, |r| {
                    r.info.last_used_at = Some(t);
                    Ok(())
                })?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otk_key_ids_match_vodozemac() {
        assert_eq!(otk_key_id(0), "ed25519:AAAAAAAAAAA");
        assert_eq!(otk_key_id(1), "ed25519:AAAAAAAAAAE");
        assert_eq!(parse_otk_key_id(&otk_key_id(123_456)), Some(123_456));
    }
}
