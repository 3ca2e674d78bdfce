//! Configuration: the TOML file (`config/issuer.toml` by default), the
//! environment overrides, and validation into [`Config`].
//!
//! The file layer is strict (`deny_unknown_fields`); [`Config::load`]
//! converts it once into validated values (durations, algorithms, parsed
//! hashes) and refuses a bad file with an error that names the file, the
//! key and what is wrong.

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use jwks_jose::Algorithm;
use serde::Deserialize;

use crate::Error;

/// Environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "JWKS_ISSUER_CONFIG";
/// Environment override of `issuer`.
pub const ENV_ISSUER: &str = "JWKS_ISSUER_ISSUER";
/// Environment override of `listen`.
pub const ENV_LISTEN: &str = "JWKS_ISSUER_LISTEN";
/// Environment override of `keys.dir`.
pub const ENV_KEYS_DIR: &str = "JWKS_ISSUER_KEYS_DIR";
/// Environment override of `keys.postgres` (the PostgreSQL key store,
/// replacing the file's `keys.dir` or `keys.postgres`).
pub const ENV_KEYS_POSTGRES: &str = "JWKS_ISSUER_KEYS_POSTGRES";
/// Environment override of `tokens.ttl` (a humantime duration).
pub const ENV_TOKENS_TTL: &str = "JWKS_ISSUER_TOKENS_TTL";
/// The default configuration path.
pub const DEFAULT_CONFIG: &str = "config/issuer.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    issuer: String,
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    keys: FileKeys,
    #[serde(default)]
    jwks: FileJwks,
    #[serde(default)]
    tokens: FileTokens,
    #[serde(default)]
    throttle: FileThrottle,
    #[serde(default)]
    dpop: FileDpop,
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    admin: FileAdmin,
    #[serde(default)]
    clients: Vec<FileClient>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    /// Proxies whose `Forwarded` / `X-Forwarded-For` name the client.
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    /// The admin listener (`/metrics` moves there when set).
    #[serde(default)]
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDpop {
    #[serde(default = "default_dpop_iat_window")]
    iat_window: String,
}

impl Default for FileDpop {
    fn default() -> Self {
        FileDpop { iat_window: default_dpop_iat_window() }
    }
}
fn default_dpop_iat_window() -> String {
    "60s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileThrottle {
    #[serde(default = "default_burst")]
    burst: u32,
    #[serde(default = "default_refill")]
    refill_every: String,
    #[serde(default = "default_address_burst")]
    address_burst: u32,
    #[serde(default = "default_address_refill")]
    address_refill_every: String,
    #[serde(default = "default_ipv6_prefix")]
    ipv6_prefix: u8,
    #[serde(default)]
    argon2_workers: Option<usize>,
}

impl Default for FileThrottle {
    fn default() -> Self {
        FileThrottle {
            burst: default_burst(),
            refill_every: default_refill(),
            address_burst: default_address_burst(),
            address_refill_every: default_address_refill(),
            ipv6_prefix: default_ipv6_prefix(),
            argon2_workers: None,
        }
    }
}
fn default_ipv6_prefix() -> u8 {
    64
}
fn default_burst() -> u32 {
    20
}
fn default_refill() -> String {
    "3s".into()
}
fn default_address_burst() -> u32 {
    100
}
fn default_address_refill() -> String {
    "1s".into()
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    #[serde(default)]
    dir: Option<PathBuf>,
    #[serde(default)]
    postgres: Option<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default = "default_rsa_bits")]
    rsa_bits: usize,
    #[serde(default = "default_rotation_period")]
    rotation_period: String,
    #[serde(default = "default_publish_ahead")]
    publish_ahead: String,
    #[serde(default = "default_retire_grace")]
    retire_grace: String,
}

impl Default for FileKeys {
    fn default() -> Self {
        FileKeys {
            dir: None,
            postgres: None,
            algorithms: default_algorithms(),
            rsa_bits: default_rsa_bits(),
            rotation_period: default_rotation_period(),
            publish_ahead: default_publish_ahead(),
            retire_grace: default_retire_grace(),
        }
    }
}

fn default_keys_dir() -> PathBuf {
    PathBuf::from("keys")
}
fn default_algorithms() -> Vec<String> {
    vec!["ES256".into(), "RS256".into()]
}
fn default_rsa_bits() -> usize {
    2048
}
fn default_rotation_period() -> String {
    "30d".into()
}
fn default_publish_ahead() -> String {
    "1d".into()
}
fn default_retire_grace() -> String {
    "1m".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJwks {
    #[serde(default = "default_max_age")]
    max_age: String,
}

impl Default for FileJwks {
    fn default() -> Self {
        FileJwks { max_age: default_max_age() }
    }
}
fn default_max_age() -> String {
    "5m".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTokens {
    #[serde(default = "default_ttl")]
    ttl: String,
    #[serde(default = "default_token_alg")]
    algorithm: String,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default = "default_assertion_max_lifetime")]
    assertion_max_lifetime: String,
    #[serde(default = "default_assertion_audience")]
    assertion_audience: String,
}
fn default_assertion_audience() -> String {
    "issuer".into()
}

impl Default for FileTokens {
    fn default() -> Self {
        FileTokens {
            ttl: default_ttl(),
            algorithm: default_token_alg(),
            audience: None,
            assertion_max_lifetime: default_assertion_max_lifetime(),
            assertion_audience: default_assertion_audience(),
        }
    }
}
fn default_assertion_max_lifetime() -> String {
    "5m".into()
}
fn default_ttl() -> String {
    "15m".into()
}
fn default_token_alg() -> String {
    "ES256".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClient {
    id: String,
    secret_hash: Option<String>,
    jwks: Option<jwks_jose::JwkSet>,
    jwks_file: Option<PathBuf>,
    jwks_uri: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    algorithm: Option<String>,
    ttl: Option<String>,
    dpop: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The `iss` claim and discovery issuer, without a trailing slash.
    pub issuer: String,
    /// The address `serve` listens on.
    pub listen: SocketAddr,
    /// Key store settings.
    pub keys: KeysConfig,
    /// `Cache-Control: max-age` of the JWKS. Default 5m.
    pub jwks_max_age: Duration,
    /// Token settings.
    pub tokens: TokensConfig,
    /// Brute-force limits (`[throttle]`).
    pub throttle: crate::oauth::throttle::ThrottleConfig,
    /// `[dpop] iat_window`: how far a DPoP proof's `iat` may be from now,
    /// either side; its `jti` is remembered that long. Default 60s.
    pub dpop_iat_window: Duration,
    /// The registered clients.
    pub clients: Vec<ClientConfig>,
    /// `[server] trusted_proxies`: peers whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client (for throttling and logs).
    /// Default none.
    pub trusted_proxies: Vec<crate::oauth::peer::Cidr>,
    /// `[throttle] argon2_workers`: how many argon2 secret checks run at
    /// once. Default: the number of CPU cores.
    pub argon2_workers: usize,
    /// `[admin] listen`: a second listener for operators; when set,
    /// `/metrics` is served there only. Default none.
    pub admin_listen: Option<SocketAddr>,
}

pub use crate::keys::KeyStoreConfig;

/// `[keys]`.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// The key store: `keys.dir` (default `keys`) or `keys.postgres`.
    pub store: KeyStoreConfig,
    /// One signing key per algorithm. Default `["ES256", "RS256"]`.
    pub algorithms: Vec<Algorithm>,
    /// RSA modulus size: 2048 (default), 3072 or 4096.
    pub rsa_bits: usize,
    /// How long a key signs. Default 30d.
    pub rotation_period: Duration,
    /// How long a new key is published before it signs. Default 1d.
    pub publish_ahead: Duration,
    /// Extra time a retired key stays published. Default 1m.
    pub retire_grace: Duration,
}

/// `[tokens]`.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// Default access-token lifetime. Default 15m.
    pub ttl: Duration,
    /// Default signing algorithm. Default ES256.
    pub algorithm: Algorithm,
    /// Default `aud` when a client names none. Default: the issuer.
    pub audience: String,
    /// How far ahead a client assertion's `exp` may be. Default 5m.
    pub assertion_max_lifetime: Duration,
    /// `[tokens] assertion_audience`: `"issuer"` (default) or
    /// `"issuer_or_token_endpoint"`.
    pub assertion_audience: crate::oauth::assertion::AssertionAudience,
}

pub use crate::oauth::client::{ClientAuth, ClientConfig, DpopMode, is_scope_char};

/// Parses a humantime duration such as `15m` or `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like \"15m\" or \"30d\" ({e})"))
}

impl Config {
    /// Reads, overrides from the environment, and validates the file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: format!("cannot read: {e}") })?;
        Self::from_toml(path, &text, &|k| std::env::var(k).ok())
    }

    /// Parses and validates `text` as if read from `path`, taking
    /// environment overrides from `env`.
    pub fn from_toml(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let err = |message: String| Error::Config { path: path.to_path_buf(), message };
        let mut file: FileConfig = toml::from_str(text).map_err(|e| err(describe_toml_error(text, &e)))?;
        // Which keys the environment set: their errors name the variable.
        let mut overridden: Vec<(&'static str, &'static str)> = Vec::new();
        if let Some(v) = env(ENV_ISSUER) {
            file.issuer = v;
            overridden.push(("issuer", ENV_ISSUER));
        }
        if let Some(v) = env(ENV_LISTEN) {
            file.listen = v;
            overridden.push(("listen", ENV_LISTEN));
        }
        match (env(ENV_KEYS_DIR), env(ENV_KEYS_POSTGRES)) {
            (Some(_), Some(_)) => {
                return Err(Error::Usage(format!("set either {ENV_KEYS_DIR} or {ENV_KEYS_POSTGRES}, not both")));
            }
            (Some(dir), None) => {
                file.keys.dir = Some(PathBuf::from(dir));
                file.keys.postgres = None;
                overridden.push(("keys.dir", ENV_KEYS_DIR));
            }
            (None, Some(url)) => {
                file.keys.postgres = Some(url);
                file.keys.dir = None;
                overridden.push(("keys.postgres", ENV_KEYS_POSTGRES));
            }
            (None, None) => {}
        }
        if let Some(v) = env(ENV_TOKENS_TTL) {
            file.tokens.ttl = v;
            overridden.push(("tokens.ttl", ENV_TOKENS_TTL));
        }
        validate(file, path).map_err(|message| {
            for (key, var) in &overridden {
                let named = format!("key `{key}`: ");
                if let Some(rest) = message.strip_prefix(&named) {
                    return Error::Env { variable: var, key, message: rest.to_string() };
                }
            }
            err(message)
        })
    }
}

fn duration(key: &str, v: &str) -> Result<Duration, String> {
    let d = parse_duration(v).map_err(|e| format!("key `{key}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("key `{key}`: must be longer than zero"));
    }
    Ok(d)
}

/// An algorithm by its JOSE registry name, which this build's crypto
/// backend must have (ML-DSA is refused on `ring` here, at load time).
fn algorithm(key: &str, v: &str) -> Result<Algorithm, String> {
    let alg: Algorithm = v.parse().map_err(|_| {
        let allowed: Vec<&str> = jwks_jose::crypto::supported().iter().map(|a| a.as_str()).collect();
        format!("key `{key}`: unknown algorithm `{v}` (allowed: {})", allowed.join(", "))
    })?;
    jwks_jose::crypto::check_supported(alg).map_err(|e| format!("key `{key}`: {e}"))?;
    Ok(alg)
}

fn validate(file: FileConfig, path: &Path) -> Result<Config, String> {
    let _ = path;
    let issuer = file.issuer.clone();
    if issuer.ends_with('/') {
        return Err(format!(
            "key `issuer`: `{issuer}` ends with `/`; write it without the trailing slash (`{}`): tokens' `iss` and \
             discovery must match it exactly (RFC 8414 §3.3)",
            issuer.trim_end_matches('/')
        ));
    }
    let url = url::Url::parse(&issuer).map_err(|e| format!("key `issuer`: `{issuer}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "https" | "http") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("key `issuer`: `{issuer}` must be an http(s) URL without query or fragment (RFC 8414 §2)"));
    }
    let listen: SocketAddr = file
        .listen
        .parse()
        .map_err(|_| format!("key `listen`: `{}` is not an address like 127.0.0.1:8080", file.listen))?;

    let mut algorithms = Vec::new();
    for (i, a) in file.keys.algorithms.iter().enumerate() {
        let alg = algorithm(&format!("keys.algorithms[{i}]"), a)?;
        if algorithms.contains(&alg) {
            return Err(format!("key `keys.algorithms`: `{a}` is listed twice"));
        }
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        return Err("key `keys.algorithms`: at least one algorithm is needed".into());
    }
    if !jwks_jose::crypto::RSA_BITS_ALLOWED.contains(&file.keys.rsa_bits) {
        return Err(format!("key `keys.rsa_bits`: {} is not 2048, 3072 or 4096", file.keys.rsa_bits));
    }
    let store = match (file.keys.dir, file.keys.postgres) {
        (Some(_), Some(_)) => {
            return Err("keys `keys.dir` and `keys.postgres`: name one key store, not both".into());
        }
        (None, Some(url)) => {
            KeyStoreConfig::Postgres(Box::new(url.parse().map_err(|e| format!("key `keys.postgres`: {e}"))?))
        }
        (dir, None) => KeyStoreConfig::Dir(dir.unwrap_or_else(default_keys_dir)),
    };
    let keys = KeysConfig {
        store,
        algorithms,
        rsa_bits: file.keys.rsa_bits,
        rotation_period: duration("keys.rotation_period", &file.keys.rotation_period)?,
        publish_ahead: duration("keys.publish_ahead", &file.keys.publish_ahead)?,
        retire_grace: duration("keys.retire_grace", &file.keys.retire_grace)?,
    };
    let jwks_max_age = duration("jwks.max_age", &file.jwks.max_age)?;
    let follow = crate::keys::FOLLOW_INTERVAL;
    if keys.publish_ahead < jwks_max_age.saturating_add(follow) {
        return Err(format!(
            "key `keys.publish_ahead`: {} is shorter than `jwks.max_age` ({}) plus the interval in which every \
             server follows a key change ({}), {} in all; a verifier holding the previous JWKS would meet tokens \
             from a key it cannot know. Raise `keys.publish_ahead` to at least {} or lower `jwks.max_age`",
            humantime::format_duration(keys.publish_ahead),
            humantime::format_duration(jwks_max_age),
            humantime::format_duration(follow),
            humantime::format_duration(jwks_max_age.saturating_add(follow)),
            humantime::format_duration(jwks_max_age.saturating_add(follow))
        ));
    }
    let in_keys = |key: &str, alg: Algorithm| -> Result<Algorithm, String> {
        if keys.algorithms.contains(&alg) {
            Ok(alg)
        } else {
            Err(format!("key `{key}`: {alg} is not in `keys.algorithms`"))
        }
    };
    let tokens = TokensConfig {
        ttl: duration("tokens.ttl", &file.tokens.ttl)?,
        algorithm: in_keys("tokens.algorithm", algorithm("tokens.algorithm", &file.tokens.algorithm)?)?,
        audience: file.tokens.audience.unwrap_or_else(|| issuer.clone()),
        assertion_max_lifetime: duration("tokens.assertion_max_lifetime", &file.tokens.assertion_max_lifetime)?,
        assertion_audience: crate::oauth::assertion::AssertionAudience::parse(&file.tokens.assertion_audience)
            .ok_or_else(|| {
                format!(
                    "key `tokens.assertion_audience`: `{}` is not \"issuer\" or \"issuer_or_token_endpoint\"",
                    file.tokens.assertion_audience
                )
            })?,
    };

    let mut seen = HashSet::new();
    let mut clients = Vec::with_capacity(file.clients.len());
    for (i, c) in file.clients.into_iter().enumerate() {
        let at = |k: &str| format!("clients[{i}].{k}");
        crate::oauth::client::ClientId::parse(&c.id).map_err(|e| format!("key `{}`: {e}", at("id")))?;
        if !seen.insert(c.id.clone()) {
            return Err(format!("key `{}`: duplicate client id `{}`", at("id"), c.id));
        }
        let auth = match (c.secret_hash, c.jwks, c.jwks_file, c.jwks_uri) {
            (Some(hash), None, None, None) => {
                check_secret_hash(&hash).map_err(|e| format!("key `{}`: {e}", at("secret_hash")))?;
                ClientAuth::Secret { hash }
            }
            (None, Some(set), None, None) => {
                ClientAuth::Jwks(usable_jwks(set).map_err(|e| format!("key `{}`: {e}", at("jwks")))?)
            }
            (None, None, Some(file), None) => {
                let full = path.parent().unwrap_or(Path::new(".")).join(&file);
                let text = std::fs::read_to_string(&full)
                    .map_err(|e| format!("key `{}`: cannot read {}: {e}", at("jwks_file"), full.display()))?;
                let set: jwks_jose::JwkSet = serde_json::from_str(&text)
                    .map_err(|e| format!("key `{}`: {} is not a JWK set: {e}", at("jwks_file"), full.display()))?;
                ClientAuth::Jwks(usable_jwks(set).map_err(|e| format!("key `{}`: {e}", at("jwks_file")))?)
            }
            (None, None, None, Some(uri)) => {
                let u = url::Url::parse(&uri)
                    .map_err(|e| format!("key `{}`: `{uri}` is not a URL ({e})", at("jwks_uri")))?;
                let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
                    return Err(format!("key `{}`: `{uri}` must be https (http only on loopback)", at("jwks_uri")));
                }
                ClientAuth::JwksUri(uri)
            }
            (None, None, None, None) => {
                return Err(format!(
                    "client `{}` (clients[{i}]): needs one of `secret_hash`, `jwks`, `jwks_file`, `jwks_uri`",
                    c.id
                ));
            }
            _ => {
                return Err(format!(
                    "client `{}` (clients[{i}]): name only one of `secret_hash`, `jwks`, `jwks_file`, `jwks_uri`",
                    c.id
                ));
            }
        };
        for s in &c.scopes {
            crate::oauth::client::ScopeToken::parse(s).map_err(|e| format!("key `{}`: {e}", at("scopes")))?;
        }
        let algorithm = match &c.algorithm {
            Some(a) => in_keys(&at("algorithm"), algorithm(&at("algorithm"), a)?)?,
            None => tokens.algorithm,
        };
        let ttl = match &c.ttl {
            Some(t) => duration(&at("ttl"), t)?,
            None => tokens.ttl,
        };
        let dpop = match c.dpop.as_deref() {
            None | Some("allowed") => DpopMode::Allowed,
            Some("required") => DpopMode::Required,
            Some(other) => {
                return Err(format!("key `{}`: `{other}` is not \"allowed\" or \"required\"", at("dpop")));
            }
        };
        clients.push(ClientConfig { id: c.id, auth, scopes: c.scopes, audiences: c.audiences, algorithm, ttl, dpop });
    }
    let throttle = crate::oauth::throttle::ThrottleConfig {
        burst: file.throttle.burst,
        refill_every: duration("throttle.refill_every", &file.throttle.refill_every)?,
        address_burst: file.throttle.address_burst,
        address_refill_every: duration("throttle.address_refill_every", &file.throttle.address_refill_every)?,
        ipv6_prefix: file.throttle.ipv6_prefix,
    };
    if throttle.ipv6_prefix > 128 {
        return Err(format!("key `throttle.ipv6_prefix`: {} is not 0 to 128", throttle.ipv6_prefix));
    }
    let argon2_workers = match file.throttle.argon2_workers {
        Some(0) => return Err("key `throttle.argon2_workers`: must be at least 1".into()),
        Some(n) if n > 256 => return Err(format!("key `throttle.argon2_workers`: {n} is more than 256")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
    };
    let mut trusted_proxies = Vec::with_capacity(file.server.trusted_proxies.len());
    for (i, p) in file.server.trusted_proxies.iter().enumerate() {
        trusted_proxies
            .push(crate::oauth::peer::Cidr::parse(p).map_err(|e| format!("key `server.trusted_proxies[{i}]`: {e}"))?);
    }
    let admin_listen = match &file.admin.listen {
        None => None,
        Some(a) => Some(
            a.parse::<SocketAddr>()
                .map_err(|_| format!("key `admin.listen`: `{a}` is not an address like 127.0.0.1:8081"))?,
        ),
    };
    if admin_listen.is_some_and(|a| a == listen && a.port() != 0) {
        return Err("key `admin.listen`: must differ from `listen`".into());
    }
    if throttle.burst > 0 && throttle.address_burst == 0 {
        return Err("key `throttle.address_burst`: must be at least 1 while `throttle.burst` is on".into());
    }
    let dpop_iat_window = duration("dpop.iat_window", &file.dpop.iat_window)?;
    Ok(Config {
        path: path.to_path_buf(),
        issuer,
        listen,
        keys,
        jwks_max_age,
        tokens,
        throttle,
        dpop_iat_window,
        clients,
        trusted_proxies,
        argon2_workers,
        admin_listen,
    })
}

/// Keeps a client's JWK set if at least one key is usable for signatures;
/// private members are refused outright.
fn usable_jwks(set: jwks_jose::JwkSet) -> Result<jwks_jose::JwkSet, String> {
    if set.keys.iter().any(jwks_jose::Jwk::has_private_parts) {
        return Err("a client's JWK set must hold public keys only (found a private member)".into());
    }
    let usable = set.keys.iter().filter(|k| k.verifying_key().is_ok()).count();
    if usable == 0 {
        return Err("no usable RS256/ES256 public key in the set".into());
    }
    Ok(set)
}

fn check_secret_hash(hash: &str) -> Result<(), String> {
    crate::oauth::secret::SecretHash::parse(hash).map(drop)
}

/// A TOML error as file position, key and message, never the source line
/// (it may hold a password or a secret) nor a quoted value.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    // Double-quoted parts are values (serde's "invalid type: string
    // \"...\""); backticked ones are key names, kept.
    let mut message = String::new();
    let mut quoted = false;
    for c in e.message().chars() {
        if c == '"' {
            if !quoted {
                message.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            message.push(c);
        }
    }
    let Some(span) = e.span() else { return message };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or("");
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)));
    match key {
        Some(k) => format!("line {line}, column {column}, key `{k}`: {message}"),
        None => format!("line {line}, column {column}: {message}"),
    }
}

impl Config {
    /// The key lifecycle policy of this configuration.
    pub fn key_policy(&self) -> crate::keys::Policy {
        crate::keys::Policy {
            rotation_period: self.keys.rotation_period,
            publish_ahead: self.keys.publish_ahead,
            retire_after: self.max_token_ttl().saturating_add(self.jwks_max_age).saturating_add(self.keys.retire_grace),
        }
    }

    /// The settings the token service needs.
    pub fn token_settings(&self) -> crate::oauth::TokenSettings {
        crate::oauth::TokenSettings {
            issuer: self.issuer.clone(),
            token_endpoint: self.token_endpoint(),
            default_audience: self.tokens.audience.clone(),
            dpop_iat_window: self.dpop_iat_window,
            assertion_audience: self.tokens.assertion_audience,
            assertion_max_lifetime: self.tokens.assertion_max_lifetime,
            throttle: self.throttle,
            secret_workers: self.argon2_workers,
        }
    }

    /// The token endpoint URL published in discovery.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// The JWKS URL published in discovery.
    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }

    /// The longest token lifetime of any client (or the default).
    pub fn max_token_ttl(&self) -> Duration {
        self.clients.iter().map(|c| c.ttl).chain([self.tokens.ttl]).max().unwrap_or(self.tokens.ttl)
    }
}
