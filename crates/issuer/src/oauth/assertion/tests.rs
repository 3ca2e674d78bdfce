use std::sync::Mutex;

use jwks_jose::{SigningKey, b64};
use tokio::{io::AsyncReadExt, io::AsyncWriteExt, net::TcpListener};

use super::*;
use crate::oauth::request::unverified_issuer;
use jwks_jose::{
    clock::{ManualClock, UnixTime},
    compact,
};

const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://issuer.test";
const TOKEN_URL: &str = "https://issuer.test/token";

fn rule(mode: AssertionAudience) -> AudienceRule {
    AudienceRule { issuer: ISSUER.into(), token_endpoint: TOKEN_URL.into(), mode }
}

fn key(alg: Algorithm) -> SigningKey {
    SigningKey::from_pkcs8(alg, &SigningKey::generate(alg, 2048).unwrap()).unwrap()
}

fn claims(iss: &str, sub: &str, aud: impl serde::Serialize, exp: u64, jti: &str) -> String {
    serde_json::json!({"iss": iss, "sub": sub, "aud": aud, "iat": NOW, "exp": exp, "jti": jti}).to_string()
}

fn sign(k: &SigningKey, claims: &str) -> String {
    let header = serde_json::json!({"alg": k.algorithm().as_str(), "kid": k.kid(), "typ": "JWT"}).to_string();
    compact::sign(k, header.as_bytes(), claims.as_bytes()).unwrap()
}

fn verifier_in(client: &str, keys: &[&SigningKey], clock: &ManualClock, mode: AssertionAudience) -> AssertionVerifier {
    let set = JwkSet { keys: keys.iter().map(|k| k.public_jwk()).collect() };
    AssertionVerifier::with_jwks(client, &set, rule(mode), Duration::from_secs(300), Arc::new(clock.clone())).unwrap()
}

fn verifier(client: &str, keys: &[&SigningKey], clock: &ManualClock) -> AssertionVerifier {
    verifier_in(client, keys, clock, AssertionAudience::IssuerOrTokenEndpoint)
}

#[tokio::test]
async fn es256_and_rs256_assertions_authenticate() {
    let clock = ManualClock::at(UnixTime::from_secs(NOW));
    for alg in algorithms() {
        let k = key(alg);
        let v = verifier("svc", &[&k], &clock);
        let a = sign(&k, &claims("svc", "svc", TOKEN_URL, NOW + 60, "j1"));
        let jti = v.verify(&a, UnixTime::from_secs(NOW)).await.unwrap();
        assert_eq!((jti.kind, jti.id.as_str(), jti.until), ("private_key_jwt", "j1", NOW + 60 + LEEWAY));
        let a = sign(&k, &claims("svc", "svc", ISSUER, NOW + 60, "j2"));
        assert_eq!(v.verify(&a, UnixTime::from_secs(NOW)).await.map(drop), Ok(()));
    }
}

async fn rejected(v: &AssertionVerifier, assertion: &str, needle: &str) {
    let err = v.verify(assertion, UnixTime::from_secs(NOW)).await.unwrap_err();
    assert!(err.contains(needle), "`{err}` does not mention `{needle}`");
}

#[tokio::test]
async fn each_bad_assertion_is_rejected_with_a_precise_reason() {
    let clock = ManualClock::at(UnixTime::from_secs(NOW));
    let k = key(Algorithm::ES256);
    let other = key(Algorithm::ES256);
    let v = verifier("svc", &[&k], &clock);
    rejected(&v, &sign(&k, &claims("svc", "svc", "https://elsewhere", NOW + 60, "j")), "wrong_audience").await;
    rejected(&v, &sign(&k, &claims("svc", "svc", TOKEN_URL, NOW - 61, "j")), "expired").await;
    rejected(&v, &sign(&k, &claims("svc", "svc", TOKEN_URL, NOW + 3600, "j")), "more than 300 s ahead").await;
    rejected(&v, &sign(&k, &claims("other", "svc", TOKEN_URL, NOW + 60, "j")), "wrong_issuer").await;
    rejected(&v, &sign(&k, &claims("svc", "other", TOKEN_URL, NOW + 60, "j")), "`sub` must equal").await;
    rejected(&v, &sign(&k, &claims("svc", "svc", TOKEN_URL, NOW + 60, "")), "`jti` is required").await;
    // Signed by another client's key: its kid is not in this client's set.
    rejected(&v, &sign(&other, &claims("svc", "svc", TOKEN_URL, NOW + 60, "j")), "unknown_kid").await;
    // The same, claiming this client's kid.
    let header = serde_json::json!({"alg": "ES256", "kid": k.kid()}).to_string();
    let forged =
        compact::sign(&other, header.as_bytes(), claims("svc", "svc", TOKEN_URL, NOW + 60, "j").as_bytes()).unwrap();
    rejected(&v, &forged, "bad_signature").await;
    // alg none, and HS256 with the public key as the secret.
    let body = b64::encode(claims("svc", "svc", TOKEN_URL, NOW + 60, "j"));
    let none = format!("{}.{body}.", b64::encode(r#"{"alg":"none"}"#));
    rejected(&v, &none, "unsupported_alg").await;
    let none = format!("{}.{body}.c2ln", b64::encode(r#"{"alg":"none"}"#));
    rejected(&v, &none, "unsupported_alg").await;
    let hs = format!("{}.{body}.c2ln", b64::encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, k.kid())));
    rejected(&v, &hs, "unsupported_alg").await;
}

#[tokio::test]
async fn assertion_audience_must_be_the_issuer_alone() {
    // draft-ietf-oauth-rfc7523bis: the issuer identifier as the sole value.
    let clock = ManualClock::at(UnixTime::from_secs(NOW));
    let k = key(Algorithm::ES256);
    let strict = verifier_in("svc", &[&k], &clock, AssertionAudience::Issuer);
    let a = |aud: serde_json::Value| sign(&k, &claims("svc", "svc", aud, NOW + 60, "j"));
    assert_eq!(strict.verify(&a(serde_json::json!(ISSUER)), UnixTime::from_secs(NOW)).await.map(drop), Ok(()));
    assert_eq!(strict.verify(&a(serde_json::json!([ISSUER])), UnixTime::from_secs(NOW)).await.map(drop), Ok(()));
    rejected(&strict, &a(serde_json::json!(TOKEN_URL)), "wrong_audience").await;
    rejected(&strict, &a(serde_json::json!([ISSUER, "https://other.example"])), "wrong_audience").await;
    // The lenient mode adds the token endpoint, and still refuses foreign
    // members.
    let lenient = verifier("svc", &[&k], &clock);
    assert_eq!(lenient.verify(&a(serde_json::json!(TOKEN_URL)), UnixTime::from_secs(NOW)).await.map(drop), Ok(()));
    assert_eq!(
        lenient.verify(&a(serde_json::json!([ISSUER, TOKEN_URL])), UnixTime::from_secs(NOW)).await.map(drop),
        Ok(())
    );
    rejected(&lenient, &a(serde_json::json!([TOKEN_URL, "https://other.example"])), "wrong_audience").await;
}

/// A JWKS server whose body can be swapped, counting requests.
async fn jwks_server(body: Arc<Mutex<String>>, hits: Arc<std::sync::atomic::AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let body = body.lock().unwrap().clone();
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=300\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(res.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/jwks.json")
}

#[tokio::test]
async fn a_jwks_uri_client_whose_key_rotates_keeps_authenticating() {
    let clock = ManualClock::at(UnixTime::from_secs(NOW));
    let old = key(Algorithm::ES256);
    let new = key(Algorithm::RS256);
    let set = |keys: &[&SigningKey]| {
        serde_json::to_string(&JwkSet { keys: keys.iter().map(|k| k.public_jwk()).collect() }).unwrap()
    };
    let body = Arc::new(Mutex::new(set(&[&old])));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let uri = jwks_server(body.clone(), hits.clone()).await;
    let v = AssertionVerifier::with_uri(
        "svc",
        &uri,
        rule(AssertionAudience::IssuerOrTokenEndpoint),
        Duration::from_secs(300),
        Arc::new(clock.clone()),
    );
    assert_eq!(
        v.verify(&sign(&old, &claims("svc", "svc", TOKEN_URL, NOW + 60, "a")), UnixTime::from_secs(NOW))
            .await
            .map(drop),
        Ok(())
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The client publishes a new key and signs with it: one refetch.
    *body.lock().unwrap() = set(&[&old, &new]);
    clock.advance(Duration::from_secs(31)); // past the verifier's refetch cooldown
    assert_eq!(
        v.verify(&sign(&new, &claims("svc", "svc", TOKEN_URL, NOW + 90, "b")), UnixTime::from_secs(NOW + 31))
            .await
            .map(drop),
        Ok(())
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    // An unknown key is still refused.
    let stranger = key(Algorithm::ES256);
    let err = v
        .verify(&sign(&stranger, &claims("svc", "svc", TOKEN_URL, NOW + 90, "c")), UnixTime::from_secs(NOW + 31))
        .await
        .unwrap_err();
    assert!(err.contains("unknown_kid"), "{err}");
}

#[test]
fn the_issuer_is_read_without_trusting_the_token() {
    let k = key(Algorithm::ES256);
    assert_eq!(unverified_issuer(&sign(&k, &claims("svc", "svc", TOKEN_URL, NOW, "j"))).as_deref(), Some("svc"));
    assert_eq!(unverified_issuer("not.a.jwt"), None);
    assert_eq!(unverified_issuer(""), None);
}
