//! `cryptoidctl pdu`: offline PDU tools built on the protocol crate.

use crate::{input, keyfile, output};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use cryptoid_protocol::event::{self, EventError, VerifyError};
use cryptoid_protocol::json::{self, Value};
use cryptoid_protocol::keys::{PublicKey, CRYPTOID_KEY_ID};
use cryptoid_protocol::redaction;
use cryptoid_protocol::{base64, MemberRedaction, RoomVersion};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when `pdu verify` finds the hash or signature invalid.
const EXIT_CHECK_FAILED: u8 = 1;

#[derive(Subcommand)]
pub enum PduCommand {
    /// Print the canonical JSON of a document.
    Canonical(InputArg),
    /// Print the event redacted under a room version's rules.
    Redact(EventArgs),
    /// Print the content hash (the value of hashes.sha256).
    Hash(InputArg),
    /// Print the event ID (v3+: derived from the reference hash; v1-2: the
    /// carried `event_id`). A missing hashes.sha256 is computed first, as
    /// signing would; a wrong one is an error.
    EventId(EventArgs),
    /// Hash and sign an event; print it with `hashes` and `signatures` set.
    Sign(SignArgs),
    /// Check an event's content hash and signature: exit 0 when valid, 1 when
    /// not (with the reason), 2 on invalid input.
    Verify(VerifyArgs),
    /// Print an unsigned m.room.message PDU as a homeserver builds one (now's
    /// timestamp, placeholder auth and prev events), to try `cryptoidctl
    /// sign` with before a client is wired up.
    Example(ExampleArgs),
}

#[derive(Args)]
pub struct ExampleArgs {
    /// The room, e.g. `!room:example.org`.
    #[arg(long, value_name = "R")]
    room: String,
    /// The sender: your cryptoID in that room (`cryptoidctl keys list --room R`).
    #[arg(long, value_name = "CRYPTOID")]
    sender: String,
    /// The message text.
    #[arg(long, value_name = "TEXT", default_value = "hello from cryptoid-agent")]
    body: String,
}

#[derive(Args)]
pub struct InputArg {
    /// JSON file to read; standard input when absent or `-`.
    file: Option<PathBuf>,
}

#[derive(Args)]
pub struct RoomVersionArg {
    /// Room version: 1-12, org.matrix.msc4014 or org.matrix.msc4080.
    #[arg(long = "room-version", value_name = "V")]
    room_version: String,
    /// Which m.room.member content keys survive v11 redaction: `spec`
    /// (default), `keep-mxid-mapping` (MSC4080 text) or `gomatrixserverlib`
    /// (Dendrite prototype).
    #[arg(long, value_name = "VARIANT", default_value = "spec")]
    member_redaction: String,
}

impl RoomVersionArg {
    fn resolve(&self) -> Result<RoomVersion> {
        let rv = RoomVersion::from_id(&self.room_version)?;
        let variant = MemberRedaction::from_name(&self.member_redaction).with_context(|| {
            format!(
                "unknown --member-redaction {:?}: use spec, keep-mxid-mapping or gomatrixserverlib",
                self.member_redaction
            )
        })?;
        Ok(rv.with_member_redaction(variant))
    }
}

#[derive(Args)]
pub struct EventArgs {
    #[command(flatten)]
    rv: RoomVersionArg,
    #[command(flatten)]
    input: InputArg,
}

#[derive(Args)]
pub struct SignArgs {
    #[command(flatten)]
    rv: RoomVersionArg,
    /// File holding the Ed25519 seed: unpadded Base64, or a Synapse-style
    /// line `ed25519 <version> <seed>`.
    #[arg(long, value_name = "F")]
    key_file: PathBuf,
    /// Signature entity; defaults to the key's cryptoID (its public key).
    #[arg(long, value_name = "NAME")]
    entity: Option<String>,
    /// Key ID; defaults to the Synapse file's ID, else `ed25519:1`.
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    #[command(flatten)]
    input: InputArg,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    rv: RoomVersionArg,
    /// The signer's Ed25519 public key (Base64), e.g. the sender's cryptoID.
    #[arg(long, value_name = "B64")]
    public_key: String,
    /// Signature entity; defaults to the public key (a cryptoID signs as itself).
    #[arg(long, value_name = "NAME")]
    entity: Option<String>,
    /// Key ID of the signature.
    #[arg(long, value_name = "ID", default_value = CRYPTOID_KEY_ID)]
    key_id: String,
    #[command(flatten)]
    input: InputArg,
}

pub fn run(cmd: PduCommand) -> Result<ExitCode> {
    match cmd {
        PduCommand::Canonical(a) => {
            let v = input::read_json(a.file.as_deref())?;
            print_json(&v)?;
        }
        PduCommand::Redact(a) => {
            let rv = a.rv.resolve()?;
            let ev = input::read_object(a.input.file.as_deref())?;
            print_json(&Value::Object(redaction::redact(&ev, &rv)))?;
        }
        PduCommand::Hash(a) => {
            let ev = input::read_object(a.file.as_deref())?;
            print_line(&base64::encode(&event::content_hash(&ev)))?;
        }
        PduCommand::EventId(a) => {
            let rv = a.rv.resolve()?;
            let ev = input::read_object(a.input.file.as_deref())?;
            let prepared = event::prepare(ev, &rv)?;
            let id = prepared.event_id().ok_or(EventError::MissingEventId(rv.id()))?;
            print_line(id)?;
        }
        PduCommand::Sign(a) => {
            let rv = a.rv.resolve()?;
            let ev = input::read_object(a.input.file.as_deref())?;
            let kf = keyfile::load(&a.key_file)?;
            let entity = a.entity.unwrap_or_else(|| kf.key.cryptoid());
            let key_id = a.key_id.or(kf.key_id).unwrap_or_else(|| CRYPTOID_KEY_ID.to_owned());
            let signed = event::hash_and_sign(ev, &rv, &entity, &key_id, &kf.key)?;
            print_json(&Value::Object(signed.event))?;
        }
        PduCommand::Verify(a) => {
            let rv = a.rv.resolve()?;
            let key = PublicKey::from_base64(&a.public_key)?;
            let ev = input::read_object(a.input.file.as_deref())?;
            let entity = a.entity.unwrap_or_else(|| key.to_base64());
            return match event::verify_event(&ev, &rv, &entity, &a.key_id, &key) {
                Ok(()) => {
                    print_line(&format!(
                        "ok: content hash and signature by {entity} ({}) are valid",
                        a.key_id
                    ))?;
                    Ok(ExitCode::SUCCESS)
                }
                // A malformed `hashes`/`signatures` is invalid input, not a
                // failed check.
                Err(VerifyError::Malformed(e)) => Err(e.into()),
                Err(e) => {
                    eprintln!("cryptoidctl: verification failed: {e}");
                    Ok(ExitCode::from(EXIT_CHECK_FAILED))
                }
            };
        }
        PduCommand::Example(a) => print_json(&Value::Object(example(&a)?))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The PDU of `pdu example`. Its references are placeholders of the right
/// shape: the agent cannot tell them from real ones without a room view.
fn example(a: &ExampleArgs) -> Result<json::Object> {
    PublicKey::from_base64(&a.sender).context("--sender must be a cryptoID (unpadded Base64 of 32 bytes)")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_millis();
    let reference =
        |c: char| Value::Array(vec![Value::from(format!("${}", c.to_string().repeat(43)).as_str())]);
    let mut content = json::Object::new();
    content.insert("msgtype".into(), Value::from("m.text"));
    content.insert("body".into(), Value::from(a.body.as_str()));
    let mut e = json::Object::new();
    e.insert("auth_events".into(), reference('a'));
    e.insert("content".into(), Value::Object(content));
    e.insert("depth".into(), Value::Int(json::Int::new(2).context("depth")?));
    e.insert("origin".into(), Value::from(a.sender.as_str()));
    e.insert(
        "origin_server_ts".into(),
        Value::Int(json::Int::new(i64::try_from(now).context("time")?).context("time")?),
    );
    e.insert("prev_events".into(), reference('b'));
    e.insert("room_id".into(), Value::from(a.room.as_str()));
    e.insert("sender".into(), Value::from(a.sender.as_str()));
    e.insert("type".into(), Value::from("m.room.message"));
    e.insert("unsigned".into(), Value::Object(json::Object::new()));
    Ok(e)
}

fn print_json(v: &Value) -> Result<()> {
    let mut out = json::to_canonical_vec(v);
    out.push(b'\n');
    output::write(&out)
}

fn print_line(s: &str) -> Result<()> {
    output::line(s)
}
