//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, RFC 7521
//! §4.2, and draft-ietf-oauth-rfc7523bis for the audience): the client
//! signs a short-lived JWT with its own key instead of sending a secret.
//! Its `aud` must be this issuer's identifier as its sole value (a string,
//! or an array holding only it); with `[tokens] assertion_audience =
//! "issuer_or_token_endpoint"` the token endpoint URL is accepted too. An
//! array naming anyone else is refused in both modes: such an assertion
//! could be replayed at the other audiences. Its public keys come from the config (`jwks`,
//! `jwks_file`) or from its `jwks_uri`, fetched and cached by the project's
//! own verifier crate with the same refresh, cooldown and stale rules.

use std::{
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use jwks_jose::{JwkSet, clock::UnixTime};
use jwks_verifier::{Algorithm, Claims, OfflineVerifier, Verifier, dangerous::DangerousOptions};
use tokio::sync::OnceCell;

use super::replay::PendingId;
use crate::clock::SharedClock;
/// Leeway for `exp`, `iat` and `nbf` of an assertion, in seconds.
pub(crate) const LEEWAY: u64 = 60;
/// Signing algorithms accepted for assertions (never HS* or none): every
/// algorithm of the crypto backend (RS256, ES256, ES384, PS256, Ed25519,
/// and ML-DSA-44 / ML-DSA-65 on aws-lc-rs). The client's registered key
/// fixes which one its assertions use.
pub(crate) fn algorithms() -> Vec<Algorithm> {
    jwks_jose::crypto::supported()
}

/// The issuer's clock seen through the verifier crate's clock trait.
#[derive(Debug)]
pub(crate) struct VerifierClock(pub SharedClock);

impl jwks_verifier::Clock for VerifierClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> jwks_verifier::Sleep {
        let wait = deadline.duration_since(self.now()).unwrap_or_default();
        Box::pin(tokio::time::sleep(wait)) as Pin<Box<_>>
    }
}

/// Where a client's public keys come from.
#[derive(Debug)]
pub(crate) enum ClientKeys {
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

/// Which `aud` values an assertion may carry (`[tokens]
/// assertion_audience`), spelled in the config as below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssertionAudience {
    /// `"issuer"` (the default): the issuer identifier alone.
    #[default]
    Issuer,
    /// `"issuer_or_token_endpoint"`: the issuer identifier or the token
    /// endpoint URL, for clients that cannot change yet.
    IssuerOrTokenEndpoint,
}

/// The audiences an assertion may name, and the mode.
#[derive(Debug, Clone)]
pub(crate) struct AudienceRule {
    /// The issuer identifier.
    pub issuer: String,
    /// The token endpoint URL.
    pub token_endpoint: String,
    /// The mode.
    pub mode: AssertionAudience,
}

impl AudienceRule {
    fn accepted(&self) -> Vec<String> {
        match self.mode {
            AssertionAudience::Issuer => vec![self.issuer.clone()],
            AssertionAudience::IssuerOrTokenEndpoint => vec![self.issuer.clone(), self.token_endpoint.clone()],
        }
    }

    /// Whether every member of `aud` is accepted (the verifier crate has
    /// already checked that one is).
    fn check(&self, aud: &jwks_verifier::Audience) -> Result<(), String> {
        let accepted = self.accepted();
        if aud.iter().all(|a| accepted.iter().any(|x| x == a)) {
            Ok(())
        } else {
            Err("`aud` names an audience other than this issuer".into())
        }
    }
}

/// Verifies one client's assertions.
#[derive(Debug)]
pub(crate) struct AssertionVerifier {
    client_id: String,
    audience: AudienceRule,
    max_lifetime: u64,
    clock: SharedClock,
    keys: ClientKeys,
}

impl AssertionVerifier {
    fn builder(client_id: &str, audience: &AudienceRule, clock: &SharedClock) -> jwks_verifier::VerifierBuilder {
        let mut b = Verifier::builder()
            .issuer(client_id)
            .algorithms(algorithms())
            .leeway(Duration::from_secs(LEEWAY))
            .clock(Arc::new(VerifierClock(clock.clone())))
            // Assertions carry `typ: JWT` or none (RFC 7523 sets no type).
            .accept_any_type();
        for a in audience.accepted() {
            b = b.audience(a);
        }
        b
    }

    /// A verifier over a fixed key set.
    pub(crate) fn with_jwks(
        client_id: &str,
        jwks: &JwkSet,
        audience: AudienceRule,
        max_lifetime: Duration,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let offline = Self::builder(client_id, &audience, &clock).build_offline(jwks).map_err(|e| e.to_string())?;
        Ok(AssertionVerifier {
            client_id: client_id.into(),
            audience,
            max_lifetime: max_lifetime.as_secs(),
            clock,
            keys: ClientKeys::Static(offline),
        })
    }

    /// A verifier over a `jwks_uri`, fetched on first use.
    pub(crate) fn with_uri(
        client_id: &str,
        uri: &str,
        audience: AudienceRule,
        max_lifetime: Duration,
        clock: SharedClock,
    ) -> Self {
        AssertionVerifier {
            client_id: client_id.into(),
            audience,
            max_lifetime: max_lifetime.as_secs(),
            clock,
            keys: ClientKeys::Remote { uri: uri.into(), verifier: OnceCell::new() },
        }
    }

    /// Verifies `assertion` for this client at `now`: signature with the
    /// client's keys, `iss` = `sub` = client id, the audience rule, `exp`
    /// at most `max_lifetime` ahead, a `jti`. Nothing is recorded: the
    /// `jti` to claim is returned. The error is for the log only (it may
    /// name the client's `jwks_uri`); callers answer "client
    /// authentication failed".
    pub(crate) async fn verify(&self, assertion: &str, now: UnixTime) -> Result<PendingId, String> {
        let claims: Claims = match &self.keys {
            ClientKeys::Static(v) => v.verify(assertion),
            ClientKeys::Remote { uri, verifier } => {
                let v = verifier
                    .get_or_try_init(|| {
                        Self::builder(&self.client_id, &self.audience, &self.clock).jwks_uri(uri.clone()).build()
                    })
                    .await
                    .map_err(|e| format!("client keys unavailable: {e}"))?;
                v.verify(assertion).await
            }
        }
        .map_err(|e| format!("client assertion rejected ({}): {e}", e.code()))?;
        self.audience.check(&claims.aud).map_err(|e| format!("client assertion rejected (wrong_audience): {e}"))?;
        check_claims(&claims, &self.client_id, now, self.max_lifetime)?;
        let jti = claims.jti.unwrap_or_default();
        Ok(PendingId { kind: "private_key_jwt", id: jti, until: claims.exp.saturating_add(LEEWAY) })
    }
}

/// The assertion verifiers of every `private_key_jwt` client.
#[derive(Debug, Default)]
pub(crate) struct Assertions {
    by_client: std::collections::HashMap<String, AssertionVerifier>,
}

impl Assertions {
    /// Builds a verifier for each client configured with keys.
    pub(crate) fn new(
        clients: &[super::client::ClientConfig],
        audience: &AudienceRule,
        max_lifetime: Duration,
        clock: &SharedClock,
    ) -> Result<Self, crate::Error> {
        use super::client::ClientAuth;
        let mut by_client = std::collections::HashMap::new();
        for c in clients {
            let v = match &c.auth {
                ClientAuth::Secret { .. } => continue,
                ClientAuth::Jwks(set) => {
                    AssertionVerifier::with_jwks(&c.id, set, audience.clone(), max_lifetime, clock.clone())
                        .map_err(|e| crate::Error::Usage(format!("client `{}`: {e}", c.id)))?
                }
                ClientAuth::JwksUri(uri) => {
                    AssertionVerifier::with_uri(&c.id, uri, audience.clone(), max_lifetime, clock.clone())
                }
            };
            by_client.insert(c.id.clone(), v);
        }
        Ok(Assertions { by_client })
    }

    /// The verifier of `client_id`, if it authenticates with keys.
    pub(crate) fn get(&self, client_id: &str) -> Option<&AssertionVerifier> {
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
    if claims.exp > now.saturating_add_secs(max_lifetime).saturating_add_secs(LEEWAY).as_secs() {
        return Err(format!("client assertion rejected: `exp` is more than {max_lifetime} s ahead"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
