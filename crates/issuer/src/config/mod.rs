//! Configuration: the TOML file (`config/issuer.toml` by default), the
//! environment overrides, and validation into [`Config`].
//!
//! The file layer is strict (`deny_unknown_fields`); [`Config::load`]
//! converts it once into validated values (durations, algorithms, parsed
//! hashes) and refuses a bad file with an error that names the file, the
//! key and what is wrong.

mod file;

use std::{
    collections::HashSet,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use jwks_jose::Algorithm;

use crate::{
    Error,
    oauth::{
        AssertionAudience, client::ClientId, client::ScopeToken, peer::Cidr, secret::SecretHash,
        throttle::ThrottleConfig,
    },
};
use file::FileConfig;

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

/// The validated configuration. Each value comes from the key named in its
/// documentation; the defaults are written once, in the file layer
/// (`config/file.rs`), and listed in the README's configuration reference.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `issuer`: the `iss` claim and discovery issuer, without a trailing slash.
    pub issuer: String,
    /// `listen`: the address `serve` binds.
    pub listen: SocketAddr,
    /// `[keys]`.
    pub keys: KeysConfig,
    /// `[jwks] max_age`: `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: Duration,
    /// `[tokens]`.
    pub tokens: TokensConfig,
    /// `[throttle]`: brute-force limits.
    pub throttle: ThrottleConfig,
    /// `[dpop] iat_window`: how far a DPoP proof's `iat` may be from now,
    /// either side; its `jti` is remembered that long.
    pub dpop_iat_window: Duration,
    /// `[dpop] nonce`: whether DPoP proofs carry server nonces (RFC 9449
    /// §8); clients may override it with `dpop_nonce`.
    pub dpop_nonce: DpopNonceMode,
    /// `[dpop] nonce_step`: the time step of DPoP nonces; a nonce is
    /// accepted during its step and the next.
    pub dpop_nonce_step: Duration,
    /// `[[clients]]`: the registered clients.
    pub clients: Vec<ClientConfig>,
    /// `[server] trusted_proxies`: peers whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client (for throttling and logs).
    pub trusted_proxies: Vec<Cidr>,
    /// `[throttle] argon2_workers`: how many argon2 secret checks run at
    /// once (unset: the number of CPU cores).
    pub argon2_workers: usize,
    /// `[admin] listen`: a second listener for operators; when set,
    /// `/metrics` is served there only.
    pub admin_listen: Option<SocketAddr>,
    /// `[tls]`: serve `listen` over TLS with these PEM files (paths
    /// relative to the config file's folder). Default none: plain HTTP.
    pub tls: Option<crate::tls::TlsFiles>,
}

pub use crate::keys::KeyStoreConfig;

/// `[keys]`.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// The key store: `keys.dir` or `keys.postgres`.
    pub store: KeyStoreConfig,
    /// `keys.algorithms`: one signing key per algorithm.
    pub algorithms: Vec<Algorithm>,
    /// `keys.rsa_bits`: RSA modulus size (2048, 3072 or 4096).
    pub rsa_bits: usize,
    /// `keys.rotation_period`: how long a key signs.
    pub rotation_period: Duration,
    /// `keys.publish_ahead`: how long a new key is published before it signs.
    pub publish_ahead: Duration,
    /// `keys.retire_grace`: extra time a retired key stays published.
    pub retire_grace: Duration,
}

/// `[tokens]`.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// `tokens.ttl`: the access-token lifetime of clients that name none.
    pub ttl: Duration,
    /// `tokens.algorithm`: the signing algorithm of clients that name none.
    pub algorithm: Algorithm,
    /// `tokens.audience`: `aud` when a client names none (unset: the issuer).
    pub audience: String,
    /// `tokens.assertion_max_lifetime`: how far ahead a client assertion's
    /// `exp` may be.
    pub assertion_max_lifetime: Duration,
    /// `tokens.assertion_audience`.
    pub assertion_audience: AssertionAudience,
}

pub use crate::oauth::client::{ClientAuth, ClientConfig, DpopMode, DpopNonceMode};

/// A refused value: the key it is under and what is wrong with it.
#[derive(Debug)]
struct Invalid {
    key: String,
    message: String,
}

impl Invalid {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}`: {}", self.key, self.message)
    }
}

impl Config {
    /// Reads, overrides from the environment, and validates the file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: format!("cannot read: {e}") })?;
        Self::from_toml(path, &text, &|k| std::env::var(k).ok())
    }

    /// Parses `text` as if read from `path`, applies the environment
    /// overrides from `env`, reads the files it names (`clients[].jwks_file`,
    /// relative to `path`'s folder), and validates the result.
    pub fn from_toml(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let err = |message: String| Error::Config { path: path.to_path_buf(), message };
        let mut file = parse(text).map_err(err)?;
        let overridden = apply_env(&mut file, env)?;
        read_named_files(&mut file, path.parent().unwrap_or(Path::new("."))).map_err(|e| err(e.to_string()))?;
        validate(file, path).map_err(|e| match overridden.iter().find(|(key, _)| *key == e.key) {
            Some(&(key, variable)) => Error::Env { variable, key, message: e.message },
            None => err(e.to_string()),
        })
    }
}

/// The typed file layer, or a message naming the line, column and key.
fn parse(text: &str) -> Result<FileConfig, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| describe_toml_error(text, None, &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        describe_toml_error(text, (path != ".").then_some(path), e.inner())
    })
}

/// Applies the `JWKS_ISSUER_*` overrides; returns which keys they set
/// (with their variables), so that a later refusal names the variable.
fn apply_env(
    file: &mut FileConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, &'static str)>, Error> {
    let mut overridden = Vec::new();
    if let Some(v) = env(ENV_ISSUER) {
        file.issuer = v;
        overridden.push(("issuer", ENV_ISSUER));
    }
    if let Some(v) = env(ENV_LISTEN) {
        file.listen = v.parse().map_err(|_| Error::Env {
            variable: ENV_LISTEN,
            key: "listen",
            message: format!("`{}` is not an address like 127.0.0.1:8080", jwks_jose::text::error_description(&v, 64)),
        })?;
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
        file.tokens.ttl = file::parse_positive_duration(&v).map_err(|message| Error::Env {
            variable: ENV_TOKENS_TTL,
            key: "tokens.ttl",
            message,
        })?;
        overridden.push(("tokens.ttl", ENV_TOKENS_TTL));
    }
    Ok(overridden)
}

/// Reads each `clients[].jwks_file`, relative to `base`: the disk is
/// touched here, at load, and never during validation.
fn read_named_files(file: &mut FileConfig, base: &Path) -> Result<(), Invalid> {
    for (i, c) in file.clients.iter_mut().enumerate() {
        let Some(name) = &c.jwks_file else { continue };
        let key = format!("clients[{i}].jwks_file");
        let full = base.join(name);
        let text = std::fs::read_to_string(&full)
            .map_err(|e| Invalid::new(&key, format!("cannot read {}: {e}", full.display())))?;
        let set = serde_json::from_str(&text)
            .map_err(|e| Invalid::new(&key, format!("{} is not a JWK set: {e}", full.display())))?;
        c.jwks_from_file = Some(set);
    }
    Ok(())
}

fn validate(file: FileConfig, path: &Path) -> Result<Config, Invalid> {
    let issuer = issuer(file.issuer)?;
    let keys = keys(file.keys)?;
    let jwks_max_age = file.jwks.max_age;
    key_timing(&keys, jwks_max_age)?;
    let tokens = tokens(file.tokens, &issuer, &keys)?;
    let clients = clients(file.clients, &tokens, &keys)?;
    let (throttle, argon2_workers) = throttle(file.throttle)?;
    let trusted_proxies = trusted_proxies(file.server)?;
    let admin_listen = file.admin.listen;
    if admin_listen.is_some_and(|a| a == file.listen && a.port() != 0) {
        return Err(Invalid::new("admin.listen", "must differ from `listen`"));
    }
    if file.dpop.nonce_step.as_secs() == 0 {
        return Err(Invalid::new("dpop.nonce_step", "must be at least 1s"));
    }
    let beside = |p: PathBuf| path.parent().unwrap_or(Path::new(".")).join(p);
    let tls = file.tls.map(|t| crate::tls::TlsFiles { cert_file: beside(t.cert_file), key_file: beside(t.key_file) });
    if tls.is_some() && issuer.starts_with("http://") {
        return Err(Invalid::new(
            "issuer",
            format!(
                "`{issuer}` is http, but `[tls]` serves `listen` over https; write the https URL clients use \
                 (tokens' `iss` and discovery must match it, RFC 8414 §3.3)"
            ),
        ));
    }
    Ok(Config {
        path: path.to_path_buf(),
        issuer,
        listen: file.listen,
        keys,
        jwks_max_age,
        tokens,
        throttle,
        dpop_iat_window: file.dpop.iat_window,
        dpop_nonce: file.dpop.nonce,
        dpop_nonce_step: file.dpop.nonce_step,
        clients,
        trusted_proxies,
        argon2_workers,
        admin_listen,
        tls,
    })
}

/// `issuer`: an http(s) URL without query, fragment or trailing `/`.
fn issuer(issuer: String) -> Result<String, Invalid> {
    let bad = |message: String| Invalid::new("issuer", message);
    if issuer.ends_with('/') {
        return Err(bad(format!(
            "`{issuer}` ends with `/`; write it without the trailing slash (`{}`): tokens' `iss` and discovery must \
             match it exactly (RFC 8414 §3.3)",
            issuer.trim_end_matches('/')
        )));
    }
    let url = url::Url::parse(&issuer).map_err(|e| bad(format!("`{issuer}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "https" | "http") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!("`{issuer}` must be an http(s) URL without query or fragment (RFC 8414 §2)")));
    }
    Ok(issuer)
}

/// `[keys]`.
fn keys(k: file::FileKeys) -> Result<KeysConfig, Invalid> {
    let mut seen = HashSet::new();
    for a in &k.algorithms {
        if !seen.insert(*a) {
            return Err(Invalid::new("keys.algorithms", format!("`{a}` is listed twice")));
        }
        // ML-DSA is refused on the `ring` backend here, at load time.
        jwks_jose::crypto::check_supported(*a).map_err(|e| Invalid::new("keys.algorithms", e.to_string()))?;
    }
    if k.algorithms.is_empty() {
        return Err(Invalid::new("keys.algorithms", "at least one algorithm is needed"));
    }
    if !jwks_jose::crypto::RSA_BITS_ALLOWED.contains(&k.rsa_bits) {
        return Err(Invalid::new("keys.rsa_bits", format!("{} is not 2048, 3072 or 4096", k.rsa_bits)));
    }
    let store = match (k.dir, k.postgres) {
        (Some(_), Some(_)) => {
            return Err(Invalid::new(
                "keys.dir",
                "`keys.dir` and `keys.postgres` name two key stores; name one, not both",
            ));
        }
        (None, Some(url)) => {
            KeyStoreConfig::Postgres(Box::new(url.parse().map_err(|e: String| Invalid::new("keys.postgres", e))?))
        }
        (dir, None) => KeyStoreConfig::Dir(dir.unwrap_or_else(|| PathBuf::from(file::DEFAULT_KEYS_DIR))),
    };
    Ok(KeysConfig {
        store,
        algorithms: k.algorithms,
        rsa_bits: k.rsa_bits,
        rotation_period: k.rotation_period,
        publish_ahead: k.publish_ahead,
        retire_grace: k.retire_grace,
    })
}

/// `keys.publish_ahead` against `jwks.max_age`: a verifier holding the
/// previous JWKS must never meet a token from a key it cannot know.
fn key_timing(keys: &KeysConfig, jwks_max_age: Duration) -> Result<(), Invalid> {
    let follow = crate::keys::FOLLOW_INTERVAL;
    let needed = jwks_max_age.saturating_add(follow);
    if keys.publish_ahead >= needed {
        return Ok(());
    }
    let f = humantime::format_duration;
    Err(Invalid::new(
        "keys.publish_ahead",
        format!(
            "{} is shorter than `jwks.max_age` ({}) plus the interval in which every server follows a key change \
             ({}), {} in all; a verifier holding the previous JWKS would meet tokens from a key it cannot know. \
             Raise `keys.publish_ahead` to at least {} or lower `jwks.max_age`",
            f(keys.publish_ahead),
            f(jwks_max_age),
            f(follow),
            f(needed),
            f(needed)
        ),
    ))
}

/// An algorithm that `keys.algorithms` provides a key for.
fn in_keys(key: &str, alg: Algorithm, keys: &KeysConfig) -> Result<Algorithm, Invalid> {
    if keys.algorithms.contains(&alg) {
        Ok(alg)
    } else {
        Err(Invalid::new(key, format!("{alg} is not in `keys.algorithms`")))
    }
}

/// `[tokens]`.
fn tokens(t: file::FileTokens, issuer: &str, keys: &KeysConfig) -> Result<TokensConfig, Invalid> {
    Ok(TokensConfig {
        ttl: t.ttl,
        algorithm: in_keys("tokens.algorithm", t.algorithm, keys)?,
        audience: t.audience.unwrap_or_else(|| issuer.to_owned()),
        assertion_max_lifetime: t.assertion_max_lifetime,
        assertion_audience: t.assertion_audience,
    })
}

/// `[[clients]]`: each valid, no id twice.
fn clients(
    file: Vec<file::FileClient>,
    tokens: &TokensConfig,
    keys: &KeysConfig,
) -> Result<Vec<ClientConfig>, Invalid> {
    let mut seen = HashSet::new();
    let mut clients = Vec::with_capacity(file.len());
    for (i, c) in file.into_iter().enumerate() {
        let at = |k: &str| format!("clients[{i}].{k}");
        ClientId::parse(&c.id).map_err(|e| Invalid::new(at("id"), e))?;
        if !seen.insert(c.id.clone()) {
            return Err(Invalid::new(at("id"), format!("duplicate client id `{}`", c.id)));
        }
        let auth = match (c.secret_hash, c.jwks, c.jwks_from_file, c.jwks_uri) {
            (Some(hash), None, None, None) => {
                SecretHash::parse(&hash).map_err(|e| Invalid::new(at("secret_hash"), e))?;
                ClientAuth::Secret { hash }
            }
            (None, Some(set), None, None) => {
                ClientAuth::Jwks(usable_jwks(set).map_err(|e| Invalid::new(at("jwks"), e))?)
            }
            (None, None, Some(set), None) => {
                ClientAuth::Jwks(usable_jwks(set).map_err(|e| Invalid::new(at("jwks_file"), e))?)
            }
            (None, None, None, Some(uri)) => {
                ClientAuth::JwksUri(jwks_uri(&uri).map_err(|e| Invalid::new(at("jwks_uri"), e))?)
            }
            (None, None, None, None) => {
                return Err(Invalid::new(
                    format!("clients[{i}]"),
                    format!("client `{}` needs one of `secret_hash`, `jwks`, `jwks_file`, `jwks_uri`", c.id),
                ));
            }
            _ => {
                return Err(Invalid::new(
                    format!("clients[{i}]"),
                    format!("client `{}`: name only one of `secret_hash`, `jwks`, `jwks_file`, `jwks_uri`", c.id),
                ));
            }
        };
        for s in &c.scopes {
            ScopeToken::parse(s).map_err(|e| Invalid::new(at("scopes"), e))?;
        }
        let algorithm = match c.algorithm {
            Some(a) => in_keys(&at("algorithm"), a, keys)?,
            None => tokens.algorithm,
        };
        clients.push(ClientConfig {
            id: c.id,
            auth,
            scopes: c.scopes,
            audiences: c.audiences,
            algorithm,
            ttl: c.ttl.unwrap_or(tokens.ttl),
            dpop: c.dpop,
            dpop_nonce: c.dpop_nonce,
        });
    }
    Ok(clients)
}

/// A client's `jwks_uri`: https, or http on loopback.
fn jwks_uri(uri: &str) -> Result<String, String> {
    let u = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not a URL ({e})"))?;
    let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
        return Err(format!("`{uri}` must be https (http only on loopback)"));
    }
    Ok(uri.to_owned())
}

/// `[throttle]`: the limits and the number of argon2 workers.
fn throttle(t: file::FileThrottle) -> Result<(ThrottleConfig, usize), Invalid> {
    if t.ipv6_prefix > 128 {
        return Err(Invalid::new("throttle.ipv6_prefix", format!("{} is not 0 to 128", t.ipv6_prefix)));
    }
    if t.burst > 0 && t.address_burst == 0 {
        return Err(Invalid::new("throttle.address_burst", "must be at least 1 while `throttle.burst` is on"));
    }
    let workers = match t.argon2_workers {
        Some(0) => return Err(Invalid::new("throttle.argon2_workers", "must be at least 1")),
        Some(n) if n > 256 => return Err(Invalid::new("throttle.argon2_workers", format!("{n} is more than 256"))),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
    };
    let limits = ThrottleConfig {
        burst: t.burst,
        refill_every: t.refill_every,
        address_burst: t.address_burst,
        address_refill_every: t.address_refill_every,
        ipv6_prefix: t.ipv6_prefix,
    };
    Ok((limits, workers))
}

/// `[server] trusted_proxies`.
fn trusted_proxies(s: file::FileServer) -> Result<Vec<Cidr>, Invalid> {
    s.trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, p)| Cidr::parse(p).map_err(|e| Invalid::new(format!("server.trusted_proxies[{i}]"), e)))
        .collect()
}

/// Keeps a client's JWK set if at least one key is usable for signatures;
/// private members are refused outright.
fn usable_jwks(set: jwks_jose::JwkSet) -> Result<jwks_jose::JwkSet, String> {
    if set.keys.iter().any(jwks_jose::Jwk::has_private_parts) {
        return Err("a client's JWK set must hold public keys only (found a private member)".into());
    }
    let usable = set.keys.iter().filter(|k| k.verifying_key().is_ok()).count();
    if usable == 0 {
        return Err("no usable public key in the set".into());
    }
    Ok(set)
}

/// A TOML error as file position, key and message, never the source line
/// (it may hold a password or a secret) nor a quoted value. `path` is the
/// key's full path (`clients[1].ttl`) when the deserialiser knows it.
fn describe_toml_error(text: &str, path: Option<String>, e: &toml::de::Error) -> String {
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
    let Some(span) = e.span() else {
        return match path {
            Some(k) => format!("key `{k}`: {message}"),
            None => message,
        };
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or("");
    let key = path.or_else(|| {
        line_text
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
    });
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
            dpop_nonce: self.dpop_nonce,
            dpop_nonce_step: self.dpop_nonce_step,
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
