//! `cryptoidctl`: the command-line tool of cryptoid-agent.
//!
//! Exit codes: 0 success; 1 a check failed (`pdu verify`); 2 invalid input or
//! usage (unparseable JSON, unknown room version, unreadable key file).

mod input;
mod keyfile;
mod pdu;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit status for invalid input or usage (clap uses 2 for usage errors too).
const EXIT_INVALID: u8 = 2;

#[derive(Parser)]
#[command(name = "cryptoidctl", version, about = "Manage cryptoid-agent keys and work with Matrix PDUs", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Offline tools on PDU JSON files (no agent needed): canonical JSON,
    /// redaction, content hash, event ID, signing and verification.
    #[command(subcommand)]
    Pdu(pdu::PduCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pdu(cmd) => pdu::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, no backtrace: the whole cause chain joined by ": ".
            eprintln!("cryptoidctl: error: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}
