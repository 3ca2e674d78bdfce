//! Several issuers behind one verifier: an allow-list of issuers, each
//! with its own audience, algorithms and key cache, routed by the token's
//! unverified `iss` only among those configured. A token naming any other
//! issuer is `wrong_issuer` before any key is looked up, so it never causes
//! a network request. One HTTP client is shared by every issuer's cache.

use std::{collections::HashMap, sync::Arc};

use crate::{Claims, Error, Verifier, VerifierBuilder, error::truncated, json::parse_object};

/// Verifies tokens of several issuers (or of one: `From<Verifier>`), each
/// by its own [`Verifier`]. Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), jwks_verifier::Error> {
/// use jwks_verifier::{MultiVerifier, Verifier};
///
/// let verifier = MultiVerifier::builder()
///     .issuer(Verifier::builder().issuer("https://login.tenant-a.example").audience("api-a"))
///     .issuer(Verifier::builder().issuer("https://login.tenant-b.example").audience("api-b"))
///     .build()
///     .await?;
/// let claims = verifier.verify("eyJhbGciOi...").await?;
/// # let _ = claims; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MultiVerifier {
    routes: Arc<Routes>,
}

#[derive(Debug)]
enum Routes {
    /// One issuer: every token goes to its verifier, whose own order of
    /// checks then applies unchanged.
    One(Verifier),
    /// Several: by the token's `iss`.
    Many { by_issuer: HashMap<String, Verifier>, first: Verifier },
}

impl From<Verifier> for MultiVerifier {
    fn from(verifier: Verifier) -> Self {
        MultiVerifier { routes: Arc::new(Routes::One(verifier)) }
    }
}

/// Configures a [`MultiVerifier`]: one [`VerifierBuilder`] per issuer.
#[derive(Debug, Default)]
#[must_use]
pub struct MultiVerifierBuilder {
    issuers: Vec<VerifierBuilder>,
    client: Option<reqwest::Client>,
}

impl MultiVerifierBuilder {
    /// Adds an issuer, with its audience, algorithms, cache and DPoP
    /// settings. Its HTTP settings are replaced by the shared client's.
    pub fn issuer(mut self, builder: VerifierBuilder) -> Self {
        self.issuers.push(builder);
        self
    }

    /// The HTTP client shared by every issuer. Defaults to one built from
    /// the first issuer's transport settings (timeouts, roots, proxy,
    /// headers).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds each issuer's verifier over the one client. Fails on an empty
    /// list, an issuer named twice, or any issuer's invalid settings.
    pub async fn build(self) -> Result<MultiVerifier, Error> {
        let Some(first) = self.issuers.first() else {
            return Err(Error::config("a multi-issuer verifier needs at least one issuer"));
        };
        let client = match self.client {
            Some(client) => client,
            None => first.make_client().await?,
        };
        let mut by_issuer = HashMap::new();
        let mut order = Vec::new();
        for builder in self.issuers {
            let issuer = builder.issuer_name().ok_or_else(|| Error::config("issuer is required"))?.to_owned();
            if by_issuer.contains_key(&issuer) {
                return Err(Error::config(format!("issuer {} is configured twice", truncated(&issuer))));
            }
            let verifier = builder.http_client(client.clone()).build().await?;
            order.push(verifier.clone());
            by_issuer.insert(issuer, verifier);
        }
        let first = order.into_iter().next().ok_or_else(|| Error::config("no issuer"))?;
        Ok(MultiVerifier { routes: Arc::new(Routes::Many { by_issuer, first }) })
    }
}

impl MultiVerifier {
    /// A fresh DPoP nonce (RFC 9449 §9) to send to clients, when the
    /// verifiers have a nonce policy: the first issuer's (a resource
    /// server has one nonce policy; give every issuer's verifier the same).
    pub fn dpop_nonce(&self) -> Option<String> {
        match &*self.routes {
            Routes::One(v) | Routes::Many { first: v, .. } => v.dpop_nonce(),
        }
    }

    /// Starts configuring a multi-issuer verifier.
    pub fn builder() -> MultiVerifierBuilder {
        MultiVerifierBuilder::default()
    }

    /// The configured issuers.
    pub fn issuers(&self) -> Vec<&str> {
        match &*self.routes {
            Routes::One(v) => vec![v.issuer()],
            Routes::Many { by_issuer, .. } => by_issuer.keys().map(String::as_str).collect(),
        }
    }

    /// The verifier of `issuer`, if it is configured.
    pub fn verifier(&self, issuer: &str) -> Option<&Verifier> {
        match &*self.routes {
            Routes::One(v) => (v.issuer() == issuer).then_some(v),
            Routes::Many { by_issuer, .. } => by_issuer.get(issuer),
        }
    }

    /// The verifier for `token`: by its unverified `iss` among the
    /// configured issuers. A token whose framing or claims JSON is broken
    /// goes to the first verifier, which refuses it for that before any
    /// key lookup.
    fn route(&self, token: &str) -> Result<&Verifier, Error> {
        let (by_issuer, first) = match &*self.routes {
            Routes::One(v) => return Ok(v),
            Routes::Many { by_issuer, first } => (by_issuer, first),
        };
        let Some(claims) = unverified_claims(token) else { return Ok(first) };
        match claims.get("iss") {
            None => Err(Error::MissingClaim { claim: "iss" }),
            Some(serde_json::Value::String(iss)) => {
                by_issuer.get(iss).ok_or_else(|| Error::WrongIssuer { found: truncated(iss) })
            }
            Some(_) => Err(Error::invalid_claim("`iss` is not a string")),
        }
    }

    /// Verifies `token` with the verifier of its issuer: see [`Verifier::verify`].
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        self.route(token)?.verify(token).await
    }

    /// Verifies a DPoP-bound `token` and its proof with the verifier of its
    /// issuer: see [`Verifier::verify_dpop`].
    pub async fn verify_dpop(&self, token: &str, proof: &str, method: &str, url: &str) -> Result<Claims, Error> {
        self.route(token)?.verify_dpop(token, proof, method, url).await
    }
}

/// The claims of a compact JWS, unverified, if it has the shape of one.
fn unverified_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    if token.len() > crate::MAX_TOKEN_LEN {
        return None;
    }
    let parts = jwks_jose::compact::split(token, crate::MAX_TOKEN_LEN).ok()?;
    parse_object(&parts.payload).ok()
}
