//! The HTTP surface: the app factory that `serve` and the tests use, the
//! JWKS, discovery (RFC 8414), health and metrics endpoints.

use std::sync::Arc;

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, HeaderValue},
    web::{self, Bytes},
};

use crate::{
    Config,
    clock::SharedClock,
    keys::KeyStoreConfig,
    keys::Keyring,
    metrics::Metrics,
    oauth::{self, TokenService, claims::PgClaims, endpoint::Edge, replay::SharedClaims},
};

/// Everything the handlers share: the composition root of the app.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The keys.
    pub keyring: Arc<Keyring>,
    /// The token endpoint's rules.
    pub token: web::Data<TokenService>,
    /// What the token handler reads at the edge: the clock and the proxies.
    pub edge: web::Data<Edge>,
    /// The clock.
    pub clock: SharedClock,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    metadata: Bytes,
}

impl AppState {
    /// The state of an app over `config` and `keyring`.
    pub fn new(config: Arc<Config>, keyring: Arc<Keyring>, clock: SharedClock) -> Result<Self, crate::Error> {
        let metadata = Bytes::from(metadata(&config).to_string());
        let metrics = Arc::new(Metrics::default());
        // Single-use ids: this process's cache alone over a folder; shared
        // in the database by replicas on PostgreSQL.
        let shared: Option<Arc<dyn SharedClaims>> = match &config.keys.store {
            KeyStoreConfig::Dir(_) => None,
            KeyStoreConfig::Postgres(url) => Some(Arc::new(PgClaims::new(url))),
        };
        let mut token = TokenService::new(
            config.token_settings(),
            &config.clients,
            keyring.clone(),
            shared,
            metrics.clone(),
            clock.clone(),
        )?;
        if token.dpop_nonces_on() {
            match crate::keys::kek::kek_from_env()? {
                Some(kek) => token.use_dpop_nonce_secret(&kek)?,
                None => tracing::warn!(
                    "DPoP nonces use a random per-process secret because JWKS_ISSUER_KEK is not set: replicas \
                     refuse each other's nonces (set the same JWKS_ISSUER_KEK on every replica)"
                ),
            }
        }
        let edge = Edge { clock: clock.clone(), trusted_proxies: config.trusted_proxies.clone() };
        Ok(AppState {
            config,
            keyring,
            token: web::Data::new(token),
            edge: web::Data::new(edge),
            clock,
            metrics,
            metadata,
        })
    }
}

/// The routes of the public listener, with this state: `serve` and the
/// tests build the app with `App::new().configure(http::routes(&state))`.
/// `/metrics` is here unless `[admin] listen` is set.
pub fn routes(state: &web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let state = state.clone();
    move |cfg| {
        let public_metrics = state.config.admin_listen.is_none();
        cfg.app_data(state.token.clone()).app_data(state.edge.clone()).app_data(state.clone());
        configure(cfg);
        if public_metrics {
            cfg.route("/metrics", web::get().to(metrics));
        }
    }
}

/// The routes of the admin listener (`[admin] listen`): `/metrics`.
pub fn admin_routes(state: &web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let state = state.clone();
    move |cfg| {
        cfg.app_data(state).route("/metrics", web::get().to(metrics));
    }
}

/// The authorization server metadata (RFC 8414 §2).
pub fn metadata(config: &Config) -> serde_json::Value {
    let algs: Vec<&str> = config.keys.algorithms.iter().map(|a| a.as_str()).collect();
    serde_json::json!({
        "issuer": config.issuer,
        "token_endpoint": config.token_endpoint(),
        "jwks_uri": config.jwks_uri(),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": oauth::assertion::algorithms().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "access_token_signing_alg_values_supported": algs,
        "dpop_signing_alg_values_supported": oauth::dpop_algorithms().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
    })
}

/// Registers every public route but `/metrics` (see [`AppState::routes`]).
fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/token")
            .route(web::post().to(oauth::endpoint::token))
            .default_service(web::to(oauth::endpoint::method_not_allowed)),
    )
    // HEAD wherever GET works (RFC 9110 §9.1); the server sends the
    // headers without the body.
    .service(web::resource("/.well-known/jwks.json").route(web::get().to(jwks)).route(web::head().to(jwks)))
    .service(
        web::resource("/.well-known/oauth-authorization-server")
            .route(web::get().to(discovery))
            .route(web::head().to(discovery)),
    )
    .service(
        web::resource("/.well-known/openid-configuration")
            .route(web::get().to(discovery))
            .route(web::head().to(discovery)),
    )
    .route("/healthz", web::get().to(healthz))
    .route("/readyz", web::get().to(readyz));
}

/// Whether an `If-None-Match` value matches `etag` (RFC 9110 §13.1.2:
/// weak comparison, `*` matches any).
fn if_none_match(value: &HeaderValue, etag: &str) -> bool {
    let Ok(v) = value.to_str() else { return false };
    v.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.keyring.snapshot();
    let doc = &snapshot.jwks;
    let cache = format!("public, max-age={}", state.config.jwks_max_age.as_secs());
    let matched = req.headers().get(header::IF_NONE_MATCH).is_some_and(|v| if_none_match(v, &doc.etag));
    let mut res = if matched { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, doc.etag.as_str()))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    if matched { res.finish() } else { res.content_type("application/json").body(doc.body.clone()) }
}

async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/json")
        .body(state.metadata.clone())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.keyring.snapshot();
    let missing: Vec<&str> =
        state.config.keys.algorithms.iter().filter(|a| snapshot.signer(**a).is_none()).map(|a| a.as_str()).collect();
    let failure = state.keyring.last_failure();
    let body = serde_json::json!({
        "status": if missing.is_empty() && failure.is_none() && snapshot.damaged.is_empty() { "ready" } else if missing.is_empty() { "degraded" } else { "unready" },
        "missing_signing_keys": missing,
        "rotation_failure": failure,
        "damaged_key_files": snapshot.damaged.len(),
    });
    if missing.is_empty() { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.keyring.snapshot();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render(
        &snapshot,
        state.keyring.is_leader(),
        state.clock.unix_now(),
    ))
}
