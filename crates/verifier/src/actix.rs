//! actix-web integration (feature `actix`): extractors that verify the
//! `Authorization: Bearer` token of a request (RFC 6750 §2.1), or the
//! `Authorization: DPoP` token and `DPoP` proof of a request (RFC 9449 §7),
//! and answer failures with the right status and `WWW-Authenticate`
//! challenge (RFC 6750 §3, RFC 9449 §7.1).
//!
//! A DPoP-bound token (`cnf.jkt`) is accepted only with the `DPoP` scheme
//! and a proof whose `htm` is the request's method and whose `htu` is the
//! request's URL; as `Bearer` it is refused. That URL is built from the
//! connection's scheme (TLS or not), the request-target's authority or the
//! `Host` header, and the path; `Forwarded` and `X-Forwarded-*` headers are
//! never trusted for it. Behind a reverse proxy or load balancer the URL
//! the client addressed is not the one the server sees: register the public
//! base URL as app data with [`PublicBaseUrl`]; the request path is
//! appended to it.
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

use crate::{Claims, Error, Verifier, dpop};

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
            Err(AuthError::from(Error::InsufficientScope { scope: scope.to_owned() }))
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

/// The public base URL of this resource server (scheme, host, optional
/// port and path prefix) as clients address it: the base of the URL that
/// DPoP proofs (`htu`) are checked against. Register it as app data when
/// the server runs behind a reverse proxy; the request path is appended.
///
/// ```
/// use jwks_verifier::actix::PublicBaseUrl;
///
/// let base = PublicBaseUrl::new("https://api.example.com/v1")?;
/// let app = actix_web::App::new().app_data(base);
/// # let _ = app;
/// # Ok::<(), jwks_verifier::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PublicBaseUrl(String);

impl PublicBaseUrl {
    /// An http(s) URL without query or fragment.
    pub fn new(url: &str) -> Result<Self, Error> {
        let parsed = url::Url::parse(url).map_err(|e| Error::config(format!("public base URL: {e}")))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::config("the public base URL must be http(s) without query or fragment"));
        }
        Ok(PublicBaseUrl(url.trim_end_matches('/').to_owned()))
    }
}

/// The authentication scheme a challenge names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// Why an extractor refused a request; renders the RFC 6750 §3 or
/// RFC 9449 §7.1 answer.
#[derive(Debug)]
pub struct AuthError {
    error: Error,
    scheme: Scheme,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for AuthError {}

impl From<Error> for AuthError {
    /// The challenge names `DPoP` for the DPoP errors, `Bearer` otherwise.
    fn from(error: Error) -> Self {
        let scheme = match error {
            Error::InvalidDpopProof { .. } | Error::DpopBound | Error::NotDpopBound => Scheme::Dpop,
            _ => Scheme::Bearer,
        };
        AuthError { error, scheme }
    }
}

impl AuthError {
    /// The error.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// An error of a request that used the `DPoP` scheme.
    fn dpop(error: Error) -> Self {
        AuthError { error, scheme: Scheme::Dpop }
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
            Error::DpopBound => "the access token is DPoP-bound: use the DPoP scheme with a proof",
            Error::NotDpopBound => "the access token is not DPoP-bound: use the Bearer scheme",
        }
    }

    /// The description sent: fixed text, or for a refused proof the rule it
    /// broke (RFC 9449 asks for a precise one), reduced to the characters
    /// RFC 6749 §5.2 allows (quotes, backslashes and anything outside
    /// printable ASCII replaced).
    fn client_description(&self) -> String {
        match &self.error {
            Error::InvalidDpopProof { reason } => jwks_jose::text::error_description(&reason.to_string(), 200),
            _ => self.description().to_owned(),
        }
    }

    /// The RFC 6750 §3 / RFC 9449 §7.1 error code, if the answer has one.
    fn wire_code(&self) -> Option<&'static str> {
        match &self.error {
            // No error code when the request has no credentials (RFC 6750 §3.1).
            Error::MissingToken => None,
            Error::InsufficientScope { .. } => Some("insufficient_scope"),
            Error::JwksUnavailable { .. } | Error::InvalidDpopProof { reason: dpop::ProofError::ReplayCacheFull } => {
                Some("temporarily_unavailable")
            }
            Error::Config { .. } => Some("server_error"),
            Error::InvalidDpopProof { .. } => Some("invalid_dpop_proof"),
            _ => Some("invalid_token"),
        }
    }
}

/// The `algs` parameter of a DPoP challenge (RFC 9449 §7.1).
fn dpop_algs() -> String {
    dpop::ALGORITHMS.map(|a| a.as_str()).join(" ")
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match &self.error {
            Error::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Error::JwksUnavailable { .. } | Error::InvalidDpopProof { reason: dpop::ProofError::ReplayCacheFull } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Config { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        let description = self.client_description();
        let code = self.wire_code();
        let scheme = match self.scheme {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => "DPoP",
        };
        let algs = match self.scheme {
            Scheme::Bearer => String::new(),
            Scheme::Dpop => format!(r#", algs="{}""#, dpop_algs()),
        };
        match (&self.error, code) {
            (Error::MissingToken, _) => {
                // Both schemes are accepted (RFC 9449 §7.2).
                response.append_header((header::WWW_AUTHENTICATE, "Bearer"));
                response.append_header((header::WWW_AUTHENTICATE, format!(r#"DPoP algs="{}""#, dpop_algs())));
            }
            (Error::InsufficientScope { scope }, _) => {
                let scope = scope.replace(['"', '\\'], "");
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!(r#"{scheme} error="insufficient_scope", error_description="{description}", scope="{scope}"{algs}"#),
                ));
            }
            (_, Some(code @ ("invalid_token" | "invalid_dpop_proof"))) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!(r#"{scheme} error="{code}", error_description="{description}"{algs}"#),
                ));
            }
            _ => {}
        }
        match &self.error {
            Error::Config { .. } => tracing::error!(error = %self.error, "verifier misconfigured"),
            Error::JwksUnavailable { .. } => tracing::warn!(error = %self.error, "token not verifiable now"),
            other => tracing::debug!(code = other.code(), error = %other, "request refused"),
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "30"));
        }
        match code {
            None => response.json(serde_json::json!({ "error_description": description })),
            Some(code) => response.json(serde_json::json!({ "error": code, "error_description": description })),
        }
    }
}

/// The credentials of a request.
#[derive(Debug)]
enum Credentials {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer(String),
    /// `Authorization: DPoP <token>` and one `DPoP` header (RFC 9449 §7.1).
    Dpop { token: String, proof: String },
}

/// The credentials of a request: a bearer token, or a DPoP token and proof.
fn credentials(req: &HttpRequest) -> Result<Credentials, AuthError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else { return Err(Error::MissingToken.into()) };
    if values.next().is_some() {
        return Err(Error::malformed("more than one Authorization header").into());
    }
    let value = value.to_str().map_err(|_| Error::malformed("Authorization header is not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let token = rest.trim_matches(' ');
    if scheme.eq_ignore_ascii_case("bearer") {
        if token.is_empty() {
            return Err(Error::malformed("empty bearer token").into());
        }
        return Ok(Credentials::Bearer(token.to_owned()));
    }
    if !scheme.eq_ignore_ascii_case("dpop") {
        // Another scheme is no token authentication at all (RFC 6750 §3.1).
        return Err(Error::MissingToken.into());
    }
    if token.is_empty() {
        return Err(AuthError::dpop(Error::malformed("empty DPoP token")));
    }
    let mut proofs = req.headers().get_all("dpop");
    let proof = match (proofs.next(), proofs.next()) {
        (Some(p), None) => p.to_str().map_err(|_| proof_error("the DPoP header is not ASCII"))?,
        (None, _) => return Err(proof_error("the request has no DPoP header")),
        (Some(_), Some(_)) => return Err(proof_error("the request has more than one DPoP header")),
    };
    Ok(Credentials::Dpop { token: token.to_owned(), proof: proof.to_owned() })
}

fn proof_error(reason: &str) -> AuthError {
    AuthError::dpop(dpop::ProofError::Malformed(reason.to_owned()).into())
}

/// The URL the client addressed: the registered [`PublicBaseUrl`] and the
/// path, or else the connection's scheme, the request-target's authority or
/// the `Host` header, and the path. Forwarding headers are not trusted.
fn request_url(req: &HttpRequest) -> String {
    let path = req.uri().path();
    let base =
        req.app_data::<PublicBaseUrl>().or_else(|| req.app_data::<web::Data<PublicBaseUrl>>().map(|d| d.get_ref()));
    if let Some(base) = base {
        return format!("{}{path}", base.0);
    }
    let scheme = if req.app_config().secure() { "https" } else { "http" };
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
        .unwrap_or_else(|| req.app_config().host().to_owned());
    format!("{scheme}://{host}{path}")
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
        let found = verifier(req).map_err(AuthError::from).and_then(|v| Ok((v, credentials(req)?)));
        let method = req.method().as_str().to_owned();
        let url = request_url(req);
        Box::pin(async move {
            match found? {
                (verifier, Credentials::Bearer(token)) => Ok(Authenticated { claims: verifier.verify(&token).await? }),
                (verifier, Credentials::Dpop { token, proof }) => {
                    let claims = verifier.verify_dpop(&token, &proof, &method, &url).await.map_err(AuthError::dpop)?;
                    Ok(Authenticated { claims })
                }
            }
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
