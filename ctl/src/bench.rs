//! `cryptoidctl bench`: the load generator of DESIGN §8.
//!
//! Makes (or reuses) a throwaway cryptoID for `!bench:localhost`, signs
//! fresh, valid PDUs with it over N connections for S seconds, and measures
//! the in-process floor (hash + redact + sign of the same PDUs in this
//! process) in the same run, so the figures are ratios, not absolutes.

use crate::{input, output, Ctx};
use anyhow::{bail, Context, Result};
use clap::Args;
use cryptoid_protocol::event;
use cryptoid_protocol::json::{self, Int, Object, Value};
use cryptoid_protocol::keys::{KeyPair, CRYPTOID_KEY_ID};
use cryptoid_protocol::wire::keys::{Create, CreateParams, Delete, KeyRef, KeyState, List, ListParams};
use cryptoid_protocol::wire::rooms::{Observe, ObserveParams};
use cryptoid_protocol::wire::sign::{SignPdu, SignPduParams};
use cryptoid_protocol::RoomVersion;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The room the throwaway bench key is bound to.
pub const BENCH_ROOM: &str = "!bench:localhost";
const DEFAULT_PDU: &str = include_str!("../../protocol/benches/fixtures/message_1k.json");

#[derive(Args)]
pub struct BenchArgs {
    /// Concurrent connections, one thread each.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// How long to load the agent (and, after, to measure the floor).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// How long to measure the in-process floor (default: --seconds). A
    /// soak run wants load, not a floor as long.
    #[arg(long, value_name = "S")]
    floor_seconds: Option<u64>,
    /// PDU template (default: a ~1 KB m.room.message); sender, room, time
    /// and depth are replaced in every request.
    #[arg(long, value_name = "FILE")]
    pdu: Option<PathBuf>,
    /// Room version of the PDUs.
    #[arg(long, default_value = "org.matrix.msc4080", value_name = "V")]
    room_version: String,
    /// Load the agent over its socket or over D-Bus (`SignPdu` on the session
    /// bus, or the bus at --dbus-address). Set-up always uses the socket.
    #[arg(long, value_enum, default_value = "socket")]
    transport: Transport,
    /// D-Bus address for `--transport dbus` (default: the session bus).
    #[arg(long, value_name = "ADDRESS")]
    dbus_address: Option<String>,
    /// Sign with a key on this backend (`soft` or `pkcs11`). With `pkcs11`
    /// the floor is raw signing of the same bytes on the same token through
    /// the same module (needs --module, --token and --pin-file).
    #[arg(long, default_value = "soft", value_name = "B")]
    backend: String,
    /// PKCS#11 module for the pkcs11 floor.
    #[arg(long, value_name = "M")]
    module: Option<PathBuf>,
    /// PKCS#11 token label for the pkcs11 floor.
    #[arg(long, value_name = "LABEL")]
    token: Option<String>,
    /// File (or `-`) with the token's user PIN, for the pkcs11 floor.
    #[arg(long, value_name = "F")]
    pin_file: Option<PathBuf>,
    /// Requests in flight on each connection: pipelined on a socket
    /// (answers matched by id), N concurrent calls on a bus connection
    /// (replies matched by serial).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pipeline: usize,
    /// `hello`: the agent's round trip without signing (`agent.hello`), to
    /// compare with ssh-agent's `--ssh-op identities`; `ping` (with
    /// `--transport dbus`): the bus's own round trip to the agent
    /// (`org.freedesktop.DBus.Peer.Ping`), the floor of any D-Bus call.
    #[arg(long, value_enum, default_value = "sign")]
    op: Op,
    /// Load OpenSSH's ssh-agent at this socket instead, with the same
    /// client threads and clock (a peer for the agent's figures).
    #[arg(long, value_name = "SOCKET")]
    ssh_agent: Option<PathBuf>,
    /// What ssh-agent is asked (with --ssh-agent).
    #[arg(long, value_enum, default_value = "sign")]
    ssh_op: crate::peer::SshOp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    Sign,
    Hello,
    Ping,
}

/// A peer's or a round trip's figures (no floor: they sign nothing of
/// ours, or nothing at all).
#[derive(Serialize)]
struct PeerReport {
    peer: &'static str,
    op: &'static str,
    connections: usize,
    seconds: f64,
    ops: u64,
    errors: u64,
    ops_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

fn peer_report(
    ctx: &Ctx,
    peer: &'static str,
    op: &'static str,
    connections: usize,
    r: LoadResult,
) -> Result<ExitCode> {
    let (ops, errors, elapsed, mut latencies, first_error) = r;
    if ops == 0 {
        bail!("no request succeeded: {}", first_error.unwrap_or_else(|| "no answer".into()));
    }
    latencies.sort_unstable();
    let report = PeerReport {
        peer,
        op,
        connections,
        seconds: elapsed.as_secs_f64(),
        ops,
        errors,
        ops_per_sec: ops as f64 / elapsed.as_secs_f64(),
        p50_us: percentile(&latencies, 50),
        p99_us: percentile(&latencies, 99),
        first_error,
    };
    if ctx.json {
        output::json(&report)?;
    } else {
        output::line(&format!(
            "{peer} {op}, {connections} connection(s), {:.1} s: {:.0}/s, p50 {} µs, p99 {} µs, {errors} error(s)",
            report.seconds, report.ops_per_sec, report.p50_us, report.p99_us
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Socket,
    Dbus,
}

#[derive(Serialize)]
struct Report {
    transport: &'static str,
    backend: String,
    connections: usize,
    /// Requests in flight per connection.
    pipeline: usize,
    seconds: f64,
    signatures: u64,
    errors: u64,
    sigs_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    floor_sigs_per_sec: f64,
    ratio_to_floor: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A fresh PDU from the template: this sender and room, now, a new depth.
fn fresh(template: &Object, cryptoid: &str, depth: i64) -> Object {
    let mut p = template.clone();
    p.remove("hashes");
    p.remove("signatures");
    p.insert("room_id".into(), Value::from(BENCH_ROOM));
    p.insert("sender".into(), Value::from(cryptoid));
    p.insert("origin".into(), Value::from(cryptoid));
    let int = |v: i64| Value::Int(Int::new(v).unwrap_or(Int::from(0u32)));
    p.insert("origin_server_ts".into(), int(now_ms()));
    p.insert("depth".into(), int(depth));
    p
}

fn percentile(sorted: &[u32], pct: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    u64::from(sorted[(sorted.len() * pct / 100).min(sorted.len() - 1)])
}

pub fn run(ctx: &Ctx, a: BenchArgs) -> Result<ExitCode> {
    if a.connections == 0 || a.seconds == 0 {
        bail!("--connections and --seconds must be at least 1");
    }
    if let Some(sock) = &a.ssh_agent {
        let op = match a.ssh_op {
            crate::peer::SshOp::Identities => "request_identities",
            crate::peer::SshOp::Sign => "sign",
        };
        let r = crate::peer::ssh_agent(sock, a.ssh_op, a.connections, a.seconds)?;
        return peer_report(ctx, "ssh-agent", op, a.connections, r);
    }
    if a.op == Op::Hello {
        let r = crate::peer::hello(ctx, a.connections, a.seconds)?;
        return peer_report(ctx, "cryptoid-agent", "agent.hello", a.connections, r);
    }
    if a.op == Op::Ping {
        let r = dbus_ping(&a)?;
        return peer_report(ctx, "dbus-daemon", "Peer.Ping", a.connections, r);
    }
    if a.pipeline == 0 {
        bail!("--pipeline is 1 or more");
    }
    let rv = RoomVersion::from_id(&a.room_version)?;
    let template = match &a.pdu {
        Some(p) => input::read_object(Some(p))?,
        None => json::from_str(DEFAULT_PDU)?.into_object().context("built-in PDU is an object")?,
    };
    let mut c = ctx.connect()?;
    // The key lives on the backend under test (a pkcs11 run signs on the
    // token, to compare with the token floor).
    let existing = c.call::<List>(&ListParams {
        room_id: Some(BENCH_ROOM.into()),
        state: Some(KeyState::Bound),
        backend: Some(a.backend.clone()),
        ..Default::default()
    })?;
    let cryptoid = match existing.keys.into_iter().next() {
        Some(k) => k.cryptoid,
        None => {
            c.call::<Create>(&CreateParams {
                room_id: Some(BENCH_ROOM.into()),
                backend: Some(a.backend.clone()),
                ..Default::default()
            })?
            .cryptoid
        }
    };
    // Sign just above the room's frontier: the agent's anti-replay window
    // refuses depths far below the newest it knows (earlier runs included).
    let view = c.call::<Observe>(&ObserveParams {
        room_id: BENCH_ROOM.into(),
        room_version: None,
        events: vec![],
        server_keys: Default::default(),
        pdus: Vec::new(),
    })?;
    let depth = view.max_depth.map_or(1, |d| i64::try_from(d).unwrap_or(i64::MAX - 1) + 1);
    let result = match a.transport {
        Transport::Socket => load(ctx, &a, &rv, &template, &cryptoid, depth),
        Transport::Dbus => load_dbus(&a, &rv, &template, &cryptoid, depth),
    };
    // The throwaway key goes whatever happened (the policy may want the
    // deletion confirmed: then it stays, and the next run reuses it). On a
    // new connection: the agent closes idle ones, and a long run idles this.
    drop(c);
    let retired = ctx.connect().and_then(|mut c| c.call::<Delete>(&KeyRef { cryptoid: cryptoid.clone() }));
    if let Err(e) = retired {
        eprintln!("cryptoidctl: warning: the bench key {cryptoid} was not retired: {e}");
    }
    let (signatures, errors, elapsed, mut latencies, first_error) = result?;
    if signatures == 0 {
        bail!(
            "no PDU was signed: {}. The agent's policy must allow this client and burst (see README, Performance)",
            first_error.unwrap_or_else(|| "no answer".into())
        );
    }
    let floor = match a.backend.as_str() {
        "pkcs11" => token_floor(&a, &rv, &template)?,
        _ => floor(&rv, &template, Duration::from_secs(a.floor_seconds.unwrap_or(a.seconds).max(1)))?,
    };
    latencies.sort_unstable();
    let rate = signatures as f64 / elapsed.as_secs_f64();
    let report = Report {
        transport: match a.transport {
            Transport::Socket => "socket",
            Transport::Dbus => "dbus",
        },
        backend: a.backend.clone(),
        connections: a.connections,
        pipeline: a.pipeline,
        seconds: elapsed.as_secs_f64(),
        signatures,
        errors,
        sigs_per_sec: rate,
        p50_us: percentile(&latencies, 50),
        p99_us: percentile(&latencies, 99),
        floor_sigs_per_sec: floor,
        ratio_to_floor: rate / floor,
        first_error: first_error.clone(),
    };
    if ctx.json {
        output::json(&report)?;
    } else {
        output::line(&format!(
            "sign.pdu over {}, {} connection(s), {:.1} s: {:.0} signatures/s, p50 {} µs, p99 {} µs, {} error(s)",
            report.transport,
            report.connections, report.seconds, report.sigs_per_sec, report.p50_us, report.p99_us, report.errors
        ))?;
        let floor_kind = match a.backend.as_str() {
            "pkcs11" => "token floor (raw CKM_EDDSA on the same token and module, 1 session)",
            _ => "in-process floor (hash + redact + sign, 1 thread)",
        };
        output::line(&format!(
            "{floor_kind}: {:.0} signatures/s; agent = {:.2} × floor",
            report.floor_sigs_per_sec, report.ratio_to_floor
        ))?;
        if let Some(e) = first_error {
            output::line(&format!("first error: {e}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) type LoadResult = (u64, u64, Duration, Vec<u32>, Option<String>);
/// One connection's tally: signatures, errors, latencies (µs), first error.
pub(crate) type Tally = (u64, u64, Vec<u32>, Option<String>);

/// Counts one call that started at `t0`.
pub(crate) fn record<T, E: std::fmt::Display>(t: &mut Tally, t0: Instant, r: std::result::Result<T, E>) {
    let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    match r {
        Ok(_) => {
            t.0 += 1;
            t.2.push(us);
        }
        Err(e) => {
            t.1 += 1;
            t.3.get_or_insert_with(|| e.to_string());
        }
    }
}

pub(crate) fn merge(into: &mut Tally, from: Tally) {
    into.0 += from.0;
    into.1 += from.1;
    into.2.extend(from.2);
    into.3 = into.3.take().or(from.3);
}

fn load(
    ctx: &Ctx,
    a: &BenchArgs,
    rv: &RoomVersion,
    template: &Object,
    cryptoid: &str,
    depth: i64,
) -> Result<LoadResult> {
    crate::peer::threads(a.connections, a.seconds, |deadline| {
        let mut client = ctx.connect()?;
        let mut tally: Tally = (0, 0, Vec::with_capacity(1 << 16), None);
        let params = || SignPduParams {
            room_version: rv.id().to_owned(),
            // All at one depth, as siblings: concurrent connections cannot
            // fall behind the window.
            pdu: Value::Object(fresh(template, cryptoid, depth)),
            event_id: None,
            intent: None,
        };
        while Instant::now() < deadline {
            if a.pipeline > 1 {
                let batch: Vec<SignPduParams> = (0..a.pipeline).map(|_| params()).collect();
                let t0 = Instant::now();
                for r in client.call_pipelined::<SignPdu>(&batch) {
                    record(&mut tally, t0, r);
                }
            } else {
                let p = params();
                let t0 = Instant::now();
                record(&mut tally, t0, client.call::<SignPdu>(&p));
            }
        }
        Ok(tally)
    })
}

/// Runs `per_connection` on `--connections` D-Bus connections (the session
/// bus, or `--dbus-address`) until the deadline; the tallies merged.
fn dbus_load<F, Fut>(a: &BenchArgs, per_connection: F) -> Result<LoadResult>
where
    F: Fn(zbus::Connection, Instant) -> Fut,
    Fut: std::future::Future<Output = Tally> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(a.seconds);
        for _ in 0..a.connections {
            let builder = match &a.dbus_address {
                Some(addr) => zbus::connection::Builder::address(addr.as_str())?,
                None => zbus::connection::Builder::session()?,
            };
            let conn = builder.build().await.context("cannot connect to the D-Bus session bus")?;
            tasks.push(tokio::spawn(per_connection(conn, deadline)));
        }
        let mut all: Tally = (0, 0, Vec::new(), None);
        for t in tasks {
            merge(&mut all, t.await.map_err(|e| anyhow::anyhow!("bench task failed: {e}"))?);
        }
        Ok((all.0, all.1, start.elapsed(), all.2, all.3))
    })
}

/// Calls `method` of `interface` on the agent's object.
async fn call_agent<B>(conn: &zbus::Connection, interface: &str, method: &str, body: &B) -> zbus::Result<()>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    conn.call_method(Some("org.cryptoid.Agent1"), "/org/cryptoid/Agent1", Some(interface), method, body)
        .await
        .map(drop)
}

/// `org.freedesktop.DBus.Peer.Ping` to the agent, in a loop per bus
/// connection: what any D-Bus call costs before the agent does anything.
fn dbus_ping(a: &BenchArgs) -> Result<LoadResult> {
    dbus_load(a, |conn, deadline| async move {
        let mut tally: Tally = (0, 0, Vec::with_capacity(1 << 16), None);
        while Instant::now() < deadline {
            let t0 = Instant::now();
            let r = call_agent(&conn, "org.freedesktop.DBus.Peer", "Ping", &()).await;
            record(&mut tally, t0, r);
        }
        tally
    })
}

/// The same load over D-Bus: one bus connection per "connection", each
/// calling `SignPdu` in a loop.
fn load_dbus(
    a: &BenchArgs,
    rv: &RoomVersion,
    template: &Object,
    cryptoid: &str,
    depth: i64,
) -> Result<LoadResult> {
    let in_flight = a.pipeline;
    dbus_load(a, move |conn, deadline| {
        let (template, cryptoid, rv) = (template.clone(), cryptoid.to_owned(), rv.id().to_owned());
        async move {
            // `--pipeline N`: N callers share the bus connection, so N calls
            // are in flight on it at any time (D-Bus matches replies by serial).
            let callers: Vec<_> = (0..in_flight)
                .map(|_| {
                    let (conn, template, cryptoid, rv) =
                        (conn.clone(), template.clone(), cryptoid.clone(), rv.clone());
                    tokio::spawn(async move {
                        let mut tally: Tally = (0, 0, Vec::with_capacity(1 << 16), None);
                        let opts: std::collections::HashMap<&str, zbus::zvariant::Value<'_>> =
                            std::collections::HashMap::new();
                        while Instant::now() < deadline {
                            let pdu =
                                json::to_canonical_string(&Value::Object(fresh(&template, &cryptoid, depth)));
                            let t0 = Instant::now();
                            let body = (rv.as_str(), pdu.as_str(), &opts);
                            let r = call_agent(&conn, "org.cryptoid.Agent1", "SignPdu", &body).await;
                            record(&mut tally, t0, r);
                        }
                        tally
                    })
                })
                .collect();
            let mut all: Tally = (0, 0, Vec::new(), None);
            for c in callers {
                match c.await {
                    Ok(t) => merge(&mut all, t),
                    Err(e) => {
                        all.1 += 1;
                        all.3.get_or_insert_with(|| format!("bench caller failed: {e}"));
                    }
                }
            }
            all
        }
    })
}

/// Signatures per second of hash + redact + sign, in this process, one
/// thread, on PDUs built the same way.
fn floor(rv: &RoomVersion, template: &Object, time: Duration) -> Result<f64> {
    let key = KeyPair::from_seed(&[0x42; 32]);
    let cryptoid = key.cryptoid();
    let start = Instant::now();
    let mut n = 0u64;
    let mut depth = 1;
    while start.elapsed() < time {
        depth += 1;
        let pdu = fresh(template, &cryptoid, depth);
        event::hash_and_sign(pdu, rv, &cryptoid, CRYPTOID_KEY_ID, &key)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Signatures per second of raw `CKM_EDDSA` signing of the same signing
/// bytes on the same token through the same module, one session, with a
/// token key made like the agent's (destroyed afterwards): the floor for
/// `--backend pkcs11`.
fn token_floor(a: &BenchArgs, rv: &RoomVersion, template: &Object) -> Result<f64> {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, KeyType};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let (Some(module), Some(token)) = (&a.module, &a.token) else {
        bail!("--backend pkcs11 needs --module and --token (and --pin-file) for the token floor");
    };
    let pin = crate::secret::read_secret_lines(a.pin_file.as_ref(), &["PIN: "])?.remove(0);
    let ctx = Pkcs11::new(module).with_context(|| format!("cannot load {}", module.display()))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = ctx
        .get_slots_with_token()?
        .into_iter()
        .find(|s| ctx.get_token_info(*s).map(|i| i.label().trim_end() == token).unwrap_or(false))
        .with_context(|| format!("no token labelled {token:?}"))?;
    let session = ctx.open_rw_session(slot)?;
    session.login(UserType::User, Some(&AuthPin::new(pin.to_string().into())))?;
    let (pubkey, key) = session.generate_key_pair(
        &Mechanism::EccEdwardsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::EcParams(b"\x13\x0cedwards25519".to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
        ],
    )?;
    // The same bytes the agent signs for these PDUs.
    let signer = KeyPair::from_seed(&[0x42; 32]).cryptoid();
    let bytes = event::prepare(fresh(template, &signer, 1), rv)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .signing_bytes()
        .to_vec();
    let mech = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(a.seconds) {
        session.sign(&mech, key, &bytes)?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    for obj in [key, pubkey] {
        let _ = session.destroy_object(obj);
    }
    Ok(rate)
}
