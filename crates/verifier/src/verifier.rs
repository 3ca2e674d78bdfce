//! The builder, the async [`Verifier`] over a remote JWKS and the
//! synchronous [`OfflineVerifier`] over a fixed JWK set.

use std::{sync::Arc, time::Duration};

use jwks_jose::{Algorithm, JwkSet};
use serde::de::DeserializeOwned;
use url::Url;

use crate::{
    Claims, Clock, Error, JwksStatus, SystemClock,
    cache::{self, Cache, CacheConfig, Source},
    dpop::{self, Binding, Presented},
    http,
    keys::KeySet,
    telemetry,
    token::{self, Policy},
};

/// A verified token: its claims and the key that verified it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Verified<T> {
    /// The claims, deserialised into the caller's type.
    pub claims: T,
    /// The `kid` of the token's header, if any.
    pub kid: Option<String>,
    /// The algorithm of the key that verified the signature.
    pub alg: Algorithm,
}

/// Configures a [`Verifier`] or an [`OfflineVerifier`].
///
/// Required: [`issuer`](Self::issuer) and at least one
/// [`audience`](Self::audience).
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifierBuilder {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    pub(crate) required_type: Option<String>,
    pub(crate) allow_http: bool,
    cache: CacheConfig,
    connect_timeout: Duration,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    dpop_iat_window: Duration,
    dpop_replay_capacity: usize,
    dpop_replay_capacity_per_key: usize,
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        VerifierBuilder {
            issuer: None,
            jwks_uri: None,
            audiences: Vec::new(),
            algorithms: crate::limits::DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(60),
            required_type: Some("at+jwt".into()),
            allow_http: false,
            cache: CacheConfig {
                min_ttl: Duration::from_secs(60),
                max_ttl: Duration::from_secs(86_400),
                refetch_cooldown: Duration::from_secs(30),
                max_stale: Duration::from_secs(86_400),
            },
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            dpop_iat_window: Duration::from_secs(60),
            dpop_replay_capacity: dpop::ReplayCache::DEFAULT_MAX_TOTAL,
            dpop_replay_capacity_per_key: dpop::ReplayCache::DEFAULT_MAX_PER_PARTITION,
        }
    }
}

impl VerifierBuilder {
    /// The expected `iss`, compared exactly. Required. Without
    /// [`jwks_uri`](Self::jwks_uri), the JWKS URI is discovered from the
    /// issuer's `/.well-known/oauth-authorization-server` (RFC 8414) or
    /// `/.well-known/openid-configuration`, whose `issuer` must match.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The JWKS URI; skips discovery. Defaults to discovery.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Adds an accepted audience; a token's `aud` must contain one of them.
    /// At least one is required.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The algorithm allow-list, for tokens and DPoP proofs alike. Defaults
    /// to RS256 and ES256 ([`limits::DEFAULT_ALGORITHMS`](crate::limits::DEFAULT_ALGORITHMS));
    /// ES384, PS256, Ed25519, ML-DSA-44 and ML-DSA-65 are opt-in. An
    /// allowed Ed25519 also admits the header name `EdDSA` on an Ed25519
    /// key whose JWK says `EdDSA` or has no `alg`. `none` and HMAC
    /// algorithms cannot be expressed; ML-DSA on the `ring` backend is a
    /// configuration error. Each algorithm has its size limit
    /// ([`crate::limits`]).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock skew tolerated for `exp`, `nbf` and `iat`. Defaults to 60 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The required header `typ`, compared case-insensitively with an
    /// optional `application/` prefix (RFC 9068 §4). Defaults to `at+jwt`.
    /// To accept any type, see [`crate::dangerous`].
    pub fn required_type(mut self, typ: impl Into<String>) -> Self {
        self.required_type = Some(typ.into());
        self
    }

    /// The shortest time a JWKS is cached, whatever its `max-age`.
    /// Defaults to 1 minute.
    pub fn min_ttl(mut self, ttl: Duration) -> Self {
        self.cache.min_ttl = ttl;
        self
    }

    /// The longest time a JWKS is cached, whatever its `max-age`.
    /// Defaults to 1 day.
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.cache.max_ttl = ttl;
        self
    }

    /// The least time between two refetches caused by unknown kids.
    /// Defaults to 30 s.
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.cache.refetch_cooldown = cooldown;
        self
    }

    /// How long after expiry the last good keys keep verifying while the
    /// JWKS endpoint fails. Defaults to 1 day.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.cache.max_stale = max_stale;
        self
    }

    /// TCP and TLS connect timeout. Defaults to 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Timeout of a whole request, body included. Defaults to 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The clock for claim checks and the cache. Defaults to [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How far a DPoP proof's `iat` may be from now, either side
    /// (RFC 9449 §11.1); each proof's `jti` is remembered this long.
    /// Defaults to 60 s.
    pub fn dpop_iat_window(mut self, window: Duration) -> Self {
        self.dpop_iat_window = window;
        self
    }

    /// How many live DPoP proofs the replay cache holds; when it is full of
    /// live proofs, every new proof is refused
    /// ([`ProofError::ReplayCacheFull`](crate::dpop::ProofError::ReplayCacheFull))
    /// until some leave the window: the cache fails closed, it never
    /// forgets a live proof. Defaults to 100 000.
    pub fn dpop_replay_capacity(mut self, capacity: usize) -> Self {
        self.dpop_replay_capacity = capacity;
        self
    }

    /// How many live DPoP proofs one proof key (one `cnf.jkt`) may have in
    /// the replay cache, so that one key, a leaked bound token's for
    /// instance, cannot fill it for the others: a key at its limit has its
    /// new proofs refused
    /// ([`ProofError::TooManyProofsForKey`](crate::dpop::ProofError::TooManyProofsForKey))
    /// until some leave the window, while other keys go on. Only proofs
    /// that passed every other check are recorded. At most the total
    /// capacity. Defaults to 10 000.
    pub fn dpop_replay_capacity_per_key(mut self, capacity: usize) -> Self {
        self.dpop_replay_capacity_per_key = capacity;
        self
    }

    fn binding(&self) -> Binding {
        let per_key = self.dpop_replay_capacity_per_key.min(self.dpop_replay_capacity);
        Binding {
            algorithms: self.algorithms.clone(),
            iat_window: self.dpop_iat_window,
            replay: dpop::ReplayCache::new(self.dpop_replay_capacity, per_key),
        }
    }

    fn policy(&self) -> Result<Policy, Error> {
        let issuer =
            self.issuer.clone().filter(|i| !i.is_empty()).ok_or_else(|| Error::config("issuer is required"))?;
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(Error::config("at least one non-empty audience is required"));
        }
        if self.algorithms.is_empty() {
            return Err(Error::config("the algorithm allow-list is empty"));
        }
        if let Some(Err(e)) =
            self.algorithms.iter().map(|a| jwks_jose::crypto::check_supported(*a)).find(Result::is_err)
        {
            return Err(Error::config(e.to_string()));
        }
        Ok(Policy {
            issuer,
            audiences: self.audiences.clone(),
            algorithms: self.algorithms.clone(),
            leeway: self.leeway,
            required_type: self.required_type.clone(),
        })
    }

    /// Builds a verifier over the issuer's JWKS: validates the settings,
    /// makes the first fetch (discovery included), and starts the
    /// background refresh on the current tokio runtime.
    ///
    /// A failed first fetch is logged, not fatal: verification then
    /// answers `jwks_unavailable` until a fetch succeeds (retried with
    /// backoff in the background and on demand).
    pub async fn build(self) -> Result<Verifier, Error> {
        let policy = self.policy()?;
        let c = self.cache;
        if c.min_ttl > c.max_ttl {
            return Err(Error::config("min_ttl is greater than max_ttl"));
        }
        let jwks_uri = match &self.jwks_uri {
            Some(uri) => {
                let uri = Url::parse(uri).map_err(|e| Error::config(format!("jwks_uri: {e}")))?;
                http::check_url(&uri, self.allow_http).map_err(Error::config)?;
                Some(uri)
            }
            None => {
                let issuer = Url::parse(&policy.issuer)
                    .map_err(|e| Error::config(format!("issuer is not a URL, so it cannot be discovered: {e}")))?;
                http::check_url(&issuer, self.allow_http).map_err(Error::config)?;
                None
            }
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::config("build() must run inside a tokio runtime"))?;
        let client = http::client(self.connect_timeout, self.timeout, self.allow_http).map_err(Error::config)?;
        let source = Source { issuer: policy.issuer.clone(), jwks_uri, allow_http: self.allow_http };
        let cache = Arc::new(Cache::new(source, client, c, Arc::clone(&self.clock), runtime.clone()));
        if let Err(e) = cache.refresh().await {
            tracing::warn!(error = %e, "first JWKS fetch failed; retrying in the background");
        }
        let refresher = runtime.spawn(cache::refresher(Arc::downgrade(&cache), Arc::clone(&self.clock)));
        let dpop = self.binding();
        Ok(Verifier {
            inner: Arc::new(Inner { policy, cache, clock: self.clock, dpop, refresher: refresher.abort_handle() }),
        })
    }

    /// Builds a synchronous verifier over a fixed, already-fetched JWK set
    /// (no network, no refresh). Unusable keys are skipped with a log line;
    /// a set without any usable key is an error.
    pub fn build_offline(self, jwks: &JwkSet) -> Result<OfflineVerifier, Error> {
        let policy = self.policy()?;
        let keys = KeySet::from_jwk_set(jwks);
        if keys.is_empty() {
            return Err(Error::config("the JWK set has no usable key"));
        }
        let dpop = self.binding();
        Ok(OfflineVerifier { inner: Arc::new(OfflineInner { policy, keys, clock: self.clock, dpop }) })
    }
}

/// Verifies access tokens against an issuer's JWKS, cached and refreshed
/// in the background.
///
/// Cloning is cheap (one reference count): build one verifier per issuer
/// and share clones across tasks and threads. The background refresh stops
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    policy: Policy,
    cache: Arc<Cache>,
    clock: Arc<dyn Clock>,
    dpop: Binding,
    refresher: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl Verifier {
    /// Starts configuring a verifier.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// Verifies `token` and returns its claims. A DPoP-bound token (with
    /// `cnf.jkt`) is refused with [`Error::DpopBound`]: it is accepted only
    /// through [`verify_dpop`](Self::verify_dpop).
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        self.verify_as(token).await
    }

    /// Verifies a DPoP-bound `token` presented with `Authorization: DPoP`
    /// and the `DPoP` header `proof`, for a request of `method` to `url`
    /// (the full URL the client addressed; query and fragment are ignored).
    ///
    /// The token passes every rule of [`verify`](Self::verify) and carries
    /// `cnf.jkt`; the proof passes [`dpop::verify_proof`] with this
    /// verifier's window and replay cache, its `ath` is the token's hash,
    /// and its key's thumbprint is the token's `cnf.jkt` (RFC 9449 §7.1).
    pub async fn verify_dpop(&self, token: &str, proof: &str, method: &str, url: &str) -> Result<Claims, Error> {
        self.verify_dpop_token(token, proof, method, url).await.map(|v| v.claims)
    }

    /// [`verify_dpop`](Self::verify_dpop) with the claims deserialised into
    /// `T`, and the `kid` and algorithm that verified the token.
    pub async fn verify_dpop_token<T: DeserializeOwned>(
        &self,
        token: &str,
        proof: &str,
        method: &str,
        url: &str,
    ) -> Result<Verified<T>, Error> {
        record(self.verify_inner(token, Some(Presented { proof, method, url })).await)
    }

    /// Verifies `token` and deserialises its claims into `T`.
    pub async fn verify_as<T: DeserializeOwned>(&self, token: &str) -> Result<T, Error> {
        self.verify_token(token).await.map(|v| v.claims)
    }

    /// Verifies `token` and returns its claims with the `kid` and
    /// algorithm that verified it.
    pub async fn verify_token<T: DeserializeOwned>(&self, token: &str) -> Result<Verified<T>, Error> {
        record(self.verify_inner(token, None).await)
    }

    async fn verify_inner<T: DeserializeOwned>(
        &self,
        token: &str,
        presented: Option<Presented<'_>>,
    ) -> Result<Verified<T>, Error> {
        let unverified = token::parse(token, &self.inner.policy)?;
        let key = self.inner.cache.key(unverified.kid.as_deref()).await?;
        let rules = Rules { policy: &self.inner.policy, clock: &*self.inner.clock, dpop: &self.inner.dpop };
        rules.finish(token, unverified, &key, presented)
    }

    /// Fetches the JWKS now (sharing a fetch already in flight), e.g. on an
    /// operator's signal. Not needed in normal operation.
    pub async fn refresh(&self) -> Result<(), Error> {
        self.inner.cache.refresh().await
    }

    /// The state of the key cache, for health checks.
    pub fn status(&self) -> JwksStatus {
        self.inner.cache.status()
    }
}

/// Verifies tokens synchronously against a fixed JWK set: no network, no
/// cache, no runtime. Keys are parsed once, when it is built. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OfflineVerifier {
    inner: Arc<OfflineInner>,
}

#[derive(Debug)]
struct OfflineInner {
    policy: Policy,
    keys: KeySet,
    clock: Arc<dyn Clock>,
    dpop: Binding,
}

impl OfflineVerifier {
    /// Verifies `token` and returns its claims. A DPoP-bound token is
    /// refused with [`Error::DpopBound`] (see [`verify_dpop`](Self::verify_dpop)).
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        self.verify_as(token)
    }

    /// Verifies a DPoP-bound `token` with its `DPoP` header `proof`, for a
    /// request of `method` to `url`: see [`Verifier::verify_dpop`].
    pub fn verify_dpop(&self, token: &str, proof: &str, method: &str, url: &str) -> Result<Claims, Error> {
        self.verify_dpop_token(token, proof, method, url).map(|v| v.claims)
    }

    /// [`verify_dpop`](Self::verify_dpop) with the claims deserialised into
    /// `T`, and the `kid` and algorithm.
    pub fn verify_dpop_token<T: DeserializeOwned>(
        &self,
        token: &str,
        proof: &str,
        method: &str,
        url: &str,
    ) -> Result<Verified<T>, Error> {
        record(self.verify_inner(token, Some(Presented { proof, method, url })))
    }

    /// Verifies `token` and deserialises its claims into `T`.
    pub fn verify_as<T: DeserializeOwned>(&self, token: &str) -> Result<T, Error> {
        self.verify_token(token).map(|v| v.claims)
    }

    /// Verifies `token` and returns its claims with the `kid` and algorithm.
    pub fn verify_token<T: DeserializeOwned>(&self, token: &str) -> Result<Verified<T>, Error> {
        record(self.verify_inner(token, None))
    }

    fn verify_inner<T: DeserializeOwned>(
        &self,
        token: &str,
        presented: Option<Presented<'_>>,
    ) -> Result<Verified<T>, Error> {
        let unverified = token::parse(token, &self.inner.policy)?;
        let key = self
            .inner
            .keys
            .get(unverified.kid.as_deref())
            .ok_or_else(|| Error::UnknownKid { kid: unverified.kid.as_deref().map(crate::error::truncated) })?;
        let rules = Rules { policy: &self.inner.policy, clock: &*self.inner.clock, dpop: &self.inner.dpop };
        rules.finish(token, unverified, key, presented)
    }
}

/// What both verifiers check once they hold the token's key.
struct Rules<'a> {
    policy: &'a Policy,
    clock: &'a dyn Clock,
    dpop: &'a Binding,
}

impl Rules<'_> {
    /// The signature with `key`, the claims at the clock's time, the DPoP
    /// binding, the caller's claims type; and only then, once nothing else
    /// can refuse the token, the proof's `jti` is recorded.
    fn finish<T: DeserializeOwned>(
        &self,
        token: &str,
        unverified: token::Unverified<'_>,
        key: &jwks_jose::VerifyingKey,
        presented: Option<Presented<'_>>,
    ) -> Result<Verified<T>, Error> {
        token::check_signature(&unverified, key)?;
        let now = self.clock.now();
        let claims = token::check_claims(&unverified.parts.payload, self.policy, now)?;
        let pending = self.dpop.check(&claims, token, presented, now)?;
        let claims = token::into_claims(claims)?;
        self.dpop.record(pending, now)?;
        Ok(Verified { claims, kid: unverified.kid, alg: key.algorithm() })
    }
}

fn record<T>(result: Result<T, Error>) -> Result<T, Error> {
    let outcome = match &result {
        Ok(_) => "valid",
        Err(e) => e.code(),
    };
    metrics::counter!(telemetry::VERIFICATIONS, "outcome" => outcome).increment(1);
    if let Err(e) = &result {
        tracing::debug!(code = e.code(), error = %e, "token refused");
    }
    result
}
