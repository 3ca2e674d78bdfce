//! Test support: an in-process JWKS server that counts requests, signing
//! keys, and token minting.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jwks_jose::{Algorithm, JwkSet, SigningKey, compact};
use jwks_verifier::{ManualClock, Verifier, VerifierBuilder};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub(crate) const ISS: &str = "https://issuer.example.test";
pub(crate) const AUD: &str = "https://api.example.test";
/// The tests' "now", in seconds since the epoch.
pub(crate) const NOW: u64 = 1_700_000_000;

pub(crate) fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

pub(crate) fn es_key() -> SigningKey {
    SigningKey::from_pkcs8(Algorithm::ES256, &SigningKey::generate(Algorithm::ES256, 2048).unwrap()).unwrap()
}

/// One RSA key for the whole test binary (generation is slow).
pub(crate) fn rsa_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_pkcs8(Algorithm::RS256, &SigningKey::generate(Algorithm::RS256, 2048).unwrap()).unwrap()
    })
}

pub(crate) fn jwk_set(keys: &[&SigningKey]) -> JwkSet {
    JwkSet { keys: keys.iter().map(|k| k.public_jwk()).collect() }
}

pub(crate) fn header(key: &SigningKey) -> Value {
    json!({"alg": key.algorithm().as_str(), "typ": "at+jwt", "kid": key.kid()})
}

pub(crate) fn claims_at(now: u64) -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "user-1", "client_id": "client-1",
        "iat": now, "nbf": now, "exp": now + 300, "jti": "j-1", "scope": "read write",
    })
}

pub(crate) fn claims() -> Value {
    claims_at(NOW)
}

/// Signs arbitrary header and claims JSON values.
pub(crate) fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    sign_raw(key, header.to_string().as_bytes(), claims.to_string().as_bytes())
}

pub(crate) fn sign_raw(key: &SigningKey, header: &[u8], claims: &[u8]) -> String {
    compact::sign(key, header, claims).unwrap()
}

/// A valid token from `key` at [`NOW`].
pub(crate) fn token(key: &SigningKey) -> String {
    sign(key, &header(key), &claims())
}

/// A valid token from `key` issued at `now`.
pub(crate) fn token_at(key: &SigningKey, now: u64) -> String {
    sign(key, &header(key), &claims_at(now))
}

/// A token from `key` whose header names `kid`.
pub(crate) fn token_with_kid(key: &SigningKey, kid: &str) -> String {
    let mut h = header(key);
    h["kid"] = json!(kid);
    sign(key, &h, &claims())
}

/// Waits (without sleeping) until `cond` holds, failing after 10 s.
pub(crate) async fn until(mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !cond() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("condition not reached in 10 s");
}

/// How the mock answers `GET /jwks`.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// The current key set, with ETag and max-age; 304 on a matching If-None-Match.
    Serve,
    /// This status with an empty body.
    Status(u16),
    /// These bytes with status 200; `content_length: false` sends no
    /// Content-Length and closes the connection to end the body.
    Body { body: Vec<u8>, content_length: bool },
    /// Accepts and never answers.
    Hang,
    /// A 302 to this location.
    Redirect(String),
}

struct State {
    jwks: String,
    etag: String,
    max_age: Option<u64>,
    age: Option<u64>,
    mode: Mode,
    metadata: Option<Value>,
    if_none_match: Vec<Option<String>>,
    /// From this (1-based) request number on, serve these keys and ETag.
    later: Option<(usize, String, String)>,
}

/// An HTTP/1.1 JWKS server on 127.0.0.1:0 that counts requests.
pub(crate) struct MockJwks {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<State>>,
    jwks_requests: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
    gate: watch::Sender<bool>,
}

impl MockJwks {
    pub(crate) async fn start(keys: &[&SigningKey]) -> MockJwks {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            jwks: String::new(),
            etag: String::new(),
            max_age: Some(86_400),
            age: None,
            mode: Mode::Serve,
            metadata: None,
            if_none_match: Vec::new(),
            later: None,
        }));
        let (gate, _) = watch::channel(true);
        let mock = MockJwks { addr, state, jwks_requests: Arc::default(), not_modified: Arc::default(), gate };
        mock.set_keys(keys);
        let (state, count, not_modified, gate) =
            (mock.state.clone(), mock.jwks_requests.clone(), mock.not_modified.clone(), mock.gate.subscribe());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (state, count, not_modified, gate) =
                    (state.clone(), count.clone(), not_modified.clone(), gate.clone());
                tokio::spawn(serve(stream, state, count, not_modified, gate));
            }
        });
        mock
    }

    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/jwks", self.base())
    }

    pub(crate) fn set_keys(&self, keys: &[&SigningKey]) {
        let jwks = serde_json::to_string(&jwk_set(keys)).unwrap();
        let etag = format!("\"{}\"", jwks_jose::b64::encode(&jwks_jose::crypto::sha256(jwks.as_bytes())[..12]));
        let mut s = self.state.lock().unwrap();
        s.jwks = jwks;
        s.etag = etag;
    }

    /// Serves `keys` to the `n`th /jwks request (1-based) and those after it.
    pub(crate) fn set_keys_from_request(&self, n: usize, keys: &[&SigningKey]) {
        let jwks = serde_json::to_string(&jwk_set(keys)).unwrap();
        self.state.lock().unwrap().later = Some((n, jwks, format!("\"later-{n}\"")));
    }

    pub(crate) fn set_raw_jwks(&self, jwks: String) {
        let mut s = self.state.lock().unwrap();
        s.etag = format!("\"raw-{}\"", jwks.len());
        s.jwks = jwks;
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub(crate) fn set_max_age(&self, max_age: Option<u64>) {
        self.state.lock().unwrap().max_age = max_age;
    }

    /// Sends `Age: age` with every JWKS answer, as a cache in front would.
    pub(crate) fn set_age(&self, age: Option<u64>) {
        self.state.lock().unwrap().age = age;
    }

    /// Serves RFC 8414 metadata at /.well-known/oauth-authorization-server.
    pub(crate) fn set_metadata(&self, metadata: Value) {
        self.state.lock().unwrap().metadata = Some(metadata);
    }

    /// Holds every JWKS response until [`MockJwks::open_gate`].
    pub(crate) fn close_gate(&self) {
        self.gate.send_replace(false);
    }

    pub(crate) fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// Requests for /jwks so far.
    pub(crate) fn requests(&self) -> usize {
        self.jwks_requests.load(Ordering::SeqCst)
    }

    /// 304 answers so far.
    pub(crate) fn not_modified(&self) -> usize {
        self.not_modified.load(Ordering::SeqCst)
    }

    /// The If-None-Match header of each /jwks request.
    pub(crate) fn if_none_match(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().if_none_match.clone()
    }

    pub(crate) fn etag(&self) -> String {
        self.state.lock().unwrap().etag.clone()
    }

    /// A builder for a verifier of this mock's keys at the manual clock.
    pub(crate) fn builder(&self, clock: &ManualClock) -> VerifierBuilder {
        Verifier::builder().issuer(ISS).audience(AUD).jwks_uri(self.url()).clock(Arc::new(clock.clone()))
    }
}

async fn serve(
    mut stream: TcpStream,
    state: Arc<Mutex<State>>,
    count: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
    mut gate: watch::Receiver<bool>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let inm = head.lines().find_map(|l| {
        l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("if-none-match")).map(|(_, v)| v.trim().to_owned())
    });
    let response: Vec<u8> = if path == "/jwks" {
        let number = count.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = gate.wait_for(|open| *open).await;
        let (mode, jwks, etag, max_age, age) = {
            let mut s = state.lock().unwrap();
            s.if_none_match.push(inm.clone());
            let (jwks, etag) = match &s.later {
                Some((n, jwks, etag)) if number >= *n => (jwks.clone(), etag.clone()),
                _ => (s.jwks.clone(), s.etag.clone()),
            };
            (s.mode.clone(), jwks, etag, s.max_age, s.age)
        };
        let mut cache = max_age.map(|m| format!("Cache-Control: max-age={m}\r\n")).unwrap_or_default();
        if let Some(age) = age {
            cache.push_str(&format!("Age: {age}\r\n"));
        }
        match mode {
            Mode::Serve if inm.as_deref() == Some(etag.as_str()) => {
                not_modified.fetch_add(1, Ordering::SeqCst);
                format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n{cache}Connection: close\r\n\r\n").into_bytes()
            }
            Mode::Serve => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\nETag: {etag}\r\n{cache}Content-Length: {}\r\nConnection: close\r\n\r\n{jwks}",
                jwks.len()
            )
            .into_bytes(),
            Mode::Status(code) => {
                format!("HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
            }
            Mode::Body { body, content_length } => {
                let len = if content_length { format!("Content-Length: {}\r\n", body.len()) } else { String::new() };
                let mut out = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{len}Connection: close\r\n\r\n")
                    .into_bytes();
                out.extend_from_slice(&body);
                out
            }
            Mode::Hang => {
                std::future::pending::<()>().await;
                return;
            }
            Mode::Redirect(location) => {
                format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .into_bytes()
            }
        }
    } else if path == "/.well-known/oauth-authorization-server" && state.lock().unwrap().metadata.is_some() {
        let body = state.lock().unwrap().metadata.clone().unwrap().to_string();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    } else {
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}
