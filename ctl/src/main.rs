//! `cryptoidctl`: the command-line tool of cryptoid-agent.
//!
//! Exit codes:
//! - 0 success;
//! - 1 a check failed (`pdu verify`, `journal verify`);
//! - 2 invalid input or usage;
//! - 3 the agent cannot be reached (not running, wrong socket);
//! - 4 the agent is locked;
//! - 5 the agent refused (policy, confirmation, permission);
//! - 6 any other error reported by the agent.

mod agent;
mod bench;
mod homeserver;
mod input;
mod keyfile;
mod keys;
mod output;
mod pdu;
mod peer;
mod pinentry;
mod policy;
mod secret;
mod selfconfirm;
mod setup;
mod share;
mod tpm;

use clap::{Parser, Subcommand};
use cryptoid_protocol::client::{blocking::Client, ClientError};
use cryptoid_protocol::wire::ErrorKind;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cryptoidctl",
    version,
    about = "Manage cryptoid-agent keys and work with Matrix PDUs",
    after_help = "Exit codes: 0 ok, 1 check failed, 2 invalid input, 3 agent unreachable, 4 agent locked, 5 refused by the agent, 6 other agent error."
)]
struct Cli {
    /// The agent's socket.
    #[arg(long, global = true, env = "CRYPTOID_AUTH_SOCK", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// First run: pick a backend, start the agent, set the passphrase, make
    /// the first one-time cryptoIDs.
    Setup(setup::SetupArgs),
    /// Show the agent's version, lock state and backends.
    Status,
    /// Lock the agent: it forgets every secret until unlocked.
    Lock,
    /// Unlock the agent. The first unlock sets the keystore passphrase.
    Unlock(agent::UnlockArgs),
    /// Change the keystore passphrase.
    Passwd(agent::PasswdArgs),
    /// Key backends: list them, set up a PKCS#11 token.
    #[command(subcommand)]
    Backend(agent::BackendCommand),
    /// Room cryptoIDs.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// One-time cryptoIDs (the pool handed out on invites).
    #[command(subcommand)]
    Otk(keys::OtkCommand),
    /// Have the agent check and sign a PDU; print the signed PDU.
    Sign(agent::SignArgs),
    /// The audit journal.
    #[command(subcommand)]
    Journal(agent::JournalCommand),
    /// Show the policy, or ask what it would decide for a PDU.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Feed the agent's room view (anti-replay) from /sync.
    #[command(subcommand)]
    Rooms(policy::RoomsCommand),
    /// Answer pending confirmation requests (interactive y/N, or --allow/--deny ID).
    Confirm(policy::ConfirmArgs),
    /// Load generator: sign fresh PDUs over N connections for S seconds and
    /// compare with the in-process floor measured in the same run.
    Bench(bench::BenchArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    #[command(hide = true)]
    ManPage,
    /// Share your cryptoIDs with your other devices through Matrix secret
    /// storage: `share push` here, `share pull` there.
    #[command(subcommand)]
    Share(share::ShareCommand),
    /// Offline tools on PDU JSON files (no agent needed): canonical JSON,
    /// redaction, content hash, event ID, signing and verification.
    #[command(subcommand)]
    Pdu(pdu::PduCommand),
}

/// Global options every agent command needs.
pub struct Ctx {
    pub socket: Option<PathBuf>,
    pub json: bool,
}

impl Ctx {
    pub fn connect(&self) -> Result<Client, ClientError> {
        match &self.socket {
            Some(p) => Client::connect(p),
            None => Client::connect_default(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx { socket: cli.socket, json: cli.json };
    // Commands the agent may hold for confirmation ask on this terminal.
    if matches!(
        cli.command,
        Command::Keys(_)
            | Command::Otk(_)
            | Command::Sign(_)
            | Command::Rooms(_)
            | Command::Passwd(_)
            | Command::Setup(_)
            | Command::Share(_)
    ) {
        selfconfirm::start(&ctx);
    }
    let result = match cli.command {
        Command::Setup(a) => setup::run(&ctx, a),
        Command::Status => agent::status(&ctx),
        Command::Lock => agent::lock(&ctx),
        Command::Unlock(a) => agent::unlock(&ctx, a),
        Command::Passwd(a) => agent::passwd(&ctx, a),
        Command::Backend(c) => agent::backend(&ctx, c),
        Command::Keys(c) => keys::run_keys(&ctx, c),
        Command::Otk(c) => keys::run_otk(&ctx, c),
        Command::Sign(a) => agent::sign(&ctx, a),
        Command::Journal(c) => agent::journal(&ctx, c),
        Command::Policy(c) => policy::run_policy(&ctx, c),
        Command::Rooms(c) => policy::run_rooms(&ctx, c),
        Command::Confirm(a) => policy::run_confirm(&ctx, a),
        Command::Bench(a) => bench::run(&ctx, a),
        Command::Pdu(cmd) => pdu::run(cmd),
        Command::Share(cmd) => share::run(&ctx, cmd),
        Command::Completions { shell } => completions(shell),
        Command::ManPage => man_page(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, no backtrace: the whole cause chain joined by ": ".
            eprintln!("cryptoidctl: error: {}", output::shown(&format!("{e:#}")));
            ExitCode::from(exit_code(&e))
        }
    }
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    // Into a buffer first: clap_complete panics on a write error.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cryptoidctl", &mut buf);
    output::write(&buf).map(|()| ExitCode::SUCCESS)
}

fn man_page() -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
    output::write(&buf).map(|()| ExitCode::SUCCESS)
}

/// Maps an error to the documented exit status.
fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Rpc(rpc)) => match rpc.kind() {
            ErrorKind::Locked => 4,
            ErrorKind::PolicyDenied
            | ErrorKind::ConfirmationDenied
            | ErrorKind::ConfirmationTimeout
            | ErrorKind::NotPermitted => 5,
            _ => 6,
        },
        Some(_) => 3,
        None => 2,
    }
}
