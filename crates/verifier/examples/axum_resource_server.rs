//! An example axum resource server protected by `jwks-verifier`, with the
//! same routes and answers as the actix example (`resource_server`).
//!
//! ```text
//! cargo run -p jwks-verifier --features cli --example axum_resource_server -- \
//!     --issuer http://127.0.0.1:8080 --audience https://api.example.test --bind 127.0.0.1:8081 \
//!     [--resource https://api.example.test]
//! ```
//!
//! - `GET /health`: no token needed; reports the key cache.
//! - `GET /whoami`: any valid access token; answers its claims.
//! - `GET /data`: needs the `read` scope.
//! - `POST /data`: needs the `write` scope.
//! - `GET /.well-known/oauth-protected-resource[/path]`: the RFC 9728
//!   document, when `--resource` (an https URL) is given; the challenges
//!   then name it in `resource_metadata`.
//!
//! Tokens are accepted as `Authorization: Bearer`, or, when DPoP-bound,
//! only as `Authorization: DPoP` with a `DPoP` proof header (RFC 9449).
//!
//! Options may also come from the environment: `ISSUER`, `AUDIENCE`,
//! `BIND`, `RESOURCE`, `PUBLIC_URL`.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use clap::Parser;
use jwks_verifier::{
    ProtectedResource, PublicBaseUrl, Scope, Verifier,
    axum::{Authenticated, Scoped},
    tower::AuthLayer,
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
    /// This resource's identifier (an https URL): serves its RFC 9728
    /// metadata and names it in challenges.
    #[arg(long, env = "RESOURCE")]
    resource: Option<String>,
    /// The URL clients address this server by, when it differs from the
    /// connection (behind a proxy): the base of DPoP proofs' `htu`.
    #[arg(long, env = "PUBLIC_URL")]
    public_url: Option<String>,
}

struct Read;
impl Scope for Read {
    const NAME: &'static str = "read";
}

struct Write;
impl Scope for Write {
    const NAME: &'static str = "write";
}

async fn health(State(verifier): State<Verifier>) -> impl IntoResponse {
    let status = verifier.status();
    let body = json!({"keys": status.keys, "usable": status.usable, "last_error": status.last_error});
    let code = if status.usable { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}

async fn whoami(auth: Authenticated) -> impl IntoResponse {
    Json(auth.into_claims())
}

async fn read_data(auth: Scoped<Read>) -> impl IntoResponse {
    Json(json!({"data": [1, 2, 3], "for": auth.claims().client_id}))
}

async fn write_data(auth: Scoped<Write>) -> impl IntoResponse {
    (StatusCode::CREATED, Json(json!({"stored": true, "by": auth.claims().client_id})))
}

/// The app: protected routes behind the layer, public ones beside it.
fn app(verifier: Verifier, resource: Option<&ProtectedResource>, public_url: Option<PublicBaseUrl>) -> Router {
    let mut layer = AuthLayer::new(verifier.clone());
    if let Some(resource) = resource {
        layer = layer.challenge_options(resource.challenge_options());
    }
    if let Some(base) = public_url {
        layer = layer.public_base_url(base);
    }
    let protected =
        Router::new().route("/whoami", get(whoami)).route("/data", get(read_data).post(write_data)).layer(layer);
    let mut public = Router::new().route("/health", get(health)).with_state(verifier);
    if let Some(resource) = resource {
        public = public.merge(jwks_verifier::axum::protected_resource_metadata(resource));
    }
    public.merge(protected)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let verifier = Verifier::builder()
        .issuer(&args.issuer)
        .audience(&args.audience)
        .build()
        .await
        .map_err(|e| std::io::Error::other(format!("verifier: {e}")))?;
    let resource = match &args.resource {
        Some(r) => Some(
            ProtectedResource::new(r)
                .map_err(|e| std::io::Error::other(format!("--resource: {e}")))?
                .authorization_server(&args.issuer)
                .scopes(["read", "write"]),
        ),
        None => None,
    };
    let public_url = match &args.public_url {
        Some(url) => Some(PublicBaseUrl::new(url).map_err(|e| std::io::Error::other(format!("--public-url: {e}")))?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&args.bind).await?;
    tracing::info!(issuer = %args.issuer, audience = %args.audience, bind = %listener.local_addr()?, "resource server starting");
    axum::serve(listener, app(verifier, resource.as_ref(), public_url)).await
}
