//! The CPU a DPoP nonce adds to a DPoP token request (issue 23): an ES256
//! proof checked at a token endpoint without a nonce, against the same
//! check with a nonce policy plus the fresh nonce of the answer (what the
//! issuer does for every DPoP request with nonces on), in one group; and
//! the nonce's own issue and check.
//!
//! Run: `cargo bench -p jwks-verifier --bench dpop_nonce`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    hint::black_box,
    time::{Duration, UNIX_EPOCH},
};

use criterion::{Criterion, criterion_group, criterion_main};
use jwks_jose::{Algorithm, SigningKey, compact};
use jwks_verifier::{
    UnixTime,
    dpop::{self, Replay, ReplayGuard, Request},
    nonce::{NonceMode, NoncePolicy, StatelessNonces},
};

const NOW: u64 = 1_800_000_000;
const URL: &str = "https://issuer.example.test/token";

/// Accepts every id: the bench measures the proof check, not a cache.
struct NoReplay;

impl ReplayGuard for NoReplay {
    fn check_and_insert(&self, _: &str, _: u64, _: u64) -> Result<(), Replay> {
        Ok(())
    }
}

fn proof(key: &SigningKey, nonce: Option<&str>) -> String {
    let mut c = serde_json::json!({"jti": "e1j3V_bKic8-LAEB", "htm": "POST", "htu": URL, "iat": NOW});
    if let Some(n) = nonce {
        c["nonce"] = serde_json::json!(n);
    }
    let h = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
    compact::sign(key, h.to_string().as_bytes(), c.to_string().as_bytes()).unwrap()
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_pkcs8(Algorithm::ES256, &SigningKey::generate(Algorithm::ES256, 2048).unwrap()).unwrap();
    let policy = StatelessNonces::new(&[7u8; 32], Duration::from_secs(60), NonceMode::Required).unwrap();
    let now = UnixTime::from_secs(NOW);
    let at = UNIX_EPOCH + Duration::from_secs(NOW);
    let nonce = policy.issue(now);
    let plain = proof(&key, None);
    let with_nonce = proof(&key, Some(&nonce));
    let request = Request { method: "POST", url: URL, access_token: None };
    let window = Duration::from_secs(60);

    let mut group = c.benchmark_group("dpop_token_request_es256");
    group.bench_function("proof_without_nonce", |b| {
        b.iter(|| black_box(dpop::verify_proof(black_box(&plain), &request, at, window, &NoReplay).unwrap()))
    });
    group.bench_function("proof_with_nonce_and_fresh_nonce", |b| {
        b.iter(|| {
            let key = dpop::verify_proof_with_nonce(black_box(&with_nonce), &request, at, window, &NoReplay, &policy);
            black_box((key.unwrap(), policy.issue(now)))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("dpop_nonce");
    group.bench_function("issue", |b| b.iter(|| black_box(policy.issue(black_box(now)))));
    group.bench_function("check", |b| b.iter(|| policy.check(black_box(&nonce), now).unwrap()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
