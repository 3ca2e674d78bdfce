//! Async helpers of the e2e tests: the token request, verification with
//! jsonwebtoken, the library verifier and the long-lived `jwks-verify` CLI.

use std::{process::Stdio, time::Duration};

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use jwks_e2e::{AUDIENCE, CLIENT_SECRET, Issuer, bin};
use jwks_verifier::Verifier;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

/// How a client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// `Authorization: Basic` with form-urlencoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("reqwest client")
}

/// A successful token response of `client`, with its headers checked.
pub(crate) async fn token_response(http: &reqwest::Client, issuer: &Issuer, client: &str, auth: Auth) -> Value {
    let mut form = vec![("grant_type", "client_credentials"), ("scope", "read write")];
    let mut req = http.post(issuer.token_endpoint());
    match auth {
        Auth::Basic => req = req.basic_auth(client, Some(CLIENT_SECRET)),
        Auth::Post => {
            form.push(("client_id", client));
            form.push(("client_secret", CLIENT_SECRET));
        }
    }
    let resp = req.form(&form).send().await.expect("POST /token");
    let status = resp.status();
    let cache_control = resp.headers().get("cache-control").map(|v| v.to_str().unwrap_or("").to_string());
    let body: Value = resp.json().await.expect("token response is JSON");
    assert_eq!(status, 200, "POST /token as {client} with {auth:?}: {body}");
    assert_eq!(cache_control.as_deref(), Some("no-store"), "token response Cache-Control");
    body
}

/// An access token of `client`.
pub(crate) async fn token(http: &reqwest::Client, issuer: &Issuer, client: &str, auth: Auth) -> String {
    let body = token_response(http, issuer, client, auth).await;
    body["access_token"].as_str().expect("access_token").to_string()
}

/// The served JWKS, parsed by jsonwebtoken.
pub(crate) async fn jwks(http: &reqwest::Client, issuer: &Issuer) -> JwkSet {
    let resp = http.get(issuer.jwks_uri()).send().await.expect("GET jwks");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("jsonwebtoken parses the JWKS")
}

/// Verifies `token` with jsonwebtoken (not our code) against `jwks`:
/// signature by the key of its kid, `alg` equal to the key's, `typ`,
/// `iss`, `aud`, `exp`; returns the claims.
pub(crate) fn verify_with_jsonwebtoken(token: &str, jwks: &JwkSet, issuer: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1 typ");
    let kid = header.kid.as_deref().expect("kid");
    let jwk = jwks.find(kid).unwrap_or_else(|| panic!("kid {kid} is not in the served JWKS"));
    let key_alg = jwk.common.key_algorithm.expect("the JWK has an alg");
    assert_eq!(format!("{key_alg:?}"), format!("{:?}", header.alg), "the token's alg is its key's");
    let key = DecodingKey::from_jwk(jwk).expect("jsonwebtoken accepts the JWK");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    v.leeway = 5;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap_or_else(|e| panic!("jsonwebtoken rejects the token: {e}"))
        .claims
}

/// A library verifier that discovers the JWKS through the issuer's
/// metadata, follows its `max-age` down to 1 s and refetches an unknown
/// kid at most once a second.
pub(crate) async fn fast_verifier(issuer: &Issuer) -> Verifier {
    Verifier::builder()
        .issuer(issuer.url.clone())
        .audience(AUDIENCE)
        .min_ttl(Duration::from_secs(1))
        .refetch_cooldown(Duration::from_secs(1))
        .build()
        .await
        .expect("build the library verifier")
}

/// `jwks-verify` as one long-lived child process: tokens in on stdin, one
/// JSON line out per token. Killed on drop.
pub(crate) struct VerifyCli {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl VerifyCli {
    /// Starts `jwks-verify --issuer URL --audience AUD ARGS`.
    pub(crate) fn start(issuer: &Issuer, args: &[&str]) -> VerifyCli {
        let mut child = Command::new(bin("jwks-verify"))
            .args(["--issuer", &issuer.url, "--audience", AUDIENCE])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn jwks-verify");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        VerifyCli { _child: child, stdin, lines }
    }

    /// Verifies one token; its JSON answer.
    pub(crate) async fn verify(&mut self, token: &str) -> Value {
        self.stdin.write_all(format!("{token}\n").as_bytes()).await.expect("write to jwks-verify");
        self.stdin.flush().await.expect("flush");
        let line = tokio::time::timeout(Duration::from_secs(15), self.lines.next_line())
            .await
            .expect("jwks-verify answers within 15 s")
            .expect("read jwks-verify")
            .expect("jwks-verify is still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("jwks-verify printed non-JSON {line:?}: {e}"))
    }
}

/// The `kid` of a token's header.
pub(crate) fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("header").kid.expect("kid")
}

/// The `alg` of a token's header, as written (`ES256`, `RS256`).
pub(crate) fn alg_of(token: &str) -> String {
    format!("{:?}", jsonwebtoken::decode_header(token).expect("header").alg)
}

/// The Python interpreter of the interop tests (`JWKS_E2E_PYTHON`, else `python3`).
pub(crate) fn python() -> String {
    std::env::var("JWKS_E2E_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether Python can `import` the modules `imports` (comma-separated);
/// panics under CI when it cannot, and says loudly that `test` is skipped
/// otherwise.
pub(crate) fn python_ready(imports: &str, test: &str) -> bool {
    let probe = std::process::Command::new(python()).args(["-c", &format!("import {imports}")]).output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!("the Python libraries are missing: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("{} cannot run: {e}", python()),
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} under CI needs python3 with tests/interop/requirements.txt: {problem}"
    );
    eprintln!("\n!!!!!!!! SKIPPED {test}: {problem}");
    eprintln!("!!!!!!!! install with: python3 -m pip install -r tests/interop/requirements.txt\n");
    false
}

/// Runs `tests/interop/<script>` with `args`, at most 60 s; its exit
/// status, stdout and stderr.
pub(crate) fn run_python(script: &str, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    use std::io::Read;
    let path = jwks_e2e::workspace_root().join("tests/interop").join(script);
    let child = std::process::Command::new(python())
        .arg(&path)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut guard = jwks_e2e::ChildGuard::new(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = guard.try_wait() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{script} did not finish within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut s) = guard.child().stdout.take() {
        s.read_to_string(&mut stdout).expect("read stdout");
    }
    if let Some(mut s) = guard.child().stderr.take() {
        s.read_to_string(&mut stderr).expect("read stderr");
    }
    (status, stdout, stderr)
}
