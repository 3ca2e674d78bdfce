//! Signing keys: the lifecycle of each key ([`lifecycle`]), the stores
//! ([`store`] for a folder, [`postgres`] for a database shared by
//! replicas) and the in-memory key ring the server signs and publishes
//! from ([`keyring`]).

pub mod keyring;
pub mod lifecycle;
pub mod ops;
pub mod postgres;
mod postgres_tls;
mod screen;
pub mod store;

pub use keyring::{ActiveKey, JwksDocument, Keyring, Snapshot};
pub use lifecycle::{KeyMeta, KeyState, Policy, Timeline};
pub use postgres::{PgStore, PgUrl};
pub use screen::load_screened;
pub use store::{DirStore, KeyRecord, KeyStore};

use std::path::PathBuf;

use crate::Error;

/// Where the keys are kept (`[keys] dir` or `[keys] postgres`).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyStoreConfig {
    /// `keys.dir`: a folder, relative to the working directory. The default,
    /// `keys`, when `keys.postgres` is absent.
    Dir(PathBuf),
    /// `keys.postgres`: a PostgreSQL database shared by replicas.
    Postgres(Box<PgUrl>),
}

/// How long another server may take to follow a change of the store: the
/// scheduler polls the folder (and the PostgreSQL generation, besides
/// `LISTEN/NOTIFY`) this often. A key must be published for `jwks.max_age`
/// plus this before it signs, so that every server's JWKS held it that long.
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens the store `store` names. Blocking: call off the executor.
///
/// A folder store seals keys when `JWKS_ISSUER_KEK` is set; the PostgreSQL
/// store requires it, so the database never sees a private key in clear.
pub fn open_store(store: &KeyStoreConfig) -> Result<Box<dyn KeyStore>, Error> {
    let sealer = store::sealer_from_env()?;
    match store {
        KeyStoreConfig::Dir(dir) => {
            if sealer.is_none() {
                tracing::warn!(
                    "{} is not set: private keys are stored unencrypted in {}",
                    store::ENV_KEK,
                    dir.display()
                );
            }
            Ok(Box::new(DirStore::open(dir, sealer)?))
        }
        KeyStoreConfig::Postgres(url) => {
            let sealer = sealer.ok_or_else(|| {
                Error::Kek(format!(
                    "{} is required with `keys.postgres`: private keys are sealed before they reach the database \
                     (generate one with `head -c 32 /dev/urandom | base64`)",
                    store::ENV_KEK
                ))
            })?;
            Ok(Box::new(PgStore::open(url, sealer)?))
        }
    }
}
