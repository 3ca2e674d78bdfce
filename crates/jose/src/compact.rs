//! Compact JWS serialization (RFC 7515 §7.1): building and splitting
//! `header.payload.signature`.

use crate::{Error, SigningKey, b64};

/// A compact JWS split into its parts; nothing in it has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    /// `base64url(header) "." base64url(payload)`: the bytes that were signed.
    pub signing_input: &'a str,
    /// The decoded protected header (JSON bytes).
    pub header: Vec<u8>,
    /// The decoded payload (JSON bytes for a JWT).
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Splits a compact JWS into three decoded segments.
///
/// Refuses inputs over `max_len` bytes, anything but exactly three
/// non-empty segments, and any segment that is not strict base64url.
pub fn split(token: &str, max_len: usize) -> Result<Parts<'_>, Error> {
    if token.len() > max_len {
        return Err(Error::TooLarge { len: token.len(), max: max_len });
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(Error::Malformed("a compact JWS has exactly three segments"));
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(Error::Malformed("empty segment"));
    }
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(Parts {
        signing_input,
        header: b64::decode(h, "header")?,
        payload: b64::decode(p, "payload")?,
        signature: b64::decode(s, "signature")?,
    })
}

/// Signs `header` and `payload` (serialized JSON) with `key` and returns
/// the compact JWS.
pub fn sign(key: &SigningKey, header: &[u8], payload: &[u8]) -> Result<String, Error> {
    sign_with_header(key, &encode_header(header), payload)
}

/// The base64url form of a protected header, for [`sign_with_header`]: a
/// signer whose header never changes (`alg`, `typ`, `kid`) encodes it once.
pub fn encode_header(header: &[u8]) -> String {
    b64::encode(header)
}

/// Signs `payload` (serialized JSON) under a header already in base64url
/// (see [`encode_header`]): `header_b64 "." base64url(payload)`, then the
/// signature, in one allocation.
pub fn sign_with_header(key: &SigningKey, header_b64: &str, payload: &[u8]) -> Result<String, Error> {
    let sig_len = key.signature_len();
    let mut out = String::with_capacity(header_b64.len() + 2 + payload.len().div_ceil(3) * 4 + sig_len.div_ceil(3) * 4);
    out.push_str(header_b64);
    out.push('.');
    b64::encode_into(payload, &mut out);
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    b64::encode_into(signature, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_segment_counts_and_sizes_are_malformed() {
        assert!(matches!(split("a.b", 100), Err(Error::Malformed(_))));
        assert!(matches!(split("a.b.c.d", 100), Err(Error::Malformed(_))));
        assert!(matches!(split("a..c", 100), Err(Error::Malformed(_))));
        assert!(matches!(split("YQ.YQ.YQ", 3), Err(Error::TooLarge { len: 8, max: 3 })));
        assert_eq!(split("YQ.YQ.YQ=", 100), Err(Error::Base64("signature")));
        let parts = split("YQ.Yg.Yw", 100).unwrap();
        assert_eq!(parts.signing_input, "YQ.Yg");
        assert_eq!((parts.header, parts.payload, parts.signature), (b"a".to_vec(), b"b".to_vec(), b"c".to_vec()));
    }

    #[test]
    fn signing_with_a_pre_encoded_header_equals_signing_the_header() {
        use crate::Algorithm;
        let key =
            SigningKey::from_pkcs8(Algorithm::RS256, &SigningKey::generate(Algorithm::RS256, 2048).unwrap()).unwrap();
        let header = br#"{"alg":"RS256","typ":"at+jwt"}"#;
        let encoded = encode_header(header);
        let token = sign_with_header(&key, &encoded, br#"{"sub":"x"}"#).unwrap();
        // PKCS#1 v1.5 is deterministic: both paths give the same bytes.
        assert_eq!(token, sign(&key, header, br#"{"sub":"x"}"#).unwrap());
        assert!(token.starts_with(&format!("{encoded}.")));
        let parts = split(&token, 8192).unwrap();
        assert_eq!(parts.header, header);
        key.public_jwk().verifying_key().unwrap().verify(parts.signing_input.as_bytes(), &parts.signature).unwrap();
    }
}
