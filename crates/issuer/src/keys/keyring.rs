//! The key ring: what a running issuer signs with and publishes, held as an
//! immutable [`Snapshot`] that readers load without locks, rebuilt only when
//! the store or the derived key states change.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use actix_web::web::Bytes;
use arc_swap::ArcSwap;
use jwks_jose::{Algorithm, JwkSet, SigningKey, b64, clock::UnixTime, crypto};

use super::{
    apply::{self, Fresh},
    coordination::{Coordination, Solo},
    lifecycle::{self, KeyMeta, KeyState, Policy},
    screen::screened,
    store::{Damaged, KeyRecord, KeyStore, LOCK_TIMEOUT, Loaded, StoreLock},
};
use crate::{Error, clock::SharedClock};

/// A parsed key with what signing needs prepared once.
#[derive(Debug)]
pub struct ActiveKey {
    /// Id, algorithm and timeline.
    pub meta: KeyMeta,
    /// The parsed private key.
    pub key: Arc<SigningKey>,
    /// `base64url({"alg":..,"typ":"at+jwt","kid":..})`, encoded once.
    pub header_b64: String,
}

impl ActiveKey {
    /// Prepares `key` (whose metadata is `meta`) for signing.
    pub fn new(meta: KeyMeta, key: Arc<SigningKey>) -> Self {
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
    coordination: Box<dyn Coordination>,
    clock: SharedClock,
    algorithms: Vec<Algorithm>,
    policy: Policy,
    rsa_bits: usize,
    snapshot: ArcSwap<Snapshot>,
    last_failure: Mutex<Option<String>>,
    leader: AtomicBool,
}

impl Keyring {
    /// Opens the ring over a folder (or any store whose processes all
    /// plan under its lock): see [`Keyring::open_with`].
    pub fn open(
        store: impl KeyStore + 'static,
        clock: SharedClock,
        algorithms: Vec<Algorithm>,
        policy: Policy,
        rsa_bits: usize,
    ) -> Result<Self, Error> {
        Self::open_with(Box::new(store), Box::new(Solo), clock, algorithms, policy, rsa_bits)
    }

    /// Opens the ring: reads every key under the store lock and, when this
    /// process leads rotation (or a signing key is missing, as in an empty
    /// store), applies the lifecycle plan under that same lock. Blocking:
    /// call off the executor.
    pub fn open_with(
        store: Box<dyn KeyStore>,
        coordination: Box<dyn Coordination>,
        clock: SharedClock,
        algorithms: Vec<Algorithm>,
        policy: Policy,
        rsa_bits: usize,
    ) -> Result<Self, Error> {
        let now = clock.unix_now();
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
            coordination,
            clock,
            algorithms,
            policy,
            rsa_bits,
            snapshot: ArcSwap::from_pointee(empty),
            last_failure: Mutex::new(None),
            leader: AtomicBool::new(false),
        };
        let leading = ring.coordination.try_lead()?;
        ring.set_leader(leading);
        let lock = ring.store.lock(LOCK_TIMEOUT)?;
        let loaded = screened(ring.store.read(Some(&lock))?, &ring.policy);
        if loaded.none_opens() {
            // A wrong KEK, or every file damaged: creating first keys here
            // would replace, unannounced, the keys that verifiers and the
            // other servers hold.
            return Err(loaded.refusal(
                &ring.store.location(),
                "none can be opened, so nothing is served and nothing is written (first keys are created only \
                 in an empty store)",
            ));
        }
        let missing = ring.algorithms.iter().any(|&a| lifecycle::signer(&metas(&loaded.keys), a, now).is_none());
        if !loaded.damaged.is_empty() {
            let refusal = Loaded { damaged: loaded.damaged.clone(), ..Loaded::default() };
            ring.install(loaded);
            if missing {
                return Err(refusal.refusal(
                    &ring.store.location(),
                    "a configured algorithm has no signing key, and none is created while stored keys cannot be \
                     opened",
                ));
            }
            tracing::error!(
                error = %refusal.refusal(&ring.store.location(), "signing continues with the keys that open; rotation is suspended"),
                "damaged key documents"
            );
            return Ok(ring);
        }
        // The leader plans; another replica creates keys only when one is
        // missing (the leader has not created them yet: under the lock the
        // plan sees what the leader made).
        if leading || missing {
            ring.reconcile_locked(&lock, loaded)?;
        } else {
            ring.install(loaded);
        }
        Ok(ring)
    }

    /// Whether this process leads rotation (always, with a folder store).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    fn set_leader(&self, leading: bool) {
        let was = self.leader.swap(leading, Ordering::Relaxed);
        if self.coordination.elects_leader() && was != leading {
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

    /// Leadership and change notification.
    pub fn coordination(&self) -> &dyn Coordination {
        self.coordination.as_ref()
    }

    /// The last rotation failure, if the last attempt failed.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// One scheduler step: the rotation leader applies what the lifecycle
    /// plan needs (under the store lock); every process reloads when
    /// another changed the store, and rebuilds in memory when only time
    /// passed. Blocking.
    pub fn tick(&self) -> Result<(), Error> {
        let now = self.clock.unix_now();
        let snap = self.snapshot();
        let leading = self.coordination.try_lead();
        self.set_leader(matches!(leading, Ok(true)));
        let result = leading.and_then(|leading| {
            if leading && !lifecycle::plan(&snap.metas(), &self.algorithms, &self.policy, now).is_empty() {
                return self.reconcile();
            }
            let fp = self.store.fingerprint()?;
            if fp != snap.fingerprint {
                // Another process changed the store: one consistent read
                // (a folder under its lock, PostgreSQL in one snapshot
                // transaction), so a change of several keys is seen whole.
                self.reload()
            } else if snap.next_change.is_some_and(|t| now >= t) {
                // Only time passed (a key activates, retires, leaves the
                // JWKS): rebuilt in memory, no store read, no unsealing.
                self.rebuild_in_memory(now);
                Ok(())
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

    /// Takes the lock, reads the store once, applies the plan, and installs
    /// the result. Writes nothing when some stored key cannot be opened
    /// ([`Loaded::writable`]).
    pub fn reconcile(&self) -> Result<(), Error> {
        let lock = self.store.lock(LOCK_TIMEOUT)?;
        let loaded = screened(self.store.read(Some(&lock))?, &self.policy);
        self.reconcile_locked(&lock, loaded)
    }

    /// [`Keyring::reconcile`] on `loaded`, read under `held`.
    fn reconcile_locked(&self, held: &StoreLock, loaded: Loaded) -> Result<(), Error> {
        if let Err(e) = loaded.writable(&self.store.location()) {
            self.install(loaded);
            return Err(e);
        }
        let swept = self.store.recover(held);
        if swept > 0 {
            tracing::info!(swept, "removed temp files left by an interrupted write");
        }
        let keys = metas(&loaded.keys);
        let prepared = apply::prepare(self.clock.as_ref(), self.rsa_bits, Fresh::default(), |now| {
            lifecycle::plan(&keys, &self.algorithms, &self.policy, now)
        })?;
        if prepared.actions.is_empty() {
            self.install(loaded);
            return Ok(());
        }
        let applied = apply::apply(self.store.as_ref(), held, &loaded.keys, prepared)?;
        // The store's keys are what was read plus what was written: no
        // second read, no second parse.
        let fingerprint = self.store.fingerprint()?;
        self.install(Loaded { keys: applied.keys, damaged: Vec::new(), fingerprint });
        Ok(())
    }

    /// Reads the store (one consistent read) and swaps in a new snapshot.
    pub fn reload(&self) -> Result<(), Error> {
        let loaded = screened(self.store.read(None)?, &self.policy);
        self.install(loaded);
        Ok(())
    }

    /// Swaps in the snapshot of `loaded`, reusing prepared keys whose
    /// timeline did not change. Keys were parsed once, when read or made.
    fn install(&self, loaded: Loaded) {
        let now = self.clock.unix_now();
        let old = self.snapshot();
        let known: HashMap<&str, &Arc<ActiveKey>> = old.keys.iter().map(|k| (k.meta.kid.as_str(), k)).collect();
        let keys = loaded
            .keys
            .into_iter()
            .map(|rec| match known.get(rec.meta.kid.as_str()).filter(|k| k.meta.timeline == rec.meta.timeline) {
                Some(k) => Arc::clone(k),
                None => Arc::new(ActiveKey::new(rec.meta, rec.key)),
            })
            .collect();
        for d in &loaded.damaged {
            if !old.damaged.contains(d) {
                tracing::error!(file = %d.file, kid = d.kid.as_deref().unwrap_or("?"), reason = %d.reason, "damaged key file skipped");
            }
        }
        let snapshot = build(keys, loaded.damaged, loaded.fingerprint, now, &self.algorithms);
        log_transitions(&old, &snapshot, now);
        self.snapshot.store(Arc::new(snapshot));
    }
}

fn metas(records: &[KeyRecord]) -> Vec<KeyMeta> {
    records.iter().map(|r| r.meta.clone()).collect()
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

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, fs, path::Path, time::Duration};

    use jwks_jose::crypto::Sealer;

    use super::*;
    use jwks_jose::clock::ManualClock;

    use crate::keys::{DirStore, lifecycle::Timeline};

    const T0: u64 = 1_800_000_000;

    fn policy() -> Policy {
        Policy {
            rotation_period: Duration::from_secs(3600),
            publish_ahead: Duration::from_secs(600),
            retire_after: Duration::from_secs(1200),
        }
    }

    fn sealer(b: u8) -> Option<Sealer> {
        Some(Sealer::new(&[b; 32]).unwrap())
    }

    fn ring(dir: &Path, kek: Option<Sealer>, clock: &ManualClock) -> Result<Keyring, Error> {
        let store = DirStore::open(dir, kek)?;
        Keyring::open(store, Arc::new(clock.clone()), vec![Algorithm::ES256], policy(), 2048)
    }

    /// Every file of the folder with its bytes.
    fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap_or_default()))
            .collect()
    }

    fn es256_record(timeline: Timeline) -> KeyRecord {
        let pkcs8 = SigningKey::generate(Algorithm::ES256, 2048).unwrap();
        KeyRecord::new(Algorithm::ES256, pkcs8, timeline).unwrap()
    }

    #[test]
    fn wrong_kek_stops_serve_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(UnixTime::from_secs(T0));
        let first = ring(tmp.path(), sealer(1), &clock).unwrap();
        let kid = first.snapshot().signer(Algorithm::ES256).unwrap().meta.kid.clone();
        drop(first);
        let before = contents(tmp.path());
        // Even when a successor is due: nothing is planned or written.
        clock.advance(Duration::from_secs(3500));
        let err = ring(tmp.path(), sealer(2), &clock).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Kek(_)), "{err:?}");
        assert!(msg.contains("cannot be opened") && msg.contains(ENV_KEK_NAME) && msg.contains(&kid), "{msg}");
        assert!(msg.contains("only in an empty store"), "{msg}");
        assert_eq!(contents(tmp.path()), before, "the store is left as it was");
        // Without any KEK the same.
        assert!(ring(tmp.path(), None, &clock).is_err());
        assert_eq!(contents(tmp.path()), before);
        // The right KEK still opens it and rotates.
        let again = ring(tmp.path(), sealer(1), &clock).unwrap();
        assert_eq!(again.snapshot().keys.len(), 2, "the successor is created by the right process");
    }

    const ENV_KEK_NAME: &str = crate::keys::kek::ENV_KEK;

    #[test]
    fn a_damaged_key_file_suspends_rotation_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(UnixTime::from_secs(T0));
        let ring = ring(tmp.path(), None, &clock).unwrap();
        fs::write(tmp.path().join("AAAA.json"), b"{ not json").unwrap();
        ring.tick().unwrap();
        assert_eq!(ring.snapshot().damaged.len(), 1);
        let before = contents(tmp.path());
        clock.advance(Duration::from_secs(3500)); // a successor is due
        let err = ring.tick().unwrap_err();
        assert!(err.to_string().contains("AAAA.json") && err.to_string().contains("nothing is written"), "{err}");
        assert_eq!(contents(tmp.path()), before);
        assert!(ring.snapshot().signer(Algorithm::ES256).is_some(), "signing goes on with the key that opens");
        // Removing the damaged file lets rotation resume.
        fs::remove_file(tmp.path().join("AAAA.json")).unwrap();
        ring.tick().unwrap();
        assert_eq!(ring.snapshot().keys.len(), 2);
        assert!(ring.snapshot().damaged.is_empty());
    }

    #[test]
    fn clear_key_file_is_refused_when_a_kek_is_set() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(UnixTime::from_secs(T0));
        let ring = ring(tmp.path(), sealer(1), &clock).unwrap();
        let real = ring.snapshot().signer(Algorithm::ES256).unwrap().meta.kid.clone();
        // Someone who can write the folder but has no KEK plants a key in
        // clear that would sign from now on (it activated last).
        let planted = es256_record(policy().immediate(UnixTime::from_secs(T0 + 10)));
        DirStore::open(tmp.path(), None).unwrap().test_put(&planted).unwrap();
        clock.advance(Duration::from_secs(20));
        ring.tick().unwrap();
        let snap = ring.snapshot();
        assert_eq!(snap.signer(Algorithm::ES256).unwrap().meta.kid, real, "the planted key never signs");
        let body = String::from_utf8(snap.jwks.body.to_vec()).unwrap();
        assert!(!body.contains(&planted.meta.kid), "the planted key is never published: {body}");
        assert_eq!(snap.damaged.len(), 1);
        assert_eq!(snap.damaged[0].kid.as_deref(), Some(planted.meta.kid.as_str()));
        assert!(snap.damaged[0].reason.contains("in clear"), "{:?}", snap.damaged);
    }

    #[test]
    fn a_timeline_edited_to_sign_for_longer_than_the_policy_allows_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(UnixTime::from_secs(T0));
        let store = DirStore::open(tmp.path(), sealer(1)).unwrap();
        let rec = es256_record(policy().immediate(UnixTime::from_secs(T0)));
        store.test_put(&rec).unwrap();
        // The timeline is not sealed: an edit keeps the file loadable.
        let path = tmp.path().join(format!("{}.json", rec.meta.kid));
        let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        doc["timeline"]["deactivates"] = serde_json::json!(T0 + 10 * 365 * 86400);
        doc["timeline"]["expires"] = serde_json::json!(T0 + 10 * 365 * 86400 + 1200);
        fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(store.test_load().unwrap().keys.len(), 1, "the store itself still decodes it");
        let screened = crate::keys::screen::load_screened(&store, &policy()).unwrap();
        assert!(screened.keys.is_empty());
        assert!(screened.damaged[0].reason.contains("longer than this policy allows"), "{:?}", screened.damaged);
        // And the server refuses to start on it rather than replace it.
        assert!(ring(tmp.path(), sealer(1), &clock).is_err());
        // Out-of-order instants are refused too.
        let mut t = policy().immediate(UnixTime::from_secs(T0));
        t.activates = t.deactivates.saturating_add_secs(1);
        assert!(policy().check(&t).is_err());
        assert!(policy().check(&policy().ahead(UnixTime::from_secs(T0), UnixTime::from_secs(T0))).is_ok());
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // measures the CPU time of a tick
    fn a_time_only_change_reads_nothing_from_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(UnixTime::from_secs(T0));
        // 20 keys: 19 retiring ones and the signer.
        let store = DirStore::open(tmp.path(), sealer(1)).unwrap();
        for i in 0..19u64 {
            let mut t = policy().immediate(UnixTime::from_secs(T0 - 1100 + i));
            t.deactivates = UnixTime::from_secs(T0 - 1100 + i + 1);
            t.expires = t.deactivates.saturating_add_secs(1200);
            store.test_put(&es256_record(t)).unwrap();
        }
        let counting = Instrumented::new(store);
        let (loads, parses) = (counting.loads.clone(), counting.parses.clone());
        let ring = Keyring::open(counting, Arc::new(clock.clone()), vec![Algorithm::ES256], policy(), 2048).unwrap();
        let at_open = loads.load(Ordering::SeqCst);
        let before = ring.snapshot();
        assert_eq!(before.keys.len(), 20);
        // The next change is a retiring key leaving the JWKS: time only.
        clock.set(before.next_change.unwrap().to_system_time());
        let started = std::time::Instant::now();
        ring.tick().unwrap();
        let took = started.elapsed();
        assert_eq!(loads.load(Ordering::SeqCst), at_open, "no store read for a change that is only time passing");
        assert_ne!(ring.snapshot().jwks.etag, before.jwks.etag, "the JWKS changed all the same");
        // A quiet tick with 20 keys: a fingerprint, nothing else.
        let started = std::time::Instant::now();
        for _ in 0..100 {
            ring.tick().unwrap();
        }
        let quiet = started.elapsed() / 100;
        assert_eq!(loads.load(Ordering::SeqCst), at_open);
        // A rotation: the leader reads the store once, under the lock, and
        // installs what it wrote without reading or parsing it again.
        // The successor made at open signs last: its successor is due.
        let last = ring.snapshot().keys.iter().map(|k| k.meta.timeline.deactivates).max().unwrap();
        let parses_before = parses.load(Ordering::SeqCst);
        let read_keys = ring.snapshot().keys.len();
        clock.set(last.saturating_sub_secs(600 + 1).to_system_time());
        let cpu = thread_cpu();
        ring.tick().unwrap();
        let rotation_cpu = thread_cpu() - cpu;
        assert_eq!(ring.snapshot().keys.len(), 2, "the expired keys went, a successor came");
        let per_rotation = loads.load(Ordering::SeqCst) - at_open;
        assert_eq!(per_rotation, 1, "{per_rotation} store reads for one rotation");
        let parsed = parses.load(Ordering::SeqCst) - parses_before;
        assert_eq!(parsed, read_keys, "each stored key is parsed once, in the one read");
        // The CPU of one tick with 20 keys, on this thread.
        let cpu = thread_cpu();
        for _ in 0..100 {
            ring.tick().unwrap();
        }
        let quiet_cpu = (thread_cpu() - cpu) / 100;
        eprintln!(
            "loads at open {at_open}, per rotation {per_rotation} ({parsed} key parses, {rotation_cpu:?} CPU with an \
             RSA-free ES256 key made); tick with 20 keys: {took:?} at a time-only change, {quiet:?} when quiet \
             ({quiet_cpu:?} CPU)"
        );
    }

    /// The CPU time this thread has used (`/proc/thread-self/schedstat`).
    fn thread_cpu() -> Duration {
        let text = fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        Duration::from_nanos(text.split_whitespace().next().unwrap().parse().unwrap())
    }

    /// A small xorshift: reproducible random operations without a dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// A folder store that counts its reads and the keys they parse, and
    /// stops after `budget` more writes (a crash between two writes of one
    /// list); a negative budget never stops.
    #[derive(Debug)]
    struct Instrumented {
        inner: DirStore,
        loads: Arc<std::sync::atomic::AtomicUsize>,
        parses: Arc<std::sync::atomic::AtomicUsize>,
        budget: Arc<std::sync::atomic::AtomicIsize>,
    }

    impl Instrumented {
        fn new(inner: DirStore) -> Self {
            Instrumented {
                inner,
                loads: Arc::default(),
                parses: Arc::default(),
                budget: Arc::new(std::sync::atomic::AtomicIsize::new(-1)),
            }
        }
    }

    impl KeyStore for Instrumented {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn is_sealed(&self) -> bool {
            KeyStore::is_sealed(&self.inner)
        }
        fn lock(&self, timeout: Duration) -> Result<StoreLock, Error> {
            KeyStore::lock(&self.inner, timeout)
        }
        fn fingerprint(&self) -> Result<u64, Error> {
            KeyStore::fingerprint(&self.inner)
        }
        fn read(&self, held: Option<&StoreLock>) -> Result<Loaded, Error> {
            let loaded = KeyStore::read(&self.inner, held)?;
            self.loads.fetch_add(1, Ordering::SeqCst);
            // Every document read is unsealed and parsed once by the store.
            self.parses.fetch_add(loaded.keys.len(), Ordering::SeqCst);
            Ok(loaded)
        }
        fn write(&self, held: &StoreLock, writes: &[crate::keys::Write]) -> Result<(), Error> {
            for w in writes {
                if self.budget.fetch_sub(1, Ordering::SeqCst) == 0 {
                    return Err(Error::Store("crashed".into()));
                }
                KeyStore::write(&self.inner, held, std::slice::from_ref(w))?;
            }
            Ok(())
        }
        fn recover(&self, held: &StoreLock) -> usize {
            KeyStore::recover(&self.inner, held)
        }
    }

    /// The kids and timelines the folder holds, read as a new process would.
    fn stored(dir: &Path) -> Vec<KeyMeta> {
        let loaded = crate::keys::screen::load_screened(&DirStore::open(dir, None).unwrap(), &policy()).unwrap();
        assert!(loaded.damaged.is_empty(), "{:?}", loaded.damaged);
        loaded.keys.into_iter().map(|r| r.meta).collect()
    }

    /// The model-based test of the planner and the apply path (#15):
    /// random sequences of scheduler ticks, `keys rotate`, `rotate --now`,
    /// `revoke`, `import`, process restarts, crashes between any two store
    /// writes (and the restart after them) and clock jumps forward (now and
    /// then past every key's expiry), on one folder, checking after every
    /// step:
    /// - exactly one signer (and one `active` key), and the ring signs with it;
    /// - every signer was published `publish_ahead` (which `check-config`
    ///   holds at `jwks.max_age` plus the follow interval or more) before it
    ///   signs, except the first keys, `--now`, a revoke's replacement and
    ///   keys made when nothing signed;
    /// - a key stays published `retire_after` after it last signed, unless
    ///   revoked;
    /// - nothing is lost (a key leaves only once expired) or duplicated (at
    ///   most one successor waits to sign), and every timeline passes the
    ///   load-time check.
    #[test]
    fn random_operations_keep_the_lifecycle_invariants() {
        use jwks_jose::clock::Clock;

        use crate::keys::ops;
        let p = policy();
        let ahead = p.publish_ahead.as_secs();
        let open = |dir: &Path, clock: &ManualClock, budget: &Arc<std::sync::atomic::AtomicIsize>| {
            let store =
                Instrumented { budget: budget.clone(), ..Instrumented::new(DirStore::open(dir, None).unwrap()) };
            Keyring::open(store, Arc::new(clock.clone()), vec![Algorithm::ES256], p, 2048).unwrap()
        };
        let (mut crashes, mut steps) = (0, 0);
        for seed in 1..=8u64 {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
            let tmp = tempfile::tempdir().unwrap();
            let clock = ManualClock::at(UnixTime::from_secs(T0));
            let budget = Arc::new(std::sync::atomic::AtomicIsize::new(-1));
            let mut ring = open(tmp.path(), &clock, &budget);
            let mut immediate: Vec<String> = ring.snapshot().keys.iter().map(|k| k.meta.kid.clone()).collect();
            let mut last_signed: HashMap<String, UnixTime> = HashMap::new();
            let mut revoked: Vec<String> = Vec::new();
            for step in 0..80 {
                steps += 1;
                let before = stored(tmp.path());
                let op = rng.below(100);
                // Whether this step may make a key that signs at once.
                let nothing_signs_at = |t: UnixTime| lifecycle::signer(&before, Algorithm::ES256, t).is_none();
                let mut may_sign_at_once = false;
                // A crash: the next operation stops after `k` writes.
                let crash = rng.below(8) == 0;
                if crash {
                    budget.store(rng.below(4) as isize, Ordering::SeqCst);
                }
                let lock = || ring.store().lock(LOCK_TIMEOUT).unwrap();
                let result: Result<(), Error> = match op {
                    0..=44 => {
                        // Time passes (a few minutes; now and then hours, or
                        // past every key's expiry: the service was down) and
                        // the scheduler ticks.
                        let jump = match rng.below(20) {
                            0 => 6 * 3600,
                            1..=2 => rng.below(3 * 3600),
                            _ => rng.below(400),
                        };
                        clock.advance(Duration::from_secs(jump));
                        may_sign_at_once = nothing_signs_at(clock.unix_now());
                        let first = ring.tick();
                        if crash { first } else { ring.tick() }
                    }
                    45..=56 => ops::rotate(ring.store(), &lock(), &p, Algorithm::ES256, 2048, &clock, false).map(drop),
                    57..=62 => {
                        may_sign_at_once = true;
                        ops::rotate(ring.store(), &lock(), &p, Algorithm::ES256, 2048, &clock, true).map(drop)
                    }
                    63..=72 => {
                        let snap = ring.snapshot();
                        let target = if rng.below(2) == 0 {
                            snap.signer(Algorithm::ES256).map(|k| k.meta.kid.clone())
                        } else {
                            let live: Vec<&Arc<ActiveKey>> =
                                snap.keys.iter().filter(|k| k.meta.timeline.revoked.is_none()).collect();
                            live.get(rng.below(live.len() as u64) as usize).map(|k| k.meta.kid.clone())
                        };
                        match target {
                            Some(kid) => {
                                may_sign_at_once = true;
                                let r = ops::revoke(ring.store(), &lock(), &p, &kid, 2048, &clock).map(drop);
                                if stored(tmp.path()).iter().any(|m| m.kid == kid && m.timeline.revoked.is_some()) {
                                    revoked.push(kid);
                                }
                                r
                            }
                            None => Ok(()),
                        }
                    }
                    73..=78 => {
                        let der = SigningKey::generate(Algorithm::ES256, 2048).unwrap();
                        ops::import(ring.store(), &lock(), &p, Algorithm::ES256, der, &clock).map(drop)
                    }
                    79..=88 => {
                        // A restart: a new process on the same folder.
                        drop(ring);
                        may_sign_at_once = nothing_signs_at(clock.unix_now());
                        ring = open(tmp.path(), &clock, &budget);
                        Ok(())
                    }
                    _ => {
                        clock.advance(Duration::from_secs(1));
                        ring.tick()
                    }
                };
                if crash {
                    // The process died (or not: the budget outlasted the
                    // writes); a new one starts on what the folder holds.
                    crashes += usize::from(result.is_err());
                    budget.store(-1, Ordering::SeqCst);
                    drop(ring);
                    may_sign_at_once |= nothing_signs_at(clock.unix_now());
                    ring = open(tmp.path(), &clock, &budget);
                } else {
                    result.unwrap();
                    ring.tick().unwrap();
                }
                let now = clock.unix_now();
                let metas = stored(tmp.path());
                let ctx = || format!("seed {seed} step {step} op {op} crash {crash} at {now}: {metas:#?}");
                if may_sign_at_once {
                    immediate
                        .extend(metas.iter().map(|m| m.kid.clone()).filter(|k| !before.iter().any(|b| &b.kid == k)));
                }
                if nothing_signs_at(now) {
                    // Nothing signed: the planner brings a pending key
                    // forward, as it makes first keys.
                    immediate.extend(lifecycle::signer(&metas, Algorithm::ES256, now).map(|s| s.kid.clone()));
                }
                // Nothing lost: a key leaves only once expired.
                for b in before.iter().filter(|b| !metas.iter().any(|m| m.kid == b.kid)) {
                    assert!(now >= b.timeline.expires, "{} left before it expired, {}", b.kid, ctx());
                }
                // Nothing duplicated: one step (with the restart after a
                // crash, which replans) adds at most the operation's key and
                // the scheduler's successor.
                let added = metas.iter().filter(|m| !before.iter().any(|b| b.kid == m.kid)).count();
                assert!(added <= 2, "{added} keys added in one step, {}", ctx());
                let signer =
                    lifecycle::signer(&metas, Algorithm::ES256, now).unwrap_or_else(|| panic!("no signer, {}", ctx()));
                let active: Vec<&KeyMeta> =
                    metas.iter().filter(|m| lifecycle::state_among(&metas, m, now) == KeyState::Active).collect();
                assert_eq!(active.len(), 1, "one active key, {}", ctx());
                assert_eq!(ring.snapshot().signer(Algorithm::ES256).unwrap().meta.kid, signer.kid, "{}", ctx());
                if !immediate.contains(&signer.kid) {
                    assert!(
                        now >= signer.timeline.published.saturating_add_secs(ahead),
                        "{} signs {}s after it was published, {}",
                        signer.kid,
                        now.saturating_duration_since(signer.timeline.published).as_secs(),
                        ctx()
                    );
                }
                last_signed.insert(signer.kid.clone(), now);
                for (kid, &t) in &last_signed {
                    if revoked.contains(kid) || now >= t.saturating_add(p.retire_after) {
                        continue;
                    }
                    let m = metas.iter().find(|m| &m.kid == kid).unwrap_or_else(|| panic!("{kid} gone, {}", ctx()));
                    assert!(m.timeline.is_published(now), "{kid} signed at {t} and left the JWKS, {}", ctx());
                }
                for m in &metas {
                    assert_eq!(p.check(&m.timeline), Ok(()), "{}", ctx());
                }
            }
        }
        eprintln!("{steps} steps, {crashes} crashes between store writes");
        assert!(crashes > 8, "the crashes happened: {crashes}");
    }
}
