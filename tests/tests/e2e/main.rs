//! End-to-end tests: the real binaries, spawned on temp dirs.

mod cli_pdu;
