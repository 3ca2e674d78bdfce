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
//! Single-use ids (the `jti`s of `private_key_jwt` assertions and of DPoP
//! proofs at the token endpoint) are claimed in `jwks_issuer_replay` too,
//! so a replay is refused by every replica, not only the one that saw the
//! original; the leader purges expired claims once a minute.
//!
//! Three advisory locks (scoped to the database) coordinate processes:
//! migrations run under a transaction lock, so replicas that start together
//! migrate once; changes to keys (rotation, `keys rotate/revoke/import`)
//! run under a session lock on a connection of their own, released when it
//! closes, even by a `kill -9`; and one replica, the rotation leader, holds
//! a third lock on a long-lived connection. Only the leader plans rotation;
//! when it dies its connection closes and another replica takes the role at
//! its next tick.
//!
//! Every method blocks (the store runs its connections on a small runtime
//! of its own): call them off the async executor, as the key ring does.

use std::{
    fmt,
    future::Future,
    str::FromStr,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use jwks_jose::crypto::Sealer;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, config::Host};

use super::{
    postgres_tls::{self, MakeRustlsConnect},
    store::{self, Damaged, KeyRecord, KeyStore, Loaded, StoreLock},
};
use crate::Error;

/// The channel replicas `LISTEN` on.
pub const CHANNEL: &str = "jwks_issuer_keys";
/// Advisory lock keys ("jwks" in ASCII, then a number).
const MIGRATE_LOCK: i64 = 0x6a77_6b73_0000_0001;
const CHANGE_LOCK: i64 = 0x6a77_6b73_0000_0002;
const LEADER_LOCK: i64 = 0x6a77_6b73_0000_0003;
/// How long one database round trip may take before it counts as failed.
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

/// The key store in a PostgreSQL database.
pub struct PgStore {
    url: PgUrl,
    sealer: Sealer,
    runtime: Option<tokio::runtime::Runtime>,
    client: Mutex<Option<Arc<Client>>>,
    leader: Mutex<Option<Leader>>,
}

struct Leader {
    client: Client,
    held: bool,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async context forbids.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connects to `url`, creating or migrating the schema. Fails with a
    /// message naming the address when the database does not answer.
    /// `sealer` seals every private key before it is sent.
    pub fn open(url: &PgUrl, sealer: Sealer) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("jwks-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Store(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let store = PgStore {
            url: url.clone(),
            sealer,
            runtime: Some(runtime),
            client: Mutex::new(None),
            leader: Mutex::new(None),
        };
        let client = store.client()?;
        store.run("migrating the schema", async {
            // `transaction` needs `&mut Client`; a plain BEGIN/COMMIT on the
            // shared client is the same on one connection.
            client.batch_execute("BEGIN").await?;
            let result = migrate(&client).await;
            match result {
                Ok(applied) => {
                    client.batch_execute("COMMIT").await?;
                    Ok(applied)
                }
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    Err(e)
                }
            }
        })?
        .map_err(|newer| {
            Error::Store(format!(
                "{}: the schema is at version {newer}, newer than this issuer knows ({}); upgrade the issuer",
                url.location,
                MIGRATIONS.len()
            ))
        })
        .map(|applied| {
            if applied > 0 {
                tracing::info!(location = %url.location, applied, version = MIGRATIONS.len(), "key store schema migrated");
            }
        })?;
        Ok(store)
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, Error> {
        self.runtime.as_ref().ok_or_else(|| Error::Store("the PostgreSQL store is closed".into()))
    }

    /// Runs `fut` on the store's runtime with a deadline.
    fn run<T>(&self, what: &str, fut: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, Error> {
        let rt = self.runtime()?;
        // The timer is made inside the runtime: it needs its time driver.
        match rt.block_on(async { tokio::time::timeout(OP_TIMEOUT, fut).await }) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(what, &e)),
            Err(_) => {
                Err(Error::Store(format!("{} {what}: no answer within {}s", self.url.location, OP_TIMEOUT.as_secs())))
            }
        }
    }

    fn error(&self, what: &str, e: &tokio_postgres::Error) -> Error {
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
        Error::Store(format!("PostgreSQL {} {what}: {detail}", self.url.location))
    }

    /// A new connection, driven on the store's runtime.
    fn connect(&self) -> Result<Client, Error> {
        let (config, tls) = (self.url.config.clone(), self.url.tls.clone());
        self.run("connecting", async move {
            let (client, connection) = config.connect(tls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL connection closed");
                }
            });
            Ok(client)
        })
    }

    /// The shared connection, reconnecting if it closed.
    fn client(&self) -> Result<Arc<Client>, Error> {
        let mut slot = self.client.lock().map_err(|_| Error::Store("connection slot poisoned".into()))?;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(c));
        }
        *slot = None;
        let c = Arc::new(self.connect()?);
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Copies `record` in unless its kid is already there (`keys migrate`).
    /// Returns whether it was inserted. Call under the lock.
    pub fn insert_new(&self, record: &KeyRecord) -> Result<bool, Error> {
        let doc = self.document(record)?;
        let client = self.client()?;
        let n = self.run("inserting a key", async {
            client
                .execute(
                    "INSERT INTO jwks_issuer_keys (kid, document) VALUES ($1, $2::text::jsonb) ON CONFLICT (kid) DO NOTHING",
                    &[&record.meta.kid, &doc],
                )
                .await
        })?;
        Ok(n == 1)
    }

    fn document(&self, record: &KeyRecord) -> Result<String, Error> {
        let bytes = store::encode(record, Some(&self.sealer))?;
        String::from_utf8(bytes).map_err(|_| Error::Store("key document is not UTF-8".into()))
    }
}

/// Applies the missing migrations inside the caller's transaction. Returns
/// how many ran, or `Err(version)` when the schema is newer than this code.
async fn migrate(client: &Client) -> Result<Result<usize, i32>, tokio_postgres::Error> {
    client.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK]).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS jwks_issuer_schema (
                version    integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let current: i32 = client.query_one("SELECT coalesce(max(version), 0) FROM jwks_issuer_schema", &[]).await?.get(0);
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if current > known {
        return Ok(Err(current));
    }
    let mut applied = 0;
    for (version, sql) in (1..).zip(MIGRATIONS.iter()) {
        if version > current {
            client.batch_execute(sql).await?;
            client.execute("INSERT INTO jwks_issuer_schema (version) VALUES ($1)", &[&version]).await?;
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

    fn lock(&self, timeout: Duration, clock: &dyn crate::clock::Clock) -> Result<StoreLock, Error> {
        // A connection of its own: the lock lives exactly as long as it.
        let conn = self.connect()?;
        let start = clock.now();
        loop {
            let got: bool = self.run("taking the change lock", async {
                Ok(conn.query_one("SELECT pg_try_advisory_lock($1)", &[&CHANGE_LOCK]).await?.get(0))
            })?;
            if got {
                return Ok(StoreLock::new(conn));
            }
            if clock.now().saturating_sub(start) >= timeout.as_secs() {
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
        let client = self.client()?;
        let g: i64 = self.run("reading the generation", async {
            Ok(client.query_one("SELECT generation FROM jwks_issuer_generation", &[]).await?.get(0))
        })?;
        Ok(g.cast_unsigned())
    }

    fn load(&self) -> Result<Loaded, Error> {
        let client = self.client()?;
        let rows = self.run("loading keys", async {
            client.query("SELECT kid, document::text FROM jwks_issuer_keys ORDER BY kid", &[]).await
        })?;
        let mut out = Loaded::default();
        for row in rows {
            let kid: String = row.get(0);
            let doc: String = row.get(1);
            let decoded = store::decode_document(doc.as_bytes(), Some(&self.sealer), true).and_then(|r| {
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
        Ok(out)
    }

    fn put(&self, record: &KeyRecord) -> Result<(), Error> {
        let doc = self.document(record)?;
        let client = self.client()?;
        self.run("writing a key", async {
            client
                .execute(
                    "INSERT INTO jwks_issuer_keys (kid, document) VALUES ($1, $2::text::jsonb)
                     ON CONFLICT (kid) DO UPDATE SET document = excluded.document, updated_at = now()",
                    &[&record.meta.kid, &doc],
                )
                .await
        })
        .map(drop)
    }

    fn delete(&self, kid: &str) -> Result<(), Error> {
        let client = self.client()?;
        self.run("deleting a key", async {
            client.execute("DELETE FROM jwks_issuer_keys WHERE kid = $1", &[&kid]).await
        })
        .map(drop)
    }

    fn try_lead(&self) -> Result<bool, Error> {
        let mut slot = self.leader.lock().map_err(|_| Error::Store("leader slot poisoned".into()))?;
        if slot.as_ref().is_some_and(|l| l.client.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(Leader { client: self.connect()?, held: false });
        }
        let Some(leader) = slot.as_mut() else { return Ok(false) };
        // Holding: prove the connection (and so the lock) is still there.
        // Not holding: try to take it; a session lock is re-entrant, so it
        // is taken once and then only checked.
        let result = if leader.held {
            self.run("checking the leader connection", async {
                leader.client.simple_query("SELECT 1").await.map(|_| true)
            })
        } else {
            self.run("taking the leader lock", async {
                Ok(leader.client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]).await?.get(0))
            })
        };
        match result {
            Ok(held) => {
                leader.held = held;
                Ok(held)
            }
            Err(e) => {
                *slot = None;
                Err(e)
            }
        }
    }

    fn elects_leader(&self) -> bool {
        true
    }

    fn claim_once(&self, id: &str, until: u64, now: u64) -> Option<Result<bool, Error>> {
        let (until, now) = (i64::try_from(until).unwrap_or(i64::MAX), i64::try_from(now).unwrap_or(i64::MAX));
        let claimed = self.client().and_then(|client| {
            self.run("claiming a single-use id", async {
                // A live claim blocks; an expired one is taken over.
                let rows = client
                    .query(
                        "INSERT INTO jwks_issuer_replay (id, expires) VALUES ($1, $2)
                         ON CONFLICT (id) DO UPDATE SET expires = excluded.expires
                         WHERE jwks_issuer_replay.expires <= $3
                         RETURNING 1",
                        &[&id, &until, &now],
                    )
                    .await?;
                Ok(rows.len() == 1)
            })
        });
        Some(claimed)
    }

    fn shares_claims(&self) -> bool {
        true
    }

    fn purge_claims(&self, now: u64) -> Result<u64, Error> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let client = self.client()?;
        self.run("purging expired single-use ids", async {
            client.execute("DELETE FROM jwks_issuer_replay WHERE expires <= $1", &[&now]).await
        })
    }

    fn watch(&self, wake: Weak<Notify>) {
        let Ok(rt) = self.runtime() else { return };
        let (config, tls) = (self.url.config.clone(), self.url.tls.clone());
        let location = self.url.location.clone();
        rt.spawn(async move {
            while wake.strong_count() > 0 {
                match listen(&config, tls.clone(), &wake).await {
                    Ok(()) => return,
                    // Lost after it worked: say so once; retries stay quiet.
                    Err((true, e)) => {
                        tracing::warn!(%location, error = %e, "lost the key change notifications; polling until they return");
                    }
                    Err((false, e)) => tracing::debug!(%location, error = %e, "cannot listen for key changes"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// Listens on [`CHANNEL`] and notifies `wake` on every change, and once
/// on connecting for what was missed meanwhile. Returns `Ok` when nobody
/// waits any more, `Err((listened, why))` when the connection is lost.
async fn listen(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    wake: &Weak<Notify>,
) -> Result<(), (bool, String)> {
    let (client, mut connection) = config.connect(tls).await.map_err(|e| (false, e.to_string()))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if tx.send(()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(|e| (false, e.to_string()))?;
    match wake.upgrade() {
        Some(w) => w.notify_one(),
        None => return Ok(()),
    }
    while rx.recv().await.is_some() {
        match wake.upgrade() {
            Some(w) => w.notify_one(),
            None => return Ok(()),
        }
    }
    drop(client);
    match driver.await {
        Ok(Err(e)) => Err((true, e.to_string())),
        _ => Err((true, "connection closed".into())),
    }
}
