//! Client secrets: argon2id PHC hashes accepted only within a documented
//! parameter range, and their verification on a bounded number of workers
//! that reuse their memory, so that a burst of guesses can neither exhaust
//! the server's memory nor queue without limit.
//!
//! The range: argon2id, version 19, memory `m` from 7 MiB to 256 MiB,
//! passes `t` from 1 to 10, lanes `p` from 1 to 8, and `m * t` at least
//! 35,840 KiB-passes — the weakest line of OWASP's table (m=19456 t=2,
//! m=12288 t=3, m=9216 t=4, m=7168 t=5, m=47104 t=1 all meet it, m=19456
//! t=1 does not); salts of 8 to 64 bytes, outputs of 16 to 64 bytes.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use argon2::{Argon2, Block, Params, PasswordHash};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::{OAuthError, error::ThrottleReason};
use jwks_jose::crypto;

/// The smallest `m` accepted, in KiB.
pub(crate) const MIN_MEMORY_KIB: u32 = 7 * 1024;
/// The largest `m` accepted, in KiB (256 MiB).
pub(crate) const MAX_MEMORY_KIB: u32 = 256 * 1024;
/// The smallest `m * t` accepted (OWASP's weakest recommended line).
pub(crate) const MIN_WORK: u64 = 35_840;
/// The largest `t` accepted.
pub(crate) const MAX_PASSES: u32 = 10;
/// The largest `p` accepted.
pub(crate) const MAX_LANES: u32 = 8;

/// A parsed argon2id hash within the accepted range.
#[derive(Clone)]
pub struct SecretHash {
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretHash(m={}, t={}, p={})", self.params.m_cost(), self.params.t_cost(), self.params.p_cost())
    }
}

impl SecretHash {
    /// Parses a PHC string, refusing anything outside the range above.
    pub fn parse(phc: &str) -> Result<Self, String> {
        let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC hash string ({e})"))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(format!("algorithm `{}` is not argon2id", parsed.algorithm));
        }
        if parsed.version.is_some_and(|v| v != 0x13) {
            return Err("only argon2 version 19 (v=19) is accepted".into());
        }
        let params = Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters ({e})"))?;
        let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
        if !(MIN_MEMORY_KIB..=MAX_MEMORY_KIB).contains(&m)
            || !(1..=MAX_PASSES).contains(&t)
            || !(1..=MAX_LANES).contains(&p)
            || u64::from(m) * u64::from(t) < MIN_WORK
        {
            return Err(format!(
                "argon2 parameters m={m} t={t} p={p} are outside the accepted range: m {MIN_MEMORY_KIB} to \
                 {MAX_MEMORY_KIB} KiB, t 1 to {MAX_PASSES}, p 1 to {MAX_LANES}, m*t at least {MIN_WORK} (OWASP); \
                 `jwks-issuer hash-secret` makes m=19456 t=2 p=1"
            ));
        }
        let mut salt = [0u8; 64];
        let salt = parsed
            .salt
            .ok_or("the hash has no salt")?
            .decode_b64(&mut salt)
            .map_err(|_| "the salt is not 8 to 64 bytes of base64")?
            .to_vec();
        if salt.len() < 8 {
            return Err("the salt is shorter than 8 bytes".into());
        }
        let hash = parsed.hash.ok_or("the PHC string has no hash")?.as_bytes().to_vec();
        if !(16..=64).contains(&hash.len()) {
            return Err("the hash output must be 16 to 64 bytes".into());
        }
        Ok(SecretHash { params, salt, hash })
    }

    /// A hash with the same parameters and shape that no secret matches, so
    /// that checking an unknown client costs what checking a known one does.
    pub fn decoy_like(&self) -> Result<Self, jwks_jose::Error> {
        let mut salt = vec![0u8; self.salt.len()];
        crypto::fill_random(&mut salt)?;
        let mut hash = vec![0u8; self.hash.len()];
        crypto::fill_random(&mut hash)?;
        Ok(SecretHash { params: self.params.clone(), salt, hash })
    }

    /// `(m, t, p)`.
    pub fn cost(&self) -> (u32, u32, u32) {
        (self.params.m_cost(), self.params.t_cost(), self.params.p_cost())
    }

    /// Whether `secret` matches, computing in `memory` (grown as needed and
    /// kept for the next call).
    fn verify(&self, secret: &[u8], memory: &mut Vec<Block>) -> bool {
        let blocks = self.params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        let Some(memory) = memory.get_mut(..blocks) else { return false };
        let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, self.params.clone());
        let mut out = vec![0u8; self.hash.len()];
        argon.hash_password_into_with_memory(secret, &self.salt, &mut out, memory).is_ok()
            && bool::from(out.ct_eq(&self.hash))
    }
}

/// Hashes a secret as an argon2id PHC string with the crate's default
/// parameters (m=19456 KiB, t=2, p=1: OWASP's recommendation).
pub(crate) fn hash_secret(secret: &str) -> Result<String, jwks_jose::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    crypto::fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| jwks_jose::Error::Crypto("salt encoding failed"))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| jwks_jose::Error::Crypto("argon2 hashing failed"))
}

/// How long a request waits for a free worker before it is answered 503.
pub(crate) const QUEUE_WAIT: Duration = Duration::from_millis(750);

/// The bounded pool that runs argon2: at most `workers` checks at once,
/// each on a blocking thread with memory kept from its last check; at most
/// `workers` checks running or waiting per source (a 429 past that); a
/// wait for a worker longer than [`QUEUE_WAIT`] is a 503.
#[derive(Debug)]
pub(crate) struct SecretWorkers {
    permits: Arc<Semaphore>,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    per_source: u32,
    in_progress: Mutex<HashMap<Option<IpAddr>, u32>>,
}

impl SecretWorkers {
    /// A pool of `workers` (at least 1).
    pub(crate) fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        SecretWorkers {
            permits: Arc::new(Semaphore::new(workers)),
            memory: Arc::new(Mutex::new(Vec::new())),
            per_source: u32::try_from(workers).unwrap_or(u32::MAX),
            in_progress: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `secret` against `hash` on a worker.
    pub(crate) async fn verify(
        &self,
        source: Option<IpAddr>,
        hash: Arc<SecretHash>,
        secret: String,
    ) -> Result<bool, OAuthError> {
        let _slot = self.enter(source)?;
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| OAuthError::Busy { retry_after: 1 })?
            .map_err(|_| OAuthError::Server)?;
        let pool = self.memory.clone();
        let mut memory = pool.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
        let checked = tokio::task::spawn_blocking(move || {
            let ok = hash.verify(secret.as_bytes(), &mut memory);
            if let Ok(mut p) = pool.lock() {
                p.push(memory);
            }
            drop(permit);
            ok
        })
        .await;
        checked.map_err(|e| {
            tracing::error!(error = %e, "secret check task failed");
            OAuthError::Server
        })
    }

    fn enter(&self, source: Option<IpAddr>) -> Result<InProgress<'_>, OAuthError> {
        let Ok(mut map) = self.in_progress.lock() else { return Err(OAuthError::Server) };
        let n = map.entry(source).or_default();
        if *n >= self.per_source {
            return Err(OAuthError::Throttled { retry_after: 1, reason: ThrottleReason::InProgress });
        }
        *n += 1;
        Ok(InProgress { workers: self, source })
    }
}

struct InProgress<'a> {
    workers: &'a SecretWorkers,
    source: Option<IpAddr>,
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.workers.in_progress.lock()
            && let Some(n) = map.get_mut(&self.source)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phc(m: u32, t: u32, p: u32) -> String {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let params = Params::new(m, t, p, None).unwrap();
        let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        argon.hash_password(b"right", &salt).unwrap().to_string()
    }

    #[test]
    fn argon2_parameters_outside_the_documented_range_are_refused() {
        assert!(SecretHash::parse(&phc(19456, 2, 1)).is_ok(), "OWASP's recommendation");
        assert!(SecretHash::parse(&phc(7168, 5, 1)).is_ok());
        for (m, t, p) in [(256, 1, 1), (19456, 1, 1), (7168, 4, 1), (19456, 11, 1), (19456, 2, 9)] {
            let e = SecretHash::parse(&phc(m, t, p)).unwrap_err();
            assert!(e.contains("outside the accepted range"), "{m} {t} {p}: {e}");
        }
        // Absurd parameters never reach argon2 (4 GiB, 2^32-1 passes).
        let absurd = "$argon2id$v=19$m=4194304,t=4294967295,p=1$MDEyMzQ1Njc4OWFiY2RlZg$AAAAAAAAAAAAAAAAAAAAAA";
        assert!(SecretHash::parse(absurd).is_err());
        let argon2i = phc(19456, 2, 1).replace("argon2id", "argon2i");
        assert!(SecretHash::parse(&argon2i).unwrap_err().contains("not argon2id"));
    }

    #[test]
    fn verification_reuses_memory_and_matches_argon2() {
        let h = SecretHash::parse(&phc(7168, 5, 1)).unwrap();
        let mut memory = Vec::new();
        assert!(h.verify(b"right", &mut memory));
        assert_eq!(memory.len(), 7168);
        assert!(!h.verify(b"wrong", &mut memory));
        let decoy = h.decoy_like().unwrap();
        assert_eq!(decoy.cost(), h.cost());
        assert!(!decoy.verify(b"right", &mut memory));
    }

    #[tokio::test]
    async fn one_source_holds_at_most_workers_checks() {
        let w = SecretWorkers::new(1);
        let src = Some(IpAddr::from([10, 0, 0, 1]));
        let held = w.enter(src).unwrap();
        assert!(matches!(w.enter(src), Err(OAuthError::Throttled { reason: ThrottleReason::InProgress, .. })));
        assert!(w.enter(Some(IpAddr::from([10, 0, 0, 2]))).is_ok(), "other sources are not affected");
        drop(held);
        assert!(w.enter(src).is_ok());
    }
}
