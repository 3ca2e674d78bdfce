//! The PostgreSQL key store (issue 7) against a real server on
//! 127.0.0.1:5432, one fresh database per test. Without a server these
//! tests skip with a loud message, unless `JWKS_TEST_REQUIRE_POSTGRES=1`
//! (set by `.ci/run`) makes that a failure.
// These tests wait for a real server's side effects (a lock freed when a
// connection closes, a NOTIFY delivered), which no injected clock drives.
#![allow(clippy::disallowed_methods)]

use std::{
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use jwks_issuer::{
    Error,
    clock::SharedClock,
    keys::{
        Coordination, DirStore, KeyRecord, KeyStore, Keyring, LOCK_TIMEOUT, PgCoordination, PgStore, PgUrl, Policy,
        Write,
    },
    oauth::claims::PgClaims,
};
use jwks_jose::clock::{Clock, ManualClock, UnixTime};
use jwks_jose::{Algorithm, SigningKey, b64, crypto::Sealer};
use tokio_postgres::{NoTls, SimpleQueryMessage};

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test?connect_timeout=3";

/// A database of its own on the local server, dropped at the end.
struct TestDb {
    name: String,
    url: PgUrl,
}

impl TestDb {
    /// A fresh database, or `None` (after a loud message) when no server
    /// answers and `JWKS_TEST_REQUIRE_POSTGRES` is not `1`.
    fn create(test: &str) -> Option<TestDb> {
        let mut suffix = [0u8; 6];
        jwks_jose::crypto::fill_random(&mut suffix).unwrap();
        let name = format!("jwks_it_{}_{}", test, hex(&suffix));
        match admin(&format!("CREATE DATABASE {name}")) {
            Ok(_) => {
                let url = format!("postgres://postgres@127.0.0.1:5432/{name}").parse().unwrap();
                Some(TestDb { name, url })
            }
            Err(e) if std::env::var("JWKS_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
                panic!("JWKS_TEST_REQUIRE_POSTGRES=1 but PostgreSQL at 127.0.0.1:5432 does not answer: {e}")
            }
            Err(e) => {
                eprintln!(
                    "\n*** SKIPPED {test}: no PostgreSQL at 127.0.0.1:5432 ({e}); \
                     set JWKS_TEST_REQUIRE_POSTGRES=1 to make this a failure ***\n"
                );
                None
            }
        }
    }

    /// Runs `sql` in this database; the rows' first columns.
    fn query(&self, sql: &str) -> Vec<Option<String>> {
        run_sql(&format!("postgres://postgres@127.0.0.1:5432/{}", self.name), sql).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn admin(sql: &str) -> Result<Vec<Option<String>>, tokio_postgres::Error> {
    run_sql(ADMIN, sql)
}

fn run_sql(url: &str, sql: &str) -> Result<Vec<Option<String>>, tokio_postgres::Error> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(conn);
        let rows = client.simple_query(sql).await?;
        Ok(rows
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })
            .collect())
    })
}

fn sealer(byte: u8) -> Sealer {
    Sealer::new(&[byte; 32]).unwrap()
}

fn policy() -> Policy {
    Policy {
        rotation_period: Duration::from_secs(3600),
        publish_ahead: Duration::from_secs(600),
        retire_after: Duration::from_secs(600),
    }
}

fn record(now: u64) -> KeyRecord {
    let pkcs8 = SigningKey::generate(Algorithm::ES256, 2048).unwrap();
    KeyRecord::new(Algorithm::ES256, pkcs8, policy().immediate(UnixTime::from_secs(now))).unwrap()
}

/// Writes `rec` under the store's lock.
fn put(store: &dyn KeyStore, rec: &KeyRecord) {
    store.write(&store.lock(LOCK_TIMEOUT).unwrap(), &[Write::Put(rec.clone())]).unwrap();
}

/// A key ring on the database of `url`, electing its leader there.
fn pg_ring(url: &PgUrl, kek: u8, clock: &SharedClock) -> Result<Keyring, Error> {
    Keyring::open_with(
        Box::new(PgStore::open(url, sealer(kek))?),
        Box::new(PgCoordination::new(url)),
        clock.clone(),
        vec![Algorithm::ES256],
        policy(),
        2048,
    )
}

#[test]
fn every_key_is_sealed_before_it_reaches_the_database() {
    let Some(db) = TestDb::create("sealed") else { return };
    let store = PgStore::open(&db.url, sealer(7)).unwrap();
    assert!(store.is_sealed());
    let g0 = store.fingerprint().unwrap();
    let rec = record(1000);
    put(&store, &rec);
    let g1 = store.fingerprint().unwrap();
    assert_ne!(g0, g1, "a write changes the generation");

    let docs = db.query("SELECT document::text FROM jwks_issuer_keys");
    assert_eq!(docs.len(), 1);
    let doc = docs[0].clone().unwrap();
    assert!(doc.contains("\"sealed\"") && !doc.contains("\"pkcs8\""), "{doc}");
    assert!(!doc.contains(&b64::encode(&rec.pkcs8)), "the private key is not in the row in clear");

    let loaded = store.read(None).unwrap();
    assert!(loaded.damaged.is_empty(), "{:?}", loaded.damaged);
    assert_eq!(loaded.keys.len(), 1);
    assert_eq!(loaded.keys[0].meta, rec.meta);
    assert_eq!(loaded.keys[0].pkcs8, rec.pkcs8);
    assert_eq!(loaded.fingerprint, g1, "the keys and the generation they are, read together");

    store.write(&store.lock(LOCK_TIMEOUT).unwrap(), &[Write::Delete(rec.meta.kid.clone())]).unwrap();
    assert!(store.read(None).unwrap().keys.is_empty());
    assert_ne!(store.fingerprint().unwrap(), g1, "a delete changes the generation");
}

#[test]
fn keys_in_clear_or_under_another_kek_are_reported_not_loaded() {
    let Some(db) = TestDb::create("damaged") else { return };
    let store = PgStore::open(&db.url, sealer(7)).unwrap();
    let good = record(1000);
    put(&store, &good);

    // A document with the private key in clear, written by hand.
    let tmp = tempfile::tempdir().unwrap();
    let clear = record(1000);
    put(&DirStore::open(tmp.path(), None).unwrap(), &clear);
    let text = std::fs::read_to_string(tmp.path().join(format!("{}.json", clear.meta.kid))).unwrap();
    db.query(&format!(
        "INSERT INTO jwks_issuer_keys (kid, document) VALUES ('{}', '{}'::jsonb)",
        clear.meta.kid,
        text.replace('\'', "''")
    ));
    let loaded = store.read(None).unwrap();
    assert_eq!(loaded.keys.len(), 1, "the good key still loads");
    assert_eq!(loaded.damaged.len(), 1);
    assert_eq!(loaded.damaged[0].kid.as_deref(), Some(clear.meta.kid.as_str()));
    assert!(loaded.damaged[0].reason.contains("in clear"), "{:?}", loaded.damaged);

    let other = PgStore::open(&db.url, sealer(8)).unwrap();
    let loaded = other.read(None).unwrap();
    assert!(loaded.keys.is_empty());
    assert!(
        loaded.damaged.iter().any(|d| d.kid.as_deref() == Some(good.meta.kid.as_str()) && d.reason.contains("unseal"))
    );
}

#[test]
fn replicas_starting_together_migrate_the_schema_once() {
    let Some(db) = TestDb::create("migrate") else { return };
    let n = 4;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (url, barrier) = (db.url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PgStore::open(&url, sealer(7)).map(drop).map_err(|e| format!("replica {i}: {e}"))
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    // Two migrations (keys, then single-use claims), each applied once.
    assert_eq!(db.query("SELECT count(*) FROM jwks_issuer_schema"), vec![Some("2".to_string())]);
    assert_eq!(db.query("SELECT max(version) FROM jwks_issuer_schema"), vec![Some("2".to_string())]);
    // Opening again applies nothing.
    PgStore::open(&db.url, sealer(7)).unwrap();
    assert_eq!(db.query("SELECT count(*) FROM jwks_issuer_schema"), vec![Some("2".to_string())]);
    // A schema newer than this code is refused, not used.
    db.query("INSERT INTO jwks_issuer_schema (version) VALUES (99)");
    let e = PgStore::open(&db.url, sealer(7)).unwrap_err();
    assert!(e.to_string().contains("version 99") && e.to_string().contains("upgrade"), "{e}");
}

/// The backends of this test's database (every connection it holds).
fn backends(db: &TestDb) -> String {
    db.query(&format!("SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = '{}'", db.name))[0].clone().unwrap()
}

#[test]
fn the_change_lock_is_exclusive_and_released_with_its_holder() {
    let Some(db) = TestDb::create("lock") else { return };
    let a = PgStore::open(&db.url, sealer(7)).unwrap();
    let b = PgStore::open(&db.url, sealer(7)).unwrap();
    let held = a.lock(Duration::from_secs(1)).unwrap();
    // The wait runs on a monotonic deadline.
    let started = Instant::now();
    let refused = b.lock(Duration::from_millis(300));
    assert!(matches!(&refused, Err(Error::Store(m)) if m.contains("locked by another process")), "{refused:?}");
    assert!(started.elapsed() >= Duration::from_millis(300) && started.elapsed() < Duration::from_secs(3));
    // A second holder in the same process waits too (a session lock is
    // re-entrant on the server; the store is not).
    assert!(a.lock(Duration::from_millis(100)).is_err());
    // Readers never take the change lock: a consistent read goes on.
    assert!(b.read(None).is_ok(), "a read while another holds the change lock");
    drop(held);
    let started = Instant::now();
    let got = b.lock(Duration::from_secs(5));
    assert!(got.is_ok(), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "released promptly: {:?}", started.elapsed());
    drop(got);
    // One connection for the change lock, not a new one per lock.
    let before = backends(&db);
    for _ in 0..5 {
        let lock = a.lock(Duration::from_secs(1)).unwrap();
        a.write(&lock, &[Write::Put(record(1000))]).unwrap();
    }
    assert_eq!(backends(&db), before, "five locks and writes opened no connection");
}

#[test]
fn a_list_of_writes_is_one_transaction() {
    let Some(db) = TestDb::create("tx") else { return };
    let store = PgStore::open(&db.url, sealer(7)).unwrap();
    let (x, y) = (record(1000), record(1000));
    put(&store, &x);
    let g0 = store.fingerprint().unwrap();
    let lock = store.lock(LOCK_TIMEOUT).unwrap();
    store.write(&lock, &[Write::Put(y.clone()), Write::Delete(x.meta.kid.clone())]).unwrap();
    drop(lock);
    let loaded = store.read(None).unwrap();
    assert_eq!(loaded.keys.iter().map(|k| k.meta.kid.as_str()).collect::<Vec<_>>(), vec![y.meta.kid.as_str()]);
    assert!(loaded.fingerprint > g0);
    // Lost mid-list: nothing of it is kept.
    let lock = store.lock(LOCK_TIMEOUT).unwrap();
    db.query("ALTER TABLE jwks_issuer_keys ADD CONSTRAINT no_z CHECK (kid <> 'zzz')");
    let mut bad = record(1000);
    bad.meta.kid = "zzz".into();
    let result = store.write(&lock, &[Write::Put(x.clone()), Write::Put(bad)]);
    assert!(result.is_err(), "the second write is refused");
    drop(lock);
    let after = store.read(None).unwrap();
    assert_eq!(after.keys.len(), 1, "the first write of the list was rolled back with it");
    assert_eq!(after.fingerprint, loaded.fingerprint, "no generation moved");
}

#[test]
fn one_replica_leads_and_another_takes_over_when_it_goes() {
    let Some(db) = TestDb::create("leader") else { return };
    let a = PgCoordination::new(&db.url);
    let b = PgCoordination::new(&db.url);
    assert!(a.elects_leader());
    assert!(a.try_lead().unwrap());
    assert!(!b.try_lead().unwrap());
    assert!(a.try_lead().unwrap(), "the leader stays leader");
    assert!(!b.try_lead().unwrap());
    assert_eq!(
        db.query(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted"
        ),
        vec![Some("1".to_string())],
        "the leader lock is taken once, not once per tick"
    );
    drop(a);
    let started = Instant::now();
    while !b.try_lead().unwrap() {
        assert!(started.elapsed() < Duration::from_secs(5), "no takeover after the leader left");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("leader takeover after the leader's store closed: {:?}", started.elapsed());
}

#[test]
fn a_change_by_another_replica_is_announced_within_a_second() {
    let Some(db) = TestDb::create("notify") else { return };
    let a = PgStore::open(&db.url, sealer(7)).unwrap();
    let b = PgCoordination::new(&db.url);
    let wake = Arc::new(tokio::sync::Notify::new());
    b.watch(Arc::downgrade(&wake));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The first wake comes when the listener is connected.
    let wait = |secs| rt.block_on(async { tokio::time::timeout(Duration::from_secs(secs), wake.notified()).await });
    wait(5).expect("listener connected");
    for _ in 0..3 {
        let started = Instant::now();
        let rec = record(1000);
        put(&a, &rec);
        wait(1).expect("notified within 1 s");
        eprintln!("change notified after {:?}", started.elapsed());
    }
}

#[test]
fn two_key_rings_on_one_database_rotate_once_and_publish_the_same_bytes() {
    let Some(db) = TestDb::create("rings") else { return };
    let clock = Arc::new(ManualClock::at(UnixTime::from_secs(1_800_000_000)));
    let shared: SharedClock = clock.clone();
    let open = || pg_ring(&db.url, 7, &shared).unwrap();
    let a = open();
    let b = open();
    assert!(a.is_leader() && !b.is_leader());
    let first = a.snapshot();
    assert_eq!(first.keys.len(), 1, "the leader created the first key");
    assert_eq!(b.snapshot().jwks.etag, first.jwks.etag);

    // Past the point where a successor is due: only the leader makes it.
    clock.set(UnixTime::from_secs(1_800_000_000 + 3600 - 600 + 1).to_system_time());
    b.tick().unwrap();
    assert_eq!(b.snapshot().keys.len(), 1, "a follower does not rotate");
    a.tick().unwrap();
    assert_eq!(a.snapshot().keys.len(), 2, "the leader made one successor");
    b.tick().unwrap();
    assert_eq!(b.snapshot().keys.len(), 2, "the follower reloads on the changed generation");
    assert_eq!(a.snapshot().jwks.body, b.snapshot().jwks.body);
    assert_eq!(a.snapshot().jwks.etag, b.snapshot().jwks.etag);
    for _ in 0..3 {
        a.tick().unwrap();
        b.tick().unwrap();
    }
    assert_eq!(db.query("SELECT count(*) FROM jwks_issuer_keys"), vec![Some("2".to_string())], "exactly one successor");

    // The leader goes: the follower takes the role at its next tick.
    drop(a);
    let started = Instant::now();
    loop {
        b.tick().unwrap();
        if b.is_leader() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no takeover");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_store_whose_database_is_down_fails_to_open_naming_it() {
    let url: PgUrl = "postgres://postgres@127.0.0.1:1/test".parse().unwrap();
    let e = PgStore::open(&url, sealer(7)).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("postgres://postgres@127.0.0.1:1/test") && shown.contains("connect"), "{shown}");
}

#[test]
fn the_postgres_store_requires_the_kek() {
    let text = "issuer = \"https://issuer.example.test\"\n[keys]\npostgres = \"postgres://u@127.0.0.1:1/db\"\n";
    let config = jwks_issuer::Config::from_toml(std::path::Path::new("t.toml"), text, &|_| None).unwrap();
    if std::env::var_os("JWKS_ISSUER_KEK").is_some() {
        eprintln!("JWKS_ISSUER_KEK is set in this environment; the check needs it unset");
        return;
    }
    let e = jwks_issuer::keys::open_store(&config.keys.store).unwrap_err();
    assert!(matches!(&e, Error::Kek(m) if m.contains("JWKS_ISSUER_KEK") && m.contains("keys.postgres")), "{e}");
}

#[test]
fn single_use_ids_are_claimed_once_across_replicas_until_they_expire() {
    let Some(db) = TestDb::create("claims") else { return };
    // The key store migrates the schema the claims live in.
    PgStore::open(&db.url, sealer(7)).unwrap();
    let a = PgClaims::new(&db.url);
    let b = PgClaims::new(&db.url);
    // Claims made at a time purging has nothing to purge: `purge` is
    // called by the first claim, and then once a minute.
    assert!(a.claim("id-1", 200, 100).unwrap());
    assert!(!b.claim("id-1", 200, 150).unwrap(), "a replay at another replica");
    assert!(b.claim("id-2", 200, 150).unwrap());
    assert!(b.claim("id-1", 300, 200).unwrap(), "an expired claim is taken over");
    assert_eq!(a.purge(250).unwrap(), 1, "id-2 expired at 200");
    assert_eq!(db.query("SELECT id FROM jwks_issuer_replay"), vec![Some("id-1".to_string())]);
}

#[test]
fn with_the_database_gone_keys_in_memory_still_change_state_on_schedule() {
    let Some(db) = TestDb::create("outage") else { return };
    let t0 = 1_800_000_000;
    let clock = Arc::new(ManualClock::at(UnixTime::from_secs(t0)));
    let shared: SharedClock = clock.clone();
    let ring = pg_ring(&db.url, 7, &shared).unwrap();
    let first = ring.snapshot().signer(Algorithm::ES256).unwrap().meta.kid.clone();
    // The successor is made and published ahead (rotation 3600 s, ahead 600 s).
    clock.set(UnixTime::from_secs(t0 + 3600 - 600 + 1).to_system_time());
    ring.tick().unwrap();
    let snap = ring.snapshot();
    let successor = snap.keys.iter().find(|k| k.meta.kid != first).unwrap().meta.clone();
    assert!(successor.timeline.activates > clock.unix_now(), "published ahead of signing");

    // The database disappears (its connections are cut, it cannot be reached).
    drop(db);
    clock.set(successor.timeline.activates.saturating_add_secs(1).to_system_time());
    assert!(ring.tick().is_err(), "the store cannot be read");
    let snap = ring.snapshot();
    assert_eq!(snap.signer(Algorithm::ES256).unwrap().meta.kid, successor.kid, "the successor signs on schedule");
    assert!(ring.last_failure().is_some(), "/readyz reports the failure");
    // The retired key leaves the JWKS when it expires, database or not.
    let expires = snap.keys.iter().find(|k| k.meta.kid == first).unwrap().meta.timeline.expires;
    clock.set(expires.saturating_add_secs(1).to_system_time());
    assert!(ring.tick().is_err());
    let body = String::from_utf8(ring.snapshot().jwks.body.to_vec()).unwrap();
    assert!(!body.contains(&first) && body.contains(&successor.kid), "{body}");
}

#[test]
fn postgres_replica_with_another_kek_writes_nothing() {
    let Some(db) = TestDb::create("otherkek") else { return };
    let clock = Arc::new(ManualClock::at(UnixTime::from_secs(1_800_000_000)));
    let shared: SharedClock = clock.clone();
    let open = |kek: u8| pg_ring(&db.url, kek, &shared);
    let good = open(7).unwrap();
    let kid = good.snapshot().signer(Algorithm::ES256).unwrap().meta.kid.clone();
    let rows = || db.query("SELECT kid || ' ' || md5(document::text) FROM jwks_issuer_keys ORDER BY kid");
    let generation = || db.query("SELECT generation FROM jwks_issuer_generation");
    let (before, gen_before) = (rows(), generation());
    // The leader goes, so the replica under another KEK would lead; a
    // successor is due too.
    drop(good);
    clock.advance(Duration::from_secs(3500));
    let err = open(8).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Kek(_)), "{err:?}");
    assert!(msg.contains(&kid) && msg.contains("cannot be opened"), "{msg}");
    assert_eq!(rows(), before, "no key was written or changed");
    assert_eq!(generation(), gen_before, "no write at all");
    // The replica with the right KEK rotates as before.
    let again = open(7).unwrap();
    assert_eq!(again.snapshot().keys.len(), 2);
}
