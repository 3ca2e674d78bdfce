//! actix-web integration (feature `actix`): extractors that verify the
//! `Authorization: Bearer` token of a request (RFC 6750 §2.1) and answer
//! failures with the right status and `WWW-Authenticate` challenge
//! (RFC 6750 §3).
//!
//! Register a [`Verifier`] as app data (`App::new().app_data(verifier)` or
//! wrapped in `web::Data`), then take [`Authenticated`] or [`Scoped`] in a
//! handler:
//!
//! ```no_run
//! use actix_web::{App, HttpServer, get};
//! use jwks_verifier::{Verifier, actix::{Authenticated, Scope, Scoped}};
//!
//! struct Read;
//! impl Scope for Read {
//!     const NAME: &'static str = "read";
//! }
//!
//! #[get("/whoami")]
//! async fn whoami(auth: Authenticated) -> String {
//!     auth.claims().sub.clone().unwrap_or_default()
//! }
//!
//! #[get("/data")]
//! async fn data(_auth: Scoped<Read>) -> &'static str {
//!     "secret data"
//! }
//!
//! # async fn run(verifier: Verifier) -> std::io::Result<()> {
//! HttpServer::new(move || App::new().app_data(verifier.clone()).service(whoami).service(data))
//!     .bind(("127.0.0.1", 8081))?
//!     .run()
//!     .await
//! # }
//! ```

use std::{fmt, future::Future, marker::PhantomData, pin::Pin};

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError,
    dev::Payload,
    http::{StatusCode, header},
    web,
};

use crate::{Claims, Error, Verifier};

/// The claims of a request whose bearer token verified.
#[derive(Debug, Clone)]
pub struct Authenticated {
    claims: Claims,
}

impl Authenticated {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The verified claims, by value.
    pub fn into_claims(self) -> Claims {
        self.claims
    }

    /// `Ok` when the token has `scope`, else the 403 `insufficient_scope`
    /// answer, for use with `?` in a handler.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        if self.claims.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError(Error::InsufficientScope { scope: scope.to_owned() }))
        }
    }
}

/// A scope required by [`Scoped`], named at the type level.
pub trait Scope {
    /// The scope value (one scope token, RFC 6749 §3.3).
    const NAME: &'static str;
}

/// Like [`Authenticated`], and the token must carry the scope `S::NAME`
/// (403 `insufficient_scope` otherwise).
pub struct Scoped<S: Scope> {
    auth: Authenticated,
    _scope: PhantomData<fn() -> S>,
}

impl<S: Scope> fmt::Debug for Scoped<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped").field("scope", &S::NAME).field("auth", &self.auth).finish()
    }
}

impl<S: Scope> Scoped<S> {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        self.auth.claims()
    }

    /// The verified claims, by value.
    pub fn into_claims(self) -> Claims {
        self.auth.into_claims()
    }
}

/// Why an extractor refused a request; renders the RFC 6750 §3 answer.
#[derive(Debug)]
pub struct AuthError(pub Error);

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AuthError {}

impl From<Error> for AuthError {
    fn from(e: Error) -> Self {
        AuthError(e)
    }
}

impl AuthError {
    /// The error.
    pub fn error(&self) -> &Error {
        &self.0
    }

    /// A fixed, client-safe description (no token or key details).
    fn description(&self) -> &'static str {
        match &self.0 {
            Error::Malformed { .. } => "the access token is malformed",
            Error::TokenTooLarge { .. } => "the access token is too large",
            Error::UnsupportedAlg { .. } | Error::AlgMismatch { .. } => "the token's algorithm is not accepted",
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
        }
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match &self.0 {
            Error::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Error::JwksUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Config { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        let challenge = match &self.0 {
            Error::MissingToken => Some("Bearer".to_owned()),
            Error::InsufficientScope { scope } => Some(format!(
                r#"Bearer error="insufficient_scope", error_description="{}", scope="{}""#,
                self.description(),
                scope.replace(['"', '\\'], "")
            )),
            Error::JwksUnavailable { .. } | Error::Config { .. } => None,
            _ => Some(format!(r#"Bearer error="invalid_token", error_description="{}""#, self.description())),
        };
        match &self.0 {
            Error::Config { .. } => tracing::error!(error = %self.0, "verifier misconfigured"),
            Error::JwksUnavailable { .. } => tracing::warn!(error = %self.0, "token not verifiable now"),
            other => tracing::debug!(code = other.code(), error = %other, "request refused"),
        }
        if let Some(challenge) = challenge {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "30"));
        }
        let error = match &self.0 {
            // No error code when the request has no credentials (RFC 6750 §3.1).
            Error::MissingToken => {
                return response.json(serde_json::json!({ "error_description": self.description() }));
            }
            Error::InsufficientScope { .. } => "insufficient_scope",
            Error::JwksUnavailable { .. } => "temporarily_unavailable",
            Error::Config { .. } => "server_error",
            _ => "invalid_token",
        };
        response.json(serde_json::json!({ "error": error, "error_description": self.description() }))
    }
}

/// The bearer token of a request (RFC 6750 §2.1).
fn bearer_token(req: &HttpRequest) -> Result<String, Error> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else { return Err(Error::MissingToken) };
    if values.next().is_some() {
        return Err(Error::malformed("more than one Authorization header"));
    }
    let value = value.to_str().map_err(|_| Error::malformed("Authorization header is not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme is no bearer authentication at all (RFC 6750 §3.1).
        return Err(Error::MissingToken);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(Error::malformed("empty bearer token"));
    }
    Ok(token.to_owned())
}

fn verifier(req: &HttpRequest) -> Result<Verifier, Error> {
    req.app_data::<Verifier>()
        .cloned()
        .or_else(|| req.app_data::<web::Data<Verifier>>().map(|d| d.get_ref().clone()))
        .ok_or_else(|| Error::config("no Verifier registered as app data"))
}

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, AuthError>>>>;

impl FromRequest for Authenticated {
    type Error = AuthError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = verifier(req).and_then(|v| Ok((v, bearer_token(req)?)));
        Box::pin(async move {
            let (verifier, token) = found?;
            Ok(Authenticated { claims: verifier.verify(&token).await? })
        })
    }
}

impl<S: Scope + 'static> FromRequest for Scoped<S> {
    type Error = AuthError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = Authenticated::from_request(req, payload);
        Box::pin(async move {
            let auth = auth.await?;
            auth.require_scope(S::NAME)?;
            Ok(Scoped { auth, _scope: PhantomData })
        })
    }
}
