//! The file layer: what `issuer.toml` may hold, typed, with each key's
//! default written once, beside its documentation.
//!
//! Every table is strict (`deny_unknown_fields`). A new key is one line in
//! its [`section!`]: its documentation, its name and type, and `= default`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use jwks_jose::Algorithm;
use serde::{Deserialize, Deserializer, de::Error as _};

use crate::oauth::{AssertionAudience, DpopMode, DpopNonceMode};

const MINUTE: u64 = 60;
const DAY: u64 = 86_400;

/// A `[table]` of the file: every field optional, its default given
/// beside it; unknown keys refused.
macro_rules! section {
    ($(#[$attr:meta])* struct $name:ident {
        $( $(#[$fattr:meta])* $field:ident : $ty:ty = $default:expr ),* $(,)?
    }) => {
        $(#[$attr])*
        #[derive(Debug, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub(super) struct $name { $( $(#[$fattr])* pub(super) $field: $ty, )* }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }
    };
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    /// The `iss` claim and discovery issuer, without a trailing `/`. Required.
    pub(super) issuer: String,
    /// The address `serve` binds. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub(super) listen: SocketAddr,
    #[serde(default)]
    pub(super) keys: FileKeys,
    #[serde(default)]
    pub(super) jwks: FileJwks,
    #[serde(default)]
    pub(super) tokens: FileTokens,
    #[serde(default)]
    pub(super) throttle: FileThrottle,
    #[serde(default)]
    pub(super) dpop: FileDpop,
    #[serde(default)]
    pub(super) server: FileServer,
    #[serde(default)]
    pub(super) admin: FileAdmin,
    /// `[tls]`: serve `listen` over TLS. Default none: plain HTTP.
    #[serde(default)]
    pub(super) tls: Option<FileTls>,
    #[serde(default)]
    pub(super) clients: Vec<FileClient>,
}

/// `[tls]`: PEM files, relative to the config file's folder. Both required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTls {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `keys.dir` when neither it nor `keys.postgres` is given.
pub(super) const DEFAULT_KEYS_DIR: &str = "keys";

section! {
    /// `[keys]`: the key store and the key lifecycle.
    struct FileKeys {
        /// The key folder, relative to the working directory. Default
        /// [`DEFAULT_KEYS_DIR`] when `postgres` is absent.
        dir: Option<PathBuf> = None,
        /// A PostgreSQL key store (`postgres://user@host/db`) instead of
        /// `dir`. Kept as text here: it may hold a password, which no parse
        /// error may echo.
        postgres: Option<String> = None,
        /// One signing key per algorithm.
        algorithms: Vec<Algorithm> = vec![Algorithm::ES256, Algorithm::RS256],
        /// RSA modulus size: 2048, 3072 or 4096.
        rsa_bits: usize = 2048,
        /// How long a key signs.
        #[serde(deserialize_with = "positive_duration")]
        rotation_period: Duration = Duration::from_secs(30 * DAY),
        /// How long a new key is published before it signs.
        #[serde(deserialize_with = "positive_duration")]
        publish_ahead: Duration = Duration::from_secs(DAY),
        /// Extra time a retired key stays published.
        #[serde(deserialize_with = "positive_duration")]
        retire_grace: Duration = Duration::from_secs(MINUTE),
    }
}

section! {
    /// `[jwks]`.
    struct FileJwks {
        /// `Cache-Control: max-age` of the JWKS.
        #[serde(deserialize_with = "positive_duration")]
        max_age: Duration = Duration::from_secs(5 * MINUTE),
    }
}

section! {
    /// `[tokens]`: what every client gets unless it says otherwise.
    struct FileTokens {
        /// Access-token lifetime.
        #[serde(deserialize_with = "positive_duration")]
        ttl: Duration = Duration::from_secs(15 * MINUTE),
        /// Signing algorithm.
        algorithm: Algorithm = Algorithm::ES256,
        /// `aud` when a client names none; `None` means the issuer.
        audience: Option<String> = None,
        /// How far ahead a client assertion's `exp` may be.
        #[serde(deserialize_with = "positive_duration")]
        assertion_max_lifetime: Duration = Duration::from_secs(5 * MINUTE),
        /// The `aud` a `private_key_jwt` assertion must carry.
        assertion_audience: AssertionAudience = AssertionAudience::Issuer,
    }
}

section! {
    /// `[throttle]`: brute-force limits.
    struct FileThrottle {
        /// Failures allowed at once per (client id, source); 0 turns
        /// throttling off.
        burst: u32 = 20,
        /// One failure forgiven per this interval, per (client, source).
        #[serde(deserialize_with = "positive_duration")]
        refill_every: Duration = Duration::from_secs(3),
        /// Failures allowed at once per source.
        address_burst: u32 = 100,
        /// One failure forgiven per this interval, per source.
        #[serde(deserialize_with = "positive_duration")]
        address_refill_every: Duration = Duration::from_secs(1),
        /// IPv6 sources are counted per prefix of this many bits.
        ipv6_prefix: u8 = 64,
        /// Argon2 checks running at once; `None` means the number of CPU
        /// cores.
        argon2_workers: Option<usize> = None,
    }
}

section! {
    /// `[dpop]`.
    struct FileDpop {
        /// How far a DPoP proof's `iat` may be from now, either side; its
        /// `jti` is remembered that long.
        #[serde(deserialize_with = "positive_duration")]
        iat_window: Duration = Duration::from_secs(60),
        /// Whether DPoP proofs carry server nonces (RFC 9449 §8): `"off"`,
        /// `"allowed"` or `"required"`; `clients[].dpop_nonce` overrides it.
        nonce: DpopNonceMode = DpopNonceMode::Allowed,
        /// The nonce time step; a nonce is accepted in its step and the next.
        #[serde(deserialize_with = "positive_duration")]
        nonce_step: Duration = Duration::from_secs(60),
    }
}

section! {
    /// `[server]`.
    struct FileServer {
        /// Proxies (addresses or CIDRs) whose `Forwarded` /
        /// `X-Forwarded-For` name the client.
        trusted_proxies: Vec<String> = Vec::new(),
    }
}

section! {
    /// `[admin]`.
    struct FileAdmin {
        /// A second listener for operators; `/metrics` moves there when set.
        listen: Option<SocketAddr> = None,
    }
}

/// One `[[clients]]` entry. What it leaves out comes from `[tokens]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileClient {
    /// The client id. Required.
    pub(super) id: String,
    /// One of `secret_hash`, `jwks`, `jwks_file`, `jwks_uri` is required.
    #[serde(default)]
    pub(super) secret_hash: Option<String>,
    #[serde(default)]
    pub(super) jwks: Option<jwks_jose::JwkSet>,
    /// Relative to the config file's folder; read at load
    /// into `jwks` before validation.
    #[serde(default)]
    pub(super) jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) jwks_uri: Option<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    #[serde(default)]
    pub(super) audiences: Vec<String>,
    /// Default `tokens.algorithm`.
    #[serde(default)]
    pub(super) algorithm: Option<Algorithm>,
    /// Default `tokens.ttl`.
    #[serde(default, deserialize_with = "optional_positive_duration")]
    pub(super) ttl: Option<Duration>,
    /// Default [`DpopMode::Allowed`].
    #[serde(default)]
    pub(super) dpop: DpopMode,
    /// Default `[dpop] nonce`.
    #[serde(default)]
    pub(super) dpop_nonce: Option<DpopNonceMode>,
    /// The set `jwks_file` names, once read.
    #[serde(skip)]
    pub(super) jwks_from_file: Option<jwks_jose::JwkSet>,
}

/// Parses a humantime duration such as `15m` or `30d`, longer than zero.
pub(super) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let shown = jwks_jose::text::error_description(s, 40);
    let d =
        humantime::parse_duration(s).map_err(|e| format!("`{shown}` is not a duration like `15m` or `30d` ({e})"))?;
    if d.is_zero() {
        return Err(format!("`{shown}` must be longer than zero"));
    }
    Ok(d)
}

/// A humantime string as a [`Duration`] longer than zero (serde helper).
fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse_positive_duration(&s).map_err(D::Error::custom)
}

/// [`positive_duration`], for an optional key.
fn optional_positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct Positive(#[serde(deserialize_with = "positive_duration")] Duration);
    Ok(Option::<Positive>::deserialize(d)?.map(|Positive(d)| d))
}
