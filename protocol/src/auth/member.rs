//! The `m.room.member` rules: who may join, invite, leave, kick, ban and
//! knock, under which join rule, and third-party invites.

use super::power::{named_level, user_level};
use super::{can_federate, domain_of, malformed, ref_ids, AuthError, AuthMap, Ev, Result};
use crate::json::{Object, Value};
use crate::RoomVersion;

/// The member who authorised a restricted join (room versions 8 on).
pub(crate) const AUTHORISING_USER: &str = "join_authorised_via_users_server";

fn deny<T>(why: impl Into<String>) -> Result<T> {
    Err(AuthError::Membership(why.into()))
}

fn insufficient(has: i128, needed: i128, what: &str) -> AuthError {
    AuthError::InsufficientPower { has, needed, what: what.to_owned() }
}

pub(crate) fn check(ev: &Ev<'_>, rv: &RoomVersion, auth: &AuthMap<'_>) -> Result<()> {
    let content = ev.content();
    let membership_value =
        content.get("membership").ok_or_else(|| malformed("m.room.member without membership"))?;
    let membership = membership_value.as_str().unwrap_or("");
    let target = ev.state_key().ok_or_else(|| malformed("m.room.member without a state key"))?;
    let sender = ev.sender();
    let create = auth.get(&("m.room.create", "")).ok_or(AuthError::NoCreateEvent)?;

    // The creator's own first join, right after the create event.
    let prevs = ref_ids(ev.obj, "prev_events");
    if prevs.len() == 1 && membership == "join" && prevs[0] == create.id {
        let creator = if rv.implicit_room_creator() {
            Some(create.sender())
        } else {
            create
                .content()
                .get("creator")
                .ok_or_else(|| malformed("the create event has no creator"))?
                .as_str()
        };
        if creator == Some(target) {
            return Ok(());
        }
    }
    if !rv.uses_cryptoids() {
        let creating = domain_of(create.sender())?;
        if domain_of(target)? != creating && !can_federate(auth) {
            return Err(AuthError::NotFederated(target.to_owned()));
        }
    }
    let membership_of = |who: &str| auth.get(&("m.room.member", who)).and_then(Ev::membership);
    let caller = membership_of(sender);
    let caller_in_room = caller == Some("join");
    let caller_invited = caller == Some("invite");
    let caller_knocked = rv.has_knocking() && caller == Some("knock");
    let target_now = membership_of(target);
    let target_in_room = target_now == Some("join");
    let target_banned = target_now == Some("ban");
    let join_rule = match auth.get(&("m.room.join_rules", "")) {
        Some(jr) => jr.content().get("join_rule").cloned().unwrap_or_else(|| Value::from("invite")),
        None => Value::from("invite"),
    };
    let join_rule = join_rule.as_str().unwrap_or("");
    let has = user_level(sender, auth, rv)?;
    let target_level = user_level(target, auth, rv)?;
    let invite_level = named_level(auth, "invite", 0)?;
    let ban_level = named_level(auth, "ban", 50)?;

    if membership == "invite" && content.contains_key("third_party_invite") {
        if !third_party_invite_matches(ev, content, auth)? {
            return deny("the third-party invite does not match a signed m.room.third_party_invite");
        }
        if target_banned {
            return deny(format!("{target} is banned"));
        }
        return Ok(());
    }
    if membership != "join" && membership != "knock" {
        if (caller_invited || caller_knocked) && membership == "leave" && target == sender {
            return Ok(());
        }
        if !caller_in_room {
            return Err(AuthError::SenderNotJoined(sender.to_owned()));
        }
    }
    let restricted = (rv.has_restricted_joins() && join_rule == "restricted")
        || (rv.has_knock_restricted() && join_rule == "knock_restricted");
    match membership {
        "invite" => {
            if target_banned {
                return deny(format!("{target} is banned"));
            }
            if target_in_room {
                return deny(format!("{target} is already in the room"));
            }
            if has < invite_level {
                return Err(insufficient(has, invite_level, "invite"));
            }
        }
        "join" => {
            if sender != target {
                return deny("a join's sender must be the joining user");
            }
            if target_banned {
                return deny("the user is banned");
            }
            if join_rule == "public" {
                return Ok(());
            }
            if restricted {
                if !caller_in_room && !caller_invited {
                    let Some(by) = content.get(AUTHORISING_USER) else {
                        return deny("a restricted join names no authorising user");
                    };
                    let by = by
                        .as_str()
                        .ok_or_else(|| malformed("join_authorised_via_users_server is not a string"))?;
                    if membership_of(by) != Some("join") {
                        return deny(format!("the authorising user {by} is not joined"));
                    }
                    if user_level(by, auth, rv)? < invite_level {
                        return deny(format!("the authorising user {by} may not invite"));
                    }
                }
            } else if join_rule == "invite"
                || (rv.has_knocking() && join_rule == "knock")
                || (rv.has_knock_restricted() && join_rule == "knock_restricted")
            {
                if !caller_in_room && !caller_invited {
                    return deny("the user is not invited");
                }
            } else {
                return deny(format!("the join rule {join_rule:?} lets nobody join"));
            }
        }
        "leave" => {
            if target_banned && has < ban_level {
                return Err(insufficient(has, ban_level, "unban"));
            }
            if target != sender {
                let kick_level = named_level(auth, "kick", 50)?;
                if has < kick_level {
                    return Err(insufficient(has, kick_level, "kick"));
                }
                if has <= target_level {
                    return deny(format!(
                        "the sender may not kick {target}, whose level is not below theirs"
                    ));
                }
            }
        }
        "ban" => {
            if has < ban_level {
                return Err(insufficient(has, ban_level, "ban"));
            }
            if has <= target_level {
                return deny(format!("the sender may not ban {target}, whose level is not below theirs"));
            }
        }
        "knock" if rv.has_knocking() => {
            if join_rule != "knock" && !(rv.has_knock_restricted() && join_rule == "knock_restricted") {
                return deny("the join rule does not allow knocking");
            }
            if target != sender {
                return deny("a knock's sender must be the knocking user");
            }
            if target_in_room {
                return deny("the user is already in the room");
            }
            if caller_invited {
                return deny("the user is already invited");
            }
            if target_banned {
                return deny("the user is banned");
            }
        }
        _ => return deny(format!("unknown membership {membership_value}")),
    }
    Ok(())
}

/// Whether an invite's `third_party_invite.signed` is for its state key,
/// names an `m.room.third_party_invite` by the same sender, and is signed
/// by one of that event's public keys. `Err` where Synapse fails outright
/// (a public key entry without `public_key`, a key that is not Base64).
fn third_party_invite_matches(ev: &Ev<'_>, content: &Object, auth: &AuthMap<'_>) -> Result<bool> {
    let Some(signed) =
        content.get("third_party_invite").and_then(Value::as_object).and_then(|t| t.get("signed"))
    else {
        return Ok(false);
    };
    let Some(signed) = signed.as_object() else { return Ok(false) };
    if !["mxid", "token", "signatures"].iter().all(|k| signed.contains_key(*k)) {
        return Ok(false);
    }
    let Some(token) = signed.get("token").and_then(Value::as_str) else { return Ok(false) };
    let Some(invite) = auth.get(&("m.room.third_party_invite", token)) else { return Ok(false) };
    if invite.sender() != ev.sender() || signed.get("mxid").and_then(Value::as_str) != ev.state_key() {
        return Ok(false);
    }
    let ic = invite.content();
    let mut keys: Vec<&Value> = Vec::new();
    if let Some(k) = ic.get("public_key") {
        keys.push(k);
    }
    let listed: Vec<&Value> = match ic.get("public_keys") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|o| {
                o.as_object()
                    .and_then(|o| o.get("public_key"))
                    .ok_or_else(|| malformed("public_keys entry without public_key"))
            })
            .collect::<Result<_>>()?,
        _ => Vec::new(),
    };
    keys.extend(listed);
    let Some(signatures) = signed.get("signatures").and_then(Value::as_object) else {
        return Err(malformed("third_party_invite.signed.signatures is not an object"));
    };
    for key in keys {
        let key = key
            .as_str()
            .and_then(|k| crate::base64::decode(k).ok())
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| malformed("a third-party invite public key is not Base64 of 32 bytes"))?;
        let key = crate::keys::PublicKey::from_bytes(key);
        // As Synapse reads it: servers in order, the first ed25519 key of a
        // block decides for this public key (a failure moves on to the next
        // public key); a block that is not an object fails the event.
        for (server, block) in signatures {
            let block = block
                .as_object()
                .ok_or_else(|| malformed("a third-party invite signature block is not an object"))?;
            if let Some(key_id) = block.keys().find(|k| k.starts_with("ed25519:")) {
                if crate::event::verify_json(signed, server, key_id, &key).is_ok() {
                    return Ok(true);
                }
                break;
            }
        }
    }
    Ok(false)
}
