//! The registered clients, and the record of secrets verified recently.
//!
//! Secrets are stored as argon2id hashes (`secret`). So that a
//! correct secret does not cost an argon2 computation per request, a
//! verified secret is remembered for [`VERIFIED_TTL`] as a salted SHA-256
//! digest and compared in constant time; a wrong secret never enters that
//! record.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use subtle::ConstantTimeEq;

use super::{
    client::{ClientAuth, ClientConfig},
    secret::SecretHash,
};
use jwks_jose::{clock::UnixTime, crypto};

/// How long a verified secret is remembered, in seconds.
pub const VERIFIED_TTL: u64 = 300;

/// The registered clients.
#[derive(Debug)]
pub struct Clients {
    by_id: HashMap<String, Registered>,
    verified: Mutex<HashMap<String, Verified>>,
    salt: [u8; 32],
    decoy: Arc<SecretHash>,
}

#[derive(Debug)]
struct Registered {
    config: Arc<ClientConfig>,
    hash: Option<Arc<SecretHash>>,
}

#[derive(Debug, Clone, Copy)]
struct Verified {
    digest: [u8; 32],
    until: UnixTime,
}

/// The outcome of the fast secret check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretCheck {
    /// Correct, from the record of verified secrets (no argon2 work).
    Remembered,
    /// Not remembered: argon2 must decide.
    NeedsArgon2,
}

impl Clients {
    /// Indexes the configured clients. The decoy hash that unknown clients
    /// are checked against has the parameters most common among the
    /// clients' hashes (the heaviest on a tie; `hash-secret`'s without any),
    /// so an unknown id costs what a known one does.
    pub fn new(clients: &[ClientConfig]) -> Result<Self, crate::Error> {
        let mut salt = [0u8; 32];
        crypto::fill_random(&mut salt)?;
        let mut by_id = HashMap::with_capacity(clients.len());
        for c in clients {
            let hash = match &c.auth {
                ClientAuth::Secret { hash } => Some(Arc::new(
                    SecretHash::parse(hash).map_err(|e| crate::Error::Usage(format!("client `{}`: {e}", c.id)))?,
                )),
                _ => None,
            };
            by_id.insert(c.id.clone(), Registered { config: Arc::new(c.clone()), hash });
        }
        let mut costs: HashMap<(u32, u32, u32), (usize, Arc<SecretHash>)> = HashMap::new();
        for h in by_id.values().filter_map(|r| r.hash.as_ref()) {
            costs.entry(h.cost()).or_insert_with(|| (0, h.clone())).0 += 1;
        }
        let model = match costs.into_values().max_by_key(|(n, h)| (*n, h.cost())) {
            Some((_, h)) => h,
            None => {
                let mut random = [0u8; 32];
                crypto::fill_random(&mut random)?;
                let phc = super::secret::hash_secret(&jwks_jose::b64::encode(random))?;
                Arc::new(SecretHash::parse(&phc).map_err(crate::Error::Usage)?)
            }
        };
        let decoy = Arc::new(model.decoy_like()?);
        Ok(Clients { by_id, verified: Mutex::new(HashMap::new()), salt, decoy })
    }

    /// The client with `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<ClientConfig>> {
        self.by_id.get(id).map(|r| &r.config)
    }

    /// How many clients are registered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no client is registered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The hash to check a secret for `id` against: the client's own, or
    /// the decoy for an unknown id or a client that authenticates with keys.
    pub fn hash_for(&self, id: &str) -> (Arc<SecretHash>, bool) {
        match self.by_id.get(id).and_then(|r| r.hash.clone()) {
            Some(h) => (h, true),
            None => (self.decoy.clone(), false),
        }
    }

    fn digest(&self, secret: &str) -> [u8; 32] {
        let mut input = Vec::with_capacity(32 + secret.len());
        input.extend_from_slice(&self.salt);
        input.extend_from_slice(secret.as_bytes());
        crypto::sha256(&input)
    }

    /// The fast path: whether `secret` was verified for `id` recently.
    pub fn check_remembered(&self, id: &str, secret: &str, now: UnixTime) -> SecretCheck {
        let digest = self.digest(secret);
        let Ok(map) = self.verified.lock() else { return SecretCheck::NeedsArgon2 };
        match map.get(id) {
            Some(v) if now < v.until && bool::from(v.digest.ct_eq(&digest)) => SecretCheck::Remembered,
            _ => SecretCheck::NeedsArgon2,
        }
    }

    /// Records that argon2 verified `secret` for `id`.
    pub fn remember(&self, id: &str, secret: &str, now: UnixTime) {
        if !self.by_id.contains_key(id) {
            return;
        }
        let digest = self.digest(secret);
        if let Ok(mut map) = self.verified.lock() {
            map.insert(id.to_string(), Verified { digest, until: now.saturating_add_secs(VERIFIED_TTL) });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::oauth::client::DpopMode;
    use jwks_jose::Algorithm;

    fn clients() -> Clients {
        Clients::new(&[ClientConfig {
            id: "svc".into(),
            auth: ClientAuth::Secret { hash: super::super::secret::hash_secret("right").unwrap() },
            scopes: vec![],
            audiences: vec![],
            algorithm: Algorithm::ES256,
            ttl: Duration::from_secs(60),
            dpop: DpopMode::Allowed,
            dpop_nonce: None,
        }])
        .unwrap()
    }

    #[test]
    fn a_remembered_secret_expires_and_a_wrong_one_never_matches() {
        let c = clients();
        assert_eq!(c.check_remembered("svc", "right", UnixTime::from_secs(100)), SecretCheck::NeedsArgon2);
        c.remember("svc", "right", UnixTime::from_secs(100));
        assert_eq!(c.check_remembered("svc", "right", UnixTime::from_secs(101)), SecretCheck::Remembered);
        assert_eq!(c.check_remembered("svc", "wrong", UnixTime::from_secs(101)), SecretCheck::NeedsArgon2);
        assert_eq!(
            c.check_remembered("svc", "right", UnixTime::from_secs(100 + VERIFIED_TTL)),
            SecretCheck::NeedsArgon2,
            "expires"
        );
        c.remember("nobody", "x", UnixTime::from_secs(100));
        assert_eq!(c.check_remembered("nobody", "x", UnixTime::from_secs(101)), SecretCheck::NeedsArgon2);
    }

    #[test]
    fn unknown_client_path_costs_the_same_as_configured_hashes() {
        let c = clients();
        let (own, known) = c.hash_for("svc");
        let (decoy, unknown_known) = c.hash_for("nobody");
        assert!(known && !unknown_known);
        assert_eq!(own.cost(), decoy.cost());
    }
}
