//! `share`: a user's cryptoIDs moved between their devices through Matrix
//! secret storage. `push` on the device that has the keys, `pull` on the
//! new one; `export`/`import` do the same through a file, for clients that
//! move account data themselves.

use crate::homeserver::Homeserver;
use crate::{output, secret::read_secret_lines, Ctx};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use cryptoid_protocol::json::Value;
use cryptoid_protocol::secret_storage::{self as ssss, recovery_key, KeyDescription, SecretKey};
use cryptoid_protocol::share::{part_name, MAX_PARTS, SECRET_NAME};
use cryptoid_protocol::wire::share::{
    AccountData, Export, ExportResult, Import, ImportParams, ImportReport, Left, StorageKey,
};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ShareCommand {
    /// Upload this device's shareable cryptoIDs to your account's secret
    /// storage, encrypted under its default key (asks for the recovery key).
    Push(Remote),
    /// Download the cryptoIDs your other devices pushed and merge them in:
    /// new rooms are added, a room that has another key here is reported
    /// and keeps this device's key.
    Pull {
        #[command(flatten)]
        remote: Remote,
        /// Where a room has another key here, retire this device's key and
        /// take the pushed one (the agent asks for confirmation).
        #[arg(long)]
        replace: bool,
    },
    /// Write the encrypted account data to FILE instead of the homeserver.
    Export {
        /// Where to write `{"account_data": [...]}` (mode 0600).
        file: PathBuf,
        #[command(flatten)]
        key: KeyFile,
    },
    /// Merge the encrypted account data in FILE (as written by `export`).
    Import {
        file: PathBuf,
        #[command(flatten)]
        key: KeyFile,
        /// As for `pull`.
        #[arg(long)]
        replace: bool,
    },
    /// Create secret storage on an account that has none, and print its new
    /// recovery key, once. Refuses if the account already has a default key.
    Setup(Server),
}

#[derive(Args)]
pub struct Server {
    /// The homeserver's client-server API base URL.
    #[arg(long, value_name = "URL")]
    homeserver: String,
    /// A file whose first line is the access token (never give it on the
    /// command line: other users can read that).
    #[arg(long, value_name = "FILE")]
    access_token_file: PathBuf,
    /// Your Matrix user ID (asked of the server when left out).
    #[arg(long, value_name = "@USER:SERVER")]
    user_id: Option<String>,
}

#[derive(Args)]
pub struct Remote {
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    secret: Secret,
}

/// How the secret-storage key is given.
#[derive(Args)]
pub struct Secret {
    /// Read the recovery key (or with --passphrase, the passphrase) from a
    /// file, or `-` for standard input; else it is asked without echo.
    #[arg(long, value_name = "FILE|-")]
    secret_file: Option<PathBuf>,
    /// The secret is the secret-storage passphrase, not the recovery key.
    #[arg(long)]
    passphrase: bool,
}

#[derive(Args)]
pub struct KeyFile {
    /// `{"key_id": "...", "key_description": {...}}`: the secret-storage key
    /// to use (its `m.secret_storage.key.<id>` account data).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    #[command(flatten)]
    secret: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileContent {
    key_id: String,
    key_description: KeyDescription,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareFile {
    account_data: Vec<AccountData>,
}

pub fn run(ctx: &Ctx, cmd: ShareCommand) -> Result<ExitCode> {
    match cmd {
        ShareCommand::Push(r) => push(ctx, r),
        ShareCommand::Pull { remote, replace } => pull(ctx, remote, replace),
        ShareCommand::Export { file, key } => {
            let k = read_key_file(&key)?;
            let result = export(ctx, storage_key(&key.secret, k.key_id, k.key_description)?)?;
            let text = serde_json::to_vec_pretty(&ShareFile { account_data: result.account_data.clone() })?;
            write_private(&file, &text)?;
            exported(ctx, &result, &format!("wrote {}", file.display()))
        }
        ShareCommand::Import { file, key, replace } => {
            let k = read_key_file(&key)?;
            let text = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let f: ShareFile = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a file written by `share export`", file.display()))?;
            let key = storage_key(&key.secret, k.key_id, k.key_description)?;
            import(ctx, key, f.account_data, replace)
        }
        ShareCommand::Setup(s) => setup(ctx, s),
    }
}

fn read_key_file(k: &KeyFile) -> Result<KeyFileContent> {
    let text = std::fs::read(&k.key_file).with_context(|| format!("cannot read {}", k.key_file.display()))?;
    serde_json::from_slice(&text).with_context(|| {
        format!("{} must be {{\"key_id\": ..., \"key_description\": {{...}}}}", k.key_file.display())
    })
}

/// The storage key of a request, with the secret asked for or read.
fn storage_key(s: &Secret, key_id: String, key_description: KeyDescription) -> Result<StorageKey> {
    let prompt = if s.passphrase { "Secret-storage passphrase: " } else { "Recovery key: " };
    let mut lines = read_secret_lines(s.secret_file.as_ref(), &[prompt])?;
    let secret = lines.pop().map(|l| l.trim().to_owned()).unwrap_or_default();
    if secret.is_empty() {
        bail!("no {} given", if s.passphrase { "passphrase" } else { "recovery key" });
    }
    let mut key = StorageKey { recovery_key: None, passphrase: None, key_id, key_description };
    if s.passphrase {
        key.passphrase = Some(secret);
    } else {
        key.recovery_key = Some(secret);
    }
    Ok(key)
}

/// The account's default secret-storage key: its ID and description.
fn default_key(hs: &Homeserver) -> Result<(String, KeyDescription)> {
    let no_storage = || {
        anyhow::anyhow!(
            "{} has no secret storage: set it up in your Matrix client (Element: Settings, Security & Privacy, \
             Secure Backup) or with `cryptoidctl share setup`",
            hs.user_id
        )
    };
    let default = hs.account_data(ssss::DEFAULT_KEY_TYPE)?.ok_or_else(no_storage)?;
    let key_id = default
        .as_object()
        .and_then(|o| o.get("key"))
        .and_then(Value::as_str)
        .context("m.secret_storage.default_key has no `key`")?
        .to_owned();
    let desc = hs
        .account_data(&ssss::key_type(&key_id))?
        .with_context(|| format!("the default secret-storage key {key_id:?} has no description"))?;
    let desc: KeyDescription = serde_json::to_value(&desc)
        .and_then(serde_json::from_value)
        .with_context(|| format!("the description of secret-storage key {key_id:?} is malformed"))?;
    Ok((key_id, desc))
}

fn export(ctx: &Ctx, key: StorageKey) -> Result<ExportResult> {
    Ok(ctx.connect()?.call::<Export>(&key)?)
}

fn push(ctx: &Ctx, r: Remote) -> Result<ExitCode> {
    let hs = Homeserver::open(&r.server.homeserver, &r.server.access_token_file, r.server.user_id)?;
    let (key_id, desc) = default_key(&hs)?;
    let result = export(ctx, storage_key(&r.secret, key_id, desc)?)?;
    // Part 0 last: it names the others, which are all stored by then.
    for (i, item) in result.account_data.iter().enumerate().rev() {
        if !ctx.json {
            eprintln!(
                "storing {} ({}/{})",
                item.event_type,
                result.account_data.len() - i,
                result.account_data.len()
            );
        }
        hs.put_account_data(&item.event_type, &item.content)?;
    }
    exported(ctx, &result, &format!("pushed to {}'s secret storage", hs.user_id))
}

fn exported(ctx: &Ctx, r: &ExportResult, done: &str) -> Result<ExitCode> {
    if ctx.json {
        #[derive(Serialize)]
        struct Summary<'a> {
            secrets: usize,
            rooms: u64,
            one_time: u64,
            stays: &'a [Left],
            skipped: &'a [Left],
        }
        output::json(&Summary {
            secrets: r.account_data.len(),
            rooms: r.rooms,
            one_time: r.one_time,
            stays: &r.stays,
            skipped: &r.skipped,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    output::line(&format!(
        "{done}: {} room cryptoIDs and {} one-time cryptoIDs in {} secret(s)",
        r.rooms,
        r.one_time,
        r.account_data.len()
    ))?;
    lefts("stays on this device", &r.stays)?;
    lefts("not shared", &r.skipped)?;
    Ok(ExitCode::SUCCESS)
}

fn lefts(what: &str, l: &[Left]) -> Result<()> {
    for k in l {
        let room = k.room_id.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        output::line(&format!("  {what}: {}{room} [{}]: {}", k.cryptoid, k.backend, k.reason))?;
    }
    Ok(())
}

fn pull(ctx: &Ctx, r: Remote, replace: bool) -> Result<ExitCode> {
    let hs = Homeserver::open(&r.server.homeserver, &r.server.access_token_file, r.server.user_id)?;
    let (key_id, desc) = default_key(&hs)?;
    // Part 0 and the parts after it, each at most a part's size with room
    // to spare, all together at most what one request line to the agent
    // takes: a homeserver cannot make this read without end.
    const PART_LIMIT: u64 = 128 * 1024;
    let mut total = 0u64;
    let first = hs.account_data_limited(SECRET_NAME, PART_LIMIT)?.with_context(|| {
        format!(
            "{} has no shared cryptoIDs yet: run `cryptoidctl share push` on a device that has them",
            hs.user_id
        )
    })?;
    let mut account_data = vec![AccountData { event_type: SECRET_NAME.into(), content: first }];
    // Part 0 is encrypted, so the parts it names are not known here: read
    // `.1`, `.2`, … while they exist; the agent takes only those it names.
    for i in 1..MAX_PARTS {
        let name = part_name(i);
        match hs.account_data_limited(&name, PART_LIMIT)? {
            Some(content) => {
                total += cryptoid_protocol::json::to_canonical_string(&content).len() as u64;
                if total > cryptoid_protocol::wire::MAX_LINE as u64 / 2 {
                    bail!("the homeserver serves more shared-cryptoID parts than any export makes; stopped at {name}");
                }
                account_data.push(AccountData { event_type: name, content });
            }
            None => break,
        }
    }
    import(ctx, storage_key(&r.secret, key_id, desc)?, account_data, replace)
}

fn import(ctx: &Ctx, key: StorageKey, account_data: Vec<AccountData>, replace: bool) -> Result<ExitCode> {
    let p = ImportParams { key, account_data, replace };
    let report = ctx.connect()?.call::<Import>(&p)?;
    imported(ctx, &report)
}

fn imported(ctx: &Ctx, r: &ImportReport) -> Result<ExitCode> {
    if ctx.json {
        output::json(r)?;
        return Ok(ExitCode::SUCCESS);
    }
    output::line(&format!(
        "imported: {} added, {} already here, {} conflicts, {} replaced, {} skipped",
        r.added.len(),
        r.same.len(),
        r.conflicts.len(),
        r.replaced.len(),
        r.skipped.len()
    ))?;
    for c in &r.conflicts {
        output::line(&format!(
            "  conflict in {}: this device has {}, the import has {}; kept this device's (`--replace` takes the import's)",
            c.room_id, c.local, c.remote
        ))?;
    }
    for c in &r.replaced {
        output::line(&format!("  replaced in {}: {} retired, {} taken", c.room_id, c.local, c.remote))?;
    }
    lefts("skipped", &r.skipped)?;
    Ok(ExitCode::SUCCESS)
}

fn setup(ctx: &Ctx, s: Server) -> Result<ExitCode> {
    let hs = Homeserver::open(&s.homeserver, &s.access_token_file, s.user_id)?;
    if let Some(d) = hs.account_data(ssss::DEFAULT_KEY_TYPE)? {
        bail!(
            "{} already has secret storage (default key {}): use its recovery key with `share push`",
            hs.user_id,
            cryptoid_protocol::json::to_canonical_string(&d)
        );
    }
    let random = random_bytes::<48>()?;
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&random[..32]);
    let key = SecretKey::from_bytes(bytes);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&random[32..]);
    let mut desc = KeyDescription::new(&key, iv, None);
    desc.name = Some("cryptoid-agent".into());
    let key_id: String =
        random_bytes::<24>()?.iter().map(|b| ALNUM[usize::from(*b) % ALNUM.len()] as char).collect();
    let desc_value = serde_json::to_value(&desc).and_then(serde_json::from_value)?;
    hs.put_account_data(&ssss::key_type(&key_id), &desc_value)?;
    let mut default = cryptoid_protocol::json::Object::new();
    default.insert("key".into(), Value::String(key_id.clone()));
    hs.put_account_data(ssss::DEFAULT_KEY_TYPE, &Value::Object(default))?;
    let text = recovery_key::encode(&key);
    if ctx.json {
        #[derive(Serialize)]
        struct Created<'a> {
            key_id: &'a str,
            recovery_key: &'a str,
        }
        output::json(&Created { key_id: &key_id, recovery_key: &text })?;
    } else {
        output::line(&format!("secret storage created for {} (key {key_id})", hs.user_id))?;
        output::line("your recovery key (write it down now: it is shown only this once):")?;
        output::line(&format!("  {}", text.as_str()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `O_NOFOLLOW` on Linux.
const O_NOFOLLOW: i32 = 0o400000;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_bytes<const N: usize>() -> Result<zeroize::Zeroizing<[u8; N]>> {
    let mut b = zeroize::Zeroizing::new([0u8; N]);
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(b.as_mut()))
        .context("cannot read /dev/urandom")?;
    Ok(b)
}

/// Writes `bytes` to `path` with mode 0600, replacing it atomically.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    // A fresh name, created exclusively and never through a symlink: in a
    // shared directory nobody else's file can stand in for it.
    let suffix: String = random_bytes::<6>()?.iter().map(|b| format!("{b:02x}")).collect();
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
