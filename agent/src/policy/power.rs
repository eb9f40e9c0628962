//! Events that affect other people: kick, ban, unban, invite, power levels
//! granted or taken, redactions of others' events. These take
//! `power_over_others` (confirm by default) and the prompt names the target.

use super::config::{Action, PolicyConfig};
use super::{Finding, RoomFacts, SignRequest};
use cryptoid_protocol::json::{Object, Value};
use std::collections::BTreeSet;

/// A cryptoID shortened for prompts: `XGX0JRS2…`.
pub fn short(id: &str) -> String {
    if id.chars().count() > 12 {
        format!("{}…", id.chars().take(8).collect::<String>())
    } else {
        id.to_owned()
    }
}

fn level(pl: &Object, user: &str) -> i64 {
    pl.get("users")
        .and_then(Value::as_object)
        .and_then(|u| u.get(user))
        .and_then(Value::as_int)
        .unwrap_or_else(|| pl.get("users_default").and_then(Value::as_int).unwrap_or(0))
}

fn users(pl: &Object) -> impl Iterator<Item = &String> {
    pl.get("users").and_then(Value::as_object).into_iter().flat_map(|u| u.keys())
}

pub fn check(req: &SignRequest<'_>, room: &RoomFacts<'_>, cfg: &PolicyConfig) -> (Vec<Finding>, Vec<String>) {
    let pdu = req.pdu;
    let s = |k: &str| pdu.get(k).and_then(Value::as_str);
    let sender = s("sender").unwrap_or("");
    let content = pdu.get("content").and_then(Value::as_object);
    let mut findings = Vec::new();
    let mut changes = Vec::new();
    let mut over_others = |what: String, changes: &mut Vec<String>| {
        findings.push(Finding::new(cfg.power_over_others, format!("{what} affects someone else")));
        changes.push(what);
    };
    match s("type") {
        Some("m.room.member") => {
            let target = s("state_key").unwrap_or("");
            let membership = content.and_then(|c| c.get("membership")).and_then(Value::as_str).unwrap_or("?");
            if target == sender {
                changes.push(format!("own membership → {membership}"));
            } else {
                let what = match membership {
                    "ban" => format!("ban {}", short(target)),
                    "leave" => format!("kick (or unban) {}", short(target)),
                    "invite" => format!("invite {}", short(target)),
                    other => format!("set the membership of {} to {other}", short(target)),
                };
                over_others(what, &mut changes);
            }
        }
        Some("m.room.power_levels") => {
            let empty = Object::new();
            let new = content.unwrap_or(&empty);
            let ids: BTreeSet<&String> =
                users(new).chain(room.power_levels.into_iter().flat_map(users)).collect();
            for user in ids {
                let to = level(new, user);
                let from = room.power_levels.map(|old| level(old, user));
                let what = match from {
                    Some(from) if from == to => continue,
                    Some(from) => format!("power level of {} {from} → {to}", short(user)),
                    None if to <= new.get("users_default").and_then(Value::as_int).unwrap_or(0) => continue,
                    None => format!("power level of {} → {to}", short(user)),
                };
                if user == sender {
                    changes.push(format!("own {what}"));
                } else {
                    over_others(what, &mut changes);
                }
            }
            if let Some(old) = room.power_levels {
                let default = |pl: &Object| pl.get("users_default").and_then(Value::as_int).unwrap_or(0);
                if default(old) != default(new) {
                    over_others(
                        format!("default power level {} → {}", default(old), default(new)),
                        &mut changes,
                    );
                }
            }
        }
        Some("m.room.redaction") => {
            let target =
                content.and_then(|c| c.get("redacts")).and_then(Value::as_str).or_else(|| s("redacts"));
            match target {
                Some(t) if (room.is_own)(t) => {
                    findings
                        .push(Finding::new(Action::Allow, format!("redacts {t}, one of your own events")));
                    changes.push(format!("redact own event {t}"));
                }
                Some(t) => over_others(format!("redact {t}, which is not one of your events"), &mut changes),
                None => over_others("redaction without a target".to_owned(), &mut changes),
            }
        }
        _ => {}
    }
    (findings, changes)
}
