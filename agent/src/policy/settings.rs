//! The room's security-relevant settings, old → new, as a person reads
//! them: join rules (and a restricted room's allow list), history
//! visibility, guest access, server ACL, encryption, tombstone, canonical
//! alias, third-party invites, space child and parent. "asks to sign
//! m.room.join_rules" tells nobody whether the room goes public; these do.
//!
//! Each line carries its [`Weight`]: what opens the room comes first in a
//! prompt. The old value is the room view's current one; unknown, the
//! line says so.

use super::Weight;
use cryptoid_protocol::json::{Object, Value};

/// Types that have a human diff here.
pub const TYPES: [&str; 10] = [
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.tombstone",
    "m.room.canonical_alias",
    "m.room.third_party_invite",
    "m.space.child",
    "m.space.parent",
];

/// Most list items named in one line; the rest are counted.
const LIST: usize = 6;

fn s<'a>(o: Option<&'a Object>, k: &str) -> Option<&'a str> {
    o?.get(k)?.as_str()
}

fn shown(v: Option<&str>) -> String {
    v.map_or("(unset)".to_owned(), |v| format!("{v:?}"))
}

fn strings<'a>(o: Option<&'a Object>, k: &str) -> Vec<&'a str> {
    o.and_then(|o| o.get(k))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `+ a, b − c` for a list that changed; `None` when it did not.
fn list_diff(old: &[&str], new: &[&str]) -> Option<String> {
    let added: Vec<&str> = new.iter().filter(|x| !old.contains(x)).copied().collect();
    let removed: Vec<&str> = old.iter().filter(|x| !new.contains(x)).copied().collect();
    if added.is_empty() && removed.is_empty() {
        return None;
    }
    let part = |sign: &str, v: &[&str]| {
        if v.is_empty() {
            return None;
        }
        let mut t = v.iter().take(LIST).map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", ");
        if v.len() > LIST {
            t.push_str(&format!(" and {} more", v.len() - LIST));
        }
        Some(format!("{sign} {t}"))
    };
    Some([part("+", &added), part("−", &removed)].into_iter().flatten().collect::<Vec<_>>().join(" "))
}

/// How open a join rule is, for ranking: higher lets more people in.
fn openness(rule: Option<&str>) -> u8 {
    match rule {
        Some("public") => 5,
        Some("knock_restricted") => 4,
        Some("restricted") => 3,
        Some("knock") => 2,
        Some("invite") => 1,
        _ => 0,
    }
}

/// How far history reaches, for ranking.
fn reach(v: Option<&str>) -> u8 {
    match v {
        Some("world_readable") => 3,
        Some("shared") | None => 2,
        Some("invited") => 1,
        _ => 0,
    }
}

/// The rooms a restricted join rule's `allow` names.
fn allowed_rooms(c: Option<&Object>) -> Vec<&str> {
    c.and_then(|c| c.get("allow"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_object)
                .filter(|o| o.get("type").and_then(Value::as_str) == Some("m.room_membership"))
                .filter_map(|o| o.get("room_id").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The human diff of `ty` under `state_key` from `old` (the view's current
/// content, if known) to `new`. Empty for types not listed in [`TYPES`].
pub fn describe(ty: &str, state_key: &str, old: Option<&Object>, new: &Object) -> Vec<(Weight, String)> {
    let new = Some(new);
    let mut out = Vec::new();
    if !TYPES.contains(&ty) {
        return out;
    }
    let keyed = matches!(ty, "m.room.third_party_invite" | "m.space.child" | "m.space.parent");
    if !keyed && !state_key.is_empty() {
        return out; // not the room's setting (see `rooms`)
    }
    let unknown = old.is_none();
    match ty {
        "m.room.join_rules" => {
            let (a, b) = (s(old, "join_rule"), s(new, "join_rule"));
            let w = if openness(b) > openness(a) { Weight::Opens } else { Weight::Others };
            if a != b {
                out.push((w, format!("join rule {} → {}", shown(a), shown(b))));
            }
            let (ra, rb) = (allowed_rooms(old), allowed_rooms(new));
            if matches!(b, Some("restricted" | "knock_restricted")) {
                if let Some(d) = list_diff(&ra, &rb) {
                    // Members of any added room may join without an invite.
                    let w = if rb.iter().any(|r| !ra.contains(r)) { Weight::Opens } else { Weight::Others };
                    out.push((w, format!("rooms whose members may join: {d}")));
                } else if a != b {
                    out.push((
                        w,
                        format!(
                            "rooms whose members may join: {}",
                            rb.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        "m.room.history_visibility" => {
            let (a, b) = (s(old, "history_visibility"), s(new, "history_visibility"));
            if a != b {
                let w = if reach(b) > reach(a) { Weight::Opens } else { Weight::Others };
                out.push((w, format!("history visibility {} → {}", shown(a), shown(b))));
            }
        }
        "m.room.guest_access" => {
            let (a, b) = (s(old, "guest_access"), s(new, "guest_access"));
            if a != b {
                let w = if b == Some("can_join") { Weight::Opens } else { Weight::Others };
                out.push((w, format!("guest access {} → {}", shown(a), shown(b))));
            }
        }
        "m.room.server_acl" => {
            let literal = |c: Option<&Object>| {
                c.and_then(|c| c.get("allow_ip_literals")).and_then(Value::as_bool).unwrap_or(true)
            };
            let (aa, ab) = (strings(old, "allow"), strings(new, "allow"));
            let (da, db) = (strings(old, "deny"), strings(new, "deny"));
            if let Some(d) = list_diff(&aa, &ab) {
                let w = if ab.iter().any(|x| !aa.contains(x)) { Weight::Opens } else { Weight::Others };
                out.push((w, format!("server ACL allow: {d}")));
            }
            if let Some(d) = list_diff(&da, &db) {
                let w = if da.iter().any(|x| !db.contains(x)) { Weight::Opens } else { Weight::Others };
                out.push((w, format!("server ACL deny: {d}")));
            }
            if literal(old) != literal(new) {
                let w = if literal(new) { Weight::Opens } else { Weight::Others };
                out.push((
                    w,
                    format!(
                        "server ACL IP literals {} → {}",
                        if literal(old) { "allowed" } else { "denied" },
                        if literal(new) { "allowed" } else { "denied" }
                    ),
                ));
            }
        }
        "m.room.encryption" => {
            let (a, b) = (s(old, "algorithm"), s(new, "algorithm"));
            if a != b {
                out.push((
                    Weight::Others,
                    format!("encryption {} → {}", a.map_or("off".to_owned(), |a| format!("{a:?}")), shown(b)),
                ));
            }
            for (k, unit) in [("rotation_period_ms", " ms"), ("rotation_period_msgs", " messages")] {
                let g = |c: Option<&Object>| {
                    c.and_then(|c| c.get(k)).map(|v| format!("{v}{unit}")).unwrap_or_else(|| "default".into())
                };
                if g(old) != g(new) {
                    out.push((
                        Weight::Others,
                        format!("encryption key rotation {k} {} → {}", g(old), g(new)),
                    ));
                }
            }
        }
        "m.room.tombstone" => {
            let to = s(new, "replacement_room");
            out.push((
                Weight::Others,
                format!("tombstone: the room is closed and everyone sent to {}", shown(to)),
            ));
        }
        "m.room.canonical_alias" => {
            let (a, b) = (s(old, "alias"), s(new, "alias"));
            if a != b {
                out.push((Weight::Others, format!("canonical alias {} → {}", shown(a), shown(b))));
            }
            if let Some(d) = list_diff(&strings(old, "alt_aliases"), &strings(new, "alt_aliases")) {
                out.push((Weight::Others, format!("alternative aliases: {d}")));
            }
        }
        "m.room.third_party_invite" => {
            let who = s(new, "display_name");
            if new.is_some_and(|n| n.is_empty()) {
                out.push((Weight::Others, format!("revoke third-party invite {state_key:?}")));
            } else {
                out.push((
                    Weight::Opens,
                    format!("third-party invite of {} (token {state_key:?})", shown(who)),
                ));
            }
        }
        "m.space.child" | "m.space.parent" => {
            let what = if ty == "m.space.child" { "space child" } else { "space parent" };
            let via = strings(new, "via");
            if via.is_empty() {
                out.push((Weight::Others, format!("remove {what} {state_key:?}")));
            } else {
                let mut line = format!(
                    "{what} {state_key:?} via {}",
                    via.iter().take(LIST).map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")
                );
                if new.and_then(|n| n.get("canonical")) == Some(&Value::Bool(true)) {
                    line.push_str(" (canonical)");
                }
                out.push((Weight::Others, line));
            }
        }
        _ => {}
    }
    if unknown && !out.is_empty() && !keyed && ty != "m.room.tombstone" {
        out.push((Weight::Own, format!("(the agent does not know the room's current {ty}: compared with unset; feed /sync to rooms.observe)")));
    }
    if out.is_empty() {
        // The old value is only what the homeserver let the agent see: say
        // what the event sets, never just "no change".
        let content = new.map(|n| Value::Object(n.clone()).to_string()).unwrap_or_default();
        let content: String = content.chars().take(200).collect();
        out.push((Weight::Others, format!("{ty} {content} (unchanged per the room view)")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoid_protocol::json::from_str;

    fn o(s: &str) -> Object {
        from_str(s).expect("json").into_object().expect("object")
    }

    #[test]
    fn join_rules_say_invite_to_public_and_name_the_allowed_rooms() {
        let d = describe(
            "m.room.join_rules",
            "",
            Some(&o(r#"{"join_rule":"invite"}"#)),
            &o(r#"{"join_rule":"public"}"#),
        );
        assert_eq!(d[0], (Weight::Opens, "join rule \"invite\" → \"public\"".into()));
        let r = describe(
            "m.room.join_rules",
            "",
            Some(&o(r#"{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!a:x"}]}"#)),
            &o(r#"{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!b:x"}]}"#),
        );
        assert_eq!(r, vec![(Weight::Opens, "rooms whose members may join: + \"!b:x\" − \"!a:x\"".into())]);
        // Closing the room is a change too, but not an opening.
        let c = describe(
            "m.room.join_rules",
            "",
            Some(&o(r#"{"join_rule":"public"}"#)),
            &o(r#"{"join_rule":"invite"}"#),
        );
        assert_eq!(c[0].0, Weight::Others);
        // Under another state key it is nobody's join rule.
        assert!(describe("m.room.join_rules", "x", None, &o(r#"{"join_rule":"public"}"#)).is_empty());
    }

    #[test]
    fn every_listed_type_has_a_readable_line() {
        let cases = [
            (
                "m.room.history_visibility",
                "",
                r#"{"history_visibility":"shared"}"#,
                r#"{"history_visibility":"world_readable"}"#,
                "history visibility \"shared\" → \"world_readable\"",
            ),
            (
                "m.room.guest_access",
                "",
                r#"{"guest_access":"forbidden"}"#,
                r#"{"guest_access":"can_join"}"#,
                "guest access \"forbidden\" → \"can_join\"",
            ),
            (
                "m.room.server_acl",
                "",
                r#"{"allow":["*"],"deny":["evil.x"]}"#,
                r#"{"allow":["*"],"deny":[],"allow_ip_literals":false}"#,
                "server ACL deny: − \"evil.x\"",
            ),
            (
                "m.room.encryption",
                "",
                "{}",
                r#"{"algorithm":"m.megolm.v1.aes-sha2","rotation_period_ms":1}"#,
                "encryption off → \"m.megolm.v1.aes-sha2\"",
            ),
            (
                "m.room.tombstone",
                "",
                "{}",
                r#"{"replacement_room":"!new:x","body":"moved"}"#,
                "sent to \"!new:x\"",
            ),
            (
                "m.room.canonical_alias",
                "",
                r##"{"alias":"#a:x"}"##,
                r##"{"alias":"#a:x","alt_aliases":["#b:x"]}"##,
                "alternative aliases: + \"#b:x\"",
            ),
            (
                "m.room.third_party_invite",
                "tok",
                "{}",
                r#"{"display_name":"b...@example.org"}"#,
                "third-party invite of \"b...@example.org\"",
            ),
            ("m.space.child", "!c:x", "{}", r#"{"via":["x"]}"#, "space child \"!c:x\" via \"x\""),
            (
                "m.space.parent",
                "!p:x",
                "{}",
                r#"{"via":["x"],"canonical":true}"#,
                "space parent \"!p:x\" via \"x\" (canonical)",
            ),
        ];
        for (ty, sk, old, new, want) in cases {
            let d = describe(ty, sk, Some(&o(old)), &o(new));
            assert!(d.iter().any(|(_, l)| l.contains(want)), "{ty}: {d:?}");
        }
        assert!(describe("m.room.message", "", None, &o("{}")).is_empty());
    }
}
