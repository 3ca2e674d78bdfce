//! Builds the app in-process over a key folder and a `ManualClock`, with
//! clients whose secret hashes are computed once per test binary.

use std::{
    path::Path,
    sync::{Arc, OnceLock},
};

use actix_web::{
    App,
    body::MessageBody,
    dev::{Payload, ServiceResponse},
    http::{StatusCode, header::HeaderMap},
    test,
    web::{self, Bytes},
};
use argon2::{
    Argon2, Params, PasswordHasher,
    password_hash::{PasswordHash, PasswordVerifier, SaltString},
};
use base64::Engine;
use jwks_issuer::{
    Config,
    clock::SharedClock,
    http::{self, AppState},
    keys::{DirStore, Keyring},
};
use jwks_jose::clock::{Clock, ManualClock, SystemClock, UnixTime};

/// The secret of clients `svc` and `rsa`.
pub(crate) const SECRET: &str = "s3cret-Value_0123456789";
/// A client id that needs form-urlencoding in Basic (space and `%`).
pub(crate) const ODD_ID: &str = "my client%";
/// Its secret (needs encoding too: `@`, space, `:`, `%`, `&`, `=`, `+`).
pub(crate) const ODD_SECRET: &str = "p@ss word:%&=+";
/// The issuer of the test config.
pub(crate) const ISSUER: &str = "https://issuer.example.test";
/// `tokens.audience` of the test config.
pub(crate) const DEFAULT_AUD: &str = "https://default.example.test";
/// The first audience of client `svc`.
pub(crate) const API_AUD: &str = "https://api.example.test";
/// The second audience of client `svc`.
pub(crate) const OTHER_AUD: &str = "https://other.example.test";
/// `jwks.max_age` of the test config, in seconds.
pub(crate) const JWKS_MAX_AGE: u64 = 420;

/// An argon2id PHC string with the cheapest parameters the issuer accepts
/// (m=7168 KiB, t=5, p=1: OWASP's weakest recommended line), so that tests
/// stay fast.
pub(crate) fn cheap_hash(secret: &str) -> String {
    let params = Params::new(7168, 5, 1, None).unwrap();
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"jwks-issuer-test").unwrap();
    argon.hash_password(secret.as_bytes(), &salt).unwrap().to_string()
}

/// Whether `hash` (a PHC string) verifies `secret`.
pub(crate) fn verifies(hash: &str, secret: &str) -> bool {
    let parsed = PasswordHash::new(hash).unwrap();
    Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok()
}

struct Hashes {
    secret: String,
    odd: String,
}

fn hashes() -> &'static Hashes {
    static HASHES: OnceLock<Hashes> = OnceLock::new();
    HASHES.get_or_init(|| Hashes { secret: cheap_hash(SECRET), odd: cheap_hash(ODD_SECRET) })
}

/// The hash of [`SECRET`], computed once.
pub(crate) fn secret_hash() -> &'static str {
    &hashes().secret
}

/// The test configuration over `keys_dir`, with `algorithms`.
pub(crate) fn config_text(keys_dir: &Path, algorithms: &str) -> String {
    let h = hashes();
    let mut text = format!(
        r#"issuer = "{ISSUER}"
listen = "127.0.0.1:0"
[keys]
dir = "{dir}"
algorithms = {algorithms}
[jwks]
max_age = "7m"
[tokens]
ttl = "15m"
algorithm = "ES256"
audience = "{DEFAULT_AUD}"

[[clients]]
id = "svc"
secret_hash = "{secret}"
scopes = ["read", "write", "admin"]
audiences = ["{API_AUD}", "{OTHER_AUD}"]

[[clients]]
id = "{ODD_ID}"
secret_hash = "{odd}"
scopes = ["read"]

"#,
        dir = keys_dir.display(),
        secret = h.secret,
        odd = h.odd,
    );
    if algorithms.contains("RS256") {
        text.push_str(&format!(
            "\n[[clients]]\nid = \"rsa\"\nsecret_hash = \"{}\"\nalgorithm = \"RS256\"\nttl = \"5m\"\n",
            h.secret
        ));
    }
    text
}

/// The real current time: tokens must verify with `jsonwebtoken`, whose
/// `exp` check reads the system clock.
pub(crate) fn real_now() -> u64 {
    SystemClock.unix_now().as_secs()
}

pub(crate) fn parse_config(text: &str) -> Config {
    Config::from_toml(Path::new("issuer-test.toml"), text, &|_| None).unwrap()
}

/// A key ring over a fresh folder holding keys for `algorithms`. The folder
/// is removed once the keys are loaded: the ring serves from memory.
pub(crate) fn open_keyring(algorithms: &str) -> Arc<Keyring> {
    let dir = tempfile::tempdir().unwrap();
    open_keyring_in(dir.path(), algorithms)
}

/// A key ring over the folder `dir`, creating keys for `algorithms`.
pub(crate) fn open_keyring_in(dir: &Path, algorithms: &str) -> Arc<Keyring> {
    let config = parse_config(&config_text(dir, algorithms));
    let clock: SharedClock = Arc::new(ManualClock::at(UnixTime::from_secs(real_now())));
    let store = DirStore::open(dir, None).unwrap();
    Arc::new(
        Keyring::open(store, clock, config.keys.algorithms.clone(), config.key_policy(), config.keys.rsa_bits).unwrap(),
    )
}

/// One ES256 + RS256 ring for the whole binary (RSA generation is slow).
pub(crate) fn shared_keyring() -> Arc<Keyring> {
    static RING: OnceLock<Arc<Keyring>> = OnceLock::new();
    RING.get_or_init(|| open_keyring(r#"["ES256", "RS256"]"#)).clone()
}

/// An app state and its clock.
pub(crate) struct Fixture {
    pub(crate) state: web::Data<AppState>,
    pub(crate) clock: ManualClock,
}

impl Fixture {
    /// The standard fixture: ES256 and RS256 keys, the three test clients.
    pub(crate) fn new() -> Self {
        Self::with(shared_keyring(), r#"["ES256", "RS256"]"#)
    }

    /// A fixture over `keyring` with `keys.algorithms = algorithms`.
    pub(crate) fn with(keyring: Arc<Keyring>, algorithms: &str) -> Self {
        Self::from_text(keyring, &config_text(Path::new("/nonexistent-test-keys"), algorithms))
    }

    /// A fixture over `keyring` with the configuration `text`.
    pub(crate) fn from_text(keyring: Arc<Keyring>, text: &str) -> Self {
        let config = Arc::new(parse_config(text));
        let clock = ManualClock::at(UnixTime::from_secs(real_now()));
        let shared: SharedClock = Arc::new(clock.clone());
        let state = web::Data::new(AppState::new(config, keyring, shared).unwrap());
        Fixture { state, clock }
    }

    /// Sends `req` to a fresh in-process app over this state.
    pub(crate) async fn call(&self, req: test::TestRequest) -> Reply {
        self.call_streamed(req, None).await
    }

    /// Sends `req`, with its body replaced by `payload` when given (a
    /// stream without `Content-Length`, as a chunked request arrives).
    pub(crate) async fn call_streamed(&self, req: test::TestRequest, payload: Option<Payload>) -> Reply {
        let mut req = req.to_request();
        if let Some(p) = payload {
            req.headers_mut().remove("content-length");
            req.headers_mut().insert(
                actix_web::http::header::TRANSFER_ENCODING,
                actix_web::http::header::HeaderValue::from_static("chunked"),
            );
            req = req.replace_payload(p).0;
        }
        let app = test::init_service(App::new().configure(http::routes(&self.state))).await;
        let res: ServiceResponse = test::call_service(&app, req).await.map_into_boxed_body();
        let status = res.status();
        let headers = res.headers().clone();
        // The handler's own `Bytes` when the body is one (so tests can see
        // that the JWKS is not copied); a collected stream otherwise.
        let body = match res.into_body().try_into_bytes() {
            Ok(bytes) => bytes,
            Err(stream) => actix_web::body::to_bytes(stream).await.unwrap(),
        };
        Reply { status, headers, body }
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.call(test::TestRequest::get().uri(path)).await
    }

    /// `POST /token` with a form `body` and optional `Authorization`.
    pub(crate) async fn token(&self, body: &str, authorization: Option<&str>) -> Reply {
        self.token_from(body, authorization, None).await
    }

    /// `POST /token` as [`Fixture::token`], from the peer address `peer`.
    pub(crate) async fn token_from(
        &self,
        body: &str,
        authorization: Option<&str>,
        peer: Option<std::net::SocketAddr>,
    ) -> Reply {
        let mut req = test::TestRequest::post()
            .uri("/token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(body.to_string());
        if let Some(a) = authorization {
            req = req.insert_header(("authorization", a));
        }
        if let Some(p) = peer {
            req = req.peer_addr(p);
        }
        self.call(req).await
    }
}

/// The answer to one request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The `error` member of a JSON error body.
    pub(crate) fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_else(|| panic!("no `error` in {:?}", self.json())).to_string()
    }

    /// Asserts an RFC 6749 §5.2 error answer: status, code, the JSON shape
    /// and `Cache-Control: no-store`.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status; body {:?}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.error(), code, "error code");
        assert!(self.json()["error_description"].is_string(), "error_description");
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert!(self.header("content-type").unwrap().starts_with("application/json"));
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `Authorization: Basic` for `id` and `secret` (RFC 6749 §2.3.1).
pub(crate) fn basic(id: &str, secret: &str) -> String {
    basic_raw(&format!("{}:{}", form_encode(id), form_encode(secret)))
}

/// `Authorization: Basic` of `raw` as is.
pub(crate) fn basic_raw(raw: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// The body of a client_secret_post request for `id` and `secret`.
pub(crate) fn post_creds(id: &str, secret: &str) -> String {
    format!("client_id={}&client_secret={}", form_encode(id), form_encode(secret))
}

/// `grant_type=client_credentials` plus `extra`.
pub(crate) fn cc(extra: &str) -> String {
    if extra.is_empty() {
        "grant_type=client_credentials".into()
    } else {
        format!("grant_type=client_credentials&{extra}")
    }
}
