//! The injected clock. Every time-based decision of the issuer reads the
//! time from a [`Clock`], so tests can run a year of rotation in
//! milliseconds with a [`ManualClock`].

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// Seconds since the Unix epoch.
pub type UnixTime = u64;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time in whole seconds since the Unix epoch.
    fn now(&self) -> UnixTime;

    /// The current time since the Unix epoch with sub-second precision,
    /// for timers that must fire at an instant (the key scheduler).
    /// Defaults to [`Clock::now`] in whole seconds.
    fn precise(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.now())
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn precise(&self) -> std::time::Duration {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `t`.
    pub fn new(t: UnixTime) -> Self {
        ManualClock(Arc::new(AtomicU64::new(t)))
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: UnixTime) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Blocks the current thread for `d`: used only to wait for a lock held by
/// another process, never to wait for time-based behaviour.
pub fn pause(d: std::time::Duration) {
    #[allow(clippy::disallowed_methods)] // a real wait for another process
    std::thread::sleep(d);
}

/// A deadline on the monotonic clock, for waits on another process (a
/// store lock): the injected wall clock may stand still (tests) or jump
/// (NTP), and neither may stretch or shorten a wait.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(std::time::Instant);

impl Deadline {
    /// The deadline `d` from now.
    #[allow(clippy::disallowed_methods)] // the monotonic clock, for a real wait
    pub fn after(d: std::time::Duration) -> Self {
        let now = std::time::Instant::now();
        Deadline(now.checked_add(d).unwrap_or(now))
    }

    /// Whether it has passed.
    #[allow(clippy::disallowed_methods)] // the monotonic clock, for a real wait
    pub fn passed(&self) -> bool {
        std::time::Instant::now() >= self.0
    }
}
