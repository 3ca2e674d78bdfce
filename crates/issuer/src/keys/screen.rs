//! Screening what a store holds against the policy before anything uses it.

use super::{
    lifecycle::Policy,
    store::{self, KeyStore},
};
use crate::Error;

/// Loads every key of `store` and screens it: a key whose timeline the
/// policy could not have written ([`Policy::check`]) is reported with the
/// damaged files and never used.
pub fn load_screened(store: &dyn KeyStore, policy: &Policy) -> Result<store::Loaded, Error> {
    let mut loaded = store.load()?;
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
    Ok(loaded)
}
