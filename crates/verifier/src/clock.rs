//! Time, injected: every time-based rule (claim validation, cache expiry,
//! refresh scheduling, the refetch cooldown) reads the [`Clock`] given to the
//! builder, so tests run at a fixed time and move it with [`ManualClock`]
//! instead of sleeping.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::watch;

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
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The operating system's clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one place that reads the system clock.
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        let wait = deadline.duration_since(self.now()).unwrap_or(Duration::ZERO);
        // Wake at least once a minute so a wall-clock jump is noticed; the
        // callers re-check the time after every wake-up.
        Box::pin(tokio::time::sleep(wait.min(Duration::from_secs(60))))
    }
}

/// A clock that only moves when told to; timers waiting on it fire when
/// [`ManualClock::advance`] or [`ManualClock::set`] passes their deadline.
///
/// Cloning gives another handle to the same clock.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use jwks_verifier::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// clock.advance(Duration::from_secs(61));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_700_000_061));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    tx: Arc<watch::Sender<SystemTime>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&*self.tx.borrow()).finish()
    }
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        ManualClock { tx: Arc::new(watch::Sender::new(start)) }
    }

    /// Moves the clock forward by `by` (saturating) and wakes due timers.
    pub fn advance(&self, by: Duration) {
        self.tx.send_modify(|t| *t = t.checked_add(by).unwrap_or(*t));
    }

    /// Sets the clock to `to` (which may be in the past) and wakes due timers.
    pub fn set(&self, to: SystemTime) {
        self.tx.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.tx.borrow()
    }

    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        let mut rx = self.tx.subscribe();
        Box::pin(async move {
            if rx.wait_for(|t| *t >= deadline).await.is_err() {
                // The sender lives as long as any handle; if it is gone,
                // time never moves again.
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
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
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleep).await.unwrap();
        assert_eq!(unix_seconds(clock.now()), 1010);
    }
}
