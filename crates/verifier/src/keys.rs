//! A JWK set parsed once into verifying keys, looked up by `kid` without
//! allocating. Keys are trusted as a set: a new document replaces the
//! whole set, so a kid that leaves the JWKS stops verifying.

use std::{collections::HashMap, fmt, sync::Arc};

use jwks_jose::{Jwk, JwkSet, VerifyingKey};
use serde::Deserialize;
use serde_json::Value;

use crate::error::truncated;

/// The most keys a JWK set may hold; a larger document is refused whole.
pub const MAX_KEYS: usize = 100;

/// The parsed, usable keys of one JWKS version.
#[derive(Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<Box<str>, Arc<VerifyingKey>>,
    /// Keys published without a `kid`: usable only by a token without
    /// `kid`, and only when the whole set is this one key.
    anonymous: Vec<Arc<VerifyingKey>>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .field("anonymous", &self.anonymous.len())
            .finish()
    }
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<Value>,
}

impl KeySet {
    /// Parses a JWKS document (RFC 7517 §5). Keys that cannot be used are
    /// skipped with a log line; the document is refused if it is not a JWK
    /// set, holds more than [`MAX_KEYS`] keys, or no usable key.
    pub(crate) fn parse(body: &[u8]) -> Result<KeySet, String> {
        let doc: Document = serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
        if doc.keys.len() > MAX_KEYS {
            return Err(format!("{} keys exceed the limit of {MAX_KEYS}", doc.keys.len()));
        }
        let jwks = doc.keys.into_iter().map(|v| serde_json::from_value::<Jwk>(v).map_err(|e| e.to_string()));
        let set = KeySet::build(jwks);
        if set.is_empty() { Err("the JWK set has no usable key".into()) } else { Ok(set) }
    }

    /// The usable keys of an already-parsed JWK set (for offline use).
    pub(crate) fn from_jwk_set(set: &JwkSet) -> KeySet {
        KeySet::build(set.keys.iter().cloned().map(Ok))
    }

    fn build(jwks: impl Iterator<Item = Result<Jwk, String>>) -> KeySet {
        let mut by_kid: HashMap<Box<str>, (Jwk, Arc<VerifyingKey>)> = HashMap::new();
        let mut conflicting: Vec<Box<str>> = Vec::new();
        let mut anonymous = Vec::new();
        for (index, jwk) in jwks.enumerate() {
            let jwk = match jwk {
                Ok(jwk) => jwk,
                Err(reason) => {
                    tracing::warn!(index, %reason, "skipping a JWK that does not parse");
                    continue;
                }
            };
            let kid = jwk.kid.as_deref().map(truncated);
            let key = match jwk.verifying_key() {
                Ok(key) => Arc::new(key),
                Err(e) => {
                    tracing::warn!(index, kid, reason = %e, "skipping an unusable JWK");
                    continue;
                }
            };
            let Some(kid) = jwk.kid.clone() else {
                anonymous.push(key);
                continue;
            };
            let kid: Box<str> = kid.into();
            match by_kid.get(&kid) {
                Some((first, _)) if *first == jwk => {}
                Some(_) => {
                    tracing::warn!(kid = %truncated(&kid), "skipping every JWK of a kid published for different keys");
                    conflicting.push(kid);
                }
                None => {
                    by_kid.insert(kid, (jwk, key));
                }
            }
        }
        for kid in conflicting {
            by_kid.remove(&kid);
        }
        KeySet { by_kid: by_kid.into_iter().map(|(kid, (_, key))| (kid, key)).collect(), anonymous }
    }

    /// How many usable keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key for a token's `kid`. A token without `kid` gets the key only
    /// when the set holds exactly one.
    pub(crate) fn get(&self, kid: Option<&str>) -> Option<&Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None if self.len() == 1 => self.anonymous.first().or_else(|| self.by_kid.values().next()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use jwks_jose::{Algorithm, SigningKey};
    use serde_json::json;

    use super::*;

    fn key(alg: Algorithm) -> SigningKey {
        SigningKey::from_pkcs8(alg, &SigningKey::generate(alg, 2048).unwrap()).unwrap()
    }

    /// Issue 14: a JWKS key with `e = 3` was accepted; FIPS 186-5 asks an
    /// odd `e` of at least 65537.
    #[test]
    fn jwks_rsa_key_with_exponent_3_is_skipped() {
        let rsa = key(Algorithm::RS256).public_jwk();
        let mut small = rsa.clone();
        small.e = Some(jwks_jose::b64::encode([3]));
        small.kid = Some("e3".into());
        let mut even = rsa.clone();
        even.e = Some(jwks_jose::b64::encode([1, 0, 2]));
        even.kid = Some("even".into());
        let doc = json!({"keys": [small, even]});
        assert_eq!(KeySet::parse(doc.to_string().as_bytes()).unwrap_err(), "the JWK set has no usable key");
        let doc = json!({"keys": [rsa]});
        assert_eq!(KeySet::parse(doc.to_string().as_bytes()).unwrap().len(), 1, "e = 65537 is kept");
    }

    #[test]
    fn bad_keys_are_skipped_and_good_ones_kept() {
        let good = key(Algorithm::ES256);
        let mut enc = key(Algorithm::ES256).public_jwk();
        enc.use_ = Some("enc".into());
        let mut wrong_alg = key(Algorithm::ES256).public_jwk();
        wrong_alg.alg = Some("RS256".into());
        let doc = json!({"keys": [
            good.public_jwk(),
            enc,
            wrong_alg,
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "off-curve"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny"},
            "not an object",
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.get(Some(good.kid())).is_some());
        assert!(set.get(None).is_some(), "a single key serves a token without kid");
        assert!(set.get(Some("hmac")).is_none());
    }

    #[test]
    fn a_kid_published_for_two_different_keys_is_dropped() {
        let a = key(Algorithm::ES256);
        let mut b = key(Algorithm::ES256).public_jwk();
        b.kid = Some(a.kid().to_owned());
        let c = key(Algorithm::ES256);
        let doc = json!({"keys": [a.public_jwk(), b, c.public_jwk(), c.public_jwk()]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert!(set.get(Some(a.kid())).is_none());
        assert!(set.get(Some(c.kid())).is_some(), "an identical duplicate is harmless");
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn too_many_keys_no_usable_key_and_garbage_are_refused() {
        let jwk = key(Algorithm::ES256).public_jwk();
        let many = json!({ "keys": vec![jwk; MAX_KEYS + 1] });
        assert!(KeySet::parse(many.to_string().as_bytes()).unwrap_err().contains("exceed"));
        assert!(KeySet::parse(br#"{"keys":[]}"#).unwrap_err().contains("no usable key"));
        assert!(KeySet::parse(b"<html>").is_err());
        assert!(KeySet::parse(br#"{"keys":{}}"#).is_err());
    }

    #[test]
    fn a_token_without_kid_is_refused_when_the_set_has_several_keys() {
        let set = KeySet::from_jwk_set(&JwkSet {
            keys: vec![key(Algorithm::ES256).public_jwk(), key(Algorithm::ES256).public_jwk()],
        });
        assert_eq!(set.len(), 2);
        assert!(set.get(None).is_none());
    }
}
