//! The key cache: the last good JWK set as an atomically swapped snapshot
//! that readers load without locks or allocation; one fetch at a time
//! (single flight); unknown-kid refetches limited by a cooldown; a
//! background task that refreshes before expiry; stale-if-error up to
//! `max_stale`.

use std::{
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwapOption;
use jwks_jose::VerifyingKey;
use tokio::sync::OwnedMutexGuard;
use url::Url;

use crate::{
    Clock, Error,
    error::truncated,
    http::{self, FetchError, Fetched},
    keys::KeySet,
    telemetry,
};

/// The freshness lifetime used when the JWKS response has no `max-age`
/// (before clamping to `[min_ttl, max_ttl]`).
const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The first retry delay after a failed fetch; it doubles up to `min_ttl`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

const ACCEPT_JWKS: &str = "application/jwk-set+json, application/json";

/// The background refresh happens at a random point between these
/// fractions of the freshness lifetime, so that a fleet started at once
/// does not refetch at once.
const REFRESH_FROM: f64 = 0.80;
const REFRESH_TO: f64 = 0.95;

/// A source of uniform random numbers in `[0, 1)` for the refresh jitter.
pub(crate) type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The default jitter: std's per-instance random hash keys, enough for
/// spreading refreshes (nothing secret depends on it).
pub(crate) fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    // 53 random bits as a fraction in [0, 1).
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Cache timings, as set on the builder.
#[derive(Clone)]
pub(crate) struct CacheConfig {
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) refetch_cooldown: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) jitter: Jitter,
}

impl std::fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheConfig")
            .field("min_ttl", &self.min_ttl)
            .field("max_ttl", &self.max_ttl)
            .field("refetch_cooldown", &self.refetch_cooldown)
            .field("max_stale", &self.max_stale)
            .finish_non_exhaustive()
    }
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) issuer: String,
    pub(crate) jwks_uri: Option<Url>,
    pub(crate) allow_http: bool,
}

/// One JWKS version with its freshness.
#[derive(Debug)]
struct Snapshot {
    keys: Arc<KeySet>,
    /// The JWKS document the keys came from, for export.
    document: Arc<str>,
    /// When the keys were last confirmed by the server (200 or 304).
    validated_at: SystemTime,
    /// The freshness left when they were: the clamped `max-age` less the
    /// response's `Age`, never below zero.
    ttl: Duration,
    etag: Option<String>,
    /// Where in `[0.80, 0.95]` of `ttl` the background refresh falls.
    refresh_fraction: f64,
}

impl Snapshot {
    fn expires_at(&self) -> SystemTime {
        self.validated_at.checked_add(self.ttl).unwrap_or(self.validated_at)
    }

    /// Past this, the keys are not used at all.
    fn unusable_after(&self, max_stale: Duration) -> SystemTime {
        let expires = self.expires_at();
        expires.checked_add(max_stale).unwrap_or(expires)
    }

    /// The background refresh is due at the jittered fraction of the
    /// lifetime, at least a second after validation; a copy that arrived
    /// already stale (zero freshness, a cache's old copy) is retried after
    /// the refetch cooldown instead.
    fn refresh_at(&self, cooldown: Duration) -> SystemTime {
        let wait = if self.ttl.is_zero() { cooldown } else { self.ttl.mul_f64(self.refresh_fraction).max(FIRST_RETRY) };
        self.validated_at.checked_add(wait).unwrap_or(self.validated_at)
    }
}

#[derive(Debug, Default)]
struct FetchState {
    discovered_uri: Option<Url>,
    last_miss_refetch: Option<SystemTime>,
    last_attempt: Option<SystemTime>,
    /// The reason of the last attempt, when it failed.
    last_error: Option<String>,
    consecutive_failures: u32,
}

/// The state of a verifier's key cache, for health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksStatus {
    /// Usable keys in the current set (0 before the first good fetch).
    pub keys: usize,
    /// When the server last confirmed the keys (200 or 304).
    pub validated_at: Option<SystemTime>,
    /// When the keys stop being fresh; between this and `max_stale` later
    /// they are served stale.
    pub expires_at: Option<SystemTime>,
    /// Whether verification can use the keys now (fresh or within `max_stale`).
    pub usable: bool,
    /// When the background refresh is due (jittered within 80–95 % of the
    /// freshness; after the refetch cooldown for a copy that came stale).
    pub refresh_at: Option<SystemTime>,
    /// Fetch attempts so far (discovery included in the attempt).
    pub fetch_attempts: u64,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// The keys of a verifier's cache, exported to be loaded by another
/// process (a serverless cold start) with
/// [`VerifierBuilder::snapshot`](crate::VerifierBuilder::snapshot).
/// Serialisable with serde; it holds public keys only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct CacheSnapshot {
    /// The issuer the keys belong to; a verifier of another issuer ignores it.
    pub issuer: String,
    /// The JWKS document.
    pub jwks: String,
    /// When the issuer last confirmed the keys, seconds since the epoch.
    pub validated_at: u64,
    /// The freshness left at `validated_at`, in seconds (after the
    /// clamp and the `Age` subtraction).
    pub ttl: u64,
    /// The document's ETag, for the next conditional request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

pub(crate) struct Cache {
    current: ArcSwapOption<Snapshot>,
    state: Mutex<FetchState>,
    /// Held for the whole of a fetch: concurrent misses queue on it and
    /// then find the fetch done (single flight).
    flight: Arc<tokio::sync::Mutex<()>>,
    /// Fetches started; bumped under the flight lock before each fetch.
    started: AtomicU64,
    /// Completed fetch attempts; bumped after the snapshot is swapped.
    attempts: AtomicU64,
    source: Source,
    client: reqwest::Client,
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("source", &self.source).field("config", &self.config).finish_non_exhaustive()
    }
}

enum Lookup {
    Hit(Arc<VerifyingKey>),
    Miss,
}

impl Cache {
    pub(crate) fn new(
        source: Source,
        client: reqwest::Client,
        config: CacheConfig,
        clock: Arc<dyn Clock>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Cache {
            current: ArcSwapOption::empty(),
            state: Mutex::new(FetchState::default()),
            flight: Arc::new(tokio::sync::Mutex::new(())),
            started: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            source,
            client,
            config,
            clock,
            runtime,
        }
    }

    fn state(&self) -> MutexGuard<'_, FetchState> {
        // The state is plain data updated in single assignments: a panic
        // elsewhere cannot leave it inconsistent, so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key for `kid`: from the cache when it is there, otherwise after
    /// at most one shared refetch (subject to the cooldown).
    pub(crate) async fn key(self: &Arc<Self>, kid: Option<&str>) -> Result<Arc<VerifyingKey>, Error> {
        let seen = self.started.load(Ordering::Acquire);
        if let Lookup::Hit(key) = self.lookup(kid) {
            return Ok(key);
        }
        if kid.is_none() && self.usable_keys().is_some_and(|n| n > 1) {
            // A refetch cannot make a kid-less token unambiguous.
            return Err(Error::UnknownKid { kid: None });
        }
        self.refetch_on_miss(seen).await;
        match self.lookup(kid) {
            Lookup::Hit(key) => Ok(key),
            Lookup::Miss => Err(self.miss_error(kid)),
        }
    }

    fn lookup(&self, kid: Option<&str>) -> Lookup {
        let now = self.clock.now();
        let guard = self.current.load();
        let Some(snapshot) = guard.as_ref() else { return Lookup::Miss };
        if now > snapshot.unusable_after(self.config.max_stale) {
            return Lookup::Miss;
        }
        match snapshot.keys.get(kid) {
            Some(key) => {
                if now >= snapshot.expires_at() {
                    metrics::counter!(telemetry::STALE_KEYS_SERVED).increment(1);
                }
                Lookup::Hit(Arc::clone(key))
            }
            None => Lookup::Miss,
        }
    }

    fn usable_keys(&self) -> Option<usize> {
        let now = self.clock.now();
        let guard = self.current.load();
        let snapshot = guard.as_ref()?;
        (now <= snapshot.unusable_after(self.config.max_stale)).then(|| snapshot.keys.len())
    }

    /// `jwks_unavailable` when the keys could not be had (never fetched,
    /// too old, or the last fetch failed), else `unknown_kid`.
    fn miss_error(&self, kid: Option<&str>) -> Error {
        let last_error = self.state().last_error.clone();
        let unavailable = |why: &str| Error::JwksUnavailable {
            reason: match &last_error {
                Some(e) => format!("{why}: {e}"),
                None => why.to_owned(),
            },
        };
        if self.current.load().is_none() {
            return unavailable("no JWKS fetched yet");
        }
        if self.usable_keys().is_none() {
            return unavailable("the last good JWKS is older than max_stale");
        }
        if last_error.is_some() {
            return unavailable("the kid is not in the last good JWKS and the endpoint is failing");
        }
        Error::UnknownKid { kid: kid.map(truncated) }
    }

    async fn refetch_on_miss(self: &Arc<Self>, seen: u64) {
        let guard = Arc::clone(&self.flight).lock_owned().await;
        if self.started.load(Ordering::Acquire) != seen {
            // A fetch started (and, the lock being free, finished) after this
            // verification looked: use its result. A fetch already in flight
            // when it looked may predate the new key, so it does not count.
            return;
        }
        let now = self.clock.now();
        {
            let mut state = self.state();
            let cooling = state
                .last_miss_refetch
                .and_then(|last| last.checked_add(self.config.refetch_cooldown))
                .is_some_and(|until| now < until);
            if cooling {
                metrics::counter!(telemetry::REFETCHES_REFUSED).increment(1);
                return;
            }
            state.last_miss_refetch = Some(now);
        }
        metrics::counter!(telemetry::UNKNOWN_KID_REFETCHES).increment(1);
        self.fetch_holding(guard).await;
    }

    /// Fetches now unless a fetch completed while waiting for the flight
    /// lock; returns the error of the attempt that was waited for, if any.
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<(), Error> {
        let seen = self.attempts.load(Ordering::Acquire);
        let guard = Arc::clone(&self.flight).lock_owned().await;
        if self.attempts.load(Ordering::Acquire) == seen {
            self.fetch_holding(guard).await;
        }
        match self.state().last_error.clone() {
            Some(reason) => Err(Error::JwksUnavailable { reason }),
            None => Ok(()),
        }
    }

    /// Runs one fetch on the verifier's runtime, holding the flight lock
    /// until it is done even if the caller goes away.
    async fn fetch_holding(self: &Arc<Self>, guard: OwnedMutexGuard<()>) {
        self.started.fetch_add(1, Ordering::AcqRel);
        let this = Arc::clone(self);
        let task = self.runtime.spawn(async move {
            this.fetch_now().await;
            drop(guard);
        });
        if let Err(e) = task.await {
            tracing::error!(error = %e, "JWKS fetch task failed");
        }
    }

    async fn fetch_now(&self) {
        let started = self.clock.now();
        let result = self.fetch_once().await;
        let outcome = match &result {
            Ok(outcome) => *outcome,
            Err(e) => e.outcome,
        };
        metrics::counter!(telemetry::FETCHES, "outcome" => outcome).increment(1);
        let mut state = self.state();
        state.last_attempt = Some(started);
        match result {
            Ok(_) => {
                state.last_error = None;
                state.consecutive_failures = 0;
            }
            Err(e) => {
                tracing::warn!(outcome = e.outcome, reason = %e.reason, "JWKS fetch failed; keeping the last good keys");
                state.last_error = Some(e.reason);
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            }
        }
        drop(state);
        self.attempts.fetch_add(1, Ordering::Release);
    }

    async fn fetch_once(&self) -> Result<&'static str, FetchError> {
        let uri = self.jwks_uri().await?;
        let previous = self.current.load_full();
        let etag = previous.as_ref().and_then(|s| s.etag.as_deref());
        let fetched = http::get(&self.client, &uri, ACCEPT_JWKS, etag).await?;
        let now = self.clock.now();
        let refresh_fraction = self.refresh_fraction();
        let (snapshot, outcome) = match fetched {
            Fetched::Body { body, etag, max_age, age } => {
                let keys = KeySet::parse(&body).map_err(|reason| FetchError::new("invalid", reason))?;
                let document: Arc<str> = String::from_utf8_lossy(&body).into();
                let ttl = self.ttl(max_age, age);
                tracing::debug!(keys = keys.len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
                (Snapshot { keys: Arc::new(keys), document, validated_at: now, ttl, etag, refresh_fraction }, "ok")
            }
            Fetched::NotModified { max_age, age } => {
                let Some(previous) = previous else {
                    return Err(FetchError::new("invalid", "304 Not Modified without a cached JWKS"));
                };
                let snapshot = Snapshot {
                    keys: Arc::clone(&previous.keys),
                    document: Arc::clone(&previous.document),
                    validated_at: now,
                    ttl: self.ttl(max_age, age),
                    etag: previous.etag.clone(),
                    refresh_fraction,
                };
                (snapshot, "not_modified")
            }
        };
        if snapshot.ttl.is_zero() {
            tracing::warn!("the JWKS response was already stale (Age at or past max-age); retrying after the cooldown");
        }
        self.current.store(Some(Arc::new(snapshot)));
        Ok(outcome)
    }

    async fn jwks_uri(&self) -> Result<Url, FetchError> {
        if let Some(uri) = &self.source.jwks_uri {
            return Ok(uri.clone());
        }
        if let Some(uri) = self.state().discovered_uri.clone() {
            return Ok(uri);
        }
        let uri = http::discover(&self.client, &self.source.issuer, self.source.allow_http).await?;
        tracing::info!(jwks_uri = %uri, "JWKS URI discovered");
        self.state().discovered_uri = Some(uri.clone());
        Ok(uri)
    }

    /// The freshness of a response: its `max-age` (or the default) clamped
    /// to `[min_ttl, max_ttl]`, less its `Age` (RFC 9111 §4.2.3), never
    /// below zero: keys are never held longer than the origin's `max-age`.
    fn ttl(&self, max_age: Option<Duration>, age: Duration) -> Duration {
        max_age.unwrap_or(DEFAULT_TTL).clamp(self.config.min_ttl, self.config.max_ttl).saturating_sub(age)
    }

    /// A uniform point in `[REFRESH_FROM, REFRESH_TO]`.
    fn refresh_fraction(&self) -> f64 {
        let unit = (self.config.jitter)();
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.5 };
        REFRESH_FROM + (REFRESH_TO - REFRESH_FROM) * unit
    }

    /// The current keys as a snapshot for [`crate::Verifier::export_snapshot`].
    pub(crate) fn export(&self) -> Option<CacheSnapshot> {
        let snapshot = self.current.load_full()?;
        Some(CacheSnapshot {
            issuer: self.source.issuer.clone(),
            jwks: snapshot.document.to_string(),
            validated_at: crate::clock::unix_seconds(snapshot.validated_at),
            ttl: snapshot.ttl.as_secs(),
            etag: snapshot.etag.clone(),
        })
    }

    /// Installs an exported snapshot, with the staleness rules of a fetch:
    /// fresh until `validated_at + ttl`, then served stale up to
    /// `max_stale`; a snapshot of another issuer, unparsable, or past
    /// `max_stale` is ignored. Answers whether it is still fresh.
    pub(crate) fn load(&self, exported: &CacheSnapshot) -> bool {
        if exported.issuer != self.source.issuer {
            tracing::warn!("ignoring a JWKS snapshot of another issuer");
            return false;
        }
        let keys = match KeySet::parse(exported.jwks.as_bytes()) {
            Ok(keys) => keys,
            Err(reason) => {
                tracing::warn!(%reason, "ignoring an unusable JWKS snapshot");
                return false;
            }
        };
        let snapshot = Snapshot {
            keys: Arc::new(keys),
            document: exported.jwks.as_str().into(),
            validated_at: std::time::UNIX_EPOCH + Duration::from_secs(exported.validated_at),
            ttl: Duration::from_secs(exported.ttl).min(self.config.max_ttl),
            etag: exported.etag.clone(),
            refresh_fraction: self.refresh_fraction(),
        };
        let now = self.clock.now();
        if now > snapshot.unusable_after(self.config.max_stale) {
            tracing::info!("ignoring a JWKS snapshot older than max_stale");
            return false;
        }
        let fresh = now < snapshot.expires_at();
        self.current.store(Some(Arc::new(snapshot)));
        fresh
    }

    /// When the background task should fetch next.
    fn next_refresh(&self) -> SystemTime {
        let state = self.state();
        let snapshot = self.current.load();
        match (&*snapshot, &state.last_error, state.last_attempt) {
            (Some(snapshot), None, _) => snapshot.refresh_at(self.config.refetch_cooldown),
            (_, _, Some(last)) => {
                let shift = state.consecutive_failures.saturating_sub(1).min(16);
                let delay = FIRST_RETRY.saturating_mul(1 << shift).min(self.config.min_ttl.max(FIRST_RETRY));
                last.checked_add(delay).unwrap_or(last)
            }
            (_, _, None) => self.clock.now(),
        }
    }

    pub(crate) fn status(&self) -> JwksStatus {
        let now = self.clock.now();
        let snapshot = self.current.load_full();
        let state = self.state();
        JwksStatus {
            keys: snapshot.as_ref().map_or(0, |s| s.keys.len()),
            validated_at: snapshot.as_ref().map(|s| s.validated_at),
            expires_at: snapshot.as_ref().map(|s| s.expires_at()),
            refresh_at: snapshot.as_ref().map(|s| s.refresh_at(self.config.refetch_cooldown)),
            usable: snapshot.as_ref().is_some_and(|s| now <= s.unusable_after(self.config.max_stale)),
            fetch_attempts: self.attempts.load(Ordering::Acquire),
            last_error: state.last_error.clone(),
        }
    }
}

/// Refreshes the cache before its keys expire, and retries failed
/// fetches with backoff, until the cache is dropped.
pub(crate) async fn refresher(cache: Weak<Cache>, clock: Arc<dyn Clock>) {
    loop {
        let deadline = match cache.upgrade() {
            Some(cache) => cache.next_refresh(),
            None => return,
        };
        if clock.now() < deadline {
            clock.sleep_until(deadline).await;
            continue;
        }
        let Some(cache) = cache.upgrade() else { return };
        // Failures are logged and recorded by the fetch itself.
        let _ = cache.refresh().await;
    }
}
