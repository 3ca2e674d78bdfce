//! What a registered client is: its id, how it authenticates, and what it
//! may ask for. The id and scope-token grammars are validated types that
//! the configuration and the CLI share.

use std::{fmt, time::Duration};

use jwks_jose::Algorithm;

/// The longest client id accepted, in bytes.
pub(crate) const MAX_CLIENT_ID: usize = 128;

/// A client id: 1 to [`MAX_CLIENT_ID`] bytes with no control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientId(String);

impl ClientId {
    /// Validates `id`.
    pub(crate) fn parse(id: &str) -> Result<Self, String> {
        if id.is_empty() || id.len() > MAX_CLIENT_ID || id.chars().any(char::is_control) {
            return Err(format!("a client id is 1 to {MAX_CLIENT_ID} bytes with no control character"));
        }
        Ok(ClientId(id.to_owned()))
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_scope_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

/// One RFC 6749 §3.3 scope token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ScopeToken(String);

impl ScopeToken {
    /// Validates `s`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || !s.bytes().all(is_scope_char) {
            return Err(format!("`{}` is not a scope token (RFC 6749 §3.3)", super::error::printable(s, 64)));
        }
        Ok(ScopeToken(s.to_owned()))
    }
}

/// A client's `dpop` setting, spelled in the config as below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopMode {
    /// `"allowed"` (the default): a token request with a valid `DPoP` proof
    /// gets a DPoP-bound token, one without gets a bearer token.
    #[default]
    Allowed,
    /// `"required"`: a token request without a `DPoP` proof is refused.
    Required,
}

/// The `[dpop] nonce` setting and its per-client override `dpop_nonce`
/// (RFC 9449 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopNonceMode {
    /// `"off"`: proofs carry no nonce and none is sent.
    Off,
    /// `"allowed"` (the default): a fresh `DPoP-Nonce` is sent on every
    /// answer to a DPoP request; a proof may go without one, but a nonce it
    /// carries must be valid, and one whose `iat` is outside the window is
    /// asked for one (`use_dpop_nonce`) instead of refused.
    #[default]
    Allowed,
    /// `"required"`: every proof must carry a valid nonce.
    Required,
}

impl DpopNonceMode {
    /// Parses `"off"`, `"allowed"` or `"required"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(DpopNonceMode::Off),
            "allowed" => Some(DpopNonceMode::Allowed),
            "required" => Some(DpopNonceMode::Required),
            _ => None,
        }
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    /// `client_secret_basic` or `client_secret_post` against an argon2id hash.
    Secret {
        /// The PHC string of the argon2id hash.
        hash: String,
    },
    /// `private_key_jwt` (RFC 7523) with keys from the config.
    Jwks(jwks_jose::JwkSet),
    /// `private_key_jwt` (RFC 7523) with keys from the client's `jwks_uri`.
    JwksUri(String),
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::Secret { .. } => f.write_str("Secret(<argon2id hash>)"),
            ClientAuth::Jwks(set) => write!(f, "Jwks({} keys)", set.keys.len()),
            ClientAuth::JwksUri(uri) => write!(f, "JwksUri({uri})"),
        }
    }
}

impl ClientAuth {
    /// The RFC 8414 `token_endpoint_auth_method` names this client may use.
    pub fn method_names(&self) -> &'static str {
        match self {
            ClientAuth::Secret { .. } => "client_secret_basic, client_secret_post",
            ClientAuth::Jwks(_) | ClientAuth::JwksUri(_) => "private_key_jwt",
        }
    }
}

/// One registered client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client id (also the token's `sub`).
    pub id: String,
    /// How the client authenticates.
    pub auth: ClientAuth,
    /// Scopes the client may ask for; all of them when it names none.
    pub scopes: Vec<String>,
    /// Audiences the client may ask for; the first is the default.
    pub audiences: Vec<String>,
    /// Signing algorithm for this client's tokens.
    pub algorithm: Algorithm,
    /// Lifetime of this client's tokens.
    pub ttl: Duration,
    /// Whether the client must bind its tokens with DPoP (RFC 9449).
    /// Default [`DpopMode::Allowed`].
    pub dpop: DpopMode,
    /// `dpop_nonce`: this client's DPoP nonce mode; `None` (the default)
    /// follows `[dpop] nonce`.
    pub dpop_nonce: Option<DpopNonceMode>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_one_to_128_printable_bytes() {
        assert!(ClientId::parse("svc").is_ok());
        assert!(ClientId::parse(&"a".repeat(128)).is_ok());
        for bad in ["", "a\nb", "\u{7f}", &"a".repeat(129)] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scope_tokens_follow_rfc6749_3_3() {
        assert!(ScopeToken::parse("read:all").is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(ScopeToken::parse(bad).is_err(), "{bad:?}");
        }
    }
}
