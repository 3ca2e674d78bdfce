//! The one error type of the crate, with a stable snake_case code per reason.

use std::borrow::Cow;

use jwks_jose::{Algorithm, text};
use thiserror::Error as ThisError;

use crate::proof::ProofError;

/// Why a token was refused or the verifier could not be built.
///
/// Each variant has a stable wire code ([`Error::code`]); messages never
/// contain the token, key material or secrets.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// Not three strict base64url segments, header or claims not a JSON
    /// object, or JSON with duplicate member names (RFC 7515 §7.1, RFC 8725 §3.11).
    #[error("malformed token: {reason}")]
    Malformed {
        /// What was wrong.
        reason: Cow<'static, str>,
    },
    /// The token is longer than the limit (8 KiB; more for ML-DSA, see
    /// [`crate::limits`]).
    #[error("token of {len} bytes exceeds the limit of {max}")]
    TokenTooLarge {
        /// Length of the token.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header `alg` is outside the allow-list (`none`, `HS256`, ...; RFC 8725 §3.1).
    #[error("algorithm `{alg}` is not allowed")]
    UnsupportedAlg {
        /// The header's `alg`, truncated.
        alg: String,
    },
    /// The header `alg` is not the algorithm of the key the `kid` names.
    #[error("header alg {header} does not match the key's algorithm {key}")]
    AlgMismatch {
        /// The algorithm named by the header.
        header: Algorithm,
        /// The key's algorithm.
        key: Algorithm,
    },
    /// The header names the key's algorithm by a name its JWK does not
    /// admit: `EdDSA` on an Ed25519 key whose JWK says `Ed25519`, or
    /// `Ed25519` on one whose JWK says `EdDSA`. Code `alg_mismatch`.
    #[error("header alg `{header}` is not the name the key's JWK gives its algorithm")]
    AlgNameMismatch {
        /// The header's `alg`.
        header: &'static str,
    },
    /// The header carries `crit`, whose extensions this verifier does not
    /// understand (RFC 7515 §4.1.11).
    #[error("critical header extensions are not supported")]
    UnsupportedCrit,
    /// The header `typ` is not the required type (RFC 8725 §3.11, RFC 9068 §4).
    #[error("token type {found:?} is not the required `{expected}`")]
    WrongType {
        /// The `typ` found, truncated, if any.
        found: Option<String>,
        /// The required type.
        expected: String,
    },
    /// No key in the JWK set has this `kid` (or the token has no `kid` and
    /// the set has more than one key).
    #[error("no key for kid {kid:?}")]
    UnknownKid {
        /// The token's `kid`, truncated.
        kid: Option<String>,
    },
    /// The signature does not verify with the key.
    #[error("signature verification failed")]
    BadSignature,
    /// `iss` is not the expected issuer.
    #[error("issuer {found:?} is not the expected issuer")]
    WrongIssuer {
        /// The `iss` found, truncated.
        found: String,
    },
    /// `aud` contains none of the accepted audiences.
    #[error("no accepted audience in aud")]
    WrongAudience,
    /// `exp` is in the past, beyond the leeway.
    #[error("token expired at {exp} (now {now}, leeway {leeway}s)")]
    Expired {
        /// The `exp` claim (seconds since the epoch).
        exp: u64,
        /// The verifier's time (seconds since the epoch).
        now: u64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not valid before {nbf} (now {now}, leeway {leeway}s)")]
    NotYetValid {
        /// The `nbf` claim.
        nbf: u64,
        /// The verifier's time.
        now: u64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// `iat` is in the future, beyond the leeway (code `not_yet_valid`).
    #[error("token issued in the future at {iat} (now {now}, leeway {leeway}s)")]
    IssuedInFuture {
        /// The `iat` claim.
        iat: u64,
        /// The verifier's time.
        now: u64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// A required claim (`iss`, `aud`, `exp`) is absent.
    #[error("required claim `{claim}` is missing")]
    MissingClaim {
        /// The claim name.
        claim: &'static str,
    },
    /// A claim has the wrong JSON type or range (`exp` as a string, `aud`
    /// as a number, ...), or the claims do not fit the caller's type.
    #[error("invalid claim: {reason}")]
    InvalidClaim {
        /// What was wrong.
        reason: Cow<'static, str>,
    },
    /// No usable keys: the JWKS could not be fetched and the kid was never
    /// seen, or the last good keys are older than `max_stale`.
    #[error("JWKS unavailable: {reason}")]
    JwksUnavailable {
        /// Why (a summary of the last failure).
        reason: String,
    },
    /// The request carried no bearer token (actix extractor).
    #[error("no bearer token in the request")]
    MissingToken,
    /// The token lacks a scope the resource requires (RFC 6750 §3.1).
    #[error("the token lacks the required scope `{scope}`")]
    InsufficientScope {
        /// The scope required.
        scope: String,
    },
    /// A DPoP proof was refused (RFC 9449 §4.3); the reason says which rule.
    #[error("{reason}")]
    InvalidDpopProof {
        /// Which rule the proof broke.
        reason: ProofError,
    },
    /// The server wants the proof to carry its nonce (RFC 9449 §8, §9): the
    /// proof has none and one is required, its nonce is not valid (expired,
    /// or not this server's), or its `iat` is outside the window without a
    /// valid nonce. Answered with a fresh `DPoP-Nonce`; the client retries
    /// once with it. See [`crate::nonce`].
    #[error("{reason}")]
    UseDpopNonce {
        /// Why (client-safe).
        reason: String,
    },
    /// A DPoP-bound token (one with `cnf.jkt`) was presented without a
    /// proof, e.g. as a `Bearer` token (RFC 9449 §7.2).
    #[error("the token is DPoP-bound: present it with the DPoP scheme and a proof")]
    DpopBound,
    /// A DPoP proof came with a token that is not bound to a key (no
    /// `cnf.jkt`).
    #[error("the token is not DPoP-bound (no `cnf.jkt`)")]
    NotDpopBound,
    /// The builder was given an invalid configuration.
    #[error("invalid verifier configuration: {reason}")]
    Config {
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// The stable snake_case code of this error, for logs, metrics and the
    /// `jwks-verify` output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Malformed { .. } => "malformed",
            Error::TokenTooLarge { .. } => "token_too_large",
            Error::UnsupportedAlg { .. } => "unsupported_alg",
            Error::AlgMismatch { .. } | Error::AlgNameMismatch { .. } => "alg_mismatch",
            Error::UnsupportedCrit => "unsupported_crit",
            Error::WrongType { .. } => "wrong_type",
            Error::UnknownKid { .. } => "unknown_kid",
            Error::BadSignature => "bad_signature",
            Error::WrongIssuer { .. } => "wrong_issuer",
            Error::WrongAudience => "wrong_audience",
            Error::Expired { .. } => "expired",
            Error::NotYetValid { .. } | Error::IssuedInFuture { .. } => "not_yet_valid",
            Error::MissingClaim { .. } => "missing_claim",
            Error::InvalidClaim { .. } => "invalid_claim",
            Error::JwksUnavailable { .. } => "jwks_unavailable",
            Error::MissingToken => "missing_token",
            Error::InsufficientScope { .. } => "insufficient_scope",
            Error::InvalidDpopProof { .. } => "invalid_dpop_proof",
            Error::UseDpopNonce { .. } => "use_dpop_nonce",
            Error::DpopBound => "dpop_bound_token",
            Error::NotDpopBound => "not_dpop_bound",
            Error::Config { .. } => "invalid_config",
        }
    }

    pub(crate) fn malformed(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::Malformed { reason: reason.into() }
    }

    pub(crate) fn invalid_claim(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidClaim { reason: reason.into() }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::Config { reason: reason.into() }
    }
}

impl From<ProofError> for Error {
    fn from(reason: ProofError) -> Self {
        Error::InvalidDpopProof { reason }
    }
}

/// At most 64 characters of untrusted text, for error messages and logs.
pub(crate) fn truncated(s: &str) -> String {
    text::truncate(s, 64).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_stable() {
        let samples = [
            (Error::malformed("x"), "malformed"),
            (Error::TokenTooLarge { len: 9000, max: 8192 }, "token_too_large"),
            (Error::UnsupportedAlg { alg: "none".into() }, "unsupported_alg"),
            (Error::BadSignature, "bad_signature"),
            (Error::IssuedInFuture { iat: 2, now: 1, leeway: 0 }, "not_yet_valid"),
            (Error::JwksUnavailable { reason: "down".into() }, "jwks_unavailable"),
            (ProofError::Replayed.into(), "invalid_dpop_proof"),
            (Error::UseDpopNonce { reason: "x".into() }, "use_dpop_nonce"),
            (Error::DpopBound, "dpop_bound_token"),
            (Error::NotDpopBound, "not_dpop_bound"),
        ];
        for (e, code) in samples {
            assert_eq!(e.code(), code);
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}
