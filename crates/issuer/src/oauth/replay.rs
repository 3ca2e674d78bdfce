//! Single-use ids (`jti`) of client assertions and DPoP proofs.
//!
//! An id is *checked* while its assertion or proof is verified and
//! *claimed* only once the whole request has passed every other rule, so a
//! request refused for any other reason (its shape, its scope, a bad proof
//! beside a good assertion) consumes nothing. Ids are held per client
//! (the authenticated client id is the partition): one client can fill only
//! its own share, [`MAX_PER_CLIENT`], and when it has, its own new ids are
//! refused until old ones expire; the cache as a whole holds at most
//! [`MAX_ENTRIES`]. That cache is the single-use store of a folder-backed
//! issuer. Replicas on PostgreSQL also claim each id in the database
//! ([`SharedClaims`], implemented by `super::claims::PgClaims` on `jwks_issuer_replay`),
//! so a replay at another replica is refused. The composition root
//! (`crate::http`) picks which.

use std::sync::Arc;

use jwks_jose::clock::UnixTime;

pub(crate) use jwks_jose::replay::{Replay, ReplayCache};

/// How many live ids the token endpoint's cache holds at most.
pub(crate) const MAX_ENTRIES: usize = 500_000;
/// How many live ids one client may have at once.
pub(crate) const MAX_PER_CLIENT: usize = 20_000;

/// Claims of single-use ids shared between replicas (the PostgreSQL store).
/// Blocking: called on a blocking thread.
pub trait SharedClaims: Send + Sync + std::fmt::Debug {
    /// Claims `digest` until `until`: `Ok(true)` when this call claimed it,
    /// `Ok(false)` when another holds it live, `Err` when the store cannot
    /// answer.
    fn claim_once(&self, digest: &str, until: u64, now: u64) -> Result<bool, String>;
}

/// One id to claim: its partition (the client id), the id, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingId {
    /// What the id is (`private_key_jwt` or `dpop`).
    pub kind: &'static str,
    /// The id (`jti`).
    pub id: String,
    /// When it may be forgotten.
    pub until: u64,
}

/// The single-use guard of the token endpoint: this process's cache, and
/// the replicas' shared claims where there are any.
#[derive(Debug)]
pub(crate) struct SingleUse {
    local: ReplayCache,
    shared: Option<Arc<dyn SharedClaims>>,
}

impl Default for SingleUse {
    fn default() -> Self {
        SingleUse::new(ReplayCache::new(MAX_ENTRIES, MAX_PER_CLIENT), None)
    }
}

impl SingleUse {
    /// A guard with `local`, sharing claims through `shared` if given.
    pub(crate) fn new(local: ReplayCache, shared: Option<Arc<dyn SharedClaims>>) -> Self {
        SingleUse { local, shared }
    }

    /// Whether `id` was already claimed here (a check before the claim).
    pub(crate) fn is_used(&self, client: &str, id: &PendingId, now: UnixTime) -> bool {
        self.local.contains(client, &key(id), now)
    }

    /// Claims every id of `ids` for `client`, here and across replicas.
    /// When the shared store cannot answer, this replica's cache decides and
    /// a warning is logged: a replica whose database is down keeps serving,
    /// refusing the replays it saw itself.
    pub(crate) async fn claim(
        &self,
        client: &str,
        ids: &[PendingId],
        now: UnixTime,
    ) -> Result<(), (Replay, &'static str)> {
        for id in ids {
            self.local
                .check_and_insert(client, &key(id), UnixTime::from_secs(id.until), now)
                .map_err(|r| (r, id.kind))?;
        }
        let Some(shared) = self.shared.clone() else { return Ok(()) };
        for id in ids {
            // A fixed-length digest: ids are client-chosen and may be long.
            let digest = jwks_jose::b64::encode(jwks_jose::crypto::sha256(
                format!("{}\0{client}\0{}", id.kind, id.id).as_bytes(),
            ));
            let (store, until) = (shared.clone(), id.until);
            match tokio::task::spawn_blocking(move || store.claim_once(&digest, until, now.as_secs())).await {
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

    fn id(s: &str) -> PendingId {
        PendingId { kind: "dpop", id: s.into(), until: 200 }
    }

    #[tokio::test]
    async fn an_id_is_claimed_once_per_client_and_looking_records_nothing() {
        let g = SingleUse::default();
        assert!(!g.is_used("c", &id("a"), UnixTime::from_secs(10)));
        assert!(!g.is_used("c", &id("a"), UnixTime::from_secs(10)), "a look records nothing");
        assert_eq!(g.claim("c", &[id("a")], UnixTime::from_secs(10)).await, Ok(()));
        assert!(g.is_used("c", &id("a"), UnixTime::from_secs(10)));
        assert_eq!(g.claim("c", &[id("a")], UnixTime::from_secs(11)).await, Err((Replay::Seen, "dpop")));
        assert_eq!(g.claim("other", &[id("a")], UnixTime::from_secs(11)).await, Ok(()), "per client");
    }

    #[tokio::test]
    async fn one_client_cannot_fill_the_replay_cache() {
        let g = SingleUse::new(ReplayCache::new(10, 3), None);
        for i in 0..3 {
            g.claim("greedy", &[id(&i.to_string())], UnixTime::from_secs(0)).await.unwrap();
        }
        assert_eq!(g.claim("greedy", &[id("x")], UnixTime::from_secs(0)).await, Err((Replay::PartitionFull, "dpop")));
        assert_eq!(g.claim("other", &[id("x")], UnixTime::from_secs(0)).await, Ok(()));
    }
}
