//! Helpers shared by the end-to-end tests (`tests/e2e.rs`): locating and
//! building the workspace binaries, starting the real `jwks-issuer` on a
//! free port with a temporary config and key folder, and killing every
//! child process on drop.
//!
//! Only the standard library, `tempfile` and `serde_json` are used here, so
//! the helpers stay independent of the code under test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

/// The secret of every client of the test config: URL-safe characters
/// only, so that every client library encodes it the same way.
pub const CLIENT_SECRET: &str = "e2e-secret_0123456789abcdefghijklmnopqrstuvwxyz";
/// A client that gets ES256 tokens.
pub const ES_CLIENT: &str = "e2e-es256";
/// A client that gets RS256 tokens.
pub const RS_CLIENT: &str = "e2e-rs256";
/// The audience of every token of the test config.
pub const AUDIENCE: &str = "https://api.e2e.test";
/// The scopes of every client of the test config.
pub const SCOPES: &[&str] = &["read", "write"];

/// How long the issuer may take to answer `/readyz` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The folder of the workspace binaries: the test executable lives in
/// `target/<profile>/deps/`, the binaries in `target/<profile>/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a folder");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") { deps.parent().expect("profile folder") } else { deps };
    dir.to_path_buf()
}

/// The workspace root (this package's manifest folder).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of a workspace binary (`jwks-issuer`, `jwks-verify`), built
/// once per test process when it is missing or older than its sources.
///
/// `cargo test --workspace` builds every workspace binary before running
/// the tests; `cargo test -p jwks-e2e` does not, hence the build here.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let missing = ["jwks-issuer", "jwks-verify"].iter().any(|n| !bin_dir().join(n).is_file());
        let stale = ["jwks-issuer", "jwks-verify"].iter().any(|n| is_stale(&bin_dir().join(n)));
        if missing || stale || std::env::var_os("JWKS_E2E_BUILD").is_some() {
            build_binaries(missing);
        }
    });
    let path = bin_dir().join(name);
    assert!(path.is_file(), "{} does not exist after building", path.display());
    path
}

/// Whether `binary` is older than any source file of the crates it is built from.
fn is_stale(binary: &Path) -> bool {
    let Ok(built) = binary.metadata().and_then(|m| m.modified()) else { return true };
    let root = workspace_root();
    let mut newest = std::time::UNIX_EPOCH;
    for dir in ["crates/jose", "crates/issuer", "crates/verifier"] {
        newest_mtime(&root.join(dir).join("src"), &mut newest);
        if let Ok(t) = root.join(dir).join("Cargo.toml").metadata().and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    }
    newest > built
}

fn newest_mtime(dir: &Path, newest: &mut std::time::SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            newest_mtime(&p, newest);
        } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
            *newest = (*newest).max(t);
        }
    }
}

fn build_binaries(required: bool) {
    let profile = bin_dir().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root()).args([
        "build",
        "-p",
        "jwks-issuer",
        "-p",
        "jwks-verifier",
        "--bins",
        "--features",
        "jwks-verifier/cli",
    ]);
    if profile == "release" {
        cmd.arg("--release");
    }
    eprintln!("e2e: building the workspace binaries: {cmd:?}");
    let status = cmd.status().expect("run cargo build");
    if !status.success() {
        assert!(
            !required,
            "`cargo build -p jwks-issuer -p jwks-verifier --bins --features jwks-verifier/cli` failed: {status}"
        );
        eprintln!("e2e: WARNING: the build failed ({status}); testing the binaries already built");
    }
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        ChildGuard { child: Some(child) }
    }

    /// The guarded process.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Whether the process has exited (and how).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child().try_wait().ok().flatten()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// A port that was free a moment ago (bound on 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// `jwks-issuer hash-secret` of [`CLIENT_SECRET`], computed once per process.
pub fn secret_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let mut child = Command::new(bin("jwks-issuer"))
            .arg("hash-secret")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn jwks-issuer hash-secret");
        child.stdin.take().expect("stdin").write_all(format!("{CLIENT_SECRET}\n").as_bytes()).expect("write secret");
        let out = child.wait_with_output().expect("hash-secret output");
        assert!(out.status.success(), "hash-secret failed: {}", String::from_utf8_lossy(&out.stderr));
        let hash = String::from_utf8(out.stdout).expect("utf-8").trim().to_string();
        assert!(hash.starts_with("$argon2id$"), "unexpected hash-secret output: {hash}");
        hash
    })
    .clone()
}

/// Settings of a test issuer; the defaults rotate nothing on their own.
#[derive(Debug, Clone)]
pub struct IssuerOptions {
    /// `keys.publish_ahead`.
    pub publish_ahead: &'static str,
    /// `jwks.max_age`.
    pub max_age: &'static str,
    /// `keys.rotation_period`.
    pub rotation_period: &'static str,
    /// `tokens.ttl`.
    pub ttl: &'static str,
    /// TOML appended to the config (more clients, say).
    pub extra_toml: String,
    /// Files written beside the config before start: (name, contents).
    pub files: Vec<(String, String)>,
    /// `keys.retire_grace`.
    pub retire_grace: &'static str,
    /// Whether the brute-force limits are on (`false` writes
    /// `[throttle] burst = 0`, for tests that issue many tokens).
    pub throttle: bool,
    /// A key folder to use instead of a fresh one in the issuer's temporary
    /// folder (two servers on one folder, a folder on a tiny tmpfs).
    pub keys_dir: Option<PathBuf>,
    /// `keys.postgres` instead of `keys.dir` (replicas on one database).
    pub postgres: Option<String>,
    /// `JWKS_ISSUER_KEK` for the server and the CLI (unset when `None`).
    pub kek: Option<String>,
    /// `keys.rsa_bits`.
    pub rsa_bits: usize,
    /// `issuer`, when not the server's own URL (replicas behind one name).
    pub issuer: Option<String>,
    /// `[tls]`: serve https with this certificate and key (the URL is then
    /// `https://127.0.0.1:PORT`).
    pub tls: Option<CertFiles>,
    /// `keys.algorithms` as TOML; `None`: `["ES256", "RS256"]`.
    pub algorithms: Option<String>,
}

impl Default for IssuerOptions {
    fn default() -> Self {
        IssuerOptions {
            publish_ahead: "2s",
            max_age: "1s",
            rotation_period: "1h",
            ttl: "5m",
            extra_toml: String::new(),
            files: Vec::new(),
            retire_grace: "1m",
            throttle: true,
            keys_dir: None,
            postgres: None,
            kek: None,
            rsa_bits: 2048,
            issuer: None,
            tls: None,
            algorithms: None,
        }
    }
}

/// A running `jwks-issuer serve` with its own config and key folder.
#[derive(Debug)]
pub struct Issuer {
    /// `http://127.0.0.1:PORT`, the `iss` of its tokens.
    pub url: String,
    /// The config file.
    pub config: PathBuf,
    /// The key folder.
    pub keys_dir: PathBuf,
    log: PathBuf,
    opts: IssuerOptions,
    process: ChildGuard,
    // Dropped last: the folder outlives the process.
    _dir: tempfile::TempDir,
}

impl Issuer {
    /// Writes a config, starts `serve` on a free port and waits until
    /// `/readyz` answers 200 (a signing key for every algorithm).
    pub fn start(opts: &IssuerOptions) -> Issuer {
        Issuer::try_start(opts).unwrap_or_else(|e| panic!("could not start jwks-issuer: {e}"))
    }

    /// As [`Issuer::start`], but `Err` with the log when the server exits
    /// before it is ready (as it must when its key store is unreachable).
    pub fn try_start(opts: &IssuerOptions) -> Result<Issuer, String> {
        let dir = tempfile::Builder::new().prefix("jwks-e2e-").tempdir().expect("temp dir");
        let keys_dir = opts.keys_dir.clone().unwrap_or_else(|| dir.path().join("keys"));
        let config = dir.path().join("issuer.toml");
        let log = dir.path().join("issuer.log");
        let mut last_error = String::new();
        // A port released by free_port() can be taken by another process
        // before the issuer binds it: try a few.
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        for _ in 0..3 {
            let url = format!("{scheme}://127.0.0.1:{}", free_port());
            let mut process = launch(&url, &config, &keys_dir, &log, opts);
            match wait_ready(&mut process, &url, &log, START_TIMEOUT) {
                Ok(()) => return Ok(Issuer { url, config, keys_dir, log, opts: opts.clone(), process, _dir: dir }),
                // A port taken meanwhile says so; anything else is final.
                Err(e) if e.contains("cannot listen") => last_error = e,
                Err(e) => return Err(e),
            }
        }
        Err(last_error)
    }

    /// Kills the server with SIGKILL (`kill -9`: no shutdown code runs) and
    /// reaps it.
    pub fn kill9(&mut self) {
        let child = self.process.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The server's process id (while it runs).
    pub fn pid(&mut self) -> u32 {
        self.process.child().id()
    }

    /// Starts `serve` again on the same config, key folder and port (a new
    /// port if that one was taken meanwhile), without waiting for it; the
    /// log is appended to. The previous process must be gone ([`Issuer::kill9`]).
    pub fn respawn(&mut self) {
        assert!(self.process.try_wait().is_some(), "respawn: the previous server still runs");
        self.process = launch(&self.url, &self.config, &self.keys_dir, &self.log, &self.opts);
    }

    /// Waits until `/readyz` answers 200; `Err` when the process exited.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        wait_ready(&mut self.process, &self.url, &self.log, timeout)
    }

    /// Kills the server, starts it again on the same folder and waits until
    /// it is ready (on a new port if the old one cannot be bound).
    pub fn restart(&mut self) {
        self.kill9();
        self.respawn();
        if let Err(e) = self.wait_ready(START_TIMEOUT) {
            // The port was taken meanwhile: move to another one.
            eprintln!("e2e: restart on {} failed ({e}); trying another port", self.url);
            let scheme = if self.opts.tls.is_some() { "https" } else { "http" };
            self.url = format!("{scheme}://127.0.0.1:{}", free_port());
            self.respawn();
            self.wait_ready(START_TIMEOUT).unwrap_or_else(|e| panic!("could not restart jwks-issuer: {e}"));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        url_addr(&self.url)
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.url)
    }

    /// The JWKS URI.
    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.url)
    }

    /// Runs `jwks-issuer --config <this config> ARGS` (e.g. `keys rotate`)
    /// against the same key folder and returns its output; panics on failure.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("jwks-issuer"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("JWKS_ISSUER_CONFIG")
            .env_remove("JWKS_ISSUER_KEYS_DIR")
            .env_remove("JWKS_ISSUER_KEYS_POSTGRES")
            .env_remove("JWKS_ISSUER_KEK")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        if let Some(kek) = &self.opts.kek {
            cmd.env("JWKS_ISSUER_KEK", kek);
        }
        let out = cmd.output().expect("run jwks-issuer");
        assert!(
            out.status.success(),
            "jwks-issuer {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `keys list --json`: the `keys` array.
    pub fn keys(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["keys", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("keys list --json is JSON");
        v["keys"].as_array().cloned().unwrap_or_default()
    }

    /// The kid of the key of `alg` in `state` (e.g. "active"), if one.
    pub fn kid(&self, alg: &str, state: &str) -> Option<String> {
        self.keys()
            .into_iter()
            .find(|k| k["alg"] == alg && k["state"] == state)
            .and_then(|k| k["kid"].as_str().map(str::to_string))
    }

    /// The kids currently in the served JWKS.
    pub fn served_kids(&self) -> Vec<String> {
        let (status, body) = http_get(self.addr(), "/.well-known/jwks.json").expect("GET jwks");
        assert_eq!(status, 200, "GET /.well-known/jwks.json: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JWKS is JSON");
        v["keys"].as_array().expect("keys array").iter().filter_map(|k| k["kid"].as_str().map(str::to_string)).collect()
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// The server's whole log, every restart included.
    pub fn full_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.try_wait().is_none()
    }
}

/// Writes the config for `url` and spawns `serve` on its port, its output
/// appended to `log`.
fn launch(url: &str, config: &Path, keys_dir: &Path, log: &Path, opts: &IssuerOptions) -> ChildGuard {
    let port = url.rsplit(':').next().expect("url has a port");
    std::fs::write(config, config_toml(url, keys_dir, &secret_hash(), opts) + &opts.extra_toml).expect("write config");
    for (name, contents) in &opts.files {
        let beside = config.parent().expect("config has a folder").join(name);
        std::fs::write(beside, contents).expect("write file beside the config");
    }
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    let mut cmd = Command::new(bin("jwks-issuer"));
    cmd.arg("--config")
        .arg(config)
        .arg("serve")
        .env("JWKS_ISSUER_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("JWKS_ISSUER_CONFIG")
        .env_remove("JWKS_ISSUER_ISSUER")
        .env_remove("JWKS_ISSUER_KEYS_DIR")
        .env_remove("JWKS_ISSUER_KEYS_POSTGRES")
        .env_remove("JWKS_ISSUER_KEK")
        .env_remove("JWKS_ISSUER_TOKENS_TTL")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file);
    if let Some(kek) = &opts.kek {
        cmd.env("JWKS_ISSUER_KEK", kek);
    }
    ChildGuard::new(cmd.spawn().expect("spawn jwks-issuer serve"))
}

/// Waits until the server at `url` answers `/readyz` with 200: `Err` with
/// its log when it exits first, a panic after `timeout`.
fn wait_ready(process: &mut ChildGuard, url: &str, log: &Path, timeout: Duration) -> Result<(), String> {
    let addr = url_addr(url);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = process.try_wait() {
            return Err(format!("jwks-issuer serve exited with {status}:\n{}", read_log(log)));
        }
        let ready = if url.starts_with("https://") {
            curl(&["-k", &format!("{url}/readyz")]).is_some_and(|(status, _)| status == 200)
        } else {
            http_get(addr, "/readyz").is_some_and(|(status, _)| status == 200)
        };
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            panic!("jwks-issuer was not ready within {timeout:?}:\n{}", read_log(log));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The test config. The `listen` written here is overridden by
/// `JWKS_ISSUER_LISTEN`, so the override is exercised too.
fn config_toml(url: &str, keys_dir: &Path, hash: &str, o: &IssuerOptions) -> String {
    let scopes = SCOPES.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    format!(
        r#"issuer = "{issuer}"
listen = "127.0.0.1:1"

[keys]
{store}
algorithms = {algorithms}
rsa_bits = {rsa_bits}
rotation_period = "{rotation_period}"
publish_ahead = "{publish_ahead}"
retire_grace = "{retire_grace}"

[jwks]
max_age = "{max_age}"

[tokens]
ttl = "{ttl}"
algorithm = "ES256"
audience = "{AUDIENCE}"

[[clients]]
id = "{ES_CLIENT}"
secret_hash = "{hash}"
scopes = [{scopes}]
audiences = ["{AUDIENCE}"]

[[clients]]
id = "{RS_CLIENT}"
secret_hash = "{hash}"
scopes = [{scopes}]
audiences = ["{AUDIENCE}"]
algorithm = "RS256"
{throttle}{tls}"#,
        throttle = if o.throttle { "" } else { "\n[throttle]\nburst = 0\n" },
        tls = match &o.tls {
            Some(t) => format!(
                "\n[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
                t.cert.display().to_string(),
                t.key.display().to_string()
            ),
            None => String::new(),
        },
        retire_grace = o.retire_grace,
        store = match &o.postgres {
            Some(url) => format!("postgres = {url:?}"),
            None => format!("dir = {:?}", keys_dir.display().to_string()),
        },
        rsa_bits = o.rsa_bits,
        algorithms = o.algorithms.as_deref().unwrap_or(r#"["ES256", "RS256"]"#),
        issuer = o.issuer.as_deref().unwrap_or(url),
        rotation_period = o.rotation_period,
        publish_ahead = o.publish_ahead,
        max_age = o.max_age,
        ttl = o.ttl,
    )
}

/// `127.0.0.1:PORT` of an `http://` or `https://` URL.
pub fn url_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("https://").trim_start_matches("http://").parse().expect("addr")
}

/// Runs `curl -sS ARGS` (bounded by short timeouts) and returns the HTTP
/// status and body, or `None` when it could not connect.
pub fn curl(args: &[&str]) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--connect-timeout", "2", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl on PATH");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n')?;
    let status: u16 = status.trim().parse().ok()?;
    (status != 0).then(|| (status, body.to_string()))
}

/// A PEM certificate and its private key on disk.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// A test certificate authority made with the `openssl` command, which
/// issues leaf certificates for given names.
#[derive(Debug)]
pub struct TestCa {
    /// The CA certificate (PEM).
    pub cert: PathBuf,
    key: PathBuf,
    dir: tempfile::TempDir,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).stdin(Stdio::null()).output().expect("openssl on PATH");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestCa {
    /// A new P-256 CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::Builder::new().prefix("jwks-e2e-ca-").tempdir().expect("temp dir");
        let cert = dir.path().join("ca.crt");
        let key = dir.path().join("ca.key");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        TestCa { cert, key, dir }
    }

    /// A leaf certificate for `sans` (`DNS:localhost`, `IP:127.0.0.1`),
    /// written as `<file>.crt` and `<file>.key` in the CA's folder.
    pub fn issue(&self, file: &str, sans: &str) -> CertFiles {
        let key = self.dir.path().join(format!("{file}.key"));
        let csr = self.dir.path().join(format!("{file}.csr"));
        let cert = self.dir.path().join(format!("{file}.crt"));
        let ext = self.dir.path().join(format!("{file}.ext"));
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={file}"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ]);
        std::fs::write(
            &ext,
            format!("subjectAltName={sans}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"),
        )
        .expect("write extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.cert.to_str().unwrap(),
            "-CAkey",
            self.key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        CertFiles { cert, key }
    }
}

/// A minimal HTTP/1.1 GET (status and body), bounded by short timeouts;
/// `None` when the server cannot be reached. Used to wait for readiness
/// without relying on the HTTP client under test.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.into() };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Serialises tests that must not overlap in time (none today; kept for
/// tests that measure timing-sensitive behaviour).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `f` every `every` until it returns `Some`, or panics with `what`
/// after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(every);
    }
}

/// A key-encryption key for tests (base64 of the bytes 0..32).
pub const TEST_KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Whether tests must fail, not skip, without PostgreSQL (`.ci/run` sets it).
pub fn postgres_required() -> bool {
    std::env::var("JWKS_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1")
}

/// Skips `test` loudly (or fails it under `JWKS_TEST_REQUIRE_POSTGRES=1`).
pub fn skip_without_postgres(test: &str, why: &str) {
    assert!(!postgres_required(), "JWKS_TEST_REQUIRE_POSTGRES=1 but {test} cannot run: {why}");
    eprintln!("\n*** SKIPPED {test}: {why}; set JWKS_TEST_REQUIRE_POSTGRES=1 to make this a failure ***\n");
}

/// Runs `sql` with `psql` as `postgres` on `host:port`, database `db`:
/// the unaligned output, or why not.
pub fn psql(port: u16, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", db, "-AtX", "-v", "ON_ERROR_STOP=1"])
        .args(["-c", sql])
        .env("PGCONNECT_TIMEOUT", "3")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A database of its own on a PostgreSQL server, dropped at the end.
#[derive(Debug)]
pub struct PgDb {
    /// Its name.
    pub name: String,
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
    port: u16,
}

impl PgDb {
    /// A fresh database on the shared server at 127.0.0.1:5432, or `None`
    /// after a loud skip message when none answers.
    pub fn create(test: &str) -> Option<PgDb> {
        PgDb::create_on(5432, test)
    }

    /// A fresh database on the server at 127.0.0.1:`port`.
    pub fn create_on(port: u16, test: &str) -> Option<PgDb> {
        let mut bytes = [0u8; 6];
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("urandom");
        let name = format!("jwks_e2e_{test}_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        match psql(port, "postgres", &format!("CREATE DATABASE {name}")) {
            Ok(_) => Some(PgDb { url: format!("postgres://postgres@127.0.0.1:{port}/{name}"), name, port }),
            Err(e) => {
                skip_without_postgres(test, &format!("no PostgreSQL at 127.0.0.1:{port} ({e})"));
                None
            }
        }
    }

    /// Runs `sql` in this database.
    pub fn sql(&self, sql: &str) -> String {
        psql(self.port, &self.name, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(self.port, "postgres", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A PostgreSQL server of the test's own (initdb into a temporary folder,
/// run as the `postgres` user), which the test may stop and start.
#[derive(Debug)]
pub struct PrivatePostgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl PrivatePostgres {
    /// Initialises and starts a server; `Err` saying why when this machine
    /// cannot (no PostgreSQL binaries, not root).
    pub fn start() -> Result<PrivatePostgres, String> {
        PrivatePostgres::start_with(None)
    }

    /// As [`PrivatePostgres::start`], with `ssl = on` and `tls` as the
    /// server's certificate and key (plain connections are still taken).
    pub fn start_with(tls: Option<&CertFiles>) -> Result<PrivatePostgres, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no /usr/lib/postgresql: {e}"))?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").is_file())
            .max()
            .ok_or("no initdb under /usr/lib/postgresql")?;
        let dir = tempfile::Builder::new().prefix("jwks-e2e-pg-").tempdir().map_err(|e| e.to_string())?;
        let owner = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !owner.success() {
            return Err("cannot give the folder to the postgres user (not root?)".into());
        }
        let data = dir.path().join("data");
        let pg = PrivatePostgres { port: free_port(), bin, data, dir };
        pg.as_postgres(&[
            pg.bin.join("initdb").to_str().unwrap_or_default(),
            "-D",
            pg.data.to_str().unwrap_or_default(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ])?;
        if let Some(tls) = tls {
            for (from, to) in [(&tls.cert, "server.crt"), (&tls.key, "server.key")] {
                let dest = pg.data.join(to);
                std::fs::copy(from, &dest).map_err(|e| format!("copy {}: {e}", from.display()))?;
                let ok = Command::new("chown").arg("postgres:postgres").arg(&dest).status().is_ok_and(|s| s.success())
                    && Command::new("chmod").arg("600").arg(&dest).status().is_ok_and(|s| s.success());
                if !ok {
                    return Err(format!("cannot give {} to the postgres user", dest.display()));
                }
            }
            let conf = pg.data.join("postgresql.conf");
            let mut f = std::fs::OpenOptions::new().append(true).open(&conf).map_err(|e| e.to_string())?;
            writeln!(f, "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'")
                .map_err(|e| e.to_string())?;
        }
        pg.resume()?;
        Ok(pg)
    }

    fn as_postgres(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("runuser: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let ctl = self.bin.join("pg_ctl");
        let mut all = vec![ctl.to_str().unwrap_or_default(), "-D", self.data.to_str().unwrap_or_default(), "-w"];
        all.extend_from_slice(args);
        self.as_postgres(&all)
    }

    /// Starts the (stopped) server.
    pub fn resume(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        self.pg_ctl(&["-o", &opts, "-l", log.to_str().unwrap_or_default(), "start"])
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["-m", "fast", "stop"])
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}
