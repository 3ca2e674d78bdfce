//! DPoP end to end (RFC 9449): the real `jwks-issuer` binds tokens to a
//! client's key at `/token`; an actix resource server built with
//! `jwks_verifier::actix` accepts them only with a fresh proof by that key;
//! the client is `tests/interop/dpop.py`, signing proofs with PyJWT over
//! `cryptography` keys (not our code).
//!
//! Without python3, PyJWT or cryptography the test is skipped with a loud
//! message, except under CI (`CI` set), where it fails.

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, web};
use jwks_e2e::{AUDIENCE, CLIENT_SECRET, ChildGuard, Issuer, IssuerOptions, secret_hash, workspace_root};
use jwks_verifier::{Verifier, actix::Authenticated};

const DPOP_CLIENT: &str = "e2e-dpop";

fn python() -> String {
    std::env::var("JWKS_E2E_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether python3 with PyJWT, cryptography and requests is here; panics
/// under CI when it is not.
fn python_ready() -> bool {
    let probe = Command::new(python()).args(["-c", "import jwt, cryptography, requests"]).output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!("the Python libraries are missing: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("{} cannot run: {e}", python()),
    };
    assert!(std::env::var_os("CI").is_none(), "the DPoP e2e test under CI needs python3 with PyJWT: {problem}");
    eprintln!("\n!!!!!!!! SKIPPED DPoP e2e test: {problem}");
    eprintln!("!!!!!!!! install with: python3 -m pip install -r tests/interop/requirements.txt\n");
    false
}

async fn data(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"client_id": auth.claims().client_id}))
}

/// An actix resource server on 127.0.0.1:0 protected by a `Verifier` of
/// `issuer`'s tokens for [`AUDIENCE`], on its own thread.
fn resource_server(issuer: &str) -> (SocketAddr, ServerHandle) {
    let (tx, rx) = mpsc::channel();
    let issuer = issuer.to_owned();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let verifier = Verifier::builder().issuer(issuer).audience(AUDIENCE).build().await.unwrap();
            let server =
                HttpServer::new(move || App::new().app_data(verifier.clone()).route("/data", web::get().to(data)))
                    .workers(1)
                    .bind(("127.0.0.1", 0))
                    .unwrap();
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((addr, server.handle())).unwrap();
            server.await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(30)).expect("resource server start")
}

#[test]
fn python_client_gets_dpop_bound_tokens_that_the_resource_server_accepts_only_with_proofs() {
    if !python_ready() {
        return;
    }
    let opts = IssuerOptions {
        extra_toml: format!(
            "\n[[clients]]\nid = \"{DPOP_CLIENT}\"\nsecret_hash = \"{}\"\nscopes = [\"read\"]\naudiences = [\"{AUDIENCE}\"]\ndpop = \"required\"\n",
            secret_hash()
        ),
        ..IssuerOptions::default()
    };
    let issuer = Issuer::start(&opts);
    let (addr, server) = resource_server(&issuer.url);
    let script = workspace_root().join("tests/interop/dpop.py");
    let child = Command::new(python())
        .arg(&script)
        .args([&issuer.token_endpoint(), &format!("http://{addr}"), DPOP_CLIENT, CLIENT_SECRET])
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
        assert!(Instant::now() < deadline, "dpop.py did not finish within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    guard.child().stdout.take().unwrap().read_to_string(&mut out).unwrap();
    guard.child().stderr.take().unwrap().read_to_string(&mut err).unwrap();
    drop(server.stop(false));
    assert!(status.success(), "dpop.py failed:\n{out}\n{err}\nissuer log:\n{}", issuer.log());
    for check in [
        "required_client_without_proof",
        "ES256_token_bound",
        "ES256_resource_accepts",
        "ES256_replay",
        "ES256_other_key",
        "ES256_as_bearer",
        "RS256_token_bound",
        "RS256_resource_accepts",
        "RS256_replay",
        "RS256_as_bearer",
        "done",
    ] {
        assert!(out.contains(&format!("\"check\": \"{check}\", \"ok\": true")), "{check} missing:\n{out}");
    }
}
