//! The shipped configuration: `check-config` accepts it, and `serve` on it
//! (with a temporary key folder and a free port through the environment
//! overrides) hands the README's development client a token.

use std::process::{Command, Stdio};

use jwks_e2e::{ChildGuard, bin, free_port, http_get, poll, workspace_root};

use crate::common::http;

#[test]
fn shipped_config_passes_check_config() {
    let out = Command::new(bin("jwks-issuer"))
        .current_dir(workspace_root())
        .args(["--config", "config/issuer.toml", "check-config"])
        .env_remove("JWKS_ISSUER_CONFIG")
        .env_remove("JWKS_ISSUER_ISSUER")
        .env_remove("JWKS_ISSUER_LISTEN")
        .env_remove("JWKS_ISSUER_KEYS_DIR")
        .env_remove("JWKS_ISSUER_TOKENS_TTL")
        .output()
        .expect("run check-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check-config failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("config/issuer.toml: ok"), "{stdout}");
    assert!(stdout.contains("demo"), "the development client is listed: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_config_serves_the_readme_client() {
    let keys = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(bin("jwks-issuer"))
        .current_dir(workspace_root())
        .arg("serve")
        .env("JWKS_ISSUER_CONFIG", "config/issuer.toml")
        .env("JWKS_ISSUER_LISTEN", format!("127.0.0.1:{port}"))
        .env("JWKS_ISSUER_ISSUER", &url)
        .env("JWKS_ISSUER_KEYS_DIR", keys.path().join("keys"))
        .env_remove("JWKS_ISSUER_KEK")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn serve");
    let mut guard = ChildGuard::new(child);
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    poll(
        "the shipped config to serve /readyz",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(50),
        || {
            assert!(guard.try_wait().is_none(), "serve on the shipped config exited");
            http_get(addr, "/readyz").filter(|(s, _)| *s == 200)
        },
    );

    let resp = http()
        .post(format!("{url}/token"))
        .basic_auth("demo", Some("demo-secret-do-not-use-in-production"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST /token");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("JSON");
    let token = body["access_token"].as_str().expect("access_token");
    let verifier = jwks_verifier::Verifier::builder()
        .issuer(url.clone())
        .audience("https://api.example.test")
        .build()
        .await
        .expect("verifier");
    let claims = verifier.verify(token).await.expect("the README's token verifies");
    assert_eq!(claims.sub.as_deref(), Some("demo"));
    drop(guard);
}
