//! The OAuth 2.0 token endpoint (RFC 6749 §4.4, client credentials).
//!
//! The rules live in [`TokenService`], free of the HTTP framework: what a
//! client is (`client`), parsing and shape checks ([`request`]), secrets
//! (`secret`, [`clients`]), brute-force limits (`throttle`, `peer`),
//! `private_key_jwt` (`assertion`), DPoP (`dpop`), single-use ids
//! (`replay`, shared by replicas in `claims`) and the error answers (`error`). `endpoint` is the thin
//! actix-web adapter.

pub(crate) mod assertion;
pub mod claims;
pub(crate) mod client;
pub mod clients;
pub(crate) mod dpop;
pub(crate) mod endpoint;
pub(crate) mod error;
pub(crate) mod peer;
pub(crate) mod replay;
pub mod request;
pub(crate) mod secret;
pub(crate) mod service;
pub(crate) mod throttle;

pub use assertion::AssertionAudience;
pub use client::{ClientAuth, ClientConfig, DpopMode, DpopNonceMode};
pub use clients::Clients;
pub use error::OAuthError;
pub use peer::Cidr;
pub use service::{Issued, TokenService, TokenSettings};
pub use throttle::ThrottleConfig;

/// The algorithms a DPoP proof may use (`dpop_signing_alg_values_supported`).
pub fn dpop_algorithms() -> Vec<jwks_jose::Algorithm> {
    dpop::algorithms()
}
