//! The [`KeyStore`] interface: what the key ring and the operator
//! commands need of a place that keeps keys, and nothing else. The folder
//! store is [`super::folder::DirStore`], the PostgreSQL store
//! [`super::postgres::PgStore`]; leadership and change notification are
//! [`super::coordination`], single-use ids `crate::oauth::replay`.

use std::{fmt, sync::Arc, time::Duration};

use jwks_jose::{Algorithm, SigningKey};
use serde::Serialize;

use super::{
    kek::ENV_KEK,
    lifecycle::{KeyMeta, Timeline},
};
use crate::Error;

/// How long a change waits for another process's store lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// One stored key: its metadata, its private key, and the key parsed once
/// (when it was read or made), so the key ring never parses it again.
#[derive(Clone)]
pub struct KeyRecord {
    /// Id, algorithm and timeline.
    pub meta: KeyMeta,
    /// PKCS#8 DER of the private key.
    pub pkcs8: Vec<u8>,
    /// The parsed key.
    pub key: Arc<SigningKey>,
}

impl KeyRecord {
    /// Parses `pkcs8` as a key of `alg`; its kid is its RFC 7638 thumbprint.
    pub fn new(alg: Algorithm, pkcs8: Vec<u8>, timeline: Timeline) -> Result<Self, Error> {
        let key = SigningKey::from_pkcs8(alg, &pkcs8)?;
        Ok(KeyRecord { meta: KeyMeta { kid: key.kid().to_string(), alg, timeline }, pkcs8, key: Arc::new(key) })
    }

    /// The same key with another timeline.
    pub fn with_timeline(&self, timeline: Timeline) -> Self {
        KeyRecord { meta: KeyMeta { timeline, ..self.meta.clone() }, ..self.clone() }
    }
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord").field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// A document that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damaged {
    /// The file name.
    pub file: String,
    /// The kid, when the file said it.
    pub kid: Option<String>,
    /// What is wrong (never key material).
    pub reason: String,
}

/// Everything a load found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Keys that loaded.
    pub keys: Vec<KeyRecord>,
    /// The store's [`KeyStore::fingerprint`] that this set is.
    pub fingerprint: u64,
    /// Files that did not.
    pub damaged: Vec<Damaged>,
}

impl Loaded {
    /// Whether the store holds key documents and none of them opens (a
    /// wrong `JWKS_ISSUER_KEK`, or every file damaged).
    pub fn none_opens(&self) -> bool {
        self.keys.is_empty() && !self.damaged.is_empty()
    }

    /// `Ok` when every stored key opened, so that a plan made from
    /// [`Loaded::keys`] sees the whole store. A process that cannot open
    /// some of the store's keys never writes to it: it would plan without
    /// keys that other processes sign with (and, under another KEK, write
    /// keys that they cannot open).
    pub fn writable(&self, location: &str) -> Result<(), Error> {
        if self.damaged.is_empty() {
            return Ok(());
        }
        Err(self.refusal(location, "nothing is written to the store until they are repaired or removed"))
    }

    /// The error naming what did not open in `location`, then `consequence`.
    pub fn refusal(&self, location: &str, consequence: &str) -> Error {
        let n = self.damaged.len();
        let list: Vec<String> = self
            .damaged
            .iter()
            .take(3)
            .map(|d| format!("{} (kid {}): {}", d.file, d.kid.as_deref().unwrap_or("?"), d.reason))
            .collect();
        let more = if n > 3 { format!("; and {} more", n - 3) } else { String::new() };
        let what = format!(
            "{n} of the {} key documents in {location} cannot be opened: {}{more}; {consequence}",
            n + self.keys.len(),
            list.join("; ")
        );
        if self.damaged.iter().all(|d| d.reason.contains("unseal")) {
            Error::Kek(format!(
                "{what} (is {ENV_KEK} the key they were sealed with? keys sealed under another KEK never open)"
            ))
        } else {
            Error::Store(what)
        }
    }
}

/// Holds the store's exclusive change lock until dropped. Only a store
/// makes one, and every write needs one ([`KeyStore::write`]): "only under
/// the lock" is held by the compiler.
pub struct StoreLock {
    _held: Box<dyn Send>,
}

impl StoreLock {
    /// A lock released when `held` is dropped.
    pub(crate) fn new(held: impl Send + 'static) -> Self {
        StoreLock { _held: Box::new(held) }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreLock")
    }
}

/// One write of a list that [`KeyStore::write`] applies.
#[derive(Debug, Clone)]
pub enum Write {
    /// Creates or replaces the key.
    Put(KeyRecord),
    /// Deletes the key with this kid, if there.
    Delete(String),
}

/// Where keys are kept. Every method blocks: call them off the async
/// executor.
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// Where the store is, for messages (a folder, or a database address
    /// without its password).
    fn location(&self) -> String;
    /// Whether private keys are sealed at rest.
    fn is_sealed(&self) -> bool;
    /// Takes the exclusive change lock, waiting at most `timeout` (on a
    /// monotonic deadline).
    fn lock(&self, timeout: Duration) -> Result<StoreLock, Error>;
    /// A cheap value that changes whenever the stored keys change.
    fn fingerprint(&self) -> Result<u64, Error>;
    /// Reads every key as one consistent set, with the fingerprint it is;
    /// a key that does not load is reported, not fatal. `held` is the
    /// caller's lock when it holds it. A folder (no transactions) takes the
    /// lock for the read when `held` is `None`; PostgreSQL reads in one
    /// REPEATABLE READ transaction and never takes it.
    fn read(&self, held: Option<&StoreLock>) -> Result<Loaded, Error>;
    /// Applies `writes` in order: PostgreSQL in one transaction, a folder
    /// one atomic file at a time.
    fn write(&self, held: &StoreLock, writes: &[Write]) -> Result<(), Error>;
    /// Repairs what an interrupted writer left behind; returns how many
    /// leftovers were removed.
    fn recover(&self, _held: &StoreLock) -> usize {
        0
    }
}
