//! DPoP (RFC 9449): bound ES256 and RS256 tokens verify only with a proof
//! by the bound key for the request; each rule of §4.3 and §7.1 refuses
//! with `invalid_dpop_proof` and says which rule; a bound token presented
//! as a bearer token is refused.

use std::{sync::Arc, time::Duration};

use jwks_jose::{Algorithm, SigningKey, b64, thumbprint};
use jwks_verifier::{
    Error, ManualClock, OfflineVerifier, Verifier,
    dpop::{self, ProofError, ReplayCache, Request},
};
use serde_json::{Value, json};

use crate::support::*;

pub(crate) const URL: &str = "https://api.example.test/data";

/// A proof by `key` for `method` and `url` at `iat`, bound to `token`.
pub(crate) fn proof_at(key: &SigningKey, method: &str, url: &str, token: Option<&str>, iat: u64) -> String {
    let mut claims = json!({"jti": random_jti(), "htm": method, "htu": url, "iat": iat});
    if let Some(t) = token {
        claims["ath"] = json!(dpop::ath(t));
    }
    sign(key, &proof_header(key), &claims)
}

pub(crate) fn proof_header(key: &SigningKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.algorithm().as_str(), "jwk": key.public_jwk()})
}

fn random_jti() -> String {
    let mut b = [0u8; 12];
    jwks_jose::crypto::fill_random(&mut b).unwrap();
    b64::encode(b)
}

/// A token signed by `issuer_key`, bound to `proof_key`.
pub(crate) fn bound_token(issuer_key: &SigningKey, proof_key: &SigningKey) -> String {
    let mut c = claims();
    c["cnf"] = json!({"jkt": thumbprint(&proof_key.public_jwk()).unwrap()});
    sign(issuer_key, &header(issuer_key), &c)
}

struct Fixture {
    issuer: SigningKey,
    client: SigningKey,
    verifier: OfflineVerifier,
    clock: ManualClock,
}

fn fixture() -> Fixture {
    let issuer = es_key();
    let clock = ManualClock::new(start_time());
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(Arc::new(clock.clone()))
        .build_offline(&jwk_set(&[&issuer, rsa_key()]))
        .unwrap();
    Fixture { issuer, client: es_key(), verifier, clock }
}

#[track_caller]
fn refused(result: Result<jwks_verifier::Claims, Error>) -> ProofError {
    match result {
        Err(Error::InvalidDpopProof { reason }) => reason,
        other => panic!("expected invalid_dpop_proof, got {other:?}"),
    }
}

#[test]
fn es256_bound_token_verifies_with_a_proof_by_its_key() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let proof = proof_at(&f.client, "GET", URL, Some(&token), NOW);
    let claims = f.verifier.verify_dpop(&token, &proof, "GET", URL).unwrap();
    assert_eq!(claims.extra["cnf"]["jkt"], thumbprint(&f.client.public_jwk()).unwrap());
}

#[test]
fn rs256_token_bound_to_an_rs256_proof_key_verifies() {
    let f = fixture();
    let rs = rsa_key();
    let token = bound_token(rs, rs);
    let proof = proof_at(rs, "POST", URL, Some(&token), NOW);
    let v = f.verifier.verify_dpop_token::<Value>(&token, &proof, "POST", URL).unwrap();
    assert_eq!(v.alg, Algorithm::RS256);
}

#[test]
fn htu_compares_without_query_and_with_normalised_scheme_host_and_port() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let proof = proof_at(&f.client, "GET", "HTTPS://API.example.test:443/data", Some(&token), NOW);
    f.verifier.verify_dpop(&token, &proof, "GET", "https://api.example.test/data?page=2#x").unwrap();
}

#[test]
fn bound_token_presented_as_bearer_is_refused() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let e = f.verifier.verify(&token).unwrap_err();
    assert_eq!(e, Error::DpopBound);
    assert_eq!(e.code(), "dpop_bound_token");
}

#[test]
fn unbound_token_with_a_proof_is_refused() {
    let f = fixture();
    let t = token(&f.issuer);
    let proof = proof_at(&f.client, "GET", URL, Some(&t), NOW);
    assert_eq!(f.verifier.verify_dpop(&t, &proof, "GET", URL).unwrap_err(), Error::NotDpopBound);
    assert!(f.verifier.verify(&t).is_ok(), "an unbound token stays a bearer token");
}

#[test]
fn unknown_confirmation_methods_are_refused_not_ignored() {
    let f = fixture();
    let mut c = claims();
    c["cnf"] = json!({"x5t#S256": "abc"});
    let t = sign(&f.issuer, &header(&f.issuer), &c);
    assert_eq!(f.verifier.verify(&t).unwrap_err().code(), "invalid_claim");
}

#[test]
fn wrong_htm_is_refused() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let proof = proof_at(&f.client, "POST", URL, Some(&token), NOW);
    assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::WrongMethod);
    let proof = proof_at(&f.client, "get", URL, Some(&token), NOW);
    assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::WrongMethod);
}

#[test]
fn wrong_htu_is_refused() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    for htu in [
        "https://api.example.test/other",
        "http://api.example.test/data",
        "https://evil.example.test/data",
        "https://api.example.test:8443/data",
        "/data",
    ] {
        let proof = proof_at(&f.client, "GET", htu, Some(&token), NOW);
        assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::WrongUrl, "{htu}");
    }
}

#[test]
fn stale_and_future_iat_are_refused_at_the_window_edges() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let at = |iat| proof_at(&f.client, "GET", URL, Some(&token), iat);
    assert!(f.verifier.verify_dpop(&token, &at(NOW - 60), "GET", URL).is_ok(), "60 s old is inside");
    assert!(f.verifier.verify_dpop(&token, &at(NOW + 60), "GET", URL).is_ok(), "60 s ahead is inside");
    assert_eq!(
        refused(f.verifier.verify_dpop(&token, &at(NOW - 61), "GET", URL)),
        ProofError::Stale { iat: NOW - 61, now: NOW }
    );
    assert_eq!(
        refused(f.verifier.verify_dpop(&token, &at(NOW + 61), "GET", URL)),
        ProofError::Future { iat: NOW + 61, now: NOW }
    );
    // The clock moves on: a proof made at NOW goes stale 61 s later.
    let proof = at(NOW);
    f.clock.advance(Duration::from_secs(61));
    assert!(matches!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::Stale { .. }));
}

#[test]
fn a_replayed_jti_is_refused_even_for_another_url() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let proof = proof_at(&f.client, "GET", URL, Some(&token), NOW);
    f.verifier.verify_dpop(&token, &proof, "GET", URL).unwrap();
    assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::Replayed);
    let same_jti = json!({"jti": "fixed", "htm": "GET", "htu": URL, "iat": NOW, "ath": dpop::ath(&token)});
    let p1 = sign(&f.client, &proof_header(&f.client), &same_jti);
    let mut other = same_jti.clone();
    other["htu"] = json!("https://api.example.test/data?x=1");
    let p2 = sign(&f.client, &proof_header(&f.client), &other);
    f.verifier.verify_dpop(&token, &p1, "GET", URL).unwrap();
    assert_eq!(refused(f.verifier.verify_dpop(&token, &p2, "GET", URL)), ProofError::Replayed);
}

#[test]
fn a_jti_is_forgotten_only_once_its_proof_is_stale() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let c = json!({"jti": "once", "htm": "GET", "htu": URL, "iat": NOW + 60, "ath": dpop::ath(&token)});
    let proof = sign(&f.client, &proof_header(&f.client), &c);
    f.verifier.verify_dpop(&token, &proof, "GET", URL).unwrap();
    f.clock.advance(Duration::from_secs(120));
    assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::Replayed);
    f.clock.advance(Duration::from_secs(1));
    assert!(matches!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::Stale { .. }));
}

#[test]
fn a_proof_signed_by_another_key_than_its_jwk_is_refused() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let thief = es_key();
    let c = json!({"jti": "j", "htm": "GET", "htu": URL, "iat": NOW, "ath": dpop::ath(&token)});
    let forged = sign(&thief, &proof_header(&f.client), &c);
    assert_eq!(refused(f.verifier.verify_dpop(&token, &forged, "GET", URL)), ProofError::BadSignature);
}

#[test]
fn a_valid_proof_by_a_key_the_token_is_not_bound_to_is_refused() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let thief = es_key();
    let proof = proof_at(&thief, "GET", URL, Some(&token), NOW);
    assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::KeyMismatch);
}

#[test]
fn ath_mismatch_or_absence_is_refused() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let other = bound_token(&f.issuer, &f.client);
    let proof = proof_at(&f.client, "GET", URL, Some(&other), NOW);
    assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::WrongAth);
    let proof = proof_at(&f.client, "GET", URL, None, NOW);
    assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::MissingClaim("ath"));
}

/// Issue 14: an RSA proof key with `e = 3` was accepted; FIPS 186-5 asks
/// an odd `e` of at least 65537.
#[test]
fn dpop_proof_rsa_jwk_with_exponent_3_is_refused() {
    let f = fixture();
    let token = bound_token(&f.issuer, rsa_key());
    let c = json!({"jti": "j", "htm": "GET", "htu": URL, "iat": NOW, "ath": dpop::ath(&token)});
    let mut h = proof_header(rsa_key());
    h["jwk"]["e"] = json!(b64::encode([3]));
    let proof = sign(rsa_key(), &h, &c);
    let reason = refused(f.verifier.verify_dpop(&token, &proof, "GET", URL));
    assert!(matches!(&reason, ProofError::BadKey(m) if m.contains("exponent 3 ")), "{reason:?}");
}

#[test]
fn a_private_key_in_the_proof_header_is_refused() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let c = json!({"jti": "j", "htm": "GET", "htu": URL, "iat": NOW, "ath": dpop::ath(&token)});
    for member in ["d", "p", "k"] {
        let mut h = proof_header(&f.client);
        h["jwk"][member] = json!("c2VjcmV0");
        let proof = sign(&f.client, &h, &c);
        assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::PrivateKey, "{member}");
    }
}

#[test]
fn alg_none_and_hs256_proofs_are_refused() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let c = json!({"jti": "j", "htm": "GET", "htu": URL, "iat": NOW, "ath": dpop::ath(&token)});
    let seg = |v: &Value| b64::encode(v.to_string());
    let mut h = proof_header(&f.client);
    h["alg"] = json!("none");
    let none = format!("{}.{}.", seg(&h), seg(&c));
    assert!(matches!(refused(f.verifier.verify_dpop(&token, &none, "GET", URL)), ProofError::Malformed(_)));
    let none = format!("{}.{}.AA", seg(&h), seg(&c));
    assert_eq!(refused(f.verifier.verify_dpop(&token, &none, "GET", URL)), ProofError::UnsupportedAlg("none".into()));
    h["alg"] = json!("HS256");
    let hs = format!("{}.{}.{}", seg(&h), seg(&c), b64::encode([7u8; 32]));
    assert_eq!(refused(f.verifier.verify_dpop(&token, &hs, "GET", URL)), ProofError::UnsupportedAlg("HS256".into()));
}

#[test]
fn header_rules_typ_jwk_alg_and_crit() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let c = json!({"jti": "j", "htm": "GET", "htu": URL, "iat": NOW, "ath": dpop::ath(&token)});
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut h = proof_header(&f.client);
        edit(&mut h);
        refused(f.verifier.verify_dpop(&token, &sign(&f.client, &h, &c), "GET", URL))
    };
    assert_eq!(with(&|h| h["typ"] = json!("JWT")), ProofError::WrongType);
    assert_eq!(with(&|h| h["typ"] = json!("at+jwt")), ProofError::WrongType);
    assert_eq!(
        with(&|h| {
            h.as_object_mut().unwrap().remove("typ");
        }),
        ProofError::WrongType
    );
    assert!(matches!(
        with(&|h| {
            h.as_object_mut().unwrap().remove("jwk");
        }),
        ProofError::BadKey(_)
    ));
    assert!(matches!(with(&|h| h["alg"] = json!("RS256")), ProofError::BadKey(_)), "alg must fit the jwk");
    assert_eq!(with(&|h| h["crit"] = json!(["exp"])), ProofError::UnsupportedCrit);
}

#[test]
fn claims_must_be_present_and_of_the_right_type() {
    let f = fixture();
    let token = bound_token(&f.issuer, &f.client);
    let full = json!({"jti": "j", "htm": "GET", "htu": URL, "iat": NOW, "ath": dpop::ath(&token)});
    for name in ["jti", "htm", "htu", "iat"] {
        let mut c = full.clone();
        c.as_object_mut().unwrap().remove(name);
        let proof = sign(&f.client, &proof_header(&f.client), &c);
        assert_eq!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::MissingClaim(name));
    }
    let mut c = full.clone();
    c["iat"] = json!("now");
    let proof = sign(&f.client, &proof_header(&f.client), &c);
    assert!(matches!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::Malformed(_)));
    let dup = br#"{"jti":"a","jti":"b","htm":"GET","htu":"https://api.example.test/data","iat":1700000000}"#;
    let proof = sign_raw(&f.client, proof_header(&f.client).to_string().as_bytes(), dup);
    assert!(matches!(refused(f.verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::Malformed(_)));
}

#[test]
fn verify_proof_alone_serves_a_token_endpoint() {
    let client = es_key();
    let replay = ReplayCache::default();
    let url = "https://issuer.example.test/token";
    let proof = proof_at(&client, "POST", url, None, NOW);
    let request = Request { method: "POST", url, access_token: None };
    let key = dpop::verify_proof(&proof, &request, start_time(), Duration::from_secs(60), &replay).unwrap();
    assert_eq!(key.jkt, thumbprint(&client.public_jwk()).unwrap());
    assert_eq!(key.alg, Algorithm::ES256);
    let again = dpop::verify_proof(&proof, &request, start_time(), Duration::from_secs(60), &replay);
    assert_eq!(again.unwrap_err().code(), "invalid_dpop_proof");
}

#[test]
fn a_full_replay_cache_fails_closed() {
    let clock = ManualClock::new(start_time());
    let issuer = es_key();
    let (client, other) = (es_key(), es_key());
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(Arc::new(clock.clone()))
        .dpop_replay_capacity(1)
        .build_offline(&jwk_set(&[&issuer]))
        .unwrap();
    let token = bound_token(&issuer, &client);
    verifier.verify_dpop(&token, &proof_at(&client, "GET", URL, Some(&token), NOW), "GET", URL).unwrap();
    let second = proof_at(&client, "GET", URL, Some(&token), NOW);
    assert_eq!(refused(verifier.verify_dpop(&token, &second, "GET", URL)), ProofError::TooManyProofsForKey);
    let other_token = bound_token(&issuer, &other);
    let by_other = proof_at(&other, "GET", URL, Some(&other_token), NOW);
    assert_eq!(refused(verifier.verify_dpop(&other_token, &by_other, "GET", URL)), ProofError::ReplayCacheFull);
    clock.advance(Duration::from_secs(61));
    let third = proof_at(&client, "GET", URL, Some(&token), NOW + 61);
    verifier.verify_dpop(&token, &third, "GET", URL).expect("stale entries are pruned when the cache is full");
}

/// Issue 14 finding 10: the verifier recorded a proof's `jti` before
/// comparing its key with the token's `cnf.jkt`, so the second try of a
/// proof refused for its key answered "replayed". A refused proof is never
/// recorded: it answers its own reason every time, and takes no room.
#[test]
fn proof_with_wrong_key_is_never_recorded_as_replay() {
    let clock = ManualClock::new(start_time());
    let issuer = es_key();
    let client = es_key();
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(Arc::new(clock.clone()))
        .dpop_replay_capacity(2)
        .build_offline(&jwk_set(&[&issuer]))
        .unwrap();
    let token = bound_token(&issuer, &client);
    let thief = es_key();
    let proof = proof_at(&thief, "GET", URL, Some(&token), NOW);
    for attempt in 0..5 {
        assert_eq!(refused(verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::KeyMismatch, "{attempt}");
    }
    // Other refusals after the proof's own checks are not recorded either:
    // a bound token whose claims do not fit `Claims` (`sub` a number).
    let mut c = claims();
    c["cnf"] = json!({"jkt": thumbprint(&client.public_jwk()).unwrap()});
    c["sub"] = json!(42);
    let odd = sign(&issuer, &header(&issuer), &c);
    let odd_proof = proof_at(&client, "GET", URL, Some(&odd), NOW);
    for _ in 0..3 {
        let err = verifier.verify_dpop(&odd, &odd_proof, "GET", URL).unwrap_err();
        assert_eq!(err.code(), "invalid_claim", "{err}");
    }
    // Nothing took room: a cache of 2 still takes two good proofs.
    for _ in 0..2 {
        verifier.verify_dpop(&token, &proof_at(&client, "GET", URL, Some(&token), NOW), "GET", URL).unwrap();
    }
}

/// Issue 14 finding 10: one key (a leaked bound token's) filled the whole
/// replay cache and blocked every DPoP request. The cache is bounded per
/// proof key: a key at its limit is refused, the others go on.
#[test]
fn one_key_cannot_fill_the_replay_cache() {
    let clock = ManualClock::new(start_time());
    let issuer = es_key();
    let (leaked, honest) = (es_key(), es_key());
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(Arc::new(clock.clone()))
        .dpop_replay_capacity(10)
        .dpop_replay_capacity_per_key(3)
        .build_offline(&jwk_set(&[&issuer]))
        .unwrap();
    let token = bound_token(&issuer, &leaked);
    for _ in 0..3 {
        verifier.verify_dpop(&token, &proof_at(&leaked, "GET", URL, Some(&token), NOW), "GET", URL).unwrap();
    }
    for _ in 0..20 {
        let proof = proof_at(&leaked, "GET", URL, Some(&token), NOW);
        assert_eq!(refused(verifier.verify_dpop(&token, &proof, "GET", URL)), ProofError::TooManyProofsForKey);
    }
    let honest_token = bound_token(&issuer, &honest);
    for _ in 0..3 {
        let proof = proof_at(&honest, "GET", URL, Some(&honest_token), NOW);
        verifier.verify_dpop(&honest_token, &proof, "GET", URL).expect("another key is not blocked");
    }
    // Once its proofs leave the window, the leaked key may prove again.
    clock.advance(Duration::from_secs(62));
    let later = proof_at(&leaked, "GET", URL, Some(&token), NOW + 62);
    verifier.verify_dpop(&token, &later, "GET", URL).unwrap();
}

#[tokio::test]
async fn the_async_verifier_checks_proofs_with_its_own_replay_cache() {
    let issuer = es_key();
    let client = rsa_key();
    let mock = MockJwks::start(&[&issuer]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    let token = bound_token(&issuer, client);
    let proof = proof_at(client, "DELETE", URL, Some(&token), NOW);
    let claims = verifier.verify_dpop(&token, &proof, "DELETE", URL).await.unwrap();
    assert_eq!(claims.sub.as_deref(), Some("user-1"));
    let again = verifier.verify_dpop(&token, &proof, "DELETE", URL).await.unwrap_err();
    assert_eq!(again, Error::InvalidDpopProof { reason: ProofError::Replayed });
    assert_eq!(verifier.verify(&token).await.unwrap_err(), Error::DpopBound);
    let clone = verifier.clone();
    let proof = proof_at(client, "DELETE", URL, Some(&token), NOW);
    clone.verify_dpop(&token, &proof, "DELETE", URL).await.unwrap();
    assert!(verifier.verify_dpop(&token, &proof, "DELETE", URL).await.is_err(), "clones share one cache");
}

/// The actix extractor: `Authorization: DPoP` with a `DPoP` header, and the
/// RFC 9449 §7.1 challenges.
#[cfg(feature = "actix")]
mod extractor {
    use actix_web::{App, HttpResponse, dev::ServiceResponse, http::StatusCode, post, test};
    use jwks_verifier::actix::{Authenticated, PublicBaseUrl};

    use super::*;

    #[post("/data")]
    async fn data(auth: Authenticated) -> HttpResponse {
        HttpResponse::Ok().body(auth.claims().sub.clone().unwrap_or_default())
    }

    fn challenge(resp: &ServiceResponse) -> String {
        resp.headers().get("WWW-Authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }

    fn request(auth: String, proofs: &[&str]) -> test::TestRequest {
        let mut req = test::TestRequest::post().uri("/data").insert_header(("Host", "api.example.test"));
        req = req.insert_header(("Authorization", auth));
        for p in proofs {
            req = req.append_header(("DPoP", p.to_string()));
        }
        req
    }

    #[actix_web::test]
    async fn dpop_scheme_with_a_proof_for_the_request_url_is_accepted() {
        let issuer = es_key();
        let client = es_key();
        let mock = MockJwks::start(&[&issuer]).await;
        let clock = ManualClock::new(start_time());
        let verifier = mock.builder(&clock).build().await.unwrap();
        let app = test::init_service(App::new().app_data(verifier).service(data)).await;
        let token = bound_token(&issuer, &client);
        let url = "http://api.example.test/data";

        let proof = proof_at(&client, "POST", url, Some(&token), NOW);
        let resp = test::call_service(&app, request(format!("DPoP {token}"), &[&proof]).to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(test::read_body(resp).await, "user-1");

        // The same proof again: replayed.
        let resp = test::call_service(&app, request(format!("DPoP {token}"), &[&proof]).to_request()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&resp),
            r#"DPoP error="invalid_dpop_proof", error_description="DPoP proof `jti` was already used", algs="ES256 RS256""#
        );
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["error"], "invalid_dpop_proof");

        // A proof for another host (as a forwarding header would claim) is refused.
        let other = proof_at(&client, "POST", "http://public.example.test/data", Some(&token), NOW);
        let req =
            request(format!("DPoP {token}"), &[&other]).insert_header(("X-Forwarded-Host", "public.example.test"));
        let resp = test::call_service(&app, req.to_request()).await;
        assert!(challenge(&resp).contains("`htu` does not match"), "{}", challenge(&resp));

        // No DPoP header, or two.
        let resp = test::call_service(&app, request(format!("DPoP {token}"), &[]).to_request()).await;
        assert!(challenge(&resp).starts_with(r#"DPoP error="invalid_dpop_proof""#), "{}", challenge(&resp));
        let (p1, p2) =
            (proof_at(&client, "POST", url, Some(&token), NOW), proof_at(&client, "POST", url, Some(&token), NOW));
        let resp = test::call_service(&app, request(format!("DPoP {token}"), &[&p1, &p2]).to_request()).await;
        assert!(challenge(&resp).contains("more than one DPoP header"), "{}", challenge(&resp));

        // The bound token as a bearer token.
        let resp = test::call_service(&app, request(format!("Bearer {token}"), &[]).to_request()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge(&resp).starts_with(r#"DPoP error="invalid_token""#), "{}", challenge(&resp));
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["error"], "invalid_token");

        // An expired bound token with a good proof: invalid_token under the DPoP scheme.
        let mut c = claims();
        c["exp"] = json!(NOW - 3600);
        c["cnf"] = json!({"jkt": thumbprint(&client.public_jwk()).unwrap()});
        let expired = sign(&issuer, &header(&issuer), &c);
        let proof = proof_at(&client, "POST", url, Some(&expired), NOW);
        let resp = test::call_service(&app, request(format!("DPoP {expired}"), &[&proof]).to_request()).await;
        assert_eq!(
            challenge(&resp),
            r#"DPoP error="invalid_token", error_description="the access token expired", algs="ES256 RS256""#
        );

        // No credentials: both schemes are offered.
        let resp = test::call_service(&app, test::TestRequest::post().uri("/data").to_request()).await;
        let all: Vec<_> = resp.headers().get_all("WWW-Authenticate").map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(all, ["Bearer", r#"DPoP algs="ES256 RS256""#]);
    }

    #[actix_web::test]
    async fn a_public_base_url_replaces_the_connection_for_htu() {
        let issuer = es_key();
        let client = es_key();
        let mock = MockJwks::start(&[&issuer]).await;
        let clock = ManualClock::new(start_time());
        let verifier = mock.builder(&clock).build().await.unwrap();
        let base = PublicBaseUrl::new("https://api.example.com/v1/").unwrap();
        let app = test::init_service(App::new().app_data(verifier).app_data(base).service(data)).await;
        let token = bound_token(&issuer, &client);
        let proof = proof_at(&client, "POST", "https://api.example.com/v1/data", Some(&token), NOW);
        let resp = test::call_service(&app, request(format!("DPoP {token}"), &[&proof]).to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let proof = proof_at(&client, "POST", "http://api.example.test/data", Some(&token), NOW);
        let resp = test::call_service(&app, request(format!("DPoP {token}"), &[&proof]).to_request()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(PublicBaseUrl::new("https://api.example.com/?q=1").is_err());
        assert!(PublicBaseUrl::new("ftp://api.example.com").is_err());
    }
}

/// `jwks-verify` with captured requests: one process, so a proof repeated on
/// a later line is a replay.
mod cli {
    use std::{
        io::{BufRead, BufReader, Write},
        process::{Command, Stdio},
    };

    use jwks_verifier::SystemClock;

    use super::*;

    const BIN: &str = env!("CARGO_BIN_EXE_jwks-verify");

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn captured_requests_are_checked_with_one_replay_cache() {
        let now = SystemClock.now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let issuer = es_key();
        let client = es_key();
        let mock = MockJwks::start(&[&issuer]).await;
        let jwks_uri = mock.url();
        let mut c = claims_at(now);
        c["cnf"] = json!({"jkt": thumbprint(&client.public_jwk()).unwrap()});
        let token = sign(&issuer, &header(&issuer), &c);
        let proof = proof_at(&client, "GET", URL, Some(&token), now);
        let plain = sign(&issuer, &header(&issuer), &claims_at(now));

        let answers = tokio::task::spawn_blocking(move || {
            let mut child = Command::new(BIN)
                .args(["--issuer", ISS, "--jwks-uri", &jwks_uri, "--audience", AUD])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut ask = |line: &str| -> Value {
                writeln!(stdin, "{line}").unwrap();
                stdin.flush().unwrap();
                let mut out = String::new();
                stdout.read_line(&mut out).unwrap();
                serde_json::from_str(&out).unwrap()
            };
            let captured = json!({"token": token, "dpop": proof, "method": "GET", "url": URL}).to_string();
            let answers = vec![
                ask(&captured),
                ask(&captured),
                ask(&token),
                ask(&json!({"token": token}).to_string()),
                ask(&json!({"token": token, "dpop": proof}).to_string()),
                ask(&json!({"token": plain}).to_string()),
                ask(&json!({"token": token, "dpop": proof, "method": "GET", "url": URL, "x": 1}).to_string()),
            ];
            drop(stdin);
            (answers, child.wait().unwrap())
        })
        .await
        .unwrap();
        let (a, status) = answers;
        assert_eq!(a[0]["valid"], true, "{}", a[0]);
        assert_eq!(a[0]["claims"]["cnf"]["jkt"], thumbprint(&client.public_jwk()).unwrap());
        assert_eq!(a[1]["error"], "invalid_dpop_proof", "{}", a[1]);
        assert!(a[1]["message"].as_str().unwrap().contains("already used"));
        assert_eq!(a[2]["error"], "dpop_bound_token", "a bound token without a proof: {}", a[2]);
        assert_eq!(a[3]["error"], "dpop_bound_token", "{}", a[3]);
        assert_eq!(a[4]["error"], "malformed", "dpop without method and url: {}", a[4]);
        assert_eq!(a[5]["valid"], true, "{}", a[5]);
        assert_eq!(a[6]["error"], "malformed", "unknown members: {}", a[6]);
        assert_eq!(status.code(), Some(1));
    }
}
