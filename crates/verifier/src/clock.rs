//! Time, injected: every time-based rule (claim validation, cache expiry,
//! refresh scheduling, the refetch cooldown) reads the [`Clock`] given to the
//! builder, so tests run at a fixed time and move it with [`ManualClock`]
//! instead of sleeping.
//!
//! [`SystemClock`], [`ManualClock`] and [`UnixTime`] are `jwks-jose`'s
//! (`jwks_jose::clock`), shared with the issuer; this module adds the
//! timers the background refresh needs, on tokio for the system clock.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    time::{Duration, SystemTime},
};

pub use jwks_jose::clock::{ManualClock, SystemClock, UnixTime};

/// A boxed future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of wall-clock time and of timers on the same time line.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// A future that completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: SystemTime) -> Sleep;
}

/// Seconds since the Unix epoch (saturating at 0 for earlier times).
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    UnixTime::from_system_time(t).as_secs()
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemClock::now(self)
    }

    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        let wait = deadline.duration_since(SystemClock::now(self)).unwrap_or(Duration::ZERO);
        // Wake at least once a minute so a wall-clock jump is noticed; the
        // callers re-check the time after every wake-up.
        Box::pin(tokio::time::sleep(wait.min(Duration::from_secs(60))))
    }
}

/// Timers fire when [`ManualClock::advance`] or [`ManualClock::set`] passes
/// their deadline.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use jwks_verifier::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// clock.advance(Duration::from_secs(61));
/// assert_eq!(Clock::now(&clock), UNIX_EPOCH + Duration::from_secs(1_700_000_061));
/// ```
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        ManualClock::now(self)
    }

    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        Box::pin(self.until(deadline))
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[tokio::test]
    async fn manual_timers_fire_only_when_the_clock_passes_their_deadline() {
        let start = UNIX_EPOCH + Duration::from_secs(1000);
        let clock = ManualClock::new(start);
        let mut sleep = clock.sleep_until(start + Duration::from_secs(10));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_secs(9));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        let handle = clock.clone();
        tokio::spawn(async move { handle.advance(Duration::from_secs(1)) });
        tokio::time::timeout(Duration::from_secs(5), sleep).await.unwrap();
        assert_eq!(unix_seconds(Clock::now(&clock)), 1010);
    }
}
