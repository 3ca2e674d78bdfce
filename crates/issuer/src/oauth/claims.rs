//! Single-use ids shared by replicas: the `jwks_issuer_replay` table of
//! the key store's database (migrated with the key store's schema).

use std::sync::atomic::{AtomicU64, Ordering};

use super::replay::SharedClaims;
use crate::{
    Error,
    keys::postgres::{PgUrl, Slot},
};

/// How often expired claims are purged (by whichever replica claims next).
const PURGE_EVERY: u64 = 60;

/// Claims of single-use ids in PostgreSQL, on a connection of their own.
#[derive(Debug)]
pub struct PgClaims {
    connection: Slot,
    last_purge: AtomicU64,
}

impl PgClaims {
    /// Claims in the database at `url` (whose schema the key store
    /// migrated); connects on first use.
    pub fn new(url: &PgUrl) -> Self {
        PgClaims { connection: Slot::new(url), last_purge: AtomicU64::new(0) }
    }

    /// Claims `id` (a digest: short, fixed length) until `until`: `true`
    /// the first time, `false` while an earlier claim is live; an expired
    /// claim is taken over.
    pub fn claim(&self, id: &str, until: u64, now: u64) -> Result<bool, Error> {
        if now.saturating_sub(self.last_purge.load(Ordering::Relaxed)) >= PURGE_EVERY {
            self.last_purge.store(now, Ordering::Relaxed);
            match self.purge(now) {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired single-use claims purged"),
                Err(e) => tracing::warn!(error = %e, "purging expired single-use claims failed"),
            }
        }
        let (until, now) = (i64::try_from(until).unwrap_or(i64::MAX), i64::try_from(now).unwrap_or(i64::MAX));
        self.connection.with("claiming a single-use id", |c| {
            let rows = c.query(
                "INSERT INTO jwks_issuer_replay (id, expires) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET expires = excluded.expires
                 WHERE jwks_issuer_replay.expires <= $3
                 RETURNING 1",
                &[&id, &until, &now],
            )?;
            Ok(rows.len() == 1)
        })
    }

    /// Forgets the claims that expired by `now`; returns how many.
    pub fn purge(&self, now: u64) -> Result<u64, Error> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        self.connection.with("purging expired single-use ids", |c| {
            c.execute("DELETE FROM jwks_issuer_replay WHERE expires <= $1", &[&now])
        })
    }
}

impl SharedClaims for PgClaims {
    fn claim_once(&self, digest: &str, until: u64, now: u64) -> Result<bool, String> {
        self.claim(digest, until, now).map_err(|e| e.to_string())
    }
}
