//! Verify RFC 9068 JWT access tokens against an issuer's JWKS, by the rules
//! of RFC 8725.
//!
//! A [`Verifier`] fetches the issuer's JWK set (discovering its URI through
//! RFC 8414 metadata unless given), parses each key once, and keeps it in a
//! cache that readers consult without locks or allocation. The cache
//! honours `Cache-Control: max-age` within `[min_ttl, max_ttl]`, refreshes
//! in the background before expiry with `If-None-Match`, refetches at most
//! once per `refetch_cooldown` for unknown kids (one shared fetch however
//! many requests miss at once), and keeps serving the last good keys for up
//! to `max_stale` while the endpoint fails.
//!
//! Each token is checked in this order: size (8 KiB; more for ML-DSA, see
//! [`limits`]), three strict base64url segments, a duplicate-free JSON
//! header, `alg` in the allow-list (RS256 and ES256 by default; ES384,
//! PS256, Ed25519, ML-DSA-44 and ML-DSA-65 opt-in; `none` and HMAC never),
//! the size limit of that algorithm, no `crit`, `typ`
//! `at+jwt`, the key named by `kid` (whose own algorithm must equal `alg`),
//! the signature, then `iss`, `aud`, `exp`, `nbf` and `iat` with a leeway.
//! `jku`, `x5u`, `jwk` and `x5c` headers are ignored. Every refusal is an
//! [`Error`] with a stable [`code`](Error::code).
//!
//! A token bound to a key with DPoP (RFC 9449: `cnf.jkt`) is refused by
//! `verify` and accepted only by [`Verifier::verify_dpop`], with a proof
//! by that key for the request; [`dpop::verify_proof`] is the proof check
//! alone, for other frameworks and for token endpoints. A [`nonce`] policy
//! (RFC 9449 §9) makes proofs carry a fresh server nonce.
//!
//! ```no_run
//! # async fn run() -> Result<(), jwks_verifier::Error> {
//! use jwks_verifier::Verifier;
//!
//! let verifier = Verifier::builder()
//!     .issuer("https://issuer.example")
//!     .audience("https://api.example")
//!     .build()
//!     .await?;
//! let claims = verifier.verify("eyJhbGciOi...").await?;
//! assert!(claims.has_scope("read"));
//! # Ok(()) }
//! ```
//!
//! The same rules apply offline, synchronously, to a fixed JWK set:
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use std::sync::Arc;
//! use jwks_jose::{Algorithm, JwkSet, SigningKey, compact};
//! use jwks_verifier::{ManualClock, Verifier};
//!
//! let key = SigningKey::from_pkcs8(Algorithm::ES256, &SigningKey::generate(Algorithm::ES256, 2048)?)?;
//! let jwks = JwkSet { keys: vec![key.public_jwk()] };
//! let header = format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{}"}}"#, key.kid());
//! let claims = r#"{"iss":"https://issuer.example","aud":"api","exp":1700000600,"scope":"read"}"#;
//! let token = compact::sign(&key, header.as_bytes(), claims.as_bytes())?;
//!
//! let verifier = Verifier::builder()
//!     .issuer("https://issuer.example")
//!     .audience("api")
//!     .clock(Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))))
//!     .build_offline(&jwks)?;
//! let claims = verifier.verify(&token)?;
//! assert!(claims.has_scope("read"));
//! assert_eq!(verifier.verify(&token.replace('.', "..")).unwrap_err().code(), "malformed");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Resource servers plug it in through [`actix`] or [`tower`] and [`axum`],
//! which answer refusals by one mapping ([`answer`]); a [`MultiVerifier`]
//! serves several issuers; [`ProtectedResource`] is the RFC 9728 metadata.
//!
//! Features: `aws-lc-rs` (default) or `ring` selects the crypto backend of
//! `jwks-jose` and of the JWKS client's TLS (rustls); `actix` (default)
//! adds the `actix` extractors; `axum` (default) the tower layer and the
//! axum extractors (`tower` alone: the layer); `native-roots` the
//! platform's root certificates as an option; `cli` (not default) builds the
//! `jwks-verify` binary, so the library's users do not compile its
//! argument parser and log subscriber. Counters are
//! emitted through the `metrics` facade under the names in [`telemetry`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "actix")]
pub mod actix;
pub mod answer;
#[cfg(feature = "axum")]
pub mod axum;
mod cache;
mod claims;
mod clock;
// Reading credentials off a request serves the framework adapters; without
// one, only `PublicBaseUrl` is used.
#[cfg_attr(not(any(feature = "actix", feature = "tower")), allow(dead_code))]
mod credentials;
pub mod dangerous;
pub mod dpop;
mod error;
mod http;
mod json;
mod keys;
pub mod limits;
mod multi;
pub mod nonce;
mod proof;
mod resource;
pub mod telemetry;
mod token;
#[cfg(feature = "tower")]
pub mod tower;
mod verifier;

pub use cache::{CacheSnapshot, JwksStatus};
pub use claims::{Audience, Claims};
pub use clock::{Clock, ManualClock, Sleep, SystemClock, UnixTime};
pub use credentials::PublicBaseUrl;
pub use error::Error;
pub use http::MAX_BODY_BYTES;
pub use jwks_jose::{Algorithm, JwkSet};
pub use keys::MAX_KEYS;
pub use multi::{MultiVerifier, MultiVerifierBuilder};
pub use resource::ProtectedResource;
pub use token::MAX_TOKEN_LEN;
pub use verifier::{OfflineVerifier, Verified, Verifier, VerifierBuilder};

/// A scope required by a `Scoped` extractor (actix or axum), named at the
/// type level.
pub trait Scope {
    /// The scope value (one scope token, RFC 6749 §3.3).
    const NAME: &'static str;
}
