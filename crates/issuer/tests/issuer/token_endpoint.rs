//! `POST /token`: client authentication, parameters, scope, target, body
//! limits and methods (RFC 6749 §2.3.1, §3.2, §4.4, §5.2; RFC 8707).

use actix_web::{
    dev::Payload,
    http::{Method, header::HeaderValue},
    test::TestRequest,
    web::Bytes,
};
use futures_util::stream;

use crate::support::{
    API_AUD, DEFAULT_AUD, Fixture, ODD_ID, ODD_SECRET, OTHER_AUD, Reply, SECRET, basic, basic_raw, cc, post_creds,
};

fn svc() -> String {
    basic("svc", SECRET)
}

/// The claims of the access token in a 200 answer (no verification here:
/// `token_claims` verifies against the JWKS).
fn claims(r: &Reply) -> serde_json::Value {
    use base64::Engine;
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[track_caller]
fn assert_token_response(r: &Reply) {
    assert_eq!(r.status.as_u16(), 200, "body {:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let j = r.json();
    assert!(j["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{j}");
    assert_eq!(j["token_type"], "Bearer");
    assert!(j["expires_in"].as_u64().is_some(), "{j}");
    assert!(j["scope"].is_string(), "{j}");
}

// ---- success -------------------------------------------------------------

#[actix_web::test]
async fn client_secret_basic_issues_a_bearer_token_with_no_store_headers() {
    let f = Fixture::new();
    let r = f.token(&cc(""), Some(&svc())).await;
    assert_token_response(&r);
    assert_eq!(r.json()["expires_in"], 900);
    assert_eq!(r.json()["scope"], "read write admin");
}

#[actix_web::test]
async fn client_secret_post_issues_a_bearer_token_with_no_store_headers() {
    let f = Fixture::new();
    let r = f.token(&cc(&post_creds("svc", SECRET)), None).await;
    assert_token_response(&r);
    assert_eq!(claims(&r)["client_id"], "svc");
}

#[actix_web::test]
async fn basic_id_and_secret_are_form_urldecoded() {
    let f = Fixture::new();
    let r = f.token(&cc(""), Some(&basic(ODD_ID, ODD_SECRET))).await;
    assert_token_response(&r);
    assert_eq!(claims(&r)["sub"], ODD_ID);
    // The same credentials base64-encoded without form-encoding do not
    // authenticate: `%` followed by nothing is not a valid escape.
    let raw = f.token(&cc(""), Some(&basic_raw(&format!("{ODD_ID}:{ODD_SECRET}")))).await;
    raw.assert_error(401, "invalid_client");
}

#[actix_web::test]
async fn client_secret_post_id_and_secret_are_form_urldecoded() {
    let f = Fixture::new();
    let r = f.token(&cc(&post_creds(ODD_ID, ODD_SECRET)), None).await;
    assert_token_response(&r);
    assert_eq!(claims(&r)["client_id"], ODD_ID);
}

#[actix_web::test]
async fn basic_scheme_name_is_case_insensitive() {
    let f = Fixture::new();
    let lower = svc().replacen("Basic", "basic", 1);
    assert_token_response(&f.token(&cc(""), Some(&lower)).await);
}

#[actix_web::test]
async fn client_id_in_the_body_matching_basic_is_accepted_and_a_different_one_is_invalid_request() {
    let f = Fixture::new();
    assert_token_response(&f.token(&cc("client_id=svc"), Some(&svc())).await);
    f.token(&cc("client_id=rsa"), Some(&svc())).await.assert_error(400, "invalid_request");
}

// ---- scope ---------------------------------------------------------------

#[actix_web::test]
async fn a_subset_of_the_client_scopes_is_granted() {
    let f = Fixture::new();
    let r = f.token(&cc("scope=read+admin"), Some(&svc())).await;
    assert_token_response(&r);
    assert_eq!(r.json()["scope"], "read admin");
    assert_eq!(claims(&r)["scope"], "read admin");
}

#[actix_web::test]
async fn absent_scope_grants_every_client_scope() {
    let f = Fixture::new();
    let r = f.token(&cc(""), Some(&svc())).await;
    assert_eq!(r.json()["scope"], "read write admin");
    assert_eq!(claims(&r)["scope"], "read write admin");
    // An empty value counts as absent (RFC 6749 §3.1).
    let r = f.token(&cc("scope="), Some(&svc())).await;
    assert_eq!(r.json()["scope"], "read write admin");
}

#[actix_web::test]
async fn a_scope_outside_the_client_scopes_is_invalid_scope() {
    let f = Fixture::new();
    f.token(&cc("scope=delete"), Some(&svc())).await.assert_error(400, "invalid_scope");
    f.token(&cc("scope=read+delete"), Some(&svc())).await.assert_error(400, "invalid_scope");
    // `read` of client `svc` is not `read` of another client.
    f.token(&cc("scope=write"), Some(&basic(ODD_ID, ODD_SECRET))).await.assert_error(400, "invalid_scope");
}

#[actix_web::test]
async fn a_scope_with_control_characters_is_invalid_scope() {
    let f = Fixture::new();
    for bad in ["read%00", "read%09write", "read%0Awrite", "read%0D", "%7Fread", "read%22", "r%5Cead"] {
        let r = f.token(&cc(&format!("scope={bad}")), Some(&svc())).await;
        r.assert_error(400, "invalid_scope");
        assert!(!r.json()["error_description"].as_str().unwrap().chars().any(char::is_control), "{bad}");
    }
}

#[actix_web::test]
async fn a_100_kb_scope_is_a_4xx_never_a_5xx() {
    let f = Fixture::new();
    let r = f.token(&cc(&format!("scope={}", "read+".repeat(20_000))), Some(&svc())).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(r.error(), "invalid_request");
    // Within the body limit, a scope far longer than any client's is
    // refused as a scope.
    let r = f.token(&cc(&format!("scope={}", "read+".repeat(2_000))), Some(&svc())).await;
    r.assert_error(400, "invalid_scope");
}

// ---- resource / audience (RFC 8707) ----------------------------------------

#[actix_web::test]
async fn an_allowed_resource_or_audience_picks_the_aud() {
    let f = Fixture::new();
    let enc = crate::support::form_encode(OTHER_AUD);
    let r = f.token(&cc(&format!("resource={enc}")), Some(&svc())).await;
    assert_token_response(&r);
    assert_eq!(claims(&r)["aud"], OTHER_AUD);
    let r = f.token(&cc(&format!("audience={enc}")), Some(&svc())).await;
    assert_eq!(claims(&r)["aud"], OTHER_AUD);
    let r = f.token(&cc(&format!("resource={enc}&audience={enc}")), Some(&svc())).await;
    assert_eq!(claims(&r)["aud"], OTHER_AUD);
}

#[actix_web::test]
async fn a_resource_or_audience_the_client_may_not_have_is_invalid_target() {
    let f = Fixture::new();
    for p in ["resource=https%3A%2F%2Fevil.example.test", "audience=https%3A%2F%2Fevil.example.test"] {
        f.token(&cc(p), Some(&svc())).await.assert_error(400, "invalid_target");
    }
    // A client without audiences may have only the default one.
    let odd = basic(ODD_ID, ODD_SECRET);
    f.token(&cc("resource=https%3A%2F%2Fapi.example.test"), Some(&odd)).await.assert_error(400, "invalid_target");
    let r = f.token(&cc(&format!("resource={}", crate::support::form_encode(DEFAULT_AUD))), Some(&odd)).await;
    assert_eq!(claims(&r)["aud"], DEFAULT_AUD);
}

#[actix_web::test]
async fn resource_and_audience_naming_different_targets_is_invalid_target() {
    let f = Fixture::new();
    let body = cc(&format!(
        "resource={}&audience={}",
        crate::support::form_encode(API_AUD),
        crate::support::form_encode(OTHER_AUD)
    ));
    f.token(&body, Some(&svc())).await.assert_error(400, "invalid_target");
}

#[actix_web::test]
async fn absent_target_is_the_client_first_audience_or_tokens_audience() {
    let f = Fixture::new();
    assert_eq!(claims(&f.token(&cc(""), Some(&svc())).await)["aud"], API_AUD);
    assert_eq!(claims(&f.token(&cc(""), Some(&basic(ODD_ID, ODD_SECRET))).await)["aud"], DEFAULT_AUD);
}

// ---- client authentication -----------------------------------------------

#[actix_web::test]
async fn a_wrong_secret_is_invalid_client_401_with_either_method() {
    let f = Fixture::new();
    f.token(&cc(""), Some(&basic("svc", "wrong"))).await.assert_error(401, "invalid_client");
    f.token(&cc(&post_creds("svc", "wrong")), None).await.assert_error(401, "invalid_client");
    // Another client's secret is a wrong secret.
    f.token(&cc(""), Some(&basic("svc", ODD_SECRET))).await.assert_error(401, "invalid_client");
    // So is an empty one, in the header.
    f.token(&cc(""), Some(&basic_raw("svc:"))).await.assert_error(401, "invalid_client");
}

#[actix_web::test]
async fn an_unknown_client_and_a_wrong_secret_get_byte_identical_answers() {
    let f = Fixture::new();
    let unknown = f.token(&cc(""), Some(&basic("nobody", SECRET))).await;
    let wrong = f.token(&cc(""), Some(&basic("svc", "wrong"))).await;
    unknown.assert_error(401, "invalid_client");
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(unknown.headers.len(), wrong.headers.len());
    for (name, value) in unknown.headers.iter() {
        assert_eq!(wrong.headers.get(name), Some(value), "{name}");
    }
    let unknown = f.token(&cc(&post_creds("nobody", SECRET)), None).await;
    let wrong = f.token(&cc(&post_creds("svc", "wrong")), None).await;
    unknown.assert_error(401, "invalid_client");
    assert_eq!(unknown.body, wrong.body);
    // A very long unknown id answers the same too.
    let long = f.token(&cc(""), Some(&basic(&"x".repeat(300), SECRET))).await;
    assert_eq!(long.body, f.token(&cc(""), Some(&basic("svc", "wrong"))).await.body);
}

#[actix_web::test]
async fn www_authenticate_basic_is_sent_when_basic_was_tried() {
    let f = Fixture::new();
    for auth in [basic("svc", "wrong"), basic("nobody", "x"), "Basic !!!".into(), "Bearer abc".into()] {
        let r = f.token(&cc(""), Some(&auth)).await;
        r.assert_error(401, "invalid_client");
        let challenge = r.header("www-authenticate").unwrap_or_else(|| panic!("no challenge for {auth}"));
        assert!(challenge.starts_with("Basic realm=\""), "{challenge}");
    }
}

/// RFC 7235 §3.1: every 401 carries a challenge, whatever was tried.
#[actix_web::test]
async fn www_authenticate_is_sent_on_every_401() {
    let f = Fixture::new();
    let r = f.token(&cc(&post_creds("svc", "wrong")), None).await;
    r.assert_error(401, "invalid_client");
    assert!(r.header("www-authenticate").is_some_and(|c| c.starts_with("Basic realm=\"")));
}

#[actix_web::test]
async fn basic_and_client_secret_post_at_once_is_invalid_request() {
    let f = Fixture::new();
    let r = f.token(&cc(&post_creds("svc", SECRET)), Some(&svc())).await;
    r.assert_error(400, "invalid_request");
    let r = f.token(&cc("client_secret=x"), Some(&svc())).await;
    r.assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn no_credentials_is_invalid_client_401() {
    let f = Fixture::new();
    let r = f.token(&cc(""), None).await;
    r.assert_error(401, "invalid_client");
    assert!(r.header("www-authenticate").is_some());
    // A client_id alone is no authentication (no public clients).
    f.token(&cc("client_id=svc"), None).await.assert_error(401, "invalid_client");
}

#[actix_web::test]
async fn malformed_basic_headers_are_401_never_5xx() {
    let f = Fixture::new();
    let bad: Vec<Vec<u8>> = vec![
        b"Basic".to_vec(),
        b"Basic ".to_vec(),
        b"Basic !!!".to_vec(),
        b"Basic c3Zj".to_vec(), // "svc", no colon
        basic_raw(":secret").into_bytes(),
        basic_raw("%zz:secret").into_bytes(),
        basic_raw("svc:%").into_bytes(),
        format!("Basic {}", base64_std(b"\xff\xfe:x")).into_bytes(),
        b"Basic \xff\xfe".to_vec(),
        b"Digest username=svc".to_vec(),
        b"   ".to_vec(),
    ];
    for value in bad {
        let req = TestRequest::post()
            .uri("/token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .insert_header(("authorization", HeaderValue::from_bytes(&value).unwrap()))
            .set_payload(cc(""));
        let r = f.call(req).await;
        assert_eq!(r.status.as_u16(), 401, "{:?}: {:?}", String::from_utf8_lossy(&value), r.body);
        assert_eq!(r.error(), "invalid_client");
    }
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[actix_web::test]
async fn a_huge_basic_header_is_401_never_5xx() {
    let f = Fixture::new();
    for len in [5_000, 100_000] {
        let r = f.token(&cc(""), Some(&format!("Basic {}", "QUFB".repeat(len / 4)))).await;
        r.assert_error(401, "invalid_client");
        assert!(r.header("www-authenticate").is_some());
    }
    // Valid base64 of a huge id and secret.
    let r = f.token(&cc(""), Some(&basic(&"i".repeat(3_000), &"s".repeat(100)))).await;
    r.assert_error(401, "invalid_client");
    let r = f.token(&cc(&post_creds("svc", &"s".repeat(10_000))), None).await;
    r.assert_error(401, "invalid_client");
}

// ---- grant type and request shape -----------------------------------------

#[actix_web::test]
async fn other_grant_types_are_unsupported_grant_type_400() {
    let f = Fixture::new();
    for g in
        ["authorization_code", "password", "refresh_token", "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"]
    {
        f.token(&format!("grant_type={g}"), Some(&svc())).await.assert_error(400, "unsupported_grant_type");
    }
}

#[actix_web::test]
async fn a_missing_grant_type_is_invalid_request() {
    let f = Fixture::new();
    f.token("scope=read", Some(&svc())).await.assert_error(400, "invalid_request");
    f.token("", Some(&svc())).await.assert_error(400, "invalid_request");
    f.token("grant_type=", Some(&svc())).await.assert_error(400, "invalid_request");
}

/// RFC 8707 §2 allows several `resource`s; these tokens carry one audience.
#[actix_web::test]
async fn several_resources_are_invalid_target() {
    let f = Fixture::new();
    let r = f.token(&cc("resource=https%3A%2F%2Fapi.example.test&resource=b"), Some(&svc())).await;
    r.assert_error(400, "invalid_target");
}

#[actix_web::test]
async fn a_repeated_parameter_is_invalid_request() {
    let f = Fixture::new();
    for body in [
        "grant_type=client_credentials&grant_type=client_credentials".to_string(),
        cc("scope=read&scope=write"),
        cc("audience=a&audience=a"),
        format!("{}&client_id=svc", cc(&post_creds("svc", SECRET))),
        format!("{}&client_secret=x", cc(&post_creds("svc", SECRET))),
    ] {
        let r = f.token(&body, Some(&svc())).await;
        // Without Basic too, where the body carries the credentials.
        let r2 = f.token(&body, None).await;
        r.assert_error(400, "invalid_request");
        r2.assert_error(400, "invalid_request");
    }
}

#[actix_web::test]
async fn a_wrong_or_missing_content_type_is_invalid_request() {
    let f = Fixture::new();
    for ct in [
        Some("application/json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("application/x-www-form-urlencodedx"),
        None,
    ] {
        let mut req = TestRequest::post().uri("/token").insert_header(("authorization", svc())).set_payload(cc(""));
        if let Some(ct) = ct {
            req = req.insert_header(("content-type", ct));
        }
        f.call(req).await.assert_error(400, "invalid_request");
    }
}

#[actix_web::test]
async fn a_form_content_type_with_parameters_or_other_case_is_accepted() {
    let f = Fixture::new();
    for ct in ["application/x-www-form-urlencoded; charset=UTF-8", "Application/X-WWW-Form-URLEncoded"] {
        let req = TestRequest::post()
            .uri("/token")
            .insert_header(("content-type", ct))
            .insert_header(("authorization", svc()))
            .set_payload(cc(""));
        assert_token_response(&f.call(req).await);
    }
}

#[actix_web::test]
async fn invalid_utf8_or_bad_percent_encoding_is_invalid_request() {
    let f = Fixture::new();
    let bodies: [&[u8]; 7] = [
        b"grant_type=client_credentials&scope=%ff",
        b"grant_type=client_credentials&scope=\xff\xfe",
        b"grant_type=client_credentials&scope=%4",
        b"grant_type=client_credentials&scope=%zz",
        b"grant_type=client_credentials&scope=%",
        b"grant_type=client_credentials&sc%ffope=x",
        b"grant_type=client%C3%28credentials",
    ];
    for body in bodies {
        let req = TestRequest::post()
            .uri("/token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .insert_header(("authorization", svc()))
            .set_payload(Bytes::from_static(body));
        let r = f.call(req).await;
        r.assert_error(400, "invalid_request");
    }
}

#[actix_web::test]
async fn a_body_of_exactly_16_kib_is_accepted() {
    let f = Fixture::new();
    let base = cc("pad=");
    let body = format!("{base}{}", "x".repeat(16 * 1024 - base.len()));
    assert_eq!(body.len(), 16 * 1024);
    assert_token_response(&f.token(&body, Some(&svc())).await);
}

#[actix_web::test]
async fn a_body_over_16_kib_with_content_length_is_413_invalid_request() {
    let f = Fixture::new();
    let body = format!("{}&pad={}", cc(""), "x".repeat(16 * 1024));
    let r = f.token(&body, Some(&svc())).await;
    r.assert_error(413, "invalid_request");
    // A declared length over the limit is refused before reading.
    let req = TestRequest::post()
        .uri("/token")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .insert_header(("authorization", svc()))
        .set_payload(cc(""))
        .insert_header(("content-length", "1000000000000"));
    f.call(req).await.assert_error(413, "invalid_request");
}

#[actix_web::test]
async fn a_chunked_body_over_16_kib_is_413_invalid_request() {
    let f = Fixture::new();
    let mut chunks = vec![Ok::<_, actix_web::error::PayloadError>(Bytes::from(cc("pad=")))];
    chunks.extend((0..40).map(|_| Ok(Bytes::from(vec![b'x'; 1024]))));
    let payload: Payload =
        Payload::from(Box::pin(stream::iter(chunks)) as std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>>);
    let req = TestRequest::post()
        .uri("/token")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .insert_header(("authorization", svc()));
    let r = f.call_streamed(req, Some(payload)).await;
    r.assert_error(413, "invalid_request");
    // A small chunked body is fine.
    let chunks = vec![
        Ok::<_, actix_web::error::PayloadError>(Bytes::from("grant_type=client_")),
        Ok(Bytes::from("credentials")),
    ];
    let payload: Payload =
        Payload::from(Box::pin(stream::iter(chunks)) as std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>>);
    let req = TestRequest::post()
        .uri("/token")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .insert_header(("authorization", svc()));
    assert_token_response(&f.call_streamed(req, Some(payload)).await);
}

#[actix_web::test]
async fn other_methods_on_token_are_405_with_allow_post() {
    let f = Fixture::new();
    for m in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS, Method::HEAD] {
        let r = f.call(TestRequest::default().method(m.clone()).uri("/token")).await;
        assert_eq!(r.status.as_u16(), 405, "{m}");
        assert_eq!(r.header("allow"), Some("POST"), "{m}");
    }
    let r = f.call(TestRequest::default().method(Method::from_bytes(b"BREW").unwrap()).uri("/token")).await;
    assert!(matches!(r.status.as_u16(), 405 | 501), "{}", r.status);
}

/// No input produces a 5xx or a panic: a deterministic spray of odd bodies
/// with valid credentials (so each one reaches every later check).
#[actix_web::test]
async fn odd_bodies_never_produce_a_5xx() {
    let f = Fixture::new();
    let alphabet = b"=&%+ abcdefgrant_typescopeclient_credentialsresourceaudience0123456789ABCDEF\xff\x00\r\n";
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut bodies: Vec<Vec<u8>> =
        ["=", "&&&", "%", "grant_type", "grant_type=%", "=client_credentials", "grant_type&scope"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
    for _ in 0..150 {
        let len = (next() % 80) as usize;
        let mut body = b"grant_type=client_credentials&".to_vec();
        body.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));
        bodies.push(body);
    }
    for body in bodies {
        for auth in [Some(svc()), None] {
            let mut req = TestRequest::post()
                .uri("/token")
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(body.clone());
            if let Some(a) = &auth {
                req = req.insert_header(("authorization", a.as_str()));
            }
            let r = f.call(req).await;
            assert!(!r.status.is_server_error(), "{} for {:?}", r.status, String::from_utf8_lossy(&body));
            if r.status.as_u16() != 200 {
                assert!(r.json()["error"].is_string());
            }
        }
    }
}

/// RFC 6749 §5.2: `error_description` MUST NOT include characters outside
/// %x20-21 / %x23-5B / %x5D-7E, even when it quotes what the client sent.
#[actix_web::test]
async fn error_description_uses_only_rfc6749_characters() {
    let f = Fixture::new();
    let allowed = |c: char| matches!(c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E);
    for body in [
        "grant_type=%22quoted%5C%C3%A9%E2%9C%93".to_string(),
        cc("scope=%C3%A9t%C3%A9"),
        cc("scope=a%22b"),
        cc("resource=https%3A%2F%2Fx%2F%22%5C%C3%A9"),
        cc("audience=%E2%9C%93"),
    ] {
        let r = f.token(&body, Some(&svc())).await;
        assert!(r.status.is_client_error(), "{body}");
        let d = r.json()["error_description"].as_str().unwrap().to_string();
        assert!(d.chars().all(allowed), "{body}: {d:?}");
    }
}
