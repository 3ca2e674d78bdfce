//! Issue 14 ("Hardening, round two"): each finding of the outside probe on
//! the token path, as a test named after it. Most run against the
//! [`TokenService`] itself, without actix: the rules are framework-free.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
};

use jwks_issuer::oauth::{OAuthError, TokenService, request::RawRequest};
use jwks_jose::clock::{Clock, UnixTime};

use crate::{
    dpop::{TOKEN_URL, es_key, proof},
    support::{Fixture, SECRET, basic, cc, config_text, shared_keyring},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One request straight to the service: no HTTP server, no actix.
async fn call(
    service: &TokenService,
    body: &str,
    authorization: Option<&str>,
    dpop: Option<&str>,
    peer: IpAddr,
    now: UnixTime,
) -> Result<jwks_issuer::oauth::Issued, OAuthError> {
    let auth: Vec<&[u8]> = authorization.map(str::as_bytes).into_iter().collect();
    let dpop: Vec<&[u8]> = dpop.map(str::as_bytes).into_iter().collect();
    let raw = RawRequest {
        content_type: Some("application/x-www-form-urlencoded"),
        body: body.as_bytes(),
        authorization: &auth,
        dpop: &dpop,
        peer: Some(peer),
        now,
    };
    service.handle(&raw).await
}

#[tokio::test]
async fn the_token_service_issues_without_actix() {
    let f = Fixture::new();
    let now = f.clock.unix_now();
    let issued =
        call(&f.state.token, &cc("scope=read"), Some(&basic("svc", SECRET)), None, ip("10.1.0.1"), now).await.unwrap();
    assert_eq!((issued.token_type, issued.scope.as_str(), issued.expires_in), ("Bearer", "read", 900));
    assert_eq!(issued.access_token.split('.').count(), 3);
    let e = call(&f.state.token, &cc(""), Some(&basic("svc", "wrong")), None, ip("10.1.0.1"), now).await.unwrap_err();
    assert_eq!(e.code(), "invalid_client");
}

#[tokio::test]
async fn bad_grant_type_with_valid_dpop_proof_leaves_jti_unused() {
    let f = Fixture::new();
    let now = f.clock.unix_now();
    let key = es_key();
    let p = proof(&key, "POST", TOKEN_URL, now.as_secs(), None);
    let peer = ip("10.1.0.2");
    // Wrong in shape: refused before any proof, secret or id work.
    let e = call(&f.state.token, "grant_type=password", Some(&basic("svc", SECRET)), Some(&p), peer, now)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unsupported_grant_type");
    let e =
        call(&f.state.token, &cc("scope=a\"b"), Some(&basic("svc", SECRET)), Some(&p), peer, now).await.unwrap_err();
    assert_eq!(e.code(), "invalid_scope");
    // Refused after authentication for a rule of its own (a scope the
    // client may not have): the proof is not consumed either.
    let e =
        call(&f.state.token, &cc("scope=nope"), Some(&basic("svc", SECRET)), Some(&p), peer, now).await.unwrap_err();
    assert_eq!(e.code(), "invalid_scope");
    // The same proof then binds a token: its jti was never used.
    let issued = call(&f.state.token, &cc(""), Some(&basic("svc", SECRET)), Some(&p), peer, now).await.unwrap();
    assert_eq!(issued.token_type, "DPoP");
    // And now it is.
    let e = call(&f.state.token, &cc(""), Some(&basic("svc", SECRET)), Some(&p), peer, now).await.unwrap_err();
    assert_eq!(e.code(), "invalid_dpop_proof");
}

#[tokio::test]
async fn throttle_is_checked_and_charged_in_one_step() {
    // Finding 2: 50 simultaneous wrong guesses from one address with a
    // burst of 20 put at most 20 through argon2.
    let f = Fixture::new();
    let now = f.clock.unix_now();
    let peer = ip("10.1.0.3");
    let auth = basic("svc", "wrong");
    let body = cc("");
    let calls = (0..50).map(|_| call(&f.state.token, &body, Some(&auth), None, peer, now));
    let results = futures_util::future::join_all(calls).await;
    let mut checked = results.iter().filter(|r| matches!(r, Err(OAuthError::InvalidClient { .. }))).count();
    let refused =
        results.iter().filter(|r| matches!(r, Err(OAuthError::Throttled { .. } | OAuthError::Busy { .. }))).count();
    assert_eq!(checked + refused, 50);
    // More guesses, one at a time: the total that reached argon2 is the
    // burst, and then every guess is refused before any work.
    for _ in 0..30 {
        if let Err(OAuthError::InvalidClient { .. }) = call(&f.state.token, &body, Some(&auth), None, peer, now).await {
            checked += 1;
        }
    }
    assert_eq!(checked, 20, "guesses that reached argon2");
    let e = call(&f.state.token, &body, Some(&auth), None, peer, now).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (429, "invalid_request"));
}

#[tokio::test]
async fn remembered_client_gets_its_token_after_25_wrong_guesses_from_its_address() {
    // Finding 11: guesses from a shared address cannot lock the real
    // client out once its secret is remembered.
    let f = Fixture::new();
    let now = f.clock.unix_now();
    let peer = ip("10.1.0.4");
    call(&f.state.token, &cc(""), Some(&basic("svc", SECRET)), None, peer, now).await.unwrap();
    for _ in 0..25 {
        let _ = call(&f.state.token, &cc(""), Some(&basic("svc", "guess")), None, peer, now).await.unwrap_err();
    }
    let e = call(&f.state.token, &cc(""), Some(&basic("svc", "guess")), None, peer, now).await.unwrap_err();
    assert_eq!(e.status(), 429, "the guesser is throttled");
    let issued = call(&f.state.token, &cc(""), Some(&basic("svc", SECRET)), None, peer, now).await;
    assert!(issued.is_ok(), "{issued:?}");
}

#[tokio::test]
async fn ipv6_addresses_of_one_prefix_share_a_throttle_bucket() {
    // Finding 11: eight addresses of one /64 get one budget, not eight.
    let f = Fixture::new();
    let now = f.clock.unix_now();
    let mut checked = 0;
    for i in 0..40u16 {
        let peer = IpAddr::from([0x2001, 0xdb8, 0, 7, 0, 0, 0, 1 + i % 8]);
        if let Err(OAuthError::InvalidClient { .. }) =
            call(&f.state.token, &cc(""), Some(&basic("svc", "guess")), None, peer, now).await
        {
            checked += 1;
        }
    }
    assert_eq!(checked, 20, "the (client, /64) burst");
    // Another /64 has its own.
    let other = IpAddr::from([0x2001, 0xdb8, 0, 8, 0, 0, 0, 1]);
    let e = call(&f.state.token, &cc(""), Some(&basic("svc", "guess")), None, other, now).await.unwrap_err();
    assert_eq!(e.code(), "invalid_client");
}

#[tokio::test]
async fn unbounded_concurrent_argon2_is_refused_fast_past_the_bound() {
    // Finding 1, in-process: one address cannot hold more secret checks
    // than there are workers; the excess is a 429 with Retry-After at once.
    let text = config_text(Path::new("/nonexistent-test-keys"), r#"["ES256", "RS256"]"#)
        .replace("[tokens]\n", "[throttle]\nargon2_workers = 2\nburst = 1000\naddress_burst = 1000\n[tokens]\n");
    let f = Fixture::from_text(shared_keyring(), &text);
    let now = f.clock.unix_now();
    let auth = basic("svc", "wrong");
    let body = cc("");
    let calls = (0..30).map(|_| call(&f.state.token, &body, Some(&auth), None, ip("10.1.0.5"), now));
    let results = futures_util::future::join_all(calls).await;
    let in_progress = results.iter().filter(|r| matches!(r, Err(OAuthError::Throttled { .. }))).count();
    assert!(in_progress >= 20, "{in_progress} of 30 refused for checks in progress");
    for r in &results {
        if let Err(e @ OAuthError::Throttled { .. }) = r {
            assert_eq!((e.status(), e.retry_after()), (429, Some(1)));
        }
    }
}

#[actix_web::test]
async fn head_on_jwks_and_discovery_answers_as_get() {
    let f = Fixture::new();
    for path in
        ["/.well-known/jwks.json", "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
    {
        let r = f.call(actix_web::test::TestRequest::default().method(actix_web::http::Method::HEAD).uri(path)).await;
        assert_eq!(r.status.as_u16(), 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with("application/json"), "{path}");
    }
}

#[actix_web::test]
async fn metrics_are_served_only_on_the_admin_listener_when_configured() {
    let text = config_text(Path::new("/nonexistent-test-keys"), r#"["ES256", "RS256"]"#)
        .replace("[keys]\n", "[admin]\nlisten = \"127.0.0.1:0\"\n[keys]\n");
    let f = Fixture::from_text(shared_keyring(), &text);
    assert_eq!(f.get("/metrics").await.status.as_u16(), 404, "client ids stay off the public listener");
    let app =
        actix_web::test::init_service(actix_web::App::new().configure(jwks_issuer::http::admin_routes(&f.state))).await;
    let res =
        actix_web::test::call_service(&app, actix_web::test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    // Without `[admin] listen` it stays where it was.
    assert_eq!(Fixture::new().get("/metrics").await.status.as_u16(), 200);
}

#[actix_web::test]
async fn trusted_proxy_forwarded_for_names_the_client_for_throttling() {
    let text = config_text(Path::new("/nonexistent-test-keys"), r#"["ES256", "RS256"]"#)
        .replace("[keys]\n", "[server]\ntrusted_proxies = [\"10.9.0.0/16\"]\n[keys]\n");
    let f = Fixture::from_text(shared_keyring(), &text);
    let lb = SocketAddr::from(([10, 9, 0, 1], 443));
    let send = |client: &'static str, secret: &'static str| {
        let req = actix_web::test::TestRequest::post()
            .uri("/token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .insert_header(("authorization", basic("svc", secret)))
            .insert_header(("x-forwarded-for", client))
            .peer_addr(lb)
            .set_payload(cc(""));
        f.call(req)
    };
    for _ in 0..20 {
        send("198.51.100.1", "guess").await.assert_error(401, "invalid_client");
    }
    assert_eq!(send("198.51.100.1", "guess").await.status.as_u16(), 429);
    // Another client behind the same balancer is not locked out.
    assert_eq!(send("198.51.100.2", SECRET).await.status.as_u16(), 200);
}
