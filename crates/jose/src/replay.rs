//! A bounded single-use cache of ids (a DPoP proof's or a client
//! assertion's `jti`): each id is accepted once until it expires.
//!
//! Ids live in partitions (a proof key's thumbprint, an authenticated
//! client id), each bounded on its own, so that one partition cannot fill
//! the cache for the others.
//!
//! **When full.** Expired entries are purged before anything is refused.
//! A partition holding `max_per_partition` live ids refuses new ids
//! ([`Replay::PartitionFull`]) until some of them expire; the other
//! partitions are not affected. Only when the whole cache holds `max_total`
//! live ids is every new id refused ([`Replay::Full`]). Either way the cache
//! fails closed: it never forgets a live id to make room, since that would
//! let a replay through.
//!
//! ```
//! use jwks_jose::{clock::UnixTime, replay::{Replay, ReplayCache}};
//!
//! let cache = ReplayCache::new(1000, 2);
//! let (now, until) = (UnixTime::from_secs(100), UnixTime::from_secs(160));
//! assert_eq!(cache.check_and_insert("key-a", "jti-1", until, now), Ok(()));
//! assert_eq!(cache.check_and_insert("key-a", "jti-1", until, now), Err(Replay::Seen));
//! assert_eq!(cache.check_and_insert("key-a", "jti-2", until, now), Ok(()));
//! assert_eq!(cache.check_and_insert("key-a", "jti-3", until, now), Err(Replay::PartitionFull));
//! assert_eq!(cache.check_and_insert("key-b", "jti-3", until, now), Ok(()), "other partitions go on");
//! ```

use std::{collections::HashMap, fmt, sync::Mutex};

use crate::clock::UnixTime;

/// Why [`ReplayCache::check_and_insert`] refused an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Replay {
    /// The id was recorded before, in the same partition, and has not expired.
    Seen,
    /// The id's partition holds its limit of live ids.
    PartitionFull,
    /// The whole cache holds its limit of live ids.
    Full,
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Replay::Seen => "the id was already used",
            Replay::PartitionFull => "too many live ids for this partition",
            Replay::Full => "the replay cache is full",
        })
    }
}

/// A bounded, partitioned single-use cache; see the [module](self) docs.
pub struct ReplayCache {
    max_total: usize,
    max_per_partition: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    partitions: HashMap<Box<str>, Partition>,
    total: usize,
}

#[derive(Default)]
struct Partition {
    ids: HashMap<Box<str>, UnixTime>,
    /// No id of this partition expires before this (a lower bound), so a
    /// purge before it would find nothing.
    next_expiry: UnixTime,
}

impl Partition {
    /// Drops the ids expired at `now`; answers how many went.
    fn purge(&mut self, now: UnixTime) -> usize {
        if now < self.next_expiry {
            return 0;
        }
        let before = self.ids.len();
        self.ids.retain(|_, until| *until > now);
        self.next_expiry = self.ids.values().min().copied().unwrap_or(UnixTime::MAX);
        before - self.ids.len()
    }
}

impl fmt::Debug for ReplayCache {
    /// Sizes only, never the ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (partitions, total) = self.inner.lock().map_or((0, 0), |i| (i.partitions.len(), i.total));
        f.debug_struct("ReplayCache")
            .field("max_total", &self.max_total)
            .field("max_per_partition", &self.max_per_partition)
            .field("partitions", &partitions)
            .field("total", &total)
            .finish()
    }
}

impl ReplayCache {
    /// The default limit of live ids in the whole cache: 100 000.
    pub const DEFAULT_MAX_TOTAL: usize = 100_000;
    /// The default limit of live ids per partition: 10 000.
    pub const DEFAULT_MAX_PER_PARTITION: usize = 10_000;

    /// A cache holding at most `max_total` live ids, and at most
    /// `max_per_partition` in any one partition.
    pub fn new(max_total: usize, max_per_partition: usize) -> Self {
        ReplayCache { max_total, max_per_partition, inner: Mutex::new(Inner::default()) }
    }

    /// The limits given to [`ReplayCache::new`]: `(max_total, max_per_partition)`.
    pub fn limits(&self) -> (usize, usize) {
        (self.max_total, self.max_per_partition)
    }

    /// How many ids are held (live or not yet purged).
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.total)
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `id` in `partition` until `until`, or refuses it: [`Replay::Seen`]
    /// if it is recorded there and not expired at `now`, else
    /// [`Replay::PartitionFull`] or [`Replay::Full`] when a limit is
    /// reached even after purging expired ids. An id whose `until` is not
    /// after `now` is accepted without being recorded (it is expired
    /// already). A poisoned lock refuses everything ([`Replay::Full`]).
    pub fn check_and_insert(&self, partition: &str, id: &str, until: UnixTime, now: UnixTime) -> Result<(), Replay> {
        let Ok(mut inner) = self.inner.lock() else { return Err(Replay::Full) };
        let inner = &mut *inner;
        let existing = inner.partitions.get(partition).and_then(|p| p.ids.get(id)).copied();
        if existing.is_some_and(|t| t > now) {
            return Err(Replay::Seen);
        }
        if until <= now {
            return Ok(());
        }
        if existing.is_none() {
            // Room is needed: purge the partition, then (if still needed)
            // the whole cache.
            if let Some(p) = inner.partitions.get_mut(partition)
                && p.ids.len() >= self.max_per_partition
            {
                inner.total -= p.purge(now);
            }
            if inner.partitions.get(partition).is_some_and(|p| p.ids.len() >= self.max_per_partition) {
                return Err(Replay::PartitionFull);
            }
            if inner.total >= self.max_total {
                let mut freed = 0;
                for p in inner.partitions.values_mut() {
                    freed += p.purge(now);
                }
                inner.total -= freed;
                inner.partitions.retain(|_, p| !p.ids.is_empty());
                if inner.total >= self.max_total {
                    return Err(Replay::Full);
                }
            }
            if self.max_per_partition == 0 {
                return Err(Replay::PartitionFull);
            }
            inner.total += 1;
        }
        let p = inner
            .partitions
            .entry(partition.into())
            .or_insert_with(|| Partition { ids: HashMap::new(), next_expiry: UnixTime::MAX });
        p.ids.insert(id.into(), until);
        p.next_expiry = p.next_expiry.min(until);
        Ok(())
    }
}

impl Default for ReplayCache {
    /// [`ReplayCache::DEFAULT_MAX_TOTAL`] ids, [`ReplayCache::DEFAULT_MAX_PER_PARTITION`] per partition.
    fn default() -> Self {
        ReplayCache::new(Self::DEFAULT_MAX_TOTAL, Self::DEFAULT_MAX_PER_PARTITION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> UnixTime {
        UnixTime::from_secs(s)
    }

    #[test]
    fn ids_are_single_use_until_they_expire() {
        let c = ReplayCache::new(10, 10);
        assert_eq!(c.check_and_insert("p", "a", t(100), t(10)), Ok(()));
        assert_eq!(c.check_and_insert("p", "a", t(200), t(99)), Err(Replay::Seen));
        assert_eq!(c.check_and_insert("q", "a", t(100), t(10)), Ok(()), "partitions are separate");
        assert_eq!(c.check_and_insert("p", "a", t(200), t(100)), Ok(()), "expired at its `until`");
        assert_eq!(c.len(), 2, "the expired entry was replaced, not added");
        assert_eq!(c.check_and_insert("p", "old", t(50), t(50)), Ok(()));
        assert_eq!(c.len(), 2, "an id already expired is not recorded");
    }

    #[test]
    fn one_partition_cannot_fill_the_cache() {
        let c = ReplayCache::new(5, 2);
        assert_eq!(c.check_and_insert("noisy", "1", t(100), t(0)), Ok(()));
        assert_eq!(c.check_and_insert("noisy", "2", t(100), t(0)), Ok(()));
        for i in 3..50 {
            assert_eq!(c.check_and_insert("noisy", &i.to_string(), t(100), t(0)), Err(Replay::PartitionFull));
        }
        assert_eq!(c.len(), 2);
        for q in ["a", "b", "c"] {
            assert_eq!(c.check_and_insert(q, "1", t(100), t(0)), Ok(()), "{q}");
        }
        assert_eq!(c.check_and_insert("d", "1", t(100), t(0)), Err(Replay::Full), "the total bound holds");
        // Expired ids are purged before refusing.
        assert_eq!(c.check_and_insert("noisy", "3", t(200), t(100)), Ok(()));
        assert_eq!(c.check_and_insert("d", "1", t(200), t(100)), Ok(()));
        assert_eq!(c.len(), 5, "expired ids of other partitions are purged only when room is needed");
        assert_eq!(c.check_and_insert("e", "1", t(200), t(100)), Ok(()), "now they are");
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn a_full_cache_fails_closed_and_never_forgets_a_live_id() {
        let c = ReplayCache::new(2, 2);
        assert_eq!(c.check_and_insert("p", "a", t(100), t(0)), Ok(()));
        assert_eq!(c.check_and_insert("p", "b", t(300), t(0)), Ok(()));
        assert_eq!(c.check_and_insert("q", "c", t(300), t(50)), Err(Replay::Full));
        assert_eq!(c.check_and_insert("p", "a", t(300), t(50)), Err(Replay::Seen), "still remembered");
        assert_eq!(c.check_and_insert("q", "c", t(300), t(100)), Ok(()), "room once `a` expired");
        assert_eq!(c.check_and_insert("p", "b", t(400), t(100)), Err(Replay::Seen));
        assert_eq!(ReplayCache::new(5, 0).check_and_insert("p", "a", t(9), t(0)), Err(Replay::PartitionFull));
    }
}
