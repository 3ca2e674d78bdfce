//! Public JSON Web Keys (RFC 7517) and thumbprints (RFC 7638).

use serde::{Deserialize, Serialize};

use crate::{Algorithm, Error, VerifyingKey, b64, crypto};

/// A public JWK as published in a JWK set.
///
/// Only public members are modelled; a private member (`d`) is remembered
/// as present (see [`Jwk::has_private_parts`]) but never kept or serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwk {
    /// Key type: `"RSA"`, `"EC"`, `"OKP"` (RFC 8037) or `"AKP"` (RFC 9964).
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
    /// EC or OKP curve name (`P-256`, `P-384`, `Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate, or the OKP public key (RFC 8037 §2), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// AKP public key (RFC 9964 §4), base64url.
    #[serde(rename = "pub", default, skip_serializing_if = "Option::is_none")]
    pub pub_: Option<String>,
    /// Set when the JSON carried a private member; never serialized.
    #[serde(default, rename = "d", skip_serializing, deserialize_with = "present")]
    pub(crate) private: bool,
    /// Set when the JSON carried the AKP private member `priv` (RFC 9964);
    /// never serialized.
    #[serde(default, rename = "priv", skip_serializing, deserialize_with = "present")]
    pub(crate) private_akp: bool,
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

    /// A P-384 public JWK from 48-byte big-endian coordinates.
    pub fn p384(x: &[u8], y: &[u8]) -> Self {
        Jwk {
            kty: "EC".into(),
            crv: Some("P-384".into()),
            x: Some(b64::encode(x)),
            y: Some(b64::encode(y)),
            ..Jwk::default()
        }
    }

    /// An Ed25519 public JWK (RFC 8037 §2: `kty` `OKP`, `crv` `Ed25519`).
    pub fn ed25519(x: &[u8]) -> Self {
        Jwk { kty: "OKP".into(), crv: Some("Ed25519".into()), x: Some(b64::encode(x)), ..Jwk::default() }
    }

    /// An ML-DSA public JWK (RFC 9964 §4: `kty` `AKP`, `alg` required, the
    /// raw key in `pub`).
    pub fn ml_dsa(alg: Algorithm, public: &[u8]) -> Self {
        Jwk { kty: "AKP".into(), alg: Some(alg.as_str().into()), pub_: Some(b64::encode(public)), ..Jwk::default() }
    }

    /// Whether the JSON this key was read from carried a private member
    /// (`d`, or `priv` for AKP). Such a key must never be accepted where a
    /// public key is expected.
    pub fn has_private_parts(&self) -> bool {
        self.private || self.private_akp
    }

    /// The algorithm this JWK is for, from `kty`, `crv` and `alg`; a key
    /// without `alg` takes its type's first algorithm (RSA: RS256, P-256:
    /// ES256, P-384: ES384, Ed25519: Ed25519). An `alg` that does not fit
    /// the key type or curve is refused; `EdDSA` is admitted on Ed25519
    /// keys (RFC 8037); AKP keys must carry `alg` (RFC 9964 §4).
    pub fn algorithm(&self) -> Result<Algorithm, Error> {
        let declared = match self.alg.as_deref() {
            None => None,
            Some(a) => Some(
                Algorithm::from_header_name(a)
                    .map_err(|_| Error::KeyRejected(format!("unsupported key alg `{}`", truncate(a))))?,
            ),
        };
        let curve = self.crv.as_deref();
        let alg = match (self.kty.as_str(), curve, declared) {
            ("RSA", _, None) => Algorithm::RS256,
            ("RSA", _, Some(a @ (Algorithm::RS256 | Algorithm::PS256))) => a,
            ("RSA", _, Some(_)) => return Err(self.mismatch()),
            ("EC", Some("P-256"), None | Some(Algorithm::ES256)) => Algorithm::ES256,
            ("EC", Some("P-384"), None | Some(Algorithm::ES384)) => Algorithm::ES384,
            ("EC", Some("P-256" | "P-384"), Some(_)) => return Err(self.mismatch()),
            ("EC", _, _) => return Err(Error::KeyRejected("EC keys must be on curve P-256 or P-384".into())),
            ("OKP", Some("Ed25519"), None | Some(Algorithm::Ed25519)) => Algorithm::Ed25519,
            ("OKP", Some("Ed25519"), Some(_)) => return Err(self.mismatch()),
            ("OKP", _, _) => return Err(Error::KeyRejected("OKP keys must be on curve Ed25519".into())),
            ("AKP", _, None) => return Err(Error::KeyRejected("an AKP key must carry `alg` (RFC 9964)".into())),
            ("AKP", _, Some(a)) if a.is_ml_dsa() && self.alg.as_deref() == Some(a.as_str()) => a,
            ("AKP", _, Some(_)) => return Err(self.mismatch()),
            (other, _, _) => return Err(Error::KeyRejected(format!("unsupported key type `{}`", truncate(other)))),
        };
        Ok(alg)
    }

    fn mismatch(&self) -> Error {
        let alg = self.alg.as_deref().unwrap_or_default();
        Error::KeyRejected(format!("alg `{}` does not match key type `{}`", truncate(alg), truncate(&self.kty)))
    }

    /// Parses this JWK into a key that verifies signatures, enforcing the
    /// project's rules: `use` absent or `sig`; RSA of 2048 to 8192 bits;
    /// EC only on P-256 or P-384 with a point on the curve; OKP only on
    /// Ed25519; AKP only ML-DSA-44 or ML-DSA-65 with a `pub` of the right
    /// length; an `alg` that matches the key (see [`Jwk::algorithm`]); no
    /// private members.
    pub fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        if self.has_private_parts() {
            return Err(Error::KeyRejected("a public JWK must not carry private members".into()));
        }
        if let Some(u) = self.use_.as_ref().filter(|u| *u != "sig") {
            return Err(Error::KeyRejected(format!("key use `{}` is not `sig`", truncate(u))));
        }
        let alg = self.algorithm()?;
        let key = match alg {
            Algorithm::RS256 | Algorithm::PS256 => {
                let n = b64::decode(member(&self.n, "n")?, "n")?;
                let e = b64::decode(member(&self.e, "e")?, "e")?;
                if alg == Algorithm::PS256 { VerifyingKey::rsa_pss(&n, &e) } else { VerifyingKey::rsa(&n, &e) }
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let x = b64::decode(member(&self.x, "x")?, "x")?;
                let y = b64::decode(member(&self.y, "y")?, "y")?;
                if alg == Algorithm::ES384 { VerifyingKey::p384(&x, &y) } else { VerifyingKey::p256(&x, &y) }
            }
            Algorithm::Ed25519 => VerifyingKey::ed25519(&b64::decode(member(&self.x, "x")?, "x")?),
            Algorithm::MlDsa44 | Algorithm::MlDsa65 => {
                VerifyingKey::ml_dsa(alg, &b64::decode(member(&self.pub_, "pub")?, "pub")?)
            }
        }?;
        Ok(key.named(self.alg.as_deref()))
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
/// the required public members, in lexicographic order (RSA and EC:
/// RFC 7638 §3.2; OKP: RFC 8037 §2; AKP: `alg`, `kty`, `pub`, RFC 9964).
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
        // RFC 8037 §2.
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            safe(member(&jwk.crv, "crv")?)?,
            safe(member(&jwk.x, "x")?)?
        ),
        // RFC 9964 §5: `alg`, `kty` and `pub`.
        "AKP" => format!(
            r#"{{"alg":"{}","kty":"AKP","pub":"{}"}}"#,
            safe(member(&jwk.alg, "alg")?)?,
            safe(member(&jwk.pub_, "pub")?)?
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

    /// RFC 8037 A.3: the thumbprint of the example Ed25519 key.
    #[test]
    fn rfc8037_a3_okp_thumbprint() {
        let jwk: Jwk =
            serde_json::from_str(r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#)
                .unwrap();
        assert_eq!(thumbprint(&jwk).unwrap(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn jwk_alg_picks_the_algorithm_within_the_key_type() {
        let rsa = |alg: Option<&str>| Jwk { alg: alg.map(Into::into), ..Jwk::rsa(&[1; 256], &[1, 0, 1]) };
        assert_eq!(rsa(None).algorithm(), Ok(Algorithm::RS256));
        assert_eq!(rsa(Some("PS256")).algorithm(), Ok(Algorithm::PS256));
        for bad in ["ES256", "EdDSA", "ML-DSA-65", "PS512"] {
            assert!(matches!(rsa(Some(bad)).algorithm(), Err(Error::KeyRejected(_))), "{bad}");
        }
        let p384 = Jwk::p384(&[1; 48], &[2; 48]);
        assert_eq!(p384.algorithm(), Ok(Algorithm::ES384));
        assert!(Jwk { alg: Some("ES256".into()), ..p384 }.algorithm().is_err(), "curve and alg must agree");
        let ed = Jwk::ed25519(&[3; 32]);
        for (alg, want) in [(None, Ok(Algorithm::Ed25519)), (Some("EdDSA"), Ok(Algorithm::Ed25519))] {
            assert_eq!(Jwk { alg: alg.map(Into::into), ..ed.clone() }.algorithm(), want);
        }
        let x448 = Jwk { crv: Some("Ed448".into()), ..ed };
        assert!(matches!(x448.algorithm(), Err(Error::KeyRejected(m)) if m.contains("Ed25519")));
        let akp = Jwk::ml_dsa(Algorithm::MlDsa65, &[4; 1952]);
        assert_eq!(akp.algorithm(), Ok(Algorithm::MlDsa65));
        assert!(
            matches!(Jwk { alg: None, ..akp.clone() }.algorithm(), Err(Error::KeyRejected(m)) if m.contains("RFC 9964"))
        );
        assert!(Jwk { alg: Some("EdDSA".into()), ..akp }.algorithm().is_err());
    }

    #[test]
    fn akp_private_member_is_detected_and_never_serialized() {
        let jwk: Jwk = serde_json::from_str(r#"{"kty":"AKP","alg":"ML-DSA-44","pub":"AA","priv":"c2VjcmV0"}"#).unwrap();
        assert!(jwk.has_private_parts());
        assert!(!serde_json::to_string(&jwk).unwrap().contains("c2VjcmV0"));
        assert!(matches!(jwk.verifying_key(), Err(Error::KeyRejected(m)) if m.contains("private")));
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
