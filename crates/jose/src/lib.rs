//! The JOSE model shared by `jwks-issuer` and `jwks-verifier`: the signing
//! algorithms this project allows, public JWKs and JWK sets, RFC 7638
//! thumbprints, strict base64url and compact-JWS framing (with signing
//! under a pre-encoded header), and the single [`crypto`] backend module
//! that every signature, verification, digest and seal of the project goes
//! through.
//!
//! It is also the ground floor both programs stand on: the injected
//! [`clock`] and [`clock::UnixTime`], the bounded single-use [`replay`]
//! cache, the stateless DPoP [`nonce`]s, and the [`text`] helpers for messages built from untrusted input.
//! No async runtime, HTTP client or web framework enters this crate.
//!
//! The backend is chosen by cargo feature: `aws-lc-rs` (default) or `ring`
//! (with the `rsa` crate generating RSA keys, never signing).
//!
//! ```
//! use jwks_jose::{Algorithm, SigningKey, compact};
//!
//! let pkcs8 = SigningKey::generate(Algorithm::ES256, 2048)?;
//! let key = SigningKey::from_pkcs8(Algorithm::ES256, &pkcs8)?;
//! let jwk = key.public_jwk();
//! assert_eq!(jwk.kid.as_deref(), Some(key.kid()));
//!
//! let token = compact::sign(&key, br#"{"alg":"ES256","typ":"at+jwt"}"#, br#"{"sub":"demo"}"#)?;
//! let parts = compact::split(&token, 8192)?;
//! let verifying = jwk.verifying_key()?;
//! verifying.verify(parts.signing_input.as_bytes(), &parts.signature)?;
//! # Ok::<(), jwks_jose::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("jwks-jose needs one crypto backend: enable feature `aws-lc-rs` (default) or `ring`");

mod alg;
pub mod b64;
pub mod clock;
pub mod compact;
pub mod crypto;
mod error;
mod jwk;
pub mod nonce;
pub mod replay;
mod signing;
pub mod text;

pub use alg::Algorithm;
pub use crypto::VerifyingKey;
pub use error::Error;
pub use jwk::{Jwk, JwkSet, thumbprint};
pub use signing::SigningKey;
