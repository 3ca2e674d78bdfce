//! Signing keys: the lifecycle of each key and the one planner
//! ([`lifecycle`]), the one apply path ([`apply`]), the store interface
//! ([`store`]) with the folder store ([`folder`]), the PostgreSQL store
//! ([`postgres`]), their document format ([`document`]) and the key that
//! seals it ([`kek`]), leadership and change notification ([`coordination`],
//! and [`election`] on PostgreSQL), the operator commands ([`ops`])
//! and the in-memory key ring the server signs and publishes from
//! ([`keyring`]).

pub mod apply;
pub mod coordination;
pub mod document;
pub mod election;
pub mod folder;
pub mod kek;
pub mod keyring;
pub mod lifecycle;
pub mod ops;
pub mod postgres;
mod postgres_tls;
mod screen;
pub mod store;

pub use coordination::{Coordination, Solo};
pub use election::PgCoordination;
pub use folder::DirStore;
pub use keyring::{ActiveKey, JwksDocument, Keyring, Snapshot};
pub use lifecycle::{KeyMeta, KeyState, Policy, Timeline};
pub use postgres::{PgStore, PgUrl};
pub use screen::{load_screened, screened};
pub use store::{KeyRecord, KeyStore, LOCK_TIMEOUT, Loaded, StoreLock, Write};

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

/// A store with its leadership and change notification.
#[derive(Debug)]
pub struct Opened {
    /// The keys.
    pub store: Box<dyn KeyStore>,
    /// Who plans rotation, and how changes are heard.
    pub coordination: Box<dyn Coordination>,
}

/// Opens the store `store` names. Blocking: call off the executor.
///
/// A folder store seals keys when `JWKS_ISSUER_KEK` is set; the PostgreSQL
/// store requires it, so the database never sees a private key in clear.
pub fn open_store(store: &KeyStoreConfig) -> Result<Opened, Error> {
    let sealer = kek::sealer_from_env()?;
    match store {
        KeyStoreConfig::Dir(dir) => {
            if sealer.is_none() {
                tracing::warn!("{} is not set: private keys are stored unencrypted in {}", kek::ENV_KEK, dir.display());
            }
            Ok(Opened { store: Box::new(DirStore::open(dir, sealer)?), coordination: Box::new(Solo) })
        }
        KeyStoreConfig::Postgres(url) => {
            let sealer = sealer.ok_or_else(|| {
                Error::Kek(format!(
                    "{} is required with `keys.postgres`: private keys are sealed before they reach the database \
                     (generate one with `head -c 32 /dev/urandom | base64`)",
                    kek::ENV_KEK
                ))
            })?;
            Ok(Opened {
                store: Box::new(PgStore::open(url, sealer)?),
                coordination: Box::new(PgCoordination::new(url)),
            })
        }
    }
}
