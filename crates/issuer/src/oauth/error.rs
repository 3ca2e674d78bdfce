//! Token endpoint errors (RFC 6749 §5.2): the wire code, the description,
//! the HTTP status and the headers each answer carries. The mapping is
//! data here, free of the HTTP framework; `endpoint` renders it.

/// An error answer of the token endpoint. `Display` is the RFC 6749 §5.2
/// error code; the description is sent as `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// Missing, repeated or malformed parameter; wrong content type; both
    /// authentication methods at once.
    #[error("invalid_request")]
    InvalidRequest(String),
    /// Client authentication failed. Always 401, always with a
    /// `WWW-Authenticate: Basic` challenge (RFC 7235 §3.1 requires one on
    /// every 401; RFC 6749 §5.2 requires it when Basic was tried).
    #[error("invalid_client")]
    InvalidClient {
        /// What failed, without saying whether the client exists.
        description: String,
    },
    /// A grant type other than `client_credentials`.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType(String),
    /// A scope the client may not have, or a malformed scope.
    #[error("invalid_scope")]
    InvalidScope(String),
    /// A resource or audience the client may not have (RFC 8707 §2).
    #[error("invalid_target")]
    InvalidTarget(String),
    /// A `DPoP` proof that is invalid, or missing for a client that
    /// requires DPoP (RFC 9449 §5); the description names the rule.
    #[error("invalid_dpop_proof")]
    InvalidDpopProof(String),
    /// The proof must carry the server's nonce (RFC 9449 §8): it has none
    /// and the client's mode is `required`, its nonce is not valid, or its
    /// `iat` is outside the window. 400 with the fresh nonce in `DPoP-Nonce`.
    #[error("use_dpop_nonce")]
    UseDpopNonce {
        /// Why.
        description: String,
        /// The nonce to retry with.
        nonce: String,
    },
    /// A body over the limit; answered 413 with `invalid_request`.
    #[error("invalid_request")]
    TooLarge(usize),
    /// The body did not arrive within the deadline (seconds); answered 408
    /// with `invalid_request`, and the connection is closed.
    #[error("invalid_request")]
    BodyTimeout(u64),
    /// Too many failed authentications, or too many authentications in
    /// progress from one address: 429 with `Retry-After`, and the RFC 6749
    /// §5.2 code `invalid_request` (§5.2 has no code of its own for it;
    /// `slow_down` is RFC 8628's, for the device flow).
    #[error("invalid_request")]
    Throttled {
        /// Seconds until a retry may succeed.
        retry_after: u64,
        /// Why.
        reason: ThrottleReason,
    },
    /// Every secret-checking worker is busy and the wait for one ran out:
    /// 503 with `Retry-After` and `temporarily_unavailable`.
    #[error("temporarily_unavailable")]
    Busy {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// An internal failure: logged in full where it happens, answered
    /// with nothing inside.
    #[error("server_error")]
    Server,
}

/// Why a request was throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// The failed-authentication budget is spent.
    Failures,
    /// The address already has as many secret checks in progress as allowed.
    InProgress,
    /// The client already has as many live single-use ids as allowed.
    SingleUseIds,
}

impl OAuthError {
    /// The error code on the wire (RFC 6749 §5.2 and RFC 9449 §5).
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_)
            | OAuthError::TooLarge(_)
            | OAuthError::BodyTimeout(_)
            | OAuthError::Throttled { .. } => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::UseDpopNonce { .. } => "use_dpop_nonce",
            OAuthError::Busy { .. } => "temporarily_unavailable",
            OAuthError::Server => "server_error",
        }
    }

    /// The `error_description`: only the characters RFC 6749 §5.2 allows.
    pub fn description(&self) -> String {
        let text = match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidTarget(d)
            | OAuthError::InvalidDpopProof(d)
            | OAuthError::InvalidClient { description: d }
            | OAuthError::UseDpopNonce { description: d, .. } => d.clone(),
            OAuthError::TooLarge(max) => format!("request body larger than {max} bytes"),
            OAuthError::BodyTimeout(secs) => format!("request body not received within {secs} s"),
            OAuthError::Throttled { retry_after, reason: ThrottleReason::Failures } => {
                format!("too many failed authentications; retry after {retry_after} s")
            }
            OAuthError::Throttled { retry_after, reason: ThrottleReason::InProgress } => {
                format!("too many authentications in progress from this address; retry after {retry_after} s")
            }
            OAuthError::Throttled { retry_after, reason: ThrottleReason::SingleUseIds } => {
                format!("too many assertions or proofs in flight for this client; retry after {retry_after} s")
            }
            OAuthError::Busy { retry_after } => format!("the server is busy; retry after {retry_after} s"),
            OAuthError::Server => "the server could not complete the request".into(),
        };
        printable(&text, 300)
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            OAuthError::InvalidClient { .. } => 401,
            OAuthError::TooLarge(_) => 413,
            OAuthError::BodyTimeout(_) => 408,
            OAuthError::Throttled { .. } => 429,
            OAuthError::Busy { .. } => 503,
            OAuthError::Server => 500,
            _ => 400,
        }
    }

    /// The `Retry-After` seconds of a 429 or 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            OAuthError::Throttled { retry_after, .. } | OAuthError::Busy { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The nonce a `use_dpop_nonce` answer sends in `DPoP-Nonce`.
    pub fn dpop_nonce(&self) -> Option<&str> {
        match self {
            OAuthError::UseDpopNonce { nonce, .. } => Some(nonce),
            _ => None,
        }
    }

    /// Whether the answer carries a `WWW-Authenticate: Basic` challenge.
    pub fn challenges(&self) -> bool {
        matches!(self, OAuthError::InvalidClient { .. })
    }

    /// Whether the connection must be closed after the answer (the rest of
    /// a slow body would be read as the next request).
    pub fn closes_connection(&self) -> bool {
        matches!(self, OAuthError::BodyTimeout(_))
    }
}

/// The realm of the `WWW-Authenticate: Basic` challenge.
pub(crate) const REALM: &str = "jwks-issuer";

/// At most `max` characters of `s`, keeping only those RFC 6749 §5.2
/// allows in `error_description`; others are shown as `?`.
pub(crate) use jwks_jose::text::error_description as printable;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_hold_only_rfc6749_5_2_characters() {
        let e = OAuthError::InvalidScope("scope `\"é\\\n` is bad".into());
        let d = e.description();
        assert!(d.bytes().all(|b| matches!(b, 0x20 | 0x21 | 0x23..=0x5B | 0x5D..=0x7E)), "{d}");
    }

    #[test]
    fn use_dpop_nonce_is_400_with_its_nonce() {
        let e = OAuthError::UseDpopNonce { description: "send the nonce".into(), nonce: "n0nce".into() };
        assert_eq!((e.status(), e.code(), e.dpop_nonce()), (400, "use_dpop_nonce", Some("n0nce")));
        assert_eq!(e.description(), "send the nonce");
        assert_eq!(OAuthError::Server.dpop_nonce(), None);
    }

    #[test]
    fn throttling_is_429_invalid_request_with_retry_after() {
        let e = OAuthError::Throttled { retry_after: 3, reason: ThrottleReason::Failures };
        assert_eq!((e.status(), e.code(), e.retry_after()), (429, "invalid_request", Some(3)));
        assert!(e.description().contains("retry after 3 s"));
        let b = OAuthError::Busy { retry_after: 1 };
        assert_eq!((b.status(), b.code(), b.retry_after()), (503, "temporarily_unavailable", Some(1)));
    }
}
