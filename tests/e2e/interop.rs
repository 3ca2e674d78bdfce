//! (d) Interop with clients we did not write: `tests/interop/interop.py`
//! runs PyJWT (PyJWKClient) and requests-oauthlib against the real issuer.
//!
//! Without python3 or its libraries the test is skipped with a loud message,
//! except under CI (`CI` set), where it fails: `.ci/run` installs them from
//! `tests/interop/requirements.txt`.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use jwks_e2e::{AUDIENCE, CLIENT_SECRET, ChildGuard, ES_CLIENT, Issuer, IssuerOptions, RS_CLIENT, workspace_root};

fn python() -> String {
    std::env::var("JWKS_E2E_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether python3 with PyJWT, cryptography and requests-oauthlib is here;
/// panics under CI when it is not.
fn python_ready() -> bool {
    let probe =
        Command::new(python()).args(["-c", "import jwt, cryptography, requests, oauthlib, requests_oauthlib"]).output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!("the Python libraries are missing: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("{} cannot run: {e}", python()),
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "interop under CI needs python3 with tests/interop/requirements.txt: {problem}"
    );
    eprintln!("\n!!!!!!!! SKIPPED interop test: {problem}");
    eprintln!("!!!!!!!! install with: python3 -m pip install -r tests/interop/requirements.txt\n");
    false
}

#[test]
fn python_pyjwt_and_requests_oauthlib_interoperate() {
    if !python_ready() {
        return;
    }
    let issuer = Issuer::start(&IssuerOptions::default());
    let script = workspace_root().join("tests/interop/interop.py");
    let child = Command::new(python())
        .arg(&script)
        .args([issuer.url.as_str(), AUDIENCE, CLIENT_SECRET, ES_CLIENT, RS_CLIENT])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut guard = ChildGuard::new(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = guard.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "interop.py did not finish within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut s) = guard.child().stdout.take() {
        s.read_to_string(&mut stdout).expect("read stdout");
    }
    if let Some(mut s) = guard.child().stderr.take() {
        s.read_to_string(&mut stderr).expect("read stderr");
    }
    eprintln!("{stdout}");
    assert!(status.success(), "interop.py failed ({status}):\n{stdout}\n{stderr}\nissuer log:\n{}", issuer.log());
    let checks: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("interop.py prints JSON lines")).collect();
    let tokens = checks.iter().filter(|c| c["check"] == "token").count();
    assert_eq!(tokens, 4, "ES256 and RS256, each by client_secret_basic and client_secret_post: {stdout}");
    assert!(checks.iter().any(|c| c["result"] == "ok"), "{stdout}");
}
