//! Token endpoint errors (RFC 6749 §5.2) and their one mapping to HTTP.

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};

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
    /// A body over the limit; answered 413 with `invalid_request`.
    #[error("invalid_request")]
    TooLarge(usize),
    /// The body did not arrive within the deadline (seconds); answered 408
    /// with `invalid_request`, and the connection is closed.
    #[error("invalid_request")]
    BodyTimeout(u64),
    /// Too many failed authentications; answered 429 with `Retry-After`.
    #[error("slow_down")]
    Throttled {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// An internal failure: logged in full where it happens, answered
    /// with nothing inside.
    #[error("server_error")]
    Server,
}

impl OAuthError {
    /// The RFC 6749 §5.2 code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) | OAuthError::TooLarge(_) | OAuthError::BodyTimeout(_) => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::Throttled { .. } => "slow_down",
            OAuthError::Server => "server_error",
        }
    }

    fn description(&self) -> String {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidTarget(d)
            | OAuthError::InvalidDpopProof(d)
            | OAuthError::InvalidClient { description: d, .. } => d.clone(),
            OAuthError::TooLarge(max) => format!("request body larger than {max} bytes"),
            OAuthError::BodyTimeout(secs) => format!("request body not received within {secs} s"),
            OAuthError::Throttled { retry_after } => {
                format!("too many failed authentications; retry after {retry_after} s")
            }
            OAuthError::Server => "the server could not complete the request".into(),
        }
    }
}

/// The realm of the `WWW-Authenticate: Basic` challenge.
pub const REALM: &str = "jwks-issuer";

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            OAuthError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OAuthError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            OAuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::Server => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store")).insert_header((header::PRAGMA, "no-cache"));
        match self {
            OAuthError::InvalidClient { .. } => {
                res.insert_header((header::WWW_AUTHENTICATE, format!("Basic realm=\"{REALM}\"")));
            }
            OAuthError::Throttled { retry_after } => {
                res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            // The rest of a slow body would be read as the next request.
            OAuthError::BodyTimeout(_) => {
                res.force_close();
            }
            _ => {}
        }
        res.json(serde_json::json!({"error": self.code(), "error_description": self.description()}))
    }
}
