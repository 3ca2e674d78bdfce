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

/// Cache timings, as set on the builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheConfig {
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) refetch_cooldown: Duration,
    pub(crate) max_stale: Duration,
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
    /// When the keys were last confirmed by the server (200 or 304).
    validated_at: SystemTime,
    ttl: Duration,
    etag: Option<String>,
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

    /// The background refresh is due at nine tenths of the lifetime.
    fn refresh_at(&self) -> SystemTime {
        self.validated_at.checked_add(self.ttl.mul_f64(0.9)).unwrap_or(self.validated_at)
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
    /// Fetch attempts so far (discovery included in the attempt).
    pub fetch_attempts: u64,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
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
        let (snapshot, outcome) = match fetched {
            Fetched::Body { body, etag, max_age } => {
                let keys = KeySet::parse(&body).map_err(|reason| FetchError::new("invalid", reason))?;
                tracing::debug!(keys = keys.len(), "JWKS fetched");
                (Snapshot { keys: Arc::new(keys), validated_at: now, ttl: self.ttl(max_age), etag }, "ok")
            }
            Fetched::NotModified { max_age } => {
                let Some(previous) = previous else {
                    return Err(FetchError::new("invalid", "304 Not Modified without a cached JWKS"));
                };
                let snapshot = Snapshot {
                    keys: Arc::clone(&previous.keys),
                    validated_at: now,
                    ttl: self.ttl(max_age),
                    etag: previous.etag.clone(),
                };
                (snapshot, "not_modified")
            }
        };
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

    fn ttl(&self, max_age: Option<Duration>) -> Duration {
        max_age.unwrap_or(DEFAULT_TTL).clamp(self.config.min_ttl, self.config.max_ttl)
    }

    /// When the background task should fetch next.
    fn next_refresh(&self) -> SystemTime {
        let state = self.state();
        let snapshot = self.current.load();
        match (&*snapshot, &state.last_error, state.last_attempt) {
            (Some(snapshot), None, _) => snapshot.refresh_at(),
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
