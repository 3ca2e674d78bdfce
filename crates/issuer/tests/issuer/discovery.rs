//! RFC 8414 metadata at both well-known paths, `/healthz` and `/readyz`.

use crate::support::{Fixture, ISSUER, open_keyring};

#[actix_web::test]
async fn both_well_known_paths_serve_the_same_rfc8414_metadata() {
    let f = Fixture::new();
    let a = f.get("/.well-known/oauth-authorization-server").await;
    let b = f.get("/.well-known/openid-configuration").await;
    assert_eq!(a.status.as_u16(), 200);
    assert_eq!(b.status.as_u16(), 200);
    assert_eq!(a.body, b.body);
    assert!(a.header("content-type").unwrap().starts_with("application/json"));
    let m = a.json();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(m["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(m["grant_types_supported"], serde_json::json!(["client_credentials"]));
    let methods: Vec<&str> =
        m["token_endpoint_auth_methods_supported"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(methods.contains(&"client_secret_basic") && methods.contains(&"client_secret_post"), "{methods:?}");
    assert!(m["response_types_supported"].is_array(), "RFC 8414 §2: REQUIRED");
}

#[actix_web::test]
async fn healthz_is_200() {
    let f = Fixture::new();
    assert_eq!(f.get("/healthz").await.status.as_u16(), 200);
}

#[actix_web::test]
async fn readyz_is_200_with_a_signing_key_for_every_algorithm() {
    let f = Fixture::new();
    let r = f.get("/readyz").await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
}

/// A ring that signs ES256 only under a config that also lists RS256: the
/// state a store is in when an RS256 key failed to generate or load.
#[actix_web::test]
async fn readyz_is_503_when_an_algorithm_has_no_signing_key() {
    let f = Fixture::with(open_keyring(r#"["ES256"]"#), r#"["ES256", "RS256"]"#);
    let r = f.get("/readyz").await;
    assert_eq!(r.status.as_u16(), 503);
    assert_eq!(r.json()["missing_signing_keys"], serde_json::json!(["RS256"]));
}

#[actix_web::test]
async fn metrics_count_tokens_by_client_alg_and_kid_errors_by_code_and_show_each_key() {
    use crate::support::{SECRET, basic, cc};
    let f = Fixture::new();
    let token = f.token(&cc(""), Some(&basic("svc", SECRET))).await;
    assert_eq!(token.status.as_u16(), 200);
    f.token(&cc(""), Some(&basic("svc", "wrong"))).await.assert_error(401, "invalid_client");
    let m = f.get("/metrics").await;
    assert_eq!(m.status.as_u16(), 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8_lossy(&m.body).into_owned();
    let es = f.state.keyring.snapshot().signer(jwks_jose::Algorithm::ES256).unwrap().meta.kid.clone();
    assert!(
        text.contains(&format!("jwks_issuer_tokens_issued_total{{client_id=\"svc\",alg=\"ES256\",kid=\"{es}\"}} 1")),
        "{text}"
    );
    assert!(text.contains("jwks_issuer_token_errors_total{error=\"invalid_client\"} 1"), "{text}");
    assert!(
        text.contains(&format!("jwks_issuer_key_state{{kid=\"{es}\",alg=\"ES256\",state=\"active\"}} 1")),
        "{text}"
    );
    assert!(text.contains(&format!("jwks_issuer_key_age_seconds{{kid=\"{es}\",alg=\"ES256\"}}")), "{text}");
    assert!(text.contains("jwks_issuer_next_rotation_timestamp_seconds "), "{text}");
    assert!(text.contains("jwks_issuer_rotation_failures_total 0"), "{text}");
}
