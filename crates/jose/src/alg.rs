use std::{fmt, str::FromStr};

use crate::Error;

/// A JWS algorithm allowed by this project, named as the IANA JOSE
/// registry does (RFC 7518 §3.1, RFC 8037, RFC 9864, RFC 9964).
///
/// The algorithm belongs to the key: a token header names it, but
/// verification always uses the key's own algorithm and rejects a mismatch.
/// Each variant fixes every parameter (curve, hash, padding, salt), so
/// nothing is negotiated at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    RS256,
    /// ECDSA with P-256 and SHA-256, signature as fixed-length `r || s`
    /// (RFC 7518 §3.4).
    ES256,
    /// ECDSA with P-384 and SHA-384, signature as fixed-length `r || s`
    /// (RFC 7518 §3.4).
    ES384,
    /// RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-byte salt
    /// (RFC 7518 §3.5).
    PS256,
    /// EdDSA over Ed25519 (RFC 8037, named `Ed25519` by RFC 9864; the
    /// verifier also admits the deprecated header name `EdDSA`, see
    /// [`Algorithm::from_header_name`]).
    Ed25519,
    /// ML-DSA-44 (FIPS 204, RFC 9964), with the empty context string.
    MlDsa44,
    /// ML-DSA-65 (FIPS 204, RFC 9964), with the empty context string.
    MlDsa65,
}

impl Algorithm {
    /// Every allowed algorithm.
    pub const ALL: [Algorithm; 7] = [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::PS256,
        Algorithm::Ed25519,
        Algorithm::MlDsa44,
        Algorithm::MlDsa65,
    ];

    /// The deprecated, polymorphic RFC 8037 name that RFC 9864 replaces by
    /// `Ed25519`; admitted only as a token or proof header name on an
    /// Ed25519 key, never as a configuration name.
    pub const LEGACY_EDDSA: &'static str = "EdDSA";

    /// The name as it appears in a JOSE header and the registry (`"RS256"`,
    /// `"ML-DSA-65"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::PS256 => "PS256",
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::MlDsa44 => "ML-DSA-44",
            Algorithm::MlDsa65 => "ML-DSA-65",
        }
    }

    /// The JWK `kty` of keys for this algorithm: `"RSA"`, `"EC"`, `"OKP"`
    /// (RFC 8037) or `"AKP"` (RFC 9964).
    pub const fn key_type(self) -> &'static str {
        match self {
            Algorithm::RS256 | Algorithm::PS256 => "RSA",
            Algorithm::ES256 | Algorithm::ES384 => "EC",
            Algorithm::Ed25519 => "OKP",
            Algorithm::MlDsa44 | Algorithm::MlDsa65 => "AKP",
        }
    }

    /// Whether this is a post-quantum (ML-DSA) algorithm.
    pub const fn is_ml_dsa(self) -> bool {
        matches!(self, Algorithm::MlDsa44 | Algorithm::MlDsa65)
    }

    /// Parses the `alg` of a token or DPoP proof header: a registry name,
    /// or the legacy `EdDSA`, which means Ed25519 (the only EdDSA curve
    /// this project has). Whether a key admits the legacy name is the
    /// key's decision ([`crate::VerifyingKey::admits_header_name`]).
    pub fn from_header_name(s: &str) -> Result<Self, Error> {
        if s == Self::LEGACY_EDDSA { Ok(Algorithm::Ed25519) } else { s.parse() }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses a registry name, case-sensitively as RFC 7515 §4.1.1 requires.
    fn from_str(s: &str) -> Result<Self, Error> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Error::UnsupportedAlgorithm(s.chars().take(32).collect()))
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_sensitive_and_none_is_refused() {
        assert_eq!("ES256".parse::<Algorithm>(), Ok(Algorithm::ES256));
        for bad in ["es256", "none", "None", "HS256", "PS384", "ed25519", "ML-DSA-87", "MLDSA65", "EdDSA", ""] {
            assert!(matches!(bad.parse::<Algorithm>(), Err(Error::UnsupportedAlgorithm(_))), "{bad}");
        }
    }

    #[test]
    fn every_registry_name_round_trips() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
            assert_eq!(serde_json::from_value::<Algorithm>(serde_json::json!(alg.as_str())).unwrap(), alg);
        }
        assert_eq!(Algorithm::MlDsa65.as_str(), "ML-DSA-65");
    }

    #[test]
    fn eddsa_is_a_header_name_only() {
        assert_eq!(Algorithm::from_header_name("EdDSA"), Ok(Algorithm::Ed25519));
        assert_eq!(Algorithm::from_header_name("Ed25519"), Ok(Algorithm::Ed25519));
        assert!(Algorithm::from_header_name("eddsa").is_err());
        assert!("EdDSA".parse::<Algorithm>().is_err());
    }
}
