//! The axum example resource server (`crates/verifier/examples/
//! axum_resource_server.rs`) end to end (issue 22): the real issuer, the
//! example process, `curl` as a Bearer client (tokens, scopes, RFC 9728
//! metadata and the `resource_metadata` challenge) and
//! `tests/interop/dpop.py` (PyJWT + requests) as a DPoP client; and a
//! multi-issuer verifier against two real issuer processes.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use jwks_e2e::{
    AUDIENCE, CLIENT_SECRET, ChildGuard, ES_CLIENT, Issuer, IssuerOptions, bin_dir, free_port, http_get, poll,
    secret_hash, workspace_root,
};
use jwks_verifier::{MultiVerifier, Verifier};
use serde_json::Value;

use crate::common::{Auth, http, python_ready, run_python, token};

const DPOP_CLIENT: &str = "e2e-dpop";
const RESOURCE: &str = "https://api.e2e.test/";

/// The example binary, built once per test process (`cargo test -p
/// jwks-e2e` does not build examples of other packages).
fn example() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .current_dir(workspace_root())
                .args(["build", "-p", "jwks-verifier", "--features", "cli", "--example", "axum_resource_server"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the axum example failed: {status}");
            let path = bin_dir().join("examples").join("axum_resource_server");
            assert!(path.is_file(), "{} missing", path.display());
            path
        })
        .clone()
}

fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_serves_bearer_and_dpop_clients_and_rfc9728_metadata() {
    let opts = IssuerOptions {
        extra_toml: format!(
            "\n[[clients]]\nid = \"{DPOP_CLIENT}\"\nsecret_hash = \"{}\"\nscopes = [\"read\"]\naudiences = [\"{AUDIENCE}\"]\ndpop = \"required\"\n",
            secret_hash()
        ),
        ..IssuerOptions::default()
    };
    let issuer = Issuer::start(&opts);
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut server = ChildGuard::new(
        Command::new(example())
            .args(["--issuer", &issuer.url, "--audience", AUDIENCE, "--bind", &bind, "--resource", RESOURCE])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the axum example"),
    );
    let addr = bind.parse().unwrap();
    poll("the axum example's /health", Duration::from_secs(60), Duration::from_millis(100), || {
        assert!(server.try_wait().is_none(), "the axum example exited");
        http_get(addr, "/health").filter(|(s, _)| *s == 200)
    });
    let base = format!("http://{bind}");

    // RFC 9728 metadata.
    let (status, _, body) = curl(&[&format!("{base}/.well-known/oauth-protected-resource")]);
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["resource"], RESOURCE);
    assert_eq!(doc["authorization_servers"], serde_json::json!([issuer.url]));
    assert_eq!(doc["scopes_supported"], serde_json::json!(["read", "write"]));
    assert_eq!(doc["bearer_methods_supported"], serde_json::json!(["header"]));

    // No token: both challenges, naming the metadata.
    let (status, head, _) = curl(&[&format!("{base}/data")]);
    assert_eq!(status, 401);
    let challenges = header(&head, "www-authenticate");
    assert_eq!(challenges.len(), 2, "{head}");
    let metadata = r#"resource_metadata="https://api.e2e.test/.well-known/oauth-protected-resource""#;
    assert!(challenges.iter().all(|c| c.ends_with(metadata)), "{challenges:?}");

    // Bearer with curl: read and write scopes.
    let http = http();
    let t = token(&http, &issuer, ES_CLIENT, Auth::Basic).await;
    let auth = format!("Authorization: Bearer {t}");
    let (status, _, body) = curl(&["-H", &auth, &format!("{base}/data")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["for"], ES_CLIENT);
    let (status, _, body) = curl(&["-X", "POST", "-H", &auth, &format!("{base}/data")]);
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = curl(&["-H", &auth, &format!("{base}/whoami")]);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["client_id"], ES_CLIENT);
    let (status, head, _) = curl(&["-H", &format!("{auth}x"), &format!("{base}/data")]);
    assert_eq!(status, 401);
    assert!(header(&head, "www-authenticate")[0].starts_with(r#"Bearer error="invalid_token""#), "{head}");

    // DPoP with PyJWT and requests: the same checks as against the actix server.
    if !python_ready("jwt, cryptography, requests", "the axum DPoP e2e test") {
        return;
    }
    let endpoint = issuer.token_endpoint();
    let (status, out, err) =
        tokio::task::spawn_blocking(move || run_python("dpop.py", &[&endpoint, &base, DPOP_CLIENT, CLIENT_SECRET]))
            .await
            .unwrap();
    assert!(status.success(), "dpop.py against the axum example failed:\n{out}\n{err}");
    for check in [
        "ES256_resource_accepts",
        "ES256_replay",
        "ES256_other_key",
        "RS256_resource_accepts",
        "RS256_as_bearer",
        "done",
    ] {
        assert!(out.contains(&format!("\"check\": \"{check}\", \"ok\": true")), "{check} missing:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_issuer_verifier_accepts_two_real_issuers_and_refuses_a_third() {
    let (a, b, c) = (
        Issuer::start(&IssuerOptions::default()),
        Issuer::start(&IssuerOptions::default()),
        Issuer::start(&IssuerOptions::default()),
    );
    let multi = MultiVerifier::builder()
        .issuer(Verifier::builder().issuer(&a.url).audience(AUDIENCE))
        .issuer(Verifier::builder().issuer(&b.url).audience(AUDIENCE))
        .build()
        .await
        .unwrap();
    let http = http();
    for issuer in [&a, &b] {
        let t = token(&http, issuer, ES_CLIENT, Auth::Basic).await;
        let claims = multi.verify(&t).await.unwrap();
        assert_eq!(claims.iss, issuer.url);
    }
    let stranger = token(&http, &c, ES_CLIENT, Auth::Basic).await;
    assert_eq!(multi.verify(&stranger).await.unwrap_err().code(), "wrong_issuer");
}
