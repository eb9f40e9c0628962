//! `sign.pdu` and `sign.batch`, and the hard checks (DESIGN §7) every PDU
//! passes before anything is signed:
//!
//! - a known room version; a JSON object of at most 65,536 canonical bytes;
//! - the fields a PDU must have, well typed; `prev_events` ≤ 20 and
//!   `auth_events` ≤ 10, well formed for the room version, no duplicates;
//! - no signatures by anyone already (the agent endorses nothing blindly);
//! - `sender` is a key the agent holds, bound to `room_id`, or a key waiting
//!   for its room that this very event binds (`m.room.create` for a new room
//!   key, the key's own join for a one-time cryptoID);
//! - `hashes.sha256`, if present, equals the recomputed content hash (never
//!   replaced); `event_id`, if given, equals the recomputed one;
//!
//! Then the policy decides (allow, confirm, deny); see [`crate::policy`].
//! The signed PDU differs from the input only in `signatures` (and `hashes`
//! when they were absent). A key bound by the event is bound durably before
//! its signature is released.

use super::{Audit, ClientInfo, Service, SignedNote, Subject};
use crate::error::{Error, KeyError, PduError, Refusal, RequestError, Result};
use crate::keys::KeyRecord;
use crate::rooms::Seen;
use cryptoid_protocol::event::{self, EventError, PreparedEvent};
use cryptoid_protocol::json::{self, Object, Value};
use cryptoid_protocol::keys::CRYPTOID_KEY_ID;
use cryptoid_protocol::room_version::EventIdFormat;
use cryptoid_protocol::wire::keys::{KeyKind, KeyState};
use cryptoid_protocol::wire::sign::{SignBatchParams, SignPduParams, SignedBatch, SignedPdu};
use cryptoid_protocol::{base64, RoomVersion};
use std::collections::HashSet;

/// Largest PDU the agent signs, in canonical JSON bytes (the federation
/// limit for a PDU).
pub const MAX_PDU_BYTES: usize = 65_536;
pub const MAX_PREV_EVENTS: usize = 20;
pub const MAX_AUTH_EVENTS: usize = 10;
/// Most PDUs in one `sign.batch`.
pub const MAX_BATCH: usize = 100;

/// A PDU that passed every hard check, ready for the policy and signing.
pub(super) struct Checked {
    pub(super) prepared: PreparedEvent,
    pub(super) event_id: String,
    pub(super) record: KeyRecord,
    pub(super) room_id: String,
    pub(super) event_type: String,
    pub(super) depth: i64,
    pub(super) room_version: RoomVersion,
    /// The event binds its sender's key to `room_id`.
    pub(super) binds: bool,
}

fn str_field<'a>(pdu: &'a Object, key: &'static str) -> Result<&'a str, PduError> {
    match pdu.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => {
            Err(PduError::WrongType { field: key, expected: "a string", found: other.type_name().to_owned() })
        }
        None => Err(PduError::Missing(key)),
    }
}

fn nonneg_int(pdu: &Object, key: &'static str) -> Result<i64, PduError> {
    match pdu.get(key) {
        Some(Value::Int(i)) if i.get() >= 0 => Ok(i.get()),
        Some(other) => Err(PduError::WrongType {
            field: key,
            expected: "a non-negative integer",
            found: other.to_string(),
        }),
        None => Err(PduError::Missing(key)),
    }
}

/// An event ID as the room version writes it in `prev_events`/`auth_events`.
fn well_formed_event_id(rv: &RoomVersion, id: &str) -> bool {
    let Some(rest) = id.strip_prefix('$') else { return false };
    let alphabet_ok = |c: char, url: bool| {
        c.is_ascii_alphanumeric() || if url { c == '-' || c == '_' } else { c == '+' || c == '/' }
    };
    match rv.event_id_format() {
        EventIdFormat::Carried => rest.contains(':') && rest.len() < 255,
        EventIdFormat::Base64Standard => rest.len() == 43 && rest.chars().all(|c| alphabet_ok(c, false)),
        EventIdFormat::Base64UrlSafe => rest.len() == 43 && rest.chars().all(|c| alphabet_ok(c, true)),
    }
}

fn check_refs(rv: &RoomVersion, pdu: &Object, key: &'static str, max: usize) -> Result<(), PduError> {
    let refs = match pdu.get(key) {
        Some(Value::Array(refs)) => refs,
        Some(other) => {
            let found = other.type_name().to_owned();
            return Err(PduError::WrongType { field: key, expected: "an array of event IDs", found });
        }
        None => return Err(PduError::Missing(key)),
    };
    if refs.len() > max {
        return Err(PduError::TooManyRefs { field: key, count: refs.len(), max });
    }
    let mut seen = HashSet::new();
    for r in refs {
        // v1–v2 reference events as [event_id, {hashes}].
        let id = match (rv.event_id_format(), r) {
            (EventIdFormat::Carried, Value::Array(pair)) => pair.first().and_then(Value::as_str),
            (EventIdFormat::Carried, _) => None,
            (_, Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        let Some(id) = id.filter(|id| well_formed_event_id(rv, id)) else {
            return Err(PduError::BadRef { field: key, found: r.to_string(), version: rv.id() });
        };
        if !seen.insert(id) {
            return Err(PduError::DuplicateRef { field: key, id: id.to_owned() });
        }
    }
    Ok(())
}

/// `signatures` may be absent or empty; any signature already there would
/// be endorsed blindly.
fn check_no_signatures(pdu: &Object) -> Result<(), PduError> {
    match pdu.get("signatures") {
        None => Ok(()),
        Some(Value::Object(sigs)) => {
            match sigs.iter().find(|(_, v)| v.as_object().is_none_or(|o| !o.is_empty())) {
                Some((entity, _)) => Err(PduError::AlreadySigned(entity.clone())),
                None => Ok(()),
            }
        }
        Some(other) => Err(PduError::WrongType {
            field: "signatures",
            expected: "an object",
            found: other.type_name().to_owned(),
        }),
    }
}

/// Whether this event may bind a key that is waiting for its room.
fn is_binding_event(rec: &KeyRecord, pdu: &Object, sender: &str) -> bool {
    let ty = pdu.get("type").and_then(Value::as_str);
    let own_join = ty == Some("m.room.member")
        && pdu.get("state_key").and_then(Value::as_str) == Some(sender)
        && pdu
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str)
            == Some("join");
    let create = ty == Some("m.room.create") && pdu.get("state_key").and_then(Value::as_str) == Some("");
    match rec.info.kind {
        KeyKind::Room => own_join || create,
        KeyKind::OneTime => own_join,
    }
}

impl Service {
    pub(super) fn room_version(&self, id: &str) -> Result<RoomVersion> {
        let rv = RoomVersion::from_id(id).map_err(|e| PduError::UnsupportedRoomVersion(e.to_string()))?;
        Ok(self.config.room_version(rv))
    }

    /// Runs every hard check. `batch_binding` names a key that an earlier
    /// event of the same batch binds to its room. Returns what it learned of
    /// the PDU (room, type, sender, event ID) beside the outcome, so a
    /// refusal is journaled with them.
    pub(super) fn check_pdu(
        &self,
        rv: &RoomVersion,
        pdu: Value,
        event_id: Option<&str>,
        batch_binding: Option<(&str, &str)>,
    ) -> (Subject, Result<Checked>) {
        let mut learned = Subject::default();
        let r = self.hard_checks(rv, pdu, event_id, batch_binding, &mut learned);
        (learned, r)
    }

    fn hard_checks(
        &self,
        rv: &RoomVersion,
        pdu: Value,
        event_id: Option<&str>,
        batch_binding: Option<(&str, &str)>,
        learned: &mut Subject,
    ) -> Result<Checked> {
        let Value::Object(pdu) = pdu else {
            return Err(PduError::NotAnObject(pdu.type_name()).into());
        };
        let mut canonical = Vec::with_capacity(2048);
        json::write_object_filtered(&mut canonical, &pdu, |_| true);
        let size = canonical.len();
        if size > MAX_PDU_BYTES {
            return Err(PduError::TooLarge { size, max: MAX_PDU_BYTES }.into());
        }
        // v12: the room ID is the create event's hash as signed (with its
        // content hash), so the create is prepared first, once. A create
        // that carries a room ID is refused (other bytes would be signed).
        let mut early = None;
        let room_id = if rv.room_id_is_create_hash() && event::is_create(&pdu) {
            if pdu.contains_key("room_id") {
                return Err(EventError::CreateCarriesRoomId(rv.id()).into());
            }
            let prepared = event::prepare(pdu.clone(), rv)?;
            let id = prepared.event_id().unwrap_or_default().trim_start_matches('$').to_owned();
            early = Some(prepared);
            format!("!{id}")
        } else {
            str_field(&pdu, "room_id")?.to_owned()
        };
        learned.room_id = Some(room_id.clone());
        // One room, one version: a PDU under another version would be
        // hashed, redacted and authorized by other rules than the room's
        // (and, in versions 1-2, carry an event ID of its own choosing).
        if let Some(known) = self.rooms.version_of(&room_id).filter(|v| v != rv.id()) {
            return Err(
                PduError::RoomVersionMismatch { room: room_id, known, given: rv.id().to_owned() }.into()
            );
        }
        let ty = str_field(&pdu, "type")?.to_owned();
        learned.event_type = Some(ty.clone());
        if ty.is_empty() {
            return Err(PduError::EmptyType.into());
        }
        let sender = str_field(&pdu, "sender")?.to_owned();
        learned.cryptoid = Some(sender.clone());
        if pdu.contains_key("state_key") {
            str_field(&pdu, "state_key")?;
        }
        match pdu.get("content") {
            Some(Value::Object(_)) => {}
            Some(other) => {
                let found = other.type_name().to_owned();
                return Err(PduError::WrongType { field: "content", expected: "an object", found }.into());
            }
            None => return Err(PduError::Missing("content").into()),
        }
        let depth = nonneg_int(&pdu, "depth")?;
        nonneg_int(&pdu, "origin_server_ts")?;
        check_refs(rv, &pdu, "prev_events", MAX_PREV_EVENTS)?;
        check_refs(rv, &pdu, "auth_events", MAX_AUTH_EVENTS)?;
        check_no_signatures(&pdu)?;

        let record = self.registry.get(&sender).ok_or_else(|| KeyError::SenderNotHeld(sender.clone()))?;
        let binds = if record.bound_to(&room_id) || batch_binding == Some((sender.as_str(), room_id.as_str()))
        {
            false
        } else if record.awaiting_room() && is_binding_event(&record, &pdu, &sender) {
            true
        } else {
            let why = match (&record.info.room_id, record.awaiting_room()) {
                (_, true) => KeyError::Unbound(sender),
                (Some(other), false) if other != &room_id => {
                    KeyError::OtherRoom { cryptoid: sender, bound: other.clone(), wanted: room_id }
                }
                _ => KeyError::WrongState {
                    cryptoid: sender,
                    state: record.info.state.as_str(),
                    action: "sign",
                },
            };
            return Err(why.into());
        };

        let prepared = match early {
            Some(p) => p,
            None => event::prepare(pdu, rv)?,
        };
        let computed = prepared.event_id().ok_or(EventError::MissingEventId(rv.id()))?;
        if let Some(given) = event_id {
            if given != computed {
                return Err(PduError::EventIdMismatch {
                    announced: given.to_owned(),
                    computed: computed.to_owned(),
                }
                .into());
            }
        }
        let event_id = computed.to_owned();
        learned.event_id = Some(event_id.clone());
        Ok(Checked { prepared, event_id, record, room_id, event_type: ty, depth, room_version: *rv, binds })
    }

    /// Signs checked PDUs in order; binds keys durably before releasing any
    /// signature. All or nothing.
    /// The signed PDUs, and what the journal keeps of each.
    fn sign_checked(&self, checked: Vec<Checked>) -> Result<(Vec<SignedPdu>, Vec<SignedNote>)> {
        self.require_unlocked()?;
        let mut sigs = Vec::with_capacity(checked.len());
        for c in &checked {
            let backend = self.backend(Some(&c.record.info.backend))?;
            let public = c.record.public_key()?;
            let sign = || backend.sign(&public, &c.record.handle, c.prepared.signing_bytes());
            // Hardware calls block (a touch may take seconds): keep them off
            // the async workers' queue, with nothing left unjournaled.
            let sig = if backend.name() == "soft" {
                sign()
            } else {
                self.flush_journal_before_waiting();
                tokio::task::block_in_place(sign)
            };
            sigs.push(sig.map_err(Error::from).inspect_err(|e| self.drop_pkcs11_if_gone(e))?);
        }
        // Deleted or locked while signing: release nothing, and take the
        // secret the signer may have cached back out.
        for c in &checked {
            if let Err(e) = self.still_usable(c) {
                if let Ok(b) = self.backend(Some(&c.record.info.backend)) {
                    if let Ok(public) = c.record.public_key() {
                        b.forget(&public);
                    }
                }
                return Err(e);
            }
        }
        for c in checked.iter().filter(|c| c.binds) {
            self.registry.update(&c.record.info.cryptoid, |r| self.bind(r, &c.room_id))?;
        }
        let now = self.now();
        let mut out = Vec::with_capacity(checked.len());
        let mut notes = Vec::with_capacity(checked.len());
        for (c, sig) in checked.into_iter().zip(sigs) {
            self.registry.touch(&c.record.info.cryptoid, now);
            let mut seen = Seen::of_pdu(&c.event_id, c.depth, c.prepared.event());
            if crate::rooms::verify::is_auth_event(c.prepared.event()) {
                seen.full = Some(c.prepared.event());
            }
            self.rooms.record_signed(&c.room_id, &seen, Some(c.room_version.id()));
            if self.config.notifications.notify_signed && seen.state_key.is_some() {
                let what = cryptoid_protocol::text::sanitize_default(&format!(
                    "signed {} in {}",
                    seen.event_type.unwrap_or("?"),
                    c.room_id
                ));
                // Nobody listening is fine.
                let _ = self.events.send(super::Event::StateSigned(what));
            }
            notes.push(SignedNote {
                room_version: c.room_version.id().to_owned(),
                event_id: c.event_id.clone(),
                depth: c.depth,
                event_type: seen.event_type.map(str::to_owned),
                state_key: seen.state_key.map(str::to_owned),
                membership: seen
                    .content
                    .and_then(|o| o.get("membership"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
            let pdu = c.prepared.attach_signature(&c.record.info.cryptoid, CRYPTOID_KEY_ID, &sig)?;
            out.push(SignedPdu {
                pdu: Value::Object(pdu),
                event_id: c.event_id,
                signature: base64::encode(&sig),
            });
        }
        Ok((out, notes))
    }

    /// `sign.pdu`: the outcome, and the journal entry its steps produced.
    pub async fn sign_pdu(&self, client: &ClientInfo, p: SignPduParams) -> (Audit, Result<SignedPdu>) {
        let mut audit = Audit::default();
        let r = self.sign_pdu_steps(client, p, &mut audit).await;
        (audit, r)
    }

    async fn sign_pdu_steps(
        &self,
        client: &ClientInfo,
        p: SignPduParams,
        audit: &mut Audit,
    ) -> Result<SignedPdu> {
        self.require_unlocked()?;
        let rv = self.room_version(&p.room_version)?;
        let (learned, checked) = self.check_pdu(&rv, p.pdu, p.event_id.as_deref(), None);
        audit.subject(learned);
        let checked = checked?;
        let reservation = self.rate_reserve(client, &checked.room_id, 1);
        let decision = self.decide_sign(client, &checked, p.intent.as_ref(), reservation.facts);
        let confirmed = judged(audit, self.enforce(client, "sign.pdu", &[&checked], decision).await)?;
        if confirmed {
            // The room, the clock and the key may have moved while the
            // user was asked: judge again; only a denial counts now.
            let again = self.decide_sign(client, &checked, p.intent.as_ref(), reservation.facts);
            still_allowed(&again)?;
        }
        let waited = self.ensure_token_unlocked(client, &[&checked]).await || confirmed;
        let checked = if waited { self.refresh(checked)? } else { checked };
        let (mut signed, notes) = self.sign_checked(vec![checked])?;
        audit.signed = notes;
        reservation.keep();
        signed.pop().ok_or_else(|| Error::internal("nothing signed"))
    }

    /// A `createRoom` batch: one room, each event's `prev_events` naming the
    /// one before it; checked whole, judged as the initial state of a new
    /// room, confirmed once if needed, then signed in order. All or nothing.
    pub async fn sign_batch(&self, client: &ClientInfo, p: SignBatchParams) -> (Audit, Result<SignedBatch>) {
        let mut audit = Audit::default();
        let r = self.sign_batch_steps(client, p, &mut audit).await;
        (audit, r)
    }

    async fn sign_batch_steps(
        &self,
        client: &ClientInfo,
        p: SignBatchParams,
        audit: &mut Audit,
    ) -> Result<SignedBatch> {
        self.require_unlocked()?;
        audit.count = Some(p.pdus.len() as u64);
        let rv = self.room_version(&p.room_version)?;
        if p.pdus.is_empty() || p.pdus.len() > MAX_BATCH {
            return Err(RequestError::param("pdus", format!("a batch holds 1 to {MAX_BATCH} PDUs")).into());
        }
        if let Some(ids) = &p.event_ids {
            if ids.len() != p.pdus.len() {
                return Err(RequestError::param("event_ids", "event_ids must have one entry per PDU").into());
            }
        }
        let mut checked: Vec<Checked> = Vec::with_capacity(p.pdus.len());
        let mut binding: Option<(String, String)> = None;
        for (i, pdu) in p.pdus.into_iter().enumerate() {
            let given = p.event_ids.as_ref().and_then(|ids| ids.get(i)).map(String::as_str);
            let b = binding.as_ref().map(|(k, r)| (k.as_str(), r.as_str()));
            let (learned, c) = self.check_pdu(&rv, pdu, given, b);
            audit.subject(learned);
            let c = c.map_err(|e| Error::InBatch { index: i, source: Box::new(e) })?;
            if let Some(prev) = checked.last() {
                if c.room_id != prev.room_id {
                    return Err(PduError::BatchMixesRooms {
                        index: i,
                        room: c.room_id.clone(),
                        batch_room: prev.room_id.clone(),
                    }
                    .into());
                }
            }
            if c.binds {
                binding = Some((c.record.info.cryptoid.clone(), c.room_id.clone()));
            }
            checked.push(c);
        }
        audit.event_id = checked.first().map(|c| c.event_id.clone());
        audit.event_type = Some("createRoom batch".into());
        let room_id = checked.first().map(|c| c.room_id.clone()).unwrap_or_default();
        let reservation = self.rate_reserve(client, &room_id, checked.len());
        let decision = self.decide_batch(client, &checked, p.intent.as_ref(), reservation.facts);
        let refs: Vec<&Checked> = checked.iter().collect();
        let confirmed = judged(audit, self.enforce(client, "sign.batch", &refs, decision).await)?;
        if confirmed {
            let again = self.decide_batch(client, &checked, p.intent.as_ref(), reservation.facts);
            still_allowed(&again)?;
        }
        let waited = self.ensure_token_unlocked(client, &refs).await || confirmed;
        let checked = if waited {
            checked.into_iter().map(|c| self.refresh(c)).collect::<Result<Vec<_>>>()?
        } else {
            checked
        };
        let (signed, notes) = self.sign_checked(checked)?;
        audit.signed = notes;
        reservation.keep();
        Ok(SignedBatch { pdus: signed })
    }
}

impl Service {
    /// After a wait (a confirmation, a PIN): the lock and the key as they
    /// are now. A key deleted meanwhile is `unknown_key`, a locked agent
    /// `locked`; the fresh record is what signs. Without a wait the record
    /// is the one just checked, and `sign_checked` looks once more after
    /// signing anyway.
    fn refresh(&self, mut c: Checked) -> Result<Checked> {
        self.require_unlocked()?;
        c.record = self.still_usable(&c)?;
        Ok(c)
    }

    fn still_usable(&self, c: &Checked) -> Result<KeyRecord> {
        let id = &c.record.info.cryptoid;
        let gone = || KeyError::DeletedMeanwhile(id.clone());
        let rec = self.registry.get(id).ok_or_else(gone)?;
        if rec.info.state == KeyState::Retired || rec.handle == Value::Null {
            return Err(gone().into());
        }
        // Bound to this room, or still waiting as it was when checked (a
        // binding event, or a later PDU of the batch that binds it).
        let fine = rec.bound_to(&c.room_id) || (rec.awaiting_room() && !c.record.bound_to(&c.room_id));
        if !fine {
            return Err(
                KeyError::ChangedMeanwhile { cryptoid: id.clone(), state: rec.info.state.as_str() }.into()
            );
        }
        self.require_unlocked()?;
        Ok(rec)
    }
}

/// Records what acting on the decision found; whether a person (or a
/// remembered approval) confirmed it.
fn judged(audit: &mut Audit, (j, allowed): (crate::service::Judged, Result<()>)) -> Result<bool> {
    let confirmed = j.confirmed_by.is_some();
    audit.judged(j);
    allowed.map(|()| confirmed)
}

/// After a confirmation: a denial by the decision made again is final.
fn still_allowed(d: &crate::policy::Decision) -> Result<()> {
    if d.action != crate::policy::Action::Deny {
        return Ok(());
    }
    Err(Refusal::PolicyAfterWait { reasons: d.decisive_reasons() }.into())
}
