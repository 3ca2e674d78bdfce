//! The key-encryption key (`JWKS_ISSUER_KEK`) that seals private keys at
//! rest (AES-256-GCM, the kid as associated data).

use jwks_jose::crypto::Sealer;

use crate::Error;

/// Environment variable holding the base64 32-byte key-encryption key.
pub const ENV_KEK: &str = "JWKS_ISSUER_KEK";

/// Reads the key-encryption key from `JWKS_ISSUER_KEK` (base64 of 32
/// bytes), if set.
pub fn sealer_from_env() -> Result<Option<Sealer>, Error> {
    let Ok(v) = std::env::var(ENV_KEK) else { return Ok(None) };
    sealer_from_base64(&v).map(Some)
}

/// The 32 bytes of `JWKS_ISSUER_KEK`, if set: the secret other keys are
/// derived from (the DPoP nonce key, with its own HKDF label).
pub fn kek_from_env() -> Result<Option<Vec<u8>>, Error> {
    let Ok(v) = std::env::var(ENV_KEK) else { return Ok(None) };
    kek_bytes(&v).map(Some)
}

/// A sealer from the base64 (standard or url-safe, padded or not) of 32 bytes.
pub fn sealer_from_base64(v: &str) -> Result<Sealer, Error> {
    let bytes = kek_bytes(v)?;
    Sealer::new(&bytes).map_err(|_| Error::Kek(format!("{ENV_KEK} must decode to 32 bytes, not {}", bytes.len())))
}

/// The bytes of a KEK given as base64 (standard or url-safe, padded or not).
fn kek_bytes(v: &str) -> Result<Vec<u8>, Error> {
    use base64::Engine;
    let v = v.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')))
        .map_err(|_| Error::Kek(format!("{ENV_KEK} is not base64")))?;
    if bytes.len() != 32 {
        return Err(Error::Kek(format!("{ENV_KEK} must decode to 32 bytes, not {}", bytes.len())));
    }
    Ok(bytes)
}
