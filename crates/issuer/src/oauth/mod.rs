//! The OAuth 2.0 token endpoint (RFC 6749 §4.4, client credentials).
//!
//! The rules live in [`service::TokenService`], free of the HTTP framework:
//! what a client is ([`client`]), parsing and shape checks ([`request`]),
//! secrets ([`secret`], [`clients`]), brute-force limits ([`throttle`],
//! [`peer`]), `private_key_jwt` ([`assertion`]), DPoP (`dpop`),
//! single-use ids ([`replay`]) and the error answers ([`error`]).
//! [`endpoint`] is the thin actix-web adapter.

pub mod assertion;
pub mod client;
pub mod clients;
pub(crate) mod dpop;
pub mod endpoint;
pub mod error;
pub mod peer;
pub mod replay;
pub mod request;
pub mod secret;
pub mod service;
pub mod throttle;

pub use client::{ClientAuth, ClientConfig, DpopMode};
pub use clients::Clients;
pub use error::OAuthError;
pub use service::{Issued, TokenService, TokenSettings};

/// The algorithms a DPoP proof may use (`dpop_signing_alg_values_supported`).
pub fn dpop_algorithms() -> Vec<jwks_jose::Algorithm> {
    dpop::algorithms()
}
