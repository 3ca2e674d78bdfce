//! Strict base64url without padding (RFC 7515 §2): padding, whitespace and
//! characters outside the URL-safe alphabet are errors.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::Error;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the unpadded base64url form of `bytes` to `out`.
pub fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes unpadded base64url; `what` names the input in the error.
pub fn decode(s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| Error::Base64(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_whitespace_and_standard_alphabet_are_rejected() {
        assert_eq!(decode("YQ", "t").as_deref(), Ok(&b"a"[..]));
        for bad in ["YQ==", "Y Q", "YQ\n", "a+b/", "Y"] {
            assert_eq!(decode(bad, "t"), Err(Error::Base64("t")), "{bad:?}");
        }
    }
}
