//! The issuer's side of time. The wall clock is `jwks-jose`'s
//! ([`jwks_jose::clock`]: the [`Clock`] trait, `SystemClock`, `ManualClock`
//! and `UnixTime`), shared with the verifier; every time-based decision
//! reads it through a [`SharedClock`], so tests can run a year of rotation
//! in milliseconds with a `ManualClock`. This module adds what only the
//! issuer needs: the handle, the sub-second reading of the key scheduler,
//! and real waits on another process ([`pause`], [`Deadline`]).

use std::{sync::Arc, time::Duration};

use jwks_jose::clock::Clock;

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The time since the Unix epoch with sub-second precision, for timers
/// that must fire at an instant (the key scheduler); zero before 1970.
pub fn precise(clock: &dyn Clock) -> Duration {
    clock.now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

/// Blocks the current thread for `d`: used only to wait for a lock held by
/// another process, never to wait for time-based behaviour.
pub fn pause(d: Duration) {
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
    pub fn after(d: Duration) -> Self {
        let now = std::time::Instant::now();
        Deadline(now.checked_add(d).unwrap_or(now))
    }

    /// Whether it has passed.
    #[allow(clippy::disallowed_methods)] // the monotonic clock, for a real wait
    pub fn passed(&self) -> bool {
        std::time::Instant::now() >= self.0
    }
}
