//! `keys.*` and `otk.*`.

use super::Service;
use crate::error::{Error, KeyError, RequestError, Result};
use crate::keys::{otk_key_id, Filter, KeyRecord};
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::wire::keys::{CreateParams, KeyInfo, KeyKind, KeyList, KeyRef, KeyState, ListParams};
use cryptoid_protocol::wire::otk::{ClaimParams, GenerateParams, MarkPublishedParams, MAX_GENERATE};

/// Room IDs start with `!`, user IDs with `@` (sanity, not full grammar).
fn check_ids(room_id: Option<&str>, user_id: Option<&str>) -> Result<()> {
    if let Some(r) = room_id {
        if !r.starts_with('!') || r.len() > 255 {
            return Err(RequestError::param(
                "room_id",
                format!("room_id {r:?} is not a room ID (it starts with '!')"),
            )
            .into());
        }
    }
    if let Some(u) = user_id {
        if !u.starts_with('@') || u.len() > 255 {
            return Err(RequestError::param(
                "user_id",
                format!("user_id {u:?} is not a user ID (it starts with '@')"),
            )
            .into());
        }
    }
    Ok(())
}

impl Service {
    /// A key already bound to `room_id` for `user_id`, other than `except`.
    pub(super) fn active_key_in_room(
        &self,
        room_id: &str,
        user_id: Option<&str>,
        except: &str,
    ) -> Option<String> {
        self.registry
            .find(|r| {
                r.bound_to(room_id) && r.info.user_id.as_deref() == user_id && r.info.cryptoid != except
            })
            .into_iter()
            .next()
            .map(|r| r.info.cryptoid)
    }

    fn new_record(&self, kind: KeyKind, backend: &str, new: crate::keystore::NewKey) -> KeyRecord {
        KeyRecord {
            version: 1,
            info: KeyInfo {
                cryptoid: new.public.to_base64(),
                algorithm: "ed25519".into(),
                kind,
                key_id: None,
                state: KeyState::Unbound,
                room_id: None,
                user_id: None,
                backend: backend.to_owned(),
                created_at: self.now(),
                last_used_at: None,
            },
            handle: new.handle,
        }
    }

    pub fn keys_create(&self, p: &CreateParams) -> Result<KeyInfo> {
        check_ids(p.room_id.as_deref(), p.user_id.as_deref())?;
        self.require_unlocked()?;
        let backend = self.backend(p.backend.as_deref())?;
        let new = backend.generate()?;
        let mut rec = self.new_record(KeyKind::Room, backend.name(), new);
        rec.info.user_id = p.user_id.clone();
        if let Some(room) = &p.room_id {
            rec.info.room_id = Some(room.clone());
            rec.info.state = KeyState::Bound;
        }
        let room = p.room_id.clone();
        let user = p.user_id.clone();
        let recs = self.registry.insert_new(
            |existing| match &room {
                Some(room) => match existing.values().find(|r| r.bound_to(room) && r.info.user_id == user) {
                    Some(other) => {
                        Err(KeyError::RoomTaken { room: room.clone(), other: other.info.cryptoid.clone() }
                            .into())
                    }
                    None => Ok(()),
                },
                None => Ok(()),
            },
            |_| Ok(vec![rec]),
        )?;
        let rec = recs.into_iter().next().ok_or_else(|| Error::internal("no record made"))?;
        Ok(self.registry.info(&rec))
    }

    pub fn keys_list(&self, p: &ListParams) -> KeyList {
        let filter = Filter {
            room_id: p.room_id.as_deref(),
            kind: p.kind,
            state: p.state,
            backend: p.backend.as_deref(),
        };
        KeyList { keys: self.registry.list(&filter) }
    }

    pub fn keys_get(&self, p: &KeyRef) -> Result<KeyInfo> {
        let rec = self.registry.get(&p.cryptoid).ok_or_else(|| KeyError::Unknown(p.cryptoid.clone()))?;
        Ok(self.registry.info(&rec))
    }

    /// Retires a key: its secret is destroyed, the record stays as a tombstone.
    pub fn keys_delete(&self, p: &KeyRef) -> Result<KeyInfo> {
        let mut destroyed = None;
        let rec = self.registry.update(&p.cryptoid, |r| {
            if r.info.state == KeyState::Retired {
                return Ok(());
            }
            destroyed = Some((r.public_key()?, r.handle.clone(), r.info.backend.clone()));
            r.info.state = KeyState::Retired;
            r.handle = Value::Null;
            Ok(())
        })?;
        if let Some((public, handle, backend)) = destroyed {
            self.backend(Some(&backend))?.destroy(&public, &handle)?;
        }
        Ok(self.registry.info(&rec))
    }

    pub fn otk_generate(&self, p: &GenerateParams) -> Result<KeyList> {
        if p.count == 0 || p.count > MAX_GENERATE {
            return Err(RequestError::param(
                "count",
                format!("count must be 1 to {MAX_GENERATE}, not {}", p.count),
            )
            .into());
        }
        self.require_unlocked()?;
        let backend = self.backend(p.backend.as_deref())?;
        let mut fresh = Vec::with_capacity(p.count as usize);
        for _ in 0..p.count {
            fresh.push(self.new_record(KeyKind::OneTime, backend.name(), backend.generate()?));
        }
        let recs = self.registry.insert_new(
            |_| Ok(()),
            |next| {
                for r in &mut fresh {
                    r.info.key_id = Some(otk_key_id(*next));
                    r.info.state = KeyState::Unpublished;
                    *next += 1;
                }
                Ok(fresh)
            },
        )?;
        Ok(KeyList { keys: recs.iter().map(|r| self.registry.info(r)).collect() })
    }

    /// `{"one_time_cryptoids": {"ed25519:<id>": {"key": "<cryptoID>"}}}` of
    /// every unpublished one-time cryptoID.
    pub fn otk_upload_body(&self) -> Value {
        let recs =
            self.registry.find(|r| r.info.kind == KeyKind::OneTime && r.info.state == KeyState::Unpublished);
        let mut keys = Object::new();
        for r in recs {
            if let Some(id) = r.info.key_id {
                let mut k = Object::new();
                k.insert("key".into(), Value::String(r.info.cryptoid));
                keys.insert(id, Value::Object(k));
            }
        }
        let mut body = Object::new();
        body.insert("one_time_cryptoids".into(), Value::Object(keys));
        Value::Object(body)
    }

    pub fn otk_mark_published(&self, p: &MarkPublishedParams) -> Result<KeyList> {
        let mut out = Vec::with_capacity(p.cryptoids.len());
        for c in &p.cryptoids {
            let rec = self.registry.update(c, |r| {
                if r.info.kind != KeyKind::OneTime {
                    return Err(KeyError::NotOneTime(c.clone()).into());
                }
                match r.info.state {
                    KeyState::Unpublished => {
                        r.info.state = KeyState::Published;
                        Ok(())
                    }
                    KeyState::Published => Ok(()),
                    other => Err(KeyError::WrongState {
                        cryptoid: c.clone(),
                        state: other.as_str(),
                        action: "be published",
                    }
                    .into()),
                }
            })?;
            out.push(self.registry.info(&rec));
        }
        Ok(KeyList { keys: out })
    }

    /// Binds a one-time cryptoID to the room that invited with it: once,
    /// atomically, durably.
    pub fn otk_claim(&self, p: &ClaimParams) -> Result<KeyInfo> {
        check_ids(Some(&p.room_id), None)?;
        let rec = self.registry.update(&p.cryptoid, |r| self.bind(r, &p.room_id))?;
        Ok(self.registry.info(&rec))
    }

    /// Binds `r` to `room_id` (inside a registry update). Idempotent for the
    /// same room; refuses a second room, a retired key, and a room that
    /// already has an active key for the user.
    pub(super) fn bind(&self, r: &mut KeyRecord, room_id: &str) -> Result<()> {
        if r.bound_to(room_id) {
            return Ok(());
        }
        if !r.awaiting_room() {
            let cryptoid = r.info.cryptoid.clone();
            let why = match (&r.info.state, &r.info.room_id) {
                (KeyState::Bound, Some(other)) => KeyError::AlreadyBound { cryptoid, room: other.clone() },
                (state, _) => KeyError::WrongState { cryptoid, state: state.as_str(), action: "be bound" },
            };
            return Err(why.into());
        }
        if let Some(other) = self.active_key_in_room(room_id, r.info.user_id.as_deref(), &r.info.cryptoid) {
            return Err(KeyError::RoomTaken { room: room_id.to_owned(), other }.into());
        }
        r.info.state = KeyState::Bound;
        r.info.room_id = Some(room_id.to_owned());
        Ok(())
    }
}
