//! DPoP end to end (RFC 9449): the real `jwks-issuer` binds tokens to a
//! client's key at `/token`; an actix resource server built with
//! `jwks_verifier::actix` accepts them only with a fresh proof by that key;
//! the client is `tests/interop/dpop.py`, signing proofs with PyJWT over
//! `cryptography` keys (not our code).
//!
//! Without python3, PyJWT or cryptography the test is skipped with a loud
//! message, except under CI (`CI` set), where it fails.

use std::{net::SocketAddr, sync::mpsc, time::Duration};

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, web};
use jwks_e2e::{AUDIENCE, CLIENT_SECRET, Issuer, IssuerOptions, secret_hash};
use jwks_verifier::{Verifier, actix::Authenticated};

use crate::common::{python_ready, run_python};

const DPOP_CLIENT: &str = "e2e-dpop";

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
    if !python_ready("jwt, cryptography, requests", "the DPoP e2e test") {
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
    let (status, out, err) =
        run_python("dpop.py", &[&issuer.token_endpoint(), &format!("http://{addr}"), DPOP_CLIENT, CLIENT_SECRET]);
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
