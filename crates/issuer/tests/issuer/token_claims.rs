//! The access token itself (RFC 9068): verified with `jsonwebtoken`, a
//! library other than the signing code, against the served JWKS.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;

use crate::support::{API_AUD, Fixture, ISSUER, SECRET, basic, cc};

/// Verifies `token` against the JWKS `f` serves; returns the header's kid,
/// its alg and the claims.
async fn verify(f: &Fixture, token: &str, alg: Algorithm, aud: &str) -> (String, Value) {
    let jwks: JwkSet = serde_json::from_slice(&f.get("/.well-known/jwks.json").await.body).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, alg);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1");
    let kid = header.kid.expect("kid");
    let jwk = jwks.find(&kid).unwrap_or_else(|| panic!("kid {kid} is not in the served JWKS"));
    let mut v = Validation::new(alg);
    v.set_audience(&[aud]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    v.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    (kid, data.claims)
}

fn access_token(r: &crate::support::Reply) -> String {
    assert_eq!(r.status.as_u16(), 200, "{:?}", String::from_utf8_lossy(&r.body));
    r.json()["access_token"].as_str().unwrap().to_string()
}

fn is_base64url(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[actix_web::test]
async fn es256_token_verifies_against_the_served_jwks_with_every_claim() {
    let f = Fixture::new();
    let now = f.clock_now();
    let r = f.token(&cc("scope=read+write"), Some(&basic("svc", SECRET))).await;
    let token = access_token(&r);
    let (kid, claims) = verify(&f, &token, Algorithm::ES256, API_AUD).await;
    let snapshot = f.state.keyring.snapshot();
    assert_eq!(kid, snapshot.signer(jwks_jose::Algorithm::ES256).unwrap().meta.kid);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "svc");
    assert_eq!(claims["client_id"], "svc");
    assert_eq!(claims["aud"], API_AUD);
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 900, "exp = iat + tokens.ttl");
    assert_eq!(r.json()["expires_in"], 900);
    assert_eq!(claims["scope"], "read write");
    let jti = claims["jti"].as_str().unwrap();
    assert!(jti.len() >= 22 && is_base64url(jti), "jti {jti}: at least 128 bits of base64url");
}

#[actix_web::test]
async fn per_client_rs256_and_ttl_apply() {
    let f = Fixture::new();
    let now = f.clock_now();
    let r = f.token(&cc(""), Some(&basic("rsa", SECRET))).await;
    let token = access_token(&r);
    assert_eq!(r.json()["expires_in"], 300);
    // Client `rsa` has no audiences: `tokens.audience`.
    let (kid, claims) = verify(&f, &token, Algorithm::RS256, crate::support::DEFAULT_AUD).await;
    assert_eq!(kid, f.state.keyring.snapshot().signer(jwks_jose::Algorithm::RS256).unwrap().meta.kid);
    assert_eq!(claims["exp"], now + 300);
    assert_eq!(claims["sub"], "rsa");
    // No scopes registered and none asked: no `scope` claim.
    assert!(claims.get("scope").is_none_or(|s| s == ""), "{claims}");
}

#[actix_web::test]
async fn iat_and_exp_follow_the_injected_clock() {
    let f = Fixture::new();
    f.clock.advance(std::time::Duration::from_secs(1234));
    let now = f.clock_now();
    let token = access_token(&f.token(&cc(""), Some(&basic("svc", SECRET))).await);
    let (_, claims) = verify(&f, &token, Algorithm::ES256, API_AUD).await;
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 900);
}

#[actix_web::test]
async fn a_token_for_one_kid_does_not_verify_with_another_key() {
    let f = Fixture::new();
    let token = access_token(&f.token(&cc(""), Some(&basic("svc", SECRET))).await);
    let jwks: JwkSet = serde_json::from_slice(&f.get("/.well-known/jwks.json").await.body).unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    // Tamper with the payload: the signature no longer verifies.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let swap = if parts[1].starts_with("ey") { "ez" } else { "ey" };
    parts[1].replace_range(0..2, swap);
    let tampered = parts.join(".");
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[API_AUD]);
    let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    assert!(jsonwebtoken::decode::<Value>(&tampered, &key, &v).is_err());
}

#[actix_web::test]
async fn jti_is_unique_across_1000_tokens() {
    let f = Fixture::new();
    let auth = basic("svc", SECRET);
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let r = f.token(&cc("scope=read"), Some(&auth)).await;
        let token = access_token(&r);
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let jti = claims["jti"].as_str().unwrap().to_string();
        assert!(jti.len() >= 22 && is_base64url(&jti), "{jti}");
        assert!(seen.insert(jti), "duplicate jti");
    }
}

impl Fixture {
    pub(crate) fn clock_now(&self) -> u64 {
        use jwks_jose::clock::Clock;
        self.clock.unix_now().as_secs()
    }
}
