//! The actix-web extractors, in-process through `actix_web::test`.

use actix_web::{App, HttpResponse, get, http::StatusCode, test, web};
use jwks_verifier::{
    ManualClock, Verifier,
    actix::{Authenticated, Scope, Scoped},
};
use serde_json::json;

use crate::support::*;

struct Admin;
impl Scope for Admin {
    const NAME: &'static str = "admin";
}

struct Read;
impl Scope for Read {
    const NAME: &'static str = "read";
}

#[get("/me")]
async fn me(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(auth.claims().sub.clone().unwrap_or_default())
}

#[get("/read")]
async fn read(_auth: Scoped<Read>) -> &'static str {
    "data"
}

#[get("/admin")]
async fn admin(_auth: Scoped<Admin>) -> &'static str {
    "admin"
}

#[get("/manual")]
async fn manual(auth: Authenticated) -> Result<&'static str, jwks_verifier::actix::AuthError> {
    auth.require_scope("write")?;
    Ok("written")
}

#[actix_web::test]
async fn extractor_answers_rfc6750_challenges() {
    let key = es_key();
    let mock = MockJwks::start(&[&key]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    let app = test::init_service(
        App::new().app_data(verifier.clone()).service(me).service(read).service(admin).service(manual),
    )
    .await;
    let good = token(&key);

    let call = |path: &'static str, auth: Option<String>| {
        let mut req = test::TestRequest::get().uri(path);
        if let Some(a) = auth {
            req = req.insert_header(("Authorization", a));
        }
        req.to_request()
    };
    let challenge = |resp: &actix_web::dev::ServiceResponse| {
        resp.headers().get("WWW-Authenticate").map(|v| v.to_str().unwrap().to_owned())
    };

    let resp = test::call_service(&app, call("/me", Some(format!("Bearer {good}")))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(test::read_body(resp).await, "user-1");
    let resp = test::call_service(&app, call("/me", Some(format!("bearer  {good}")))).await;
    assert_eq!(resp.status(), StatusCode::OK, "the scheme is case-insensitive");

    let resp = test::call_service(&app, call("/me", None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&resp).as_deref(), Some("Bearer"));
    let resp = test::call_service(&app, call("/me", Some("Basic dXNlcjpwYXNz".into()))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&resp).as_deref(), Some("Bearer"));

    let resp = test::call_service(&app, call("/me", Some("Bearer not.a.token".into()))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&resp).as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="the access token is malformed""#)
    );
    let body: serde_json::Value = test::read_body_json(resp).await;
    assert_eq!(body["error"], "invalid_token");

    let mut expired = claims();
    expired["exp"] = json!(NOW - 3600);
    let resp =
        test::call_service(&app, call("/me", Some(format!("Bearer {}", sign(&key, &header(&key), &expired))))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&resp).as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="the access token expired""#)
    );

    let resp = test::call_service(&app, call("/read", Some(format!("Bearer {good}")))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = test::call_service(&app, call("/admin", Some(format!("Bearer {good}")))).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&resp).as_deref(),
        Some(
            r#"Bearer error="insufficient_scope", error_description="the access token lacks the required scope", scope="admin""#
        )
    );
    let resp = test::call_service(&app, call("/admin", None)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no token is 401 before any scope check");

    let resp = test::call_service(&app, call("/manual", Some(format!("Bearer {good}")))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut read_only = claims();
    read_only["scope"] = json!("read");
    let t = sign(&key, &header(&key), &read_only);
    let resp = test::call_service(&app, call("/manual", Some(format!("Bearer {t}")))).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn extractor_finds_a_verifier_in_web_data_and_reports_a_missing_one() {
    let key = es_key();
    let mock = MockJwks::start(&[&key]).await;
    let clock = ManualClock::new(start_time());
    let verifier: Verifier = mock.builder(&clock).build().await.unwrap();
    let app = test::init_service(App::new().app_data(web::Data::new(verifier)).service(me)).await;
    let req = test::TestRequest::get().uri("/me").insert_header(("Authorization", format!("Bearer {}", token(&key))));
    assert_eq!(test::call_service(&app, req.to_request()).await.status(), StatusCode::OK);

    let bare = test::init_service(App::new().service(me)).await;
    let req = test::TestRequest::get().uri("/me").insert_header(("Authorization", format!("Bearer {}", token(&key))));
    assert_eq!(test::call_service(&bare, req.to_request()).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[actix_web::test]
async fn unavailable_keys_answer_503_not_401() {
    let key = es_key();
    let mock = MockJwks::start(&[&key]).await;
    mock.set_mode(Mode::Status(500));
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    let app = test::init_service(App::new().app_data(verifier).service(me)).await;
    let req = test::TestRequest::get().uri("/me").insert_header(("Authorization", format!("Bearer {}", token(&key))));
    let resp = test::call_service(&app, req.to_request()).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get("Retry-After").is_some());
}
