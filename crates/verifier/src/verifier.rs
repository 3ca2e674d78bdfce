//! The builder, the async [`Verifier`] over a remote JWKS and the
//! synchronous [`OfflineVerifier`] over a fixed JWK set.

use std::{sync::Arc, time::Duration};

use jwks_jose::{Algorithm, JwkSet};
use serde::de::DeserializeOwned;
use url::Url;

use crate::{
    Claims, Clock, Error, JwksStatus, SystemClock,
    cache::{self, Cache, CacheConfig, CacheSnapshot, Source},
    dpop::{self, Binding, Presented},
    http,
    keys::KeySet,
    nonce::NoncePolicy,
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
    transport: http::Transport,
    client: Option<reqwest::Client>,
    snapshot: Option<CacheSnapshot>,
    dpop_nonce: Option<Arc<dyn NoncePolicy>>,
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
                jitter: Arc::new(cache::random_unit),
            },
            snapshot: None,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            dpop_iat_window: Duration::from_secs(60),
            dpop_replay_capacity: dpop::ReplayCache::DEFAULT_MAX_TOTAL,
            dpop_replay_capacity_per_key: dpop::ReplayCache::DEFAULT_MAX_PER_PARTITION,
            transport: http::Transport::default(),
            client: None,
            dpop_nonce: None,
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

    /// The source of uniform random numbers in `[0, 1)` that places each
    /// background refresh between 80 % and 95 % of the keys' freshness.
    /// Defaults to a random source; tests inject a fixed one.
    pub fn refresh_jitter(mut self, unit: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.cache.jitter = Arc::new(unit);
        self
    }

    /// Starts from keys exported by [`Verifier::export_snapshot`] (another
    /// process's, for a serverless cold start): still fresh, they are used
    /// without a first fetch; stale, they are served up to `max_stale`
    /// while the first fetch runs; older, or of another issuer, they are
    /// ignored. Defaults to none.
    pub fn snapshot(mut self, snapshot: CacheSnapshot) -> Self {
        self.snapshot = Some(snapshot);
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

    /// Server nonces for DPoP proofs (RFC 9449 §9), e.g.
    /// [`StatelessNonces`](crate::nonce::StatelessNonces): proofs then carry
    /// the server's nonce as the policy says, a proof with an `iat` outside
    /// the window is accepted with a valid nonce, and refusals of the nonce
    /// rule are [`Error::UseDpopNonce`]. [`Verifier::dpop_nonce`] makes the
    /// fresh nonce to send. Defaults to none (proofs carry no nonce).
    pub fn dpop_nonce(mut self, policy: Arc<dyn NoncePolicy>) -> Self {
        self.dpop_nonce = Some(policy);
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

    /// Adds the root CAs of a PEM file (read when the verifier is built,
    /// off the async executor) to the roots the JWKS client trusts, e.g. an
    /// internal CA. Defaults to none.
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.transport.ca_files.push(path.into());
        self
    }

    /// Adds the root CAs of PEM text to the trusted roots. Defaults to none.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.transport.ca_pems.push(pem.into());
        self
    }

    /// Trusts the platform's root certificates (read by
    /// `rustls-native-certs`, feature `native-roots`) instead of the
    /// Mozilla roots of `webpki-roots`. Defaults to `false`.
    pub fn native_roots(mut self, native: bool) -> Self {
        self.transport.native_roots = native;
        self
    }

    /// Whether the `SSL_CERT_FILE` environment variable, when set, names
    /// the root certificates to trust instead of the default roots (as
    /// OpenSSL and `rustls-native-certs` read it); [`ca_file`](Self::ca_file)s
    /// are added to them. Defaults to `true`.
    pub fn ssl_cert_file_from_env(mut self, honour: bool) -> Self {
        self.transport.ssl_cert_file = honour;
        self
    }

    /// Sends every JWKS and discovery request through this proxy
    /// (`https://proxy:3128` or `http://proxy:3128`; HTTPS targets are
    /// tunnelled with CONNECT). Defaults to the `HTTPS_PROXY` / `ALL_PROXY`
    /// environment, as reqwest reads it.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.transport.proxy = Some(url.into());
        self
    }

    /// Adds a header to every JWKS and discovery request (an API gateway
    /// key, say); a `User-Agent` replaces the default
    /// `jwks-verifier/VERSION`. Invalid names or values fail the build.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.transport.headers.push((name.into(), value.into()));
        self
    }

    /// Uses the caller's own client for every request, instead of one built
    /// from the transport settings and timeouts above (which it then
    /// ignores). Its redirect policy, TLS roots and timeouts are the
    /// caller's: keep redirects to the same host and set a timeout.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The configured issuer, if any.
    pub(crate) fn issuer_name(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The caller's client, or one built from the transport settings (the
    /// CA files read on a blocking thread).
    pub(crate) async fn make_client(&self) -> Result<reqwest::Client, Error> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let transport = self.transport.clone();
        let env_file = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
        let roots = tokio::task::spawn_blocking(move || http::roots(&transport, env_file.as_deref()))
            .await
            .map_err(|e| Error::config(format!("reading CA files: {e}")))?
            .map_err(Error::config)?;
        http::client(self.connect_timeout, self.timeout, self.allow_http, &self.transport, roots).map_err(Error::config)
    }

    fn binding(&self) -> Binding {
        let per_key = self.dpop_replay_capacity_per_key.min(self.dpop_replay_capacity);
        Binding {
            algorithms: self.algorithms.clone(),
            iat_window: self.dpop_iat_window,
            replay: dpop::ReplayCache::new(self.dpop_replay_capacity, per_key),
            nonce: self.dpop_nonce.clone(),
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
        let c = self.cache.clone();
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
        let client = self.make_client().await?;
        let source = Source { issuer: policy.issuer.clone(), jwks_uri, allow_http: self.allow_http };
        let cache = Arc::new(Cache::new(source, client, c, Arc::clone(&self.clock), runtime.clone()));
        let fresh = self.snapshot.as_ref().is_some_and(|s| cache.load(s));
        if !fresh && let Err(e) = cache.refresh().await {
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

    /// A fresh DPoP nonce at the verifier's clock, for the `DPoP-Nonce`
    /// header of a response to a DPoP request (RFC 9449 §9); `None` without
    /// a [nonce policy](VerifierBuilder::dpop_nonce).
    pub fn dpop_nonce(&self) -> Option<String> {
        self.inner.dpop.fresh_nonce(self.inner.clock.now())
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

    /// The current keys, to load into another process's verifier with
    /// [`VerifierBuilder::snapshot`]; `None` before the first good fetch.
    pub fn export_snapshot(&self) -> Option<CacheSnapshot> {
        self.inner.cache.export()
    }

    /// The issuer whose tokens this verifier accepts.
    pub fn issuer(&self) -> &str {
        &self.inner.policy.issuer
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

    /// A fresh DPoP nonce: see [`Verifier::dpop_nonce`].
    pub fn dpop_nonce(&self) -> Option<String> {
        self.inner.dpop.fresh_nonce(self.inner.clock.now())
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
