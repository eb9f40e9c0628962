//! The room view against a real database in a temporary directory.

use super::*;
// These tests feed summaries and check what the view makes of them: as
// `room_view = "claimed"` trusts them. (Verified facts: `verify_tests`.)
use cryptoid_protocol::json::from_str;
use cryptoid_protocol::wire::rooms::ObservedEvent;

fn ev(id: &str, depth: u64, prev: &[&str]) -> ObservedEvent {
    ObservedEvent {
        event_id: id.into(),
        depth,
        prev_events: prev.iter().map(|s| s.to_string()).collect(),
        event_type: None,
        state_key: None,
        content: None,
    }
}

fn state(id: &str, depth: u64, ty: &str, sk: &str, content: &str) -> ObservedEvent {
    ObservedEvent {
        event_type: Some(ty.into()),
        state_key: Some(sk.into()),
        content: Some(from_str(content).expect("content")),
        ..ev(id, depth, &[])
    }
}

fn observe(rooms: &Rooms, events: Vec<ObservedEvent>) -> RoomView {
    rooms
        .observe(
            ObserveParams {
                room_id: "!r:x".into(),
                room_version: None,
                events,
                server_keys: Default::default(),
                pdus: Vec::new(),
            },
            RoomViewMode::Claimed,
        )
        .expect("observe")
}

#[test]
fn observe_sign_flush_reload() {
    let d = tempfile::tempdir().expect("tempdir");
    let (rooms, seq) = Rooms::load(d.path().to_path_buf()).expect("load");
    assert_eq!(seq, 0);
    let v = observe(&rooms, vec![ev("$a", 10, &["$z"])]);
    // `$z` is only named as a prev_event: not known.
    assert_eq!((v.max_depth, v.known_events, v.observed), (Some(10), 1, true));
    rooms.record_signed(
        "!r:x",
        &Seen {
            event_id: "$b",
            depth: 11,
            event_type: None,
            state_key: None,
            content: None,
            grade: Grade::Trusted,
            full: None,
        },
        None,
    );
    rooms.with_facts("!r:x", |f| {
        assert_eq!(f.max_depth, Some(11));
        assert_eq!(((f.depth_of)("$a"), (f.depth_of)("$b"), (f.depth_of)("$z")), (Some(10), Some(11), None));
        assert!((f.is_own)("$b") && !(f.is_own)("$a") && f.exists);
    });
    assert_eq!(rooms.flush(7).expect("flush"), 1);
    drop(rooms);
    let (rooms, seq) = Rooms::load(d.path().to_path_buf()).expect("reload");
    assert_eq!(seq, 7);
    rooms.with_facts("!r:x", |f| assert!(f.observed && (f.is_own)("$b") && f.max_depth == Some(11)));
    rooms.with_facts("!unknown:x", |f| assert!(f.max_depth.is_none() && !f.observed && !f.exists));
}

#[test]
fn the_anchor_is_the_newest_authorization_event_and_superseded_ones_are_flagged() {
    let d = tempfile::tempdir().expect("tempdir");
    let (rooms, _) = Rooms::load(d.path().to_path_buf()).expect("load");
    // Delivered out of order on purpose: the view sorts by depth.
    observe(
        &rooms,
        vec![
            state("$ban", 9, "m.room.member", "@m", r#"{"membership":"ban"}"#),
            state("$pl2", 8, "m.room.power_levels", "", r#"{"users":{"a":100}}"#),
            state("$c", 1, "m.room.create", "", "{}"),
            state("$pl1", 3, "m.room.power_levels", "", r#"{"users":{"a":100,"m":100}}"#),
            state("$join", 12, "m.room.member", "@a", r#"{"membership":"join"}"#),
            ev("$msg", 13, &[]),
        ],
    );
    rooms.with_facts("!r:x", |f| {
        let a = f.anchor.as_ref().expect("anchor");
        assert_eq!((a.event_id, a.depth, a.what), ("$ban", 9, "ban of @m"), "joins do not anchor");
        assert!((f.is_superseded)("$pl1") && !(f.is_superseded)("$pl2") && !(f.is_superseded)("$c"));
        let users = f.power_levels.and_then(|p| p.get("users")).and_then(Value::as_object).expect("pl");
        assert_eq!(users.len(), 1, "the newest power levels are current");
    });
    // An older power levels event arriving later does not replace them.
    observe(&rooms, vec![state("$pl0", 2, "m.room.power_levels", "", "{}")]);
    rooms.with_facts("!r:x", |f| {
        assert!((f.is_superseded)("$pl0"));
        assert!(f.power_levels.is_some_and(|p| p.contains_key("users")));
    });
}

#[test]
fn replay_applies_journaled_signatures() {
    let d = tempfile::tempdir().expect("tempdir");
    let (rooms, _) = Rooms::load(d.path().to_path_buf()).expect("load");
    let entry = from_str(
        r#"{"room_id":"!r:x","signed":[{"event_id":"$s1","depth":40},{"event_id":"$s2","depth":41,"type":"m.room.member","state_key":"@m","membership":"leave"}]}"#,
    )
    .expect("entry")
    .into_object()
    .expect("object");
    assert_eq!(rooms.replay(&[entry]), 2);
    rooms.with_facts("!r:x", |f| {
        assert!(f.max_depth == Some(41) && (f.is_own)("$s1"));
        assert_eq!(f.anchor.as_ref().map(|a| a.event_id), Some("$s2"), "a replayed kick anchors");
    });
}

#[test]
fn a_view_written_before_round_2_loads_without_its_unproven_ids() {
    let d = tempfile::tempdir().expect("tempdir");
    let old = r#"{"room_id":"!r:x","observed":true,"max_depth":9,"known":["$a","$z"],"own":["$o"],"power_levels":null}"#;
    std::fs::write(d.path().join("old.json"), old).expect("write");
    let (rooms, _) = Rooms::load(d.path().to_path_buf()).expect("load");
    rooms.with_facts("!r:x", |f| {
        assert!(f.observed && f.max_depth == Some(9) && (f.depth_of)("$a").is_none() && (f.is_own)("$o"))
    });
}

/// A view as the release before the database wrote it (one JSON file per
/// room, `state.json`), with every field it had: moved into the database
/// on first start, the files removed, nothing lost.
#[test]
fn a_view_written_by_the_json_release_migrates_whole() {
    let d = tempfile::tempdir().expect("tempdir");
    let room = r#"{"room_id":"!old:x","room_version":"org.matrix.msc4080","observed":true,"max_depth":9,
        "events":[["$c",1],["$pl",2],["$ban",5],["$m",9]],"own":[["$m",9],["$v1:x",8]],
        "power_levels":{"users":{"K":100}},"power_levels_depth":2,
        "anchor":{"event_id":"$ban","depth":5,"what":"ban of M"},
        "auth_state":{"m.room.create\u0000":["$c",1],"m.room.power_levels\u0000":["$pl",2],"m.room.member\u0000M":["$ban",5]},
        "superseded":[["$join",4]],"superseded_rules":[["$pl0",1]],
        "members":{"M":{"user_id":"@m:x","verified":true}},"name":"Old room"}"#;
    std::fs::write(d.path().join("b2xkIHJvb20.json"), room).expect("room file");
    std::fs::write(d.path().join("state.json"), r#"{"seq":42}"#).expect("marker");
    let (rooms, seq) = Rooms::load(d.path().to_path_buf()).expect("load");
    assert_eq!(seq, 42, "the journal position the view covered");
    let names: Vec<String> = std::fs::read_dir(d.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert_eq!(names, vec![DATABASE.to_owned()], "the JSON files are gone: {names:?}");
    let check = |rooms: &Rooms| {
        assert_eq!(rooms.version_of("!old:x").as_deref(), Some("org.matrix.msc4080"));
        assert_eq!(rooms.name("!old:x").as_deref(), Some("Old room"));
        rooms.with_facts("!old:x", |f| {
            assert!(f.observed && f.max_depth == Some(9));
            assert_eq!(((f.depth_of)("$pl"), (f.depth_of)("$m")), (Some(2), Some(9)));
            assert!((f.is_own)("$m") && !(f.is_own)("$v1:x"), "carried IDs are not own");
            assert!((f.is_superseded)("$join") && (f.is_superseded)("$pl0"));
            assert_eq!((f.member)("M"), Some(("@m:x".to_owned(), true)));
            assert_eq!(f.anchor.as_ref().map(|a| a.event_id), Some("$ban"));
            assert!(f.power_levels.is_some_and(|p| p.contains_key("users")));
        });
    };
    check(&rooms);
    // And again after a restart from the database alone.
    drop(rooms);
    let (rooms, seq) = Rooms::load(d.path().to_path_buf()).expect("reload");
    assert_eq!(seq, 42);
    check(&rooms);
}

/// Attack: a homeserver floods a room with member joins past what the view
/// keeps. The observe is refused with `room_limit`, naming the limit and
/// how many events were kept; what was not kept stays unknown (never made
/// up). Control: within the limit, a member is known.
#[test]
fn past_the_member_limit_observe_says_so_and_keeps_what_fitted() {
    let d = tempfile::tempdir().expect("tempdir");
    let (rooms, _) = Rooms::load_with_limit(d.path().to_path_buf(), 10).expect("load");
    let join = |i: u64| {
        state(&format!("$j{i}"), i + 1, "m.room.member", &format!("K{i}"), r#"{"membership":"join"}"#)
    };
    observe(&rooms, (0..8).map(join).collect());
    let r = rooms.observe(
        ObserveParams {
            room_id: "!r:x".into(),
            room_version: None,
            events: (8..20).map(join).collect(),
            server_keys: Default::default(),
            pdus: Vec::new(),
        },
        RoomViewMode::Claimed,
    );
    let e = r.expect_err("past the limit");
    assert_eq!(e.cause(), "room_limit", "{e}");
    assert!(e.to_string().contains("limit of 10"), "{e}");
    rooms.with_facts("!r:x", |f| {
        assert!((f.depth_of)("$j7").is_some(), "kept before the limit");
        assert!((f.depth_of)("$j19").is_none(), "not kept past it");
    });
    // Another room is not affected.
    let ok = rooms.observe(
        ObserveParams {
            room_id: "!other:x".into(),
            room_version: None,
            events: (0..5).map(join).collect(),
            server_keys: Default::default(),
            pdus: Vec::new(),
        },
        RoomViewMode::Claimed,
    );
    assert!(ok.is_ok());
}

/// Signatures after a large observe are recorded (without an fsync each)
/// and made durable by one flush. (Bytes written are measured by
/// `tests/perf.sh scale`, not asserted here.)
#[test]
fn signatures_after_a_large_observe_are_recorded_and_flushed() {
    let d = tempfile::tempdir().expect("tempdir");
    let (rooms, _) = Rooms::load(d.path().to_path_buf()).expect("load");
    let joins: Vec<ObservedEvent> = (0..3000)
        .map(|i| {
            state(&format!("$j{i}"), i + 1, "m.room.member", &format!("K{i}"), r#"{"membership":"join"}"#)
        })
        .collect();
    observe(&rooms, joins);
    rooms.with_facts("!r:x", |f| assert_eq!((f.depth_of)("$j2999"), Some(3000)));
    for i in 0..50 {
        let id = format!("$s{i}");
        rooms.record_signed(
            "!r:x",
            &Seen {
                event_id: &id,
                depth: 3001 + i,
                event_type: None,
                state_key: None,
                content: None,
                grade: Grade::Trusted,
                full: None,
            },
            Some("org.matrix.msc4080"),
        );
    }
    assert_eq!(rooms.flush(1).expect("flush"), 1);
    rooms.with_facts("!r:x", |f| assert!((f.is_own)("$s49") && f.max_depth == Some(3050)));
}

/// After a storage error the view refuses to be read (the policy denies)
/// until it is reopened; reopening replays the journal since the durable
/// marker, so a signature whose commit was not durable is back.
#[test]
fn a_broken_view_is_unreadable_until_recovered_from_the_journal() {
    let d = tempfile::tempdir().expect("tempdir");
    let (rooms, _) = Rooms::load(d.path().to_path_buf()).expect("load");
    observe(&rooms, vec![ev("$a", 10, &[])]);
    rooms.broken.store(true, std::sync::atomic::Ordering::SeqCst);
    rooms.with_facts("!r:x", |f| assert!(!f.readable && (f.depth_of)("$a").is_none()));
    let entry = from_str(
        r#"{"room_id":"!r:x","signed":[{"event_id":"$s1","depth":11,"room_version":"org.matrix.msc4080"}]}"#,
    )
    .expect("entry")
    .into_object()
    .expect("object");
    let n = rooms.recover(|seq| {
        assert_eq!(seq, 0, "nothing was flushed");
        Ok(vec![entry])
    });
    assert_eq!(n.expect("recover"), 1);
    rooms.with_facts("!r:x", |f| {
        assert!(f.readable && (f.depth_of)("$a") == Some(10) && (f.is_own)("$s1") && f.max_depth == Some(11))
    });
}
