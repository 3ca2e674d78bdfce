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
