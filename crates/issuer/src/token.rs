//! Minting RFC 9068 JWT access tokens.

use serde::Serialize;

use crate::{Error, keys::ActiveKey};
use jwks_jose::{b64, clock::UnixTime, crypto};

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Serialize)]
pub(crate) struct AccessClaims<'a> {
    /// The issuer.
    pub iss: &'a str,
    /// The client id (RFC 9068 §2.2: the client for client credentials).
    pub sub: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// The audience (one resource).
    pub aud: &'a str,
    /// Issued at.
    pub iat: UnixTime,
    /// Expires.
    pub exp: UnixTime,
    /// A unique id: 128 random bits, base64url.
    pub jti: &'a str,
    /// Granted scopes, space-delimited; absent when none.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub scope: &'a str,
    /// The key the token is bound to (RFC 9449 §6.1); absent for a bearer
    /// token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation<'a>>,
}

/// The `cnf` claim of a DPoP-bound token (RFC 7800 §3.1, RFC 9449 §6.1).
#[derive(Debug, Serialize)]
pub(crate) struct Confirmation<'a> {
    /// The RFC 7638 thumbprint of the client's DPoP key.
    pub jkt: &'a str,
}

/// 128 random bits as base64url (22 characters).
pub(crate) fn new_jti() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    crypto::fill_random(&mut bytes)?;
    Ok(b64::encode(bytes))
}

/// What one access token grants: the claims that vary per token, apart
/// from the fresh `jti`.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    /// The issuer (`iss`).
    pub issuer: &'a str,
    /// The client (`sub` and `client_id`).
    pub client_id: &'a str,
    /// The audience (`aud`).
    pub aud: &'a str,
    /// Granted scopes, space-delimited; empty for none.
    pub scope: &'a str,
    /// Issued at (`iat`).
    pub now: UnixTime,
    /// Lifetime in seconds: `exp = now + ttl`.
    pub ttl: u64,
    /// The RFC 7638 thumbprint of the DPoP key the token is bound to
    /// (RFC 9449 §6.1); `None` for a bearer token.
    pub jkt: Option<&'a str>,
}

/// Mints an access token for `grant`: a fresh `jti`, `iat = now`,
/// `exp = now + ttl`, signed with `key`. This is the whole per-token cost
/// of the token endpoint apart from HTTP and client authentication.
pub fn mint(key: &ActiveKey, grant: &Grant<'_>) -> Result<String, Error> {
    let jti = new_jti()?;
    let claims = AccessClaims {
        iss: grant.issuer,
        sub: grant.client_id,
        client_id: grant.client_id,
        aud: grant.aud,
        iat: grant.now,
        exp: grant.now.saturating_add_secs(grant.ttl),
        jti: &jti,
        scope: grant.scope,
        cnf: grant.jkt.map(|jkt| Confirmation { jkt }),
    };
    sign(key, &claims)
}

/// Signs `claims` with `key` as a compact JWS with the key's prepared
/// header `{"alg","typ":"at+jwt","kid"}`.
pub(crate) fn sign(key: &ActiveKey, claims: &AccessClaims<'_>) -> Result<String, Error> {
    let payload = serde_json::to_vec(claims).map_err(|e| Error::Store(format!("encoding claims: {e}")))?;
    let sig_len = key.key.signature_len();
    let mut out = String::with_capacity(key.header_b64.len() + 2 + payload.len() * 4 / 3 + 4 + sig_len * 4 / 3 + 4);
    out.push_str(&key.header_b64);
    out.push('.');
    b64::encode_into(&payload, &mut out);
    let signature = key.key.sign(out.as_bytes())?;
    out.push('.');
    b64::encode_into(signature, &mut out);
    Ok(out)
}
