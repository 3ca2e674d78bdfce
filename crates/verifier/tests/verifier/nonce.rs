//! DPoP nonces at a resource server (RFC 9449 §9): with a nonce policy a
//! proof without the server's nonce is refused with `use_dpop_nonce` and
//! records nothing; the retry with the nonce is accepted; a valid nonce
//! rescues an `iat` outside the window; an expired nonce is refused; the
//! actix extractor answers 401 with `DPoP-Nonce` and sends a fresh one on
//! success.

use std::{sync::Arc, time::Duration};

use jwks_jose::{SigningKey, b64};
use jwks_verifier::{
    Error, ManualClock, OfflineVerifier, UnixTime, Verifier,
    dpop::{self, ProofError},
    nonce::{NonceMode, NoncePolicy, StatelessNonces},
};
use serde_json::{Value, json};

use crate::{
    dpop::{URL, bound_token, proof_header},
    support::*,
};

const SECRET: [u8; 32] = [9u8; 32];
const STEP: Duration = Duration::from_secs(60);

fn nonces(mode: NonceMode) -> StatelessNonces {
    StatelessNonces::new(&SECRET, STEP, mode).unwrap()
}

/// A proof with an explicit `jti` and optional `nonce`.
fn proof(key: &SigningKey, token: &str, iat: u64, jti: &str, nonce: Option<&str>) -> String {
    let mut c = json!({"jti": jti, "htm": "GET", "htu": URL, "iat": iat, "ath": dpop::ath(token)});
    if let Some(n) = nonce {
        c["nonce"] = json!(n);
    }
    sign(key, &proof_header(key), &c)
}

struct Fixture {
    issuer: SigningKey,
    client: SigningKey,
    verifier: OfflineVerifier,
    clock: ManualClock,
}

fn fixture(mode: NonceMode) -> Fixture {
    let issuer = es_key();
    let clock = ManualClock::new(start_time());
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(Arc::new(clock.clone()))
        .dpop_nonce(Arc::new(nonces(mode)))
        .build_offline(&jwk_set(&[&issuer]))
        .unwrap();
    Fixture { issuer, client: es_key(), verifier, clock }
}

#[track_caller]
fn use_nonce(result: Result<jwks_verifier::Claims, Error>) -> String {
    match result {
        Err(Error::UseDpopNonce { reason }) => reason,
        other => panic!("expected use_dpop_nonce, got {other:?}"),
    }
}

#[test]
fn required_refuses_a_proof_without_nonce_and_the_retry_with_the_same_jti_is_accepted() {
    let f = fixture(NonceMode::Required);
    let token = bound_token(&f.issuer, &f.client);
    let first = proof(&f.client, &token, NOW, "jti-1", None);
    let reason = use_nonce(f.verifier.verify_dpop(&token, &first, "GET", URL));
    assert!(reason.contains("nonce"), "{reason}");
    let nonce = f.verifier.dpop_nonce().expect("a policy makes fresh nonces");
    // The refused proof recorded nothing: its `jti` is still free.
    let retry = proof(&f.client, &token, NOW, "jti-1", Some(&nonce));
    f.verifier.verify_dpop(&token, &retry, "GET", URL).unwrap();
    // And now it is used.
    let again = f.verifier.verify_dpop(&token, &retry, "GET", URL).unwrap_err();
    assert_eq!(again, Error::InvalidDpopProof { reason: ProofError::Replayed });
}

#[test]
fn allowed_accepts_a_proof_without_nonce_but_refuses_a_bad_one() {
    let f = fixture(NonceMode::Allowed);
    let token = bound_token(&f.issuer, &f.client);
    f.verifier.verify_dpop(&token, &proof(&f.client, &token, NOW, "a", None), "GET", URL).unwrap();
    let forged = b64::encode([0u8; 24]);
    let reason =
        use_nonce(f.verifier.verify_dpop(&token, &proof(&f.client, &token, NOW, "b", Some(&forged)), "GET", URL));
    assert!(reason.contains("not one this server issued"), "{reason}");
    let e = f.verifier.verify_dpop(&token, &proof(&f.client, &token, NOW, "c", Some(&"x".repeat(9))), "GET", URL);
    assert_eq!(e.unwrap_err().code(), "use_dpop_nonce");
}

#[test]
fn an_iat_an_hour_off_is_accepted_with_a_nonce_and_refused_without() {
    let f = fixture(NonceMode::Allowed);
    let token = bound_token(&f.issuer, &f.client);
    let nonce = f.verifier.dpop_nonce().unwrap();
    for (i, iat) in [NOW - 3600, NOW + 3600].into_iter().enumerate() {
        let without = proof(&f.client, &token, iat, &format!("w{i}"), None);
        let reason = use_nonce(f.verifier.verify_dpop(&token, &without, "GET", URL));
        assert!(reason.contains("`iat` is outside"), "{reason}");
        let with = proof(&f.client, &token, iat, &format!("n{i}"), Some(&nonce));
        f.verifier.verify_dpop(&token, &with, "GET", URL).unwrap();
    }
    // Without a policy the same proof is a hard refusal.
    let plain = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .clock(Arc::new(f.clock.clone()))
        .build_offline(&jwk_set(&[&f.issuer]))
        .unwrap();
    let stale = proof(&f.client, &token, NOW - 3600, "s", Some(&nonce));
    assert!(matches!(
        plain.verify_dpop(&token, &stale, "GET", URL),
        Err(Error::InvalidDpopProof { reason: ProofError::Stale { .. } })
    ));
}

#[test]
fn a_proof_rescued_by_its_nonce_stays_single_use_while_the_nonce_lives() {
    let f = fixture(NonceMode::Allowed);
    let token = bound_token(&f.issuer, &f.client);
    let nonce = f.verifier.dpop_nonce().unwrap();
    let old = proof(&f.client, &token, NOW - 3600, "rescued", Some(&nonce));
    f.verifier.verify_dpop(&token, &old, "GET", URL).unwrap();
    // Its `iat` left the window an hour ago, yet a replay is still refused
    // for as long as its nonce is accepted.
    f.clock.advance(Duration::from_secs(61));
    let again = f.verifier.verify_dpop(&token, &old, "GET", URL).unwrap_err();
    assert_eq!(again, Error::InvalidDpopProof { reason: ProofError::Replayed });
}

#[test]
fn an_expired_nonce_is_refused_with_a_fresh_one_offered() {
    let f = fixture(NonceMode::Required);
    let token = bound_token(&f.issuer, &f.client);
    let nonce = f.verifier.dpop_nonce().unwrap();
    f.clock.advance(STEP * 2);
    let p = proof(&f.client, &token, NOW + 120, "late", Some(&nonce));
    let reason = use_nonce(f.verifier.verify_dpop(&token, &p, "GET", URL));
    assert!(reason.contains("expired"), "{reason}");
    let fresh = f.verifier.dpop_nonce().unwrap();
    assert_ne!(fresh, nonce);
    let p = proof(&f.client, &token, NOW + 120, "late", Some(&fresh));
    f.verifier.verify_dpop(&token, &p, "GET", URL).unwrap();
}

#[test]
fn the_nonce_rule_comes_after_the_other_proof_rules() {
    let f = fixture(NonceMode::Required);
    let token = bound_token(&f.issuer, &f.client);
    // A proof for another method, without a nonce: the nonce would not
    // help, so the answer is the rule it broke.
    let c = json!({"jti": "m", "htm": "POST", "htu": URL, "iat": NOW, "ath": dpop::ath(&token)});
    let p = sign(&f.client, &proof_header(&f.client), &c);
    let e = f.verifier.verify_dpop(&token, &p, "GET", URL).unwrap_err();
    assert_eq!(e, Error::InvalidDpopProof { reason: ProofError::WrongMethod });
}

#[test]
fn verify_proof_with_nonce_serves_a_token_endpoint() {
    let key = es_key();
    let replay = dpop::ReplayCache::default();
    let policy = nonces(NonceMode::Required);
    let now = start_time();
    let url = "https://issuer.example.test/token";
    let request = dpop::Request { method: "POST", url, access_token: None };
    let make = |jti: &str, nonce: Option<&str>| {
        let mut c = json!({"jti": jti, "htm": "POST", "htu": url, "iat": NOW});
        if let Some(n) = nonce {
            c["nonce"] = json!(n);
        }
        sign(&key, &proof_header(&key), &c)
    };
    let e = dpop::verify_proof_with_nonce(&make("t", None), &request, now, STEP, &replay, &policy).unwrap_err();
    assert_eq!(e.code(), "use_dpop_nonce");
    let n = policy.issue(UnixTime::from_secs(NOW));
    dpop::verify_proof_with_nonce(&make("t", Some(&n)), &request, now, STEP, &replay, &policy).unwrap();
    let again = dpop::verify_proof_with_nonce(&make("t", Some(&n)), &request, now, STEP, &replay, &policy);
    assert_eq!(again.unwrap_err(), Error::InvalidDpopProof { reason: ProofError::Replayed });
}

/// The actix extractor with a nonce policy.
#[cfg(feature = "actix")]
mod extractor {
    use actix_web::{App, HttpResponse, dev::ServiceResponse, get, http::StatusCode, middleware::from_fn, test};
    use jwks_verifier::actix::{Authenticated, send_dpop_nonce};

    use super::*;

    #[get("/data")]
    async fn data(auth: Authenticated) -> HttpResponse {
        HttpResponse::Ok().body(auth.claims().sub.clone().unwrap_or_default())
    }

    fn header<B>(resp: &ServiceResponse<B>, name: &str) -> Option<String> {
        resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    #[actix_web::test]
    async fn use_dpop_nonce_is_a_401_challenge_with_a_nonce_and_success_sends_a_fresh_one() {
        let issuer = es_key();
        let client = es_key();
        let mock = MockJwks::start(&[&issuer]).await;
        let clock = ManualClock::new(start_time());
        let verifier = mock.builder(&clock).dpop_nonce(Arc::new(nonces(NonceMode::Required))).build().await.unwrap();
        let app =
            test::init_service(App::new().wrap(from_fn(send_dpop_nonce)).app_data(verifier.clone()).service(data))
                .await;
        let token = bound_token(&issuer, &client);
        let url = "http://api.example.test/data";
        let call = |p: String| {
            test::TestRequest::get()
                .uri("/data")
                .insert_header(("Host", "api.example.test"))
                .insert_header(("Authorization", format!("DPoP {token}")))
                .insert_header(("DPoP", p))
                .to_request()
        };
        let make = |jti: &str, nonce: Option<&str>| {
            let mut c = json!({"jti": jti, "htm": "GET", "htu": url, "iat": NOW, "ath": dpop::ath(&token)});
            if let Some(n) = nonce {
                c["nonce"] = json!(n);
            }
            sign(&client, &proof_header(&client), &c)
        };

        let resp = test::call_service(&app, call(make("one", None))).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenge = header(&resp, "WWW-Authenticate").unwrap();
        assert!(challenge.starts_with(r#"DPoP error="use_dpop_nonce", error_description=""#), "{challenge}");
        assert!(challenge.ends_with(r#"algs="ES256 RS256""#), "{challenge}");
        let nonce = header(&resp, "DPoP-Nonce").expect("the refusal carries a nonce");
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["error"], "use_dpop_nonce");

        // The retry, same `jti`, with the nonce: accepted, with a fresh nonce.
        let resp = test::call_service(&app, call(make("one", Some(&nonce)))).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(header(&resp, "DPoP-Nonce").is_some(), "success sends a fresh nonce");
        assert_eq!(test::read_body(resp).await, "user-1");

        // Any other refusal of a DPoP request carries one too.
        let resp = test::call_service(&app, call(make("one", Some(&nonce)))).await;
        assert!(header(&resp, "WWW-Authenticate").unwrap().contains("invalid_dpop_proof"));
        assert!(header(&resp, "DPoP-Nonce").is_some());

        // Two steps later the nonce expired: use_dpop_nonce again, with a new one.
        clock.advance(STEP * 2);
        let resp = test::call_service(&app, call(make("two", Some(&nonce)))).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(header(&resp, "WWW-Authenticate").unwrap().contains("use_dpop_nonce"));
        assert_ne!(header(&resp, "DPoP-Nonce").unwrap(), nonce);
    }
}

/// `jwks-verify --dpop-nonce required --dpop-nonce-secret-file`.
mod cli {
    use std::{
        io::{BufRead, BufReader, Write},
        process::{Command, Stdio},
    };

    use jwks_jose::thumbprint;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jwks_verify_answers_use_dpop_nonce_with_the_nonce_and_accepts_the_retry() {
        let now = crate::cli::now();
        let issuer = es_key();
        let client = es_key();
        let mock = MockJwks::start(&[&issuer]).await;
        let jwks_uri = mock.url();
        let mut c = claims_at(now);
        c["cnf"] = json!({"jkt": thumbprint(&client.public_jwk()).unwrap()});
        let token = sign(&issuer, &header(&issuer), &c);
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("nonce-secret");
        std::fs::write(&secret, format!("{}\n", b64::encode(SECRET))).unwrap();

        let answers = tokio::task::spawn_blocking(move || {
            let mut child = Command::new(crate::cli::BIN)
                .args(["--issuer", ISS, "--jwks-uri", &jwks_uri, "--audience", AUD, "--dpop-nonce", "required"])
                .arg("--dpop-nonce-secret-file")
                .arg(&secret)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut ask = |line: String| -> Value {
                writeln!(stdin, "{line}").unwrap();
                stdin.flush().unwrap();
                let mut out = String::new();
                stdout.read_line(&mut out).unwrap();
                serde_json::from_str(&out).unwrap()
            };
            let captured = |p: String| json!({"token": token, "dpop": p, "method": "GET", "url": URL}).to_string();
            let first = ask(captured(proof(&client, &token, now, "cli-1", None)));
            let nonce = first["dpop_nonce"].as_str().unwrap_or_default().to_owned();
            let retry = ask(captured(proof(&client, &token, now, "cli-1", Some(&nonce))));
            drop(stdin);
            (first, retry, child.wait().unwrap())
        })
        .await
        .unwrap();
        let (first, retry, _status) = answers;
        assert_eq!(
            (first["valid"].clone(), first["error"].clone()),
            (json!(false), json!("use_dpop_nonce")),
            "{first}"
        );
        assert_eq!(first["dpop_nonce"].as_str().map(str::len), Some(jwks_jose::nonce::NONCE_LEN), "{first}");
        assert_eq!(retry["valid"], true, "{retry}");
        assert!(retry["dpop_nonce"].is_string(), "{retry}");
    }

    #[test]
    fn jwks_verify_refuses_a_nonce_mode_without_a_secret_file() {
        let out = Command::new(crate::cli::BIN)
            .args(["--issuer", ISS, "--jwks-uri", "http://127.0.0.1:9/jwks", "--audience", AUD])
            .args(["--dpop-nonce", "required"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--dpop-nonce-secret-file"));
    }
}

#[cfg(feature = "axum")]
mod axum_layer {
    use axum::{Router, body::Body, routing::get};
    use http::Request;
    use jwks_verifier::{axum::Authenticated, tower::AuthLayer};
    use tower::ServiceExt;

    use super::*;

    async fn data(auth: Authenticated) -> String {
        auth.claims().sub.clone().unwrap_or_default()
    }

    #[tokio::test]
    async fn the_tower_layer_answers_use_dpop_nonce_with_a_nonce_and_success_sends_a_fresh_one() {
        let issuer = es_key();
        let client = es_key();
        let mock = MockJwks::start(&[&issuer]).await;
        let clock = ManualClock::new(start_time());
        let verifier = mock.builder(&clock).dpop_nonce(Arc::new(nonces(NonceMode::Required))).build().await.unwrap();
        let app = Router::new().route("/data", get(data)).layer(AuthLayer::new(verifier));
        let token = bound_token(&issuer, &client);
        let url = "http://api.example.test/data";
        let make = |jti: &str, nonce: Option<&str>| {
            let mut c = json!({"jti": jti, "htm": "GET", "htu": url, "iat": NOW, "ath": dpop::ath(&token)});
            if let Some(n) = nonce {
                c["nonce"] = json!(n);
            }
            sign(&client, &proof_header(&client), &c)
        };
        let call = |p: String| {
            let req = Request::builder()
                .uri("/data")
                .header("Host", "api.example.test")
                .header("Authorization", format!("DPoP {token}"))
                .header("DPoP", p)
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(req)
        };
        let header =
            |resp: &http::Response<Body>, name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());

        let resp = call(make("one", None)).await.unwrap();
        assert_eq!(resp.status(), 401);
        let challenge = header(&resp, "WWW-Authenticate").unwrap();
        assert!(challenge.starts_with(r#"DPoP error="use_dpop_nonce", error_description=""#), "{challenge}");
        let nonce = header(&resp, "DPoP-Nonce").expect("the refusal carries a nonce");

        // The retry, same `jti`, with the nonce: accepted, with a fresh nonce.
        let resp = call(make("one", Some(&nonce))).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(header(&resp, "DPoP-Nonce").is_some(), "success sends a fresh nonce");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        assert_eq!(&body[..], b"user-1");

        // Any other refusal of a DPoP request carries one too (a replay).
        let resp = call(make("one", Some(&nonce))).await.unwrap();
        assert!(header(&resp, "WWW-Authenticate").unwrap().contains("invalid_dpop_proof"));
        assert!(header(&resp, "DPoP-Nonce").is_some());
    }
}
