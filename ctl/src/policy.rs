//! `policy`, `rooms` and `confirm` commands.

use crate::{input, output, Ctx};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use cryptoid_protocol::json::{Object, Value};
use cryptoid_protocol::wire::confirm::{Answer, AnswerParams, Pending};
use cryptoid_protocol::wire::policy::{Check, Show, Verdict};
use cryptoid_protocol::wire::rooms::{Observe, ObserveParams, ObservedEvent};
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
    /// Feed the room view from a /sync response (federation-format events
    /// with depth and prev_events) or from `{room_id, events}`.
    Observe {
        /// JSON file; standard input when absent or `-`.
        file: Option<PathBuf>,
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

/// Observed events of one room from a list of federation-format events.
fn observed(events: &[Value], skipped: &mut usize) -> Vec<ObservedEvent> {
    let mut out = Vec::new();
    for e in events.iter().filter_map(Value::as_object) {
        let id = e.get("event_id").and_then(Value::as_str);
        let depth = e.get("depth").and_then(Value::as_int).and_then(|d| u64::try_from(d).ok());
        let (Some(id), Some(depth)) = (id, depth) else {
            *skipped += 1;
            continue;
        };
        let prev_events = e
            .get("prev_events")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        out.push(ObservedEvent {
            event_id: id.to_owned(),
            depth,
            prev_events,
            event_type: e.get("type").and_then(Value::as_str).map(str::to_owned),
            state_key: e.get("state_key").and_then(Value::as_str).map(str::to_owned),
            content: e.get("content").cloned(),
        });
    }
    out
}

/// `{room_id, events}` or a /sync response's `rooms.join`/`rooms.leave`.
fn observations(doc: &Object) -> Result<(Vec<ObserveParams>, usize)> {
    let mut skipped = 0;
    if let (Some(room), Some(events)) =
        (doc.get("room_id").and_then(Value::as_str), doc.get("events").and_then(Value::as_array))
    {
        let events = observed(events, &mut skipped);
        return Ok((
            vec![ObserveParams {
                room_id: room.to_owned(),
                room_version: None,
                events,
                server_keys: Default::default(),
                pdus: Vec::new(),
            }],
            skipped,
        ));
    }
    let Some(rooms) = doc.get("rooms").and_then(Value::as_object) else {
        bail!("expected {{room_id, events}} or a /sync response with `rooms`");
    };
    let mut out = Vec::new();
    for section in ["join", "leave"] {
        for (room_id, room) in rooms.get(section).and_then(Value::as_object).into_iter().flatten() {
            let mut events = Vec::new();
            for part in ["state", "timeline"] {
                if let Some(list) = room
                    .as_object()
                    .and_then(|r| r.get(part))
                    .and_then(Value::as_object)
                    .and_then(|p| p.get("events"))
                    .and_then(Value::as_array)
                {
                    events.extend(observed(list, &mut skipped));
                }
            }
            if !events.is_empty() {
                out.push(ObserveParams {
                    room_id: room_id.clone(),
                    room_version: None,
                    events,
                    server_keys: Default::default(),
                    pdus: Vec::new(),
                });
            }
        }
    }
    Ok((out, skipped))
}

pub fn run_rooms(ctx: &Ctx, cmd: RoomsCommand) -> Result<ExitCode> {
    let RoomsCommand::Observe { file } = cmd;
    let doc = input::read_object(file.as_deref())?;
    let (batches, skipped) = observations(&doc)?;
    let mut c = ctx.connect()?;
    let mut views = Vec::new();
    for p in batches {
        views.push(c.call::<Observe>(&p)?);
    }
    if ctx.json {
        output::json(&views)?;
    } else {
        for v in &views {
            output::line(&format!(
                "{}: newest depth {}, {} known events",
                v.room_id,
                v.max_depth.map_or("-".into(), |d| d.to_string()),
                v.known_events
            ))?;
        }
        if skipped > 0 {
            output::line(&format!(
                "skipped {skipped} events without event_id or depth (use federation-format /sync)"
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(text: &str) -> Object {
        cryptoid_protocol::json::from_str(text).expect("json").into_object().expect("object")
    }

    #[test]
    fn sync_shaped_files() {
        let doc = obj(r#"{"rooms":{"join":{"!a:x":{"timeline":{"events":[
                {"event_id":"$1","depth":5,"prev_events":["$0"],"type":"m.room.message","content":{}},
                {"event_id":"$2","type":"m.room.message"}]},
                "state":{"events":[{"event_id":"$p","depth":3,"type":"m.room.power_levels","state_key":"","content":{"users":{}}}]}}}}}"#);
        let (batches, skipped) = observations(&doc).expect("parse");
        assert_eq!(skipped, 1);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].room_id, "!a:x");
        let ids: Vec<&str> = batches[0].events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["$p", "$1"]);
        assert_eq!(batches[0].events[1].prev_events, ["$0"]);
        let direct = obj(r#"{"room_id":"!b:x","events":[{"event_id":"$9","depth":9}]}"#);
        assert_eq!(observations(&direct).expect("direct").0[0].room_id, "!b:x");
        assert!(observations(&obj("{}")).is_err());
    }
}
