//! The key ring: what a running issuer signs with and publishes, held as an
//! immutable [`Snapshot`] that readers load without locks, rebuilt only when
//! the store or the derived key states change.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix_web::web::Bytes;
use arc_swap::ArcSwap;
use jwks_jose::{Algorithm, JwkSet, SigningKey, b64, crypto};

use super::{
    lifecycle::{self, Action, KeyMeta, KeyState, Policy},
    store::{Damaged, KeyRecord, KeyStore},
};
use crate::{
    Error,
    clock::{SharedClock, UnixTime},
};

/// How long a change waits for another process's store lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed key with what signing needs prepared once.
#[derive(Debug)]
pub struct ActiveKey {
    /// Id, algorithm and timeline.
    pub meta: KeyMeta,
    /// The parsed private key.
    pub key: SigningKey,
    /// `base64url({"alg":..,"typ":"at+jwt","kid":..})`, encoded once.
    pub header_b64: String,
}

impl ActiveKey {
    /// Prepares `key` (whose metadata is `meta`) for signing.
    pub fn new(meta: KeyMeta, key: SigningKey) -> Self {
        let header = serde_json::json!({"alg": meta.alg.as_str(), "typ": "at+jwt", "kid": meta.kid});
        let header_b64 = b64::encode(header.to_string());
        ActiveKey { meta, key, header_b64 }
    }
}

/// The JWKS response body, built once per key-set change.
#[derive(Debug, Clone)]
pub struct JwksDocument {
    /// `{"keys":[...]}`.
    pub body: Bytes,
    /// A strong ETag: the quoted base64url SHA-256 of the body.
    pub etag: String,
}

impl JwksDocument {
    fn build(keys: &[&ActiveKey]) -> Self {
        let set = JwkSet { keys: keys.iter().map(|k| k.key.public_jwk()).collect() };
        // Serializing a struct of strings cannot fail.
        let body = serde_json::to_vec(&set).unwrap_or_default();
        let etag = format!("\"{}\"", b64::encode(crypto::sha256(&body)));
        JwksDocument { body: Bytes::from(body), etag }
    }
}

/// What a running issuer holds at one moment.
#[derive(Debug)]
pub struct Snapshot {
    /// Every loaded key, by kid.
    pub keys: Vec<Arc<ActiveKey>>,
    signers: Vec<(Algorithm, Arc<ActiveKey>)>,
    /// The published JWKS.
    pub jwks: JwksDocument,
    /// Files that did not load.
    pub damaged: Vec<Damaged>,
    /// When the derived states next change.
    pub next_change: Option<UnixTime>,
    /// The store fingerprint this snapshot was loaded from.
    pub fingerprint: u64,
    /// When it was built.
    pub built_at: UnixTime,
}

impl Snapshot {
    /// The key that signs `alg` tokens.
    pub fn signer(&self, alg: Algorithm) -> Option<&Arc<ActiveKey>> {
        self.signers.iter().find(|(a, _)| *a == alg).map(|(_, k)| k)
    }

    /// The metadata of every key.
    pub fn metas(&self) -> Vec<KeyMeta> {
        self.keys.iter().map(|k| k.meta.clone()).collect()
    }
}

/// The key ring over a store.
#[derive(Debug)]
pub struct Keyring {
    store: Box<dyn KeyStore>,
    clock: SharedClock,
    algorithms: Vec<Algorithm>,
    policy: Policy,
    rsa_bits: usize,
    snapshot: ArcSwap<Snapshot>,
    last_failure: Mutex<Option<String>>,
    leader: AtomicBool,
    last_purge: std::sync::atomic::AtomicU64,
}

/// How often the rotation leader purges expired single-use claims.
const PURGE_EVERY: u64 = 60;

impl Keyring {
    /// Opens the ring over `store`: see [`Keyring::open_boxed`].
    pub fn open(
        store: impl KeyStore + 'static,
        clock: SharedClock,
        algorithms: Vec<Algorithm>,
        policy: Policy,
        rsa_bits: usize,
    ) -> Result<Self, Error> {
        Self::open_boxed(Box::new(store), clock, algorithms, policy, rsa_bits)
    }

    /// Opens the ring: loads every key and, when this process leads
    /// rotation (or a signing key is missing, as in an empty store),
    /// applies the lifecycle plan under the store lock. Blocking: call off
    /// the executor.
    pub fn open_boxed(
        store: Box<dyn KeyStore>,
        clock: SharedClock,
        algorithms: Vec<Algorithm>,
        policy: Policy,
        rsa_bits: usize,
    ) -> Result<Self, Error> {
        let now = clock.now();
        let empty = Snapshot {
            keys: Vec::new(),
            signers: Vec::new(),
            jwks: JwksDocument::build(&[]),
            damaged: Vec::new(),
            next_change: None,
            fingerprint: 0,
            built_at: now,
        };
        let ring = Keyring {
            store,
            clock,
            algorithms,
            policy,
            rsa_bits,
            snapshot: ArcSwap::from_pointee(empty),
            last_failure: Mutex::new(None),
            leader: AtomicBool::new(false),
            last_purge: std::sync::atomic::AtomicU64::new(now),
        };
        let leading = ring.store.try_lead()?;
        ring.set_leader(leading);
        if leading {
            ring.reconcile()?;
        } else {
            {
                let _lock = ring.store.lock(LOCK_TIMEOUT, ring.clock.as_ref())?;
                ring.reload()?;
            }
            let snap = ring.snapshot();
            if ring.algorithms.iter().any(|a| snap.signer(*a).is_none()) {
                // The leader has not created them yet: creating them under
                // the lock is safe, the plan sees what the leader made.
                ring.reconcile()?;
            }
        }
        Ok(ring)
    }

    /// Whether this process leads rotation (always, with a folder store).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    fn set_leader(&self, leading: bool) {
        let was = self.leader.swap(leading, Ordering::Relaxed);
        if self.store.elects_leader() && was != leading {
            if leading {
                tracing::info!(store = %self.store.location(), "took the rotation leader role: this replica plans rotation");
            } else {
                tracing::warn!(store = %self.store.location(), "no longer the rotation leader");
            }
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The store.
    pub fn store(&self) -> &dyn KeyStore {
        self.store.as_ref()
    }

    /// The last rotation failure, if the last attempt failed.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// One scheduler step: the rotation leader applies what the lifecycle
    /// plan needs (under the store lock); every process reloads when
    /// another changed the store or a key's state changed with time.
    /// Blocking.
    pub fn tick(&self) -> Result<(), Error> {
        let now = self.clock.now();
        let snap = self.snapshot();
        let leading = self.store.try_lead();
        self.set_leader(matches!(leading, Ok(true)));
        let result = leading.and_then(|leading| {
            if leading && now.saturating_sub(self.last_purge.load(Ordering::Relaxed)) >= PURGE_EVERY {
                self.last_purge.store(now, Ordering::Relaxed);
                match self.store.purge_claims(now) {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "expired single-use claims purged"),
                    Err(e) => tracing::warn!(error = %e, "purging expired single-use claims failed"),
                }
            }
            if leading && !lifecycle::plan(&snap.metas(), &self.algorithms, &self.policy, now).is_empty() {
                return self.reconcile();
            }
            let fp = self.store.fingerprint()?;
            if fp != snap.fingerprint {
                // Another process changed the store: read it under the
                // lock, so a change of several keys (`keys rotate --now`
                // for every algorithm) is seen whole, never half written.
                let _lock = self.store.lock(LOCK_TIMEOUT, self.clock.as_ref())?;
                self.reload()
            } else if snap.next_change.is_some_and(|t| now >= t) {
                self.reload()
            } else {
                Ok(())
            }
        });
        if result.is_err() && self.snapshot().next_change.is_some_and(|t| now >= t) {
            // The store cannot be read (a database down): the keys in memory
            // still change state with time, so a successor signs and a
            // retired key leaves the JWKS on schedule.
            self.rebuild_in_memory(now);
        }
        if let Ok(mut g) = self.last_failure.lock() {
            *g = result.as_ref().err().map(|e| e.to_string());
        }
        result
    }

    /// Re-derives the snapshot at `now` from the keys already loaded.
    fn rebuild_in_memory(&self, now: UnixTime) {
        let old = self.snapshot();
        let snapshot = build(old.keys.clone(), old.damaged.clone(), old.fingerprint, now, &self.algorithms);
        log_transitions(&old, &snapshot, now);
        self.snapshot.store(Arc::new(snapshot));
    }

    /// Takes the lock, applies the plan, and reloads.
    pub fn reconcile(&self) -> Result<(), Error> {
        let _lock = self.store.lock(LOCK_TIMEOUT, self.clock.as_ref())?;
        let swept = self.store.recover();
        if swept > 0 {
            tracing::info!(swept, "removed temp files left by an interrupted write");
        }
        let now = self.clock.now();
        let loaded = self.store.load()?;
        let metas: Vec<KeyMeta> = loaded.keys.iter().map(|r| r.meta.clone()).collect();
        let actions = lifecycle::plan(&metas, &self.algorithms, &self.policy, now);
        for action in actions {
            self.apply(&loaded.keys, action, now)?;
        }
        self.reload()
    }

    fn apply(&self, records: &[KeyRecord], action: Action, now: UnixTime) -> Result<(), Error> {
        match action {
            Action::Create { alg, timeline } => {
                let rec = self.generate(alg, timeline)?;
                tracing::info!(kid = %rec.meta.kid, %alg, activates = timeline.activates, "key created");
            }
            Action::Extend { kid, timeline } => {
                if let Some(r) = records.iter().find(|r| r.meta.kid == kid) {
                    let rec = KeyRecord { meta: KeyMeta { timeline, ..r.meta.clone() }, pkcs8: r.pkcs8.clone() };
                    self.store.put(&rec)?;
                    tracing::info!(%kid, deactivates = timeline.deactivates, activates = timeline.activates, "key timeline extended");
                }
            }
            Action::Delete { kid } => {
                self.store.delete(&kid)?;
                tracing::info!(%kid, now, "key expired and deleted");
            }
        }
        Ok(())
    }

    /// Generates and stores a key of `alg` with `timeline`. Call under the lock.
    pub fn generate(&self, alg: Algorithm, timeline: lifecycle::Timeline) -> Result<KeyRecord, Error> {
        let pkcs8 = SigningKey::generate(alg, self.rsa_bits).map_err(Error::Jose)?;
        let kid = SigningKey::from_pkcs8(alg, &pkcs8).map_err(Error::Jose)?.kid().to_string();
        let rec = KeyRecord { meta: KeyMeta { kid, alg, timeline }, pkcs8 };
        self.store.put(&rec)?;
        Ok(rec)
    }

    /// Reloads the store and swaps in a new snapshot, reusing parsed keys.
    pub fn reload(&self) -> Result<(), Error> {
        let fingerprint = self.store.fingerprint()?;
        let loaded = self.store.load()?;
        let now = self.clock.now();
        let old = self.snapshot();
        let known: HashMap<&str, &Arc<ActiveKey>> = old.keys.iter().map(|k| (k.meta.kid.as_str(), k)).collect();
        let mut keys = Vec::with_capacity(loaded.keys.len());
        for rec in loaded.keys {
            let reuse = known.get(rec.meta.kid.as_str()).filter(|k| k.meta.timeline == rec.meta.timeline);
            let key = match reuse {
                Some(k) => Arc::clone(k),
                None => Arc::new(ActiveKey::new(
                    rec.meta.clone(),
                    SigningKey::from_pkcs8(rec.meta.alg, &rec.pkcs8).map_err(Error::Jose)?,
                )),
            };
            keys.push(key);
        }
        for d in &loaded.damaged {
            tracing::error!(file = %d.file, kid = d.kid.as_deref().unwrap_or("?"), reason = %d.reason, "damaged key file skipped");
        }
        let snapshot = build(keys, loaded.damaged, fingerprint, now, &self.algorithms);
        log_transitions(&old, &snapshot, now);
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }
}

fn build(
    mut keys: Vec<Arc<ActiveKey>>,
    damaged: Vec<Damaged>,
    fingerprint: u64,
    now: UnixTime,
    algorithms: &[Algorithm],
) -> Snapshot {
    keys.sort_by(|a, b| (b.meta.timeline.activates, &a.meta.kid).cmp(&(a.meta.timeline.activates, &b.meta.kid)));
    let metas: Vec<KeyMeta> = keys.iter().map(|k| k.meta.clone()).collect();
    let signers = algorithms
        .iter()
        .filter_map(|&alg| {
            let m = lifecycle::signer(&metas, alg, now)?;
            keys.iter().find(|k| k.meta.kid == m.kid).map(|k| (alg, Arc::clone(k)))
        })
        .collect();
    let published: Vec<&ActiveKey> =
        keys.iter().filter(|k| k.meta.timeline.is_published(now)).map(|k| k.as_ref()).collect();
    let jwks = JwksDocument::build(&published);
    let next_change = keys.iter().filter_map(|k| k.meta.timeline.next_change_after(now)).min();
    Snapshot { keys, signers, jwks, damaged, next_change, fingerprint, built_at: now }
}

fn log_transitions(old: &Snapshot, new: &Snapshot, now: UnixTime) {
    for k in &new.keys {
        let state = k.meta.timeline.state(now);
        let before = old.keys.iter().find(|o| o.meta.kid == k.meta.kid).map(|o| o.meta.timeline.state(old.built_at));
        if before != Some(state) {
            let event = match state {
                KeyState::Pending => "published",
                KeyState::Active => "activated",
                KeyState::Retiring => "retired",
                KeyState::Expired => "expired",
                KeyState::Revoked => "revoked",
            };
            tracing::info!(kid = %k.meta.kid, alg = %k.meta.alg, state = %state, "key {event}");
        }
    }
}
