use thiserror::Error as ThisError;

/// Every failure of the JOSE model and the crypto backend.
///
/// Messages name what was wrong and never contain key material.
#[derive(Debug, ThisError, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An algorithm name this project does not allow (`none`, `HS256`, ...).
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// Base64url input with padding, foreign characters or bad length.
    #[error("invalid base64url in {0}")]
    Base64(&'static str),
    /// A compact JWS that is not three non-empty base64url segments.
    #[error("malformed compact JWS: {0}")]
    Malformed(&'static str),
    /// A compact JWS longer than the caller's limit.
    #[error("token of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },
    /// A key that cannot be used: wrong type, size, curve or encoding.
    #[error("key rejected: {0}")]
    KeyRejected(String),
    /// An algorithm this build's crypto backend does not have (ML-DSA on
    /// `ring`); said when a key is loaded or generated, never at signing.
    #[error("{alg} is not available on the {backend} backend; build with the default aws-lc-rs backend to use it")]
    UnsupportedByBackend {
        /// The algorithm's registry name.
        alg: &'static str,
        /// The backend's name.
        backend: &'static str,
    },
    /// A signature that does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A server nonce (RFC 9449 §8) that is malformed, not made with this
    /// key, expired, or of a later time step; the reason says which.
    #[error("invalid nonce: {0}")]
    InvalidNonce(&'static str),
    /// The crypto backend failed (random source, signing, sealing).
    #[error("crypto backend failure: {0}")]
    Crypto(&'static str),
}
