//! DPoP nonces end to end (RFC 9449 §8, §9, issue 23): two real issuer
//! replicas on one PostgreSQL store with one `JWKS_ISSUER_KEK`, an actix
//! resource server with a nonce policy, and `tests/interop/dpop_nonce.py`,
//! a client signing proofs with PyJWT over `cryptography` keys (not our
//! code): the use_dpop_nonce dance, a nonce from replica A accepted by B,
//! an expired nonce refused, an `iat` an hour off rescued by a nonce,
//! per-client `required` against the global `allowed`, and the resource
//! server's 401 with `DPoP-Nonce`.
//!
//! Skips loudly without PostgreSQL on 127.0.0.1:5432 or without the Python
//! libraries, and fails instead under CI (`CI`, `JWKS_TEST_REQUIRE_POSTGRES=1`).

use std::{net::SocketAddr, sync::Arc, sync::mpsc, time::Duration};

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, middleware::from_fn, web};
use jwks_e2e::{AUDIENCE, CLIENT_SECRET, Issuer, IssuerOptions, PgDb, TEST_KEK, secret_hash};
use jwks_verifier::{
    Verifier,
    actix::{Authenticated, send_dpop_nonce},
    nonce::{NonceMode, StatelessNonces},
};

use crate::common::{python_ready, run_python};

const ISSUER: &str = "https://issuer.nonce.e2e.test";

async fn data(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"client_id": auth.claims().client_id}))
}

/// An actix resource server on 127.0.0.1:0 over `jwks_uri`, requiring
/// DPoP nonces, on its own thread.
fn resource_server(jwks_uri: String) -> (SocketAddr, ServerHandle) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let nonces = StatelessNonces::new(&[42u8; 32], Duration::from_secs(60), NonceMode::Required).unwrap();
            let verifier = Verifier::builder()
                .issuer(ISSUER)
                .audience(AUDIENCE)
                .jwks_uri(jwks_uri)
                .dpop_nonce(Arc::new(nonces))
                .build()
                .await
                .unwrap();
            let server = HttpServer::new(move || {
                App::new().wrap(from_fn(send_dpop_nonce)).app_data(verifier.clone()).route("/data", web::get().to(data))
            })
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
fn python_client_does_the_nonce_dance_across_two_replicas_and_a_resource_server() {
    if !python_ready("jwt, cryptography, requests", "the DPoP nonce e2e test") {
        return;
    }
    let Some(db) = PgDb::create("nonce") else { return };
    let hash = secret_hash();
    let opts = IssuerOptions {
        postgres: Some(db.url.clone()),
        kek: Some(TEST_KEK.to_string()),
        issuer: Some(ISSUER.into()),
        extra_toml: format!(
            "\n[[clients]]\nid = \"e2e-nonce-strict\"\nsecret_hash = \"{hash}\"\nscopes = [\"read\"]\n\
             audiences = [\"{AUDIENCE}\"]\ndpop_nonce = \"required\"\n\
             \n[[clients]]\nid = \"e2e-nonce-allowed\"\nsecret_hash = \"{hash}\"\nscopes = [\"read\"]\n\
             audiences = [\"{AUDIENCE}\"]\n\
             \n[dpop]\nnonce = \"allowed\"\nnonce_step = \"2s\"\n"
        ),
        throttle: false,
        ..IssuerOptions::default()
    };
    let a = Issuer::start(&opts);
    let b = Issuer::start(&opts);
    let (addr, server) = resource_server(format!("{}/.well-known/jwks.json", a.url));
    let (status, out, err) = run_python(
        "dpop_nonce.py",
        &[
            &format!("{ISSUER}/token"),
            &a.token_endpoint(),
            &b.token_endpoint(),
            &format!("http://{addr}"),
            "e2e-nonce-strict",
            "e2e-nonce-allowed",
            CLIENT_SECRET,
        ],
    );
    drop(server.stop(false));
    assert!(status.success(), "dpop_nonce.py failed:\n{out}\n{err}\nA:\n{}\nB:\n{}", a.log(), b.log());
    for check in [
        "first_refused_with_nonce",
        "retry_accepted",
        "nonce_from_a",
        "replica_b_accepts_a_nonce",
        "global_allowed_without_nonce",
        "iat_hour_past_without_nonce",
        "iat_hour_past_with_nonce",
        "iat_hour_future_without_nonce",
        "iat_hour_future_with_nonce",
        "resource_asks_for_nonce",
        "resource_accepts_with_nonce",
        "expired_nonce_refused",
        "done",
    ] {
        assert!(out.contains(&format!("\"check\": \"{check}\", \"ok\": true")), "{check} missing:\n{out}");
    }
    for replica in [&a, &b] {
        assert!(!replica.log().contains("random per-process secret"), "the KEK derives the nonce key");
    }
}
