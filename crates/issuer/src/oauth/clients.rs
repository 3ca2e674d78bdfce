//! Registered clients and secret verification.
//!
//! Secrets are stored as argon2id hashes. So that a correct secret does not
//! cost an argon2 computation per request, a verified secret is remembered
//! for [`VERIFIED_TTL`] as a salted SHA-256 digest and compared in constant
//! time; a wrong secret never enters that record.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use subtle::ConstantTimeEq;

use crate::{
    clock::UnixTime,
    config::{ClientAuth, ClientConfig},
};
use jwks_jose::crypto;

/// How long a verified secret is remembered, in seconds.
pub const VERIFIED_TTL: u64 = 300;

/// The registered clients.
#[derive(Debug)]
pub struct Clients {
    by_id: HashMap<String, Arc<ClientConfig>>,
    verified: Mutex<HashMap<String, Verified>>,
    salt: [u8; 32],
    dummy_hash: String,
}

#[derive(Debug, Clone, Copy)]
struct Verified {
    digest: [u8; 32],
    until: UnixTime,
}

/// The outcome of checking a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretCheck {
    /// Correct, from the record of verified secrets (no argon2 work).
    Remembered,
    /// Not remembered: argon2 must decide (call [`Clients::verify_slow`]
    /// off the executor).
    NeedsArgon2,
}

impl Clients {
    /// Indexes the configured clients.
    pub fn new(clients: &[ClientConfig]) -> Result<Self, jwks_jose::Error> {
        let mut salt = [0u8; 32];
        crypto::fill_random(&mut salt)?;
        // A hash of a random secret, so unknown clients cost the same argon2
        // work as a wrong secret (no enumeration by timing).
        let mut random = [0u8; 32];
        crypto::fill_random(&mut random)?;
        let dummy_hash = hash_secret(&jwks_jose::b64::encode(random))?;
        Ok(Clients {
            by_id: clients.iter().map(|c| (c.id.clone(), Arc::new(c.clone()))).collect(),
            verified: Mutex::new(HashMap::new()),
            salt,
            dummy_hash,
        })
    }

    /// The client with `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<ClientConfig>> {
        self.by_id.get(id)
    }

    /// How many clients are registered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no client is registered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
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

    /// The slow path: argon2id verification (tens of milliseconds; call it
    /// on a blocking thread). An unknown id is checked against a dummy hash
    /// so it takes as long as a wrong secret. Remembers a correct secret.
    pub fn verify_slow(&self, id: &str, secret: &str, now: UnixTime) -> bool {
        let hash = match self.by_id.get(id).map(|c| &c.auth) {
            Some(ClientAuth::Secret { hash }) => hash.as_str(),
            // Unknown clients, and clients that authenticate with keys,
            // spend the same argon2 work on a hash no secret matches.
            _ => self.dummy_hash.as_str(),
        };
        let ok = PasswordHash::new(hash)
            .map(|parsed| Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
            && matches!(self.by_id.get(id).map(|c| &c.auth), Some(ClientAuth::Secret { .. }));
        if let (true, Ok(mut map)) = (ok, self.verified.lock()) {
            map.insert(id.to_string(), Verified { digest: self.digest(secret), until: now + VERIFIED_TTL });
        }
        ok
    }
}

/// Hashes a secret as an argon2id PHC string with the crate's default
/// parameters (m=19456 KiB, t=2, p=1: OWASP's recommendation).
pub fn hash_secret(secret: &str) -> Result<String, jwks_jose::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    crypto::fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| jwks_jose::Error::Crypto("salt encoding failed"))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| jwks_jose::Error::Crypto("argon2 hashing failed"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use jwks_jose::Algorithm;

    fn clients() -> Clients {
        Clients::new(&[ClientConfig {
            id: "svc".into(),
            auth: ClientAuth::Secret { hash: hash_secret("right").unwrap() },
            scopes: vec![],
            audiences: vec![],
            algorithm: Algorithm::ES256,
            ttl: Duration::from_secs(60),
            dpop: crate::config::DpopMode::Allowed,
        }])
        .unwrap()
    }

    #[test]
    fn a_correct_secret_is_remembered_and_a_wrong_one_never_is() {
        let c = clients();
        assert_eq!(c.check_remembered("svc", "right", 100), SecretCheck::NeedsArgon2);
        assert!(!c.verify_slow("svc", "wrong", 100));
        assert_eq!(c.check_remembered("svc", "wrong", 100), SecretCheck::NeedsArgon2);
        assert!(c.verify_slow("svc", "right", 100));
        assert_eq!(c.check_remembered("svc", "right", 101), SecretCheck::Remembered);
        assert_eq!(c.check_remembered("svc", "wrong", 101), SecretCheck::NeedsArgon2);
        assert_eq!(c.check_remembered("svc", "right", 100 + VERIFIED_TTL), SecretCheck::NeedsArgon2, "expires");
    }

    #[test]
    fn unknown_clients_never_verify() {
        let c = clients();
        assert!(!c.verify_slow("nobody", "right", 0));
        assert!(!c.verify_slow("nobody", "", 0));
    }
}
