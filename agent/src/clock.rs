//! The agent's clocks, injectable so that time-dependent rules are tested
//! without sleeping (the pattern of rustls' `TimeProvider`): wall-clock time
//! for `origin_server_ts`, a monotonic clock for TTLs and rate windows.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Wall-clock time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Monotonic time since an arbitrary origin; never goes back.
    fn monotonic(&self) -> Duration;
}

/// The system clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    fn monotonic(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock {
    wall_ms: std::sync::atomic::AtomicU64,
    mono_ms: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    pub fn new(wall_ms: u64) -> ManualClock {
        ManualClock { wall_ms: wall_ms.into(), mono_ms: 0.into() }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, by: Duration) {
        use std::sync::atomic::Ordering::SeqCst;
        self.wall_ms.fetch_add(by.as_millis() as u64, SeqCst);
        self.mono_ms.fetch_add(by.as_millis() as u64, SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.wall_ms.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.mono_ms.load(std::sync::atomic::Ordering::SeqCst))
    }
}
