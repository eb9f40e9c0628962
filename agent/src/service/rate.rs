//! Signing rate per room and per client executable over a sliding window:
//! reserved before the policy decides, given back when nothing is signed.

use super::{ClientInfo, Service};
use crate::policy::RateFacts;
use crate::sync::MutexExt;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Signatures per room and per client executable in the sliding window.
#[derive(Default)]
pub(super) struct RateTracker {
    rooms: HashMap<String, VecDeque<Duration>>,
    clients: HashMap<String, VecDeque<Duration>>,
}

fn prune(q: &mut VecDeque<Duration>, now: Duration, window: Duration) -> u32 {
    while q.front().is_some_and(|t| now.saturating_sub(*t) >= window) {
        q.pop_front();
    }
    q.len() as u32
}

/// Rate-window entries reserved for a request; given back on drop unless
/// kept (the request signed).
pub(super) struct Reservation<'a> {
    svc: &'a Service,
    room: String,
    client: String,
    at: Duration,
    n: usize,
    pub(super) facts: RateFacts,
    kept: bool,
}

impl Reservation<'_> {
    pub(super) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut r = self.svc.rate.locked();
        let give_back = |q: Option<&mut VecDeque<Duration>>, n: usize, at: Duration| {
            if let Some(q) = q {
                for _ in 0..n {
                    match q.iter().rposition(|t| *t == at) {
                        Some(i) => drop(q.remove(i)),
                        None => break,
                    }
                }
            }
        };
        give_back(r.rooms.get_mut(&self.room), self.n, self.at);
        give_back(r.clients.get_mut(&self.client), self.n, self.at);
    }
}

pub(super) fn exe_of(client: &ClientInfo) -> &str {
    client.exe.as_deref().unwrap_or("(unknown executable)")
}

impl Service {
    /// Reserves `n` signatures in the rate windows of `room` and the client
    /// before the policy decides, in one step under the lock: concurrent
    /// requests cannot all see the count below the limit. The counts before
    /// the reservation are what the policy judges. Dropped without
    /// [`Reservation::keep`] (denied, declined, failed), it is given back.
    ///
    /// A queue keeps at most `limit` times, and none without a limit:
    /// memory stays bounded at any signing rate (a soak at 10,000
    /// signatures/s had these queues holding a minute of them, ~30 MiB).
    pub(super) fn rate_reserve(&self, client: &ClientInfo, room: &str, n: usize) -> Reservation<'_> {
        let limits = &self.config.policy.rate;
        let window = Duration::from_secs(limits.window_secs);
        let now = self.clock.monotonic();
        let mut r = self.rate.locked();
        let take = |q: &mut VecDeque<Duration>, limit: u32| {
            let before = prune(q, now, window);
            for _ in 0..n {
                q.push_back(now);
            }
            while q.len() > limit as usize {
                q.pop_front();
            }
            before
        };
        let mut facts = RateFacts::default();
        if limits.per_room > 0 {
            facts.room = take(r.rooms.entry(room.to_owned()).or_default(), limits.per_room);
        }
        if limits.per_client > 0 {
            facts.client = take(r.clients.entry(exe_of(client).to_owned()).or_default(), limits.per_client);
        }
        Reservation {
            svc: self,
            room: room.to_owned(),
            client: exe_of(client).to_owned(),
            at: now,
            n,
            facts,
            kept: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use std::sync::Arc;

    #[test]
    fn rate_queues_stay_bounded_at_any_signing_rate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.policy.rate.per_room = 5;
        config.policy.rate.per_client = 0;
        let svc = Service::open(dir.path(), config, true, Arc::new(ManualClock::new(1))).expect("service");
        let client = ClientInfo { uid: 0, pid: None, exe: Some("/usr/bin/x".into()) };
        for _ in 0..10_000 {
            svc.rate_reserve(&client, "!r:x", 1).keep();
        }
        // The limit is still seen as reached, from at most `limit` entries.
        assert_eq!(svc.rate_reserve(&client, "!r:x", 0).facts.room, 5);
        let r = svc.rate.lock().expect("lock");
        assert_eq!(r.rooms["!r:x"].len(), 5);
        assert!(r.clients.is_empty(), "no limit, nothing recorded");
    }

    #[test]
    fn rate_reservations_are_taken_before_signing_and_given_back_on_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.policy.rate.per_room = 3;
        let svc = Service::open(dir.path(), config, true, Arc::new(ManualClock::new(1))).expect("service");
        let client = ClientInfo { uid: 0, pid: None, exe: Some("/usr/bin/x".into()) };
        // Three requests in flight at once each see the ones before them.
        let held: Vec<_> = (0..3).map(|_| svc.rate_reserve(&client, "!r:x", 1)).collect();
        assert_eq!(held.iter().map(|r| r.facts.room).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(svc.rate_reserve(&client, "!r:x", 0).facts.room, 3, "a fourth is over the limit");
        drop(held); // none signed: all given back
        assert_eq!(svc.rate_reserve(&client, "!r:x", 0).facts.room, 0);
    }
}
