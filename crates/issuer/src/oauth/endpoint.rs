//! `POST /token` on actix-web: reads the body, hands the request to the
//! [`TokenService`], and renders its answer. Every rule is the service's.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
    web::{self, Payload},
};
use futures_util::StreamExt;
use serde::Serialize;

use super::{
    OAuthError,
    error::REALM,
    peer::{self, Cidr},
    request::{self, RawRequest},
    service::TokenService,
};
use crate::clock::SharedClock;

/// What the token handler needs besides the service: the clock, read once
/// per request here, and the proxies whose forwarding headers count.
#[derive(Debug, Clone)]
pub struct Edge {
    /// The clock.
    pub clock: SharedClock,
    /// `[server] trusted_proxies`.
    pub trusted_proxies: Vec<Cidr>,
}

impl Edge {
    /// The client's address: the peer, or behind a trusted proxy the
    /// nearest untrusted hop of its forwarding headers.
    pub fn client_address(&self, req: &HttpRequest) -> Option<std::net::IpAddr> {
        let peer = req.peer_addr().map(|a| a.ip());
        if self.trusted_proxies.is_empty() {
            return peer;
        }
        let values =
            |name: &str| -> Vec<&str> { req.headers().get_all(name).filter_map(|v| v.to_str().ok()).collect() };
        peer::client_address(peer, &values("forwarded"), &values("x-forwarded-for"), &self.trusted_proxies)
    }
}

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
pub(crate) const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

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
pub(crate) async fn token(
    req: HttpRequest,
    payload: Payload,
    service: web::Data<TokenService>,
    edge: web::Data<Edge>,
) -> HttpResponse {
    let now = edge.clock.unix_now();
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !request::is_form_content_type(content_type) {
        let e = OAuthError::InvalidRequest("Content-Type must be application/x-www-form-urlencoded".into());
        service.refused(&e);
        return refusal(&e, &req, &service, now);
    }
    let body = match read_body(&req, payload).await {
        Ok(b) => b,
        Err(e) => {
            service.refused(&e);
            return refusal(&e, &req, &service, now);
        }
    };
    let authorization: Vec<&[u8]> = req.headers().get_all(header::AUTHORIZATION).map(|v| v.as_bytes()).collect();
    let dpop: Vec<&[u8]> = req.headers().get_all("dpop").map(|v| v.as_bytes()).collect();
    let raw = RawRequest {
        content_type,
        body: &body,
        authorization: &authorization,
        dpop: &dpop,
        peer: edge.client_address(&req),
        now,
    };
    match service.handle(&raw).await {
        Ok(issued) => {
            let mut res = HttpResponse::Ok();
            res.insert_header((header::CACHE_CONTROL, "no-store")).insert_header((header::PRAGMA, "no-cache"));
            if let Some(nonce) = &issued.dpop_nonce {
                res.insert_header((DPOP_NONCE, nonce.as_str()));
            }
            res.json(TokenResponse {
                access_token: &issued.access_token,
                token_type: issued.token_type,
                expires_in: issued.expires_in,
                scope: &issued.scope,
            })
        }
        Err(e) => refusal(&e, &req, &service, now),
    }
}

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
const DPOP_NONCE: &str = "dpop-nonce";

/// The answer to a refused request; one that carried a `DPoP` header also
/// gets a current nonce (RFC 9449 §8), unless nonces are off.
fn refusal(e: &OAuthError, req: &HttpRequest, service: &TokenService, now: jwks_jose::clock::UnixTime) -> HttpResponse {
    let mut res = e.error_response();
    let nonce = match e.dpop_nonce() {
        Some(n) => Some(n.to_owned()),
        None if req.headers().contains_key("dpop") => service.dpop_nonce(now),
        None => None,
    };
    if let Some(value) = nonce.and_then(|n| header::HeaderValue::from_str(&n).ok()) {
        res.headers_mut().insert(header::HeaderName::from_static(DPOP_NONCE), value);
    }
    res
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store")).insert_header((header::PRAGMA, "no-cache"));
        if self.challenges() {
            res.insert_header((header::WWW_AUTHENTICATE, format!("Basic realm=\"{REALM}\"")));
        }
        if let Some(secs) = self.retry_after() {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.closes_connection() {
            res.force_close();
        }
        res.json(serde_json::json!({"error": self.code(), "error_description": self.description()}))
    }
}

/// Any method but POST on `/token`.
pub(crate) async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"error": "invalid_request", "error_description": "the token endpoint accepts POST only"}))
}
