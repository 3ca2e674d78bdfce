//! The OAuth 2.0 token endpoint (RFC 6749 §4.4, client credentials):
//! request parsing ([`request`]), client authentication ([`clients`]), the
//! handler ([`endpoint`]) and its error answers ([`error`]).

pub mod assertion;
pub mod clients;
pub mod dpop;
pub mod endpoint;
pub mod error;
pub mod replay;
pub mod request;
pub mod throttle;

pub use clients::Clients;
pub use error::OAuthError;
