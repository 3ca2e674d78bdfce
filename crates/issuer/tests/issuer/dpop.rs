//! DPoP at the token endpoint (RFC 9449 §5): a valid proof binds the token
//! (`cnf.jkt`, `token_type: DPoP`); a present proof is always checked; a
//! `dpop = "required"` client needs one; the bound token then verifies with
//! `jwks-verifier` only with a proof by the same key.

use std::{
    path::Path,
    sync::{Arc, OnceLock},
    time::{Duration, UNIX_EPOCH},
};

use actix_web::test::TestRequest;
use jwks_issuer::Config;
use jwks_jose::clock::Clock;
use jwks_jose::{Algorithm, JwkSet, SigningKey, b64, compact, thumbprint};
use jwks_verifier::{Error as VerifyError, ManualClock as VerifierClock, Verifier};
use serde_json::{Value, json};

use crate::support::{
    API_AUD, DEFAULT_AUD, Fixture, ISSUER, Reply, SECRET, basic, cc, config_text, secret_hash, shared_keyring,
};

pub(crate) const TOKEN_URL: &str = "https://issuer.example.test/token";

pub(crate) fn es_key() -> SigningKey {
    SigningKey::from_pkcs8(Algorithm::ES256, &SigningKey::generate(Algorithm::ES256, 2048).unwrap()).unwrap()
}

fn rsa_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_pkcs8(Algorithm::RS256, &SigningKey::generate(Algorithm::RS256, 2048).unwrap()).unwrap()
    })
}

fn jti() -> String {
    let mut b = [0u8; 12];
    jwks_jose::crypto::fill_random(&mut b).unwrap();
    b64::encode(b)
}

fn header_of(key: &SigningKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.algorithm().as_str(), "jwk": key.public_jwk()})
}

fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    compact::sign(key, header.to_string().as_bytes(), claims.to_string().as_bytes()).unwrap()
}

/// A proof by `key` for `htm` `htu` at `iat`, with `ath` for `token`.
pub(crate) fn proof(key: &SigningKey, htm: &str, htu: &str, iat: u64, token: Option<&str>) -> String {
    let mut c = json!({"jti": jti(), "htm": htm, "htu": htu, "iat": iat});
    if let Some(t) = token {
        c["ath"] = json!(jwks_verifier::dpop::ath(t));
    }
    sign(key, &header_of(key), &c)
}

fn now(f: &Fixture) -> u64 {
    f.clock.unix_now().as_secs()
}

/// `POST /token` for client `id` with the given `DPoP` headers.
async fn token_with(f: &Fixture, id: &str, proofs: &[&str]) -> Reply {
    let mut req = TestRequest::post()
        .uri("/token")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .insert_header(("authorization", basic(id, SECRET)))
        .insert_header(("host", "evil.example.test"))
        .set_payload(cc(""));
    for p in proofs {
        req = req.append_header(("DPoP", p.to_string()));
    }
    f.call(req).await
}

/// The standard fixture plus a client that requires DPoP and a `[dpop]` table.
fn fixture_with(dpop_table: &str) -> Fixture {
    let mut text = config_text(Path::new("/nonexistent-test-keys"), r#"["ES256", "RS256"]"#);
    text = text.replacen("[[clients]]", &format!("{dpop_table}\n[[clients]]"), 1);
    text.push_str(&format!(
        "\n[[clients]]\nid = \"bound\"\nsecret_hash = \"{}\"\nscopes = [\"read\"]\naudiences = [\"{API_AUD}\"]\ndpop = \"required\"\n",
        secret_hash()
    ));
    Fixture::from_text(shared_keyring(), &text)
}

fn fixture() -> Fixture {
    fixture_with("")
}

async fn verifier(f: &Fixture) -> jwks_verifier::OfflineVerifier {
    let jwks: JwkSet = serde_json::from_slice(&f.get("/.well-known/jwks.json").await.body).unwrap();
    Verifier::builder()
        .issuer(ISSUER)
        .audience(API_AUD)
        .clock(Arc::new(VerifierClock::new(UNIX_EPOCH + Duration::from_secs(now(f)))))
        .build_offline(&jwks)
        .unwrap()
}

fn claims_of(token: &str) -> Value {
    let parts = compact::split(token, 8192).unwrap();
    serde_json::from_slice(&parts.payload).unwrap()
}

#[track_caller]
fn assert_dpop_refused(r: &Reply, needle: &str) {
    r.assert_error(400, "invalid_dpop_proof");
    let description = r.json()["error_description"].as_str().unwrap().to_owned();
    assert!(description.contains(needle), "{description:?} lacks {needle:?}");
}

#[actix_web::test]
async fn es256_proof_binds_the_token_which_then_verifies_only_with_dpop() {
    let f = fixture();
    let key = es_key();
    let r = token_with(&f, "svc", &[&proof(&key, "POST", TOKEN_URL, now(&f), None)]).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let jkt = thumbprint(&key.public_jwk()).unwrap();
    assert_eq!(claims_of(&token)["cnf"], json!({"jkt": jkt}));

    let v = verifier(&f).await;
    assert_eq!(v.verify(&token).unwrap_err(), VerifyError::DpopBound, "a bound token is no bearer token");
    let url = "https://api.example.test/items";
    let p = proof(&key, "GET", url, now(&f), Some(&token));
    let claims = v.verify_dpop(&token, &p, "GET", url).unwrap();
    assert_eq!(claims.sub.as_deref(), Some("svc"));
    let thief = es_key();
    let p = proof(&thief, "GET", url, now(&f), Some(&token));
    assert_eq!(v.verify_dpop(&token, &p, "GET", url).unwrap_err().code(), "invalid_dpop_proof");
}

#[actix_web::test]
async fn rs256_token_bound_to_an_rs256_proof_key() {
    let f = fixture();
    let key = rsa_key();
    let r = token_with(&f, "rsa", &[&proof(key, "POST", TOKEN_URL, now(&f), None)]).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["token_type"], "DPoP");
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let header: Value = serde_json::from_slice(&compact::split(&token, 8192).unwrap().header).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims_of(&token)["cnf"]["jkt"], thumbprint(&key.public_jwk()).unwrap());
    let jwks: JwkSet = serde_json::from_slice(&f.get("/.well-known/jwks.json").await.body).unwrap();
    let v = Verifier::builder()
        .issuer(ISSUER)
        .audience(DEFAULT_AUD)
        .clock(Arc::new(VerifierClock::new(UNIX_EPOCH + Duration::from_secs(now(&f)))))
        .build_offline(&jwks)
        .unwrap();
    let url = "https://api.example.test/x";
    v.verify_dpop(&token, &proof(key, "PUT", url, now(&f), Some(&token)), "PUT", url).unwrap();
}

#[actix_web::test]
async fn without_a_proof_an_allowed_client_gets_a_bearer_token() {
    let f = fixture();
    let r = f.token(&cc(""), Some(&basic("svc", SECRET))).await;
    assert_eq!(r.json()["token_type"], "Bearer");
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    assert!(claims_of(&token).get("cnf").is_none());
    verifier(&f).await.verify(&token).unwrap();
}

#[actix_web::test]
async fn a_client_that_requires_dpop_is_refused_without_a_proof() {
    let f = fixture();
    let r = token_with(&f, "bound", &[]).await;
    assert_dpop_refused(&r, "must send a DPoP proof");
    let key = es_key();
    let r = token_with(&f, "bound", &[&proof(&key, "POST", TOKEN_URL, now(&f), None)]).await;
    assert_eq!(r.json()["token_type"], "DPoP", "{:?}", r.json());
}

#[actix_web::test]
async fn a_present_proof_is_always_checked() {
    // Nonces off: an `iat` outside the window is a hard refusal (with
    // nonces, `dpop_nonce.rs`, the client is asked for one instead).
    let f = fixture_with("[dpop]\nnonce = \"off\"\n");
    let key = es_key();
    let t = now(&f);
    // htu is the published endpoint, never one rebuilt from the Host header.
    let r = token_with(&f, "svc", &[&proof(&key, "POST", "https://evil.example.test/token", t, None)]).await;
    assert_dpop_refused(&r, "`htu` does not match");
    let r = token_with(&f, "svc", &[&proof(&key, "GET", TOKEN_URL, t, None)]).await;
    assert_dpop_refused(&r, "`htm` does not match");
    let r = token_with(&f, "svc", &[&proof(&key, "POST", TOKEN_URL, t - 61, None)]).await;
    assert_dpop_refused(&r, "too old");
    let r = token_with(&f, "svc", &[&proof(&key, "POST", TOKEN_URL, t + 61, None)]).await;
    assert_dpop_refused(&r, "in the future");
    // Query and fragment are ignored; case and default port normalised.
    let r = token_with(&f, "svc", &[&proof(&key, "POST", "HTTPS://Issuer.Example.Test:443/token?x#y", t, None)]).await;
    assert_eq!(r.json()["token_type"], "DPoP", "{:?}", r.json());
}

#[actix_web::test]
async fn a_replayed_proof_is_refused() {
    let f = fixture();
    let key = es_key();
    let p = proof(&key, "POST", TOKEN_URL, now(&f), None);
    assert_eq!(token_with(&f, "svc", &[&p]).await.json()["token_type"], "DPoP");
    assert_dpop_refused(&token_with(&f, "svc", &[&p]).await, "already used");
    f.clock.advance(Duration::from_secs(30));
    assert_dpop_refused(&token_with(&f, "svc", &[&p]).await, "already used");
}

#[actix_web::test]
async fn proofs_with_a_private_key_alg_none_or_hs256_or_a_foreign_signature_are_refused() {
    let f = fixture();
    let key = es_key();
    let c = json!({"jti": jti(), "htm": "POST", "htu": TOKEN_URL, "iat": now(&f)});
    let mut h = header_of(&key);
    h["jwk"]["d"] = json!("c2VjcmV0");
    assert_dpop_refused(&token_with(&f, "svc", &[&sign(&key, &h, &c)]).await, "private key");

    let seg = |v: &Value| b64::encode(v.to_string());
    let mut h = header_of(&key);
    h["alg"] = json!("none");
    let none = format!("{}.{}.AA", seg(&h), seg(&c));
    assert_dpop_refused(&token_with(&f, "svc", &[&none]).await, "`none`");
    h["alg"] = json!("HS256");
    let hs = format!("{}.{}.{}", seg(&h), seg(&c), b64::encode([1u8; 32]));
    assert_dpop_refused(&token_with(&f, "svc", &[&hs]).await, "`HS256`");

    let other = es_key();
    assert_dpop_refused(&token_with(&f, "svc", &[&sign(&other, &header_of(&key), &c)]).await, "signature");
    let mut h = header_of(&key);
    h["typ"] = json!("JWT");
    assert_dpop_refused(&token_with(&f, "svc", &[&sign(&key, &h, &c)]).await, "typ");
}

#[actix_web::test]
async fn two_dpop_headers_are_refused() {
    let f = fixture();
    let key = es_key();
    let (a, b) = (proof(&key, "POST", TOKEN_URL, now(&f), None), proof(&key, "POST", TOKEN_URL, now(&f), None));
    assert_dpop_refused(&token_with(&f, "svc", &[&a, &b]).await, "exactly one");
}

#[actix_web::test]
async fn the_iat_window_comes_from_the_config() {
    let f = fixture_with("[dpop]\niat_window = \"10s\"\nnonce = \"off\"\n");
    let key = es_key();
    let r = token_with(&f, "svc", &[&proof(&key, "POST", TOKEN_URL, now(&f) - 11, None)]).await;
    assert_dpop_refused(&r, "too old");
    let r = token_with(&f, "svc", &[&proof(&key, "POST", TOKEN_URL, now(&f) - 10, None)]).await;
    assert_eq!(r.json()["token_type"], "DPoP");
}

#[actix_web::test]
async fn discovery_lists_the_proof_algorithms() {
    let f = fixture();
    let meta = f.get("/.well-known/oauth-authorization-server").await.json();
    let backend: Vec<&str> = jwks_jose::crypto::supported().iter().map(|a| a.as_str()).collect();
    assert_eq!(meta["dpop_signing_alg_values_supported"], json!(backend));
}

#[test]
fn config_dpop_values_are_validated_naming_the_key() {
    let base = config_text(Path::new("/k"), r#"["ES256"]"#);
    let load = |text: &str| Config::from_toml(Path::new("issuer.toml"), text, &|_| None);
    let c = load(&base).unwrap();
    assert_eq!(c.dpop_iat_window, Duration::from_secs(60), "default 60s");
    assert!(c.clients.iter().all(|c| c.dpop == jwks_issuer::config::DpopMode::Allowed), "default allowed");

    let bad =
        base.replacen("scopes = [\"read\", \"write\", \"admin\"]", "scopes = [\"read\"]\ndpop = \"sometimes\"", 1);
    let e = load(&bad).unwrap_err().to_string();
    assert!(e.contains("clients[0].dpop") && e.contains("sometimes"), "{e}");

    let zero = base.replacen("[[clients]]", "[dpop]\niat_window = \"0s\"\n\n[[clients]]", 1);
    let e = load(&zero).unwrap_err().to_string();
    assert!(e.contains("dpop.iat_window"), "{e}");
    let unknown = base.replacen("[[clients]]", "[dpop]\nnonce = true\n\n[[clients]]", 1);
    let e = load(&unknown).unwrap_err().to_string();
    assert!(e.contains("nonce"), "{e}");
}
