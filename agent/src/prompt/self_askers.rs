//! Clients that ask the person themselves, on their own terminal
//! (`confirm.ask_here`, sent by `cryptoidctl` before its request). For
//! their questions the agent starts no pinentry on their terminal or
//! display: two askers on one terminal split the keystrokes between them,
//! and the person's first answer goes nowhere.
//!
//! A process is known by its pid and its start time (`/proc/<pid>/stat`),
//! so a pid reused by another process is not taken for the one that
//! registered. A process can only register itself (the pid comes from the
//! connection's credentials), and only where clients may answer at all
//! (`socket_confirm = true`).

use std::collections::HashMap;

/// Most processes remembered; dead ones are pruned first.
const MAX: usize = 1024;

#[derive(Debug, Default)]
pub struct SelfAskers {
    started: HashMap<i32, u64>,
}

impl SelfAskers {
    /// Registers `pid`; false if its start time cannot be read (gone).
    pub fn register(&mut self, pid: i32) -> bool {
        let Some(start) = start_time(pid) else { return false };
        if self.started.len() >= MAX {
            self.started.retain(|p, s| start_time(*p) == Some(*s));
        }
        if self.started.len() >= MAX {
            return false;
        }
        self.started.insert(pid, start);
        true
    }

    /// Whether `pid` registered and is still the same process.
    pub fn asks_itself(&mut self, pid: Option<i32>) -> bool {
        let Some(pid) = pid else { return false };
        let Some(&start) = self.started.get(&pid) else { return false };
        if start_time(pid) == Some(start) {
            return true;
        }
        self.started.remove(&pid);
        false
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
        let mut s = SelfAskers::default();
        assert!(!s.asks_itself(Some(pid)), "not before it registers");
        assert!(s.register(pid));
        assert!(s.asks_itself(Some(pid)));
        assert!(!s.asks_itself(None));
        let _ = child.kill();
        let _ = child.wait();
        // Its pid may be reused, but not with its start time.
        assert!(!s.asks_itself(Some(pid)), "a dead process no longer asks");
    }

    #[test]
    fn the_start_time_is_read_past_a_name_with_spaces_and_parentheses() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(start_of(stat), Some(987654));
        assert!(start_time(std::process::id() as i32).is_some());
        assert_eq!(start_time(-1), None);
    }
}
