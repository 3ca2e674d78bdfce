//! Several issuers: routing by the unverified `iss` among the configured
//! ones only, each with its own audience and key cache.

use std::sync::Arc;

use jwks_verifier::{ManualClock, MultiVerifier, Verifier};
use serde_json::json;

use crate::support::*;

const OTHER: &str = "https://other-issuer.example.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_routed_by_iss_and_other_issuers_cost_no_request() {
    let (ka, kb) = (es_key(), es_key());
    let (a, b) = (MockJwks::start(&[&ka]).await, MockJwks::start(&[&kb]).await);
    let clock = ManualClock::new(start_time());
    let multi = MultiVerifier::builder()
        .issuer(a.builder(&clock))
        .issuer(Verifier::builder().issuer(OTHER).audience("api-b").jwks_uri(b.url()).clock(Arc::new(clock.clone())))
        .build()
        .await
        .unwrap();
    let mut issuers = multi.issuers();
    issuers.sort_unstable();
    assert_eq!(issuers, vec![ISS, OTHER]);
    assert_eq!((a.requests(), b.requests()), (1, 1), "each issuer has its own cache");

    multi.verify(&token(&ka)).await.unwrap();
    let mut cb = claims();
    cb["iss"] = json!(OTHER);
    cb["aud"] = json!("api-b");
    multi.verify(&sign(&kb, &header(&kb), &cb)).await.unwrap();
    // Each issuer's own audience: B's audience is not A's.
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("api-b");
    assert_eq!(multi.verify(&sign(&ka, &header(&ka), &wrong_aud)).await.unwrap_err().code(), "wrong_audience");
    // A token naming B but signed by A's key: B's keys do not have it.
    let forged = sign(&ka, &header(&ka), &cb);
    assert_eq!(multi.verify(&forged).await.unwrap_err().code(), "unknown_kid");

    let before = (a.requests(), b.requests());
    for iss in ["https://stranger.example.test", "", "https://issuer.example.test/"] {
        let mut c = claims();
        c["iss"] = json!(iss);
        let mut h = header(&ka);
        h["kid"] = json!("never-seen-kid");
        assert_eq!(multi.verify(&sign(&ka, &h, &c)).await.unwrap_err().code(), "wrong_issuer", "{iss:?}");
    }
    let mut no_iss = claims();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(multi.verify(&sign(&ka, &header(&ka), &no_iss)).await.unwrap_err().code(), "missing_claim");
    assert_eq!(multi.verify("not.a.token").await.unwrap_err().code(), "malformed");
    assert_eq!((a.requests(), b.requests()), before, "no request for issuers outside the allow-list");
}

#[tokio::test]
async fn an_empty_list_or_an_issuer_named_twice_is_a_config_error() {
    let empty = MultiVerifier::builder().build().await.unwrap_err();
    assert_eq!(empty.code(), "invalid_config");
    let k = es_key();
    let mock = MockJwks::start(&[&k]).await;
    let clock = ManualClock::new(start_time());
    let twice = MultiVerifier::builder().issuer(mock.builder(&clock)).issuer(mock.builder(&clock)).build().await;
    assert!(twice.unwrap_err().to_string().contains("configured twice"));
}
