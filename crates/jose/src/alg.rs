use std::{fmt, str::FromStr};

use crate::Error;

/// A JWS algorithm allowed by this project (RFC 7518 §3.1).
///
/// The algorithm belongs to the key: a token header names it, but
/// verification always uses the key's own algorithm and rejects a mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA with P-256 and SHA-256, signature as fixed-length `r || s`.
    ES256,
}

impl Algorithm {
    /// Every allowed algorithm.
    pub const ALL: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

    /// The name as it appears in a JOSE header (`"RS256"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
        }
    }

    /// The JWK `kty` of keys for this algorithm (`"RSA"` or `"EC"`).
    pub const fn key_type(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RSA",
            Algorithm::ES256 => "EC",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses an algorithm name, case-sensitively as RFC 7515 §4.1.1 requires.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            other => Err(Error::UnsupportedAlgorithm(other.chars().take(32).collect())),
        }
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
        for bad in ["es256", "none", "None", "HS256", "PS256", ""] {
            assert!(matches!(bad.parse::<Algorithm>(), Err(Error::UnsupportedAlgorithm(_))), "{bad}");
        }
    }
}
