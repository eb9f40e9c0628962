//! createRoom batches (`sign.batch`). A batch is the initial state of a
//! room the agent has never seen, and nothing else:
//!
//! - **shape**: it starts with `m.room.create`, every PDU is sent by the
//!   creator, the room is unknown to the agent (never observed, signed or
//!   batched), the create event has no `prev_events`/`auth_events`, and each
//!   later PDU is a state event whose `prev_events` is exactly the PDU
//!   before it, at that PDU's depth + 1;
//! - **intent** (`{create_room: <the /createRoom body>}`): the initial state
//!   that the spec's createRoom algorithm derives from the body (preset →
//!   join rules, history visibility, guest access; `initial_state`; `name`,
//!   `topic`; `invite`; `creation_content`; `power_level_content_override`
//!   over the defaults) must be what the batch holds, security-relevant
//!   state exactly; anything else is denied naming the field;
//! - **without an intent**, power beyond the creator's (anyone else in
//!   `users` above the defaults, a higher `users_default`, any threshold
//!   below the defaults, additional creators) needs confirmation.

use super::config::Action;
use super::levels::{Change, Levels};
use super::{Finding, RoomFacts, Weight};
use cryptoid_protocol::json::{Int, Object, Value};
use cryptoid_protocol::RoomVersion;
use std::collections::{BTreeMap, BTreeSet};

/// The batch to judge, with the event IDs the service computed.
pub struct Batch<'a> {
    pub pdus: &'a [&'a Object],
    pub event_ids: &'a [&'a str],
    pub intent: Option<&'a Value>,
    pub room_version: &'a RoomVersion,
    /// Signing the create binds its sender's key (a fresh key from
    /// `keys.create {}`), as a createRoom must.
    pub binds_creator: bool,
    /// The Matrix user the creator's key belongs to, when its record says.
    pub key_user: Option<&'a str>,
}

fn s<'a>(o: &'a Object, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

fn obj<'a>(o: &'a Object, k: &str) -> Option<&'a Object> {
    o.get(k).and_then(Value::as_object)
}

fn int(v: i64) -> Value {
    Value::Int(Int::new(v).unwrap_or(Int::from(0u32)))
}

/// What a batch's later PDUs set, by (type, state key); the last one wins.
type State<'a> = BTreeMap<(&'a str, &'a str), &'a Object>;

pub fn check(b: &Batch<'_>, room: &RoomFacts<'_>) -> (Vec<Finding>, Vec<(Weight, String)>) {
    let mut out = Vec::new();
    let deny = |out: &mut Vec<Finding>, why: String| out.push(Finding::new(Action::Deny, why));
    let Some(create) = b.pdus.first().copied() else {
        deny(&mut out, "a batch holds at least the room's m.room.create".into());
        return (out, Vec::new());
    };
    if !cryptoid_protocol::event::is_create(create) {
        deny(
            &mut out,
            "sign.batch is only for createRoom: the batch must start with the new room's m.room.create"
                .into(),
        );
        return (out, Vec::new());
    }
    let creator = s(create, "sender").unwrap_or("");
    if !b.binds_creator {
        deny(
            &mut out,
            format!("cryptoID {creator} is already bound to a room: a createRoom batch is signed by a fresh key from keys.create {{}}"),
        );
    }
    let create_content = obj(create, "content");
    // v1–10 read the creator from the content: it must be the sender.
    if let Some(named) = create_content.and_then(|c| c.get("creator")) {
        if named.as_str() != Some(creator) {
            deny(&mut out, format!("m.room.create names {named} as creator, not its sender {creator}"));
        }
    }
    // Servers read the room version from the content (absent: "1"); it
    // must be the version the agent signs under.
    let named_version =
        create_content.and_then(|c| c.get("room_version")).and_then(Value::as_str).unwrap_or("1");
    if named_version != b.room_version.id() {
        deny(
            &mut out,
            format!(
                "m.room.create says room version {named_version:?} but the batch is signed as version {}",
                b.room_version
            ),
        );
    }
    if room.exists {
        deny(
            &mut out,
            "the agent already knows this room (observed, signed or batched): sign.batch is only for a new room; sign later events one by one with sign.pdu".into(),
        );
    }
    for key in ["prev_events", "auth_events"] {
        if create.get(key).and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
            deny(&mut out, format!("the m.room.create of a new room has no {key}"));
        }
    }
    let depth = |p: &Object| p.get("depth").and_then(Value::as_int).unwrap_or(0);
    let mut state: State<'_> = BTreeMap::new();
    for (i, p) in b.pdus.iter().enumerate().skip(1) {
        if s(p, "sender") != Some(creator) {
            deny(&mut out, format!("PDU {i} is not sent by the room's creator {creator}"));
        }
        let prevs = super::replay::ref_ids(p, "prev_events");
        let before = b.event_ids.get(i - 1).copied().unwrap_or("");
        if prevs != [before] {
            deny(
                &mut out,
                format!("PDU {i} of the batch does not follow PDU {} ({before}): its prev_events must name exactly it", i - 1),
            );
        }
        let want = depth(b.pdus[i - 1]).saturating_add(1);
        if depth(p) != want {
            deny(&mut out, format!("PDU {i} has depth {}; after PDU {} it must be {want}", depth(p), i - 1));
        }
        // Authorized only by what came before it in the batch: not by an
        // existing room's events (a "new" room that is someone else's).
        let earlier = &b.event_ids[..i.min(b.event_ids.len())];
        if let Some(a) = super::replay::ref_ids(p, "auth_events").into_iter().find(|a| !earlier.contains(a)) {
            deny(
                &mut out,
                format!("PDU {i} cites {a} in auth_events, which is not an earlier event of the batch"),
            );
        }
        match (s(p, "type"), s(p, "state_key"), obj(p, "content")) {
            (Some("m.room.create"), ..) => deny(&mut out, format!("PDU {i} is a second m.room.create")),
            (Some(ty), Some(sk), Some(c)) => {
                // Each piece of state once: a second copy would be judged
                // while the first is signed too, and a fork could use it.
                if state.insert((ty, sk), c).is_some() {
                    deny(&mut out, format!("PDU {i} sets {ty} ({sk:?}) a second time in the batch"));
                }
            }
            _ => deny(
                &mut out,
                format!("PDU {i} is not a state event: a createRoom batch holds only initial state"),
            ),
        }
    }
    let additional: BTreeSet<&str> = create_content
        .and_then(|c| c.get("additional_creators"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Before v12 servers give additional creators nothing: only the
    // sender is the creator there.
    let mut creators: BTreeSet<&str> =
        if b.room_version.creators_have_infinite_power() { additional.clone() } else { BTreeSet::new() };
    creators.insert(creator);
    let mut changes: Vec<(Weight, String)> = Vec::new();
    match b.intent {
        Some(intent) => {
            with_intent(b, intent, creator, &creators, &additional, &state, &mut out, &mut changes)
        }
        None => {
            for who in &additional {
                out.push(Finding::new(
                    Action::Confirm,
                    format!(
                        "additional creator {} gets unlimited power (no createRoom intent)",
                        super::power::short(who)
                    ),
                ));
            }
            let baseline = default_levels(b.room_version, creator, &[], "private_chat");
            if !state.contains_key(&("m.room.power_levels", "")) {
                out.push(Finding::new(
                    Action::Confirm,
                    "the batch has no m.room.power_levels: without one every member may send any state (no createRoom intent)",
                ));
            }
            if let Some(pl) = state.get(&("m.room.power_levels", "")) {
                for c in power_grants(
                    &baseline,
                    pl,
                    b.room_version,
                    &creators,
                    Scope { named: &BTreeSet::new(), guarded: &[creator], lockout: Action::Confirm },
                    &mut out,
                ) {
                    changes.push((Weight::Opens, c.describe()));
                    out.push(Finding::new(
                        Action::Confirm,
                        format!("{} gives power beyond the creator's (no createRoom intent)", c.describe()),
                    ));
                }
            }
        }
    }
    (out, changes)
}

/// Synapse's and the spec's default power levels for a new room, with the
/// preset's override (`invite: 0` for the private presets) and, before room
/// version 12, the creator (and trusted invitees) at 100.
fn default_levels(rv: &RoomVersion, creator: &str, trusted: &[&str], preset: &str) -> Object {
    let mut users = Object::new();
    if !rv.creators_have_infinite_power() {
        users.insert(creator.to_owned(), int(100));
        for u in trusted {
            users.insert((*u).to_owned(), int(100));
        }
    }
    let tombstone = if rv.creators_have_infinite_power() { 150 } else { 100 };
    let events: Object = [
        ("m.room.name", 50),
        ("m.room.power_levels", 100),
        ("m.room.history_visibility", 100),
        ("m.room.canonical_alias", 50),
        ("m.room.avatar", 50),
        ("m.room.tombstone", tombstone),
        ("m.room.server_acl", 100),
        ("m.room.encryption", 100),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), int(v)))
    .collect();
    let mut pl = Object::new();
    pl.insert("users".into(), Value::Object(users));
    pl.insert("events".into(), Value::Object(events));
    // The spec's defaults, written out (invite is the preset's).
    for (k, v) in super::levels::THRESHOLDS.iter().filter(|(k, _)| *k != "invite") {
        pl.insert((*k).into(), int(*v));
    }
    let invite = if preset == "public_chat" { 50 } else { 0 };
    pl.insert("invite".into(), int(invite));
    pl
}

/// What a power-levels comparison leaves out and guards: the override's
/// fields (`named`, checked exactly elsewhere), who must keep full power
/// (`guarded`), and what a lockout of them is (`lockout`).
struct Scope<'a> {
    named: &'a BTreeSet<&'a str>,
    guarded: &'a [&'a str],
    lockout: Action,
}

/// Changes from `baseline` to `actual` that give power to someone other
/// than the creators or take it from the creator, skipping fields in
/// `named` (the client's override, checked exactly elsewhere). A threshold
/// raised above the creator's own level (locking the creator out) is a
/// `lockout` finding.
fn power_grants(
    baseline: &Object,
    actual: &Object,
    rv: &RoomVersion,
    creators: &BTreeSet<&str>,
    scope: Scope<'_>,
    out: &mut Vec<Finding>,
) -> Vec<Change> {
    let Scope { named, guarded, lockout } = scope;
    let (base, new) = match (Levels::new(baseline, rv), Levels::new(actual, rv)) {
        (Ok(b), Ok(n)) => (b, n),
        (_, Err(e)) | (Err(e), _) => {
            out.push(Finding::new(Action::Deny, e));
            return Vec::new();
        }
    };
    // Raising a threshold above the creator's own level locks the creator
    // out of what it guards (v12 creators stand above every level).
    if !rv.creators_have_infinite_power() {
        // The lowest of those who must keep full power: the creator and,
        // in a trusted_private_chat, the invitees.
        let level = guarded.iter().map(|c| new.user(c)).min().unwrap_or(0);
        for field in new.raised_above(&base, level) {
            if !named.contains(field.split(['[', ' ']).next().unwrap_or("")) {
                out.push(Finding::new(
                    lockout,
                    format!("power levels: {field} is above the level {level} of the creator (or a trusted invitee): they would be locked out of it, and the createRoom request did not ask for that"),
                ));
            }
        }
    }
    base.diff(&new)
        .into_iter()
        .filter(|c| !named.contains(c.field.split('[').next().unwrap_or("")))
        .filter(|c| match c.user.as_deref() {
            Some(u) if creators.contains(u) => !c.grants,
            _ => c.grants,
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn with_intent(
    b: &Batch<'_>,
    intent: &Value,
    creator: &str,
    creators: &BTreeSet<&str>,
    additional: &BTreeSet<&str>,
    state: &State<'_>,
    out: &mut Vec<Finding>,
    changes: &mut Vec<(Weight, String)>,
) {
    let deny = |out: &mut Vec<Finding>, why: String| out.push(Finding::new(Action::Deny, why));
    let body = match intent.as_object().map(|i| (i.len(), i.get("create_room"))) {
        Some((1, Some(Value::Object(body)))) => body,
        _ => {
            deny(
                out,
                "the intent of sign.batch must be {\"create_room\": <the /createRoom request body>}".into(),
            );
            return;
        }
    };
    let preset = match (s(body, "preset"), s(body, "visibility")) {
        (Some(p), _) => p,
        (None, Some("public")) => "public_chat",
        (None, _) => "private_chat",
    };
    let (join_rule, guest) = match preset {
        "private_chat" | "trusted_private_chat" => ("invite", true),
        "public_chat" => ("public", false),
        other => {
            deny(out, format!("createRoom intent: unknown preset {other:?}"));
            return;
        }
    };
    let invite: Vec<&str> = body
        .get("invite")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let weight = if preset == "public_chat" { Weight::Opens } else { Weight::Others };
    changes.push((weight, format!("createRoom ({preset})")));

    // Expected state by (type, state key), initial_state last (it wins).
    let mut expected: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut put = |ty: &str, key: &str, v: &str| {
        let mut c = Object::new();
        c.insert(key.into(), Value::from(v));
        expected.insert((ty.into(), String::new()), Value::Object(c));
    };
    put("m.room.join_rules", "join_rule", join_rule);
    put("m.room.history_visibility", "history_visibility", "shared");
    if guest {
        put("m.room.guest_access", "guest_access", "can_join");
    }
    for item in body.get("initial_state").and_then(Value::as_array).into_iter().flatten() {
        let Some(i) = item.as_object() else { continue };
        match (s(i, "type"), i.get("content")) {
            (Some(ty), Some(c @ Value::Object(_))) => {
                expected.insert((ty.into(), s(i, "state_key").unwrap_or("").into()), c.clone());
            }
            _ => deny(
                out,
                format!("createRoom intent: initial_state item {item} needs a type and an object content"),
            ),
        }
    }

    // Creators: additional_creators exactly as asked (plus, in v12, the
    // invitees of a trusted_private_chat).
    let mut want_additional: BTreeSet<&str> = body
        .get("creation_content")
        .and_then(Value::as_object)
        .and_then(|c| c.get("additional_creators"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if preset == "trusted_private_chat" && b.room_version.creators_have_infinite_power() {
        want_additional.extend(invite.iter().copied());
    }
    if &want_additional != additional {
        deny(out, format!("m.room.create additional_creators is {additional:?} but the createRoom request implies {want_additional:?}"));
    }
    if let Some(create) = b.pdus.first() {
        check_creation_content(create, body, out);
    }
    if let Some(v) = s(body, "room_version") {
        if v != b.room_version.id() {
            deny(
                out,
                format!(
                    "the createRoom request asks for room version {v:?} but the batch is version {}",
                    b.room_version
                ),
            );
        }
    }

    // The state the batch sets.
    let mut seen = BTreeSet::new();
    // Invited user → the cryptoID (state key) the batch invites them as.
    let mut invited: BTreeMap<&str, &str> = BTreeMap::new();
    for (&(ty, sk), content) in state {
        seen.insert((ty.to_owned(), sk.to_owned()));
        let shown = || format!("{ty} ({sk:?})");
        let field = |k: &str| content.get(k).and_then(Value::as_str);
        if let Some(want) = expected.get(&(ty.to_owned(), sk.to_owned())) {
            if want.as_object() != Some(*content) {
                deny(
                    out,
                    format!(
                        "{} is {} but the createRoom request implies {want}",
                        shown(),
                        Value::Object((*content).clone())
                    ),
                );
            }
            continue;
        }
        match ty {
            // Room state only under the empty state key: under "x" these
            // are not what they seem, and fall to the denial below.
            "m.room.power_levels" if sk.is_empty() => {}
            "m.room.member" if sk == creator => {
                if field("membership") != Some("join") {
                    deny(out, format!("the creator's membership is {:?}, not join", field("membership")));
                }
                let extra = content.keys().find(|k| {
                    !matches!(k.as_str(), "membership" | "mxid_mapping" | "displayname" | "avatar_url")
                });
                if let Some(k) = extra {
                    deny(
                        out,
                        format!(
                            "the creator's join carries {k}, which the createRoom request did not ask for"
                        ),
                    );
                }
            }
            "m.room.member" => match invitee(sk, content, &invite, body, b.room_version) {
                Ok(user) if invited.insert(user, sk).is_none() => {
                    if sk == user {
                        changes.push((Weight::Opens, format!("invite {user}")));
                    } else {
                        // The key is the homeserver's choice, and a batch
                        // brings no server keys to check the mapping with:
                        // the person sees whose key it claims to be.
                        let what = format!(
                            "invite {} (name claimed by the homeserver: {user})",
                            super::power::short(sk)
                        );
                        out.push(Finding::new(
                            Action::Confirm,
                            format!("{what}: the homeserver chose this key for {user}"),
                        ));
                        changes.push((Weight::Opens, what));
                    }
                }
                Ok(user) => deny(out, format!("{} invites {user} a second time", shown())),
                Err(why) => deny(out, format!("{} {why}", shown())),
            },
            // Every key as the request implies it: no `m.topic`, no extra
            // key a client would show and the person never asked for.
            "m.room.name" | "m.room.topic" if sk.is_empty() => {
                let key = if ty == "m.room.name" { "name" } else { "topic" };
                let want = body.get(key).and_then(Value::as_str).map(|v| {
                    let mut o = Object::new();
                    o.insert(key.into(), Value::from(v));
                    o
                });
                if want.as_ref() != Some(*content) {
                    deny(
                        out,
                        format!(
                            "{ty} is {} but the createRoom request implies {}",
                            Value::Object((*content).clone()),
                            want.map_or("none".to_owned(), |w| Value::Object(w).to_string())
                        ),
                    );
                }
            }
            "m.room.canonical_alias" if sk.is_empty() => {
                // Only `alias`: createRoom asks for no alt_aliases.
                let ok = content.len() == 1
                    && s(body, "room_alias_name").is_some_and(|n| {
                        field("alias").is_some_and(|a| {
                            a.strip_prefix('#')
                                .and_then(|a| a.strip_prefix(n))
                                .is_some_and(|r| r.starts_with(':'))
                        })
                    });
                if !ok {
                    deny(
                        out,
                        format!(
                            "m.room.canonical_alias {} was not asked for (room_alias_name {:?}: exactly {{\"alias\": \"#<it>:<server>\"}})",
                            Value::Object((*content).clone()),
                            s(body, "room_alias_name")
                        ),
                    );
                }
            }
            // A server may turn encryption on by default (Synapse's
            // encryption_enabled_by_default_for_room_type): allowed only with
            // the standard algorithm and nothing else.
            "m.room.encryption"
                if sk.is_empty()
                    && content.len() == 1
                    && field("algorithm") == Some("m.megolm.v1.aes-sha2") =>
            {
                changes.push((Weight::Own, "encryption on (the server's default)".into()));
            }
            _ => {
                deny(out, format!("the batch sets {} which the createRoom request did not ask for", shown()))
            }
        }
    }
    for (ty, sk) in expected.keys() {
        if !seen.contains(&(ty.clone(), sk.clone())) {
            deny(out, format!("the batch lacks {ty} ({sk:?}) that the createRoom request implies"));
        }
    }

    // Power levels: initial_state's exactly; else the defaults with the
    // override applied, the override's fields exactly.
    let Some(pl) = state.get(&("m.room.power_levels", "")).copied() else {
        deny(out, "the batch has no m.room.power_levels".into());
        return;
    };
    if expected.contains_key(&("m.room.power_levels".into(), String::new())) {
        return;
    }
    // trusted_private_chat: each invitee at 100, under the key the batch
    // invites them as (MSC4080: the one-time cryptoID the server claimed
    // for them; other versions: their user ID), and only those.
    let trusted: Vec<&str> = if preset == "trusted_private_chat" {
        for u in invite.iter().filter(|u| !invited.contains_key(*u)) {
            deny(
                out,
                format!("trusted_private_chat gives {u} the creator's power, but the batch has no invite of {u} saying under which key: the grant could not be checked"),
            );
        }
        invited.values().copied().collect()
    } else {
        Vec::new()
    };
    let guarded: Vec<&str> = std::iter::once(creator).chain(trusted.iter().copied()).collect();
    let mut baseline = default_levels(b.room_version, creator, &trusted, preset);
    let over = body.get("power_level_content_override").and_then(Value::as_object);
    let mut named = BTreeSet::new();
    for (k, v) in over.into_iter().flatten() {
        baseline.insert(k.clone(), v.clone());
        named.insert(k.as_str());
        if pl.get(k) != Some(v) {
            deny(
                out,
                format!(
                    "power_level_content_override.{k} asks for {v} but the batch's power levels have {}",
                    pl.get(k).map_or("nothing".into(), Value::to_string)
                ),
            );
        }
    }
    for c in power_grants(
        &baseline,
        pl,
        b.room_version,
        creators,
        Scope { named: &named, guarded: &guarded, lockout: Action::Deny },
        out,
    ) {
        deny(
            out,
            format!("power levels: {} gives power the createRoom request did not ask for", c.describe()),
        );
    }
}

/// Checks an invite in a createRoom batch; the invited user ID.
///
/// The state key is the invitee's key in the room: in MSC4080 a one-time
/// cryptoID the homeserver claimed for them, named in `mxid_mapping`
/// (`user_room_key` the state key, `user_id` the invited user; claimed by
/// the homeserver, as every mapping the agent cannot verify); in other
/// versions the user ID itself. The content holds nothing the request did
/// not imply: `is_direct` as asked, and the display name and avatar a
/// server adds.
fn invitee<'a>(
    sk: &'a str,
    content: &'a Object,
    invite: &[&str],
    body: &Object,
    rv: &RoomVersion,
) -> Result<&'a str, String> {
    if s(content, "membership") != Some("invite") {
        return Err(format!(
            "sets the membership of {} to {:?}, which the createRoom request did not ask for",
            super::power::short(sk),
            s(content, "membership")
        ));
    }
    let user = match obj(content, "mxid_mapping") {
        // Outside cryptoID rooms the state key is the user ID: a mapping
        // there would let any key pass for an invited user.
        Some(_) if !rv.uses_cryptoids() => {
            return Err(
                "carries an mxid_mapping, which only cryptoID rooms have: the state key is the user".into()
            )
        }
        Some(m) if s(m, "user_room_key") != Some(sk) => {
            return Err(format!(
                "has an mxid_mapping for {} but invites {}",
                s(m, "user_room_key").map_or("nobody".into(), super::power::short),
                super::power::short(sk)
            ))
        }
        Some(m) => s(m, "user_id").ok_or("has an mxid_mapping without a user_id")?,
        None => sk,
    };
    if !invite.contains(&user) {
        return Err(format!("invites {user}, whom the createRoom request does not invite"));
    }
    for (k, v) in content {
        let fine = match k.as_str() {
            "membership" | "mxid_mapping" | "displayname" | "avatar_url" => true,
            "is_direct" => body.get("is_direct").unwrap_or(&Value::Bool(false)) == v,
            _ => false,
        };
        if !fine {
            return Err(format!("carries {k} = {v}, which the createRoom request did not ask for"));
        }
    }
    Ok(user)
}

/// `creation_content` keys must be in the create event as asked; a key it
/// does not name must be absent (`m.federate` may be `true`).
fn check_creation_content(create: &Object, body: &Object, out: &mut Vec<Finding>) {
    let empty = Object::new();
    let asked = obj(body, "creation_content").unwrap_or(&empty);
    let got = obj(create, "content").unwrap_or(&empty);
    for (k, v) in asked {
        if k != "additional_creators" && got.get(k) != Some(v) {
            out.push(Finding::new(
                Action::Deny,
                format!("m.room.create content.{k} is not {v} as the createRoom request asks"),
            ));
        }
    }
    for (k, v) in got {
        let fine = asked.contains_key(k)
            || matches!(k.as_str(), "creator" | "room_version" | "additional_creators")
            || (k == "m.federate" && *v == Value::Bool(true));
        if !fine {
            out.push(Finding::new(
                Action::Deny,
                format!("m.room.create content.{k} = {v} was not asked for"),
            ));
        }
    }
}
