//! Room versions: the rules that decide how an event is redacted, hashed and
//! named. Unknown versions are an error, never guessed (ruma applies v11 to
//! any unknown ID, which is how `org.matrix.msc4080` "works by accident").

use std::fmt;

/// How a room version names its events (spec `rooms/v*.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventIdFormat {
    /// v1–v2: `$opaque:domain`, chosen by the origin and carried in the event.
    Carried,
    /// v3: `$` + standard unpadded Base64 of the reference hash.
    Base64Standard,
    /// v4 and later: `$` + URL-safe unpadded Base64 of the reference hash.
    Base64UrlSafe,
}

/// The redaction algorithm generations (spec "Redactions" and the room
/// version fragments). Each generation includes the ones before it unless
/// noted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RedactionAlgorithm {
    /// v1–v5.
    V1,
    /// v6–v7: `m.room.aliases` content is no longer kept.
    V6,
    /// v8: `m.room.join_rules` keeps `allow`.
    V8,
    /// v9–v10: `m.room.member` keeps `join_authorised_via_users_server`.
    V9,
    /// v11 and later (MSC2176/MSC3821/MSC3989): top level drops `origin`,
    /// `membership`, `prev_state`; create keeps all content, power levels keep
    /// `invite`, redactions keep `redacts`, members keep
    /// `third_party_invite.signed`.
    V11,
}

/// The known divergence on `m.room.member` content under v11 rules
/// (research note §2.6): which keys survive redaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemberRedaction {
    /// The spec's v11 table (and ruma): keep `third_party_invite.signed`,
    /// drop `mxid_mapping`. The default.
    #[default]
    Spec,
    /// The MSC4080 text since commit a9fd6fd: as `Spec`, and also keep
    /// `mxid_mapping`.
    KeepMxidMapping,
    /// gomatrixserverlib's `redactEventJSONV5` (Dendrite prototype): drop both
    /// `mxid_mapping` and `third_party_invite.signed`.
    Gomatrixserverlib,
}

impl MemberRedaction {
    pub const ALL: [MemberRedaction; 3] =
        [MemberRedaction::Spec, MemberRedaction::KeepMxidMapping, MemberRedaction::Gomatrixserverlib];

    /// The name used in configuration files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MemberRedaction::Spec => "spec",
            MemberRedaction::KeepMxidMapping => "keep-mxid-mapping",
            MemberRedaction::Gomatrixserverlib => "gomatrixserverlib",
        }
    }

    pub fn from_name(name: &str) -> Option<MemberRedaction> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A room version and the rules the signing core needs from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomVersion {
    id: &'static str,
    event_id_format: EventIdFormat,
    redaction: RedactionAlgorithm,
    member_redaction: MemberRedaction,
    enforces_canonical_json: bool,
}

/// The room version ID is not one this build knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported room version {0:?}: known versions are 1-12, org.matrix.msc4014 and org.matrix.msc4080")]
pub struct UnknownRoomVersion(pub String);

const fn v(
    id: &'static str,
    event_id_format: EventIdFormat,
    redaction: RedactionAlgorithm,
    enforces_canonical_json: bool,
) -> RoomVersion {
    RoomVersion {
        id,
        event_id_format,
        redaction,
        member_redaction: MemberRedaction::Spec,
        enforces_canonical_json,
    }
}

use EventIdFormat::{Base64Standard, Base64UrlSafe, Carried};
use RedactionAlgorithm as R;

impl RoomVersion {
    pub const V1: RoomVersion = v("1", Carried, R::V1, false);
    pub const V2: RoomVersion = v("2", Carried, R::V1, false);
    pub const V3: RoomVersion = v("3", Base64Standard, R::V1, false);
    pub const V4: RoomVersion = v("4", Base64UrlSafe, R::V1, false);
    pub const V5: RoomVersion = v("5", Base64UrlSafe, R::V1, false);
    pub const V6: RoomVersion = v("6", Base64UrlSafe, R::V6, true);
    pub const V7: RoomVersion = v("7", Base64UrlSafe, R::V6, true);
    pub const V8: RoomVersion = v("8", Base64UrlSafe, R::V8, true);
    pub const V9: RoomVersion = v("9", Base64UrlSafe, R::V9, true);
    pub const V10: RoomVersion = v("10", Base64UrlSafe, R::V9, true);
    pub const V11: RoomVersion = v("11", Base64UrlSafe, R::V11, true);
    pub const V12: RoomVersion = v("12", Base64UrlSafe, R::V11, true);
    /// MSC4014 pseudonymous identities. Follows the gomatrixserverlib
    /// `crypto-ids` branch, which moved it to v11 redaction (its `main` branch
    /// still used the v9/v10 rules).
    pub const MSC4014: RoomVersion = v("org.matrix.msc4014", Base64UrlSafe, R::V11, true);
    /// MSC4080 cryptographic identities: "currently, just a copy of V11".
    pub const MSC4080: RoomVersion = v("org.matrix.msc4080", Base64UrlSafe, R::V11, true);

    /// Every known room version, oldest first.
    pub const ALL: [RoomVersion; 14] = [
        Self::V1,
        Self::V2,
        Self::V3,
        Self::V4,
        Self::V5,
        Self::V6,
        Self::V7,
        Self::V8,
        Self::V9,
        Self::V10,
        Self::V11,
        Self::V12,
        Self::MSC4014,
        Self::MSC4080,
    ];

    /// Looks a room version up by its exact ID.
    pub fn from_id(id: &str) -> Result<RoomVersion, UnknownRoomVersion> {
        Self::ALL.into_iter().find(|rv| rv.id == id).ok_or_else(|| UnknownRoomVersion(id.to_owned()))
    }

    /// The same version with another `m.room.member` redaction variant.
    pub const fn with_member_redaction(mut self, m: MemberRedaction) -> RoomVersion {
        self.member_redaction = m;
        self
    }

    pub const fn id(&self) -> &'static str {
        self.id
    }

    pub const fn event_id_format(&self) -> EventIdFormat {
        self.event_id_format
    }

    pub const fn redaction(&self) -> RedactionAlgorithm {
        self.redaction
    }

    pub const fn member_redaction(&self) -> MemberRedaction {
        self.member_redaction
    }

    /// v6 and later reject events that are not valid canonical JSON. This
    /// crate parses every version strictly; the flag is informational.
    pub const fn enforces_canonical_json(&self) -> bool {
        self.enforces_canonical_json
    }

    /// Whether the room ID is derived from the hash of the create event
    /// (room version 12, MSC4291): that create event carries no `room_id`,
    /// and the room ID is its event ID with `!` for `$`.
    pub fn room_id_is_create_hash(&self) -> bool {
        self.id == "12"
    }

    /// Whether the room's creators hold unlimited power and are not listed
    /// in `m.room.power_levels` `users` (room version 12, MSC4289).
    pub fn creators_have_infinite_power(&self) -> bool {
        self.id == "12"
    }

    /// Whether power levels may be written as strings (room versions 1–9).
    pub fn allows_string_power_levels(&self) -> bool {
        matches!(self.id, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9")
    }

    /// Whether a redaction's target is `content.redacts` (v11 on) rather
    /// than the top-level `redacts` (v1–10).
    pub fn redacts_in_content(&self) -> bool {
        matches!(self.redaction, RedactionAlgorithm::V11)
    }

    /// The authorization rules' generation: the numbered version, and 11
    /// for the cryptoID versions ("currently, just a copy of V11").
    fn auth_generation(&self) -> u8 {
        self.id.parse().unwrap_or(11)
    }

    /// `m.room.aliases` is authorized by the sender's domain alone (v1–v5).
    pub fn special_case_aliases_auth(&self) -> bool {
        self.auth_generation() <= 5
    }

    /// Power levels limit `notifications` changes (v6 on).
    pub fn limits_notifications_power_levels(&self) -> bool {
        self.auth_generation() >= 6
    }

    /// The `knock` join rule and membership exist (v7 on).
    pub fn has_knocking(&self) -> bool {
        self.auth_generation() >= 7
    }

    /// The `restricted` join rule exists (v8 on).
    pub fn has_restricted_joins(&self) -> bool {
        self.auth_generation() >= 8
    }

    /// The `knock_restricted` join rule exists (v10 on).
    pub fn has_knock_restricted(&self) -> bool {
        self.auth_generation() >= 10
    }

    /// Power levels must be integers, not strings or other types (v10 on).
    pub fn enforces_integer_power_levels(&self) -> bool {
        self.auth_generation() >= 10
    }

    /// The creator is the create event's `sender`, not `content.creator`
    /// (v11 on).
    pub fn implicit_room_creator(&self) -> bool {
        self.auth_generation() >= 11
    }

    /// Whether `sender` is a cryptoID rather than a user ID.
    pub fn uses_cryptoids(&self) -> bool {
        matches!(self.id, "org.matrix.msc4014" | "org.matrix.msc4080")
    }
}

impl fmt::Display for RoomVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_exact() {
        for rv in RoomVersion::ALL {
            assert_eq!(RoomVersion::from_id(rv.id()), Ok(rv));
        }
        for bad in ["0", "13", "v11", "11 ", "org.matrix.msc4080.1", ""] {
            assert_eq!(RoomVersion::from_id(bad), Err(UnknownRoomVersion(bad.into())));
        }
    }

    #[test]
    fn event_id_formats() {
        assert_eq!(RoomVersion::V2.event_id_format(), EventIdFormat::Carried);
        assert_eq!(RoomVersion::V3.event_id_format(), EventIdFormat::Base64Standard);
        assert_eq!(RoomVersion::V4.event_id_format(), EventIdFormat::Base64UrlSafe);
        assert_eq!(RoomVersion::MSC4080.event_id_format(), EventIdFormat::Base64UrlSafe);
    }

    #[test]
    fn member_redaction_names_round_trip() {
        for m in MemberRedaction::ALL {
            assert_eq!(MemberRedaction::from_name(m.name()), Some(m));
        }
        assert_eq!(MemberRedaction::from_name("nope"), None);
    }
}
