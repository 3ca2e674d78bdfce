//! The default algorithm allow-list and the size limits of each algorithm,
//! for tokens and DPoP proofs alike.
//!
//! A token or proof is first held to the largest limit of the algorithms
//! the verifier allows, so that its header can be read, and then to the
//! limit of the algorithm its header names. An RS256 or ES256 token thus
//! keeps the 8 KiB limit even in a verifier that also allows ML-DSA.
//!
//! | algorithm | token | proof | why |
//! | --- | --- | --- | --- |
//! | RS256, PS256, ES256, ES384, Ed25519 | 8 KiB | 8 KiB | the limit of every token so far; an RS256 signature of an 8192-bit key is 1366 characters of it |
//! | ML-DSA-44 | 12 KiB | 14 KiB | 8 KiB plus the signature (2420 bytes: 3227 characters); a proof also carries the 1312-byte key in its header (2334 characters once the header is encoded) |
//! | ML-DSA-65 | 13 KiB | 16 KiB | 8 KiB plus the signature (3309 bytes: 4412 characters); a proof also carries the 1952-byte key (3471 characters) |
//!
//! Each ML-DSA figure is that sum rounded up to a KiB: an ML-DSA token has
//! the same room for its header and claims as an RS256 one.

use jwks_jose::Algorithm;

/// The algorithms a verifier allows unless told otherwise: RS256 and ES256.
/// The others (ES384, PS256, Ed25519, ML-DSA-44, ML-DSA-65) are opt-in.
pub const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// The limit of tokens and proofs of the classical algorithms: 8 KiB.
pub const CLASSICAL_LIMIT: usize = 8 * 1024;

/// The base64url length of `n` bytes, without padding.
const fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// `n` rounded up to a whole KiB.
const fn round_up_kib(n: usize) -> usize {
    n.div_ceil(1024) * 1024
}

/// FIPS 204 sizes: (public key, signature) in bytes.
const fn ml_dsa_sizes(alg: Algorithm) -> (usize, usize) {
    match alg {
        Algorithm::MlDsa44 => (1312, 2420),
        _ => (1952, 3309),
    }
}

/// The largest token accepted for `alg`, in bytes (see the table above).
pub const fn token_limit(alg: Algorithm) -> usize {
    if alg.is_ml_dsa() { round_up_kib(CLASSICAL_LIMIT + b64_len(ml_dsa_sizes(alg).1)) } else { CLASSICAL_LIMIT }
}

/// The largest DPoP proof accepted for `alg`, in bytes: a proof carries
/// its public key in the header (`jwk`), base64url-encoded twice.
pub const fn proof_limit(alg: Algorithm) -> usize {
    if alg.is_ml_dsa() {
        let (public, sig) = ml_dsa_sizes(alg);
        round_up_kib(CLASSICAL_LIMIT + b64_len(b64_len(public)) + b64_len(sig))
    } else {
        CLASSICAL_LIMIT
    }
}

/// The largest token limit of any algorithm (ML-DSA-65's).
pub const MAX_TOKEN_LIMIT: usize = token_limit(Algorithm::MlDsa65);

/// The largest proof limit of any algorithm (ML-DSA-65's).
pub const MAX_PROOF_LIMIT: usize = proof_limit(Algorithm::MlDsa65);

/// The largest of `limit` over `algorithms` (the first, header-reading
/// check); [`CLASSICAL_LIMIT`] for an empty list.
pub(crate) fn largest(algorithms: &[Algorithm], limit: fn(Algorithm) -> usize) -> usize {
    algorithms.iter().map(|a| limit(*a)).max().unwrap_or(CLASSICAL_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_the_documented_figures() {
        for alg in [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::ES384, Algorithm::Ed25519] {
            assert_eq!((token_limit(alg), proof_limit(alg)), (8192, 8192), "{alg}");
        }
        assert_eq!((token_limit(Algorithm::MlDsa44), proof_limit(Algorithm::MlDsa44)), (12 * 1024, 14 * 1024));
        assert_eq!((token_limit(Algorithm::MlDsa65), proof_limit(Algorithm::MlDsa65)), (13 * 1024, 16 * 1024));
        assert_eq!((MAX_TOKEN_LIMIT, MAX_PROOF_LIMIT), (13 * 1024, 16 * 1024));
        assert_eq!(b64_len(3309), 4412);
        assert_eq!(largest(&DEFAULT_ALGORITHMS, token_limit), 8192);
        assert_eq!(largest(&[Algorithm::ES256, Algorithm::MlDsa44], proof_limit), 14 * 1024);
    }
}
