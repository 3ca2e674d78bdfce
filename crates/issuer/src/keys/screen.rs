//! Screening what a store holds against the policy before anything uses it.

use super::{
    lifecycle::Policy,
    store::{self, KeyStore},
};
use crate::Error;

/// Reads every key of `store` (one consistent read: [`KeyStore::read`])
/// and screens it ([`screened`]).
pub fn load_screened(store: &dyn KeyStore, policy: &Policy) -> Result<store::Loaded, Error> {
    Ok(screened(store.read(None)?, policy))
}

/// `loaded` screened: a key whose timeline the policy could not have
/// written ([`Policy::check`]) is reported with the damaged files and
/// never used.
pub fn screened(mut loaded: store::Loaded, policy: &Policy) -> store::Loaded {
    let mut keys = Vec::with_capacity(loaded.keys.len());
    for rec in loaded.keys {
        match policy.check(&rec.meta.timeline) {
            Ok(()) => keys.push(rec),
            Err(reason) => loaded.damaged.push(store::Damaged {
                file: format!("key {}", rec.meta.kid),
                kid: Some(rec.meta.kid.clone()),
                reason: format!("{reason}; refused"),
            }),
        }
    }
    loaded.keys = keys;
    loaded
}
