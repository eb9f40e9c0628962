//! End-to-end tests: the real binaries, spawned on temp dirs, talked to over
//! the real socket.

mod agent_keys;
mod agent_lifecycle;
mod agent_sign;
mod attacks;
mod attacks_round3;
mod attacks_verified;
mod bad_input;
mod cli_agent;
mod cli_pdu;
mod crash;
mod dbus;
mod desktop;
mod first_minute;
mod full_disk;
mod load;
mod pkcs11;
mod policy;
mod share;
mod tpm;
mod yubikey;
