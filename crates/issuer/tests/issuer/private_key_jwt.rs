//! `private_key_jwt` at the token endpoint (RFC 7523, issue 8).

use std::path::Path;

use jwks_jose::{Algorithm, JwkSet, SigningKey, compact};

use crate::support::{API_AUD, Fixture, ISSUER, basic, cc, config_text, form_encode, shared_keyring};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Client {
    es: SigningKey,
    rs: SigningKey,
    f: Fixture,
}

fn key(alg: Algorithm) -> SigningKey {
    SigningKey::from_pkcs8(alg, &SigningKey::generate(alg, 2048).unwrap()).unwrap()
}

fn fixture() -> Client {
    fixture_with("")
}

fn fixture_with(tokens: &str) -> Client {
    let es = key(Algorithm::ES256);
    let rs = key(Algorithm::RS256);
    let set = JwkSet { keys: vec![es.public_jwk(), rs.public_jwk()] };
    let jwks = toml::Value::try_from(&set).unwrap();
    let mut text = config_text(Path::new("/nonexistent-test-keys"), r#"["ES256", "RS256"]"#)
        .replace("[tokens]\n", &format!("[tokens]\n{tokens}"));
    text.push_str(&format!(
        "\n[[clients]]\nid = \"kjwt\"\njwks = {jwks}\nscopes = [\"read\"]\naudiences = [\"{API_AUD}\"]\n"
    ));
    Client { es, rs, f: Fixture::from_text(shared_keyring(), &text) }
}

fn assertion(k: &SigningKey, iss: &str, aud: &str, exp_in: i64, jti: &str, now: u64) -> String {
    let claims = serde_json::json!({
        "iss": iss, "sub": iss, "aud": aud, "iat": now,
        "exp": now.saturating_add_signed(exp_in), "jti": jti,
    });
    let header = serde_json::json!({"alg": k.algorithm().as_str(), "kid": k.kid(), "typ": "JWT"});
    compact::sign(k, header.to_string().as_bytes(), claims.to_string().as_bytes()).unwrap()
}

fn body(a: &str, extra: &str) -> String {
    cc(&format!("client_assertion_type={}&client_assertion={a}{extra}", form_encode(JWT_BEARER)))
}

#[actix_web::test]
async fn es256_and_rs256_assertions_get_tokens() {
    let c = fixture();
    let now = c.f.clock_now();
    for (i, k) in [&c.es, &c.rs].into_iter().enumerate() {
        let a = assertion(k, "kjwt", ISSUER, 60, &format!("j{i}"), now);
        let r = c.f.token(&body(&a, "&client_id=kjwt"), None).await;
        assert_eq!(r.status.as_u16(), 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["scope"], "read");
    }
    // client_id is optional.
    let a = assertion(&c.es, "kjwt", ISSUER, 60, "j9", now);
    assert_eq!(c.f.token(&body(&a, ""), None).await.status.as_u16(), 200);
}

#[actix_web::test]
async fn private_key_jwt_errors_say_only_client_authentication_failed() {
    // Issue 14 finding 6: no `jwks_uri`, connection error or claim detail
    // reaches an unauthenticated caller; the log has the reason.
    let c = fixture();
    let now = c.f.clock_now();
    let cases = [
        assertion(&c.es, "kjwt", "https://elsewhere", 60, "a", now),
        assertion(&c.es, "kjwt", ISSUER, -120, "b", now),
        assertion(&c.es, "kjwt", ISSUER, 3600, "c", now),
        assertion(&key(Algorithm::ES256), "kjwt", ISSUER, 60, "e", now),
        assertion(&c.es, "nobody", ISSUER, 60, "f", now),
        assertion(&c.es, "svc", ISSUER, 60, "g", now),
    ];
    for a in cases {
        let r = c.f.token(&body(&a, ""), None).await;
        r.assert_error(401, "invalid_client");
        assert_eq!(r.json()["error_description"], "client authentication failed");
    }
    let r = c.f.token(&body(&assertion(&c.es, "kjwt", ISSUER, 60, "d", now), "&client_id=svc"), None).await;
    r.assert_error(401, "invalid_client");
    let wrong_type = cc(&format!(
        "client_assertion_type=urn%3Ax&client_assertion={}",
        assertion(&c.es, "kjwt", ISSUER, 60, "h", now)
    ));
    c.f.token(&wrong_type, None).await.assert_error(401, "invalid_client");
}

#[actix_web::test]
async fn assertion_audience_is_the_issuer_alone_unless_configured() {
    // Issue 14 finding 7 (draft-ietf-oauth-rfc7523bis).
    let endpoint = format!("{ISSUER}/token");
    let c = fixture();
    let now = c.f.clock_now();
    c.f.token(&body(&assertion(&c.es, "kjwt", &endpoint, 60, "t1", now), ""), None)
        .await
        .assert_error(401, "invalid_client");
    let lenient = fixture_with("assertion_audience = \"issuer_or_token_endpoint\"\n");
    let now = lenient.f.clock_now();
    let r = lenient.f.token(&body(&assertion(&lenient.es, "kjwt", &endpoint, 60, "t2", now), ""), None).await;
    assert_eq!(r.status.as_u16(), 200);
    let r = lenient.f.token(&body(&assertion(&lenient.es, "kjwt", ISSUER, 60, "t3", now), ""), None).await;
    assert_eq!(r.status.as_u16(), 200);
}

#[actix_web::test]
async fn a_replayed_assertion_is_refused() {
    let c = fixture();
    let a = assertion(&c.es, "kjwt", ISSUER, 60, "once", c.f.clock_now());
    assert_eq!(c.f.token(&body(&a, ""), None).await.status.as_u16(), 200);
    c.f.token(&body(&a, ""), None).await.assert_error(401, "invalid_client");
}

#[actix_web::test]
async fn an_assertion_with_a_secret_is_two_methods_at_once() {
    let c = fixture();
    let a = assertion(&c.es, "kjwt", ISSUER, 60, "x", c.f.clock_now());
    c.f.token(&body(&a, ""), Some(&basic("kjwt", "s"))).await.assert_error(400, "invalid_request");
    c.f.token(&body(&a, "&client_secret=s"), None).await.assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn a_key_client_cannot_use_a_secret_and_discovery_lists_the_method() {
    let c = fixture();
    c.f.token(&cc(""), Some(&basic("kjwt", "anything"))).await.assert_error(401, "invalid_client");
    let meta = c.f.get("/.well-known/oauth-authorization-server").await.json();
    let methods = meta["token_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(methods.iter().any(|m| m == "private_key_jwt"));
    let backend: Vec<&str> = jwks_jose::crypto::supported().iter().map(|a| a.as_str()).collect();
    assert_eq!(meta["token_endpoint_auth_signing_alg_values_supported"], serde_json::json!(backend));
}
