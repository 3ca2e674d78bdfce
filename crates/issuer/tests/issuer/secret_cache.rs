//! The record of verified secrets: a correct secret costs argon2 once; a
//! wrong one never enters the record.

use jwks_issuer::oauth::clients::{SecretCheck, VERIFIED_TTL};
use jwks_jose::clock::Clock;

use crate::support::{Fixture, ODD_ID, ODD_SECRET, SECRET, basic, cc, post_creds};

#[actix_web::test]
async fn a_correct_secret_is_remembered_after_one_request() {
    let f = Fixture::new();
    let now = f.clock.unix_now();
    let clients = f.state.token.clients();
    assert_eq!(clients.check_remembered("svc", SECRET, now), SecretCheck::NeedsArgon2);
    assert_eq!(f.token(&cc(""), Some(&basic("svc", SECRET))).await.status.as_u16(), 200);
    assert_eq!(clients.check_remembered("svc", SECRET, now), SecretCheck::Remembered);
    // The second request, on the fast path, succeeds too, with either method.
    assert_eq!(f.token(&cc(""), Some(&basic("svc", SECRET))).await.status.as_u16(), 200);
    assert_eq!(f.token(&cc(&post_creds("svc", SECRET)), None).await.status.as_u16(), 200);
    // Only for that client and that secret.
    assert_eq!(clients.check_remembered("rsa", SECRET, now), SecretCheck::NeedsArgon2);
    assert_eq!(clients.check_remembered("svc", "wrong", now), SecretCheck::NeedsArgon2);
}

#[actix_web::test]
async fn a_wrong_secret_is_never_remembered() {
    let f = Fixture::new();
    let now = f.clock.unix_now();
    for _ in 0..2 {
        let r = f.token(&cc(""), Some(&basic("svc", "wrong"))).await;
        r.assert_error(401, "invalid_client");
        let r = f.token(&cc(&post_creds(ODD_ID, "wrong")), None).await;
        r.assert_error(401, "invalid_client");
        assert_eq!(f.state.token.clients().check_remembered("svc", "wrong", now), SecretCheck::NeedsArgon2);
        assert_eq!(f.state.token.clients().check_remembered(ODD_ID, "wrong", now), SecretCheck::NeedsArgon2);
        assert_eq!(f.state.token.clients().check_remembered("nobody", "wrong", now), SecretCheck::NeedsArgon2);
    }
    // A remembered secret does not make a wrong one pass.
    assert_eq!(f.token(&cc(""), Some(&basic(ODD_ID, ODD_SECRET))).await.status.as_u16(), 200);
    f.token(&cc(""), Some(&basic(ODD_ID, "wrong"))).await.assert_error(401, "invalid_client");
    assert_eq!(f.state.token.clients().check_remembered(ODD_ID, "wrong", now), SecretCheck::NeedsArgon2);
    assert_eq!(f.state.token.clients().check_remembered(ODD_ID, ODD_SECRET, now), SecretCheck::Remembered);
}

#[actix_web::test]
async fn a_remembered_secret_is_forgotten_after_the_record_ttl() {
    let f = Fixture::new();
    let now = f.clock.unix_now();
    assert_eq!(f.token(&cc(""), Some(&basic("svc", SECRET))).await.status.as_u16(), 200);
    assert_eq!(
        f.state.token.clients().check_remembered("svc", SECRET, now.saturating_add_secs(VERIFIED_TTL - 1)),
        SecretCheck::Remembered
    );
    assert_eq!(
        f.state.token.clients().check_remembered("svc", SECRET, now.saturating_add_secs(VERIFIED_TTL)),
        SecretCheck::NeedsArgon2
    );
    // After it expires, argon2 decides again and the secret still works.
    f.clock.advance(std::time::Duration::from_secs(VERIFIED_TTL + 1));
    assert_eq!(f.token(&cc(""), Some(&basic("svc", SECRET))).await.status.as_u16(), 200);
}

/// Answers never echo a secret, right or wrong.
#[actix_web::test]
async fn no_answer_contains_the_secret_sent() {
    let f = Fixture::new();
    for (body, auth) in [
        (cc(""), Some(basic("svc", "guess-Secret-42"))),
        (cc(&post_creds("svc", "guess-Secret-42")), None),
        (cc(&post_creds("nobody", "guess-Secret-42")), None),
        (format!("grant_type=password&{}", post_creds("svc", SECRET)), None),
        (cc(&format!("scope=nope&{}", post_creds("svc", SECRET))), None),
    ] {
        let r = f.token(&body, auth.as_deref()).await;
        let all = format!("{:?} {}", r.headers, String::from_utf8_lossy(&r.body));
        assert!(!all.contains("guess-Secret-42") && !all.contains(SECRET), "{all}");
    }
}
