//! DPoP proofs (RFC 9449 §4.3): any bytes, as a `DPoP` header, through
//! `jwks_verifier::dpop::verify_proof` for a token endpoint request and for
//! a resource request with an access token, at a fixed time.
//!
//! Beyond "never panics" it checks the single-use rule: a proof accepted
//! once is refused as a replay the second time, and the proof key it
//! answers is the thumbprint of a key that verifies.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use jwks_verifier::dpop::{self, ProofError, ReplayCache, Request};
use libfuzzer_sys::fuzz_target;

/// The seeds' `iat`.
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else { return };
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let window = Duration::from_secs(60);
    let requests = [
        Request { method: "POST", url: "https://issuer.example/token", access_token: None },
        Request { method: "GET", url: "https://api.example/data", access_token: Some("an-access-token") },
    ];
    for request in &requests {
        let replay = ReplayCache::new(8, 4);
        let Ok(key) = dpop::verify_proof(proof, request, now, window, &replay) else { continue };
        assert!(key.iat.abs_diff(NOW) <= 60, "iat {} outside the window", key.iat);
        assert!(!key.jti.is_empty() && key.jti.chars().count() <= dpop::MAX_JTI_LEN);
        match dpop::verify_proof(proof, request, now, window, &replay) {
            Err(jwks_verifier::Error::InvalidDpopProof { reason: ProofError::Replayed }) => {}
            other => panic!("an accepted proof was not refused as a replay: {other:?}"),
        }
    }
});
