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

/// The shared answer table (`answers.rs`) against the actix extractors.
mod table {
    use actix_web::{App, HttpResponse, dev::ServiceResponse, get, test};
    use jwks_verifier::{
        MultiVerifier,
        actix::{Authenticated, MaybeAuthenticated, Scoped, protected_resource_metadata},
    };
    use serde_json::json;

    use crate::{answers::*, support::*};

    #[get("/me")]
    async fn me(auth: Authenticated) -> HttpResponse {
        HttpResponse::Ok().json(json!({"sub": auth.claims().sub}))
    }

    #[get("/admin")]
    async fn admin(auth: Scoped<Admin>) -> HttpResponse {
        HttpResponse::Ok().json(json!({"sub": auth.claims().sub}))
    }

    #[get("/maybe")]
    async fn maybe(auth: MaybeAuthenticated) -> HttpResponse {
        let sub = match auth.0 {
            Some(a) => a.claims().sub.clone(),
            None => Some("anonymous".into()),
        };
        HttpResponse::Ok().json(json!({"sub": sub}))
    }

    async fn got(resp: ServiceResponse) -> Got {
        let status = resp.status().as_u16();
        let challenges =
            resp.headers().get_all("WWW-Authenticate").map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
        let body = test::read_body(resp).await;
        Got { status, challenges, body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null) }
    }

    fn request(call: &Call) -> test::TestRequest {
        let mut req = test::TestRequest::default()
            .method(call.method.parse().unwrap())
            .uri(call.path)
            .insert_header(("Host", "internal.example.test"));
        for (name, value) in &call.headers {
            req = req.append_header((*name, value.clone()));
        }
        req
    }

    #[actix_web::test]
    async fn actix_answers_the_shared_table() {
        let f = Fixture::new().await;
        let app = test::init_service(
            App::new().app_data(f.verifier().await).app_data(base()).service(me).service(admin).service(maybe),
        )
        .await;
        for case in cases(&f) {
            let resp = test::call_service(&app, request(&case.call).to_request()).await;
            check("actix", &case, &got(resp).await);
        }
    }

    #[actix_web::test]
    async fn actix_serves_rfc9728_metadata_and_names_it_in_challenges() {
        let f = Fixture::new().await;
        let resource = resource();
        let app = test::init_service(
            App::new()
                .app_data(f.verifier().await)
                .app_data(resource.clone())
                .service(protected_resource_metadata(&resource))
                .service(me)
                .service(admin),
        )
        .await;
        let req = test::TestRequest::get().uri("/.well-known/oauth-protected-resource/mcp").to_request();
        let resp = test::call_service(&app, req).await;
        let status = resp.status().as_u16();
        let ct = resp.headers().get("Content-Type").unwrap().to_str().unwrap().to_owned();
        let doc: serde_json::Value = test::read_body_json(resp).await;
        check_metadata("actix", status, &ct, &doc);
        let resp = test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await;
        check_challenge_names_metadata("actix 401", &got(resp).await);
        let req = test::TestRequest::get()
            .uri("/admin")
            .insert_header(("Authorization", format!("Bearer {}", token(&f.key))))
            .to_request();
        let got403 = got(test::call_service(&app, req).await).await;
        assert_eq!(got403.status, 403);
        check_challenge_names_metadata("actix 403", &got403);
    }

    #[actix_web::test]
    async fn actix_routes_among_several_issuers_without_fetching_for_others() {
        let f = Fixture::new().await;
        let other_key = es_key();
        let other = MockJwks::start(&[&other_key]).await;
        let verifier: MultiVerifier = multi(&f, &other).await;
        let app = test::init_service(App::new().app_data(verifier).service(me)).await;
        let call =
            |t: String| test::TestRequest::get().uri("/me").insert_header(("Authorization", format!("Bearer {t}")));
        let resp = test::call_service(&app, call(token(&f.key)).to_request()).await;
        assert_eq!(resp.status().as_u16(), 200);
        let mut c = claims();
        c["iss"] = json!("https://other-issuer.example.test");
        let resp = test::call_service(&app, call(sign(&other_key, &header(&other_key), &c)).to_request()).await;
        assert_eq!(resp.status().as_u16(), 200, "the second issuer's token verifies by its own keys");
        let (a, b) = (f.mock.requests(), other.requests());
        c["iss"] = json!("https://stranger.example.test");
        let resp = test::call_service(&app, call(sign(&other_key, &header(&other_key), &c)).to_request()).await;
        let got = got(resp).await;
        assert_eq!(got.status, 401);
        assert_eq!(
            got.challenges,
            vec![r#"Bearer error="invalid_token", error_description="the token was issued by another issuer""#]
        );
        assert_eq!((f.mock.requests(), other.requests()), (a, b), "no fetch for an issuer not configured");
    }
}
