//! Options that weaken verification. Each use should be justified in a
//! code review; importing [`DangerousOptions`] makes every use easy to find.
//!
//! ```
//! use jwks_verifier::{Verifier, dangerous::DangerousOptions};
//!
//! // A test issuer on a private network without TLS, issuing plain `JWT`s.
//! let builder = Verifier::builder()
//!     .issuer("http://issuer.internal")
//!     .audience("api")
//!     .allow_http()
//!     .accept_any_type();
//! # let _ = builder;
//! ```

use crate::VerifierBuilder;

/// Weakening options for [`VerifierBuilder`].
pub trait DangerousOptions: Sized {
    /// Accepts tokens whatever their header `typ` (or without one).
    /// RFC 9068 §4 and RFC 8725 §3.11 require the type check: it stops an ID
    /// token or another JWT signed by the same keys from being used as an
    /// access token.
    fn accept_any_type(self) -> Self;

    /// Allows `http` URLs for discovery and the JWKS on any host, not just
    /// loopback hosts: the keys can then be replaced by anyone on the path.
    fn allow_http(self) -> Self;
}

impl DangerousOptions for VerifierBuilder {
    fn accept_any_type(mut self) -> Self {
        self.required_type = None;
        self
    }

    fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }
}
