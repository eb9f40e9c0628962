//! Clients that ask the person themselves, on their own terminal
//! (`confirm.ask_here`, sent by `cryptoidctl` before its request). For
//! their questions the agent starts no pinentry on their terminal or
//! display: two askers on one terminal split the keystrokes between them,
//! and the person's first answer goes nowhere.
//!
//! A process is known by its pid, its start time (`/proc/<pid>/stat`) and
//! its executable: a pid reused by another process is not taken for the one
//! that registered, and neither is another program it execs (same pid and
//! start time), which would otherwise get no dialog and not ask either. A
//! process can only register itself (the pid comes from the connection's
//! credentials, and its executable then must still be the one seen when it
//! connected), and only where clients may answer at all (`socket_confirm =
//! true`).

use crate::service::ClientInfo;
use std::collections::HashMap;

/// Most processes remembered; dead ones are pruned first.
const MAX: usize = 1024;

#[derive(Debug, Default)]
pub struct SelfAskers {
    /// pid → (start time, executable).
    started: HashMap<i32, (u64, String)>,
}

impl SelfAskers {
    /// Registers `pid`, whose executable was `exe` when it connected;
    /// false if it is gone or no longer runs `exe`.
    pub fn register(&mut self, pid: i32, exe: Option<&str>) -> bool {
        let (Some(start), Some(exe)) = (start_time(pid), exe) else { return false };
        if ClientInfo::exe_of_pid(pid).as_deref() != Some(exe) {
            return false;
        }
        if self.started.len() >= MAX {
            self.started.retain(|p, (s, _)| start_time(*p) == Some(*s));
        }
        if self.started.len() >= MAX {
            return false;
        }
        self.started.insert(pid, (start, exe.to_owned()));
        true
    }

    /// Whether `pid`, running `exe`, registered and is still that process.
    pub fn asks_itself(&mut self, pid: Option<i32>, exe: Option<&str>) -> bool {
        let Some(pid) = pid else { return false };
        let Some((start, registered)) = self.started.get(&pid) else { return false };
        if start_time(pid) != Some(*start) {
            self.started.remove(&pid);
            return false;
        }
        exe == Some(registered.as_str())
    }
}

/// Field 22 of `/proc/<pid>/stat`: the process's start time in clock ticks
/// since boot. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted after its last `)`.
fn start_time(pid: i32) -> Option<u64> {
    start_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn start_of(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so start time is the 20th.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_process_asks_itself_until_it_is_gone() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = child.id() as i32;
        let exe = ClientInfo::exe_of_pid(pid).expect("exe");
        let mut s = SelfAskers::default();
        assert!(!s.asks_itself(Some(pid), Some(&exe)), "not before it registers");
        assert!(!s.register(pid, Some("/usr/bin/another")), "not under another executable");
        assert!(s.register(pid, Some(&exe)));
        assert!(s.asks_itself(Some(pid), Some(&exe)));
        assert!(!s.asks_itself(None, Some(&exe)));
        // The same process after an exec is another program.
        assert!(!s.asks_itself(Some(pid), Some("/usr/bin/another")));
        let _ = child.kill();
        let _ = child.wait();
        // Its pid may be reused, but not with its start time.
        assert!(!s.asks_itself(Some(pid), Some(&exe)), "a dead process no longer asks");
    }

    #[test]
    fn the_start_time_is_read_past_a_name_with_spaces_and_parentheses() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(start_of(stat), Some(987654));
        assert!(start_time(std::process::id() as i32).is_some());
        assert_eq!(start_time(-1), None);
    }
}
