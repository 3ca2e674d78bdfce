//! Time, injected: a [`Clock`] trait with the system clock and a manual
//! clock for tests, and [`UnixTime`], whole seconds since the Unix epoch
//! (the NumericDate of RFC 7519 §2) with checked and saturating arithmetic
//! only.
//!
//! This is the one module of the crate that reads the system clock
//! (`clippy.toml` forbids it elsewhere). Core functions take `now` as a
//! parameter; the edge of each program reads it once from its `Clock`.
//!
//! ```
//! use std::time::Duration;
//! use jwks_jose::clock::{Clock, ManualClock, UnixTime};
//!
//! let clock = ManualClock::at(UnixTime::from_secs(1_700_000_000));
//! clock.advance(Duration::from_secs(61));
//! assert_eq!(clock.unix_now(), UnixTime::from_secs(1_700_000_061));
//! assert_eq!(UnixTime::MAX.saturating_add_secs(1), UnixTime::MAX);
//! assert_eq!(UnixTime::from_secs(5).checked_sub_secs(6), None);
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, Waker},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Whole seconds since the Unix epoch (1970-01-01T00:00:00Z, UTC).
///
/// Arithmetic is checked (`checked_*`, answering `None` on overflow or
/// underflow) or saturating (`saturating_*`); there is no wrapping and no
/// operator that could panic. Serialized as a plain JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The epoch itself (0).
    pub const EPOCH: UnixTime = UnixTime(0);
    /// The latest representable time.
    pub const MAX: UnixTime = UnixTime(u64::MAX);

    /// `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        UnixTime(secs)
    }

    /// Seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// The whole seconds of `t` since the epoch; times before the epoch
    /// saturate to [`UnixTime::EPOCH`].
    pub fn from_system_time(t: SystemTime) -> Self {
        UnixTime(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    /// This time as a [`SystemTime`], saturating at the latest time the
    /// platform can represent.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH.checked_add(Duration::from_secs(self.0)).unwrap_or_else(|| {
            // Halve until it fits: SystemTime's range is platform-defined.
            let mut secs = self.0;
            loop {
                secs /= 2;
                if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
                    return t;
                }
            }
        })
    }

    /// `self + secs`, or `None` on overflow.
    pub const fn checked_add_secs(self, secs: u64) -> Option<Self> {
        match self.0.checked_add(secs) {
            Some(v) => Some(UnixTime(v)),
            None => None,
        }
    }

    /// `self - secs`, or `None` before the epoch.
    pub const fn checked_sub_secs(self, secs: u64) -> Option<Self> {
        match self.0.checked_sub(secs) {
            Some(v) => Some(UnixTime(v)),
            None => None,
        }
    }

    /// `self + secs`, at most [`UnixTime::MAX`].
    pub const fn saturating_add_secs(self, secs: u64) -> Self {
        UnixTime(self.0.saturating_add(secs))
    }

    /// `self - secs`, at least [`UnixTime::EPOCH`].
    pub const fn saturating_sub_secs(self, secs: u64) -> Self {
        UnixTime(self.0.saturating_sub(secs))
    }

    /// `self + d` in whole seconds (sub-second parts dropped), or `None`
    /// on overflow.
    pub const fn checked_add(self, d: Duration) -> Option<Self> {
        self.checked_add_secs(d.as_secs())
    }

    /// `self - d` in whole seconds, or `None` before the epoch.
    pub const fn checked_sub(self, d: Duration) -> Option<Self> {
        self.checked_sub_secs(d.as_secs())
    }

    /// `self + d` in whole seconds, saturating.
    pub const fn saturating_add(self, d: Duration) -> Self {
        self.saturating_add_secs(d.as_secs())
    }

    /// `self - d` in whole seconds, saturating at the epoch.
    pub const fn saturating_sub(self, d: Duration) -> Self {
        self.saturating_sub_secs(d.as_secs())
    }

    /// The time from `earlier` to `self`, or `None` if `earlier` is later.
    pub const fn checked_duration_since(self, earlier: UnixTime) -> Option<Duration> {
        match self.0.checked_sub(earlier.0) {
            Some(s) => Some(Duration::from_secs(s)),
            None => None,
        }
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: UnixTime) -> Duration {
        Duration::from_secs(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for UnixTime {
    /// The number of seconds, as in a JWT claim.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<UnixTime> for u64 {
    fn from(t: UnixTime) -> u64 {
        t.0
    }
}

/// A source of the current wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time in whole seconds.
    fn unix_now(&self) -> UnixTime {
        UnixTime::from_system_time(self.now())
    }
}

/// The operating system's clock (the default everywhere).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The current time of the operating system.
    #[allow(clippy::disallowed_methods)] // The one place that reads the system clock.
    pub fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemClock::now(self)
    }
}

/// A clock that only moves when told to, for tests; futures from
/// [`ManualClock::until`] complete once it passes their deadline. It needs
/// no async runtime.
///
/// Cloning gives another handle to the same clock.
#[derive(Clone)]
pub struct ManualClock {
    shared: Arc<Mutex<Manual>>,
}

#[derive(Debug)]
struct Manual {
    now: SystemTime,
    /// Wakers of pending [`Until`] futures, with their deadlines.
    waiting: Vec<(SystemTime, Waker)>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.lock().now).finish()
    }
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        ManualClock { shared: Arc::new(Mutex::new(Manual { now: start, waiting: Vec::new() })) }
    }

    /// A clock standing at `start`, in whole seconds.
    pub fn at(start: UnixTime) -> Self {
        ManualClock::new(start.to_system_time())
    }

    /// The time it stands at.
    pub fn now(&self) -> SystemTime {
        self.lock().now
    }

    /// Moves the clock forward by `by` (saturating) and wakes due futures.
    pub fn advance(&self, by: Duration) {
        let mut m = self.lock();
        m.now = m.now.checked_add(by).unwrap_or(m.now);
        Self::wake_due(m);
    }

    /// Sets the clock to `to` (which may be in the past) and wakes due
    /// futures.
    pub fn set(&self, to: SystemTime) {
        let mut m = self.lock();
        m.now = to;
        Self::wake_due(m);
    }

    /// A future that completes once the clock has reached `deadline`.
    pub fn until(&self, deadline: SystemTime) -> Until {
        Until { clock: self.clone(), deadline }
    }

    fn wake_due(mut m: MutexGuard<'_, Manual>) {
        let now = m.now;
        let (due, waiting): (Vec<_>, Vec<_>) = m.waiting.drain(..).partition(|(d, _)| *d <= now);
        m.waiting = waiting;
        drop(m);
        for (_, waker) in due {
            waker.wake();
        }
    }

    /// The state; a poisoned lock still holds a consistent time (every
    /// update is a single assignment), so it is used as is.
    fn lock(&self) -> MutexGuard<'_, Manual> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        ManualClock::now(self)
    }
}

/// The future of [`ManualClock::until`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Until {
    clock: ManualClock,
    deadline: SystemTime,
}

impl Future for Until {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut m = self.clock.lock();
        if m.now >= self.deadline {
            return Poll::Ready(());
        }
        let waker = cx.waker();
        match m.waiting.iter_mut().find(|(d, w)| *d == self.deadline && w.will_wake(waker)) {
            Some(_) => {}
            None => m.waiting.push((self.deadline, waker.clone())),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_arithmetic_is_checked_or_saturating() {
        let t = UnixTime::from_secs(100);
        assert_eq!(t.checked_add_secs(5), Some(UnixTime::from_secs(105)));
        assert_eq!(UnixTime::MAX.checked_add_secs(1), None);
        assert_eq!(UnixTime::MAX.saturating_add(Duration::from_secs(9)), UnixTime::MAX);
        assert_eq!(t.checked_sub(Duration::from_secs(101)), None);
        assert_eq!(t.saturating_sub_secs(101), UnixTime::EPOCH);
        assert_eq!(t.saturating_add(Duration::from_millis(1999)), UnixTime::from_secs(101), "whole seconds");
        assert_eq!(t.checked_duration_since(UnixTime::from_secs(40)), Some(Duration::from_secs(60)));
        assert_eq!(UnixTime::from_secs(40).checked_duration_since(t), None);
        assert_eq!(UnixTime::from_secs(40).saturating_duration_since(t), Duration::ZERO);
        assert_eq!(t.to_string(), "100");
        assert_eq!(serde_json::to_string(&t).unwrap(), "100");
        assert_eq!(serde_json::from_str::<UnixTime>("7").unwrap(), UnixTime::from_secs(7));
    }

    #[test]
    fn system_times_convert_and_saturate() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_900);
        assert_eq!(UnixTime::from_system_time(t), UnixTime::from_secs(1_700_000_000));
        assert_eq!(UnixTime::from_system_time(UNIX_EPOCH - Duration::from_secs(5)), UnixTime::EPOCH);
        assert_eq!(UnixTime::from_secs(42).to_system_time(), UNIX_EPOCH + Duration::from_secs(42));
        assert!(UnixTime::MAX.to_system_time() > UNIX_EPOCH, "saturates, never panics");
        assert!(SystemClock.unix_now() > UnixTime::from_secs(1_600_000_000));
    }

    #[test]
    fn manual_clock_moves_only_when_told_and_wakes_due_futures() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let clock = ManualClock::at(UnixTime::from_secs(1000));
        let other_handle = clock.clone();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut until = Box::pin(clock.until(UnixTime::from_secs(1010).to_system_time()));
        assert!(until.as_mut().poll(&mut cx).is_pending());
        assert!(until.as_mut().poll(&mut cx).is_pending(), "polled twice, registered once");
        other_handle.advance(Duration::from_secs(9));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert!(until.as_mut().poll(&mut cx).is_pending());
        other_handle.advance(Duration::from_secs(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        assert!(until.as_mut().poll(&mut cx).is_ready());
        assert_eq!(clock.unix_now(), UnixTime::from_secs(1010));
        clock.set(UnixTime::from_secs(5).to_system_time());
        assert_eq!(Clock::unix_now(&clock), UnixTime::from_secs(5), "set may go back");
    }
}
