//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, RFC 7521
//! §4.2): the client signs a short-lived JWT with its own key instead of
//! sending a secret. Its public keys come from the config (`jwks`,
//! `jwks_file`) or from its `jwks_uri`, fetched and cached by the project's
//! own verifier crate with the same refresh, cooldown and stale rules.

use std::{
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jwks_jose::{JwkSet, compact};
use jwks_verifier::{Algorithm, Claims, OfflineVerifier, Verifier, dangerous::DangerousOptions};
use tokio::sync::OnceCell;

use super::replay::{Replay, ReplayCache};
use crate::clock::{SharedClock, UnixTime};

/// The only assertion type accepted (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Leeway for `exp`, `iat` and `nbf` of an assertion, in seconds.
pub const LEEWAY: u64 = 60;
/// Signing algorithms accepted for assertions (never HS* or none).
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// The issuer's clock seen through the verifier crate's clock trait.
#[derive(Debug)]
pub struct VerifierClock(pub SharedClock);

impl jwks_verifier::Clock for VerifierClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.now())
    }

    fn sleep_until(&self, deadline: SystemTime) -> jwks_verifier::Sleep {
        let wait = deadline.duration_since(self.now()).unwrap_or_default();
        Box::pin(tokio::time::sleep(wait)) as Pin<Box<_>>
    }
}

/// Where a client's public keys come from.
#[derive(Debug)]
pub enum ClientKeys {
    /// A fixed set from the config (`jwks` or `jwks_file`).
    Static(OfflineVerifier),
    /// A `jwks_uri`, fetched on first use and cached.
    Remote {
        /// The URI.
        uri: String,
        /// The verifier, built on first use.
        verifier: OnceCell<Verifier>,
    },
}

/// Verifies one client's assertions.
#[derive(Debug)]
pub struct AssertionVerifier {
    client_id: String,
    audiences: Vec<String>,
    max_lifetime: u64,
    clock: SharedClock,
    keys: ClientKeys,
}

impl AssertionVerifier {
    fn builder(client_id: &str, audiences: &[String], clock: &SharedClock) -> jwks_verifier::VerifierBuilder {
        let mut b = Verifier::builder()
            .issuer(client_id)
            .algorithms(ALGORITHMS)
            .leeway(Duration::from_secs(LEEWAY))
            .clock(Arc::new(VerifierClock(clock.clone())))
            // Assertions carry `typ: JWT` or none (RFC 7523 sets no type).
            .accept_any_type();
        for a in audiences {
            b = b.audience(a.clone());
        }
        b
    }

    /// A verifier over a fixed key set. `audiences` are the token endpoint
    /// URL and the issuer (RFC 7523 §3 item 3).
    pub fn with_jwks(
        client_id: &str,
        jwks: &JwkSet,
        audiences: Vec<String>,
        max_lifetime: Duration,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let offline = Self::builder(client_id, &audiences, &clock).build_offline(jwks).map_err(|e| e.to_string())?;
        Ok(AssertionVerifier {
            client_id: client_id.into(),
            audiences,
            max_lifetime: max_lifetime.as_secs(),
            clock,
            keys: ClientKeys::Static(offline),
        })
    }

    /// A verifier over a `jwks_uri`, fetched on first use.
    pub fn with_uri(
        client_id: &str,
        uri: &str,
        audiences: Vec<String>,
        max_lifetime: Duration,
        clock: SharedClock,
    ) -> Self {
        AssertionVerifier {
            client_id: client_id.into(),
            audiences,
            max_lifetime: max_lifetime.as_secs(),
            clock,
            keys: ClientKeys::Remote { uri: uri.into(), verifier: OnceCell::new() },
        }
    }

    /// Verifies `assertion` for this client: signature with the client's
    /// keys, `iss` = `sub` = client id, `aud` naming the token endpoint or
    /// the issuer, `exp` at most `max_lifetime` ahead, `jti` used once.
    /// The error is an `error_description`. On success, the id recorded
    /// in `replay` and until when, for the claim across replicas.
    pub async fn verify(&self, assertion: &str, replay: &ReplayCache) -> Result<(String, u64), String> {
        let claims: Claims = match &self.keys {
            ClientKeys::Static(v) => v.verify(assertion),
            ClientKeys::Remote { uri, verifier } => {
                let v = verifier
                    .get_or_try_init(|| {
                        Self::builder(&self.client_id, &self.audiences, &self.clock).jwks_uri(uri.clone()).build()
                    })
                    .await
                    .map_err(|e| format!("client keys unavailable: {e}"))?;
                v.verify(assertion).await
            }
        }
        .map_err(|e| format!("client assertion rejected ({}): {e}", e.code()))?;
        let now = self.clock.now();
        check_claims(&claims, &self.client_id, now, self.max_lifetime)?;
        let jti = claims.jti.as_deref().unwrap_or_default();
        let key = format!("{}\0{jti}", self.client_id);
        let until = claims.exp.saturating_add(LEEWAY);
        match replay.check_and_insert(&key, until, now) {
            Ok(()) => Ok((format!("private_key_jwt\0{key}"), until)),
            Err(Replay::Seen) => Err("client assertion rejected: `jti` was already used".into()),
            Err(Replay::Full) => Err("client assertion rejected: too many assertions in flight".into()),
        }
    }
}

/// The assertion verifiers of every `private_key_jwt` client, and the
/// replay cache their `jti`s share.
#[derive(Debug, Default)]
pub struct Assertions {
    by_client: std::collections::HashMap<String, AssertionVerifier>,
    /// Single-use `jti`s.
    pub replay: ReplayCache,
}

impl Assertions {
    /// Builds a verifier for each client configured with keys.
    pub fn new(config: &crate::Config, clock: &SharedClock) -> Result<Self, crate::Error> {
        use crate::config::ClientAuth;
        let audiences = vec![config.token_endpoint(), config.issuer.clone()];
        let max = config.tokens.assertion_max_lifetime;
        let mut by_client = std::collections::HashMap::new();
        for c in &config.clients {
            let v = match &c.auth {
                ClientAuth::Secret { .. } => continue,
                ClientAuth::Jwks(set) => {
                    AssertionVerifier::with_jwks(&c.id, set, audiences.clone(), max, clock.clone()).map_err(|e| {
                        crate::Error::Config { path: config.path.clone(), message: format!("client `{}`: {e}", c.id) }
                    })?
                }
                ClientAuth::JwksUri(uri) => {
                    AssertionVerifier::with_uri(&c.id, uri, audiences.clone(), max, clock.clone())
                }
            };
            by_client.insert(c.id.clone(), v);
        }
        Ok(Assertions { by_client, replay: ReplayCache::default() })
    }

    /// The verifier of `client_id`, if it authenticates with keys.
    pub fn get(&self, client_id: &str) -> Option<&AssertionVerifier> {
        self.by_client.get(client_id)
    }
}

/// The claim rules the verifier crate does not know about.
fn check_claims(claims: &Claims, client_id: &str, now: UnixTime, max_lifetime: u64) -> Result<(), String> {
    if claims.sub.as_deref() != Some(client_id) {
        return Err("client assertion rejected: `sub` must equal `iss`, the client id".into());
    }
    if claims.jti.as_deref().is_none_or(str::is_empty) {
        return Err("client assertion rejected: `jti` is required".into());
    }
    if claims.exp > now.saturating_add(max_lifetime).saturating_add(LEEWAY) {
        return Err(format!("client assertion rejected: `exp` is more than {max_lifetime} s ahead"));
    }
    Ok(())
}

/// The `iss` of an assertion, read without verification, to pick the
/// client whose keys will verify it.
pub fn unverified_issuer(assertion: &str) -> Option<String> {
    let parts = compact::split(assertion, jwks_verifier::MAX_TOKEN_LEN).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&parts.payload).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests;
