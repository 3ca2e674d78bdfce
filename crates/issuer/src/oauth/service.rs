//! The token service: the client-credentials grant (RFC 6749 §4.4) as one
//! call, free of the HTTP framework. It owns the clients, the brute-force
//! limits, the secret workers, the client-assertion verifiers, the
//! single-use-id guard, the key-ring handle and the token settings.
//!
//! The order of the rules is the point: everything that needs only the
//! request ([`TokenRequest::parse`]) is checked before any work; the
//! throttle is charged before argon2 or signature work; single-use ids are
//! claimed only once every other rule has passed, just before signing.

use std::{sync::Arc, time::Duration};

use jwks_jose::nonce::NonceKey;

use super::{
    OAuthError,
    assertion::{AssertionAudience, Assertions, AudienceRule},
    client::{ClientConfig, DpopNonceMode},
    clients::{Clients, SecretCheck},
    dpop,
    error::{ThrottleReason, printable},
    peer,
    replay::{MAX_ENTRIES, MAX_PER_CLIENT, PendingId, Replay, ReplayCache, SharedClaims, SingleUse},
    request::{Credentials, RawRequest, TokenRequest},
    secret::SecretWorkers,
    throttle::{Throttle, ThrottleConfig},
};
use crate::{clock::SharedClock, keys::Keyring, metrics::Metrics, token};

/// The settings of the token service, handed over by the composition root.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The issuer identifier (`iss`).
    pub issuer: String,
    /// The token endpoint URL (DPoP `htu`, assertion audience).
    pub token_endpoint: String,
    /// `aud` for clients that name no audience.
    pub default_audience: String,
    /// How far a DPoP proof's `iat` may be from now.
    pub dpop_iat_window: Duration,
    /// `[dpop] nonce`: the DPoP nonce mode of clients that set none.
    pub dpop_nonce: DpopNonceMode,
    /// `[dpop] nonce_step`: the nonce time step.
    pub dpop_nonce_step: Duration,
    /// Which `aud` an assertion may carry.
    pub assertion_audience: AssertionAudience,
    /// How far ahead an assertion's `exp` may be.
    pub assertion_max_lifetime: Duration,
    /// The brute-force limits.
    pub throttle: ThrottleConfig,
    /// How many argon2 checks run at once.
    pub secret_workers: usize,
}

/// An issued token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The JWT.
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a bound token (RFC 9449 §5).
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The granted scope (may be empty).
    pub scope: String,
    /// The fresh `DPoP-Nonce` for a request with a proof, unless the
    /// client's nonce mode is off (RFC 9449 §8).
    pub dpop_nonce: Option<String>,
}

/// The token endpoint's rules.
#[derive(Debug)]
pub struct TokenService {
    settings: TokenSettings,
    clients: Clients,
    throttle: Throttle,
    workers: SecretWorkers,
    assertions: Assertions,
    single_use: SingleUse,
    keys: Arc<Keyring>,
    metrics: Arc<Metrics>,
    /// The DPoP nonce key, when any client's nonce mode is not off.
    nonce_key: Option<NonceKey>,
}

impl TokenService {
    /// The service over `clients`, signing with `keys`; `shared` shares
    /// single-use ids between replicas; `clock` serves the assertion
    /// verifiers.
    pub fn new(
        settings: TokenSettings,
        clients: &[ClientConfig],
        keys: Arc<Keyring>,
        shared: Option<Arc<dyn SharedClaims>>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
    ) -> Result<Self, crate::Error> {
        let audience = AudienceRule {
            issuer: settings.issuer.clone(),
            token_endpoint: settings.token_endpoint.clone(),
            mode: settings.assertion_audience,
        };
        let nonces_on = settings.dpop_nonce != DpopNonceMode::Off
            || clients.iter().any(|c| c.dpop_nonce.is_some_and(|m| m != DpopNonceMode::Off));
        let nonce_key = if nonces_on { Some(NonceKey::random(settings.dpop_nonce_step)?) } else { None };
        Ok(TokenService {
            nonce_key,
            clients: Clients::new(clients)?,
            throttle: Throttle::new(settings.throttle),
            workers: SecretWorkers::new(settings.secret_workers),
            assertions: Assertions::new(clients, &audience, settings.assertion_max_lifetime, &clock)?,
            single_use: SingleUse::new(ReplayCache::new(MAX_ENTRIES, MAX_PER_CLIENT), shared),
            keys,
            metrics,
            settings,
        })
    }

    /// The registered clients.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// Derives the DPoP nonce key from `secret` (`JWKS_ISSUER_KEK`, shared
    /// by the replicas) with HKDF-SHA256 and the label
    /// `"jwks-issuer dpop-nonce v1"`, replacing the per-process random key
    /// [`TokenService::new`] made; nothing to do when nonces are off.
    pub fn use_dpop_nonce_secret(&mut self, secret: &[u8]) -> Result<(), crate::Error> {
        if self.nonce_key.is_some() {
            self.nonce_key = Some(NonceKey::derive(secret, dpop::NONCE_LABEL, self.settings.dpop_nonce_step)?);
        }
        Ok(())
    }

    /// Whether DPoP nonces are in use for some client.
    pub fn dpop_nonces_on(&self) -> bool {
        self.nonce_key.is_some()
    }

    /// A fresh DPoP nonce at `now`, for the `DPoP-Nonce` header of any
    /// answer to a request with a `DPoP` header; `None` when nonces are off
    /// for every client.
    pub fn dpop_nonce(&self, now: jwks_jose::clock::UnixTime) -> Option<String> {
        self.nonce_key.as_ref().map(|k| k.issue(now))
    }

    /// The nonce key and `client`'s mode, unless its mode is off.
    fn nonces_for(&self, client: &ClientConfig) -> Option<dpop::Nonces<'_>> {
        let mode = client.dpop_nonce.unwrap_or(self.settings.dpop_nonce);
        match (mode, &self.nonce_key) {
            (DpopNonceMode::Off, _) | (_, None) => None,
            (mode, Some(key)) => Some(dpop::Nonces { key, mode }),
        }
    }

    /// Parses `raw` and issues a token, counting the outcome.
    pub async fn handle(&self, raw: &RawRequest<'_>) -> Result<Issued, OAuthError> {
        let result = match TokenRequest::parse(raw) {
            Ok(req) => self.issue(req).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            self.metrics.token_error(e.code());
        }
        result
    }

    /// Counts a request refused before it reached the service (its body).
    pub fn refused(&self, e: &OAuthError) {
        self.metrics.token_error(e.code());
    }

    /// Issues a token for a request whose shape was checked.
    pub async fn issue(&self, req: TokenRequest) -> Result<Issued, OAuthError> {
        let now = req.now;
        let source = peer::limit_key(req.peer, self.throttle.config().ipv6_prefix);
        // Remembered credentials cost no argon2 work: they pass the
        // buckets, so guesses from a shared address cannot lock the real
        // client out.
        let remembered = matches!(&req.credentials, Credentials::Secret(b)
            if self.clients.get(&b.id).is_some()
                && self.clients.check_remembered(&b.id, &b.secret, now) == SecretCheck::Remembered);
        let charge = if remembered {
            None
        } else {
            let claimed = req.credentials.claimed_id();
            Some(self.throttle.admit(claimed, source, now).map_err(|retry_after| {
                tracing::warn!(client_id = %printable(claimed.unwrap_or(""), 64), ?source, "client authentication throttled");
                OAuthError::Throttled { retry_after, reason: ThrottleReason::Failures }
            })?)
        };
        let authenticated = self.authenticate(&req, source, remembered).await;
        if let Some(charge) = charge {
            // Only a failed authentication spends the budget.
            if !matches!(authenticated, Err(OAuthError::InvalidClient { .. })) {
                self.throttle.refund(charge, now);
            }
        }
        let (client, assertion_jti) = authenticated?;

        let nonces = self.nonces_for(&client);
        let binding = dpop::binding(
            req.dpop.as_deref(),
            &client,
            &self.settings.token_endpoint,
            self.settings.dpop_iat_window,
            &self.single_use,
            nonces,
            now,
        )?;
        let scope = granted_scope(&client, req.form.scope.as_deref())?;
        let aud = audience(&client, &req, &self.settings.default_audience)?;
        let snapshot = self.keys.snapshot();
        let Some(key) = snapshot.signer(client.algorithm) else {
            tracing::error!(client_id = %client.id, alg = %client.algorithm, "no signing key for the algorithm");
            return Err(OAuthError::Server);
        };

        let pending: Vec<PendingId> =
            assertion_jti.into_iter().chain(binding.as_ref().map(|b| b.jti.clone())).collect();
        self.single_use.claim(&client.id, &pending, now).await.map_err(|(replay, kind)| {
            tracing::info!(client_id = %client.id, kind, ?replay, "single-use id refused");
            match (replay, kind) {
                (Replay::Seen, "dpop") => OAuthError::InvalidDpopProof("the proof's `jti` was already used".into()),
                (Replay::Seen, _) => OAuthError::InvalidClient { description: "client authentication failed".into() },
                (_, _) => OAuthError::Throttled { retry_after: 1, reason: ThrottleReason::SingleUseIds },
            }
        })?;

        let ttl = client.ttl.as_secs();
        let jkt = binding.as_ref().map(|b| b.jkt.as_str());
        let grant =
            token::Grant { issuer: &self.settings.issuer, client_id: &client.id, aud, scope: &scope, now, ttl, jkt };
        let access_token = token::mint(key, &grant).map_err(|e| {
            tracing::error!(error = %e, kid = %key.meta.kid, "signing failed");
            OAuthError::Server
        })?;
        self.metrics.token_issued(&client.id, key.meta.alg, &key.meta.kid);
        let dpop_nonce = match (&req.dpop, nonces) {
            (Some(_), Some(n)) => Some(n.key.issue(now)),
            _ => None,
        };
        Ok(Issued {
            access_token,
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
            expires_in: ttl,
            scope,
            dpop_nonce,
        })
    }

    /// Client authentication; on success the client and, for an
    /// assertion, its `jti` to claim.
    async fn authenticate(
        &self,
        req: &TokenRequest,
        source: Option<std::net::IpAddr>,
        remembered: bool,
    ) -> Result<(Arc<ClientConfig>, Option<PendingId>), OAuthError> {
        let fail = || OAuthError::InvalidClient { description: "client authentication failed".into() };
        match &req.credentials {
            Credentials::None => Err(OAuthError::InvalidClient {
                description: "client authentication required (client_secret_basic, client_secret_post or \
                              private_key_jwt)"
                    .into(),
            }),
            Credentials::Secret(b) => {
                if let (true, Some(c)) = (remembered, self.clients.get(&b.id)) {
                    return Ok((c.clone(), None));
                }
                if b.id.len() > 256 || b.secret.len() > 1024 {
                    return Err(fail());
                }
                let (hash, known) = self.clients.hash_for(&b.id);
                let ok = self.workers.verify(source, hash, b.secret.clone()).await?;
                match self.clients.get(&b.id) {
                    Some(c) if ok && known => {
                        self.clients.remember(&b.id, &b.secret, req.now);
                        Ok((c.clone(), None))
                    }
                    _ => {
                        tracing::info!(client_id = %printable(&b.id, 64), "client authentication failed");
                        Err(fail())
                    }
                }
            }
            Credentials::Assertion { assertion, iss } => {
                let (Some(client), Some(verifier)) = (self.clients.get(iss), self.assertions.get(iss)) else {
                    tracing::info!(client_id = %printable(iss, 64), "client assertion from an unknown or secret-based client");
                    return Err(fail());
                };
                let jti = verifier.verify(assertion, req.now).await.map_err(|reason| {
                    tracing::info!(client_id = %client.id, %reason, "client assertion rejected");
                    fail()
                })?;
                if self.single_use.is_used(&client.id, &jti, req.now) {
                    tracing::info!(client_id = %client.id, "client assertion replayed: `jti` was already used");
                    return Err(fail());
                }
                Ok((client.clone(), Some(jti)))
            }
        }
    }
}

/// The granted scope: the requested one if every token is the client's;
/// all of the client's scopes when none is requested (RFC 6749 §3.3).
fn granted_scope(client: &ClientConfig, requested: Option<&str>) -> Result<String, OAuthError> {
    let Some(requested) = requested else { return Ok(client.scopes.join(" ")) };
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !client.scopes.iter().any(|c| c == s) {
            return Err(OAuthError::InvalidScope(format!(
                "scope `{}` is not allowed for this client",
                printable(s, 64)
            )));
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok(granted.join(" "))
}

/// The `aud`: the requested `resource` (RFC 8707) or `audience` if it is one
/// of the client's; else the client's first audience or the default.
fn audience<'a>(client: &'a ClientConfig, req: &'a TokenRequest, default: &'a str) -> Result<&'a str, OAuthError> {
    let allowed: &[String] = &client.audiences;
    match req.target() {
        None => Ok(allowed.first().map_or(default, String::as_str)),
        Some(r) if allowed.iter().any(|a| a == r) || (allowed.is_empty() && r == default) => Ok(r),
        Some(r) => {
            Err(OAuthError::InvalidTarget(format!("target `{}` is not allowed for this client", printable(r, 64))))
        }
    }
}
