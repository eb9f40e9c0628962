//! `cryptoidctl setup`: the first-run wizard. Picks a backend, makes sure
//! the agent runs (enabling the systemd socket with consent), sets or
//! checks the passphrase, makes the first one-time cryptoIDs, and prints the
//! lines for the shell profile. Every question has a flag for scripts.

use crate::{agent::read_secret_lines, keys, output, Ctx};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use cryptoid_protocol::client::{blocking::Client, default_socket_path};
use cryptoid_protocol::wire::agent::{Hello, Unlock, UnlockParams};
use cryptoid_protocol::wire::NoParams;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SetupBackend {
    /// Software keystore, encrypted with a passphrase.
    Soft,
    /// Software keystore whose data key is wrapped by a YubiKey.
    SoftWrappedYubikey,
    /// Software keystore whose data key is wrapped by a PKCS#11 token.
    SoftWrappedPkcs11,
    /// Keys generated on a PKCS#11 token (HSM, smart card).
    Pkcs11,
    /// Keys generated on a YubiKey (PIV, firmware 5.7+).
    Yubikey,
}

#[derive(Args)]
pub struct SetupArgs {
    /// Where keys live (asked when absent on a terminal; default soft).
    #[arg(long, value_enum)]
    backend: Option<SetupBackend>,
    /// Passphrase source: a file (first line) or `-` for standard input.
    #[arg(long, value_name = "F")]
    passphrase_file: Option<PathBuf>,
    /// One-time cryptoIDs to make now.
    #[arg(long, default_value_t = 50, value_name = "N")]
    one_time_keys: u32,
    /// Run `systemctl --user enable --now cryptoid-agent.socket` if the agent
    /// is not reachable (asked on a terminal otherwise).
    #[arg(long)]
    enable_systemd: bool,
    /// Never ask: take the defaults and the flags.
    #[arg(long)]
    yes: bool,
}

fn ask(question: &str, default_yes: bool) -> Result<bool> {
    eprint!("{question} [{}] ", if default_yes { "Y/n" } else { "y/N" });
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the answer")?;
    Ok(match line.trim() {
        "" => default_yes,
        a => matches!(a, "y" | "Y" | "yes"),
    })
}

fn pick_backend(a: &SetupArgs, interactive: bool) -> Result<SetupBackend> {
    if let Some(b) = a.backend {
        return Ok(b);
    }
    if !interactive {
        return Ok(SetupBackend::Soft);
    }
    let choices = SetupBackend::value_variants();
    eprintln!("Where should your cryptoIDs live?");
    for (i, b) in choices.iter().enumerate() {
        let help =
            b.to_possible_value().and_then(|p| p.get_help().map(|h| h.to_string())).unwrap_or_default();
        eprintln!("  {}) {help}", i + 1);
    }
    eprint!("choice [1]: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the choice")?;
    let n: usize = match line.trim() {
        "" => 1,
        t => t.parse().with_context(|| format!("{t:?} is not a number from the list"))?,
    };
    choices.get(n.wrapping_sub(1)).copied().with_context(|| format!("{n} is not in the list"))
}

fn connect_or_start(ctx: &Ctx, a: &SetupArgs, interactive: bool) -> Result<(Client, Option<PathBuf>, bool)> {
    if let Ok(c) = ctx.connect() {
        return Ok((c, ctx.socket.clone().or_else(default_socket_path), false));
    }
    let consent = a.enable_systemd
        || (interactive
            && !a.yes
            && ask("The agent is not running. Enable and start it with systemd now?", true)?);
    if !consent {
        bail!(
            "the agent is not reachable; start it with `systemctl --user enable --now cryptoid-agent.socket` \
             (or run `cryptoid-agent`), then run `cryptoidctl setup` again"
        );
    }
    let status = std::process::Command::new("systemctl")
        .args(["--user", "enable", "--now", "cryptoid-agent.socket"])
        .status()
        .context("cannot run systemctl")?;
    if !status.success() {
        bail!("`systemctl --user enable --now cryptoid-agent.socket` failed ({status})");
    }
    let path =
        ctx.socket.clone().or_else(default_socket_path).context("no socket path: set XDG_RUNTIME_DIR")?;
    Ok((Client::connect(&path)?, Some(path), true))
}

pub fn run(ctx: &Ctx, a: SetupArgs) -> Result<ExitCode> {
    let interactive = !a.yes && std::io::stdin().is_terminal();
    let backend = pick_backend(&a, interactive)?;
    if backend != SetupBackend::Soft {
        bail!(
            "backend {:?} is not available in this version: only the software keystore (`--backend soft`) is; \
             hardware backends come with the PKCS#11 and YubiKey support",
            backend.to_possible_value().map(|p| p.get_name().to_owned()).unwrap_or_default()
        );
    }
    let (mut c, socket, enabled) = connect_or_start(ctx, &a, interactive)?;
    let hello = c.call::<Hello>(&NoParams {})?;
    if !hello.passphrase_set {
        let lines = match &a.passphrase_file {
            Some(f) => read_secret_lines(Some(f), &["passphrase"])?,
            None => {
                let l = read_secret_lines(None, &["New keystore passphrase: ", "Repeat it: "])?;
                if l[0] != l[1] {
                    bail!("the passphrases differ; nothing was changed");
                }
                l
            }
        };
        c.call::<Unlock>(&UnlockParams { passphrase: Some(lines[0].to_string()), backend: None, pin: None })?;
        eprintln!("keystore passphrase set; the agent is unlocked");
    } else if hello.locked {
        let p = read_secret_lines(a.passphrase_file.as_ref(), &["Passphrase: "])?;
        c.call::<Unlock>(&UnlockParams { passphrase: Some(p[0].to_string()), backend: None, pin: None })?;
        eprintln!("the agent is unlocked");
    }
    let made = if a.one_time_keys > 0 {
        keys::generate(&mut c, a.one_time_keys, None, !ctx.json)?
    } else {
        Vec::new()
    };
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Done {
            backend: &'static str,
            socket: Option<String>,
            one_time_keys: usize,
            systemd_enabled: bool,
        }
        output::json(&Done {
            backend: "soft",
            socket: socket.map(|p| p.display().to_string()),
            one_time_keys: made.len(),
            systemd_enabled: enabled,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    output::line(&format!(
        "made {} one-time cryptoIDs (upload them with `cryptoidctl otk upload-body`)",
        made.len()
    ))?;
    output::line("Add to your shell profile:")?;
    if !enabled {
        output::line("  systemctl --user enable --now cryptoid-agent.socket")?;
    }
    if let Some(p) = socket {
        output::line(&format!("  export CRYPTOID_AUTH_SOCK={}", p.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
