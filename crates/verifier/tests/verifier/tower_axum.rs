//! The tower layer and the axum extractors, in-process (`tower::ServiceExt::oneshot`):
//! the shared answer table (`answers.rs`), RFC 9728 metadata, several
//! issuers, and a gRPC-style tower service behind the same layer.

use axum::{Json, Router, body::Body, routing::get};
use http::Request;
use jwks_verifier::{
    Claims,
    axum::{Authenticated, Scoped, protected_resource_metadata},
    tower::AuthLayer,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{answers::*, support::*};

async fn me(auth: Authenticated) -> Json<Value> {
    Json(json!({"sub": auth.claims().sub}))
}

async fn admin(auth: Scoped<Admin>) -> Json<Value> {
    Json(json!({"sub": auth.claims().sub}))
}

async fn maybe(auth: Option<Authenticated>) -> Json<Value> {
    let sub = match auth {
        Some(a) => a.claims().sub.clone(),
        None => Some("anonymous".into()),
    };
    Json(json!({"sub": sub}))
}

fn routes() -> Router {
    Router::new().route("/me", get(me)).route("/admin", get(admin)).route("/maybe", get(maybe))
}

async fn send(app: &Router, call: &Call) -> Got {
    let mut req = Request::builder().method(call.method).uri(call.path).header("Host", "internal.example.test");
    for (name, value) in &call.headers {
        req = req.header(*name, value);
    }
    let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    got(resp).await
}

async fn got(resp: http::Response<Body>) -> Got {
    let status = resp.status().as_u16();
    let challenges =
        resp.headers().get_all("WWW-Authenticate").iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    Got { status, challenges, body: serde_json::from_slice(&body).unwrap_or(Value::Null) }
}

#[tokio::test]
async fn axum_answers_the_shared_table() {
    let f = Fixture::new().await;
    let app = routes().layer(AuthLayer::new(f.verifier().await).public_base_url(base()).allow_anonymous());
    for case in cases(&f) {
        check("axum", &case, &send(&app, &case.call).await);
    }
}

#[tokio::test]
async fn the_layer_alone_refuses_requests_without_credentials() {
    let f = Fixture::new().await;
    let app = routes().layer(AuthLayer::new(f.verifier().await));
    let got = send(&app, &Call { method: "GET", path: "/maybe", headers: vec![] }).await;
    assert_eq!((got.status, got.challenges.len()), (401, 2), "without allow_anonymous no request passes bare");
}

#[tokio::test]
async fn extractors_without_the_layer_answer_500() {
    let f = Fixture::new().await;
    let app = routes();
    let headers = vec![("Authorization", format!("Bearer {}", token(&f.key)))];
    let got = send(&app, &Call { method: "GET", path: "/me", headers }).await;
    assert_eq!(got.status, 500);
    assert_eq!(got.body["error"], "server_error");
}

#[tokio::test]
async fn axum_serves_rfc9728_metadata_and_names_it_in_challenges() {
    let f = Fixture::new().await;
    let resource = resource();
    let app = protected_resource_metadata(&resource)
        .merge(routes().layer(AuthLayer::new(f.verifier().await).challenge_options(resource.challenge_options())));
    let req = Request::get("/.well-known/oauth-protected-resource/mcp").body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let ct = resp.headers().get("Content-Type").unwrap().to_str().unwrap().to_owned();
    let got_doc = got(resp).await;
    check_metadata("axum", got_doc.status, &ct, &got_doc.body);
    let unauthenticated = send(&app, &Call { method: "GET", path: "/me", headers: vec![] }).await;
    check_challenge_names_metadata("axum 401", &unauthenticated);
    let headers = vec![("Authorization", format!("Bearer {}", token(&f.key)))];
    let forbidden = send(&app, &Call { method: "GET", path: "/admin", headers }).await;
    assert_eq!(forbidden.status, 403);
    check_challenge_names_metadata("axum 403", &forbidden);
}

#[tokio::test]
async fn axum_routes_among_several_issuers_without_fetching_for_others() {
    let f = Fixture::new().await;
    let other_key = es_key();
    let other = MockJwks::start(&[&other_key]).await;
    let app = routes().layer(AuthLayer::new(multi(&f, &other).await));
    let call = |t: String| Call { method: "GET", path: "/me", headers: vec![("Authorization", format!("Bearer {t}"))] };
    assert_eq!(send(&app, &call(token(&f.key))).await.status, 200);
    let mut c = claims();
    c["iss"] = json!("https://other-issuer.example.test");
    assert_eq!(send(&app, &call(sign(&other_key, &header(&other_key), &c))).await.status, 200);
    // The first issuer's key does not verify the second issuer's tokens.
    assert_eq!(send(&app, &call(sign(&f.key, &header(&f.key), &c))).await.body["error"], "invalid_token");
    let (a, b) = (f.mock.requests(), other.requests());
    c["iss"] = json!("https://stranger.example.test");
    let got = send(&app, &call(sign(&other_key, &header(&other_key), &c))).await;
    assert_eq!(got.status, 401);
    assert_eq!(
        got.challenges,
        vec![r#"Bearer error="invalid_token", error_description="the token was issued by another issuer""#]
    );
    assert_eq!((f.mock.requests(), other.requests()), (a, b), "no fetch for an issuer not configured");
}

/// A gRPC-style service (what tonic's generated servers are: a tower
/// `Service<http::Request<_>>` answering `application/grpc` over HTTP/2
/// URIs with scheme and authority) behind the same layer; it reads the
/// claims from the request extensions. tonic itself is not used: its
/// codegen needs `protoc`, which CI does not have.
#[tokio::test]
async fn a_grpc_style_tower_service_reads_the_claims_the_layer_put_in_extensions() {
    let f = Fixture::new().await;
    let grpc = tower::service_fn(|req: Request<Body>| async move {
        let sub = req.extensions().get::<Claims>().and_then(|c| c.sub.clone()).unwrap_or_default();
        let resp = http::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "0")
            .body(Body::from(sub))
            .unwrap();
        Ok::<_, std::convert::Infallible>(resp)
    });
    let svc = tower::ServiceBuilder::new().layer(AuthLayer::new(f.verifier().await)).service(grpc);
    let bound = crate::dpop::bound_token(&f.key, &f.client);
    let url = "https://grpc.example.test/echo.Echo/Say";
    let proof = crate::dpop::proof_at(&f.client, "POST", url, Some(&bound), NOW);
    let req = Request::post(url)
        .header("content-type", "application/grpc")
        .header("authorization", format!("DPoP {bound}"))
        .header("dpop", proof)
        .body(Body::empty())
        .unwrap();
    let resp = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(axum::body::to_bytes(resp.into_body(), 1024).await.unwrap(), "user-1");
    let req = Request::post(url).header("content-type", "application/grpc").body(Body::empty()).unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 401, "no credentials never reach the service");
}
