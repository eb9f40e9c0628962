//! # cryptoid-agent
//!
//! A per-user key agent for Matrix cryptoIDs: it keeps the keys, checks
//! every PDU it is asked to sign, journals every decision, and answers on a
//! UNIX socket (JSON-RPC 2.0 lines).
//!
//! ## Layout
//!
//! | module | holds |
//! |---|---|
//! | [`server`] | start-up: paths, hardening, listener, the accept loop and shutdown |
//! | [`transport`] | the UNIX socket (framing, peer credentials, timeouts) and D-Bus (`org.cryptoid.Agent1`) |
//! | [`rpc`] | the method table: each method's class, journaling and where it runs ([`rpc::table`]), and the one generic path that enforces them |
//! | [`service`] | the one implementation of every method, including the hard checks on PDUs |
//! | [`policy`] | the policy engine: pure decision functions over PDUs, batches and clients |
//! | [`prompt`] | confirmations: askpass, the pending list, remembered approvals, escaping what is shown |
//! | [`rooms`] | the room view (depths, anchor, authorization state, power levels) for anti-replay |
//! | [`keys`] | key records on disk and in memory |
//! | [`keystore`] | backends that hold secrets: [`keystore::soft`], [`keystore::pkcs11`], YubiKey PIV |
//! | [`journal`] | the hash-chained audit journal |
//! | [`config`] | `config.toml` |
//! | [`fsutil`], [`clock`], [`hardening`], [`error`], [`sync`] | durable writes, the injectable clock, process hardening, the errors (one enum per concern, one mapping to the wire), locks without poisoning |
//!
//! Data flows one way: transport → rpc → service → policy → keystore →
//! journal. A request enters through a transport, meets its class's client
//! rule in `rpc`, is carried out by the `service`, which asks the pure
//! `policy` for a decision and a `keystore` backend for a signature; the
//! outcome is journaled before the transport answers.

pub mod clock;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod hardening;
pub mod journal;
pub mod keys;
pub mod keystore;
pub mod policy;
pub mod prompt;
pub mod rooms;
pub mod rpc;
pub mod server;
pub mod service;
pub mod sync;
pub mod transport;

/// The agent's version, as reported by `agent.hello` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
