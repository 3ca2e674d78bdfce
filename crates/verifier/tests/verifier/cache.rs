//! The key cache against an in-process JWKS server that counts requests;
//! time moves only through a manual clock.

use std::time::Duration;

use jwks_verifier::{Error, ManualClock, Verifier, dangerous::DangerousOptions};
use serde_json::json;

use crate::support::*;

#[track_caller]
fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> &'static str {
    r.unwrap_err().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_makes_no_requests_between_refreshes_and_refreshes_with_if_none_match() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    mock.set_max_age(Some(120));
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    assert_eq!(mock.requests(), 1);
    let token = token(&k1);
    for step in 0..10 {
        for _ in 0..100 {
            verifier.verify(&token).await.unwrap();
        }
        if step < 9 {
            clock.advance(Duration::from_secs(10)); // up to 90 s, before the refresh at 96-114 s
        }
    }
    assert_eq!(mock.requests(), 1, "no request between refreshes");
    assert_eq!(verifier.status().fetch_attempts, 1);
    clock.advance(Duration::from_secs(25)); // 115 s: past 95 % of the 120 s lifetime
    until(|| verifier.status().fetch_attempts == 2).await;
    assert_eq!(mock.requests(), 2);
    assert_eq!(mock.not_modified(), 1, "the refresh was conditional and got a 304");
    assert_eq!(mock.if_none_match(), vec![None, Some(mock.etag())]);
    let status = verifier.status();
    assert_eq!(status.keys, 1);
    assert_eq!(status.expires_at, Some(start_time() + Duration::from_secs(115 + 120)));
    verifier.verify(&token).await.unwrap();
    assert_eq!(mock.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_is_clamped_to_min_and_max_ttl() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    mock.set_max_age(Some(5));
    let v = mock.builder(&clock).build().await.unwrap();
    assert_eq!(v.status().expires_at, Some(start_time() + Duration::from_secs(60)));
    mock.set_max_age(Some(10 * 86_400));
    let v = mock.builder(&clock).build().await.unwrap();
    assert_eq!(v.status().expires_at, Some(start_time() + Duration::from_secs(86_400)));
    mock.set_max_age(None);
    let v = mock.builder(&clock).build().await.unwrap();
    assert_eq!(v.status().expires_at, Some(start_time() + Duration::from_secs(300)));
    let v = mock.builder(&clock).min_ttl(Duration::from_secs(600)).build().await.unwrap();
    assert_eq!(v.status().expires_at, Some(start_time() + Duration::from_secs(600)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_new_kid_costs_exactly_one_fetch() {
    let (k1, k2) = (es_key(), es_key());
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    verifier.verify(&token(&k1)).await.unwrap();
    mock.set_keys(&[&k1, &k2]);
    clock.advance(Duration::from_secs(5));
    let claims = verifier.verify(&token(&k2)).await.unwrap();
    assert_eq!(claims.sub.as_deref(), Some("user-1"));
    assert_eq!(mock.requests(), 2);
    for _ in 0..50 {
        verifier.verify(&token(&k2)).await.unwrap();
        verifier.verify(&token(&k1)).await.unwrap();
    }
    assert_eq!(mock.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kid_seen_during_a_refresh_that_predates_it_gets_its_own_fetch() {
    let (k1, k2) = (es_key(), es_key());
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    // Request 2 (a refresh already in flight) still serves the old set;
    // the key appears from request 3 on.
    mock.set_keys_from_request(3, &[&k1, &k2]);
    mock.close_gate();
    let refresh = tokio::spawn({
        let v = verifier.clone();
        async move { v.refresh().await }
    });
    until(|| mock.requests() == 2).await;
    let verify = tokio::spawn({
        let (v, t) = (verifier.clone(), token(&k2));
        async move { v.verify(&t).await }
    });
    for _ in 0..1000 {
        tokio::task::yield_now().await; // let the verification find its miss and queue
    }
    mock.open_gate();
    refresh.await.unwrap().unwrap();
    verify.await.unwrap().unwrap();
    assert_eq!(mock.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kid_flood_costs_at_most_one_fetch_per_cooldown() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    for round in 0..3u64 {
        for i in 0..200 {
            let t = token_with_kid(&k1, &format!("random-{round}-{i}"));
            assert_eq!(code(verifier.verify(&t).await), "unknown_kid");
        }
        assert_eq!(mock.requests(), 2 + round as usize, "round {round}");
        verifier.verify(&token(&k1)).await.unwrap();
        clock.advance(Duration::from_secs(29));
        assert_eq!(code(verifier.verify(&token_with_kid(&k1, "late")).await), "unknown_kid");
        assert_eq!(mock.requests(), 2 + round as usize, "still cooling down");
        clock.advance(Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refetch_cooldown_is_configurable() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).refetch_cooldown(Duration::from_secs(5)).build().await.unwrap();
    assert_eq!(code(verifier.verify(&token_with_kid(&k1, "a")).await), "unknown_kid");
    clock.advance(Duration::from_secs(5));
    assert_eq!(code(verifier.verify(&token_with_kid(&k1, "b")).await), "unknown_kid");
    assert_eq!(mock.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_cost_one_fetch() {
    let (k1, k2) = (es_key(), es_key());
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    mock.set_keys(&[&k1, &k2]);
    mock.close_gate();
    let token = token(&k2);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (v, t) = (verifier.clone(), token.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    until(|| mock.requests() == 2).await;
    mock.open_gate();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(mock.requests(), 2, "one fetch for a thousand misses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_keeps_known_kids_valid_within_max_stale_then_fails() {
    let (k1, k2) = (es_key(), es_key());
    let mock = MockJwks::start(&[&k1]).await;
    mock.set_max_age(Some(60));
    let clock = ManualClock::new(start_time());
    let verifier = mock
        .builder(&clock)
        .leeway(Duration::from_secs(10 * 86_400))
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let (t1, t2) = (token(&k1), token(&k2));
    mock.set_mode(Mode::Status(503));
    clock.advance(Duration::from_secs(61)); // expired: served stale
    verifier.verify(&t1).await.unwrap();
    assert_eq!(code(verifier.verify(&t2).await), "jwks_unavailable", "a kid never seen");
    assert!(verifier.status().last_error.unwrap().contains("503"));
    mock.set_mode(Mode::Hang);
    clock.advance(Duration::from_secs(86_400 - 2)); // 1 s before max_stale runs out
    verifier.verify(&t1).await.unwrap();
    mock.set_mode(Mode::Status(500));
    clock.advance(Duration::from_secs(2)); // max_stale passed
    assert_eq!(code(verifier.verify(&t1).await), "jwks_unavailable");
    assert!(!verifier.status().usable);
    // Recovery: the next successful fetch brings the keys back.
    mock.set_mode(Mode::Serve);
    clock.advance(Duration::from_secs(30));
    verifier.verify(&t1).await.unwrap();
    assert!(verifier.status().usable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_and_known_keys_keep_working() {
    let (k1, k2) = (es_key(), es_key());
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).timeout(Duration::from_millis(200)).build().await.unwrap();
    mock.set_mode(Mode::Hang);
    assert_eq!(code(verifier.verify(&token(&k2)).await), "jwks_unavailable");
    verifier.verify(&token(&k1)).await.unwrap();
    assert!(verifier.status().last_error.unwrap().contains("timed out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_at_startup_is_jwks_unavailable_not_a_build_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let clock = ManualClock::new(start_time());
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_uri(format!("http://{addr}/jwks"))
        .clock(std::sync::Arc::new(clock))
        .build()
        .await
        .unwrap();
    assert_eq!(code(verifier.verify(&token(&es_key())).await), "jwks_unavailable");
    assert_eq!(verifier.status().keys, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_round_trip_keeps_keys_on_304_and_replaces_them_on_200() {
    let (k1, k2) = (es_key(), es_key());
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    let first_etag = mock.etag();
    clock.advance(Duration::from_secs(100));
    verifier.refresh().await.unwrap();
    assert_eq!(mock.not_modified(), 1);
    assert_eq!(verifier.status().validated_at, Some(start_time() + Duration::from_secs(100)));
    verifier.verify(&token(&k1)).await.unwrap();
    // A new key set has a new ETag: 200, keys replaced as a set.
    mock.set_keys(&[&k2]);
    verifier.refresh().await.unwrap();
    assert_eq!(mock.not_modified(), 1);
    assert_eq!(mock.if_none_match(), vec![None, Some(first_etag.clone()), Some(first_etag)]);
    verifier.verify(&token(&k2)).await.unwrap();
    // k1 left the set: it stops verifying (after one refetch for the now-unknown kid).
    assert_eq!(code(verifier.verify(&token(&k1)).await), "unknown_kid");
    assert_eq!(mock.not_modified(), 2, "the unknown-kid refetch was conditional too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_jwks_bodies_are_refused_and_the_last_good_keys_kept() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    let mut big = serde_json::to_vec(&jwk_set(&[&k1])).unwrap();
    big.truncate(big.len() - 2);
    big.extend_from_slice(format!("],\"pad\":\"{}\"}}", "x".repeat(600 * 1024)).as_bytes());
    for content_length in [true, false] {
        mock.set_mode(Mode::Body { body: big.clone(), content_length });
        assert!(verifier.refresh().await.is_err());
        assert!(verifier.status().last_error.unwrap().contains("body over"), "{content_length}");
        verifier.verify(&token(&k1)).await.unwrap();
    }
    // A fresh verifier has nothing to fall back on.
    let fresh = mock.builder(&clock).build().await.unwrap();
    assert_eq!(code(fresh.verify(&token(&k1)).await), "jwks_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_jwks_bodies_are_refused_and_bad_keys_skipped() {
    let (k1, k2) = (es_key(), es_key());
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    let many = json!({"keys": vec![k2.public_jwk(); 101]}).to_string().into_bytes();
    for body in [b"<html>oops</html>".to_vec(), b"{\"keys\":".to_vec(), b"{\"keys\":[]}".to_vec(), many] {
        mock.set_mode(Mode::Body { body, content_length: true });
        assert!(verifier.refresh().await.is_err());
        verifier.verify(&token(&k1)).await.unwrap();
    }
    for status in [404, 500] {
        mock.set_mode(Mode::Status(status));
        assert!(verifier.refresh().await.is_err());
    }
    // A document with bad keys next to a good one: the good one is used.
    let mut small = serde_json::to_value(k2.public_jwk()).unwrap();
    small["kty"] = json!("RSA");
    small["n"] = json!(jwks_jose::b64::encode([0xff; 128]));
    small["e"] = json!("AQAB");
    let doc = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "off-curve"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        small,
        k2.public_jwk(),
    ]});
    mock.set_mode(Mode::Serve);
    mock.set_raw_jwks(doc.to_string());
    verifier.refresh().await.unwrap();
    assert_eq!(verifier.status().keys, 1);
    verifier.verify(&token(&k2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_another_host_are_refused_and_same_host_followed() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let other = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    mock.set_mode(Mode::Redirect(format!("http://localhost:{}/jwks", other.addr.port())));
    let v = mock.builder(&clock).build().await.unwrap();
    assert!(v.status().last_error.unwrap().contains("another host"));
    assert_eq!(other.requests(), 0);
    // Same host (127.0.0.1) but another port is another origin: refused too.
    mock.set_mode(Mode::Redirect(format!("{}/jwks", other.base())));
    assert!(v.refresh().await.is_err());
    assert_eq!(other.requests(), 0);
    let same = MockJwks::start(&[&k1]).await;
    same.set_mode(Mode::Redirect("/jwks-moved".into()));
    let v = same.builder(&clock).build().await.unwrap();
    assert!(v.status().last_error.unwrap().contains("404"), "followed to the same host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_jwks_uri_and_checks_the_issuer() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let issuer = mock.base();
    mock.set_metadata(json!({"issuer": issuer, "jwks_uri": mock.url(), "token_endpoint": format!("{issuer}/token")}));
    let verifier = Verifier::builder()
        .issuer(issuer.clone())
        .audience(AUD)
        .clock(std::sync::Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    let mut c = claims();
    c["iss"] = json!(issuer);
    verifier.verify(&sign(&k1, &header(&k1), &c)).await.unwrap();
    assert_eq!(mock.requests(), 1);

    mock.set_metadata(json!({"issuer": "https://impostor.example", "jwks_uri": mock.url()}));
    let v = Verifier::builder().issuer(issuer).audience(AUD).clock(std::sync::Arc::new(clock)).build().await.unwrap();
    assert!(v.status().last_error.unwrap().contains("does not match"));
    assert_eq!(code(v.verify(&sign(&k1, &header(&k1), &c)).await), "jwks_unavailable");
}

#[tokio::test]
async fn plain_http_is_refused_except_for_loopback_or_allow_http() {
    let err = Verifier::builder().issuer(ISS).audience(AUD).jwks_uri("http://keys.example/jwks").build().await;
    assert_eq!(code(err), "invalid_config");
    let err = Verifier::builder().issuer("http://issuer.example").audience(AUD).build().await;
    assert_eq!(code(err), "invalid_config");
    let err = Verifier::builder().issuer(ISS).audience(AUD).jwks_uri("file:///etc/jwks").allow_http().build().await;
    assert_eq!(code(err), "invalid_config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_clones_share_one_cache() {
    let (k1, k2) = (es_key(), es_key());
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    let verifier = mock.builder(&clock).build().await.unwrap();
    let clone = verifier.clone();
    mock.set_keys(&[&k1, &k2]);
    clone.verify(&token(&k2)).await.unwrap();
    verifier.verify(&token(&k2)).await.unwrap();
    assert_eq!(mock.requests(), 2);
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(clone.verify(&token(&k1))).unwrap();
        });
    });
}

// ---------------------------------------------------------------------
// Caches in front of the issuer (RFC 9111 §4.2.3), jitter, snapshots

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_is_subtracted_after_the_ttl_clamp_never_below_zero() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    mock.set_max_age(Some(600));
    mock.set_age(Some(100));
    let v = mock.builder(&clock).build().await.unwrap();
    assert_eq!(v.status().expires_at, Some(start_time() + Duration::from_secs(500)), "max-age - Age");
    // max-age 5 is clamped to min_ttl 60 first, then Age 20 is subtracted.
    mock.set_max_age(Some(5));
    mock.set_age(Some(20));
    let v = mock.builder(&clock).build().await.unwrap();
    assert_eq!(v.status().expires_at, Some(start_time() + Duration::from_secs(40)));
    // max-age 10 days clamped to 1 day, less an Age of 2 days: zero, not negative.
    mock.set_max_age(Some(10 * 86_400));
    mock.set_age(Some(2 * 86_400));
    let v = mock.builder(&clock).build().await.unwrap();
    assert_eq!(v.status().expires_at, Some(start_time()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_already_past_its_freshness_is_stale_and_retried_after_the_cooldown() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    mock.set_max_age(Some(300));
    mock.set_age(Some(400));
    let v = mock.builder(&clock).refetch_cooldown(Duration::from_secs(30)).build().await.unwrap();
    let status = v.status();
    assert_eq!(status.expires_at, Some(start_time()), "stale on arrival");
    assert_eq!(status.refresh_at, Some(start_time() + Duration::from_secs(30)), "retried after the cooldown");
    v.verify(&token(&k1)).await.expect("stale keys still verify (within max_stale)");
    clock.advance(Duration::from_secs(29));
    tokio::task::yield_now().await;
    assert_eq!(mock.requests(), 1, "no refetch before the cooldown");
    mock.set_age(None);
    clock.advance(Duration::from_secs(1));
    until(|| v.status().fetch_attempts == 2).await;
    assert_eq!(mock.requests(), 2);
    let status = v.status();
    assert_eq!(status.expires_at, Some(start_time() + Duration::from_secs(30 + 300)), "a fresh copy this time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_point_is_jittered_uniformly_between_80_and_95_percent() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let clock = ManualClock::new(start_time());
    mock.set_max_age(Some(1000));
    for (unit, at) in [(0.0, 800), (0.5, 875), (0.999_999, 949), (1.0, 950), (f64::NAN, 875), (7.0, 950)] {
        let v = mock.builder(&clock).refresh_jitter(move || unit).build().await.unwrap();
        let refresh = v.status().refresh_at.unwrap().duration_since(start_time()).unwrap().as_secs();
        assert_eq!(refresh, at, "unit {unit}");
    }
    // The default source spreads a fleet over the window.
    let mut points = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let v = mock.builder(&clock).build().await.unwrap();
        let refresh = v.status().refresh_at.unwrap().duration_since(start_time()).unwrap().as_millis();
        assert!((800_000..=950_000).contains(&refresh), "{refresh}");
        points.insert(refresh);
    }
    assert!(points.len() > 1, "eight verifiers did not all pick the same point");
    // With Age, the fraction applies to the freshness left.
    mock.set_age(Some(600));
    let v = mock.builder(&clock).refresh_jitter(|| 0.0).build().await.unwrap();
    assert_eq!(v.status().refresh_at, Some(start_time() + Duration::from_secs(320)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_snapshot_starts_a_verifier_without_a_fetch_while_fresh() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    mock.set_max_age(Some(600));
    let clock = ManualClock::new(start_time());
    let first = mock.builder(&clock).build().await.unwrap();
    let snapshot = first.export_snapshot().unwrap();
    assert_eq!(snapshot.validated_at, NOW);
    assert_eq!(snapshot.ttl, 600);
    let json = serde_json::to_string(&snapshot).unwrap();
    assert!(!json.contains("\"d\""), "public keys only");
    let snapshot: jwks_verifier::CacheSnapshot = serde_json::from_str(&json).unwrap();

    // Fresh: no first fetch, and tokens verify from the snapshot.
    let other = MockJwks::start(&[&k1]).await;
    clock.advance(Duration::from_secs(100));
    let cold = other.builder(&clock).snapshot(snapshot.clone()).build().await.unwrap();
    assert_eq!(other.requests(), 0, "no fetch while the snapshot is fresh");
    cold.verify(&token_at(&k1, NOW + 100)).await.unwrap();
    assert_eq!(cold.status().expires_at, Some(start_time() + Duration::from_secs(600)), "same expiry");

    // Stale, the endpoint failing: fetched, and served stale within max_stale.
    drop(cold); // its own refresh would count too
    clock.advance(Duration::from_secs(600));
    other.set_mode(Mode::Status(500));
    let stale = other.builder(&clock).snapshot(snapshot.clone()).build().await.unwrap();
    assert_eq!(other.requests(), 1, "a stale snapshot is refetched");
    stale.verify(&token_at(&k1, NOW + 700)).await.unwrap();

    // Past max_stale: ignored.
    let old =
        other.builder(&clock).max_stale(Duration::from_secs(10)).snapshot(snapshot.clone()).build().await.unwrap();
    assert_eq!(code(old.verify(&token_at(&k1, NOW + 700)).await), "jwks_unavailable");

    // Another issuer's snapshot: ignored.
    let mut foreign = snapshot;
    foreign.issuer = "https://someone-else.example".into();
    let v = other.builder(&clock).snapshot(foreign).build().await.unwrap();
    assert_eq!(code(v.verify(&token_at(&k1, NOW + 700)).await), "jwks_unavailable");
}
