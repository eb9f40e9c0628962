//! Process hardening for a process that holds secrets: no core dumps, not
//! ptrace-able or readable through /proc by same-uid processes, and memory
//! locked so secrets are not swapped out, where the system allows.

use rustix::process::{self, Resource, Rlimit};

/// What could be applied; failures are reported, not fatal, because an
/// unprivileged user may lack `RLIMIT_MEMLOCK` headroom.
#[derive(Debug, Default)]
pub struct Hardening {
    pub core_dumps_disabled: bool,
    pub non_dumpable: bool,
    pub memory_locked: bool,
    pub warnings: Vec<String>,
}

/// Lock memory only when RLIMIT_MEMLOCK allows at least this much.
const MIN_MEMLOCK: u64 = 1 << 30;

pub fn apply() -> Hardening {
    let mut h = Hardening::default();
    // Everything the agent creates is private to the user.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match process::setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) }) {
        Ok(()) => h.core_dumps_disabled = true,
        Err(e) => h.warnings.push(format!("cannot set RLIMIT_CORE to 0: {e}")),
    }
    match process::set_dumpable_behavior(process::DumpableBehavior::NotDumpable) {
        Ok(()) => h.non_dumpable = true,
        Err(e) => h.warnings.push(format!("cannot make the process non-dumpable: {e}")),
    }
    // With MCL_FUTURE every later mapping counts against RLIMIT_MEMLOCK and
    // fails once it is reached (Argon2 alone maps 64 MiB), so lock only when
    // the limit leaves ample room.
    let limit = process::getrlimit(Resource::Memlock).current;
    if limit.is_none_or(|l| l >= MIN_MEMLOCK) {
        match rustix::mm::mlockall(rustix::mm::MlockAllFlags::CURRENT | rustix::mm::MlockAllFlags::FUTURE) {
            Ok(()) => h.memory_locked = true,
            Err(e) => h.warnings.push(format!("cannot lock memory ({e}); secrets may be swapped out")),
        }
    } else {
        h.warnings.push(format!(
            "RLIMIT_MEMLOCK is {} KiB, too low to lock the agent's memory; secrets may be swapped out (raise LimitMEMLOCK= or use encrypted swap)",
            limit.unwrap_or(0) / 1024
        ));
    }
    h
}
