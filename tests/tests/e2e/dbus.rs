//! The D-Bus API against a private `dbus-daemon`: every method, signals,
//! errors, a prompter that approves and one that denies, the activation
//! file and the shipped introspection XML.

use super::agent_sign::{assert_verifies, RV};
use cryptoid_protocol::event;
use cryptoid_protocol::json::{self, Value};
use cryptoid_protocol::wire::confirm::{Answer, AnswerParams, Pending};
use cryptoid_protocol::wire::NoParams;
use cryptoid_protocol::RoomVersion;
use cryptoid_tests::agent::{Agent, Bus, PASSPHRASE};
use cryptoid_tests::pdus;
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zbus::zvariant::{OwnedValue, Value as ZValue};
use zbus::Connection;

const DEST: &str = "org.cryptoid.Agent1";
const PATH: &str = "/org/cryptoid/Agent1";
pub(super) const IFACE: &str = "org.cryptoid.Agent1";
const OTHER: &str = "3TPraTczVkDPTRaX4K+AfUuyx7Mzq1UafTXypnl0t2k";

type Opts<'a> = HashMap<&'a str, ZValue<'a>>;

pub(super) fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

pub(super) async fn connect(bus: &Bus) -> Connection {
    zbus::connection::Builder::address(bus.address.as_str()).expect("address").build().await.expect("connect")
}

/// Calls a method and deserializes its reply body.
async fn call<B, R>(c: &Connection, method: &str, body: &B) -> zbus::Result<R>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
{
    let m = c.call_method(Some(DEST), PATH, Some(IFACE), method, body).await?;
    m.body().deserialize::<R>()
}

fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        other => format!("{other:?}"),
    }
}

fn parse(text: &str) -> Value {
    json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn every_method_over_dbus() {
    let bus = Bus::start();
    let _agent = Agent::start_on_bus(&bus.address, None);
    run(async {
        let c = connect(&bus).await;
        let hello: String = call(&c, "Hello", &()).await.expect("Hello");
        assert_eq!(parse(&hello).as_object().and_then(|o| o.get("locked")), Some(&Value::Bool(true)));
        let mut opts: Opts = HashMap::new();
        opts.insert("passphrase", PASSPHRASE.into());
        let locked: bool = call(&c, "Unlock", &(opts,)).await.expect("Unlock");
        assert!(!locked);

        let key: String = call(&c, "CreateKey", &("!d:x", Opts::new())).await.expect("CreateKey");
        let listed: String = call(&c, "ListKeys", &(HashMap::from([("room_id", ZValue::from("!d:x"))]),))
            .await
            .expect("ListKeys");
        assert!(listed.contains(&key));
        let got: String = call(&c, "GetKey", &(key.as_str(),)).await.expect("GetKey");
        assert!(got.contains("\"state\":\"bound\""), "{got}");

        let pdu = json::to_canonical_string(&pdus::message(&key, "!d:x", "over D-Bus"));
        let check: String =
            call(&c, "CheckPolicy", &(RV, pdu.as_str(), Opts::new())).await.expect("CheckPolicy");
        assert!(check.contains("\"decision\":\"allow\""), "{check}");
        let signed: String = call(&c, "SignPdu", &(RV, pdu.as_str(), Opts::new())).await.expect("SignPdu");
        let signed = parse(&signed);
        assert_verifies(&signed, &key);
        // The event_id option is checked.
        let id = event::event_id(signed.as_object().expect("o"), &RoomVersion::MSC4080).expect("id");
        let mut pdu2 = pdus::message(&key, "!d:x", "second");
        let eid = event::prepare(pdu2.as_object().expect("o").clone(), &RoomVersion::MSC4080)
            .expect("p")
            .event_id()
            .expect("id")
            .to_owned();
        let with_id = HashMap::from([("event_id", ZValue::from(eid.as_str()))]);
        let _: String = call(&c, "SignPdu", &(RV, json::to_canonical_string(&pdu2).as_str(), with_id))
            .await
            .expect("with event_id");
        pdu2 = pdus::message(&key, "!d:x", "third");
        let wrong = HashMap::from([("event_id", ZValue::from(id.as_str()))]);
        let e = call::<_, String>(&c, "SignPdu", &(RV, json::to_canonical_string(&pdu2).as_str(), wrong))
            .await
            .expect_err("mismatch");
        assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.EventIdMismatch");

        let otks: Vec<String> =
            call(&c, "GenerateOneTimeKeys", &(3u32, Opts::new())).await.expect("Generate");
        assert_eq!(otks.len(), 3);
        let body: String = call(&c, "OneTimeKeysUploadBody", &()).await.expect("UploadBody");
        assert_eq!(
            parse(&body)
                .as_object()
                .and_then(|o| o.get("one_time_cryptoids"))
                .and_then(Value::as_object)
                .map(|o| o.len()),
            Some(3)
        );
        let n: u32 = call(&c, "MarkOneTimeKeysPublished", &(otks.clone(),)).await.expect("Mark");
        assert_eq!(n, 3);
        let claimed: String =
            call(&c, "ClaimOneTimeKey", &(otks[0].as_str(), "!inv:x")).await.expect("Claim");
        assert!(claimed.contains("\"state\":\"bound\""), "{claimed}");
        let events = format!(r#"[{{"event_id":"{}","depth":3}}]"#, pdus::event_id('o'));
        let view: String =
            call(&c, "ObserveRoom", &("!d:x", events.as_str(), Opts::new())).await.expect("ObserveRoom");
        // A summary is a claim under the default room_view = "verified".
        assert!(view.contains("\"claimed\":1"), "{view}");

        // A createRoom batch for a key made without a room.
        let fresh: String =
            call(&c, "CreateKey", &("", Opts::new())).await.expect("CreateKey for createRoom");
        let (chained, _) = pdus::create_room(&fresh, "!new:x", &pdus::default_power(&fresh), &[]);
        let (create, join, power) = (&chained[0], &chained[1], &chained[2]);
        let batch = vec![
            json::to_canonical_string(create),
            json::to_canonical_string(join),
            json::to_canonical_string(power),
        ];
        let signed: Vec<String> = call(&c, "SignBatch", &(RV, batch, Opts::new())).await.expect("SignBatch");
        assert_eq!(signed.len(), 3);
        for s in &signed {
            assert_verifies(&parse(s), &fresh);
        }

        let pending: String = call(&c, "PendingConfirmations", &()).await.expect("Pending");
        assert_eq!(pending, "[]");
        let e = call::<_, ()>(&c, "AnswerConfirmation", &(999u64, true, 0u32))
            .await
            .expect_err("no such request");
        assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.InvalidParams");
        let tail: String = call(&c, "JournalTail", &(3u32, Opts::new())).await.expect("Tail");
        assert_eq!(parse(&tail).as_array().map(Vec::len), Some(3));
        let (ok, entries, err): (bool, u64, String) = call(&c, "JournalVerify", &()).await.expect("Verify");
        assert!(ok && entries > 10 && err.is_empty(), "{ok} {entries} {err}");
        let deleted: String = call(&c, "DeleteKey", &(key.as_str(),)).await.expect("DeleteKey");
        assert!(deleted.contains("\"state\":\"retired\""));

        let props = zbus::fdo::PropertiesProxy::builder(&c)
            .destination(DEST)
            .expect("d")
            .path(PATH)
            .expect("p")
            .build()
            .await
            .expect("proxy");
        let version: OwnedValue =
            props.get(IFACE.try_into().expect("iface"), "Version").await.expect("Version");
        assert_eq!(<&str>::try_from(&*version).expect("s"), env!("CARGO_PKG_VERSION"));
        let locked: bool = call(&c, "Lock", &()).await.expect("Lock");
        assert!(locked);
        let locked: OwnedValue = props.get(IFACE.try_into().expect("iface"), "Locked").await.expect("Locked");
        assert!(bool::try_from(&*locked).expect("b"));
    });
}

#[test]
fn errors_are_named_after_their_kind() {
    let bus = Bus::start();
    let _agent = Agent::start_on_bus(&bus.address, None);
    run(async {
        let c = connect(&bus).await;
        let e = call::<_, String>(&c, "CreateKey", &("!r:x", Opts::new())).await.expect_err("locked");
        assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.Locked");
        let e =
            call::<_, String>(&c, "SignPdu", &(RV, "{\"a\":1,\"a\":2}", Opts::new())).await.expect_err("dup");
        assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.ParseError");
        let bogus = HashMap::from([("bogus", ZValue::from("x"))]);
        let e = call::<_, String>(&c, "CreateKey", &("!r:x", bogus)).await.expect_err("option");
        assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.InvalidParams");
        let e = call::<_, String>(&c, "SignPdu", &("13", "{}", Opts::new())).await.expect_err("rv");
        // Locked is checked first.
        assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.Locked");
        let e = call::<_, bool>(&c, "Unlock", &(HashMap::from([("passphrase", ZValue::from(7u32))]),))
            .await
            .expect_err("type");
        assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.InvalidParams");
    });
}

#[test]
fn lock_and_key_changes_are_signalled() {
    let bus = Bus::start();
    let _agent = Agent::start_on_bus(&bus.address, None);
    run(async {
        let c = connect(&bus).await;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(IFACE)
            .expect("iface")
            .build();
        let mut signals = zbus::MessageStream::for_match_rule(rule, &c, None).await.expect("match");
        let mut opts: Opts = HashMap::new();
        opts.insert("passphrase", PASSPHRASE.into());
        let _: bool = call(&c, "Unlock", &(opts,)).await.expect("Unlock");
        let _: String = call(&c, "CreateKey", &("!s:x", Opts::new())).await.expect("CreateKey");
        let _: bool = call(&c, "Lock", &()).await.expect("Lock");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let m = tokio::time::timeout(Duration::from_secs(10), signals.next())
                .await
                .expect("signal in time")
                .expect("stream")
                .expect("msg");
            let member = m.header().member().map(|m| m.to_string()).unwrap_or_default();
            let arg = match member.as_str() {
                "LockChanged" => m.body().deserialize::<bool>().map(|b| b.to_string()).unwrap_or_default(),
                _ => String::new(),
            };
            seen.push(format!("{member}({arg})"));
        }
        assert_eq!(seen, ["LockChanged(false)", "KeysChanged()", "LockChanged(true)"]);
    });
}

/// A desktop prompter exported by the test.
struct TestPrompter {
    allow: Arc<AtomicBool>,
    asked: Arc<std::sync::Mutex<Vec<String>>>,
}

#[zbus::interface(name = "org.cryptoid.Prompter1")]
impl TestPrompter {
    async fn confirm(&self, request: HashMap<String, OwnedValue>) -> (bool, u32) {
        let prompt =
            request.get("prompt").and_then(|v| <&str>::try_from(&**v).ok()).unwrap_or_default().to_owned();
        self.asked.lock().expect("lock").push(prompt);
        (self.allow.load(Ordering::SeqCst), 0)
    }
}

/// An unlocked agent on `bus` that trusts every client and asks with a
/// `timeout` (s), and a cryptoID for `room`.
fn asking_agent(bus: &Bus, room: &str, timeout: u32) -> (Agent, String) {
    let policy = format!("[policy]\nunknown_clients = \"allow\"\nconfirm_timeout_secs = {timeout}\n");
    let agent = Agent::start_on_bus(&bus.address, Some(&policy));
    let mut c = agent.unlocked();
    let k = super::agent_sign::create(&mut c, Some(room));
    (agent, k)
}

/// `k` banning `OTHER` from `room` (a change the policy asks about), as text.
fn ban_of_other(k: &str, room: &str) -> String {
    let ban = pdus::state(k, room, "m.room.member", OTHER, r#"{"membership":"ban"}"#, &pdus::event_id('b'));
    json::to_canonical_string(&ban)
}

#[test]
fn a_registered_prompter_approves_and_denies() {
    let bus = Bus::start();
    let (_agent, k) = asking_agent(&bus, "!p:x", 5);
    run(async {
        let allow = Arc::new(AtomicBool::new(true));
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ui = zbus::connection::Builder::address(bus.address.as_str())
            .expect("address")
            .serve_at("/test/Prompter", TestPrompter { allow: allow.clone(), asked: asked.clone() })
            .expect("serve")
            .build()
            .await
            .expect("ui connection");
        let path = zbus::zvariant::ObjectPath::try_from("/test/Prompter").expect("path");
        let _: () = call(&ui, "RegisterPrompter", &(path,)).await.expect("RegisterPrompter");
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .member("ConfirmationRequested")
            .expect("m")
            .build();
        let mut requested = zbus::MessageStream::for_match_rule(rule, &ui, None).await.expect("match");

        let ban = ban_of_other(&k, "!p:x");
        let signed: String =
            call(&ui, "SignPdu", &(RV, ban.as_str(), Opts::new())).await.expect("approved by the prompter");
        assert_verifies(&parse(&signed), &k);
        let sig = tokio::time::timeout(Duration::from_secs(10), requested.next())
            .await
            .expect("signal")
            .expect("s")
            .expect("m");
        let (_, prompt): (u64, String) = sig.body().deserialize().expect("args");
        assert!(prompt.contains("ban 3TPraTczVkDP…"), "{prompt}");

        allow.store(false, Ordering::SeqCst);
        // Deeper than the ban, which now anchors the room.
        let mut kick = pdus::state(
            &k,
            "!p:x",
            "m.room.member",
            OTHER,
            r#"{"membership":"leave"}"#,
            &pdus::event_id('b'),
        );
        if let Some(o) = kick.as_object_mut() {
            o.insert("depth".into(), json::Value::Int(json::Int::from(2u32)));
        }
        let kick = json::to_canonical_string(&kick);
        let e =
            call::<_, String>(&ui, "SignPdu", &(RV, kick.as_str(), Opts::new())).await.expect_err("denied");
        assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.ConfirmationDenied");
        assert_eq!(asked.lock().expect("lock").len(), 2);

        // A prompter that leaves the bus is dropped: the next request waits
        // for other providers and times out instead of asking it.
        ui.close().await.expect("leave the bus");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let c2 = connect(&bus).await;
        let mut invite = pdus::state(
            &k,
            "!p:x",
            "m.room.member",
            OTHER,
            r#"{"membership":"invite"}"#,
            &pdus::event_id('b'),
        );
        if let Some(o) = invite.as_object_mut() {
            o.insert("depth".into(), json::Value::Int(json::Int::from(2u32)));
        }
        let invite = json::to_canonical_string(&invite);
        let e = call::<_, String>(&c2, "SignPdu", &(RV, invite.as_str(), Opts::new()))
            .await
            .expect_err("nobody answers");
        assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.ConfirmationTimeout");
        assert_eq!(asked.lock().expect("lock").len(), 2);
    });
}

#[test]
fn register_prompter_is_journaled_and_refused_with_socket_confirm_off() {
    for socket_confirm in [false, true] {
        let bus = Bus::start();
        let agent = Agent::start_on_bus(
            &bus.address,
            Some(&format!("[policy]\nunknown_clients = \"allow\"\nsocket_confirm = {socket_confirm}\n")),
        );
        let mut c = agent.unlocked();
        run(async {
            let ui = zbus::connection::Builder::address(bus.address.as_str())
                .expect("address")
                .build()
                .await
                .expect("ui connection");
            let path = zbus::zvariant::ObjectPath::try_from("/test/Prompter").expect("path");
            let r: zbus::Result<()> = call(&ui, "RegisterPrompter", &(path,)).await;
            match (socket_confirm, r) {
                // Attack: a process of the user makes itself the answerer
                // although confirmations are for askpass only.
                (false, Err(e)) => assert_eq!(error_name(&e), "org.cryptoid.Agent1.Error.NotPermitted"),
                // Control: allowed, and on record.
                (true, Ok(())) => {}
                (on, r) => panic!("socket_confirm = {on}: {r:?}"),
            }
        });
        let tail = c
            .call::<cryptoid_protocol::wire::journal::Tail>(&cryptoid_protocol::wire::journal::TailParams {
                limit: Some(5),
                room_id: None,
            })
            .expect("tail");
        let entry = tail
            .entries
            .iter()
            .filter_map(Value::as_object)
            .find(|e| e.get("method").and_then(Value::as_str) == Some("dbus.register_prompter"))
            .expect("the registration is journaled");
        let outcome = entry.get("outcome").and_then(Value::as_str);
        assert_eq!(outcome, Some(if socket_confirm { "ok" } else { "not_permitted" }), "{entry:?}");
    }
}

/// `name(type,…)->(type,…)` of every method, signal and property of the
/// interface in an introspection document.
fn members(xml: &str, iface: &str) -> BTreeSet<String> {
    let start = xml.find(&format!("<interface name=\"{iface}\">")).expect("interface");
    let body = &xml[start..start + xml[start..].find("</interface>").expect("end")];
    let mut out = BTreeSet::new();
    let attr = |tag: &str, name: &str| -> Option<String> {
        let i = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(tag[i..i + tag[i..].find('"')?].to_owned())
    };
    let mut current: Option<(String, Vec<String>, Vec<String>)> = None;
    for tag in body.split('<').map(|t| t.trim()) {
        if tag.starts_with("method ") || tag.starts_with("signal ") {
            if let Some((n, i, o)) = current.take() {
                out.insert(format!("{n}({})->({})", i.join(","), o.join(",")));
            }
            let kind = if tag.starts_with("method") { "m" } else { "s" };
            current = Some((format!("{kind}:{}", attr(tag, "name").unwrap_or_default()), vec![], vec![]));
            if tag.ends_with("/>") {
                let (n, i, o) = current.take().expect("current");
                out.insert(format!("{n}({})->({})", i.join(","), o.join(",")));
            }
        } else if tag.starts_with("arg ") {
            if let Some((_, i, o)) = current.as_mut() {
                let t = attr(tag, "type").unwrap_or_default();
                if attr(tag, "direction").as_deref() == Some("out") {
                    o.push(t)
                } else {
                    i.push(t)
                }
            }
        } else if tag.starts_with("property ") {
            out.insert(format!(
                "p:{}:{}",
                attr(tag, "name").unwrap_or_default(),
                attr(tag, "type").unwrap_or_default()
            ));
        }
    }
    if let Some((n, i, o)) = current.take() {
        out.insert(format!("{n}({})->({})", i.join(","), o.join(",")));
    }
    out
}

#[test]
fn shipped_introspection_and_activation_files_match_the_agent() {
    let bus = Bus::start();
    let _agent = Agent::start_on_bus(&bus.address, None);
    let live: String = run(async {
        let c = connect(&bus).await;
        let m = c
            .call_method(Some(DEST), PATH, Some("org.freedesktop.DBus.Introspectable"), "Introspect", &())
            .await
            .expect("introspect");
        m.body().deserialize::<String>().expect("xml")
    });
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shipped =
        std::fs::read_to_string(root.join("packaging/dbus/org.cryptoid.Agent1.xml")).expect("xml file");
    let (l, s) = (members(&live, IFACE), members(&shipped, IFACE));
    assert!(l.len() > 25, "{l:?}");
    assert_eq!(l, s, "packaging/dbus/org.cryptoid.Agent1.xml is out of date");
    for m in [
        "m:SignPdu(s,s,a{sv})->(s)",
        "m:CreateKey(s,a{sv})->(s)",
        "m:RegisterPrompter(o)->()",
        "s:ConfirmationRequested(t,s)->()",
        "p:Locked:b",
    ] {
        assert!(l.contains(m), "{m} missing: {l:?}");
    }

    let service = std::fs::read_to_string(root.join("packaging/dbus/org.cryptoid.Agent1.service"))
        .expect("service file");
    let lines: Vec<&str> =
        service.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(lines[0], "[D-BUS Service]");
    let kv: HashMap<&str, &str> = lines[1..].iter().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(kv.get("Name"), Some(&DEST));
    assert!(kv.get("Exec").is_some_and(|e| e.starts_with('/') && e.ends_with("cryptoid-agent")), "{kv:?}");
    assert_eq!(kv.get("SystemdService"), Some(&"cryptoid-agent.service"));
    assert_eq!(kv.len(), 3, "unexpected keys: {kv:?}");
}

#[test]
fn without_a_session_bus_the_socket_still_serves() {
    let mut agent = Agent::start_on_bus("unix:path=/nonexistent/bus", None);
    agent
        .client()
        .call::<cryptoid_protocol::wire::agent::Hello>(&cryptoid_protocol::wire::NoParams {})
        .expect("socket serves");
    assert!(agent.log().contains("no D-Bus API"), "{}", agent.log());
    agent.kill9();
}

#[test]
fn bench_over_dbus() {
    let bus = Bus::start();
    let agent = Agent::start_on_bus(&bus.address, None);
    agent.unlocked();
    // One call at a time, then 4 in flight on each bus connection.
    for pipeline in ["1", "4"] {
        let out = cryptoid_tests::run(
            std::process::Command::new(cryptoid_tests::bin("cryptoidctl"))
                .env("CRYPTOID_AUTH_SOCK", agent.socket())
                .args(["bench", "--transport", "dbus", "--dbus-address", &bus.address])
                .args(["--pipeline", pipeline, "--seconds", "1", "--json"]),
            b"",
        );
        assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&cryptoid_tests::stdout(&out)).expect("bench JSON");
        assert_eq!((v["transport"].as_str(), v["pipeline"].to_string()), (Some("dbus"), pipeline.to_owned()));
        assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
        assert!(v["signatures"].as_u64().unwrap_or(0) > 0, "{v}");
    }
    // The bus's own floor: Peer.Ping to the agent, through the same bus.
    let out = cryptoid_tests::run(
        std::process::Command::new(cryptoid_tests::bin("cryptoidctl")).args([
            "bench",
            "--transport",
            "dbus",
            "--op",
            "ping",
            "--dbus-address",
            &bus.address,
            "--seconds",
            "1",
            "--json",
        ]),
        b"",
    );
    assert!(out.status.success(), "{}", cryptoid_tests::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&cryptoid_tests::stdout(&out)).expect("ping JSON");
    assert_eq!((v["peer"].as_str(), v["errors"].as_u64()), (Some("dbus-daemon"), Some(0)), "{v}");
    assert!(v["ops"].as_u64().unwrap_or(0) > 0, "{v}");
}

#[test]
fn busctl_signs_a_pdu_that_verifies() {
    if std::process::Command::new("busctl").arg("--version").output().is_err() {
        eprintln!("skipped: busctl (systemd) is not installed");
        return;
    }
    let bus = Bus::start();
    let agent = Agent::start_on_bus(&bus.address, None);
    let mut c = agent.unlocked();
    let key = super::agent_sign::create(&mut c, Some("!busctl:x"));
    let pdu = json::to_canonical_string(&pdus::message(&key, "!busctl:x", "signed via busctl"));
    let out = std::process::Command::new("busctl")
        .args([
            &format!("--address={}", bus.address),
            "--json=short",
            "call",
            DEST,
            PATH,
            IFACE,
            "SignPdu",
            "ssa{sv}",
            RV,
            &pdu,
            "0",
        ])
        .output()
        .expect("busctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // busctl --json prints {"type":"s","data":["<signed PDU>"]}.
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("busctl JSON");
    let signed = reply["data"][0].as_str().expect("signed PDU text");
    assert_verifies(&parse(signed), &key);
}

#[test]
fn the_passphrase_never_reaches_the_log_even_at_trace_level() {
    let bus = Bus::start();
    let mut agent = Agent::start_on_bus(&bus.address, None);
    agent.kill9();
    agent.env = vec![("RUST_LOG".into(), "trace".into())];
    agent.spawn().expect("restart with trace logging");
    run(async {
        let c = connect(&bus).await;
        let opts: Opts = HashMap::from([("passphrase", ZValue::from(PASSPHRASE))]);
        let locked: bool = call(&c, "Unlock", &(opts,)).await.expect("Unlock");
        assert!(!locked);
    });
    agent.kill9();
    let log = agent.log();
    assert!(!log.contains(PASSPHRASE), "the passphrase leaked into the log");
}

/// `ShareExport` and `ShareImport` over D-Bus: the same methods as on the
/// socket, confirmed in the agent's dialog (askpass here), and a second
/// agent on the same bus reads what the first exported.
#[test]
fn share_export_and_import_over_dbus() {
    use cryptoid_protocol::secret_storage::{recovery_key, KeyDescription, SecretKey};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let askpass = dir.path().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\nexit 0\n").expect("askpass");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bus = Bus::start();
    let mut agent = Agent::start_on_bus(&bus.address, None);
    agent.kill9();
    agent.env = vec![("CRYPTOID_ASKPASS".into(), askpass.to_str().expect("utf-8").into())];
    agent.spawn().expect("restart");
    let key = SecretKey::from_bytes([5; 32]);
    let storage = serde_json::json!({"recovery_key": recovery_key::encode(&key).as_str(), "key_id": "k",
        "key_description": KeyDescription::new(&key, [2; 16], None)});
    run(async {
        let c = connect(&bus).await;
        let mut opts: Opts = HashMap::new();
        opts.insert("passphrase", PASSPHRASE.into());
        let _: bool = call(&c, "Unlock", &(opts,)).await.expect("Unlock");
        let cryptoid: String =
            call(&c, "CreateKey", &("!dbus-share:x", Opts::new())).await.expect("CreateKey");
        let exported: String = call(&c, "ShareExport", &(storage.to_string(),)).await.expect("ShareExport");
        let exported: serde_json::Value = serde_json::from_str(&exported).expect("json");
        assert_eq!(exported["rooms"], 1, "{exported}");
        // A wrong key is refused with the socket's kind, as a named error.
        let wrong = serde_json::json!({"recovery_key": recovery_key::encode(&SecretKey::from_bytes([6; 32])).as_str(),
            "key_id": "k", "key_description": storage["key_description"]});
        let e = call::<_, String>(&c, "ShareExport", &(wrong.to_string(),)).await.expect_err("wrong key");
        assert!(error_name(&e).ends_with(".BadPassphrase"), "{e:?}");
        // Back in through ShareImport: the key is already here, so "same".
        let import = serde_json::json!({"key": storage, "account_data": exported["account_data"]});
        let report: String = call(&c, "ShareImport", &(import.to_string(),)).await.expect("ShareImport");
        let report: serde_json::Value = serde_json::from_str(&report).expect("json");
        assert_eq!(report["same"][0]["cryptoid"], cryptoid.as_str(), "{report}");
    });
}

/// Several calls in flight on one bus connection are served side by side:
/// while a ban waits for its confirmation, a `Hello` and a message sent on
/// the same connection are answered; then the ban is approved and its
/// answer, matched by serial, is the signed ban. (Were the agent to serve a
/// connection's calls one at a time, the message would wait for the ban.)
#[test]
fn calls_in_flight_on_one_connection_do_not_wait_for_each_other() {
    let bus = Bus::start();
    let (agent, k) = asking_agent(&bus, "!f:x", 20);
    let mut answerer = agent.client();
    run(async {
        let conn = connect(&bus).await;
        let ban = ban_of_other(&k, "!f:x");
        let waiting = {
            let conn = conn.clone();
            tokio::spawn(async move {
                call::<_, String>(&conn, "SignPdu", &(RV, ban.as_str(), Opts::new())).await
            })
        };
        // The ban is in flight once its question is pending.
        let (pending, answerer) = tokio::task::spawn_blocking(move || {
            for _ in 0..100 {
                let p = answerer.call::<Pending>(&NoParams {}).expect("pending").pending;
                if let Some(p) = p.first() {
                    return (p.id, answerer);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("the ban's confirmation never appeared");
        })
        .await
        .expect("poll");

        let quick = Duration::from_secs(5);
        let hello: String = tokio::time::timeout(quick, call(&conn, "Hello", &()))
            .await
            .expect("Hello waited")
            .expect("Hello");
        assert!(parse(&hello).as_object().is_some_and(|o| o.contains_key("protocol")), "{hello}");
        let msg = json::to_canonical_string(&pdus::message(&k, "!f:x", "while the ban waits"));
        let signed: String =
            tokio::time::timeout(quick, call(&conn, "SignPdu", &(RV, msg.as_str(), Opts::new())))
                .await
                .expect("the message waited for the ban")
                .expect("message signed");
        assert_verifies(&parse(&signed), &k);
        assert!(!waiting.is_finished(), "the ban was answered before anyone approved it");

        tokio::task::spawn_blocking(move || {
            let mut answerer = answerer;
            answerer
                .call::<Answer>(&AnswerParams { id: pending, allow: true, remember_secs: None })
                .expect("answer")
        })
        .await
        .expect("answer");
        let banned =
            tokio::time::timeout(quick, waiting).await.expect("ban answered").expect("task").expect("ban");
        let banned = parse(&banned);
        assert_verifies(&banned, &k);
        let membership = banned.as_object().and_then(|o| o.get("content")).and_then(|c| c.as_object());
        assert_eq!(membership.and_then(|c| c.get("membership")).and_then(Value::as_str), Some("ban"));
    });
}
