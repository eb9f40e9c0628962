//! `keys` and `otk` commands.

use crate::{output, Ctx};
use anyhow::{Context, Result};
use clap::Subcommand;
use cryptoid_protocol::wire::keys::{
    Create, CreateParams, Delete, Get, KeyInfo, KeyKind, KeyList, KeyRef, List, ListParams,
};
use cryptoid_protocol::wire::otk::{
    Claim, ClaimParams, Generate, GenerateParams, MarkPublished, MarkPublishedParams, UploadBody,
    MAX_GENERATE,
};
use cryptoid_protocol::wire::NoParams;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a new cryptoID (durable before it is printed).
    Create {
        /// The room it is for; leave out for createRoom (bound when the
        /// room's m.room.create is signed).
        #[arg(long, value_name = "R")]
        room: Option<String>,
        /// The Matrix user it belongs to.
        #[arg(long, value_name = "U")]
        user: Option<String>,
        /// Backend to make it in (default: soft).
        #[arg(long, value_name = "B")]
        backend: Option<String>,
    },
    /// List room cryptoIDs (one-time cryptoIDs: `otk list`).
    List {
        /// Only the keys of this room.
        #[arg(long, value_name = "R")]
        room: Option<String>,
    },
    /// Show one key.
    Show { cryptoid: String },
    /// Retire a key: its secret is destroyed; it can never sign again.
    Delete { cryptoid: String },
}

#[derive(Subcommand)]
pub enum OtkCommand {
    /// Make N one-time cryptoIDs (with a progress bar).
    Generate {
        /// How many.
        count: u32,
        /// Backend to make them in (default: soft).
        #[arg(long, value_name = "B")]
        backend: Option<String>,
    },
    /// List one-time cryptoIDs.
    List,
    /// Print the `one_time_cryptoids` body for /keys/upload.
    UploadBody,
    /// Mark one-time cryptoIDs as uploaded to the server.
    MarkPublished {
        #[arg(required = true)]
        cryptoids: Vec<String>,
    },
    /// Bind a one-time cryptoID to the room that invited with it.
    Claim {
        #[arg(long, value_name = "R")]
        room: String,
        cryptoid: String,
    },
}

fn print_key(ctx: &Ctx, k: &KeyInfo) -> Result<()> {
    if ctx.json {
        output::json(k)
    } else {
        output::keys_table(std::slice::from_ref(k))
    }
}

fn print_keys(ctx: &Ctx, keys: &KeyList) -> Result<()> {
    if ctx.json {
        output::json(keys)
    } else if keys.keys.is_empty() {
        output::line("no keys")
    } else {
        output::keys_table(&keys.keys)
    }
}

pub fn run_keys(ctx: &Ctx, cmd: KeysCommand) -> Result<ExitCode> {
    let mut c = ctx.connect()?;
    match cmd {
        KeysCommand::Create { room, user, backend } => {
            let k = c.call::<Create>(&CreateParams { room_id: room, user_id: user, backend })?;
            print_key(ctx, &k)?;
        }
        KeysCommand::List { room } => {
            let keys = c.call::<List>(&ListParams {
                room_id: room,
                kind: Some(KeyKind::Room),
                ..Default::default()
            })?;
            print_keys(ctx, &keys)?;
        }
        KeysCommand::Show { cryptoid } => print_key(ctx, &c.call::<Get>(&KeyRef { cryptoid })?)?,
        KeysCommand::Delete { cryptoid } => print_key(ctx, &c.call::<Delete>(&KeyRef { cryptoid })?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Keys per `otk.generate` call, so the progress bar moves.
const CHUNK: u32 = 50;

pub fn run_otk(ctx: &Ctx, cmd: OtkCommand) -> Result<ExitCode> {
    let mut c = ctx.connect()?;
    match cmd {
        OtkCommand::Generate { count, backend } => {
            let all = generate(&mut c, count, backend, !ctx.json)?;
            print_keys(ctx, &KeyList { keys: all })?;
        }
        OtkCommand::List => {
            let keys = c.call::<List>(&ListParams { kind: Some(KeyKind::OneTime), ..Default::default() })?;
            print_keys(ctx, &keys)?;
        }
        OtkCommand::UploadBody => {
            // Always JSON: it is a request body.
            output::json(&c.call::<UploadBody>(&NoParams {})?)?;
        }
        OtkCommand::MarkPublished { cryptoids } => {
            let keys = c.call::<MarkPublished>(&MarkPublishedParams { cryptoids })?;
            print_keys(ctx, &keys)?;
        }
        OtkCommand::Claim { room, cryptoid } => {
            let k = c.call::<Claim>(&ClaimParams { cryptoid, room_id: room })?;
            print_key(ctx, &k)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes `count` one-time cryptoIDs, `CHUNK` per request, with a progress
/// bar when `progress` (and the count is worth one).
pub fn generate(
    c: &mut cryptoid_protocol::client::blocking::Client,
    count: u32,
    backend: Option<String>,
    progress: bool,
) -> Result<Vec<KeyInfo>> {
    anyhow::ensure!(count > 0, "count must be at least 1");
    let bar = if !progress || count <= CHUNK {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(u64::from(count));
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} one-time cryptoIDs ({eta} left)")
        {
            b.set_style(style);
        }
        b
    };
    let mut all = Vec::with_capacity(count as usize);
    let mut left = count;
    while left > 0 {
        let n = left.min(CHUNK).min(MAX_GENERATE);
        let r = c
            .call::<Generate>(&GenerateParams { count: n, backend: backend.clone() })
            .with_context(|| format!("after {} of {count} keys were made", all.len()))?;
        bar.inc(u64::from(n));
        all.extend(r.keys);
        left -= n;
    }
    bar.finish_and_clear();
    Ok(all)
}
