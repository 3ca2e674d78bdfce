//! Transport options: a JWKS over HTTPS whose certificate a test CA signed
//! (refused by the default roots, accepted with the CA file, by the
//! library and by `jwks-verify --ca-file` or `SSL_CERT_FILE`), the default
//! `User-Agent` and extra headers, a proxy, and a caller's own client.

use std::{
    io::Write,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
};

use jwks_verifier::{ManualClock, Verifier, dangerous::DangerousOptions};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{cli, support::*};

/// A test CA and a server certificate for `localhost` / 127.0.0.1.
struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "jwks-verifier test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    Pki { ca_pem: ca_cert.pem(), server: Arc::new(server) }
}

/// An HTTPS JWKS server on 127.0.0.1:0 that records each request's head.
async fn https_jwks(server: Arc<rustls::ServerConfig>, jwks: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, jwks, seen) = (acceptor.clone(), jwks.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let head = read_head(&mut tls).await;
                seen.lock().unwrap().push(head);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{jwks}",
                    jwks.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, heads)
}

async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn jwks_of(key: &jwks_jose::SigningKey) -> String {
    serde_json::to_string(&jwk_set(&[key])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_behind_an_internal_ca_verifies_with_the_ca_file_only() {
    let pki = pki();
    let key = es_key();
    let (port, heads) = https_jwks(pki.server.clone(), jwks_of(&key)).await;
    let uri = format!("https://localhost:{port}/jwks");
    let clock = ManualClock::new(start_time());
    let builder = || {
        Verifier::builder()
            .issuer(ISS)
            .audience(AUD)
            .jwks_uri(&uri)
            .clock(Arc::new(clock.clone()))
            .ssl_cert_file_from_env(false)
    };

    let default_roots = builder().build().await.unwrap();
    let err = default_roots.verify(&token(&key)).await.unwrap_err();
    assert_eq!(err.code(), "jwks_unavailable");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let with_ca = builder().ca_file(&ca_file).header("X-Api-Key", "k-1").build().await.unwrap();
    with_ca.verify(&token(&key)).await.unwrap();
    let head = heads.lock().unwrap().last().cloned().unwrap().to_ascii_lowercase();
    assert!(head.contains(&format!("user-agent: jwks-verifier/{}", env!("CARGO_PKG_VERSION"))), "{head}");
    assert!(head.contains("x-api-key: k-1"), "{head}");

    let with_pem = builder().ca_pem(pki.ca_pem.clone()).header("User-Agent", "my-api/2").build().await.unwrap();
    with_pem.verify(&token(&key)).await.unwrap();
    let head = heads.lock().unwrap().last().cloned().unwrap().to_ascii_lowercase();
    assert!(head.contains("user-agent: my-api/2") && !head.contains("jwks-verifier/"), "{head}");

    let missing = builder().ca_file(dir.path().join("nope.pem")).build().await.unwrap_err();
    assert_eq!(missing.code(), "invalid_config");
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let junk = builder().ca_file(dir.path().join("junk.pem")).build().await.unwrap_err();
    assert!(junk.to_string().contains("no certificate"), "{junk}");
    let bad_header = builder().header("bad header", "x").build().await.unwrap_err();
    assert_eq!(bad_header.code(), "invalid_config");

    // A caller's own client: its roots are used as they are.
    let own = reqwest::Client::builder()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates({
                    let mut roots = rustls::RootCertStore::empty();
                    let der = rustls::pki_types::pem::PemObject::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
                    roots.add(der).unwrap();
                    roots
                })
                .with_no_client_auth(),
        )
        .user_agent("caller/1")
        .build()
        .unwrap();
    let caller = builder().http_client(own).build().await.unwrap();
    caller.verify(&token(&key)).await.unwrap();
    assert!(heads.lock().unwrap().last().unwrap().to_ascii_lowercase().contains("user-agent: caller/1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_verify_takes_ca_file_and_honours_ssl_cert_file() {
    let pki = pki();
    let key = es_key();
    let (port, _) = https_jwks(pki.server.clone(), jwks_of(&key)).await;
    let uri = format!("https://localhost:{port}/jwks");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let token = sign(&key, &header(&key), &claims_at(cli::now()));
    let run = move |args: Vec<String>, env: Option<std::path::PathBuf>| {
        let token = token.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(cli::BIN);
            cmd.args(["--issuer", ISS, "--audience", AUD, "--jwks-uri"]).args(&args);
            cmd.env_remove("SSL_CERT_FILE");
            if let Some(f) = env {
                cmd.env("SSL_CERT_FILE", f);
            }
            let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
            writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
            let out = child.wait_with_output().unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        })
    };
    let plain = run(vec![uri.clone()], None).await.unwrap();
    assert_eq!(plain["error"], "jwks_unavailable", "{plain}");
    let with_flag = run(vec![uri.clone(), "--ca-file".into(), ca_file.display().to_string()], None).await.unwrap();
    assert_eq!(with_flag["valid"], true, "{with_flag}");
    let with_env = run(vec![uri], Some(ca_file)).await.unwrap();
    assert_eq!(with_env["valid"], true, "{with_env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_through_the_configured_proxy() {
    let key = es_key();
    let jwks = jwks_of(&key);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else { return };
            let head = read_head(&mut tcp).await;
            seen.lock().unwrap().push(head.lines().next().unwrap_or_default().to_owned());
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{jwks}", jwks.len());
            let _ = tcp.write_all(resp.as_bytes()).await;
        }
    });
    let clock = ManualClock::new(start_time());
    let v = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_uri("http://jwks.internal.test/keys")
        .allow_http()
        .proxy(&proxy)
        .clock(Arc::new(clock))
        .build()
        .await
        .unwrap();
    v.verify(&token(&key)).await.unwrap();
    assert_eq!(lines.lock().unwrap().as_slice(), ["GET http://jwks.internal.test/keys HTTP/1.1"]);
}

#[cfg(not(feature = "native-roots"))]
#[tokio::test]
async fn native_roots_without_the_feature_is_a_config_error() {
    let err = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_uri("https://127.0.0.1:9/jwks")
        .ssl_cert_file_from_env(false)
        .native_roots(true)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    assert!(err.to_string().contains("native-roots"), "{err}");
}

#[cfg(feature = "native-roots")]
#[tokio::test]
async fn native_roots_load_the_platform_store() {
    let v = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_uri("https://127.0.0.1:9/jwks")
        .ssl_cert_file_from_env(false)
        .native_roots(true)
        .build()
        .await;
    assert!(v.is_ok(), "{:?}", v.err());
}
