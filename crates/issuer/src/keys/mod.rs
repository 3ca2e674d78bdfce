//! Signing keys: the lifecycle of each key ([`lifecycle`]), the folder
//! store ([`store`]) and the in-memory key ring the server signs and
//! publishes from ([`keyring`]).

pub mod keyring;
pub mod lifecycle;
pub mod ops;
pub mod store;

pub use keyring::{ActiveKey, JwksDocument, Keyring, Snapshot};
pub use lifecycle::{KeyMeta, KeyState, Policy, Timeline};
pub use store::{DirStore, KeyRecord};
