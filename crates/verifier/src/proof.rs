//! What a DPoP proof (RFC 9449 §4.2) may be: its limits, and every reason
//! one is refused. Re-exported by [`crate::dpop`].

use std::fmt;

use jwks_jose::Algorithm;

/// The largest proof accepted of the classical algorithms, in bytes: 8 KiB.
/// ML-DSA proofs have larger limits, see [`crate::limits`].
pub const MAX_PROOF_LEN: usize = crate::limits::CLASSICAL_LIMIT;

/// The longest `jti` accepted, in characters.
pub const MAX_JTI_LEN: usize = 256;

/// The proof algorithms accepted by default (ES256 and RS256): those of
/// [`verify_proof`](crate::dpop::verify_proof). A [`Verifier`](crate::Verifier)
/// accepts proofs of its own allow-list, and
/// [`verify_proof_with`](crate::dpop::verify_proof_with) of the caller's.
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::ES256, Algorithm::RS256];

/// The required header `typ` of a proof (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";

/// Why a DPoP proof was refused (the context of
/// [`Error::InvalidDpopProof`](crate::Error::InvalidDpopProof)). `Display` is a precise, client-safe
/// description.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// Not a compact JWS of strict base64url, or not JSON objects, or
    /// duplicate member names, or a claim of the wrong type.
    Malformed(String),
    /// Longer than the limit of its algorithm ([`MAX_PROOF_LEN`] but for
    /// ML-DSA, see [`crate::limits`]).
    TooLarge {
        /// The proof's length.
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },
    /// The header `typ` is not `dpop+jwt`.
    WrongType,
    /// The header `alg` is not in the allow-list.
    UnsupportedAlg(String),
    /// The header has `crit`.
    UnsupportedCrit,
    /// The header has no `jwk`, or it is not a usable public key for the
    /// header's `alg`.
    BadKey(String),
    /// The header's `jwk` carries private or symmetric key material.
    PrivateKey,
    /// The signature does not verify with the header's `jwk`.
    BadSignature,
    /// A required claim is missing.
    MissingClaim(&'static str),
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the request's URL.
    WrongUrl,
    /// `iat` is older than the window.
    Stale {
        /// The proof's `iat`.
        iat: u64,
        /// The verifier's time.
        now: u64,
    },
    /// `iat` is later than the window.
    Future {
        /// The proof's `iat`.
        iat: u64,
        /// The verifier's time.
        now: u64,
    },
    /// `ath` is not the hash of the access token presented.
    WrongAth,
    /// The proof key is not the key the access token is bound to (`cnf.jkt`).
    KeyMismatch,
    /// The `jti` was already used within the window.
    Replayed,
    /// The proof key has its limit of live proofs in the replay cache
    /// (see [`VerifierBuilder::dpop_replay_capacity_per_key`](crate::VerifierBuilder::dpop_replay_capacity_per_key)):
    /// refused until some of them leave the window; other keys are not affected.
    TooManyProofsForKey,
    /// The replay cache is full of live entries: refused to stay safe.
    ReplayCacheFull,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofError::Malformed(r) => write!(f, "malformed DPoP proof: {r}"),
            ProofError::TooLarge { len, max } => write!(f, "DPoP proof of {len} bytes exceeds {max}"),
            ProofError::WrongType => write!(f, "DPoP proof `typ` must be `{PROOF_TYPE}`"),
            ProofError::UnsupportedAlg(a) => write!(f, "DPoP proof algorithm `{a}` is not allowed"),
            ProofError::UnsupportedCrit => f.write_str("DPoP proof has critical header extensions"),
            ProofError::BadKey(r) => write!(f, "DPoP proof `jwk` is not usable: {r}"),
            ProofError::PrivateKey => f.write_str("DPoP proof `jwk` carries private key material"),
            ProofError::BadSignature => f.write_str("DPoP proof signature does not verify with its `jwk`"),
            ProofError::MissingClaim(c) => write!(f, "DPoP proof lacks the `{c}` claim"),
            ProofError::WrongMethod => f.write_str("DPoP proof `htm` does not match the request method"),
            ProofError::WrongUrl => f.write_str("DPoP proof `htu` does not match the request URL"),
            ProofError::Stale { iat, now } => write!(f, "DPoP proof `iat` {iat} is too old (now {now})"),
            ProofError::Future { iat, now } => write!(f, "DPoP proof `iat` {iat} is in the future (now {now})"),
            ProofError::WrongAth => f.write_str("DPoP proof `ath` does not match the access token"),
            ProofError::KeyMismatch => f.write_str("DPoP proof key is not the key the access token is bound to"),
            ProofError::Replayed => f.write_str("DPoP proof `jti` was already used"),
            ProofError::TooManyProofsForKey => f.write_str("too many recent DPoP proofs by this key; retry later"),
            ProofError::ReplayCacheFull => f.write_str("DPoP proof cannot be checked for replay now"),
        }
    }
}
