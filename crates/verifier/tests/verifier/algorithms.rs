//! The algorithm allow-list and per-algorithm size limits (issue #17):
//! RS256 and ES256 by default, ES384, PS256, Ed25519 and ML-DSA opt-in for
//! tokens and DPoP proofs alike; `EdDSA` admitted on Ed25519 keys that
//! allow it; ML-DSA's larger limits never widen the classical ones.

use std::sync::{Arc, OnceLock};

use jwks_jose::{Algorithm, Jwk, JwkSet, SigningKey, crypto};
use jwks_verifier::{
    Error, ManualClock, OfflineVerifier, Verifier,
    dpop::{self, ProofError},
    limits,
};
use serde_json::json;

use crate::{
    dpop::{URL, bound_token, proof_at},
    support::*,
};

/// One key per algorithm for the whole binary (RSA generation is slow).
fn key(alg: Algorithm) -> &'static SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        crypto::supported()
            .into_iter()
            .map(|a| SigningKey::from_pkcs8(a, &SigningKey::generate(a, 2048).unwrap()).unwrap())
            .collect()
    });
    keys.iter().find(|k| k.algorithm() == alg).unwrap_or_else(|| panic!("{alg} not on this backend"))
}

/// The algorithms beyond the default list that this backend has.
fn opt_in() -> Vec<Algorithm> {
    crypto::supported().into_iter().filter(|a| !limits::DEFAULT_ALGORITHMS.contains(a)).collect()
}

fn verifier(jwks: &JwkSet, algs: Option<&[Algorithm]>) -> OfflineVerifier {
    let mut b = Verifier::builder().issuer(ISS).audience(AUD).clock(Arc::new(ManualClock::new(start_time())));
    if let Some(algs) = algs {
        b = b.algorithms(algs.iter().copied());
    }
    b.build_offline(jwks).unwrap()
}

#[test]
fn default_allow_list_is_rs256_and_es256_and_the_others_are_opt_in() {
    let all: Vec<&SigningKey> = crypto::supported().into_iter().map(key).collect();
    let jwks = jwk_set(&all);
    let default = verifier(&jwks, None);
    for alg in limits::DEFAULT_ALGORITHMS {
        assert_eq!(default.verify(&token(key(alg))).unwrap().sub.as_deref(), Some("user-1"), "{alg}");
    }
    for alg in opt_in() {
        let t = token(key(alg));
        assert!(
            matches!(default.verify(&t), Err(Error::UnsupportedAlg { alg: ref a }) if a == alg.as_str()),
            "{alg} is refused by default"
        );
        let opted = verifier(&jwks, Some(&[alg]));
        let verified = opted.verify_token::<serde_json::Value>(&t).unwrap();
        assert_eq!(verified.alg, alg);
        assert_eq!(opted.verify(&token(key(Algorithm::ES256))).unwrap_err().code(), "unsupported_alg");
    }
}

/// RFC 9864 deprecates `EdDSA`; an opted-in Ed25519 admits it on a key
/// whose JWK says `EdDSA` or has no `alg`, never on one that says `Ed25519`.
#[test]
fn eddsa_header_is_admitted_on_ed25519_keys_whose_jwk_says_eddsa_or_nothing() {
    let k = key(Algorithm::Ed25519);
    let with_alg = |alg: Option<&str>| {
        let mut jwk: Jwk = k.public_jwk();
        jwk.alg = alg.map(Into::into);
        JwkSet { keys: vec![jwk] }
    };
    let eddsa = |k: &SigningKey| {
        let mut h = header(k);
        h["alg"] = json!("EdDSA");
        sign(k, &h, &claims())
    };
    let t = eddsa(k);
    for jwk_alg in [None, Some("EdDSA")] {
        let v = verifier(&with_alg(jwk_alg), Some(&[Algorithm::Ed25519]));
        assert_eq!(v.verify_token::<serde_json::Value>(&t).unwrap().alg, Algorithm::Ed25519, "{jwk_alg:?}");
    }
    let named = verifier(&with_alg(Some("Ed25519")), Some(&[Algorithm::Ed25519]));
    assert!(matches!(named.verify(&t), Err(Error::AlgNameMismatch { header: "EdDSA" })));
    assert_eq!(named.verify(&t).unwrap_err().code(), "alg_mismatch");
    named.verify(&token(k)).unwrap();
    let legacy_only = verifier(&with_alg(Some("EdDSA")), Some(&[Algorithm::Ed25519]));
    assert_eq!(legacy_only.verify(&token(k)).unwrap_err().code(), "alg_mismatch");
    // Not opted in: refused under either name.
    let default = verifier(&with_alg(None), None);
    assert!(matches!(default.verify(&t), Err(Error::UnsupportedAlg { alg }) if alg == "EdDSA"));
    // `EdDSA` on a non-Ed25519 key is a plain mismatch.
    let es = key(Algorithm::ES256);
    let v = verifier(&jwk_set(&[es]), Some(&[Algorithm::Ed25519, Algorithm::ES256]));
    assert_eq!(v.verify(&eddsa(es)).unwrap_err().code(), "alg_mismatch");
}

/// A token whose claims are padded to `len` bytes in all.
fn padded_token(k: &SigningKey, len: usize) -> String {
    let mut c = claims();
    c["pad"] = json!("");
    let base = sign(k, &header(k), &c).len();
    // base64url: 4 characters per 3 bytes.
    let pad = (len.saturating_sub(base)) * 3 / 4;
    c["pad"] = json!("x".repeat(pad));
    let t = sign(k, &header(k), &c);
    assert!(t.len().abs_diff(len) < 8, "{} vs {len}", t.len());
    t
}

/// The figures: an ML-DSA-65 token of about 8.5 KB passes, while
/// an RS256 or ES256 token keeps the 8 KiB limit in the same verifier.
#[test]
fn ml_dsa_65_token_of_8_5_kb_passes_while_classical_tokens_keep_8_kib() {
    if !crypto::supports(Algorithm::MlDsa65) {
        return;
    }
    let (ml, rs, es) = (key(Algorithm::MlDsa65), key(Algorithm::RS256), key(Algorithm::ES256));
    let v = verifier(&jwk_set(&[ml, rs, es]), Some(&[Algorithm::RS256, Algorithm::ES256, Algorithm::MlDsa65]));
    let big = padded_token(ml, 8_700);
    assert!(big.len() > 8 * 1024);
    v.verify(&big).unwrap();
    for classical in [rs, es] {
        v.verify(&padded_token(classical, 8_100)).unwrap();
        let over = padded_token(classical, 8_700);
        assert!(
            matches!(v.verify(&over), Err(Error::TokenTooLarge { max: 8192, .. })),
            "{} over 8 KiB",
            classical.algorithm()
        );
    }
    // ML-DSA-65's own limit is 13 KiB; beyond the largest allowed limit
    // the header is not even read.
    assert!(matches!(v.verify(&padded_token(ml, 13_400)), Err(Error::TokenTooLarge { max: 13_312, .. })));
    let classical = verifier(&jwk_set(&[ml, es]), Some(&[Algorithm::ES256]));
    assert!(matches!(classical.verify(&big), Err(Error::TokenTooLarge { max: 8192, .. })));
}

/// An ML-DSA-65 DPoP proof with `ath` (about 8.2 KB) passes; an ES256
/// proof keeps the 8 KiB limit.
#[test]
fn ml_dsa_65_dpop_proof_with_ath_passes() {
    if !crypto::supports(Algorithm::MlDsa65) {
        return;
    }
    let issuer = key(Algorithm::ES256);
    let client = key(Algorithm::MlDsa65);
    let v = verifier(&jwk_set(&[issuer]), Some(&[Algorithm::ES256, Algorithm::MlDsa65]));
    let token = bound_token(issuer, client);
    let proof = proof_at(client, "GET", URL, Some(&token), NOW);
    assert!(proof.len() > 8 * 1024 && proof.len() < 9 * 1024, "{}", proof.len());
    v.verify_dpop(&token, &proof, "GET", URL).unwrap();

    // Not allowed: over the 8 KiB of the default algorithms, refused
    // before its header is read.
    let default = verifier(&jwk_set(&[issuer]), None);
    let proof = proof_at(client, "GET", URL, Some(&token), NOW);
    assert!(matches!(
        default.verify_dpop(&token, &proof, "GET", URL),
        Err(Error::InvalidDpopProof { reason: ProofError::TooLarge { max: 8192, .. } })
    ));
    // An ES256 proof padded past 8 KiB is refused by the verifier that
    // admits the ML-DSA-65 one.
    let es_client = key(Algorithm::ES256);
    let es_token = bound_token(issuer, es_client);
    let mut claims = json!({"jti": "j", "htm": "GET", "htu": URL, "iat": NOW, "ath": dpop::ath(&es_token)});
    claims["pad"] = json!("x".repeat(6_500));
    let padded = sign(es_client, &crate::dpop::proof_header(es_client), &claims);
    assert!(padded.len() > 8192 && padded.len() < proof.len() + 1024, "{}", padded.len());
    assert!(matches!(
        v.verify_dpop(&es_token, &padded, "GET", URL),
        Err(Error::InvalidDpopProof { reason: ProofError::TooLarge { max: 8192, .. } })
    ));
}

#[test]
fn opted_in_algorithms_sign_dpop_proofs_too() {
    let issuer = key(Algorithm::ES256);
    for alg in opt_in() {
        let client = key(alg);
        let token = bound_token(issuer, client);
        let v = verifier(&jwk_set(&[issuer]), Some(&[Algorithm::ES256, alg]));
        v.verify_dpop(&token, &proof_at(client, "GET", URL, Some(&token), NOW), "GET", URL).unwrap();
        let default = verifier(&jwk_set(&[issuer]), None);
        let refused = default.verify_dpop(&token, &proof_at(client, "GET", URL, Some(&token), NOW), "GET", URL);
        // Refused for its algorithm, or (ML-DSA) for its size already.
        assert!(
            matches!(
                refused,
                Err(Error::InvalidDpopProof { reason: ProofError::UnsupportedAlg(_) | ProofError::TooLarge { .. } })
            ),
            "{alg}"
        );
    }
    // The stand-alone check: its default list, or the caller's.
    let client = key(Algorithm::Ed25519);
    let proof = proof_at(client, "POST", URL, None, NOW);
    let request = dpop::Request { method: "POST", url: URL, access_token: None };
    let replay = dpop::ReplayCache::new(100, 10);
    let window = std::time::Duration::from_secs(60);
    let refused = dpop::verify_proof(&proof, &request, start_time(), window, &replay);
    assert!(matches!(refused, Err(Error::InvalidDpopProof { reason: ProofError::UnsupportedAlg(_) })));
    let ok = dpop::verify_proof_with(&proof, &request, &[Algorithm::Ed25519], start_time(), window, &replay).unwrap();
    assert_eq!(ok.alg, Algorithm::Ed25519);
}

/// On `ring` ML-DSA does not exist: asking for it is a configuration
/// error when the verifier is built, not a failure per token.
#[test]
fn ml_dsa_on_a_backend_without_it_is_a_configuration_error() {
    let built = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .algorithms([Algorithm::ES256, Algorithm::MlDsa65])
        .build_offline(&jwk_set(&[key(Algorithm::ES256)]));
    if crypto::supports(Algorithm::MlDsa65) {
        built.unwrap();
    } else {
        let err = built.unwrap_err();
        assert_eq!(err.code(), "invalid_config");
        assert!(err.to_string().contains("ML-DSA-65") && err.to_string().contains("ring"), "{err}");
    }
}
