//! The `[policy]` section of `config.toml`, with the defaults of DESIGN §7.

use serde::{Deserialize, Serialize};

/// What the policy says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Confirm,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Confirm => "confirm",
            Action::Deny => "deny",
        }
    }
}

/// Anti-replay mode for `prev_events`/`depth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayMode {
    /// Every prev_event must be known to the agent (observed or signed).
    Strict,
    /// `depth` must be at least the room's highest known depth − `depth_window`.
    Window,
    Off,
}

/// What the room view takes as fact (`[policy] room_view`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomViewMode {
    /// Only verified full events (and what this agent signed) are facts;
    /// summaries are claims that can only make the agent more careful.
    #[default]
    Verified,
    /// Summaries are taken on the homeserver's word, as releases before
    /// verification did: weaker, since the homeserver then writes the
    /// baseline of the view.
    Claimed,
}

/// One ordered rule on room, event type and state-ness. The first matching
/// rule decides the event-type verdict; without a match the built-in
/// defaults apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Glob on the room ID (`*` any run, `?` one character).
    #[serde(default = "any")]
    pub room: String,
    /// Glob on the event type.
    #[serde(default = "any", rename = "type")]
    pub event_type: String,
    /// Only state events (`true`) or only non-state events (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<bool>,
    pub action: Action,
}

/// What a client executable may do. `confirm` asks once per agent session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRule {
    /// Glob on the client's `/proc/<pid>/exe` path.
    pub exe: String,
    /// Signing PDUs.
    #[serde(default = "confirm")]
    pub sign: Action,
    /// Key management: creating, deleting, generating, binding keys.
    #[serde(default = "confirm")]
    pub manage: Action,
}

/// Signing rate limits over a sliding window; a burst beyond → confirm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Signatures per room per window (0: no limit).
    pub per_room: u32,
    /// Signatures per client executable per window (0: no limit).
    pub per_client: u32,
    pub window_secs: u64,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig { per_room: 60, per_client: 600, window_secs: 60 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Refuse `sign.pdu` without an `intent`.
    pub require_intent: bool,
    pub anti_replay: ReplayMode,
    pub depth_window: i64,
    /// What the room view takes as fact.
    pub room_view: RoomViewMode,
    /// Allowed distance of `origin_server_ts` from the agent's clock.
    pub clock_skew_secs: u64,
    /// Kick, ban, unban, invite of others, power over others, redacting
    /// others' events.
    pub power_over_others: Action,
    /// Clients no `[[policy.clients]]` rule names.
    pub unknown_clients: Action,
    /// `keys.delete` asks for confirmation.
    pub confirm_delete: bool,
    /// Seconds to wait for an answer before `confirmation_timeout`.
    pub confirm_timeout_secs: u64,
    /// Program asked to confirm (argv[1] is the prompt; exit 0 = allow).
    /// `CRYPTOID_ASKPASS` in the agent's environment overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub askpass: Option<String>,
    /// The pinentry program asked for confirmations and token PINs, in the
    /// desktop's own dialog. Unset: `pinentry` on `PATH`, as gpg-agent
    /// does; `"none"` turns it off. `CRYPTOID_PINENTRY` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinentry: Option<String>,
    /// Whether `confirm.answer` over the socket is accepted. Any process of
    /// the user can use the socket, so this is weaker than askpass.
    pub socket_confirm: bool,
    pub rate: RateConfig,
    pub rules: Vec<Rule>,
    pub clients: Vec<ClientRule>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            require_intent: false,
            anti_replay: ReplayMode::Window,
            depth_window: 50,
            room_view: RoomViewMode::Verified,
            clock_skew_secs: 300,
            power_over_others: Action::Confirm,
            unknown_clients: Action::Confirm,
            confirm_delete: true,
            confirm_timeout_secs: 60,
            askpass: None,
            pinentry: None,
            socket_confirm: true,
            rate: RateConfig::default(),
            rules: Vec::new(),
            clients: Vec::new(),
        }
    }
}

fn any() -> String {
    "*".into()
}

fn confirm() -> Action {
    Action::Confirm
}

/// Glob match: `*` matches any run (also empty), `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, m) in [
            ("*", "", true),
            ("*", "m.room.message", true),
            ("m.room.*", "m.room.message", true),
            ("m.room.*", "m.reaction", false),
            ("!*:example.org", "!abc:example.org", true),
            ("!*:example.org", "!abc:example.org.evil", false),
            ("m.?oom.name", "m.room.name", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(glob(p, t), m, "{p} ~ {t}");
        }
    }

    #[test]
    fn parses_rules_and_clients() {
        let text = r#"
            require_intent = true
            anti_replay = "strict"
            [rate]
            per_room = 5
            [[rules]]
            room = "!work:*"
            type = "m.room.message"
            action = "deny"
            [[clients]]
            exe = "/usr/bin/element*"
            sign = "allow"
        "#;
        let c: PolicyConfig = toml::from_str(text).expect("policy");
        assert!(c.require_intent);
        assert_eq!(c.anti_replay, ReplayMode::Strict);
        assert_eq!(c.rate.per_room, 5);
        assert_eq!(c.rate.window_secs, 60);
        assert_eq!(c.rules[0].event_type, "m.room.message");
        assert_eq!(c.clients[0].manage, Action::Confirm);
        assert!(toml::from_str::<PolicyConfig>("bogus = 1").is_err());
    }
}
