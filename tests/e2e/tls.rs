//! The TLS listener (`[tls]`, issue 20) with the real binary: TLS 1.2 and
//! 1.3 handshakes, HTTP/2 by ALPN, `https://` in discovery, the certificate
//! reloaded on `SIGHUP` while an open connection keeps working, and bad
//! files refused at start naming the file. Certificates come from a test CA
//! made with the `openssl` command; the client is rustls (aws-lc-rs), with
//! the protocol versions pinned, and curl for HTTP/2.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use jwks_e2e::{CLIENT_SECRET, CertFiles, ES_CLIENT, Issuer, IssuerOptions, TestCa, curl, poll};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

/// A TLS client connection to the issuer, kept alive across requests.
struct TlsConn {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

fn pem_cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl TlsConn {
    /// Connects to `addr` trusting `roots`, offering `versions` and `alpn`,
    /// and completes the handshake.
    fn open(
        addr: SocketAddr,
        roots: &[&Path],
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Result<TlsConn, String> {
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.add(pem_cert(r)).expect("CA certificate");
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_protocol_versions(versions)
                .expect("versions")
                .with_root_certificates(store)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).map_err(|e| e.to_string())?;
        }
        Ok(TlsConn { stream })
    }

    fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.conn.protocol_version()
    }

    fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    fn peer_leaf(&self) -> CertificateDer<'static> {
        self.stream.conn.peer_certificates().expect("a peer certificate")[0].clone().into_owned()
    }

    /// An HTTP/1.1 GET on this connection (kept open): status and body.
    fn get(&mut self, path: &str) -> (u16, String) {
        write!(self.stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("write request");
        self.stream.flush().expect("flush");
        let mut reader = BufReader::new(&mut self.stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status line");
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

fn tls_issuer(cert: CertFiles) -> Issuer {
    Issuer::start(&IssuerOptions { tls: Some(cert), throttle: false, ..IssuerOptions::default() })
}

#[test]
fn tls_listener_speaks_tls12_tls13_and_http2() {
    let ca = TestCa::new("e2e listener CA");
    let issuer = tls_issuer(ca.issue("server", "DNS:localhost,IP:127.0.0.1"));
    assert!(issuer.url.starts_with("https://127.0.0.1:"), "{}", issuer.url);
    let addr = issuer.addr();

    for (version, expect) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut conn = TlsConn::open(addr, &[&ca.cert], &[version], &[b"http/1.1"]).expect("handshake");
        assert_eq!(conn.version(), Some(expect));
        let (status, body) = conn.get("/readyz");
        assert_eq!(status, 200, "{body}");
        // Keep-alive: a second request on the same connection.
        assert_eq!(conn.get("/healthz").0, 200);
    }

    // HTTP/2 is chosen by ALPN when offered, HTTP/1.1 otherwise.
    let both = TlsConn::open(addr, &[&ca.cert], rustls::ALL_VERSIONS, &[b"h2", b"http/1.1"]).expect("handshake");
    assert_eq!(both.alpn().as_deref(), Some(&b"h2"[..]));
    let h1 = TlsConn::open(addr, &[&ca.cert], rustls::ALL_VERSIONS, &[b"http/1.1"]).expect("handshake");
    assert_eq!(h1.alpn().as_deref(), Some(&b"http/1.1"[..]));

    // A real HTTP/2 exchange (curl with nghttp2): a token, then discovery.
    let cacert = ca.cert.to_str().unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--cacert", cacert, "-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
        .args(["-u", &format!("{ES_CLIENT}:{CLIENT_SECRET}"), "-d", "grant_type=client_credentials"])
        .arg(issuer.token_endpoint())
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200", "{}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = curl(&["--cacert", cacert, &format!("{}/.well-known/oauth-authorization-server", issuer.url)])
        .expect("discovery answers");
    assert_eq!(status, 200);
    let meta: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(meta["issuer"], issuer.url.as_str());
    assert_eq!(meta["token_endpoint"], issuer.token_endpoint().as_str());

    // A client that does not trust the CA fails the handshake.
    let other = TestCa::new("another CA");
    let e = TlsConn::open(addr, &[&other.cert], rustls::ALL_VERSIONS, &[b"http/1.1"]).err().expect("untrusted");
    assert!(e.contains("UnknownIssuer") || e.contains("certificate"), "{e}");
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    let old_ca = TestCa::new("old CA");
    let new_ca = TestCa::new("new CA");
    let served = old_ca.issue("server", "IP:127.0.0.1");
    let replacement = new_ca.issue("server", "IP:127.0.0.1");
    let (old_leaf, new_leaf) = (pem_cert(&served.cert), pem_cert(&replacement.cert));
    let mut issuer = tls_issuer(served.clone());
    let addr = issuer.addr();
    let roots = [old_ca.cert.as_path(), new_ca.cert.as_path()];
    let open = || TlsConn::open(addr, &roots, rustls::ALL_VERSIONS, &[b"http/1.1"]).expect("handshake");

    let mut before = open();
    assert_eq!(before.peer_leaf(), old_leaf);
    assert_eq!(before.get("/readyz").0, 200);

    // New files in place, then SIGHUP.
    std::fs::copy(&replacement.cert, &served.cert).unwrap();
    std::fs::copy(&replacement.key, &served.key).unwrap();
    let hup = |issuer: &mut Issuer| {
        let pid = issuer.pid().to_string();
        assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    };
    hup(&mut issuer);
    poll("a new connection to see the new certificate", Duration::from_secs(10), Duration::from_millis(50), || {
        (open().peer_leaf() == new_leaf).then_some(())
    });
    // The connection opened before the reload still answers.
    assert_eq!(before.get("/readyz").0, 200);
    assert_eq!(before.get("/.well-known/jwks.json").0, 200);
    assert!(issuer.log().contains("TLS certificate reloaded"), "{}", issuer.log());

    // A broken file: the server keeps the certificate it has, and says so.
    std::fs::write(&served.cert, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n").unwrap();
    hup(&mut issuer);
    poll("the failed reload in the log", Duration::from_secs(10), Duration::from_millis(50), || {
        issuer.log().contains("TLS certificate not reloaded").then_some(())
    });
    assert!(issuer.is_running());
    let mut after = open();
    assert_eq!(after.peer_leaf(), new_leaf);
    assert_eq!(after.get("/readyz").0, 200);
    assert_eq!(before.get("/readyz").0, 200);
    let log = issuer.full_log();
    assert!(log.contains(&served.cert.display().to_string()), "the failure names the file: {log}");
    assert!(!log.contains("PRIVATE KEY"), "no key material in the log");
}

#[test]
fn bad_tls_files_fail_the_start_naming_the_file() {
    let ca = TestCa::new("e2e CA");
    let good = ca.issue("server", "IP:127.0.0.1");
    let other = ca.issue("other", "IP:127.0.0.1");
    let missing = good.cert.with_file_name("missing.crt");
    let not_a_cert = good.cert.with_file_name("not-a-cert.crt");
    std::fs::write(&not_a_cert, "hello\n").unwrap();
    let cases = [
        (CertFiles { cert: missing.clone(), key: good.key.clone() }, missing.clone(), "cannot read"),
        (CertFiles { cert: not_a_cert.clone(), key: good.key.clone() }, not_a_cert.clone(), "no PEM certificate"),
        (CertFiles { cert: good.cert.clone(), key: good.cert.clone() }, good.cert.clone(), "no PEM private key"),
        (CertFiles { cert: good.cert.clone(), key: other.key.clone() }, other.key.clone(), "does not belong"),
    ];
    for (files, named, says) in cases {
        let e = Issuer::try_start(&IssuerOptions { tls: Some(files), ..IssuerOptions::default() })
            .expect_err("the start fails");
        assert!(e.contains(&named.display().to_string()) && e.contains(says), "{named:?} / {says}: {e}");
    }
}
