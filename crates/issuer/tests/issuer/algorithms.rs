//! Every algorithm of issue #17 at the token endpoint: each configured
//! algorithm has its own key and signs the tokens of the clients that ask
//! for it; discovery lists what is configured; DPoP proofs of any backend
//! algorithm bind tokens.

use std::{
    path::Path,
    sync::{Arc, OnceLock},
    time::{Duration, UNIX_EPOCH},
};

use actix_web::test::TestRequest;
use jwks_issuer::keys::Keyring;
use jwks_jose::clock::Clock;
use jwks_jose::{Algorithm, JwkSet, SigningKey, compact, crypto, thumbprint};
use jwks_verifier::{ManualClock as VerifierClock, Verifier};
use serde_json::{Value, json};

use crate::support::{API_AUD, Fixture, ISSUER, SECRET, basic, cc, config_text, open_keyring, secret_hash};

fn names(algs: &[Algorithm]) -> String {
    let quoted: Vec<String> = algs.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// One ring with a key for every algorithm of the backend (RSA is slow).
fn keyring() -> Arc<Keyring> {
    static RING: OnceLock<Arc<Keyring>> = OnceLock::new();
    RING.get_or_init(|| open_keyring(&names(&crypto::supported()))).clone()
}

/// The standard clients plus `c-<alg>` signing with `<alg>`.
fn fixture() -> Fixture {
    let mut text = config_text(Path::new("/nonexistent-test-keys"), &names(&crypto::supported()));
    for alg in crypto::supported() {
        text.push_str(&format!(
            "\n[[clients]]\nid = \"c-{alg}\"\nsecret_hash = \"{}\"\nscopes = [\"read\"]\naudiences = [\"{API_AUD}\"]\nalgorithm = \"{alg}\"\n",
            secret_hash()
        ));
    }
    Fixture::from_text(keyring(), &text)
}

async fn jwks(f: &Fixture) -> JwkSet {
    serde_json::from_slice(&f.get("/.well-known/jwks.json").await.body).unwrap()
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&compact::split(token, 1 << 16).unwrap().header).unwrap()
}

#[actix_web::test]
async fn each_configured_algorithm_has_its_own_key_and_signs_its_clients_tokens() {
    let f = fixture();
    let set = jwks(&f).await;
    for alg in crypto::supported() {
        let jwk = set.keys.iter().find(|k| k.alg.as_deref() == Some(alg.as_str())).unwrap_or_else(|| panic!("{alg}"));
        assert_eq!(jwk.kty, alg.key_type(), "{alg}");
        let r = f.token(&cc(""), Some(&basic(&format!("c-{alg}"), SECRET))).await;
        assert_eq!(r.status.as_u16(), 200, "{alg}: {:?}", r.json());
        let token = r.json()["access_token"].as_str().unwrap().to_owned();
        let header = header_of(&token);
        assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some(alg.as_str()), jwk.kid.as_deref()));
        let v = Verifier::builder()
            .issuer(ISSUER)
            .audience(API_AUD)
            .algorithms([alg])
            .clock(Arc::new(VerifierClock::new(UNIX_EPOCH + Duration::from_secs(f.clock.unix_now().as_secs()))))
            .build_offline(&set)
            .unwrap();
        assert_eq!(v.verify_token::<Value>(&token).unwrap().alg, alg);
    }
}

#[actix_web::test]
async fn discovery_lists_the_configured_token_algorithms_and_the_backends_proof_algorithms() {
    let some = [Algorithm::ES256, Algorithm::Ed25519];
    let f = Fixture::with(keyring(), &names(&some));
    let m = f.get("/.well-known/oauth-authorization-server").await.json();
    assert_eq!(m["access_token_signing_alg_values_supported"], json!(["ES256", "Ed25519"]));
    let backend: Vec<&str> = crypto::supported().iter().map(|a| a.as_str()).collect();
    assert_eq!(m["dpop_signing_alg_values_supported"], json!(backend));
    assert_eq!(m["token_endpoint_auth_signing_alg_values_supported"], json!(backend));
    assert_eq!(backend.contains(&"ML-DSA-65"), crypto::BACKEND == "aws-lc-rs");
}

/// A DPoP proof by a key of every algorithm binds the token to that key.
#[actix_web::test]
async fn dpop_proofs_of_every_algorithm_bind_tokens() {
    let f = fixture();
    for alg in crypto::supported() {
        let client = SigningKey::from_pkcs8(alg, &SigningKey::generate(alg, 2048).unwrap()).unwrap();
        let proof = crate::dpop::proof(&client, "POST", crate::dpop::TOKEN_URL, f.clock.unix_now().as_secs(), None);
        let req = TestRequest::post()
            .uri("/token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .insert_header(("authorization", basic("svc", SECRET)))
            .insert_header(("DPoP", proof))
            .set_payload(cc(""));
        let r = f.call(req).await;
        assert_eq!(r.status.as_u16(), 200, "{alg}: {:?}", r.json());
        assert_eq!(r.json()["token_type"], "DPoP");
        let token = r.json()["access_token"].as_str().unwrap().to_owned();
        let claims: Value = serde_json::from_slice(&compact::split(&token, 8192).unwrap().payload).unwrap();
        assert_eq!(claims["cnf"]["jkt"].as_str().unwrap(), thumbprint(&client.public_jwk()).unwrap(), "{alg}");
    }
}
