//! Remembered approvals: (client executable, room, event type, scope) →
//! until when, on the monotonic clock (a changed wall clock cannot stretch
//! them). The scope pins the exact change for state events and redactions
//! (target and new value): approving `ban @a` does not approve `ban @b`,
//! and approving one power levels change does not approve another.

use std::collections::HashMap;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub exe: String,
    pub room: String,
    pub event_type: String,
    pub scope: Option<String>,
}

#[derive(Debug, Default)]
pub struct Approvals {
    until: HashMap<Key, Duration>,
}

impl Approvals {
    pub fn remember(&mut self, key: Key, now: Duration, ttl: Duration) {
        self.until.insert(key, now + ttl);
    }

    /// Whether an approval covers `key` at `now`; expired ones are dropped.
    pub fn covers(&mut self, key: &Key, now: Duration) -> bool {
        match self.until.get(key) {
            Some(&t) if now < t => true,
            Some(_) => {
                self.until.remove(key);
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn approvals_expire_on_the_monotonic_clock() {
        let clock = ManualClock::new(0);
        let mut a = Approvals::default();
        let k = Key {
            exe: "/usr/bin/c".into(),
            room: "!r:x".into(),
            event_type: "m.room.power_levels".into(),
            scope: Some("A".into()),
        };
        let other_room = Key { room: "!s:x".into(), ..k.clone() };
        let other_change = Key { scope: Some("B".into()), ..k.clone() };
        assert!(!a.covers(&k, clock.monotonic()));
        a.remember(k.clone(), clock.monotonic(), Duration::from_secs(300));
        clock.advance(Duration::from_secs(299));
        assert!(a.covers(&k, clock.monotonic()));
        assert!(!a.covers(&other_room, clock.monotonic()));
        assert!(!a.covers(&other_change, clock.monotonic()), "another change of the same type");
        clock.advance(Duration::from_secs(1));
        assert!(!a.covers(&k, clock.monotonic()), "expired at the TTL");
    }
}
