//! `POST /token`: the client-credentials grant (RFC 6749 §4.4) issuing
//! RFC 9068 JWT access tokens.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header,
    web::{self, Payload},
};
use futures_util::StreamExt;
use serde::Serialize;

use super::{
    OAuthError,
    clients::SecretCheck,
    request::{self, BasicCredentials, TokenForm},
};
use crate::{
    config::{ClientConfig, is_scope_char},
    http::AppState,
    token,
};

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}

/// How long the whole body may take to arrive once the head is in (the
/// server's request timeout covers the head only): a client sending a byte
/// now and then cannot hold a connection.
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the body up to [`request::MAX_BODY`] bytes within [`BODY_DEADLINE`].
async fn read_body(req: &HttpRequest, payload: Payload) -> Result<Vec<u8>, OAuthError> {
    tokio::time::timeout(BODY_DEADLINE, read_body_unbounded(req, payload))
        .await
        .unwrap_or(Err(OAuthError::BodyTimeout(BODY_DEADLINE.as_secs())))
}

async fn read_body_unbounded(req: &HttpRequest, mut payload: Payload) -> Result<Vec<u8>, OAuthError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > request::MAX_BODY as u64) {
        return Err(OAuthError::TooLarge(request::MAX_BODY));
    }
    let mut body = Vec::with_capacity(declared.map_or(256, |n| n as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| OAuthError::InvalidRequest("the request body could not be read".into()))?;
        if body.len() + chunk.len() > request::MAX_BODY {
            return Err(OAuthError::TooLarge(request::MAX_BODY));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The handler of `POST /token`.
pub async fn token(req: HttpRequest, payload: Payload, state: web::Data<AppState>) -> HttpResponse {
    match issue(&req, payload, &state).await {
        Ok(res) => res,
        Err(e) => {
            state.metrics.token_error(e.code());
            actix_web::ResponseError::error_response(&e)
        }
    }
}

async fn issue(req: &HttpRequest, payload: Payload, state: &web::Data<AppState>) -> Result<HttpResponse, OAuthError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !request::is_form_content_type(content_type) {
        return Err(OAuthError::InvalidRequest("Content-Type must be application/x-www-form-urlencoded".into()));
    }
    let body = read_body(req, payload).await?;
    let form = TokenForm::parse(&body)?;
    let client = authenticate_throttled(req, &form, state).await?;
    let jkt = super::dpop::binding(req, &client, state).await?;

    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::UnsupportedGrantType(format!(
                "grant type `{}` is not supported; use client_credentials",
                printable(other)
            )));
        }
        None => return Err(OAuthError::InvalidRequest("missing parameter `grant_type`".into())),
    }
    let scope = granted_scope(&client, form.scope.as_deref())?;
    let aud = audience(&client, &form, &state.config.tokens.audience)?;

    let snapshot = state.keyring.snapshot();
    let Some(key) = snapshot.signer(client.algorithm) else {
        tracing::error!(client_id = %client.id, alg = %client.algorithm, "no signing key for the algorithm");
        return Err(OAuthError::Server);
    };
    let now = state.clock.now();
    let ttl = client.ttl.as_secs();
    let issuer = &state.config.issuer;
    let access_token =
        token::mint_bound(key, issuer, &client.id, aud, &scope, now, ttl, jkt.as_deref()).map_err(|e| {
            tracing::error!(error = %e, kid = %key.meta.kid, "signing failed");
            OAuthError::Server
        })?;
    state.metrics.token_issued(&client.id, key.meta.alg, &key.meta.kid);
    // RFC 9449 §5: a bound token is of type DPoP.
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    let body = TokenResponse { access_token: &access_token, token_type, expires_in: ttl, scope: &scope };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body))
}

/// At most 64 characters of a client-supplied value, for messages: only
/// those RFC 6749 §5.2 allows in `error_description` (%x20-21 / %x23-5B /
/// %x5D-7E), others shown as `?`.
fn printable(s: &str) -> String {
    s.chars().take(64).map(|c| if matches!(c, ' '..='~') && c != '"' && c != '\\' { c } else { '?' }).collect()
}

/// The client id a request claims, read without authenticating it: from
/// the Basic header, the body, or the assertion's `iss`.
fn claimed_client(req: &HttpRequest, form: &TokenForm) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        return request::parse_basic(v.as_bytes()).ok().map(|b| b.id);
    }
    form.client_id.clone().or_else(|| form.client_assertion.as_deref().and_then(super::assertion::unverified_issuer))
}

/// [`authenticate`] behind the brute-force limits: a request that meets an
/// empty bucket is refused before any argon2 or signature work, and every
/// `invalid_client` takes from the buckets.
async fn authenticate_throttled(
    req: &HttpRequest,
    form: &TokenForm,
    state: &web::Data<AppState>,
) -> Result<std::sync::Arc<ClientConfig>, OAuthError> {
    let addr = req.peer_addr().map(|a| a.ip());
    let claimed = claimed_client(req, form);
    let now = state.clock.now();
    if let Err(retry_after) = state.throttle.check(claimed.as_deref(), addr, now) {
        tracing::warn!(client_id = %printable(claimed.as_deref().unwrap_or("")), ?addr, "client authentication throttled");
        return Err(OAuthError::Throttled { retry_after });
    }
    let result = authenticate(req, form, state).await;
    if let Err(OAuthError::InvalidClient { .. }) = &result {
        state.throttle.failed(claimed.as_deref(), addr, state.clock.now());
    }
    result
}

/// Client authentication: `client_secret_basic` or `client_secret_post`,
/// never both (RFC 6749 §2.3).
async fn authenticate(
    req: &HttpRequest,
    form: &TokenForm,
    state: &web::Data<AppState>,
) -> Result<std::sync::Arc<ClientConfig>, OAuthError> {
    if form.client_assertion_type.is_some() || form.client_assertion.is_some() {
        return authenticate_assertion(req, form, state).await;
    }
    let basic = match req.headers().get(header::AUTHORIZATION) {
        Some(v) => Some(request::parse_basic(v.as_bytes())?),
        None => None,
    };
    let BasicCredentials { id, secret } = match (basic, &form.client_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::InvalidRequest(
                "use one client authentication method: Basic or client_secret in the body, not both".into(),
            ));
        }
        (Some(b), None) => {
            if form.client_id.as_deref().is_some_and(|id| id != b.id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body differs from the Basic credentials".into(),
                ));
            }
            b
        }
        (None, Some(secret)) => {
            let Some(id) = form.client_id.clone() else {
                return Err(OAuthError::InvalidRequest("client_secret without client_id".into()));
            };
            BasicCredentials { id, secret: secret.clone() }
        }
        (None, None) => {
            return Err(OAuthError::InvalidClient {
                description: "client authentication required (client_secret_basic or client_secret_post)".into(),
            });
        }
    };
    let fail = || OAuthError::InvalidClient { description: "client authentication failed".into() };
    if id.len() > 256 || secret.len() > 1024 {
        return Err(fail());
    }
    let now = state.clock.now();
    let ok = match state.clients.check_remembered(&id, &secret, now) {
        SecretCheck::Remembered => true,
        SecretCheck::NeedsArgon2 => {
            let st = state.clone();
            let (id, secret) = (id.clone(), secret);
            web::block(move || st.clients.verify_slow(&id, &secret, now)).await.unwrap_or(false)
        }
    };
    match state.clients.get(&id) {
        Some(c) if ok => Ok(c.clone()),
        _ => {
            tracing::info!(client_id = %printable(&id), "client authentication failed");
            Err(fail())
        }
    }
}

/// `private_key_jwt` (RFC 7523 §2.2): the assertion alone authenticates;
/// `client_id` in the body is optional and must equal its `iss`.
async fn authenticate_assertion(
    req: &HttpRequest,
    form: &TokenForm,
    state: &web::Data<AppState>,
) -> Result<std::sync::Arc<ClientConfig>, OAuthError> {
    use super::assertion::{JWT_BEARER, unverified_issuer};
    if req.headers().contains_key(header::AUTHORIZATION) || form.client_secret.is_some() {
        return Err(OAuthError::InvalidRequest(
            "use one client authentication method: a client assertion, Basic or client_secret, not several".into(),
        ));
    }
    let fail = |d: String| OAuthError::InvalidClient { description: d };
    if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
        return Err(fail(format!("client_assertion_type must be {JWT_BEARER}")));
    }
    let Some(assertion) = form.client_assertion.as_deref() else {
        return Err(fail("missing client_assertion".into()));
    };
    let Some(iss) = unverified_issuer(assertion) else {
        return Err(fail("client assertion is not a JWT with an `iss` claim".into()));
    };
    if form.client_id.as_deref().is_some_and(|id| id != iss) {
        return Err(fail("client_id differs from the assertion's `iss`".into()));
    }
    let (Some(client), Some(verifier)) = (state.clients.get(&iss), state.assertions.get(&iss)) else {
        tracing::info!(client_id = %printable(&iss), "client assertion from an unknown or secret-based client");
        return Err(fail("client authentication failed".into()));
    };
    let (id, until) = verifier.verify(assertion, &state.assertions.replay).await.map_err(|d| {
        tracing::info!(client_id = %client.id, reason = %d, "client assertion rejected");
        fail(d)
    })?;
    if super::replay::claim_across_replicas(&state.keyring, &id, until, state.clock.now()).await.is_err() {
        tracing::info!(client_id = %client.id, "client assertion replayed at another replica");
        return Err(fail("client assertion rejected: `jti` was already used".into()));
    }
    Ok(client.clone())
}

/// The granted scope: the requested one if every token is the client's;
/// all of the client's scopes when none is requested (RFC 6749 §3.3).
fn granted_scope(client: &ClientConfig, requested: Option<&str>) -> Result<String, OAuthError> {
    let Some(requested) = requested else { return Ok(client.scopes.join(" ")) };
    if requested.len() > 4096 {
        return Err(OAuthError::InvalidScope("scope is longer than 4096 characters".into()));
    }
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !s.bytes().all(is_scope_char) {
            return Err(OAuthError::InvalidScope("scope contains characters outside RFC 6749 section 3.3".into()));
        }
        if !client.scopes.iter().any(|c| c == s) {
            return Err(OAuthError::InvalidScope(format!("scope `{}` is not allowed for this client", printable(s))));
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok(granted.join(" "))
}

/// The `aud`: the requested `resource` (RFC 8707) or `audience` if it is one
/// of the client's; else the client's first audience or the default.
fn audience<'a>(client: &'a ClientConfig, form: &'a TokenForm, default: &'a str) -> Result<&'a str, OAuthError> {
    let requested = match (form.resource.as_deref(), form.audience.as_deref()) {
        (Some(r), Some(a)) if r != a => {
            return Err(OAuthError::InvalidTarget("resource and audience name different targets".into()));
        }
        (Some(r), _) => Some(r),
        (None, a) => a,
    };
    let allowed: &[String] = &client.audiences;
    match requested {
        None => Ok(allowed.first().map_or(default, String::as_str)),
        Some(r) if allowed.iter().any(|a| a == r) || (allowed.is_empty() && r == default) => Ok(r),
        Some(r) => Err(OAuthError::InvalidTarget(format!("target `{}` is not allowed for this client", printable(r)))),
    }
}

/// Any method but POST on `/token`.
pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"error": "invalid_request", "error_description": "the token endpoint accepts POST only"}))
}
