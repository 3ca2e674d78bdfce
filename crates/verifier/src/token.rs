//! The verification rules of RFC 8725 and RFC 9068, independent of where
//! the keys come from: header checks before any crypto, the signature with
//! the key's own algorithm, then the claims at an injected time.

use std::time::{Duration, SystemTime};

use jwks_jose::{Algorithm, VerifyingKey, compact};
use serde_json::{Map, Value};

use crate::{
    Error,
    claims::numeric_date_value,
    clock::unix_seconds,
    error::truncated,
    json::parse_object,
    limits::{self, token_limit},
};

/// The largest token accepted of the classical algorithms (RS256, ES256,
/// ES384, PS256, Ed25519), in bytes: 8 KiB. ML-DSA tokens have larger
/// limits, see [`crate::limits`].
pub const MAX_TOKEN_LEN: usize = limits::CLASSICAL_LIMIT;

/// What a token must satisfy, apart from its key.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    /// `None` when the type check is turned off (see `dangerous`).
    pub(crate) required_type: Option<String>,
}

/// A token whose framing and header passed every check that needs no key.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    pub(crate) parts: compact::Parts<'a>,
    pub(crate) alg: Algorithm,
    /// The header's name for `alg`: its registry name, or `EdDSA`.
    pub(crate) alg_name: &'static str,
    pub(crate) kid: Option<String>,
}

/// Framing and header checks, in the order RFC 8725 asks for: size (the
/// largest limit of the allowed algorithms), three strict base64url
/// segments, a duplicate-free JSON header, `alg` in the allow-list, the
/// size limit of that algorithm, no `crit`, the right `typ`. `jku`, `x5u`, `jwk` and `x5c`
/// are ignored: keys named by a token are never fetched or trusted.
/// The `alg` of a token that is not a compact JWS but whose first segment
/// is a header naming `none` (in any case).
fn unsigned_alg(token: &str) -> Option<String> {
    let header = jwks_jose::b64::decode(token.split('.').next()?, "header").ok()?;
    let header = parse_object(&header).ok()?;
    match header.get("alg") {
        Some(Value::String(a)) if a.eq_ignore_ascii_case("none") => Some(truncated(a)),
        _ => None,
    }
}

pub(crate) fn parse<'a>(token: &'a str, policy: &Policy) -> Result<Unverified<'a>, Error> {
    let max = limits::largest(&policy.algorithms, token_limit);
    if token.len() > max {
        return Err(Error::TokenTooLarge { len: token.len(), max });
    }
    let parts = compact::split(token, max).map_err(|e| match e {
        jwks_jose::Error::TooLarge { len, max } => Error::TokenTooLarge { len, max },
        // `h.p.` and `h.p` whose header says `alg: none` are refused for
        // their algorithm, as the allow-list rule says, not for their shape.
        other => match unsigned_alg(token) {
            Some(alg) => Error::UnsupportedAlg { alg },
            None => Error::malformed(other.to_string()),
        },
    })?;
    let header = parse_object(&parts.header).map_err(|e| Error::malformed(format!("header: {e}")))?;
    let (alg, alg_name) = match header.get("alg") {
        Some(Value::String(name)) => header_alg(name).ok_or_else(|| Error::UnsupportedAlg { alg: truncated(name) })?,
        Some(_) => return Err(Error::malformed("header `alg` is not a string")),
        None => return Err(Error::malformed("header has no `alg`")),
    };
    if !policy.algorithms.contains(&alg) {
        return Err(Error::UnsupportedAlg { alg: alg_name.to_owned() });
    }
    if token.len() > token_limit(alg) {
        return Err(Error::TokenTooLarge { len: token.len(), max: token_limit(alg) });
    }
    if header.contains_key("crit") {
        return Err(Error::UnsupportedCrit);
    }
    if let Some(expected) = &policy.required_type {
        let found = header.get("typ");
        let ok = matches!(found, Some(Value::String(t)) if type_matches(t, expected));
        if !ok {
            let found = found.map(|v| truncated(v.as_str().unwrap_or("<not a string>")));
            return Err(Error::WrongType { found, expected: expected.clone() });
        }
    }
    let kid = match header.get("kid") {
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Error::malformed("header `kid` is not a string")),
        None => None,
    };
    Ok(Unverified { parts, alg, alg_name, kid })
}

/// A header `alg` and the name it was given: a registry name, or `EdDSA`
/// for Ed25519 (RFC 8037, deprecated by RFC 9864 and still sent).
pub(crate) fn header_alg(name: &str) -> Option<(Algorithm, &'static str)> {
    let alg = Algorithm::from_header_name(name).ok()?;
    let name = if name == Algorithm::LEGACY_EDDSA { Algorithm::LEGACY_EDDSA } else { alg.as_str() };
    Some((alg, name))
}

/// Media types compare case-insensitively and `application/` may be
/// omitted (RFC 7515 §4.1.9, RFC 9068 §4).
pub(crate) fn type_matches(found: &str, expected: &str) -> bool {
    let strip = |s: &'_ str| -> String {
        let lower = s.to_ascii_lowercase();
        match lower.strip_prefix("application/") {
            Some(rest) => rest.to_owned(),
            None => lower,
        }
    };
    strip(found) == strip(expected)
}

/// Checks the signature with `key`, whose algorithm must be the header's.
pub(crate) fn check_signature(token: &Unverified<'_>, key: &VerifyingKey) -> Result<(), Error> {
    if key.algorithm() != token.alg {
        return Err(Error::AlgMismatch { header: token.alg, key: key.algorithm() });
    }
    if !key.admits_header_name(token.alg_name) {
        return Err(Error::AlgNameMismatch { header: token.alg_name });
    }
    key.verify(token.parts.signing_input.as_bytes(), &token.parts.signature).map_err(|_| Error::BadSignature)
}

/// Checks the claims of a token whose signature verified: `iss` exact,
/// `aud` containing an accepted audience, `exp` required and in the future,
/// `nbf` and `iat` not in the future, all with the leeway (RFC 9068 §4).
pub(crate) fn check_claims(payload: &[u8], policy: &Policy, now: SystemTime) -> Result<Map<String, Value>, Error> {
    let claims = parse_object(payload).map_err(|e| Error::malformed(format!("claims: {e}")))?;
    match claims.get("iss") {
        None => return Err(Error::MissingClaim { claim: "iss" }),
        Some(Value::String(iss)) if *iss == policy.issuer => {}
        Some(Value::String(iss)) => return Err(Error::WrongIssuer { found: truncated(iss) }),
        Some(_) => return Err(Error::invalid_claim("`iss` is not a string")),
    }
    let accepted = |a: &Value| matches!(a, Value::String(s) if policy.audiences.iter().any(|p| p == s));
    match claims.get("aud") {
        None => return Err(Error::MissingClaim { claim: "aud" }),
        Some(Value::String(_)) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => return Err(Error::invalid_claim("`aud` is not a string or an array of strings")),
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::Array(items)) => items.iter().any(accepted),
        Some(single) => accepted(single),
        None => false,
    };
    if !aud_ok {
        return Err(Error::WrongAudience);
    }
    let now = unix_seconds(now);
    let leeway = policy.leeway.as_secs();
    let date = |name: &'static str| -> Result<Option<u64>, Error> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => numeric_date_value(v)
                .map(Some)
                .ok_or_else(|| Error::invalid_claim(format!("`{name}` is not a NumericDate"))),
        }
    };
    let exp = date("exp")?.ok_or(Error::MissingClaim { claim: "exp" })?;
    if now >= exp.saturating_add(leeway) {
        return Err(Error::Expired { exp, now, leeway });
    }
    if let Some(nbf) = date("nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(Error::NotYetValid { nbf, now, leeway });
    }
    if let Some(iat) = date("iat")?
        && iat > now.saturating_add(leeway)
    {
        return Err(Error::IssuedInFuture { iat, now, leeway });
    }
    Ok(claims)
}

/// Deserialises checked claims into the caller's type.
pub(crate) fn into_claims<T: serde::de::DeserializeOwned>(claims: Map<String, Value>) -> Result<T, Error> {
    serde_json::from_value(Value::Object(claims)).map_err(|e| Error::invalid_claim(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_comparison_is_case_insensitive_with_optional_application_prefix() {
        for ok in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
            assert!(type_matches(ok, "at+jwt"), "{ok}");
        }
        for bad in ["jwt", "JWT", "at+jwt ", "application/jwt", "x/at+jwt", ""] {
            assert!(!type_matches(bad, "at+jwt"), "{bad}");
        }
    }
}
