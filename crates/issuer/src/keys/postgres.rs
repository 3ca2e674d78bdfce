//! The PostgreSQL key store, shared by issuer replicas on several hosts.
//!
//! One row per key in `jwks_issuer_keys`: the kid and the same JSON document
//! the folder store writes, with the private key always sealed
//! (AES-256-GCM under `JWKS_ISSUER_KEK`, the kid as associated data), so the
//! database never holds a private key in clear. A statement trigger bumps
//! `jwks_issuer_generation` and sends `NOTIFY jwks_issuer_keys` on every
//! change: replicas `LISTEN` to reload at once and poll the generation
//! every second as a fallback.
//!
//! The schema also holds `jwks_issuer_replay`, the single-use ids that
//! `crate::oauth::replay` claims across replicas; this module migrates it
//! with the rest and hands out connections ([`connect`]).
//!
//! Three advisory locks (scoped to the database) coordinate processes:
//! migrations run under a transaction lock, so replicas that start together
//! migrate once; changes to keys (rotation, `keys rotate/revoke/import`)
//! run under a session lock on the store's one change connection, each
//! list of writes in one transaction on it, and the lock is released when
//! the [`StoreLock`] drops, or with the connection, even by a `kill -9`;
//! and one replica, the rotation leader, holds a third lock on a
//! long-lived connection (`super::election::PgCoordination`). Readers take no lock: they
//! read the keys and the generation in one REPEATABLE READ transaction.
//!
//! Every method blocks: it is the synchronous `postgres` client, called on
//! blocking threads (the key ring's scheduler and the CLI), so no runtime
//! of ours is bridged from them. The change notifications are listened to
//! on a thread of their own.

use std::{
    fmt,
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use jwks_jose::crypto::Sealer;
use postgres::{Client, IsolationLevel};
use tokio_postgres::config::Host;

use super::{
    document,
    postgres_tls::{self, MakeRustlsConnect},
    store::{Damaged, KeyRecord, KeyStore, Loaded, StoreLock, Write},
};
use crate::{Error, clock::Deadline};

/// The channel replicas `LISTEN` on.
pub const CHANNEL: &str = "jwks_issuer_keys";
/// Advisory lock keys ("jwks" in ASCII, then a number).
const MIGRATE_LOCK: i64 = 0x6a77_6b73_0000_0001;
const CHANGE_LOCK: i64 = 0x6a77_6b73_0000_0002;
pub(crate) const LEADER_LOCK: i64 = 0x6a77_6b73_0000_0003;
/// How long one statement may run, and sent data may stay unacknowledged,
/// before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Versioned schema migrations; version N is `MIGRATIONS[N - 1]`. Never
/// edit one that has shipped: append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE jwks_issuer_keys (
    kid        text PRIMARY KEY,
    document   jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE jwks_issuer_generation (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation bigint NOT NULL
);
INSERT INTO jwks_issuer_generation (id, generation) VALUES (true, 0);
CREATE FUNCTION jwks_issuer_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE g bigint;
BEGIN
    UPDATE jwks_issuer_generation SET generation = generation + 1 RETURNING generation INTO g;
    PERFORM pg_notify('jwks_issuer_keys', g::text);
    RETURN NULL;
END $$;
CREATE TRIGGER jwks_issuer_keys_changed AFTER INSERT OR UPDATE OR DELETE ON jwks_issuer_keys
    FOR EACH STATEMENT EXECUTE FUNCTION jwks_issuer_keys_changed();
"#,
    r#"
CREATE TABLE jwks_issuer_replay (
    id      text PRIMARY KEY,
    expires bigint NOT NULL
);
CREATE INDEX jwks_issuer_replay_expires ON jwks_issuer_replay (expires);
"#,
];

/// A validated `postgres://` address. Its `Debug` and [`PgUrl::location`]
/// never show the password.
#[derive(Clone)]
pub struct PgUrl {
    config: tokio_postgres::Config,
    location: String,
    tls: MakeRustlsConnect,
}

impl FromStr for PgUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            return Err("expected a `postgres://user@host[:port]/database` address".into());
        }
        let (s, ssl_mode, tls) = postgres_tls::from_url(s)?;
        let mut config: tokio_postgres::Config = s.parse().map_err(|e| format!("not a PostgreSQL address: {e}"))?;
        config.ssl_mode(ssl_mode);
        if config.get_dbname().is_none() {
            return Err("the address names no database (`postgres://user@host/database`)".into());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("jwks-issuer");
        }
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(h, p)| match h {
                Host::Tcp(h) => format!("{h}:{p}"),
                Host::Unix(path) => format!("{}:{p}", path.display()),
            })
            .collect();
        let location = format!(
            "postgres://{}@{}/{}",
            config.get_user().unwrap_or(""),
            hosts.join(","),
            config.get_dbname().unwrap_or("")
        );
        Ok(PgUrl { config, location, tls })
    }
}

impl PgUrl {
    /// `postgres://user@host:port/database`, without the password.
    pub fn location(&self) -> &str {
        &self.location
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location)
    }
}

impl PartialEq for PgUrl {
    fn eq(&self, other: &Self) -> bool {
        self.location == other.location
    }
}

/// A new connection to `url`: the one place a connection is made.
/// Statements time out after 5 s (`OP_TIMEOUT`), and so does a network that
/// stops acknowledging.
pub fn connect(url: &PgUrl) -> Result<Client, Error> {
    let mut config = postgres::Config::from(url.config.clone());
    config.tcp_user_timeout(OP_TIMEOUT);
    let mut client = config.connect(url.tls.clone()).map_err(|e| error(url, "connecting", &e))?;
    client
        .batch_execute(&format!("SET statement_timeout = {}", OP_TIMEOUT.as_millis()))
        .map_err(|e| error(url, "connecting", &e))?;
    Ok(client)
}

/// A store error naming `url` and what was being done, with the server's
/// message or the chain of causes (never a password: `url` prints none).
pub(crate) fn error(url: &PgUrl, what: &str, e: &postgres::Error) -> Error {
    let detail = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                let msg = inner.to_string();
                if !s.contains(&msg) {
                    s = format!("{s}: {msg}");
                }
                source = inner.source();
            }
            s
        }
    };
    Error::Store(format!("PostgreSQL {} {what}: {detail}", url.location))
}

/// A connection slot: connected on first use, and again after it closed.
pub(crate) struct Slot {
    url: PgUrl,
    client: Mutex<Option<Client>>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Slot {
    /// A slot for connections to `url`, not connected yet.
    pub(crate) fn new(url: &PgUrl) -> Self {
        Slot { url: url.clone(), client: Mutex::new(None) }
    }

    /// Runs `f` on the connection, (re)connecting first if needed; a
    /// connection that failed is dropped, so the next call reconnects.
    pub(crate) fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, Error> {
        let mut slot = self.lock()?;
        if slot.as_ref().is_some_and(Client::is_closed) {
            *slot = None;
        }
        let client = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(connect(&self.url)?),
        };
        f(client).map_err(|e| {
            let err = error(&self.url, what, &e);
            *slot = None;
            err
        })
    }

    /// Runs `f` on the connection that is there, never a new one: writes
    /// under the change lock must go where the lock is held.
    pub(crate) fn with_existing<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, Error> {
        let mut slot = self.lock()?;
        let Some(client) = slot.as_mut().filter(|c| !c.is_closed()) else {
            *slot = None;
            return Err(Error::Store(format!(
                "PostgreSQL {} {what}: the connection holding the change lock is gone",
                self.url.location
            )));
        };
        f(client).map_err(|e| {
            let err = error(&self.url, what, &e);
            *slot = None;
            err
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Option<Client>>, Error> {
        self.client.lock().map_err(|_| Error::Store("PostgreSQL connection slot poisoned".into()))
    }
}

/// The key store in a PostgreSQL database: one connection for reads, one
/// for the change lock and the writes made under it.
pub struct PgStore {
    url: PgUrl,
    sealer: Sealer,
    reads: Slot,
    changes: Arc<ChangeConnection>,
}

/// The change connection, and whether a [`StoreLock`] of this process
/// holds its lock (a session lock is re-entrant: two holders in one
/// process would both get it).
#[derive(Debug)]
struct ChangeConnection {
    slot: Slot,
    held: Mutex<bool>,
}

/// The change lock, held until dropped: then it is released on the
/// connection (or the connection is dropped, which releases it too).
struct ChangeLock(Arc<ChangeConnection>);

impl Drop for ChangeLock {
    fn drop(&mut self) {
        let released = self.0.slot.with("releasing the change lock", |c| {
            c.query_one("SELECT pg_advisory_unlock($1)", &[&CHANGE_LOCK]).map(|r| r.get::<_, bool>(0))
        });
        if !matches!(released, Ok(true)) {
            // Closing the connection releases the lock on the server.
            if let Ok(mut slot) = self.0.slot.lock() {
                *slot = None;
            }
        }
        if let Ok(mut held) = self.0.held.lock() {
            *held = false;
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url`, creating or migrating the schema. Fails with a
    /// message naming the address when the database does not answer.
    /// `sealer` seals every private key before it is sent.
    pub fn open(url: &PgUrl, sealer: Sealer) -> Result<Self, Error> {
        let store = PgStore {
            url: url.clone(),
            sealer,
            reads: Slot::new(url),
            changes: Arc::new(ChangeConnection { slot: Slot::new(url), held: Mutex::new(false) }),
        };
        let applied = store.reads.with("migrating the schema", |c| {
            let mut tx = c.transaction()?;
            let applied = migrate(&mut tx)?;
            if applied.is_ok() {
                tx.commit()?;
            }
            Ok(applied)
        })?;
        match applied {
            Err(newer) => Err(Error::Store(format!(
                "{}: the schema is at version {newer}, newer than this issuer knows ({}); upgrade the issuer",
                url.location,
                MIGRATIONS.len()
            ))),
            Ok(applied) => {
                if applied > 0 {
                    tracing::info!(location = %url.location, applied, version = MIGRATIONS.len(), "key store schema migrated");
                }
                Ok(store)
            }
        }
    }

    /// Copies `record` in unless its kid is already there (`keys migrate`).
    /// Returns whether it was inserted.
    pub fn insert_new(&self, _held: &StoreLock, record: &KeyRecord) -> Result<bool, Error> {
        let doc = self.document(record)?;
        let n = self.changes.slot.with_existing("inserting a key", |c| {
            c.execute(
                "INSERT INTO jwks_issuer_keys (kid, document) VALUES ($1, $2::text::jsonb) ON CONFLICT (kid) DO NOTHING",
                &[&record.meta.kid, &doc],
            )
        })?;
        Ok(n == 1)
    }

    fn document(&self, record: &KeyRecord) -> Result<String, Error> {
        let bytes = document::encode(record, Some(&self.sealer))?;
        String::from_utf8(bytes).map_err(|_| Error::Store("key document is not UTF-8".into()))
    }

    fn decode_rows(&self, rows: Vec<(String, String)>, fingerprint: u64) -> Loaded {
        let mut out = Loaded { fingerprint, ..Loaded::default() };
        for (kid, doc) in rows {
            let decoded = document::decode_document(doc.as_bytes(), Some(&self.sealer), true).and_then(|r| {
                if r.meta.kid == kid {
                    Ok(r)
                } else {
                    Err((Some(kid.clone()), "the row's kid is not its document's".into()))
                }
            });
            match decoded {
                Ok(r) => out.keys.push(r),
                Err((k, reason)) => {
                    out.damaged.push(Damaged { file: format!("jwks_issuer_keys row {kid}"), kid: k, reason })
                }
            }
        }
        out
    }
}

/// Applies the missing migrations inside the caller's transaction. Returns
/// how many ran, or `Err(version)` when the schema is newer than this code.
fn migrate(tx: &mut postgres::Transaction<'_>) -> Result<Result<usize, i32>, postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS jwks_issuer_schema (
            version    integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )?;
    let current: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM jwks_issuer_schema", &[])?.get(0);
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if current > known {
        return Ok(Err(current));
    }
    let mut applied = 0;
    for (version, sql) in (1..).zip(MIGRATIONS.iter()) {
        if version > current {
            tx.batch_execute(sql)?;
            tx.execute("INSERT INTO jwks_issuer_schema (version) VALUES ($1)", &[&version])?;
            applied += 1;
        }
    }
    Ok(Ok(applied))
}

impl KeyStore for PgStore {
    fn location(&self) -> String {
        self.url.location.clone()
    }

    fn is_sealed(&self) -> bool {
        true
    }

    fn lock(&self, timeout: Duration) -> Result<StoreLock, Error> {
        let deadline = Deadline::after(timeout);
        loop {
            {
                let mut held = self.changes.held.lock().map_err(|_| Error::Store("change lock poisoned".into()))?;
                if !*held {
                    let got = self.changes.slot.with("taking the change lock", |c| {
                        Ok(c.query_one("SELECT pg_try_advisory_lock($1)", &[&CHANGE_LOCK])?.get::<_, bool>(0))
                    })?;
                    if got {
                        *held = true;
                        return Ok(StoreLock::new(ChangeLock(Arc::clone(&self.changes))));
                    }
                }
            }
            if deadline.passed() {
                return Err(Error::Store(format!(
                    "key store {} is locked by another process (waited {}s)",
                    self.url.location,
                    timeout.as_secs()
                )));
            }
            crate::clock::pause(Duration::from_millis(20));
        }
    }

    fn fingerprint(&self) -> Result<u64, Error> {
        let g: i64 = self.reads.with("reading the generation", |c| {
            Ok(c.query_one("SELECT generation FROM jwks_issuer_generation", &[])?.get(0))
        })?;
        Ok(g.cast_unsigned())
    }

    fn read(&self, _held: Option<&StoreLock>) -> Result<Loaded, Error> {
        // The keys and the generation they are, from one snapshot: no lock.
        let (generation, rows) = self.reads.with("loading keys", |c| {
            let mut tx =
                c.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
            let generation: i64 = tx.query_one("SELECT generation FROM jwks_issuer_generation", &[])?.get(0);
            let rows: Vec<(String, String)> = tx
                .query("SELECT kid, document::text FROM jwks_issuer_keys ORDER BY kid", &[])?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            tx.commit()?;
            Ok((generation, rows))
        })?;
        Ok(self.decode_rows(rows, generation.cast_unsigned()))
    }

    fn write(&self, _held: &StoreLock, writes: &[Write]) -> Result<(), Error> {
        let docs: Vec<(&str, Option<String>)> = writes
            .iter()
            .map(|w| match w {
                Write::Put(r) => self.document(r).map(|d| (r.meta.kid.as_str(), Some(d))),
                Write::Delete(kid) => Ok((kid.as_str(), None)),
            })
            .collect::<Result<_, _>>()?;
        // One transaction on the change connection, which holds the lock.
        self.changes.slot.with_existing("writing keys", |c| {
            let mut tx = c.transaction()?;
            for (kid, doc) in &docs {
                match doc {
                    Some(doc) => tx.execute(
                        "INSERT INTO jwks_issuer_keys (kid, document) VALUES ($1, $2::text::jsonb)
                         ON CONFLICT (kid) DO UPDATE SET document = excluded.document, updated_at = now()",
                        &[kid, doc],
                    )?,
                    None => tx.execute("DELETE FROM jwks_issuer_keys WHERE kid = $1", &[kid])?,
                };
            }
            tx.commit()
        })
    }
}
