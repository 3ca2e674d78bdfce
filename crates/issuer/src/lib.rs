//! `jwks-issuer`: an OAuth 2.0 client-credentials token issuer (RFC 6749
//! §4.4) that signs RFC 9068 JWT access tokens with RS256 or ES256, rotates
//! its keys with a lifecycle that never breaks a verifier, and publishes
//! them at `/.well-known/jwks.json` with RFC 8414 discovery metadata.
//!
//! The binary's `serve` builds the same app that tests build in-process:
//!
//! ```
//! use std::{path::Path, sync::Arc};
//! use jwks_issuer::{Config, clock::SharedClock, http, keys::{DirStore, Keyring}};
//! use jwks_jose::clock::{ManualClock, UnixTime};
//!
//! let dir = tempfile::tempdir()?;
//! let toml = format!(
//!     "issuer = \"http://127.0.0.1:8080\"\n[keys]\ndir = \"{}\"\nalgorithms = [\"ES256\"]\n[tokens]\nalgorithm = \"ES256\"\n",
//!     dir.path().display()
//! );
//! let config = Arc::new(Config::from_toml(Path::new("issuer.toml"), &toml, &|_| None)?);
//! let clock: SharedClock = Arc::new(ManualClock::at(UnixTime::from_secs(1_800_000_000)));
//! let store = DirStore::open(dir.path(), None)?;
//! let keyring = Arc::new(Keyring::open(store, clock.clone(), config.keys.algorithms.clone(), config.key_policy(), 2048)?);
//! assert_eq!(keyring.snapshot().signer(jwks_jose::Algorithm::ES256).map(|k| k.meta.alg), Some(jwks_jose::Algorithm::ES256));
//! let state = actix_web::web::Data::new(http::AppState::new(config, keyring, clock)?);
//! let _app = actix_web::App::new().configure(http::routes(&state));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod clock;
pub mod config;
mod error;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub(crate) mod serve;
pub mod tls;
pub mod token;

pub use config::Config;
pub use error::Error;
