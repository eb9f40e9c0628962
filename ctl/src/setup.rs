//! `cryptoidctl setup`: the first-run wizard. Picks a backend, makes sure
//! the agent runs (enabling the systemd socket with consent), sets or
//! checks the passphrase, makes the first one-time cryptoIDs, and prints the
//! lines for the shell profile. Every question has a flag for scripts.

use crate::agent::{init_backend, soft_protection, soft_unlock};
use crate::{keys, output, secret::read_secret_lines, Ctx};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use cryptoid_protocol::client::{blocking::Client, default_socket_path};
use cryptoid_protocol::wire::agent::{Hello, HelloResult, Protection, Unlock};
use cryptoid_protocol::wire::backend::InitParams;
use cryptoid_protocol::wire::NoParams;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SetupBackend {
    /// Software keystore, encrypted with a passphrase.
    Soft,
    /// Software keystore sealed by this machine's TPM 2.0, behind a PIN
    /// (offered when /dev/tpmrm0 is usable).
    SoftSealedTpm,
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
    /// One-time cryptoIDs to make now (default 50; 5 on a YubiKey, which
    /// has 20 slots in all).
    #[arg(long, value_name = "N")]
    one_time_keys: Option<u32>,
    /// Run `systemctl --user enable --now cryptoid-agent.socket` if the agent
    /// is not reachable (asked on a terminal otherwise).
    #[arg(long)]
    enable_systemd: bool,
    /// Never ask: take the defaults and the flags.
    #[arg(long)]
    yes: bool,
    /// PKCS#11 backends: the module (.so) of the token (asked on a terminal).
    #[arg(long, value_name = "M")]
    module: Option<String>,
    /// PKCS#11 backends: the token's label (asked on a terminal).
    #[arg(long, value_name = "LABEL")]
    token: Option<String>,
    /// PKCS#11 and YubiKey backends: the user PIN from this file (first
    /// line), or `-` for standard input; asked without echo otherwise.
    #[arg(long, value_name = "F")]
    pin_file: Option<PathBuf>,
    /// YubiKey backends: the card's serial number (needed when several
    /// are plugged in).
    #[arg(long, value_name = "N")]
    serial: Option<u32>,
    /// soft-sealed-tpm: the PCRs to bind (e.g. 7), the recovery passphrase.
    #[command(flatten)]
    tpm: crate::tpm::SealArgs,
}

/// Module paths tried as the default answer, in order.
const KNOWN_MODULES: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

/// The value of a flag, or the answer to a question on a terminal.
fn flag_or_ask(
    value: &Option<String>,
    flag: &str,
    question: &str,
    default: Option<&str>,
    interactive: bool,
) -> Result<String> {
    if let Some(v) = value {
        return Ok(v.clone());
    }
    if !interactive {
        bail!("{flag} is needed for this backend without a terminal");
    }
    match default {
        Some(d) => eprint!("{question} [{d}]: "),
        None => eprint!("{question}: "),
    }
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the answer")?;
    match (line.trim(), default) {
        ("", Some(d)) => Ok(d.to_owned()),
        ("", None) => bail!("{flag} is needed for this backend"),
        (a, _) => Ok(a.to_owned()),
    }
}

/// Sets up the token: `backend.init` of `pkcs11` (keys on the token) or of
/// `soft` wrapped by it.
fn init_token(
    c: &mut Client,
    a: &SetupArgs,
    wrap: bool,
    interactive: bool,
    current: Option<String>,
) -> Result<()> {
    let default_module = KNOWN_MODULES.iter().copied().find(|m| std::path::Path::new(m).exists());
    let module = flag_or_ask(&a.module, "--module", "PKCS#11 module", default_module, interactive)?;
    let token = flag_or_ask(&a.token, "--token", "Token label", None, interactive)?;
    let (backend, wrap_with) = if wrap { ("soft", Some("pkcs11".to_owned())) } else { ("pkcs11", None) };
    let params = InitParams {
        backend: backend.into(),
        module,
        token,
        pin: None,
        wrap_with,
        touch: None,
        pcrs: None,
        recovery_passphrase: None,
        current,
    };
    init_backend(c, params, a.pin_file.as_ref())?;
    Ok(())
}

/// `backend.init` of `yubikey` (keys on the card) or of `soft` wrapped by it.
fn init_yubikey(
    c: &mut Client,
    a: &SetupArgs,
    wrap_with: Option<&str>,
    current: Option<String>,
) -> Result<()> {
    let params = InitParams {
        backend: if wrap_with.is_some() { "soft" } else { "yubikey" }.into(),
        module: String::new(),
        token: a.serial.map(|s| s.to_string()).unwrap_or_default(),
        pin: None,
        wrap_with: wrap_with.map(str::to_owned),
        touch: None,
        pcrs: None,
        recovery_passphrase: None,
        current,
    };
    init_backend(c, params, a.pin_file.as_ref())?;
    Ok(())
}

/// Before wrapping a keystore that exists: its current secret (the agent
/// asks for it, as a passphrase change does), unlocking with it if locked.
fn current_secret(c: &mut Client, a: &SetupArgs, hello: &HelloResult) -> Result<Option<String>> {
    let Some(secret) = crate::agent::current_secret(hello, a.passphrase_file.as_ref())? else {
        return Ok(None);
    };
    if hello.locked {
        c.call::<Unlock>(&soft_unlock(soft_protection(hello), &secret))?;
    }
    Ok(Some(secret.to_string()))
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
    // The TPM is offered where this user can reach one.
    let tpm = tpm_usable(std::path::Path::new("/dev/tpmrm0"));
    let choices: Vec<SetupBackend> = SetupBackend::value_variants()
        .iter()
        .copied()
        .filter(|b| *b != SetupBackend::SoftSealedTpm || tpm)
        .collect();
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

/// Whether this user can open the TPM device (the `tss` group).
fn tpm_usable(device: &std::path::Path) -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open(device).is_ok()
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

pub fn run(ctx: &Ctx, mut a: SetupArgs) -> Result<ExitCode> {
    let interactive = !a.yes && std::io::stdin().is_terminal();
    let backend = pick_backend(&a, interactive)?;
    let (mut c, socket, enabled) = connect_or_start(ctx, &a, interactive)?;
    let hello = c.call::<Hello>(&NoParams {})?;
    match backend {
        SetupBackend::Pkcs11 => {
            init_token(&mut c, &a, false, interactive, None)?;
            eprintln!("the token is set up; cryptoIDs will be generated on it");
        }
        // Wrapping needs the keystore unlocked, or not yet made (it is then
        // made with a data key only the token can unwrap: no passphrase).
        SetupBackend::SoftWrappedPkcs11 => {
            let current = current_secret(&mut c, &a, &hello)?;
            init_token(&mut c, &a, true, interactive, current)?;
            eprintln!("the keystore is wrapped by the token: unlock it with the token's PIN from now on");
        }
        SetupBackend::Yubikey => {
            init_yubikey(&mut c, &a, None, None)?;
            eprintln!("the YubiKey is set up; cryptoIDs will be generated on it (20 at most)");
        }
        SetupBackend::SoftWrappedYubikey => {
            let current = current_secret(&mut c, &a, &hello)?;
            init_yubikey(&mut c, &a, Some("yubikey"), current)?;
            eprintln!("the keystore is wrapped by the YubiKey: unlock it with the YubiKey's PIN from now on");
        }
        SetupBackend::SoftSealedTpm => {
            let current = current_secret(&mut c, &a, &hello)?;
            let mut tpm = std::mem::take(&mut a.tpm);
            if interactive && !tpm.recovery_passphrase && tpm.recovery_passphrase_file.is_none() {
                tpm.recovery_passphrase = ask(
                    "Add a recovery passphrase (kept offline; it opens the keystore on another machine or after the TPM is cleared)?",
                    true,
                )?;
            }
            let params = InitParams {
                backend: "soft".into(),
                module: String::new(),
                token: String::new(),
                pin: None,
                wrap_with: Some("tpm".into()),
                touch: None,
                pcrs: None,
                recovery_passphrase: None,
                current,
            };
            crate::tpm::seal(&mut c, params, &tpm, a.pin_file.as_ref())?;
            eprintln!("the keystore is sealed by this machine's TPM: unlock it with the TPM PIN from now on");
        }
        SetupBackend::Soft => soft_passphrase(&mut c, &a, &hello)?,
    }
    let key_backend = match backend {
        SetupBackend::Pkcs11 => Some("pkcs11"),
        SetupBackend::Yubikey => Some("yubikey"),
        _ => None,
    };
    let count = a.one_time_keys.unwrap_or(if backend == SetupBackend::Yubikey { 5 } else { 50 });
    let made = if count > 0 {
        keys::generate(&mut c, count, key_backend.map(str::to_owned), !ctx.json)?
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
            backend: key_backend.unwrap_or("soft"),
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

/// The software keystore: sets the passphrase on first use, or unlocks.
fn soft_passphrase(c: &mut Client, a: &SetupArgs, hello: &HelloResult) -> Result<()> {
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
        c.call::<Unlock>(&soft_unlock(None, &lines[0]))?;
        eprintln!("keystore passphrase set; the agent is unlocked");
    } else if hello.locked {
        unlock_with_passphrase(c, a)?;
        eprintln!("the agent is unlocked");
    }
    Ok(())
}

/// Unlocks the software keystore with what protects it: its passphrase, or
/// the PIN of the TPM or token it is sealed by.
fn unlock_with_passphrase(c: &mut Client, a: &SetupArgs) -> Result<()> {
    let protection = soft_protection(&c.call::<Hello>(&NoParams {})?);
    let secret = if protection.is_some_and(Protection::unlocks_with_pin) {
        read_secret_lines(a.pin_file.as_ref(), &["Current PIN of the keystore: "])?
    } else {
        read_secret_lines(a.passphrase_file.as_ref(), &["Passphrase: "])?
    };
    c.call::<Unlock>(&soft_unlock(protection, &secret[0]))?;
    Ok(())
}
