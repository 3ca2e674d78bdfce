//! DPoP nonces at the token endpoint (RFC 9449 §8, issue 23): `[dpop]
//! nonce` and `clients[].dpop_nonce`; `use_dpop_nonce` with a `DPoP-Nonce`
//! header; a refused request consumes no single-use id; a valid nonce
//! rescues an `iat` outside the window; replicas with one secret accept
//! each other's nonces. All at the fixture's manual clock.

use std::{path::Path, sync::Arc};

use jwks_issuer::{
    clock::SharedClock,
    metrics::Metrics,
    oauth::{OAuthError, TokenService, request::RawRequest},
};
use jwks_jose::clock::{Clock, ManualClock};
use jwks_jose::{SigningKey, b64, compact};
use serde_json::{Value, json};

use crate::{
    dpop::{TOKEN_URL, es_key},
    support::{
        API_AUD, Fixture, ISSUER, Reply, SECRET, basic, cc, config_text, form_encode, parse_config, secret_hash,
        shared_keyring,
    },
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A proof for the token endpoint with this `jti`, `iat` and `nonce`.
fn proof(key: &SigningKey, jti: &str, iat: u64, nonce: Option<&str>) -> String {
    let mut c = json!({"jti": jti, "htm": "POST", "htu": TOKEN_URL, "iat": iat});
    if let Some(n) = nonce {
        c["nonce"] = json!(n);
    }
    let h = json!({"typ": "dpop+jwt", "alg": key.algorithm().as_str(), "jwk": key.public_jwk()});
    compact::sign(key, h.to_string().as_bytes(), c.to_string().as_bytes()).unwrap()
}

/// The standard clients, a `[dpop]` table, and: `strict` (secret,
/// `dpop_nonce = "required"`), `loose` (secret, `dpop_nonce = "off"`) and
/// `kjwt` (`private_key_jwt` with `jwt_key`).
fn fixture(dpop_table: &str, jwt_key: &SigningKey) -> Fixture {
    Fixture::from_text(shared_keyring(), &config(dpop_table, jwt_key))
}

fn config(dpop_table: &str, jwt_key: &SigningKey) -> String {
    let mut text = config_text(Path::new("/nonexistent-test-keys"), r#"["ES256", "RS256"]"#);
    text = text.replacen("[[clients]]", &format!("{dpop_table}\n[[clients]]"), 1);
    let jwks = toml::Value::try_from(jwks_jose::JwkSet { keys: vec![jwt_key.public_jwk()] }).unwrap();
    let hash = secret_hash();
    text.push_str(&format!(
        "\n[[clients]]\nid = \"strict\"\nsecret_hash = \"{hash}\"\nscopes = [\"read\"]\ndpop_nonce = \"required\"\n\
         \n[[clients]]\nid = \"loose\"\nsecret_hash = \"{hash}\"\nscopes = [\"read\"]\ndpop_nonce = \"off\"\n\
         \n[[clients]]\nid = \"kjwt\"\njwks = {jwks}\nscopes = [\"read\"]\naudiences = [\"{API_AUD}\"]\n"
    ));
    text
}

async fn post(f: &Fixture, body: &str, authorization: Option<&str>, dpop: Option<&str>) -> Reply {
    let mut req = actix_web::test::TestRequest::post()
        .uri("/token")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(body.to_owned());
    if let Some(a) = authorization {
        req = req.insert_header(("authorization", a.to_owned()));
    }
    if let Some(p) = dpop {
        req = req.insert_header(("DPoP", p.to_owned()));
    }
    f.call(req).await
}

async fn as_client(f: &Fixture, id: &str, dpop: Option<&str>) -> Reply {
    post(f, &cc(""), Some(&basic(id, SECRET)), dpop).await
}

#[track_caller]
fn nonce_of(r: &Reply) -> String {
    r.header("dpop-nonce").unwrap_or_else(|| panic!("no DPoP-Nonce in {:?}", r.headers)).to_owned()
}

#[track_caller]
fn assert_use_nonce(r: &Reply) -> String {
    r.assert_error(400, "use_dpop_nonce");
    nonce_of(r)
}

fn assertion(k: &SigningKey, jti: &str, now: u64) -> String {
    let claims = json!({"iss": "kjwt", "sub": "kjwt", "aud": ISSUER, "iat": now, "exp": now + 60, "jti": jti});
    let header = json!({"alg": k.algorithm().as_str(), "kid": k.kid(), "typ": "JWT"});
    compact::sign(k, header.to_string().as_bytes(), claims.to_string().as_bytes()).unwrap()
}

#[actix_web::test]
async fn required_answers_use_dpop_nonce_and_the_retry_with_the_nonce_succeeds() {
    let f = fixture("[dpop]\nnonce = \"required\"\n", &es_key());
    let key = es_key();
    let t = f.clock.unix_now().as_secs();
    let r = as_client(&f, "svc", Some(&proof(&key, "p1", t, None))).await;
    let nonce = assert_use_nonce(&r);
    assert!(r.json()["error_description"].as_str().unwrap().contains("nonce"), "{:?}", r.json());
    let r = as_client(&f, "svc", Some(&proof(&key, "p2", t, Some(&nonce)))).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    assert_eq!(r.json()["token_type"], "DPoP");
    assert!(r.header("dpop-nonce").is_some(), "success carries a current nonce");
    // A request without a proof needs no nonce: it gets a bearer token.
    let r = as_client(&f, "svc", None).await;
    assert_eq!((r.status.as_u16(), r.json()["token_type"].clone()), (200, json!("Bearer")));
    assert!(r.header("dpop-nonce").is_none());
}

#[actix_web::test]
async fn use_dpop_nonce_leaves_the_proof_jti_and_the_assertion_jti_unused() {
    let jwt_key = es_key();
    let f = fixture("[dpop]\nnonce = \"required\"\n", &jwt_key);
    let key = es_key();
    let t = f.clock.unix_now().as_secs();
    let a = assertion(&jwt_key, "assertion-1", t);
    let body = cc(&format!("client_assertion_type={}&client_assertion={a}", form_encode(JWT_BEARER)));
    let r = post(&f, &body, None, Some(&proof(&key, "proof-1", t, None))).await;
    let nonce = assert_use_nonce(&r);
    // The retry re-sends the same form (the same assertion) and a new proof
    // that reuses the refused proof's `jti`: both ids are still unused.
    let r = post(&f, &body, None, Some(&proof(&key, "proof-1", t, Some(&nonce)))).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    assert_eq!(r.json()["token_type"], "DPoP");
    // Now both are spent.
    let r = post(&f, &body, None, Some(&proof(&key, "proof-2", t, Some(&nonce)))).await;
    r.assert_error(401, "invalid_client");
    assert!(r.header("dpop-nonce").is_some(), "refusals of DPoP requests carry a nonce too");
    let fresh = assertion(&jwt_key, "assertion-2", t);
    let body = cc(&format!("client_assertion_type={}&client_assertion={fresh}", form_encode(JWT_BEARER)));
    let r = post(&f, &body, None, Some(&proof(&key, "proof-1", t, Some(&nonce)))).await;
    r.assert_error(400, "invalid_dpop_proof");
}

#[actix_web::test]
async fn every_answer_to_a_dpop_request_carries_a_nonce_unless_nonces_are_off() {
    let f = fixture("", &es_key());
    let key = es_key();
    let t = f.clock.unix_now().as_secs();
    let p = proof(&key, "x1", t, None);
    let r = as_client(&f, "svc", Some(&p)).await;
    assert_eq!(r.status.as_u16(), 200, "allowed (the default) takes a proof without a nonce");
    nonce_of(&r);
    for r in [
        post(&f, &cc(""), Some(&basic("svc", "wrong")), Some(&proof(&key, "x2", t, None))).await,
        post(&f, "grant_type=password", Some(&basic("svc", SECRET)), Some(&proof(&key, "x3", t, None))).await,
        as_client(&f, "svc", Some("not-a-proof")).await,
        as_client(&f, "svc", Some(&p)).await,
    ] {
        assert!(r.status.is_client_error(), "{:?}", r.status);
        nonce_of(&r);
    }
    let wrong_type = f
        .call(actix_web::test::TestRequest::post().uri("/token").insert_header(("DPoP", p.clone())).set_payload("x"))
        .await;
    wrong_type.assert_error(400, "invalid_request");
    nonce_of(&wrong_type);

    let off = fixture("[dpop]\nnonce = \"off\"\n", &es_key());
    let r = as_client(&off, "svc", Some(&proof(&key, "y1", t, None))).await;
    assert_eq!(r.status.as_u16(), 200);
    // `strict` still needs nonces, so refusals carry one; `svc`'s success does not.
    assert!(r.header("dpop-nonce").is_none(), "{:?}", r.headers);
}

#[actix_web::test]
async fn a_proof_with_iat_an_hour_off_is_accepted_with_a_nonce_and_refused_without() {
    let f = fixture("", &es_key());
    let key = es_key();
    let t = f.clock.unix_now().as_secs();
    for (i, iat) in [t - 3600, t + 3600].into_iter().enumerate() {
        let r = as_client(&f, "svc", Some(&proof(&key, &format!("w{i}"), iat, None))).await;
        let nonce = assert_use_nonce(&r);
        assert!(r.json()["error_description"].as_str().unwrap().contains("`iat`"), "{:?}", r.json());
        let r = as_client(&f, "svc", Some(&proof(&key, &format!("n{i}"), iat, Some(&nonce)))).await;
        assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    }
    // With nonces off for the client, the same proof is a hard refusal.
    let r = as_client(&f, "loose", Some(&proof(&key, "l", t - 3600, None))).await;
    r.assert_error(400, "invalid_dpop_proof");
}

#[actix_web::test]
async fn an_expired_nonce_is_refused_and_a_fresh_one_offered() {
    let f = fixture("[dpop]\nnonce = \"required\"\nnonce_step = \"30s\"\n", &es_key());
    let key = es_key();
    let r = as_client(&f, "svc", Some(&proof(&key, "e0", f.clock.unix_now().as_secs(), None))).await;
    let nonce = assert_use_nonce(&r);
    f.clock.advance(std::time::Duration::from_secs(60));
    let t = f.clock.unix_now().as_secs();
    let r = as_client(&f, "svc", Some(&proof(&key, "e1", t, Some(&nonce)))).await;
    let fresh = assert_use_nonce(&r);
    assert!(r.json()["error_description"].as_str().unwrap().contains("expired"), "{:?}", r.json());
    assert_ne!(fresh, nonce);
    let r = as_client(&f, "svc", Some(&proof(&key, "e1", t, Some(&fresh)))).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    // A forged nonce is refused the same way.
    let forged = b64::encode([7u8; 24]);
    let r = as_client(&f, "svc", Some(&proof(&key, "e2", t, Some(&forged)))).await;
    assert_use_nonce(&r);
}

#[actix_web::test]
async fn per_client_required_overrides_the_global_allowed_and_off_the_global_required() {
    let f = fixture("", &es_key());
    let key = es_key();
    let t = f.clock.unix_now().as_secs();
    let r = as_client(&f, "svc", Some(&proof(&key, "g1", t, None))).await;
    assert_eq!(r.status.as_u16(), 200, "global allowed");
    let r = as_client(&f, "strict", Some(&proof(&key, "s1", t, None))).await;
    let nonce = assert_use_nonce(&r);
    let r = as_client(&f, "strict", Some(&proof(&key, "s2", t, Some(&nonce)))).await;
    assert_eq!(r.status.as_u16(), 200);

    let g = fixture("[dpop]\nnonce = \"required\"\n", &es_key());
    let r = as_client(&g, "svc", Some(&proof(&key, "r1", t, None))).await;
    assert_use_nonce(&r);
    let r = as_client(&g, "loose", Some(&proof(&key, "r2", t, None))).await;
    assert_eq!(r.status.as_u16(), 200, "the client's off wins");
    assert!(r.header("dpop-nonce").is_none());
}

/// One request straight to a service.
async fn call(service: &TokenService, proof: &str, now: u64) -> Result<jwks_issuer::oauth::Issued, OAuthError> {
    let auth = basic("svc", SECRET);
    let authorization: Vec<&[u8]> = vec![auth.as_bytes()];
    let dpop: Vec<&[u8]> = vec![proof.as_bytes()];
    let body = cc("");
    let raw = RawRequest {
        content_type: Some("application/x-www-form-urlencoded"),
        body: body.as_bytes(),
        authorization: &authorization,
        dpop: &dpop,
        peer: None,
        now: jwks_jose::clock::UnixTime::from_secs(now),
    };
    service.handle(&raw).await
}

#[tokio::test]
async fn replicas_with_one_secret_accept_each_others_nonces_and_others_do_not() {
    let config = parse_config(&config("[dpop]\nnonce = \"required\"\n", &es_key()));
    let clock = ManualClock::at(jwks_jose::clock::UnixTime::from_secs(crate::support::real_now()));
    let service = || {
        let shared: SharedClock = Arc::new(clock.clone());
        TokenService::new(
            config.token_settings(),
            &config.clients,
            shared_keyring(),
            None,
            Arc::new(Metrics::default()),
            shared,
        )
        .unwrap()
    };
    let (mut a, mut b, c) = (service(), service(), service());
    a.use_dpop_nonce_secret(&[5u8; 32]).unwrap();
    b.use_dpop_nonce_secret(&[5u8; 32]).unwrap();
    let key = es_key();
    let t = clock.unix_now().as_secs();
    let nonce = match call(&a, &proof(&key, "a1", t, None), t).await {
        Err(OAuthError::UseDpopNonce { nonce, .. }) => nonce,
        other => panic!("{other:?}"),
    };
    clock.advance(std::time::Duration::from_secs(30));
    let t = clock.unix_now().as_secs();
    let issued = call(&b, &proof(&key, "b1", t, Some(&nonce)), t).await.unwrap();
    assert_eq!(issued.token_type, "DPoP");
    assert!(issued.dpop_nonce.is_some());
    // A replica with its own random secret refuses it.
    let e = call(&c, &proof(&key, "c1", t, Some(&nonce)), t).await.unwrap_err();
    assert_eq!(e.code(), "use_dpop_nonce");
    let v: Value = json!(e.description());
    assert!(v.as_str().unwrap().contains("not one this server issued"), "{v}");
}

#[test]
fn config_nonce_keys_have_defaults_and_are_validated_naming_the_key() {
    let base = config("", &es_key());
    let c = parse_config(&base);
    assert_eq!(c.dpop_nonce, jwks_issuer::config::DpopNonceMode::Allowed, "default allowed");
    assert_eq!(c.dpop_nonce_step, std::time::Duration::from_secs(60), "default 60s");
    let strict = c.clients.iter().find(|c| c.id == "strict").unwrap();
    assert_eq!(strict.dpop_nonce, Some(jwks_issuer::config::DpopNonceMode::Required));
    assert_eq!(c.clients[0].dpop_nonce, None);
    let load = |text: &str| jwks_issuer::Config::from_toml(Path::new("issuer.toml"), text, &|_| None);
    let e = load(&config("[dpop]\nnonce = \"sometimes\"\n", &es_key())).unwrap_err().to_string();
    assert!(e.contains("dpop.nonce") && e.contains("sometimes"), "{e}");
    let e = load(&config("[dpop]\nnonce_step = \"500ms\"\n", &es_key())).unwrap_err().to_string();
    assert!(e.contains("dpop.nonce_step"), "{e}");
    let e = load(&base.replace("dpop_nonce = \"off\"", "dpop_nonce = \"never\"")).unwrap_err().to_string();
    assert!(e.contains("dpop_nonce") && e.contains("never"), "{e}");
}
