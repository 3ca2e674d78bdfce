//! Public JSON Web Keys (RFC 7517) and thumbprints (RFC 7638).

use serde::{Deserialize, Serialize};

use crate::{Algorithm, Error, VerifyingKey, b64, crypto};

/// A public JWK as published in a JWK set.
///
/// Only public members are modelled; a private member (`d`) is remembered
/// as present (see [`Jwk::has_private_parts`]) but never kept or serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwk {
    /// Key type: `"RSA"` or `"EC"`.
    pub kty: String,
    /// Key id; this project uses the RFC 7638 thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Public key use; `"sig"` for signing keys.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// The algorithm the key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC curve name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Set when the JSON carried a private member; never serialized.
    #[serde(default, rename = "d", skip_serializing, deserialize_with = "present")]
    pub(crate) private: bool,
}

/// A JWK set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// An RSA public JWK from big-endian modulus and exponent.
    pub fn rsa(n: &[u8], e: &[u8]) -> Self {
        Jwk { kty: "RSA".into(), n: Some(b64::encode(n)), e: Some(b64::encode(e)), ..Jwk::default() }
    }

    /// A P-256 public JWK from 32-byte big-endian coordinates.
    pub fn p256(x: &[u8], y: &[u8]) -> Self {
        Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some(b64::encode(x)),
            y: Some(b64::encode(y)),
            ..Jwk::default()
        }
    }

    /// Whether the JSON this key was read from carried a private member
    /// (`d`). Such a key must never be accepted where a public key is expected.
    pub fn has_private_parts(&self) -> bool {
        self.private
    }

    /// Parses this JWK into a key that verifies signatures, enforcing the
    /// project's rules: `use` absent or `sig`; RSA of 2048 to 8192 bits;
    /// EC only on P-256 with a point on the curve; an `alg`, if present,
    /// that matches the key type; no private members.
    pub fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        if self.has_private_parts() {
            return Err(Error::KeyRejected("a public JWK must not carry private members".into()));
        }
        if let Some(u) = self.use_.as_ref().filter(|u| *u != "sig") {
            return Err(Error::KeyRejected(format!("key use `{}` is not `sig`", truncate(u))));
        }
        let alg = match self.kty.as_str() {
            "RSA" => Algorithm::RS256,
            "EC" => Algorithm::ES256,
            other => return Err(Error::KeyRejected(format!("unsupported key type `{}`", truncate(other)))),
        };
        if let Some(a) = self.alg.as_ref().filter(|a| *a != alg.as_str()) {
            return Err(Error::KeyRejected(format!("alg `{}` does not match key type `{}`", truncate(a), self.kty)));
        }
        match alg {
            Algorithm::RS256 => {
                let n = b64::decode(member(&self.n, "n")?, "n")?;
                let e = b64::decode(member(&self.e, "e")?, "e")?;
                VerifyingKey::rsa(&n, &e)
            }
            Algorithm::ES256 => {
                if self.crv.as_deref() != Some("P-256") {
                    return Err(Error::KeyRejected("EC keys must be on curve P-256".into()));
                }
                let x = b64::decode(member(&self.x, "x")?, "x")?;
                let y = b64::decode(member(&self.y, "y")?, "y")?;
                VerifyingKey::p256(&x, &y)
            }
        }
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

fn member<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, Error> {
    v.as_deref().ok_or_else(|| Error::KeyRejected(format!("missing member `{name}`")))
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

/// The RFC 7638 JWK thumbprint: base64url(SHA-256) of the canonical JSON of
/// the required public members, in lexicographic order.
pub fn thumbprint(jwk: &Jwk) -> Result<String, Error> {
    let canonical = match jwk.kty.as_str() {
        "RSA" => {
            format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, safe(member(&jwk.e, "e")?)?, safe(member(&jwk.n, "n")?)?)
        }
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            safe(member(&jwk.crv, "crv")?)?,
            safe(member(&jwk.x, "x")?)?,
            safe(member(&jwk.y, "y")?)?
        ),
        other => return Err(Error::KeyRejected(format!("unsupported key type `{}`", truncate(other)))),
    };
    Ok(b64::encode(crypto::sha256(canonical.as_bytes())))
}

/// Members go into the canonical JSON verbatim, so only characters that
/// need no JSON escaping are allowed (base64url and curve names).
fn safe(v: &str) -> Result<&str, Error> {
    if v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(v)
    } else {
        Err(Error::KeyRejected("JWK member is not base64url".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1: the thumbprint of the example RSA key.
    #[test]
    fn rfc7638_3_1_thumbprint() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(thumbprint(&jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn private_members_are_detected_and_never_serialized() {
        let jwk: Jwk = serde_json::from_str(r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"secret"}"#).unwrap();
        assert!(jwk.has_private_parts());
        assert!(!serde_json::to_string(&jwk).unwrap().contains("secret"));
        assert!(matches!(jwk.verifying_key(), Err(Error::KeyRejected(_))));
    }

    #[test]
    fn alg_must_match_key_type_and_use_must_be_sig() {
        let mut jwk = Jwk::p256(&[1; 32], &[2; 32]);
        jwk.alg = Some("RS256".into());
        assert!(matches!(jwk.verifying_key(), Err(Error::KeyRejected(m)) if m.contains("does not match")));
        jwk.alg = None;
        jwk.use_ = Some("enc".into());
        assert!(matches!(jwk.verifying_key(), Err(Error::KeyRejected(m)) if m.contains("use")));
    }
}
