//! `cryptoid-agent`: the daemon. Runs in the foreground (systemd style) and
//! logs to stderr.

use anyhow::{Context, Result};
use clap::Parser;
use cryptoid_agent::clock::SystemClock;
use cryptoid_agent::config::Config;
use cryptoid_agent::service::Service;
use cryptoid_agent::transport::socket::Limits;
use cryptoid_agent::{hardening, server};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// A key agent for Matrix cryptoIDs: holds the keys, checks every PDU, signs
/// for local clients over a UNIX socket.
#[derive(Parser)]
#[command(name = "cryptoid-agent", version, long_about = None)]
struct Args {
    /// Socket to listen on [default: $XDG_RUNTIME_DIR/cryptoid-agent/agent.sock].
    /// Ignored when systemd passes a socket (LISTEN_FDS).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Where keys and the journal live [default: ~/.local/share/cryptoid-agent].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [default: ~/.config/cryptoid-agent/config.toml;
    /// a missing default file means defaults].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keep the keystore's data key unencrypted on disk and start unlocked.
    /// WEAKER: anyone who can read the data directory can use every key.
    /// Only with full-disk encryption. Takes effect when the keystore is made.
    #[arg(long)]
    no_passphrase: bool,
    /// Do not offer the D-Bus API (org.cryptoid.Agent1 on the session bus).
    #[arg(long)]
    no_dbus: bool,
    /// Print the man page (roff) and exit (used to build packages).
    #[arg(long, hide = true)]
    print_man_page: bool,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    // The TSS's C libraries print every TPM refusal (a wrong PIN is one) to
    // stderr; the agent reports them itself. Set before any thread exists.
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+NONE");
    }
    let args = Args::parse();
    if args.print_man_page {
        use clap::CommandFactory;
        let man = clap_mangen::Man::new(Args::command());
        return match man.render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cryptoid-agent: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(args.verbose);
    let h = hardening::apply();
    for w in &h.warnings {
        tracing::warn!("{w}");
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cryptoid-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // zbus traces whole messages at its lower levels, and an Unlock call
    // carries the passphrase: never let those reach the log, whatever
    // RUST_LOG says.
    let filter = match "zbus=info".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    // tss-esapi logs every TPM refusal as an ERROR (a wrong PIN is one);
    // the agent reports them itself, with what to do.
    let filter = match "tss_esapi=off".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "cryptoid-agent")
}

fn run(args: Args) -> Result<()> {
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => project_dirs().context("no home directory: pass --data-dir")?.data_dir().to_path_buf(),
    };
    let (config_path, required) = match args.config {
        Some(c) => (c, true),
        None => (
            project_dirs().context("no home directory: pass --config")?.config_dir().join("config.toml"),
            false,
        ),
    };
    let config = Config::load(&config_path, required)?;
    let _lock = server::lock_data_dir(&data_dir)?;
    let listening = match server::from_systemd()? {
        Some(l) => l,
        None => {
            let path = match args.socket {
                Some(p) => p,
                None => cryptoid_protocol::client::default_socket_path()
                    .filter(|_| std::env::var_os("XDG_RUNTIME_DIR").is_some())
                    .map(|_| {
                        PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR").unwrap_or_default())
                            .join("cryptoid-agent")
                            .join("agent.sock")
                    })
                    .context("XDG_RUNTIME_DIR is not set: pass --socket")?,
            };
            server::bind(&path)?
        }
    };
    let svc = Arc::new(Service::open(&data_dir, config.clone(), args.no_passphrase, Arc::new(SystemClock))?);
    if svc.is_locked() {
        tracing::info!("locked: run `cryptoidctl unlock` (the first unlock sets the passphrase)");
    } else if args.no_passphrase {
        tracing::warn!("running without a passphrase: the keystore is only as safe as the disk");
    }
    let limits = Limits {
        idle_timeout: config.socket.idle_timeout(),
        line_timeout: config.socket.line_timeout(),
        allow_root: config.socket.allow_root,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let no_dbus = args.no_dbus;
    runtime.block_on(async move {
        // D-Bus is optional: without a session bus the socket still serves.
        let _dbus = if no_dbus {
            None
        } else {
            match cryptoid_agent::transport::dbus::start(svc.clone(), None).await {
                Ok(d) => {
                    tracing::info!(name = cryptoid_agent::transport::dbus::BUS_NAME, "serving on the session bus");
                    Some(d)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no D-Bus API (no session bus, or the name is taken); the socket still serves");
                    None
                }
            }
        };
        // Handlers first (see `shutdown_signal`): a SIGTERM right after the
        // announcement must not kill the process with the default action.
        let shutdown = shutdown_signal();
        if let Some(p) = &listening.path {
            println!("CRYPTOID_AUTH_SOCK={}", p.display());
            let _ = std::io::stdout().flush();
            tracing::info!(socket = %p.display(), data_dir = %data_dir.display(), "serving");
        }
        server::run(svc, listening, limits, shutdown).await
    })?;
    Ok(())
}

/// The shutdown future. The handlers are installed here, when it is made,
/// not when it is first polled: an `async fn` would install them only once
/// the server polls it, and a SIGTERM in between (right after the socket is
/// announced) killed the agent with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers; stop the agent with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    }
}
