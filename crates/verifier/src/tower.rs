//! A tower [`Layer`] (feature `tower`, part of `axum`): verifies the
//! `Authorization` header of each request (Bearer, or DPoP with its proof
//! checked against the request's method and URL, as the actix extractor
//! does) and puts the verified [`Claims`] in the request's extensions; a
//! refused request is answered by the crate's one mapping of errors
//! ([`crate::answer`]) without reaching the inner service.
//!
//! It works with any tower stack whose response body can be made from a
//! `String` (axum, hyper services, tonic's generated servers through
//! axum): a handler reads `request.extensions().get::<Claims>()`.
//!
//! The DPoP URL is the configured [`PublicBaseUrl`] and the path, or else
//! the request URI's scheme and authority (HTTP/2 requests carry them), or
//! `http` and the `Host` header. Forwarding headers are never trusted;
//! behind a proxy or with TLS terminated in-process, set the public base URL.
//!
//! ```
//! use jwks_verifier::{PublicBaseUrl, Verifier, tower::AuthLayer};
//!
//! fn layer(verifier: Verifier) -> Result<AuthLayer, jwks_verifier::Error> {
//!     Ok(AuthLayer::new(verifier).public_base_url(PublicBaseUrl::new("https://api.example")?))
//! }
//! ```

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    Claims, MultiVerifier, PublicBaseUrl,
    answer::{Answer, ChallengeOptions, Refusal, Scheme},
    credentials,
};

/// Verifies each request's token before the inner service sees it.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
struct Config {
    verifier: MultiVerifier,
    base: Option<PublicBaseUrl>,
    options: ChallengeOptions,
    anonymous: bool,
}

impl AuthLayer {
    /// A layer over one issuer's [`Verifier`](crate::Verifier) or a
    /// [`MultiVerifier`]. Requests without valid credentials are refused.
    pub fn new(verifier: impl Into<MultiVerifier>) -> Self {
        let config =
            Config { verifier: verifier.into(), base: None, options: ChallengeOptions::default(), anonymous: false };
        AuthLayer { config: Arc::new(config) }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// The URL clients address this server by, the base of DPoP proofs'
    /// `htu`. Defaults to the request URI's scheme and authority or the
    /// `Host` header.
    #[must_use]
    pub fn public_base_url(self, base: PublicBaseUrl) -> Self {
        self.with(|c| c.base = Some(base))
    }

    /// What every challenge carries, e.g. the RFC 9728 `resource_metadata`
    /// URL. Defaults to nothing.
    #[must_use]
    pub fn challenge_options(self, options: ChallengeOptions) -> Self {
        self.with(|c| c.options = options)
    }

    /// Lets requests without credentials (no `Authorization` header, or
    /// another scheme) through without claims, for optional authentication;
    /// invalid credentials are still refused. Defaults to refusing them.
    #[must_use]
    pub fn allow_anonymous(self) -> Self {
        self.with(|c| c.anonymous = true)
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, config: Arc::clone(&self.config) }
    }
}

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// The service of [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    config: Arc<Config>,
}

/// Renders an [`Answer`] as an `http` response.
pub fn response<B: From<String>>(answer: Answer) -> Response<B> {
    let mut response = Response::new(B::from(answer.body));
    // Every status of the mapping is a valid code; 500 is the fallback.
    *response.status_mut() =
        http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    for challenge in answer.challenges {
        if let Ok(value) = http::HeaderValue::try_from(challenge) {
            headers.append(header::WWW_AUTHENTICATE, value);
        }
    }
    for (name, value) in answer.headers {
        if let Ok(value) = http::HeaderValue::try_from(value) {
            headers.append(name, value);
        }
    }
    response
}

impl Config {
    /// The request's claims, `None` for an anonymous request let through.
    async fn authenticate(&self, parts: &http::request::Parts) -> Result<Option<Claims>, Refusal> {
        let found = credentials::read(
            parts.headers.get_all(header::AUTHORIZATION).iter().map(|v| v.as_bytes()),
            parts.headers.get_all("dpop").iter().map(|v| v.as_bytes()),
        );
        let found = match found {
            Err(refusal) if self.anonymous && *refusal.error() == crate::Error::MissingToken => return Ok(None),
            other => other?,
        };
        let url = self.request_url(parts);
        credentials::verify(&self.verifier, found, parts.method.as_str(), &url).await.map(Some)
    }

    fn request_url(&self, parts: &http::request::Parts) -> String {
        let path = parts.uri.path();
        if let Some(base) = &self.base {
            return base.join(path);
        }
        let scheme = parts.uri.scheme_str().unwrap_or("http");
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("localhost");
        format!("{scheme}://{host}{path}")
    }
}

impl<S, B, ResBody> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was polled ready serves this request; a clone
        // takes its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            // DPoP nonces (RFC 9449 §9): every answer to a DPoP request
            // carries a fresh one when the verifier has a nonce policy.
            let dpop = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().get(..5))
                .is_some_and(|s| s.eq_ignore_ascii_case(b"dpop "));
            match config.authenticate(&parts).await {
                Ok(Some(claims)) => {
                    parts.extensions.insert(claims);
                }
                Ok(None) => {}
                Err(refusal) => {
                    let mut answer = refusal.answer(&config.options);
                    if (dpop || refusal.scheme() == Scheme::Dpop)
                        && let Some(nonce) = config.verifier.dpop_nonce()
                    {
                        answer = answer.header("DPoP-Nonce", nonce);
                    }
                    return Ok(response(answer));
                }
            }
            parts.extensions.insert(Guarded { options: config.options.clone() });
            let nonce = if dpop { config.verifier.dpop_nonce() } else { None };
            let mut res = inner.call(Request::from_parts(parts, body)).await?;
            if let Some(value) = nonce.and_then(|n| http::HeaderValue::try_from(n).ok())
                && !res.headers().contains_key(DPOP_NONCE)
            {
                res.headers_mut().insert(DPOP_NONCE, value);
            }
            Ok(res)
        })
    }
}

/// The mark the layer leaves on each request it let through, with the
/// challenge options extractors answer with.
#[derive(Debug, Clone)]
pub(crate) struct Guarded {
    pub(crate) options: ChallengeOptions,
}
