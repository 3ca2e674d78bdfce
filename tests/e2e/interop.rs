//! (d) Interop with clients we did not write: `tests/interop/interop.py`
//! runs PyJWT (PyJWKClient) and requests-oauthlib against the real issuer.
//!
//! Without python3 or its libraries the test is skipped with a loud message,
//! except under CI (`CI` set), where it fails: `.ci/run` installs them from
//! `tests/interop/requirements.txt`.

use jwks_e2e::{AUDIENCE, CLIENT_SECRET, ES_CLIENT, Issuer, IssuerOptions, RS_CLIENT};

use crate::common::{python_ready, run_python};

#[test]
fn python_pyjwt_and_requests_oauthlib_interoperate() {
    if !python_ready("jwt, cryptography, requests, oauthlib, requests_oauthlib", "the interop test") {
        return;
    }
    let issuer = Issuer::start(&IssuerOptions::default());
    let (status, stdout, stderr) =
        run_python("interop.py", &[issuer.url.as_str(), AUDIENCE, CLIENT_SECRET, ES_CLIENT, RS_CLIENT]);
    eprintln!("{stdout}");
    assert!(status.success(), "interop.py failed ({status}):\n{stdout}\n{stderr}\nissuer log:\n{}", issuer.log());
    let checks: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("interop.py prints JSON lines")).collect();
    let tokens = checks.iter().filter(|c| c["check"] == "token").count();
    assert_eq!(tokens, 4, "ES256 and RS256, each by client_secret_basic and client_secret_post: {stdout}");
    assert!(checks.iter().any(|c| c["result"] == "ok"), "{stdout}");
}

/// Issue #17, both directions: PyJWT (with `cryptography`) verifies our
/// Ed25519, ES384 and PS256 tokens and dilithium-py our ML-DSA-44 and
/// ML-DSA-65 ones, from the real issuer; and our verifier accepts tokens
/// that PyJWT and dilithium-py signed with keys they made.
#[test]
fn python_pyjwt_and_dilithium_py_interoperate_on_every_new_algorithm() {
    use std::{sync::Arc, time::SystemTime};

    use jwks_jose::{Algorithm, JwkSet};
    use jwks_verifier::{ManualClock, Verifier};

    if !python_ready("jwt, cryptography, requests, dilithium_py", "the algorithm interop test") {
        return;
    }
    let algs = ["Ed25519", "ES384", "PS256", "ML-DSA-44", "ML-DSA-65"];
    let hash = jwks_e2e::secret_hash();
    let mut extra = String::new();
    for alg in algs {
        extra.push_str(&format!(
            "\n[[clients]]\nid = \"py-{alg}\"\nsecret_hash = \"{hash}\"\nscopes = [\"read\"]\naudiences = [\"{AUDIENCE}\"]\nalgorithm = \"{alg}\"\n"
        ));
    }
    let opts = IssuerOptions {
        algorithms: Some(r#"["ES256", "RS256", "Ed25519", "ES384", "PS256", "ML-DSA-44", "ML-DSA-65"]"#.into()),
        extra_toml: extra,
        ..IssuerOptions::default()
    };
    let issuer = Issuer::start(&opts);
    let (status, stdout, stderr) =
        run_python("algs.py", &["verify", issuer.url.as_str(), AUDIENCE, CLIENT_SECRET, "py-"]);
    eprintln!("{stdout}");
    assert!(status.success(), "algs.py verify failed ({status}):\n{stdout}\n{stderr}\nissuer log:\n{}", issuer.log());
    let verified: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for alg in algs {
        assert!(verified.iter().any(|c| c["alg"] == alg && c["result"] == "ok"), "{alg}: {stdout}");
    }

    let (status, stdout, stderr) = run_python("algs.py", &["mint", "https://python.example", AUDIENCE]);
    assert!(status.success(), "algs.py mint failed ({status}):\n{stdout}\n{stderr}");
    let minted: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let jwks: JwkSet = serde_json::from_value(minted["jwks"].clone()).unwrap();
    for alg in algs {
        let alg: Algorithm = alg.parse().unwrap();
        let verifier = Verifier::builder()
            .issuer("https://python.example")
            .audience(AUDIENCE)
            .algorithms([alg])
            .clock(Arc::new(ManualClock::new(SystemTime::now())))
            .build_offline(&jwks)
            .unwrap();
        let token = minted["tokens"][alg.as_str()].as_str().unwrap();
        let verified = verifier.verify_token::<serde_json::Value>(token).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!((verified.alg, verified.claims["sub"].as_str()), (alg, Some("python")));
        let mut bad = token.to_owned();
        bad.truncate(bad.len() - 4);
        bad.push_str(if token.ends_with("AAAA") { "BBBB" } else { "AAAA" });
        assert!(verifier.verify(&bad).is_err(), "{alg}: a tampered token");
    }
}
