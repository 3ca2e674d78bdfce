//! The one mapping of refusals to HTTP answers, free of any framework:
//! status, `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9449 §7.1,
//! RFC 9728 §5.1) and a JSON body. The actix extractor, the tower layer
//! and the axum extractors all render a refusal through [`Refusal::answer`],
//! so their answers cannot drift apart; other frameworks can use it too.
//!
//! ```
//! use jwks_verifier::{Error, answer::{ChallengeOptions, Refusal}};
//!
//! let options = ChallengeOptions::default()
//!     .resource_metadata("https://api.example/.well-known/oauth-protected-resource");
//! let answer = Refusal::from(Error::MissingToken).answer(&options);
//! assert_eq!(answer.status, 401);
//! assert_eq!(answer.challenges[0], r#"Bearer resource_metadata="https://api.example/.well-known/oauth-protected-resource""#);
//! ```

use std::fmt;

use crate::{Error, dpop};

/// The authentication scheme a challenge names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449).
    Dpop,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => "DPoP",
        }
    }
}

/// What every challenge of a resource server carries besides the error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChallengeOptions {
    /// The URL of the RFC 9728 protected-resource metadata, sent as the
    /// `resource_metadata` parameter (RFC 9728 §5.1). Defaults to none.
    pub resource_metadata: Option<String>,
}

impl ChallengeOptions {
    /// Names the RFC 9728 metadata URL in every challenge.
    #[must_use]
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }
}

/// A refused request: the error and the scheme the request used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    error: Error,
    scheme: Scheme,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Refusal {}

impl From<Error> for Refusal {
    /// The challenge names `DPoP` for the DPoP errors, `Bearer` otherwise.
    fn from(error: Error) -> Self {
        let scheme = match error {
            Error::InvalidDpopProof { .. } | Error::DpopBound | Error::NotDpopBound => Scheme::Dpop,
            _ => Scheme::Bearer,
        };
        Refusal { error, scheme }
    }
}

/// An HTTP answer to a refused request, ready for any framework.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// 401, 403, 503 or 500.
    pub status: u16,
    /// The `WWW-Authenticate` values, one header each (none for 503/500).
    pub challenges: Vec<String>,
    /// Other headers: `Retry-After` on 503, and any added with
    /// [`Answer::header`] (a `DPoP-Nonce`, say).
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body (`application/json`): `error` (absent when the
    /// request had no credentials) and `error_description`.
    pub body: String,
}

impl Answer {
    /// Adds a header to the answer.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl Refusal {
    /// A refusal of a request that used `scheme`.
    pub fn new(error: Error, scheme: Scheme) -> Self {
        Refusal { error, scheme }
    }

    /// The error.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The scheme the challenge names.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The HTTP status: 403 for a missing scope, 503 when the keys cannot be
    /// had now (or the DPoP replay cache is full), 500 for a misconfigured
    /// server, 401 otherwise.
    pub fn status(&self) -> u16 {
        match &self.error {
            Error::InsufficientScope { .. } => 403,
            Error::JwksUnavailable { .. } | Error::InvalidDpopProof { reason: dpop::ProofError::ReplayCacheFull } => {
                503
            }
            Error::Config { .. } => 500,
            _ => 401,
        }
    }

    /// A fixed, client-safe description (no token or key details).
    fn description(&self) -> &'static str {
        match &self.error {
            Error::Malformed { .. } => "the access token is malformed",
            Error::TokenTooLarge { .. } => "the access token is too large",
            Error::UnsupportedAlg { .. } | Error::AlgMismatch { .. } | Error::AlgNameMismatch { .. } => {
                "the token's algorithm is not accepted"
            }
            Error::UnsupportedCrit => "the token has critical header extensions",
            Error::WrongType { .. } => "the token is not an access token (typ)",
            Error::UnknownKid { .. } => "the token's signing key is unknown",
            Error::BadSignature => "the token's signature is invalid",
            Error::WrongIssuer { .. } => "the token was issued by another issuer",
            Error::WrongAudience => "the token is not meant for this resource",
            Error::Expired { .. } => "the access token expired",
            Error::NotYetValid { .. } | Error::IssuedInFuture { .. } => "the access token is not valid yet",
            Error::MissingClaim { .. } => "the access token lacks a required claim",
            Error::InvalidClaim { .. } => "the access token has an invalid claim",
            Error::InsufficientScope { .. } => "the access token lacks the required scope",
            Error::MissingToken => "no access token",
            Error::JwksUnavailable { .. } | Error::Config { .. } => "the token cannot be verified now",
            Error::InvalidDpopProof { .. } => "the DPoP proof is invalid",
            Error::UseDpopNonce { .. } => "the DPoP proof must carry the nonce in the DPoP-Nonce header",
            Error::DpopBound => "the access token is DPoP-bound: use the DPoP scheme with a proof",
            Error::NotDpopBound => "the access token is not DPoP-bound: use the Bearer scheme",
        }
    }

    /// The description sent: fixed text, or for a refused proof the rule it
    /// broke (RFC 9449 asks for a precise one), reduced to the characters
    /// RFC 6749 §5.2 allows.
    fn client_description(&self) -> String {
        match &self.error {
            Error::InvalidDpopProof { reason } => jwks_jose::text::error_description(&reason.to_string(), 200),
            Error::UseDpopNonce { reason } => jwks_jose::text::error_description(reason, 200),
            _ => self.description().to_owned(),
        }
    }

    /// The RFC 6750 §3 / RFC 9449 §7.1 error code, if the answer has one.
    pub fn wire_code(&self) -> Option<&'static str> {
        match &self.error {
            // No error code when the request has no credentials (RFC 6750 §3.1).
            Error::MissingToken => None,
            Error::InsufficientScope { .. } => Some("insufficient_scope"),
            Error::JwksUnavailable { .. } | Error::InvalidDpopProof { reason: dpop::ProofError::ReplayCacheFull } => {
                Some("temporarily_unavailable")
            }
            Error::Config { .. } => Some("server_error"),
            Error::InvalidDpopProof { .. } => Some("invalid_dpop_proof"),
            Error::UseDpopNonce { .. } => Some("use_dpop_nonce"),
            _ => Some("invalid_token"),
        }
    }

    /// The whole answer, and a log line for it (errors of the server at
    /// `error`/`warn`, refusals at `debug`; never the token).
    pub fn answer(&self, options: &ChallengeOptions) -> Answer {
        let status = self.status();
        let description = self.client_description();
        let code = self.wire_code();
        let scheme = self.scheme.as_str();
        let algs = match self.scheme {
            Scheme::Bearer => String::new(),
            Scheme::Dpop => format!(r#", algs="{}""#, dpop_algs()),
        };
        let metadata =
            options.resource_metadata.as_deref().map(|url| format!(r#"resource_metadata="{}""#, quoted(url)));
        let mut challenges = Vec::new();
        match (&self.error, code) {
            (Error::MissingToken, _) => {
                // Both schemes are accepted (RFC 9449 §7.2).
                challenges.push(match &metadata {
                    Some(m) => format!("Bearer {m}"),
                    None => "Bearer".to_owned(),
                });
                let m = metadata.as_deref().map(|m| format!(", {m}")).unwrap_or_default();
                challenges.push(format!(r#"DPoP algs="{}"{m}"#, dpop_algs()));
            }
            (Error::InsufficientScope { scope }, _) => {
                let m = metadata.as_deref().map(|m| format!(", {m}")).unwrap_or_default();
                challenges.push(format!(
                    r#"{scheme} error="insufficient_scope", error_description="{description}", scope="{}"{algs}{m}"#,
                    quoted(scope)
                ));
            }
            (_, Some(code @ ("invalid_token" | "invalid_dpop_proof" | "use_dpop_nonce"))) => {
                let m = metadata.as_deref().map(|m| format!(", {m}")).unwrap_or_default();
                challenges.push(format!(r#"{scheme} error="{code}", error_description="{description}"{algs}{m}"#));
            }
            _ => {}
        }
        match &self.error {
            Error::Config { .. } => tracing::error!(error = %self.error, "verifier misconfigured"),
            Error::JwksUnavailable { .. } => tracing::warn!(error = %self.error, "token not verifiable now"),
            other => tracing::debug!(code = other.code(), error = %other, "request refused"),
        }
        let mut headers = Vec::new();
        if status == 503 {
            headers.push(("Retry-After", "30".to_owned()));
        }
        let body = match code {
            None => serde_json::json!({ "error_description": description }),
            Some(code) => serde_json::json!({ "error": code, "error_description": description }),
        };
        Answer { status, challenges, headers, body: body.to_string() }
    }
}

/// The `algs` parameter of a DPoP challenge (RFC 9449 §7.1).
fn dpop_algs() -> String {
    dpop::ALGORITHMS.map(|a| a.as_str()).join(" ")
}

/// A value safe inside a quoted-string: quotes, backslashes and controls
/// dropped (scopes and URLs have none when valid).
fn quoted(value: &str) -> String {
    value.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_its_challenge_and_body() {
        let none = ChallengeOptions::default();
        let a = Refusal::from(Error::MissingToken).answer(&none);
        assert_eq!((a.status, a.challenges.len()), (401, 2));
        assert_eq!(a.body, r#"{"error_description":"no access token"}"#);
        let a = Refusal::from(Error::InsufficientScope { scope: "re\"ad".into() }).answer(&none);
        assert_eq!(a.status, 403);
        assert!(a.challenges[0].ends_with(r#"scope="read""#), "{:?}", a.challenges);
        let a = Refusal::from(Error::JwksUnavailable { reason: "down".into() }).answer(&none);
        assert_eq!((a.status, a.challenges.len()), (503, 0));
        assert_eq!(a.headers, vec![("Retry-After", "30".to_owned())]);
        assert!(!a.body.contains("down"), "internal reasons stay in the log");
        let a = Refusal::from(Error::config("secret detail")).answer(&none);
        assert_eq!(a.status, 500);
        assert!(!a.body.contains("secret"));
        let a = Refusal::from(Error::DpopBound).answer(&none);
        assert!(a.challenges[0].starts_with(r#"DPoP error="invalid_token""#), "{:?}", a.challenges);
        assert!(a.challenges[0].contains("algs="));
    }

    #[test]
    fn resource_metadata_is_named_in_every_challenge() {
        let url = "https://api.example/.well-known/oauth-protected-resource/mcp";
        let options = ChallengeOptions::default().resource_metadata(url);
        for error in [Error::MissingToken, Error::BadSignature, Error::InsufficientScope { scope: "x".into() }] {
            let a = Refusal::from(error).answer(&options);
            assert!(!a.challenges.is_empty());
            for c in &a.challenges {
                assert!(c.contains(&format!(r#"resource_metadata="{url}""#)), "{c}");
            }
        }
    }
}
