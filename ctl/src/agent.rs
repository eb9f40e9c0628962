//! Agent commands: status, lock, unlock, passwd, sign, journal.

use crate::secret::read_secret_lines;
use crate::{input, output, Ctx};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use cryptoid_protocol::client::blocking::Client;
use cryptoid_protocol::json::{self, Value};
use cryptoid_protocol::wire::agent::{
    BackendInfo, Hello, HelloResult, Lock, LockState, Passwd, PasswdParams, Protection, Unlock, UnlockParams,
};
use cryptoid_protocol::wire::backend::{Init, InitParams};
use cryptoid_protocol::wire::journal::{Tail, TailParams, Verify};
use cryptoid_protocol::wire::sign::{SignPdu, SignPduParams};
use cryptoid_protocol::wire::NoParams;
use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

#[derive(Args)]
pub struct UnlockArgs {
    /// Read the passphrase from this file (first line), or `-` for standard
    /// input, instead of asking on the terminal.
    #[arg(long, value_name = "F")]
    passphrase_file: Option<PathBuf>,
    /// Unlock a hardware backend (`pkcs11`, `yubikey`) with its PIN instead.
    #[arg(long, value_name = "B")]
    backend: Option<String>,
    /// Read the PIN from this file (first line), or `-` for standard input.
    /// A keystore sealed by the TPM or wrapped by a token is unlocked with
    /// its PIN: asked without this flag too.
    #[arg(long, value_name = "F")]
    pin_file: Option<PathBuf>,
    /// Unlock a TPM-sealed keystore with its recovery passphrase (on another
    /// machine, or after the TPM was cleared); --passphrase-file reads it.
    #[arg(long)]
    recovery: bool,
}

#[derive(Subcommand)]
pub enum BackendCommand {
    /// List the backends with availability, lock state and key counts.
    List,
    /// Set up a hardware backend: `pkcs11` (keys on the token), `yubikey`
    /// (keys on a YubiKey 5.7+, in its retired PIV slots), or `soft
    /// --wrap-with pkcs11|yubikey|tpm` (wrap mode: the software keystore's
    /// data key wrapped by a key on the token, or sealed by this machine's
    /// TPM 2.0; unlocking then needs the token's or the TPM's PIN). Wrapping
    /// an existing keystore needs it unlocked and its current passphrase or
    /// PIN; doing it again re-seals.
    Init {
        /// `pkcs11`, `yubikey`, or `soft` with --wrap-with.
        backend: String,
        /// With `soft`: wrap the keystore's data key with this backend's
        /// token (`pkcs11`, `yubikey`) or seal it by the TPM (`tpm`).
        #[arg(long, value_name = "B")]
        wrap_with: Option<String>,
        #[command(flatten)]
        tpm: Box<crate::tpm::SealArgs>,
        /// With `soft`, on a keystore that exists: read its current
        /// passphrase (or PIN) from this file, or `-`; asked otherwise.
        /// Rewrapping needs it, as a passphrase change does.
        #[arg(long, value_name = "F")]
        current_file: Option<PathBuf>,
        /// pkcs11: the module (.so), under an allowed directory.
        #[arg(long, value_name = "M", default_value = "")]
        module: String,
        /// pkcs11: the token's label.
        #[arg(long, value_name = "LABEL", default_value = "")]
        token: String,
        /// yubikey: the card's serial number (needed when several are
        /// plugged in; `ykman list --serials` shows them).
        #[arg(long, value_name = "N")]
        serial: Option<u32>,
        /// yubikey: touch policy of the keys made from now on: never,
        /// always, or cached (one touch covers 15 s).
        #[arg(long, value_name = "P")]
        touch: Option<String>,
        /// Read the user PIN from this file (first line), or `-` for stdin;
        /// asked on the terminal otherwise (twice for a new TPM PIN).
        #[arg(long, value_name = "F")]
        pin_file: Option<PathBuf>,
    },
    /// The TPM-sealed keystore.
    #[command(subcommand)]
    Tpm(crate::tpm::TpmCommand),
}

#[derive(Args)]
pub struct PasswdArgs {
    /// Read the current and the new passphrase from this file (first and
    /// second line), or `-` for standard input.
    #[arg(long, value_name = "F")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct SignArgs {
    /// Room version of the PDU's room.
    #[arg(long, value_name = "V")]
    room_version: String,
    /// The event ID the homeserver announced; the agent checks it.
    #[arg(long, value_name = "ID")]
    event_id: Option<String>,
    /// What the user asked for, which the PDU must match: a JSON file, or
    /// JSON given inline (starting with `{`), e.g.
    /// `{"room_id":"!r:x","type":"m.room.message","content":{"msgtype":"m.text","body":"hi"}}`.
    /// See the README's "How a Matrix client uses the agent".
    #[arg(long, value_name = "FILE|JSON")]
    intent: Option<String>,
    /// PDU JSON file; standard input when absent or `-`.
    file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum JournalCommand {
    /// Print the newest entries, oldest first.
    Tail {
        /// How many entries.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: u32,
        /// Only entries about this room.
        #[arg(long, value_name = "ROOM")]
        room: Option<String>,
    },
    /// Check the hash chain: exit 0 when intact, 1 when not.
    Verify,
}

pub fn status(ctx: &Ctx) -> Result<ExitCode> {
    let mut c = ctx.connect()?;
    let h = c.call::<Hello>(&NoParams {})?;
    if ctx.json {
        output::json(&h)?;
    } else {
        output::line(&format!(
            "cryptoid-agent {} (protocol {}): {}{}",
            h.agent_version,
            h.protocol,
            if h.locked { "locked" } else { "unlocked" },
            if h.passphrase_set {
                ""
            } else {
                ", no passphrase set yet (the first `cryptoidctl unlock` sets it)"
            }
        ))?;
        for b in &h.backends {
            output::line(&format!(
                "  backend {}: {}, {} key(s), protection {}",
                b.name,
                if b.available { "available" } else { "unavailable" },
                b.keys,
                b.protection.as_str()
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn lock(ctx: &Ctx) -> Result<ExitCode> {
    let r = ctx.connect()?.call::<Lock>(&NoParams {})?;
    if ctx.json {
        output::json(&r)?;
    } else {
        output::line("locked")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What protects the software keystore, as `agent.hello` tells it (`None`:
/// no keystore yet).
pub fn soft_protection(hello: &HelloResult) -> Option<Protection> {
    let soft = hello.backends.iter().find(|b| b.name == "soft").map(|b| b.protection);
    soft.filter(|_| hello.passphrase_set)
}

/// The current secret of the software keystore when one protects it (not
/// a new keystore, nor one made with `--no-passphrase`): from `file`, or
/// asked.
pub fn current_secret(hello: &HelloResult, file: Option<&PathBuf>) -> Result<Option<Zeroizing<String>>> {
    match soft_protection(hello) {
        None | Some(Protection::None) => Ok(None),
        Some(_) => {
            Ok(Some(read_secret_lines(file, &["Current passphrase (or PIN) of the keystore: "])?.remove(0)))
        }
    }
}

/// `agent.unlock` of the software keystore with `secret`, sent as a PIN or
/// a passphrase as its protection says.
pub fn soft_unlock(protection: Option<Protection>, secret: &str) -> UnlockParams {
    let (passphrase, pin) = if protection.is_some_and(Protection::unlocks_with_pin) {
        (None, Some(secret.to_owned()))
    } else {
        (Some(secret.to_owned()), None)
    };
    UnlockParams { passphrase, backend: None, pin }
}

fn unlocked(ctx: &Ctx, r: &LockState, what: &str) -> Result<ExitCode> {
    if ctx.json {
        output::json(r)?;
    } else {
        output::line(what)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<ExitCode> {
    let mut c = ctx.connect()?;
    if let Some(backend) = a.backend.filter(|b| b != "soft") {
        let pin = read_secret_lines(a.pin_file.as_ref(), &["PIN: "])?.remove(0);
        let r = c.call::<Unlock>(&UnlockParams {
            passphrase: None,
            backend: Some(backend.clone()),
            pin: Some(pin.to_string()),
        })?;
        return unlocked(ctx, &r, &format!("{backend} unlocked"));
    }
    if a.recovery {
        let passphrase = read_secret_lines(a.passphrase_file.as_ref(), &["Recovery passphrase: "])?.remove(0);
        let r = c.call::<Unlock>(&soft_unlock(None, &passphrase))?;
        if !ctx.json {
            eprintln!(
                "seal the keystore to this machine's TPM again: cryptoidctl backend init soft --wrap-with tpm"
            );
        }
        return unlocked(ctx, &r, "unlocked with the recovery passphrase");
    }
    let hello = c.call::<Hello>(&NoParams {})?;
    let protection = soft_protection(&hello);
    // A keystore in wrap mode (a token, the TPM) unlocks with its PIN.
    let by_pin = a.passphrase_file.is_none() && protection.is_some_and(Protection::unlocks_with_pin);
    if a.pin_file.is_some() || by_pin {
        let prompt = match protection {
            Some(Protection::TpmPin | Protection::TpmPinPcr) => "TPM PIN: ",
            Some(Protection::Pin | Protection::PinAndTouch) => "Token PIN: ",
            _ => "PIN: ",
        };
        let pin = read_secret_lines(a.pin_file.as_ref(), &[prompt])?.remove(0);
        let r =
            c.call::<Unlock>(&UnlockParams { passphrase: None, backend: None, pin: Some(pin.to_string()) })?;
        return unlocked(ctx, &r, "unlocked");
    }
    let first = !hello.passphrase_set;
    let passphrase = if first && a.passphrase_file.is_none() {
        let l = read_secret_lines(None, &["New keystore passphrase: ", "Repeat it: "])?;
        if l[0] != l[1] {
            bail!("the passphrases differ; nothing was changed");
        }
        l[0].clone()
    } else {
        read_secret_lines(a.passphrase_file.as_ref(), &["Passphrase: "])?.remove(0)
    };
    let r = c.call::<Unlock>(&soft_unlock(None, &passphrase))?;
    unlocked(ctx, &r, if first { "passphrase set; unlocked" } else { "unlocked" })
}

pub fn passwd(ctx: &Ctx, a: PasswdArgs) -> Result<ExitCode> {
    let mut c = ctx.connect()?;
    let lines = match &a.passphrase_file {
        Some(_) => read_secret_lines(a.passphrase_file.as_ref(), &["", ""])?,
        None => {
            let l = read_secret_lines(None, &["Current passphrase: ", "New passphrase: ", "Repeat it: "])?;
            if l[1] != l[2] {
                bail!("the new passphrases differ; nothing was changed");
            }
            l
        }
    };
    c.call::<Passwd>(&PasswdParams {
        passphrase: lines[0].to_string(),
        new_passphrase: lines[1].to_string(),
    })?;
    if ctx.json {
        output::json(&NoParams {})?;
    } else {
        output::line("passphrase changed")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `backend.init` with the token's PIN (from `pin_file`, or asked).
pub fn init_backend(
    c: &mut Client,
    mut params: InitParams,
    pin_file: Option<&PathBuf>,
) -> Result<BackendInfo> {
    params.pin = Some(read_secret_lines(pin_file, &["PIN: "])?.remove(0).to_string());
    Ok(c.call::<Init>(&params)?)
}

pub fn backend(ctx: &Ctx, cmd: BackendCommand) -> Result<ExitCode> {
    let mut c = ctx.connect()?;
    let infos = match cmd {
        BackendCommand::List => c.call::<Hello>(&NoParams {})?.backends,
        BackendCommand::Init {
            backend,
            wrap_with,
            tpm,
            current_file,
            module,
            token,
            serial,
            touch,
            pin_file,
        } => {
            let token = serial.map_or(token, |s| s.to_string());
            let mut params = InitParams {
                backend,
                module,
                token,
                pin: None,
                wrap_with,
                touch,
                pcrs: None,
                recovery_passphrase: None,
                current: None,
            };
            if params.backend == "soft" && params.wrap_with.is_some() {
                let hello = c.call::<Hello>(&NoParams {})?;
                let current = current_secret(&hello, current_file.as_ref())?;
                if current.is_none() && current_file.is_some() {
                    // Reading no line from it would shift what follows (the PIN).
                    bail!("--current-file: this keystore has no passphrase or PIN yet; nothing was changed");
                }
                params.current = current.map(|s| s.to_string());
            }
            if params.wrap_with.as_deref() == Some("tpm") {
                vec![crate::tpm::seal(&mut c, params, &tpm, pin_file.as_ref())?]
            } else {
                if tpm.given() {
                    bail!("--pcrs and --recovery-passphrase[-file] go with `--wrap-with tpm`");
                }
                params.pcrs = None;
                vec![init_backend(&mut c, params, pin_file.as_ref())?]
            }
        }
        BackendCommand::Tpm(cmd) => vec![crate::tpm::run(&mut c, cmd)?],
    };
    if ctx.json {
        output::json(&infos)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                if b.available { "yes".into() } else { "no".into() },
                if b.locked { "locked".into() } else { "unlocked".into() },
                b.protection.as_str().to_owned(),
                b.keys.to_string(),
            ]
        })
        .collect();
    output::table(&["BACKEND", "AVAILABLE", "STATE", "PROTECTION", "KEYS"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

pub fn sign(ctx: &Ctx, a: SignArgs) -> Result<ExitCode> {
    let pdu = Value::Object(input::read_object(a.file.as_deref())?);
    let intent = a.intent.as_deref().map(input::json_arg).transpose().context("--intent")?;
    let mut c = ctx.connect()?;
    announce_touch(&mut c, &pdu);
    let r = c.call::<SignPdu>(&SignPduParams {
        room_version: a.room_version,
        pdu,
        event_id: a.event_id,
        intent,
    })?;
    if ctx.json {
        output::json(&r)?;
    } else {
        output::line(&json::to_canonical_string(&r.pdu))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Says "touch your YubiKey" on stderr when the PDU's sender is a key on a
/// YubiKey set up with a touch policy (the agent logs it and signals it on
/// D-Bus too; a CLI user sees neither).
fn announce_touch(c: &mut Client, pdu: &Value) {
    let Some(sender) = pdu.as_object().and_then(|o| o.get("sender")).and_then(Value::as_str) else { return };
    let on_card = c
        .call::<cryptoid_protocol::wire::keys::Get>(&cryptoid_protocol::wire::keys::KeyRef {
            cryptoid: sender.into(),
        })
        .is_ok_and(|k| k.backend == "yubikey");
    let touch = on_card
        && c.call::<Hello>(&NoParams {}).is_ok_and(|h| {
            h.backends.iter().any(|b| {
                b.name == "yubikey" && b.protection == cryptoid_protocol::wire::agent::Protection::PinAndTouch
            })
        });
    if touch {
        eprintln!("touch your YubiKey when it blinks (signing as {sender})");
    }
}

pub fn journal(ctx: &Ctx, cmd: JournalCommand) -> Result<ExitCode> {
    let mut c = ctx.connect()?;
    match cmd {
        JournalCommand::Tail { limit, room } => {
            let r = c.call::<Tail>(&TailParams { limit: Some(limit), room_id: room })?;
            if ctx.json {
                output::json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            for e in &r.entries {
                let Some(o) = e.as_object() else { continue };
                let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
                let what = if o.contains_key("method") { s("method") } else { s("event") };
                let mut line = format!(
                    "#{} {} {} {}",
                    o.get("seq").and_then(Value::as_int).unwrap_or(0),
                    output::time(o.get("ts").and_then(Value::as_int).unwrap_or(0).max(0) as u64),
                    what,
                    s("outcome")
                );
                for k in ["room_id", "type", "event_id", "cryptoid", "reason"] {
                    if !s(k).is_empty() {
                        line.push_str(&format!(" {k}={}", s(k)));
                    }
                }
                if let Some(exe) = o
                    .get("client")
                    .and_then(Value::as_object)
                    .and_then(|c| c.get("exe"))
                    .and_then(Value::as_str)
                {
                    line.push_str(&format!(" client={exe}"));
                }
                output::line(&output::shown(&line))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalCommand::Verify => {
            let r = c.call::<Verify>(&NoParams {})?;
            if ctx.json {
                output::json(&r)?;
            } else if r.ok {
                output::line(&format!("ok: {} entries, hash chain intact", r.entries))?;
            } else {
                eprintln!(
                    "cryptoidctl: journal BROKEN after {} good entries: {}",
                    r.entries,
                    r.error.unwrap_or_default()
                );
            }
            Ok(if r.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
