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
    FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{
        StatusCode,
        header::{self, HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};

use crate::{
    Claims, Error, MultiVerifier, ProtectedResource, Verifier,
    answer::{ChallengeOptions, Refusal, Scheme},
    credentials::{self, Credentials},
};
pub use crate::{PublicBaseUrl, Scope};

/// The claims of a request whose bearer token verified.
#[derive(Debug, Clone)]
pub struct Authenticated {
    claims: Claims,
    options: ChallengeOptions,
    dpop_nonce: Option<String>,
}

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The fresh nonce the extractor leaves in the request's extensions for
/// [`send_dpop_nonce`].
#[derive(Debug, Clone)]
struct FreshNonce(String);

/// Middleware (for [`actix_web::middleware::from_fn`]) that adds the fresh
/// `DPoP-Nonce` of a request whose DPoP proof the extractor accepted to the
/// response, unless the handler set one. Refusals carry theirs already.
pub async fn send_dpop_nonce(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let fresh = res.request().extensions().get::<FreshNonce>().cloned();
    if let Some(FreshNonce(nonce)) = fresh
        && !res.headers().contains_key(DPOP_NONCE)
        && let Ok(value) = HeaderValue::from_str(&nonce)
    {
        res.headers_mut().insert(DPOP_NONCE, value);
    }
    Ok(res)
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

    /// The fresh DPoP nonce to send in the response's `DPoP-Nonce` header
    /// (RFC 9449 §9): for a DPoP request to a verifier with a nonce policy.
    /// [`send_dpop_nonce`] sends it.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop_nonce.as_deref()
    }

    /// `Ok` when the token has `scope`, else the 403 `insufficient_scope`
    /// answer, for use with `?` in a handler.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        if self.claims.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::from(Error::InsufficientScope { scope: scope.to_owned() })
                .with_options(&self.options)
                .with_nonce(self.dpop_nonce.clone()))
        }
    }
}

/// Optional authentication: `None` when the request has no credentials
/// (no `Authorization` header, or another scheme), the claims when its
/// token verifies; a bad token is still refused (401), unlike
/// `Option<Authenticated>`, which actix turns into `None` on any error.
#[derive(Debug, Clone)]
pub struct MaybeAuthenticated(pub Option<Authenticated>);

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

/// Why an extractor refused a request; renders the RFC 6750 §3 or
/// RFC 9449 §7.1 answer of the crate's one mapping ([`crate::answer`]).
#[derive(Debug)]
pub struct AuthError {
    refusal: Refusal,
    options: ChallengeOptions,
    /// The fresh `DPoP-Nonce` sent with the refusal of a DPoP request.
    nonce: Option<String>,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.refusal.fmt(f)
    }
}

impl std::error::Error for AuthError {}

impl From<Error> for AuthError {
    /// The challenge names `DPoP` for the DPoP errors, `Bearer` otherwise.
    fn from(error: Error) -> Self {
        AuthError { refusal: Refusal::from(error), options: ChallengeOptions::default(), nonce: None }
    }
}

impl AuthError {
    /// The error.
    pub fn error(&self) -> &Error {
        self.refusal.error()
    }

    fn from_refusal(refusal: Refusal) -> Self {
        AuthError { refusal, options: ChallengeOptions::default(), nonce: None }
    }

    /// The same refusal with a fresh `DPoP-Nonce`.
    fn with_nonce(mut self, nonce: Option<String>) -> Self {
        self.nonce = nonce;
        self
    }

    /// The fresh `DPoP-Nonce` the answer carries, if any.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    fn with_options(mut self, options: &ChallengeOptions) -> Self {
        self.options = options.clone();
        self
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let answer = self.refusal.answer(&self.options);
        let mut response = HttpResponse::build(self.status_code());
        for challenge in answer.challenges {
            response.append_header((header::WWW_AUTHENTICATE, challenge));
        }
        for (name, value) in answer.headers {
            response.append_header((name, value));
        }
        if let Some(value) = self.nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            response.insert_header((DPOP_NONCE, value));
        }
        response.content_type("application/json").body(answer.body)
    }
}

/// The credentials of a request: a bearer token, or a DPoP token and proof.
fn credentials(req: &HttpRequest) -> Result<Credentials, AuthError> {
    credentials::read(
        req.headers().get_all(header::AUTHORIZATION).map(|v| v.as_bytes()),
        req.headers().get_all("dpop").map(|v| v.as_bytes()),
    )
    .map_err(AuthError::from_refusal)
}

/// The URL the client addressed: the registered [`PublicBaseUrl`] and the
/// path, or else the connection's scheme, the request-target's authority or
/// the `Host` header, and the path. Forwarding headers are not trusted.
fn request_url(req: &HttpRequest) -> String {
    let path = req.uri().path();
    let base =
        req.app_data::<PublicBaseUrl>().or_else(|| req.app_data::<web::Data<PublicBaseUrl>>().map(|d| d.get_ref()));
    if let Some(base) = base {
        return base.join(path);
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

/// The challenge options registered as app data, or those naming the
/// registered [`ProtectedResource`]'s metadata, or none.
fn challenge_options(req: &HttpRequest) -> ChallengeOptions {
    let data = |req: &HttpRequest| -> Option<ChallengeOptions> {
        if let Some(o) = req.app_data::<ChallengeOptions>() {
            return Some(o.clone());
        }
        if let Some(o) = req.app_data::<web::Data<ChallengeOptions>>() {
            return Some(o.get_ref().clone());
        }
        let resource = req
            .app_data::<ProtectedResource>()
            .or_else(|| req.app_data::<web::Data<ProtectedResource>>().map(|d| d.get_ref()))?;
        Some(resource.challenge_options())
    };
    data(req).unwrap_or_default()
}

/// The registered [`Verifier`] or [`MultiVerifier`].
fn verifier(req: &HttpRequest) -> Result<MultiVerifier, Error> {
    if let Some(v) = req.app_data::<Verifier>() {
        return Ok(v.clone().into());
    }
    if let Some(v) = req.app_data::<web::Data<Verifier>>() {
        return Ok(v.get_ref().clone().into());
    }
    req.app_data::<MultiVerifier>()
        .cloned()
        .or_else(|| req.app_data::<web::Data<MultiVerifier>>().map(|d| d.get_ref().clone()))
        .ok_or_else(|| Error::config("no Verifier or MultiVerifier registered as app data"))
}

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, AuthError>>>>;

impl FromRequest for Authenticated {
    type Error = AuthError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let options = challenge_options(req);
        let registered = verifier(req).ok();
        let found = verifier(req).map_err(AuthError::from).and_then(|v| Ok((v, credentials(req)?)));
        let method = req.method().as_str().to_owned();
        let url = request_url(req);
        let req = req.clone();
        Box::pin(async move {
            let (verifier, found) = match found {
                Ok(found) => found,
                // A refused DPoP request still learns the current nonce.
                Err(e) if e.refusal.scheme() == Scheme::Dpop => {
                    let nonce = registered.and_then(|v| v.dpop_nonce());
                    return Err(e.with_options(&options).with_nonce(nonce));
                }
                Err(e) => return Err(e.with_options(&options)),
            };
            let dpop = matches!(found, Credentials::Dpop { .. });
            let verified = credentials::verify(&verifier, found, &method, &url).await;
            let nonce = if dpop { verifier.dpop_nonce() } else { None };
            match verified {
                Ok(claims) => {
                    if let Some(n) = &nonce {
                        req.extensions_mut().insert(FreshNonce(n.clone()));
                    }
                    Ok(Authenticated { claims, options, dpop_nonce: nonce })
                }
                Err(refusal) => Err(AuthError::from_refusal(refusal).with_options(&options).with_nonce(nonce)),
            }
        })
    }
}

impl FromRequest for MaybeAuthenticated {
    type Error = AuthError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = Authenticated::from_request(req, payload);
        Box::pin(async move {
            match auth.await {
                Ok(auth) => Ok(MaybeAuthenticated(Some(auth))),
                Err(e) if *e.error() == Error::MissingToken => Ok(MaybeAuthenticated(None)),
                Err(e) => Err(e),
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

/// A resource serving the RFC 9728 document of `resource` at its
/// well-known path, for `App::service`; register the same
/// [`ProtectedResource`] as app data so that challenges name it
/// (`resource_metadata`, RFC 9728 §5.1).
pub fn protected_resource_metadata(resource: &ProtectedResource) -> actix_web::Resource {
    let document = resource.document().to_string();
    web::resource(resource.well_known_path()).route(web::get().to(move || {
        let document = document.clone();
        async move { HttpResponse::Ok().content_type("application/json").body(document) }
    }))
}
