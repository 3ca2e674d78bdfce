//! A single-use cache for assertion and proof ids (`jti`): each id is
//! accepted once until it expires. Bounded: when full of live entries it
//! refuses new ones (fails closed) rather than forgetting any.

use std::{collections::HashMap, sync::Mutex};

use crate::clock::UnixTime;

/// How many live ids the cache holds at most.
pub const MAX_ENTRIES: usize = 100_000;

/// Why an id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The id was used before and has not expired.
    Seen,
    /// The cache is full of live ids.
    Full,
}

/// Ids seen, each with the instant it may be forgotten.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<String, UnixTime>>,
}

impl ReplayCache {
    /// Records `id` (already namespaced by the caller, e.g. `client\0jti`)
    /// until `until`; refuses it if it is already there.
    pub fn check_and_insert(&self, id: &str, until: UnixTime, now: UnixTime) -> Result<(), Replay> {
        let Ok(mut seen) = self.seen.lock() else { return Err(Replay::Full) };
        if seen.get(id).is_some_and(|&t| t > now) {
            return Err(Replay::Seen);
        }
        if seen.len() >= MAX_ENTRIES {
            seen.retain(|_, &mut t| t > now);
            if seen.len() >= MAX_ENTRIES {
                return Err(Replay::Full);
            }
        }
        seen.insert(id.to_string(), until);
        Ok(())
    }
}

/// Claims `id` (as recorded in a local [`ReplayCache`] a moment ago) in
/// the key store, when the store shares claims between replicas
/// (PostgreSQL): a replay sent to another replica is refused too. The
/// claim runs on a blocking thread. When the store cannot answer, the
/// local cache's verdict stands and a warning is logged: a replica whose
/// database is down keeps serving, refusing the replays it saw itself.
pub(crate) async fn claim_across_replicas(
    keyring: &std::sync::Arc<crate::keys::Keyring>,
    id: &str,
    until: UnixTime,
    now: UnixTime,
) -> Result<(), Replay> {
    if !keyring.store().shares_claims() {
        return Ok(());
    }
    // A fixed-length digest: ids are client-chosen and may be long.
    let digest = jwks_jose::b64::encode(jwks_jose::crypto::sha256(id.as_bytes()));
    let ring = std::sync::Arc::clone(keyring);
    let claimed = tokio::task::spawn_blocking(move || ring.store().claim_once(&digest, until, now)).await;
    match claimed {
        Ok(None) | Ok(Some(Ok(true))) => Ok(()),
        Ok(Some(Ok(false))) => Err(Replay::Seen),
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "single-use id not shared with the other replicas; this replica's cache decided");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "single-use id claim task failed; this replica's cache decided");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_accepted_once_until_it_expires() {
        let c = ReplayCache::default();
        assert_eq!(c.check_and_insert("a", 100, 10), Ok(()));
        assert_eq!(c.check_and_insert("a", 100, 99), Err(Replay::Seen));
        assert_eq!(c.check_and_insert("b", 100, 99), Ok(()));
        assert_eq!(c.check_and_insert("a", 200, 100), Ok(()), "forgotten once expired");
    }
}
