//! Single-use ids (`jti`) of client assertions and DPoP proofs.
//!
//! An id is *checked* while its assertion or proof is verified and
//! *claimed* only once the whole request has passed every other rule, so a
//! request refused for any other reason (its shape, its scope, a bad proof
//! beside a good assertion) consumes nothing. Ids are held per client
//! (the authenticated client id is the partition): one client can fill only
//! its own share, [`MAX_PER_CLIENT`], and when it has, its own new ids are
//! refused until old ones expire; the cache as a whole holds at most
//! [`MAX_ENTRIES`]. Replicas on PostgreSQL also claim each id in the
//! database ([`SharedClaims`]), so a replay at another replica is refused.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::clock::UnixTime;

/// How many live ids the cache holds at most.
pub const MAX_ENTRIES: usize = 500_000;
/// How many live ids one client may have at once.
pub const MAX_PER_CLIENT: usize = 20_000;

/// Why an id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The id was used before and has not expired.
    Seen,
    /// This client already has [`MAX_PER_CLIENT`] live ids.
    PartitionFull,
    /// The cache is full of live ids.
    Full,
}

#[derive(Debug, Default)]
struct Entries {
    by_partition: HashMap<String, HashMap<String, UnixTime>>,
    total: usize,
}

/// Ids seen, per partition, each with the instant it may be forgotten.
#[derive(Debug)]
pub struct ReplayCache {
    max_total: usize,
    max_per_partition: usize,
    entries: Mutex<Entries>,
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(MAX_ENTRIES, MAX_PER_CLIENT)
    }
}

impl ReplayCache {
    /// A cache of at most `max_total` live ids, `max_per_partition` each.
    pub fn new(max_total: usize, max_per_partition: usize) -> Self {
        ReplayCache { max_total, max_per_partition, entries: Mutex::new(Entries::default()) }
    }

    /// Whether `id` is held, live, in `partition`.
    pub fn is_used(&self, partition: &str, id: &str, now: UnixTime) -> bool {
        self.entries
            .lock()
            .map(|e| e.by_partition.get(partition).and_then(|p| p.get(id)).is_some_and(|&t| t > now))
            .unwrap_or(true)
    }

    /// Records `id` in `partition` until `until`; refuses it if it is there.
    pub fn check_and_insert(&self, partition: &str, id: &str, until: UnixTime, now: UnixTime) -> Result<(), Replay> {
        let Ok(mut e) = self.entries.lock() else { return Err(Replay::Full) };
        let e = &mut *e;
        let part = e.by_partition.entry(partition.to_owned()).or_default();
        if part.get(id).is_some_and(|&t| t > now) {
            return Err(Replay::Seen);
        }
        if part.len() >= self.max_per_partition {
            let before = part.len();
            part.retain(|_, &mut t| t > now);
            e.total -= before - part.len();
            if part.len() >= self.max_per_partition {
                return Err(Replay::PartitionFull);
            }
        }
        if e.total >= self.max_total {
            let mut total = 0;
            for p in e.by_partition.values_mut() {
                p.retain(|_, &mut t| t > now);
                total += p.len();
            }
            e.by_partition.retain(|_, p| !p.is_empty());
            e.total = total;
            if e.total >= self.max_total {
                return Err(Replay::Full);
            }
        }
        let part = e.by_partition.entry(partition.to_owned()).or_default();
        if part.insert(id.to_owned(), until).is_none() {
            e.total += 1;
        }
        Ok(())
    }
}

/// Claims of single-use ids shared between replicas (the PostgreSQL store).
/// Blocking: called on a blocking thread.
pub trait SharedClaims: Send + Sync + std::fmt::Debug {
    /// Claims `digest` until `until`: `Ok(true)` when this call claimed it,
    /// `Ok(false)` when another holds it live, `Err` when the store cannot
    /// answer.
    fn claim_once(&self, digest: &str, until: UnixTime, now: UnixTime) -> Result<bool, String>;
}

/// One id to claim: its partition (the client id), the id, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingId {
    /// What the id is (`private_key_jwt` or `dpop`).
    pub kind: &'static str,
    /// The id (`jti`).
    pub id: String,
    /// When it may be forgotten.
    pub until: UnixTime,
}

/// The single-use guard of the token endpoint: this process's cache, and
/// the replicas' shared claims where there are any.
#[derive(Debug, Default)]
pub struct SingleUse {
    local: ReplayCache,
    shared: Option<Arc<dyn SharedClaims>>,
}

impl SingleUse {
    /// A guard with `local`, sharing claims through `shared` if given.
    pub fn new(local: ReplayCache, shared: Option<Arc<dyn SharedClaims>>) -> Self {
        SingleUse { local, shared }
    }

    /// Whether `id` was already claimed here (a check before the claim).
    pub fn is_used(&self, client: &str, id: &PendingId, now: UnixTime) -> bool {
        self.local.is_used(client, &key(id), now)
    }

    /// Claims every id of `ids` for `client`, here and across replicas.
    /// When the shared store cannot answer, this replica's cache decides and
    /// a warning is logged: a replica whose database is down keeps serving,
    /// refusing the replays it saw itself.
    pub async fn claim(&self, client: &str, ids: &[PendingId], now: UnixTime) -> Result<(), (Replay, &'static str)> {
        for id in ids {
            self.local.check_and_insert(client, &key(id), id.until, now).map_err(|r| (r, id.kind))?;
        }
        let Some(shared) = self.shared.clone() else { return Ok(()) };
        for id in ids {
            // A fixed-length digest: ids are client-chosen and may be long.
            let digest = jwks_jose::b64::encode(jwks_jose::crypto::sha256(
                format!("{}\0{client}\0{}", id.kind, id.id).as_bytes(),
            ));
            let (store, until) = (shared.clone(), id.until);
            match tokio::task::spawn_blocking(move || store.claim_once(&digest, until, now)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Err((Replay::Seen, id.kind)),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "single-use id not shared with the other replicas; this replica's cache decided");
                }
                Err(e) => tracing::warn!(error = %e, "single-use id claim task failed; this replica's cache decided"),
            }
        }
        Ok(())
    }
}

fn key(id: &PendingId) -> String {
    format!("{}\0{}", id.kind, id.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_accepted_once_until_it_expires() {
        let c = ReplayCache::default();
        assert_eq!(c.check_and_insert("c", "a", 100, 10), Ok(()));
        assert_eq!(c.check_and_insert("c", "a", 100, 99), Err(Replay::Seen));
        assert_eq!(c.check_and_insert("other", "a", 100, 99), Ok(()), "partitions are apart");
        assert_eq!(c.check_and_insert("c", "b", 100, 99), Ok(()));
        assert_eq!(c.check_and_insert("c", "a", 200, 100), Ok(()), "forgotten once expired");
    }

    #[test]
    fn one_client_cannot_fill_the_replay_cache() {
        let c = ReplayCache::new(10, 3);
        for i in 0..3 {
            c.check_and_insert("greedy", &i.to_string(), 100, 0).unwrap();
        }
        assert_eq!(c.check_and_insert("greedy", "x", 100, 0), Err(Replay::PartitionFull));
        for i in 0..3 {
            c.check_and_insert(&format!("other{i}"), "x", 100, 0).unwrap();
        }
        // The greedy client's ids expire and it may go on.
        assert_eq!(c.check_and_insert("greedy", "x", 200, 100), Ok(()));
    }

    #[test]
    fn the_whole_cache_is_bounded_and_purges_expired_ids_first() {
        let c = ReplayCache::new(4, 4);
        for i in 0..4 {
            c.check_and_insert(&format!("p{i}"), "x", 50, 0).unwrap();
        }
        assert_eq!(c.check_and_insert("p9", "x", 100, 10), Err(Replay::Full));
        assert_eq!(c.check_and_insert("p9", "x", 100, 60), Ok(()), "expired ids make room");
    }
}
