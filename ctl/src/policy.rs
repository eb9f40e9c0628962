//! `policy`, `rooms` and `confirm` commands.

use crate::{input, output, Ctx};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::wire::confirm::{Answer, AnswerParams, Pending};
use cryptoid_protocol::wire::policy::{Check, Show, Verdict};
use cryptoid_protocol::wire::rooms::{self, FromSync, Observe};
use cryptoid_protocol::wire::sign::SignPduParams;
use cryptoid_protocol::wire::NoParams;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the effective policy (configuration with defaults filled in).
    Show,
    /// What would the agent decide for this PDU? Signs nothing, asks no one.
    /// Exit 0 allow, 1 confirm or deny.
    Check {
        #[arg(long, value_name = "V")]
        room_version: String,
        /// The event ID the homeserver announced.
        #[arg(long, value_name = "ID")]
        event_id: Option<String>,
        /// JSON file with the intent {type, state_key?, content?}.
        #[arg(long, value_name = "FILE")]
        intent: Option<PathBuf>,
        /// PDU JSON file; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum RoomsCommand {
    /// Feed the room view from a /sync response or from `{room_id,
    /// events}`. Full events in federation format (ask /sync with a filter
    /// of {"event_format": "federation"}) are verified by the agent:
    /// event ID, content hash, signature, authorization rules. Other events
    /// with an event_id and a depth are only claims.
    Observe {
        /// JSON file; standard input when absent or `-`.
        file: Option<PathBuf>,
        /// The room version, when the events do not include the room's
        /// m.room.create and the agent has not seen the room.
        #[arg(long, value_name = "V")]
        room_version: Option<String>,
        /// Server signing keys, for rooms of versions 1-12 (a cryptoID room
        /// needs none): `{server: {key_id: key}}`, or a server's
        /// /_matrix/key/v2/server answer. Pinned on first sight.
        #[arg(long, value_name = "FILE")]
        server_keys: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct ConfirmArgs {
    /// Answer this request without asking: allow it.
    #[arg(long, value_name = "ID", conflicts_with = "deny")]
    allow: Option<u64>,
    /// Answer this request without asking: deny it.
    #[arg(long, value_name = "ID")]
    deny: Option<u64>,
    /// With an approval: remember it for (client, room, event type) this long.
    #[arg(long, value_name = "SECS")]
    remember: Option<u32>,
    /// Keep watching for new requests until interrupted.
    #[arg(long)]
    watch: bool,
}

pub fn run_policy(ctx: &Ctx, cmd: PolicyCommand) -> Result<ExitCode> {
    let mut c = ctx.connect()?;
    match cmd {
        PolicyCommand::Show => {
            let v = c.call::<Show>(&NoParams {})?;
            if ctx.json {
                output::json(&v)?;
            } else {
                let pretty = serde_json::to_string_pretty(&v).context("cannot encode")?;
                output::line(&pretty)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { room_version, event_id, intent, file } => {
            let pdu = Value::Object(input::read_object(file.as_deref())?);
            let intent = intent.map(|p| input::read_json(Some(&p))).transpose()?;
            let r = c.call::<Check>(&SignPduParams { room_version, pdu, event_id, intent })?;
            if ctx.json {
                output::json(&r)?;
            } else {
                output::line(&format!(
                    "decision: {}",
                    serde_json::to_string(&r.decision).unwrap_or_default().trim_matches('"')
                ))?;
                for ch in &r.changes {
                    output::line(&format!("  change: {}", output::shown(ch)))?;
                }
                for reason in &r.reasons {
                    output::line(&format!("  {}", output::shown(reason)))?;
                }
            }
            Ok(if r.decision == Verdict::Allow { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

pub fn run_rooms(ctx: &Ctx, cmd: RoomsCommand) -> Result<ExitCode> {
    let RoomsCommand::Observe { file, room_version, server_keys } = cmd;
    let doc = input::read_object(file.as_deref())?;
    let Some(FromSync { calls, skipped }) = rooms::from_sync(&doc) else {
        bail!("expected {{room_id, events}} or a /sync response with `rooms`");
    };
    let keys = match server_keys {
        Some(path) => read_server_keys(&input::read_object(Some(&path))?)?,
        None => Default::default(),
    };
    let mut c = ctx.connect()?;
    let mut views = Vec::new();
    for mut p in calls {
        p.room_version.clone_from(&room_version);
        p.server_keys.clone_from(&keys);
        views.push(c.call::<Observe>(&p)?);
    }
    if ctx.json {
        output::json(&views)?;
    } else {
        for v in &views {
            output::line(&format!(
                "{}: {} verified, {} claimed; newest depth {}, {} known events",
                v.room_id,
                v.verified,
                v.claimed,
                v.max_depth.map_or("-".into(), |d| d.to_string()),
                v.known_events
            ))?;
        }
        if skipped > 0 {
            output::line(&format!(
                "skipped {skipped} events without hashes and signatures, or event_id and depth: ask /sync with a filter of {{\"event_format\": \"federation\"}}"
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Server keys from `{server: {key_id: key}}`, or from servers' own
/// `/_matrix/key/v2/server` answers (`{server_name, verify_keys: {key_id:
/// {key}}}`, one or a list under `server_keys`, as the notary answers).
fn read_server_keys(
    doc: &Object,
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>> {
    let mut out = std::collections::BTreeMap::new();
    let answers: Vec<&Object> = match doc.get("server_keys").and_then(Value::as_array) {
        Some(list) => list.iter().filter_map(Value::as_object).collect(),
        None if doc.contains_key("verify_keys") => vec![doc],
        None => {
            for (server, keys) in doc {
                let Some(keys) = keys.as_object() else {
                    bail!("server keys: {server} is not an object of keys")
                };
                for (id, k) in keys {
                    let Some(k) = k.as_str() else { bail!("server keys: {server} {id} is not a string") };
                    out.entry(server.clone())
                        .or_insert_with(std::collections::BTreeMap::new)
                        .insert(id.clone(), k.to_owned());
                }
            }
            return Ok(out);
        }
    };
    for a in answers {
        let Some(server) = a.get("server_name").and_then(Value::as_str) else {
            bail!("a key answer without server_name")
        };
        for (id, k) in a.get("verify_keys").and_then(Value::as_object).into_iter().flatten() {
            if let Some(key) = k.as_object().and_then(|k| k.get("key")).and_then(Value::as_str) {
                out.entry(server.to_owned())
                    .or_insert_with(std::collections::BTreeMap::new)
                    .insert(id.clone(), key.to_owned());
            }
        }
    }
    Ok(out)
}

pub fn run_confirm(ctx: &Ctx, a: ConfirmArgs) -> Result<ExitCode> {
    let mut c = ctx.connect()?;
    if let Some((id, allow)) = a.allow.map(|i| (i, true)).or(a.deny.map(|i| (i, false))) {
        c.call::<Answer>(&AnswerParams { id, allow, remember_secs: a.remember.filter(|_| allow) })?;
        output::line(if allow { "allowed" } else { "denied" })?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut seen = std::collections::HashSet::new();
    loop {
        let pending = c.call::<Pending>(&NoParams {})?.pending;
        if ctx.json && !a.watch {
            output::json(&pending)?;
            return Ok(ExitCode::SUCCESS);
        }
        let fresh: Vec<_> = pending.into_iter().filter(|p| seen.insert(p.id)).collect();
        if fresh.is_empty() && !a.watch {
            output::line("no pending confirmations")?;
            return Ok(ExitCode::SUCCESS);
        }
        for p in fresh {
            eprintln!(
                "\nrequest #{} ({} s left)\n  {}",
                p.id,
                p.expires_in_ms / 1000,
                output::shown(&p.prompt)
            );
            for r in &p.reasons {
                eprintln!("  why asked: {}", output::shown(r));
            }
            eprint!("allow? [y/N] ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("cannot read the answer")?;
            let allow = matches!(line.trim(), "y" | "Y" | "yes");
            match c.call::<Answer>(&AnswerParams {
                id: p.id,
                allow,
                remember_secs: a.remember.filter(|_| allow),
            }) {
                Ok(_) => eprintln!("{}", if allow { "allowed" } else { "denied" }),
                Err(e) => eprintln!("too late: {e}"),
            }
        }
        if !a.watch {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
