//! Events that affect other people: kick, ban, unban, invite, power levels
//! granted or taken (every field, see [`super::levels`]), redactions of
//! others' events. These take `power_over_others` (confirm by default) and
//! the prompt names the target and the change.

use super::authz::Baseline;
use super::config::{Action, PolicyConfig, RoomViewMode};
use super::levels::Levels;
use super::{Finding, RoomFacts, SignRequest, Weight};
use cryptoid_protocol::json::{Object, Value};

/// A cryptoID shortened for prompts: `XGX0JRS2Af3b…`. Twelve characters
/// are 72 bits: no one can grind a key that looks like a friend's.
pub fn short(id: &str) -> String {
    if id.chars().count() > 16 {
        format!("{}…", id.chars().take(12).collect::<String>())
    } else {
        id.to_owned()
    }
}

/// The user's own join: its `mxid_mapping` (the homeserver's claim of who
/// this cryptoID is) must name the signing key and, when the key's record
/// names its user, that user. Signing another mapping would let the
/// homeserver present the user's key under someone else's name, or
/// someone else's key under the user's.
fn own_join_mapping(sender: &str, content: Option<&Object>, key_user: Option<&str>) -> Option<Finding> {
    let m = content?.get("mxid_mapping")?;
    let Some(m) = m.as_object() else {
        return Some(Finding::new(Action::Deny, "the join's mxid_mapping is not an object"));
    };
    let field = |k: &str| m.get(k).and_then(Value::as_str);
    if field("user_room_key") != Some(sender) {
        return Some(Finding::new(
            Action::Deny,
            format!(
                "the join's mxid_mapping names cryptoID {}, not the key that signs it ({})",
                field("user_room_key").map_or("(none)".to_owned(), short),
                short(sender)
            ),
        ));
    }
    match (field("user_id"), key_user) {
        (Some(u), Some(k)) if u != k => Some(Finding::new(
            Action::Deny,
            format!("the join's mxid_mapping names {u}, but this cryptoID belongs to {k}"),
        )),
        (None, _) => Some(Finding::new(Action::Deny, "the join's mxid_mapping has no user_id")),
        _ => None,
    }
}

/// A redaction's two target fields: (the room version's, the other one).
/// The version's is top-level `redacts` in room versions 1–10,
/// `content.redacts` from 11 on; the other is what older code and some
/// clients read, so the two may not disagree.
pub fn redaction_targets<'a>(
    pdu: &'a Object,
    rv: &cryptoid_protocol::RoomVersion,
) -> (Option<&'a Value>, Option<&'a Value>) {
    let top = pdu.get("redacts");
    let inner = pdu.get("content").and_then(Value::as_object).and_then(|c| c.get("redacts"));
    if rv.redacts_in_content() {
        (inner, top)
    } else {
        (top, inner)
    }
}

fn parsed_levels<'a>(o: Option<&'a Object>, rv: &'a cryptoid_protocol::RoomVersion) -> Option<Levels<'a>> {
    o.and_then(|o| Levels::new(o, rv).ok())
}

pub fn check(
    req: &SignRequest<'_>,
    room: &RoomFacts<'_>,
    cfg: &PolicyConfig,
    baseline: &Baseline,
) -> (Vec<Finding>, Vec<(Weight, String)>) {
    let pdu = req.pdu;
    let s = |k: &str| pdu.get(k).and_then(Value::as_str);
    let sender = s("sender").unwrap_or("");
    let content = pdu.get("content").and_then(Value::as_object);
    let mut findings = Vec::new();
    // Findings pushed while `over_others` holds `findings`.
    let mut extra = Vec::new();
    let mut changes: Vec<(Weight, String)> = Vec::new();
    let mut over_others = |weight: Weight, what: String, changes: &mut Vec<(Weight, String)>| {
        findings.push(Finding::new(cfg.power_over_others, format!("{what} affects someone else")));
        changes.push((weight, what));
    };
    match s("type") {
        Some("m.room.member") => {
            let target = s("state_key").unwrap_or("");
            let membership = content.and_then(|c| c.get("membership")).and_then(Value::as_str).unwrap_or("?");
            if target == sender {
                changes.push((Weight::Own, format!("own membership → {membership}")));
                if membership == "join" {
                    findings.extend(own_join_mapping(sender, content, req.key_user));
                    let named = content
                        .and_then(|c| c.get("mxid_mapping"))
                        .and_then(Value::as_object)
                        .and_then(|m| m.get("user_id"))
                        .and_then(Value::as_str);
                    if let Some(u) = named {
                        changes.push((Weight::Own, format!("join as {u}")));
                    }
                }
            } else {
                let who = room.name(target);
                let (weight, what) = match membership {
                    "ban" => (Weight::Others, format!("ban {who}")),
                    "leave" => (Weight::Others, format!("kick (or unban) {who}")),
                    "invite" => (Weight::Opens, format!("invite {who}")),
                    other => (Weight::Opens, format!("set the membership of {who} to {other}")),
                };
                over_others(weight, what, &mut changes);
            }
        }
        Some("m.room.power_levels") if pdu.get("state_key").and_then(Value::as_str) == Some("") => {
            let empty = Object::new();
            let new = match Levels::new(content.unwrap_or(&empty), req.room_version) {
                Ok(l) => l,
                Err(e) => {
                    findings.push(Finding::new(Action::Deny, e));
                    return (findings, changes);
                }
            };
            let rv = req.room_version;
            let parsed = |o| parsed_levels(o, rv);
            let olds: Vec<Levels<'_>> = match (baseline, cfg.room_view) {
                // What every other server judges the event by.
                (Baseline::Verified { power_levels }, _) => {
                    let cited = match power_levels {
                        None => {
                            if room.power_levels.is_some() {
                                extra.push(Finding::new(
                                    Action::Confirm,
                                    "the PDU's auth_events cite no power levels, though the room has them: servers would judge it as if it had none; changes are shown against the defaults and the room's verified power levels",
                                ));
                            }
                            Levels::defaults(rv)
                        }
                        Some(pl) => match Levels::new(pl, rv) {
                            Ok(l) => l,
                            Err(e) => {
                                extra.push(Finding::new(
                                    Action::Confirm,
                                    format!("the power levels the PDU cites cannot be read for a diff ({e}): changes are shown against the defaults and the room's verified power levels"),
                                ));
                                Levels::defaults(rv)
                            }
                        },
                    };
                    // The view's newest verified power levels too: a PDU
                    // citing other (older, forked, absent) ones hides no
                    // change from the person.
                    let mut v = vec![cited];
                    v.extend(parsed(room.power_levels));
                    v
                }
                (Baseline::Unverified { .. }, RoomViewMode::Claimed) => {
                    let known = parsed(room.power_levels);
                    if known.is_none() {
                        changes.push((
                            Weight::Others,
                            "(the agent does not know the room's current power levels: compared with the defaults; feed /sync to rooms.observe)"
                                .to_owned(),
                        ));
                    }
                    vec![known.unwrap_or_else(|| Levels::defaults(rv))]
                }
                (Baseline::Unverified { missing }, RoomViewMode::Verified) => {
                    extra.push(Finding::new(
                        Action::Confirm,
                        format!(
                            "the agent has not verified the room's power levels (it does not hold {} of this PDU's auth_events verified): every change is shown against the defaults and against what the room view has seen",
                            if missing.is_empty() { "the power levels".to_owned() } else { missing.join(", ") }
                        ),
                    ));
                    changes.push((
                        Weight::Others,
                        "(the agent has not verified the room's power levels: changes are shown against every baseline it has, the defaults included)".to_owned(),
                    ));
                    // Every baseline: a claimed one can add a change, never hide one.
                    let mut v = vec![Levels::defaults(rv)];
                    v.extend(parsed(room.power_levels));
                    v.extend(parsed(room.claimed_power_levels));
                    v
                }
            };
            let mut seen = std::collections::HashSet::new();
            let diff: Vec<_> =
                olds.iter().flat_map(|old| old.diff(&new)).filter(|c| seen.insert(c.describe())).collect();
            let (own, others): (Vec<_>, Vec<_>) =
                diff.into_iter().partition(|c| c.user.as_deref() == Some(sender));
            // Effects on others first: they are what a prompt must show.
            for c in others {
                // Members by Matrix ID where the room view knows them.
                let named = match &c.user {
                    Some(u) if (room.member)(u).is_some() => c.describe().replacen(
                        &format!("users[{}]", short(u)),
                        &format!("users[{}]", room.name(u)),
                        1,
                    ),
                    _ => c.describe(),
                };
                // Power given to others first: it is what a prompt must show.
                over_others(if c.grants { Weight::Opens } else { Weight::Others }, named, &mut changes);
            }
            changes.extend(own.iter().map(|c| (Weight::Own, format!("own {}", c.describe()))));
        }
        Some("m.room.redaction") => {
            let (real, other) = redaction_targets(pdu, req.room_version);
            if other.is_some_and(|o| Some(o) != real) {
                let field = if req.room_version.redacts_in_content() {
                    "top-level redacts"
                } else {
                    "content.redacts"
                };
                findings.push(Finding::new(
                    Action::Deny,
                    format!(
                        "the redaction's {field} names {} but room version {} redacts {}: clients and older code read the other field, so the person would see another event removed",
                        other.map_or("nothing".to_owned(), Value::to_string),
                        req.room_version,
                        real.map_or("nothing".to_owned(), Value::to_string),
                    ),
                ));
                return (findings, changes);
            }
            match real.and_then(Value::as_str) {
                Some(t) if (room.is_own)(t) => {
                    findings
                        .push(Finding::new(Action::Allow, format!("redacts {t}, one of your own events")));
                    changes.push((Weight::Own, format!("redact own event {t}")));
                }
                Some(t) => over_others(
                    Weight::Others,
                    format!("redact {t}, which is not one of your events"),
                    &mut changes,
                ),
                None => over_others(Weight::Others, "redaction without a target".to_owned(), &mut changes),
            }
        }
        _ => {}
    }
    findings.extend(extra);
    (findings, changes)
}
