//! `GET /.well-known/jwks.json`: public members only, caching headers,
//! conditional requests, CORS, and a body built once per key-set change.

use std::sync::Arc;

use actix_web::test::TestRequest;
use serde_json::Value;

use crate::support::{Fixture, JWKS_MAX_AGE};

const PATH: &str = "/.well-known/jwks.json";

async fn conditional(f: &Fixture, if_none_match: &str) -> crate::support::Reply {
    f.call(TestRequest::get().uri(PATH).insert_header(("if-none-match", if_none_match))).await
}

#[actix_web::test]
async fn jwks_lists_public_keys_with_kty_kid_use_alg_and_no_private_member() {
    let f = Fixture::new();
    let r = f.get(PATH).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let doc = r.json();
    assert_eq!(doc.as_object().unwrap().len(), 1, "only `keys`: {doc}");
    let keys = doc["keys"].as_array().unwrap();
    let mut algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "RS256"]);
    for k in keys {
        assert_eq!(k["use"], "sig", "{k}");
        assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
        let expect: &[&str] = match k["kty"].as_str().unwrap() {
            "EC" => {
                assert_eq!(k["crv"], "P-256");
                assert_eq!(k["alg"], "ES256");
                &["kty", "kid", "use", "alg", "crv", "x", "y"]
            }
            "RSA" => {
                assert_eq!(k["alg"], "RS256");
                &["kty", "kid", "use", "alg", "n", "e"]
            }
            other => panic!("kty {other}"),
        };
        for m in expect {
            assert!(k[*m].is_string(), "member {m} of {k}");
        }
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(k.get(private).is_none(), "private member {private} in {k}");
        }
    }
}

/// RFC 7638 §3: the kid is the base64url SHA-256 of the required members
/// in lexicographic order, without whitespace.
#[actix_web::test]
async fn each_kid_is_the_rfc7638_thumbprint_of_its_key() {
    let f = Fixture::new();
    let doc = f.get(PATH).await.json();
    for k in doc["keys"].as_array().unwrap() {
        let s = |m: &str| k[m].as_str().unwrap().to_string();
        let canonical = match s("kty").as_str() {
            "EC" => format!(r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#, s("crv"), s("x"), s("y")),
            _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n")),
        };
        let expected = jwks_jose::b64::encode(jwks_jose::crypto::sha256(canonical.as_bytes()));
        assert_eq!(s("kid"), expected);
    }
}

#[actix_web::test]
async fn jwks_is_public_cacheable_for_jwks_max_age_with_cors() {
    let f = Fixture::new();
    let r = f.get(PATH).await;
    assert_eq!(r.header("cache-control"), Some(format!("public, max-age={JWKS_MAX_AGE}").as_str()));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

#[actix_web::test]
async fn jwks_has_a_strong_etag() {
    let f = Fixture::new();
    let etag = f.get(PATH).await.header("etag").unwrap().to_string();
    assert!(!etag.starts_with("W/"), "{etag}");
    assert!(etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(f.get(PATH).await.header("etag"), Some(etag.as_str()));
}

#[actix_web::test]
async fn a_matching_if_none_match_is_304_and_another_is_200() {
    let f = Fixture::new();
    let full = f.get(PATH).await;
    let etag = full.header("etag").unwrap().to_string();
    for inm in [etag.clone(), format!("\"other\", {etag}"), format!("{etag},\"x\""), "*".into(), format!("W/{etag}")] {
        let r = conditional(&f, &inm).await;
        assert_eq!(r.status.as_u16(), 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("cache-control"), full.header("cache-control"));
    }
    for inm in ["\"other\"", "\"\"", "W/\"other\"", "garbage"] {
        let r = conditional(&f, inm).await;
        assert_eq!(r.status.as_u16(), 200, "If-None-Match: {inm}");
        assert_eq!(r.body, full.body);
    }
}

#[actix_web::test]
async fn the_jwks_body_is_built_once_not_per_request() {
    let f = Fixture::new();
    let before = f.state.keyring.snapshot();
    let a = f.get(PATH).await;
    let b = f.get(PATH).await;
    let after = f.state.keyring.snapshot();
    assert!(Arc::ptr_eq(&before, &after), "the snapshot is not rebuilt per request");
    assert_eq!(a.body, b.body);
    assert_eq!(a.header("etag"), b.header("etag"));
    // The bytes served are the snapshot's own `Bytes`, not a copy.
    assert_eq!(a.body.as_ptr(), before.jwks.body.as_ptr());
    assert_eq!(b.body.as_ptr(), before.jwks.body.as_ptr());
    assert_eq!(a.header("etag"), Some(before.jwks.etag.as_str()));
    let parsed: Value = serde_json::from_slice(&before.jwks.body).unwrap();
    assert_eq!(parsed, a.json());
}

#[actix_web::test]
async fn a_key_set_change_rebuilds_the_body_and_the_etag_once() {
    // A ring of its own over a folder that stays: this test rotates.
    let dir = tempfile::tempdir().unwrap();
    let ring = crate::support::open_keyring_in(dir.path(), r#"["ES256"]"#);
    let f = Fixture::with(ring.clone(), r#"["ES256"]"#);
    let old = f.get(PATH).await;
    let old_etag = old.header("etag").unwrap().to_string();
    let policy = f.state.config.key_policy();
    let now = f.state.keyring.snapshot().built_at;
    jwks_issuer::keys::ops::rotate(
        ring.store(),
        &ring.store().lock(jwks_issuer::keys::LOCK_TIMEOUT).unwrap(),
        &policy,
        jwks_jose::Algorithm::ES256,
        2048,
        // Published at the second after the rotation's clock reads: now.
        &jwks_jose::clock::ManualClock::at(now.saturating_sub_secs(1)),
        false,
    )
    .unwrap();
    ring.reload().unwrap();
    let snapshot = ring.snapshot();
    let new = f.get(PATH).await;
    assert_eq!(new.json()["keys"].as_array().unwrap().len(), 2, "the successor is published ahead");
    assert_ne!(new.header("etag"), Some(old_etag.as_str()));
    assert_eq!(new.body.as_ptr(), snapshot.jwks.body.as_ptr());
    // The old ETag no longer matches; the new one does.
    assert_eq!(conditional(&f, &old_etag).await.status.as_u16(), 200);
    assert_eq!(conditional(&f, new.header("etag").unwrap()).await.status.as_u16(), 304);
    assert!(Arc::ptr_eq(&snapshot, &ring.snapshot()));
}

/// Keys live one file per key, mode 0600, in a 0700 folder, named by kid.
#[test]
fn key_files_are_0600_in_a_0700_folder_one_per_kid() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let ring = crate::support::open_keyring_in(&keys, r#"["ES256"]"#);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys), 0o700);
    let kid = ring.snapshot().signer(jwks_jose::Algorithm::ES256).unwrap().meta.kid.clone();
    let files: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].file_name().unwrap().to_string_lossy().contains(&kid));
    assert_eq!(mode(&files[0]), 0o600);
}
