//! An example resource server protected by `jwks-verifier`.
//!
//! ```text
//! cargo run -p jwks-verifier --example resource_server -- \
//!     --issuer http://127.0.0.1:8080 --audience https://api.example.test --bind 127.0.0.1:8081
//! ```
//!
//! - `GET /health`: no token needed; reports the key cache.
//! - `GET /whoami`: any valid access token; answers its claims.
//! - `GET /data`: needs the `read` scope.
//! - `POST /data`: needs the `write` scope.
//!
//! Tokens are accepted as `Authorization: Bearer`, or, when DPoP-bound,
//! only as `Authorization: DPoP` with a `DPoP` proof header (RFC 9449).
//!
//! With `--dpop-nonce allowed|required --dpop-nonce-secret-file FILE`, DPoP
//! proofs must carry the server's nonce (RFC 9449 §9): refusals say
//! `use_dpop_nonce` with a `DPoP-Nonce` header, and successes send a fresh one.
//!
//! Options may also come from the environment: `ISSUER`, `AUDIENCE`, `BIND`.

use std::{path::PathBuf, sync::Arc};

use actix_web::{App, HttpResponse, HttpServer, get, middleware::from_fn, post, web};
use clap::Parser;
use jwks_verifier::{
    Verifier,
    actix::{Authenticated, PublicBaseUrl, Scope, Scoped, send_dpop_nonce},
    nonce::{NonceMode, StatelessNonces},
};
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// The issuer whose tokens are accepted (its JWKS is discovered).
    #[arg(long, env = "ISSUER", default_value = "http://127.0.0.1:8080")]
    issuer: String,
    /// This API's audience.
    #[arg(long, env = "AUDIENCE", default_value = "https://api.example.test")]
    audience: String,
    /// The address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8081")]
    bind: String,
    /// The URL clients address this server by, when it differs from the
    /// connection (behind a proxy): the base of DPoP proofs' `htu`.
    #[arg(long, env = "PUBLIC_URL")]
    public_url: Option<String>,
    /// DPoP server nonces (RFC 9449 §9): off, allowed or required.
    #[arg(long, default_value = "off", value_parser = ["off", "allowed", "required"])]
    dpop_nonce: String,
    /// The file holding the nonce secret (at least 16 bytes; a final
    /// newline is ignored), the same for every replica.
    #[arg(long)]
    dpop_nonce_secret_file: Option<PathBuf>,
}

/// The nonce policy of the options.
fn nonce_policy(args: &Args) -> std::io::Result<Option<StatelessNonces>> {
    let mode = match args.dpop_nonce.as_str() {
        "off" => return Ok(None),
        other => other.parse::<NonceMode>().map_err(std::io::Error::other)?,
    };
    let path = args.dpop_nonce_secret_file.as_ref().ok_or_else(|| {
        std::io::Error::other("--dpop-nonce-secret-file is required with --dpop-nonce allowed or required")
    })?;
    let mut secret = std::fs::read(path)?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    let step = std::time::Duration::from_secs(60);
    StatelessNonces::new(&secret, step, mode).map(Some).map_err(std::io::Error::other)
}

struct Read;
impl Scope for Read {
    const NAME: &'static str = "read";
}

struct Write;
impl Scope for Write {
    const NAME: &'static str = "write";
}

#[get("/health")]
async fn health(verifier: web::Data<Verifier>) -> HttpResponse {
    let status = verifier.status();
    let body = json!({"keys": status.keys, "usable": status.usable, "last_error": status.last_error});
    if status.usable { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

#[get("/whoami")]
async fn whoami(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(auth.claims())
}

#[get("/data")]
async fn read_data(auth: Scoped<Read>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"data": [1, 2, 3], "for": auth.claims().client_id}))
}

#[post("/data")]
async fn write_data(auth: Scoped<Write>) -> HttpResponse {
    HttpResponse::Created().json(json!({"stored": true, "by": auth.claims().client_id}))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut builder = Verifier::builder().issuer(&args.issuer).audience(&args.audience);
    if let Some(nonces) = nonce_policy(&args)? {
        builder = builder.dpop_nonce(Arc::new(nonces));
    }
    let verifier = builder.build().await.map_err(|e| std::io::Error::other(format!("verifier: {e}")))?;
    tracing::info!(issuer = %args.issuer, audience = %args.audience, bind = %args.bind, "resource server starting");
    let data = web::Data::new(verifier);
    let public_url = match &args.public_url {
        Some(url) => Some(PublicBaseUrl::new(url).map_err(|e| std::io::Error::other(format!("--public-url: {e}")))?),
        None => None,
    };
    HttpServer::new(move || {
        let mut app = App::new().wrap(from_fn(send_dpop_nonce)).app_data(data.clone());
        if let Some(base) = &public_url {
            app = app.app_data(base.clone());
        }
        app.service(health).service(whoami).service(read_data).service(write_data)
    })
    .bind(&args.bind)?
    .run()
    .await
}
