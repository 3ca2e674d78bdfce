//! Issuing a token (claims to compact JWS) against the crypto backend's
//! bare signature on the same key, in the same group, so the result is a
//! ratio: goal <= 1.15x for ES256 and <= 1.03x for RS256 (issue 6).
//!
//! Run: `cargo bench -p jwks-issuer --bench issue`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use jwks_issuer::{
    keys::{ActiveKey, KeyMeta, Policy},
    token,
};
use jwks_jose::clock::UnixTime;
use jwks_jose::{Algorithm, SigningKey};
use std::{hint::black_box, time::Duration};

fn key(alg: Algorithm) -> ActiveKey {
    let pkcs8 = SigningKey::generate(alg, 2048).unwrap();
    let key = SigningKey::from_pkcs8(alg, &pkcs8).unwrap();
    let policy = Policy {
        rotation_period: Duration::from_secs(86_400),
        publish_ahead: Duration::from_secs(3600),
        retire_after: Duration::from_secs(3600),
    };
    let meta =
        KeyMeta { kid: key.kid().to_string(), alg, timeline: policy.immediate(UnixTime::from_secs(1_800_000_000)) };
    ActiveKey::new(meta, std::sync::Arc::new(key))
}

fn bench(c: &mut Criterion) {
    for alg in Algorithm::ALL {
        let k = key(alg);
        let grant = token::Grant {
            issuer: "http://127.0.0.1:8080",
            client_id: "demo",
            aud: "https://api.example.test",
            scope: "read write",
            now: UnixTime::from_secs(1_800_000_000),
            ttl: 900,
            jkt: None,
        };
        let sample = token::mint(&k, &grant).unwrap();
        // The bare signature signs a message as long as a real signing input.
        let signing_input_len = sample.rfind('.').unwrap();
        let message = vec![b'a'; signing_input_len];
        let mut group = c.benchmark_group(format!("issue_{}", alg.as_str().to_lowercase()));
        group.bench_function("bare_sign", |b| b.iter(|| black_box(k.key.sign(black_box(&message)).unwrap())));
        group.bench_function("mint_token", |b| b.iter(|| black_box(token::mint(&k, black_box(&grant)).unwrap())));
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(60).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
