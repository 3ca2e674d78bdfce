//! The claims of a verified JWT access token (RFC 9068 §2.2).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience string.
    One(String),
    /// An array of audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Every audience.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice = match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(v) => v.as_slice(),
        };
        slice.iter().map(String::as_str)
    }

    /// Whether `aud` is one of the audiences.
    pub fn contains(&self, aud: &str) -> bool {
        self.iter().any(|a| a == aud)
    }
}

/// The claims of a verified access token.
///
/// `iss`, `aud` and `exp` are always present (the verifier requires them);
/// the other registered claims of RFC 9068 are optional here, and every
/// other claim is kept in [`Claims::extra`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claims {
    /// Issuer: equal to the configured issuer.
    pub iss: String,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience: contains an accepted audience.
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    /// Issued-at, seconds since the epoch.
    #[serde(default, deserialize_with = "opt_numeric_date", skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not-before, seconds since the epoch.
    #[serde(default, deserialize_with = "opt_numeric_date", skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The OAuth client the token was issued to (RFC 9068 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Space-separated scopes (RFC 9068 §2.2.3, RFC 6749 §3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The scopes of the `scope` claim.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the `scope` claim contains `scope` (exact, case-sensitive).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

/// The largest integer a NumericDate may take: 2^53, so that every value
/// is exact in the JSON number model of every consumer.
const MAX_NUMERIC_DATE: f64 = 9_007_199_254_740_992.0;

/// Reads a NumericDate (RFC 7519 §2): a non-negative JSON number up to
/// 2^53, fractions truncated.
pub(crate) fn numeric_date_value(v: &Value) -> Option<u64> {
    if let Some(u) = v.as_u64() {
        return (u <= 1 << 53).then_some(u);
    }
    let f = v.as_f64()?;
    // `as` saturates and the range is checked first, so the cast is exact.
    (f.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&f)).then_some(f as u64)
}

fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    numeric_date_value(&v).ok_or_else(|| serde::de::Error::custom("not a NumericDate"))
}

fn opt_numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => numeric_date_value(&v).map(Some).ok_or_else(|| serde::de::Error::custom("not a NumericDate")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_match_whole_words_only() {
        let c: Claims = serde_json::from_value(json!({
            "iss": "i", "aud": ["a", "b"], "exp": 10, "scope": "read  write:all", "cnf": {"jkt": "x"}
        }))
        .unwrap();
        assert!(c.has_scope("read") && c.has_scope("write:all"));
        assert!(!c.has_scope("write") && !c.has_scope(""));
        assert!(c.aud.contains("b"));
        assert_eq!(c.extra["cnf"]["jkt"], "x");
    }

    #[test]
    fn numeric_dates_are_non_negative_numbers_up_to_2_pow_53() {
        assert_eq!(numeric_date_value(&json!(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(numeric_date_value(&json!(1.5)), Some(1));
        for bad in [json!(-1), json!("1"), json!(null), json!(1e300), json!(9_007_199_254_740_993u64)] {
            assert_eq!(numeric_date_value(&bad), None, "{bad}");
        }
    }
}
