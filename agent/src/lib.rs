//! # cryptoid-agent
//!
//! The key agent daemon. Until the agent issue lands the library is empty and
//! the binary only reports its version.

/// The agent's version, as reported by `agent.hello` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
