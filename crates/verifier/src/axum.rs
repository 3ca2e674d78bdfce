//! axum integration (feature `axum`): extractors over the claims that
//! [`AuthLayer`](crate::tower::AuthLayer) verified, answering with the
//! same statuses and challenges as the actix extractor.
//!
//! - [`Authenticated`]: required claims (401 without a valid token);
//! - `Option<Authenticated>`: optional claims, under a layer with
//!   [`allow_anonymous`](crate::tower::AuthLayer::allow_anonymous): no token
//!   is `None`, a bad token is still 401 (the layer refuses it);
//! - [`Scoped`]: claims with a required scope (403 `insufficient_scope`).
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use jwks_verifier::{Scope, Verifier, axum::{Authenticated, Scoped}, tower::AuthLayer};
//!
//! struct Read;
//! impl Scope for Read {
//!     const NAME: &'static str = "read";
//! }
//!
//! async fn whoami(auth: Authenticated) -> String {
//!     auth.claims().sub.clone().unwrap_or_default()
//! }
//!
//! async fn data(_auth: Scoped<Read>) -> &'static str {
//!     "secret data"
//! }
//!
//! fn app(verifier: Verifier) -> Router {
//!     Router::new().route("/whoami", get(whoami)).route("/data", get(data)).layer(AuthLayer::new(verifier))
//! }
//! ```
//!
//! Without the layer in front of the route the extractors answer 500
//! (`server_error`): the route is misconfigured, not the request.

use std::{fmt, marker::PhantomData};

use axum::{
    body::Body,
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::request::Parts;

use crate::{
    Claims, Error, Scope,
    answer::{ChallengeOptions, Refusal},
    resource::ProtectedResource,
    tower::{Guarded, response},
};

/// The claims of a request whose token the layer verified.
#[derive(Debug, Clone)]
pub struct Authenticated {
    claims: Claims,
    options: ChallengeOptions,
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
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthRejection> {
        if self.claims.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthRejection::new(Error::InsufficientScope { scope: scope.to_owned() }, &self.options))
        }
    }
}

/// Why an extractor refused a request: renders the answer of
/// [`crate::answer`].
#[derive(Debug)]
pub struct AuthRejection {
    refusal: Refusal,
    options: ChallengeOptions,
}

impl AuthRejection {
    fn new(error: Error, options: &ChallengeOptions) -> Self {
        AuthRejection { refusal: Refusal::from(error), options: options.clone() }
    }

    /// The error.
    pub fn error(&self) -> &Error {
        self.refusal.error()
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.refusal.fmt(f)
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        response::<Body>(self.refusal.answer(&self.options))
    }
}

fn guarded(parts: &Parts) -> Result<&Guarded, AuthRejection> {
    parts.extensions.get::<Guarded>().ok_or_else(|| {
        AuthRejection::new(Error::config("no AuthLayer in front of this route"), &ChallengeOptions::default())
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AuthRejection> {
        let guarded = guarded(parts)?;
        match parts.extensions.get::<Claims>() {
            Some(claims) => Ok(Authenticated { claims: claims.clone(), options: guarded.options.clone() }),
            // The layer let an anonymous request through; this route needs a token.
            None => Err(AuthRejection::new(Error::MissingToken, &guarded.options)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, AuthRejection> {
        let guarded = guarded(parts)?;
        let options = guarded.options.clone();
        Ok(parts.extensions.get::<Claims>().map(|claims| Authenticated { claims: claims.clone(), options }))
    }
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

impl<St: Send + Sync, S: Scope> FromRequestParts<St> for Scoped<S> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, AuthRejection> {
        let auth = <Authenticated as FromRequestParts<St>>::from_request_parts(parts, state).await?;
        auth.require_scope(S::NAME)?;
        Ok(Scoped { auth, _scope: PhantomData })
    }
}

/// A router serving the RFC 9728 document of `resource` at its
/// well-known path (`/.well-known/oauth-protected-resource` plus the
/// resource's path), to merge into the app outside the [`AuthLayer`]:
/// the document is public.
///
/// [`AuthLayer`]: crate::tower::AuthLayer
pub fn protected_resource_metadata<St: Clone + Send + Sync + 'static>(
    resource: &ProtectedResource,
) -> axum::Router<St> {
    let document = resource.document().to_string();
    axum::Router::new().route(
        &resource.well_known_path(),
        axum::routing::get(move || {
            let document = document.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], document) }
        }),
    )
}
