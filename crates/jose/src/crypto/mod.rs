//! The one crypto backend of the project, behind a backend-neutral API.
//!
//! Everything cryptographic (signing, verification, key generation,
//! digests, randomness and sealing keys at rest) goes through this module.
//! The primitives come from one file per backend, chosen by cargo feature:
//! `aws_lc.rs` (`aws-lc-rs`, the default) or `ring.rs` (`ring`, with the
//! `rsa` crate generating RSA keys only). Every rule that does not depend
//! on the backend (modulus sizes, exponents, signature framing, scalar
//! ranges) is checked here, once, before the backend is called.
//! Signatures are RSASSA-PKCS1-v1_5 and RSASSA-PSS with SHA-256, ECDSA
//! P-256 SHA-256 and P-384 SHA-384 in fixed `r || s` form, Ed25519, and
//! ML-DSA-44 / ML-DSA-65 (aws-lc-rs only: `ring` has no ML-DSA, and keys
//! of it are refused when loaded, see [`supports`]).

use std::fmt;

#[cfg(feature = "aws-lc-rs")]
mod aws_lc;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
mod ring;

#[cfg(feature = "aws-lc-rs")]
use self::aws_lc as backend;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use self::ring as backend;

use crate::{Algorithm, Error};

/// The name of the active backend (`"aws-lc-rs"` or `"ring"`).
pub const BACKEND: &str = backend::NAME;

/// RSA modulus sizes this project generates.
pub const RSA_BITS_ALLOWED: [usize; 3] = [2048, 3072, 4096];

/// The order n of the P-256 group, big-endian (FIPS 186-4 D.1.2.3).
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The order n of the P-384 group, big-endian (FIPS 186-4 D.1.2.4).
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0,
    0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    backend::sha256(data)
}

/// Fills `out` from the operating system's CSPRNG.
pub fn fill_random(out: &mut [u8]) -> Result<(), Error> {
    backend::fill_random(out)
}

/// An HMAC-SHA256 key (RFC 2104), for tags this project makes and checks
/// itself (stateless DPoP nonces). `Debug` never shows the key.
pub struct HmacKey {
    inner: backend::HmacKey,
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(HMAC-SHA256)")
    }
}

impl HmacKey {
    /// A key from `key` (32 bytes or more are expected; HMAC takes any length).
    pub fn new(key: &[u8]) -> Self {
        HmacKey { inner: backend::HmacKey::new(key) }
    }

    /// HMAC-SHA256 of `data`.
    pub fn sign(&self, data: &[u8]) -> [u8; 32] {
        self.inner.sign(data)
    }

    /// Whether `tag` is the tag of `data`, or its first `tag.len()` bytes
    /// (at least 16), compared in constant time.
    pub fn verify_truncated(&self, data: &[u8], tag: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let full = self.sign(data);
        match full.get(..tag.len()) {
            Some(expected) if tag.len() >= 16 => bool::from(expected.ct_eq(tag)),
            _ => false,
        }
    }
}

/// HKDF-SHA256 (RFC 5869): 32 bytes of key for the purpose named by
/// `info` (a label such as `"jwks-issuer dpop-nonce v1"`), from the input
/// key material `ikm` and `salt` (may be empty).
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8]) -> Result<[u8; 32], Error> {
    backend::hkdf_sha256(ikm, salt, info)
}

/// Whether the active backend has `alg` (`ring` has no ML-DSA). Callers
/// that take algorithms from configuration check this at load time.
pub const fn supports(alg: Algorithm) -> bool {
    backend::supports(alg)
}

/// The algorithms the active backend has, in [`Algorithm::ALL`] order.
pub fn supported() -> Vec<Algorithm> {
    Algorithm::ALL.into_iter().filter(|a| supports(*a)).collect()
}

/// Refuses an algorithm the active backend does not have.
pub fn check_supported(alg: Algorithm) -> Result<(), Error> {
    if supports(alg) { Ok(()) } else { Err(Error::UnsupportedByBackend { alg: alg.as_str(), backend: BACKEND }) }
}

/// The public half of a [`KeyPair`], as plain big-endian numbers or raw
/// encodings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicParts {
    /// RSA modulus and exponent, without leading zeros.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// P-256 affine coordinates, 32 bytes each.
    P256 {
        /// The x coordinate.
        x: Vec<u8>,
        /// The y coordinate.
        y: Vec<u8>,
    },
    /// P-384 affine coordinates, 48 bytes each.
    P384 {
        /// The x coordinate.
        x: Vec<u8>,
        /// The y coordinate.
        y: Vec<u8>,
    },
    /// An Ed25519 public key, 32 bytes (RFC 8032 §5.1.5).
    Ed25519 {
        /// The encoded point.
        x: Vec<u8>,
    },
    /// An ML-DSA public key in its raw FIPS 204 encoding (1312 bytes for
    /// ML-DSA-44, 1952 for ML-DSA-65).
    MlDsa {
        /// The encoded key (the JWK `pub` of RFC 9964).
        public: Vec<u8>,
    },
}

/// Sizes of ML-DSA public keys and signatures (FIPS 204 Table 2).
const fn ml_dsa_sizes(alg: Algorithm) -> (usize, usize) {
    match alg {
        Algorithm::MlDsa44 => (1312, 2420),
        _ => (1952, 3309),
    }
}

/// The length in bytes of a signature of `alg`, for every algorithm
/// whose signatures have one length (all but the RSA ones, which are as
/// long as the modulus).
pub const fn fixed_signature_len(alg: Algorithm) -> Option<usize> {
    match alg {
        Algorithm::RS256 | Algorithm::PS256 => None,
        Algorithm::ES256 | Algorithm::Ed25519 => Some(64),
        Algorithm::ES384 => Some(96),
        Algorithm::MlDsa44 | Algorithm::MlDsa65 => Some(ml_dsa_sizes(alg).1),
    }
}

/// A parsed private key of one algorithm: parsed once, used for every
/// signature. It knows nothing of JWKs; [`crate::SigningKey`] adds the
/// kid and the public JWK.
///
/// `Debug` shows the algorithm, never key material.
pub struct KeyPair {
    alg: Algorithm,
    inner: backend::PrivateKey,
    public: PublicParts,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair").field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// Splits an uncompressed SEC1 point `0x04 || x || y` of a curve whose
/// coordinates are `len` bytes.
fn sec1_coordinates(point: &[u8], len: usize) -> Result<(Vec<u8>, Vec<u8>), Error> {
    match point {
        [4, rest @ ..] if rest.len() == 2 * len => {
            let (x, y) = rest.split_at(len);
            Ok((x.to_vec(), y.to_vec()))
        }
        _ => Err(Error::KeyRejected("unexpected EC public key encoding".into())),
    }
}

impl KeyPair {
    /// Generates a new private key for `alg` and returns it as PKCS#8 DER
    /// (ML-DSA: the seed form of RFC 9881). `rsa_bits` (2048, 3072 or
    /// 4096) is used for RS256 and PS256 only.
    ///
    /// RSA generation takes from a hundred milliseconds to seconds: call it
    /// off any async executor. On `ring`, ML-DSA is refused
    /// ([`Error::UnsupportedByBackend`]).
    pub fn generate(alg: Algorithm, rsa_bits: usize) -> Result<Vec<u8>, Error> {
        check_supported(alg)?;
        match alg {
            Algorithm::ES256 | Algorithm::ES384 => backend::generate_ec(alg),
            Algorithm::RS256 | Algorithm::PS256 if !RSA_BITS_ALLOWED.contains(&rsa_bits) => {
                Err(Error::KeyRejected(format!("RSA size {rsa_bits} is not one of 2048, 3072, 4096")))
            }
            Algorithm::RS256 | Algorithm::PS256 => backend::generate_rsa(rsa_bits),
            Algorithm::Ed25519 => backend::generate_ed25519(),
            Algorithm::MlDsa44 | Algorithm::MlDsa65 => backend::generate_ml_dsa(alg),
        }
    }

    /// Parses a PKCS#8 DER private key for `alg`: RSA of 2048 to 8192 bits
    /// (RS256, PS256), P-256 (ES256), P-384 (ES384), Ed25519 (PKCS#8 v1 or
    /// v2, RFC 8410), or ML-DSA (RFC 9881: seed, expanded or both; aws-lc-rs
    /// only).
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, Error> {
        check_supported(alg)?;
        let (inner, public) = match alg {
            Algorithm::RS256 | Algorithm::PS256 => {
                let inner = backend::PrivateKey::rsa_from_pkcs8(alg, pkcs8)?;
                let (n, e) = inner.public_parts();
                check_rsa_public(&n, &e)?;
                (inner, PublicParts::Rsa { n, e })
            }
            Algorithm::ES256 => {
                let inner = backend::PrivateKey::ec_from_pkcs8(alg, pkcs8)?;
                let (x, y) = sec1_coordinates(&inner.public_parts().0, 32)?;
                (inner, PublicParts::P256 { x, y })
            }
            Algorithm::ES384 => {
                let inner = backend::PrivateKey::ec_from_pkcs8(alg, pkcs8)?;
                let (x, y) = sec1_coordinates(&inner.public_parts().0, 48)?;
                (inner, PublicParts::P384 { x, y })
            }
            Algorithm::Ed25519 => {
                let inner = backend::PrivateKey::ed25519_from_pkcs8(pkcs8)?;
                let (x, _) = inner.public_parts();
                if x.len() != 32 {
                    return Err(Error::KeyRejected("unexpected Ed25519 public key encoding".into()));
                }
                (inner, PublicParts::Ed25519 { x })
            }
            Algorithm::MlDsa44 | Algorithm::MlDsa65 => {
                let inner = backend::PrivateKey::ml_dsa_from_pkcs8(alg, pkcs8)?;
                let (public, _) = inner.public_parts();
                if public.len() != ml_dsa_sizes(alg).0 {
                    return Err(Error::KeyRejected(format!("unexpected {alg} public key length")));
                }
                (inner, PublicParts::MlDsa { public })
            }
        };
        Ok(KeyPair { alg, inner, public })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public half.
    pub fn public_parts(&self) -> &PublicParts {
        &self.public
    }

    /// The length in bytes of this key's signatures.
    pub fn signature_len(&self) -> usize {
        self.inner.signature_len()
    }

    /// Signs `message` with the key's algorithm (see [`Algorithm`] for the
    /// parameters of each).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.inner.sign(message)
    }
}

/// The size in bits of a big-endian number given without leading zeros.
fn bit_len(n: &[u8]) -> usize {
    // An all-zero or empty number has 0 bits.
    n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize)
}

/// The smallest RSA public exponent accepted: 2^16 + 1 (FIPS 186-5 §5.4).
pub const RSA_MIN_EXPONENT: u32 = 65_537;

/// The RSA rules of this project, for every RSA key it accepts (a public
/// JWK, a PKCS#8 private key): a modulus of 2048 to 8192 bits, and an odd
/// public exponent of at least 65537 (FIPS 186-5 §5.4 asks
/// 2^16 < e < 2^256) and at most 32 bits. Answers the modulus size.
fn check_rsa_public(n: &[u8], e: &[u8]) -> Result<usize, Error> {
    let bits = bit_len(n);
    if !(2048..=8192).contains(&bits) {
        return Err(Error::KeyRejected(format!("RSA modulus of {bits} bits is outside 2048..=8192")));
    }
    let e = strip_leading_zeros(e);
    if e.is_empty() || e.len() > 4 {
        return Err(Error::KeyRejected("RSA exponent out of range".into()));
    }
    let value = e.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    if value < RSA_MIN_EXPONENT || value % 2 == 0 {
        return Err(Error::KeyRejected(format!(
            "RSA public exponent {value} refused: it must be odd and at least {RSA_MIN_EXPONENT} (FIPS 186-5)"
        )));
    }
    Ok(bits)
}

/// Which header names an Ed25519 key admits, from the JWK's `alg`
/// (RFC 9864 §2: `Ed25519`; the deprecated `EdDSA` only on a key that says
/// `EdDSA` or says nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderNames {
    /// The registry name, and `EdDSA` for an Ed25519 key without `alg`.
    Any,
    /// Only the registry name (the JWK said so).
    Registry,
    /// Only `EdDSA` (an Ed25519 JWK whose `alg` is `EdDSA`).
    LegacyEdDsa,
}

/// A parsed public key that verifies signatures of one algorithm.
///
/// It is parsed once (from a JWK, see [`crate::Jwk::verifying_key`]) and
/// then verifies without re-parsing.
#[derive(Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    bits: usize,
    names: HeaderNames,
    inner: backend::PublicKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey").field("alg", &self.alg).field("bits", &self.bits).finish_non_exhaustive()
    }
}

impl VerifyingKey {
    fn new(alg: Algorithm, bits: usize, inner: backend::PublicKey) -> Self {
        VerifyingKey { alg, bits, names: HeaderNames::Any, inner }
    }

    /// An RS256 key from big-endian `n` and `e`; 2048 to 8192 bits.
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<Self, Error> {
        Self::rsa_for(Algorithm::RS256, n, e)
    }

    /// A PS256 key from big-endian `n` and `e`; 2048 to 8192 bits.
    pub fn rsa_pss(n: &[u8], e: &[u8]) -> Result<Self, Error> {
        Self::rsa_for(Algorithm::PS256, n, e)
    }

    fn rsa_for(alg: Algorithm, n: &[u8], e: &[u8]) -> Result<Self, Error> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = check_rsa_public(n, e)?;
        let inner = backend::PublicKey::rsa(alg, n, e)?;
        Ok(Self::new(alg, bits, inner))
    }

    /// An ES256 key from 32-byte big-endian coordinates; the point must be
    /// on P-256.
    pub fn p256(x: &[u8], y: &[u8]) -> Result<Self, Error> {
        Self::ec(Algorithm::ES256, 32, x, y)
    }

    /// An ES384 key from 48-byte big-endian coordinates; the point must be
    /// on P-384.
    pub fn p384(x: &[u8], y: &[u8]) -> Result<Self, Error> {
        Self::ec(Algorithm::ES384, 48, x, y)
    }

    fn ec(alg: Algorithm, len: usize, x: &[u8], y: &[u8]) -> Result<Self, Error> {
        let curve = if alg == Algorithm::ES384 { "P-384" } else { "P-256" };
        if x.len() != len || y.len() != len {
            return Err(Error::KeyRejected(format!("{curve} coordinates must be {len} bytes")));
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let inner = backend::PublicKey::ec(alg, &point)?;
        Ok(Self::new(alg, len * 8, inner))
    }

    /// An Ed25519 key from its 32-byte encoding (RFC 8037 §2 `x`).
    pub fn ed25519(x: &[u8]) -> Result<Self, Error> {
        if x.len() != 32 {
            return Err(Error::KeyRejected("an Ed25519 public key is 32 bytes".into()));
        }
        Ok(Self::new(Algorithm::Ed25519, 256, backend::PublicKey::ed25519(x)?))
    }

    /// An ML-DSA-44 or ML-DSA-65 key from its raw FIPS 204 encoding (the
    /// RFC 9964 `pub`): exactly 1312 or 1952 bytes. Refused on `ring`.
    pub fn ml_dsa(alg: Algorithm, public: &[u8]) -> Result<Self, Error> {
        if !alg.is_ml_dsa() {
            return Err(Error::KeyRejected(format!("{alg} is not an ML-DSA algorithm")));
        }
        check_supported(alg)?;
        let (len, _) = ml_dsa_sizes(alg);
        if public.len() != len {
            return Err(Error::KeyRejected(format!("an {alg} public key is {len} bytes, not {}", public.len())));
        }
        Ok(Self::new(alg, len * 8, backend::PublicKey::ml_dsa(alg, public)?))
    }

    /// Restricts the header names this key admits to the one its JWK
    /// `alg` said (`EdDSA` or the registry name).
    pub(crate) fn named(mut self, jwk_alg: Option<&str>) -> Self {
        self.names = match jwk_alg {
            None => HeaderNames::Any,
            Some(Algorithm::LEGACY_EDDSA) => HeaderNames::LegacyEdDsa,
            Some(_) => HeaderNames::Registry,
        };
        self
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// RSA modulus size in bits, the curve size for ECDSA and Ed25519, and
    /// the public key size in bits for ML-DSA.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Whether a token or proof whose header `alg` is `name` may be
    /// verified with this key: the key's registry name, or `EdDSA` on an
    /// Ed25519 key whose JWK said `EdDSA` or had no `alg` (RFC 9864 §2
    /// deprecates `EdDSA`, and issuers still send it). An Ed25519 JWK that
    /// says `Ed25519` admits only `Ed25519`, and one that says `EdDSA` only
    /// `EdDSA`.
    pub fn admits_header_name(&self, name: &str) -> bool {
        let registry = name == self.alg.as_str();
        let legacy = self.alg == Algorithm::Ed25519 && name == Algorithm::LEGACY_EDDSA;
        match self.names {
            HeaderNames::Any => registry || legacy,
            HeaderNames::Registry => registry,
            HeaderNames::LegacyEdDsa => legacy,
        }
    }

    /// Verifies `signature` over `message`.
    ///
    /// ECDSA signatures must be exactly `2 * 32` (P-256) or `2 * 48`
    /// (P-384) bytes of `r || s` with `0 < r, s < n`; RSA signatures
    /// exactly as long as the modulus; Ed25519 and ML-DSA signatures of
    /// their one length. All are checked before any arithmetic.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), Error> {
        match self.alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let order: &[u8] = if self.alg == Algorithm::ES384 { &P384_ORDER } else { &P256_ORDER };
                if sig.len() != 2 * order.len() {
                    return Err(Error::BadSignature);
                }
                let (r, s) = sig.split_at(order.len());
                if !scalar_in_range(r, order) || !scalar_in_range(s, order) {
                    return Err(Error::BadSignature);
                }
            }
            Algorithm::RS256 | Algorithm::PS256 => {
                if sig.len() != self.bits.div_ceil(8) {
                    return Err(Error::BadSignature);
                }
            }
            Algorithm::Ed25519 | Algorithm::MlDsa44 | Algorithm::MlDsa65 => {
                if Some(sig.len()) != fixed_signature_len(self.alg) {
                    return Err(Error::BadSignature);
                }
            }
        }
        if self.inner.verify(message, sig) { Ok(()) } else { Err(Error::BadSignature) }
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or_default()
}

/// `0 < v < n` for a big-endian scalar as long as the group order `n`.
fn scalar_in_range(v: &[u8], order: &[u8]) -> bool {
    v.len() == order.len() && v.iter().any(|&b| b != 0) && v < order
}

/// A key-encryption key sealing private keys at rest with AES-256-GCM.
///
/// Sealed form: 12-byte random nonce || ciphertext || 16-byte tag.
pub struct Sealer {
    key: backend::Aead,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(AES-256-GCM)")
    }
}

impl Sealer {
    /// A sealer from a 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        Ok(Sealer { key: backend::Aead::new(key)? })
    }

    /// Encrypts and authenticates `plaintext`, binding `aad` (the kid).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce)?;
        let mut buf = plaintext.to_vec();
        self.key.seal(nonce, aad, &mut buf)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`Sealer::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        let Some((nonce, ct)) = sealed.split_first_chunk::<12>() else {
            return Err(Error::Crypto("sealed data too short"));
        };
        if ct.len() < 16 {
            return Err(Error::Crypto("sealed data too short"));
        }
        let mut buf = ct.to_vec();
        Ok(self.key.open(*nonce, aad, &mut buf)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SigningKey, b64, thumbprint};

    fn key(alg: Algorithm) -> SigningKey {
        SigningKey::from_pkcs8(alg, &SigningKey::generate(alg, 2048).unwrap()).unwrap()
    }

    #[test]
    fn sign_then_verify_every_supported_algorithm_and_tamper_fails() {
        for alg in supported() {
            let k = key(alg);
            assert_eq!(fixed_signature_len(alg).unwrap_or(256), k.signature_len(), "{alg}");
            let sig = k.sign(b"hello").unwrap();
            assert_eq!(sig.len(), k.signature_len());
            let v = k.public_jwk().verifying_key().unwrap();
            assert_eq!(v.algorithm(), alg);
            v.verify(b"hello", &sig).unwrap();
            assert_eq!(v.verify(b"hellp", &sig), Err(Error::BadSignature));
            let mut bad = sig.clone();
            bad[5] ^= 1;
            assert_eq!(v.verify(b"hello", &bad), Err(Error::BadSignature));
        }
    }

    #[test]
    fn algorithms_sign_with_their_own_parameters_only() {
        // The same RSA key under RS256 and PS256, the same message: neither
        // verifies the other's signature (PKCS#1 v1.5 vs PSS).
        let der = SigningKey::generate(Algorithm::RS256, 2048).unwrap();
        let rs = SigningKey::from_pkcs8(Algorithm::RS256, &der).unwrap();
        let ps = SigningKey::from_pkcs8(Algorithm::PS256, &der).unwrap();
        assert_eq!(rs.kid(), ps.kid(), "the RSA thumbprint does not cover alg");
        let (rs_v, ps_v) = (rs.public_jwk().verifying_key().unwrap(), ps.public_jwk().verifying_key().unwrap());
        assert_eq!((rs_v.algorithm(), ps_v.algorithm()), (Algorithm::RS256, Algorithm::PS256));
        let (rs_sig, ps_sig) = (rs.sign(b"m").unwrap(), ps.sign(b"m").unwrap());
        ps_v.verify(b"m", &ps_sig).unwrap();
        assert_eq!(ps_v.verify(b"m", &rs_sig), Err(Error::BadSignature));
        assert_eq!(rs_v.verify(b"m", &ps_sig), Err(Error::BadSignature));
        // A P-256 key is not a P-384 key.
        let p256 = SigningKey::generate(Algorithm::ES256, 2048).unwrap();
        assert!(matches!(SigningKey::from_pkcs8(Algorithm::ES384, &p256), Err(Error::KeyRejected(_))));
        assert!(matches!(SigningKey::from_pkcs8(Algorithm::Ed25519, &p256), Err(Error::KeyRejected(_))));
    }

    #[test]
    fn public_jwks_of_new_key_types_are_rfc_shaped() {
        let ed = key(Algorithm::Ed25519).public_jwk();
        assert_eq!((ed.kty.as_str(), ed.crv.as_deref(), ed.alg.as_deref()), ("OKP", Some("Ed25519"), Some("Ed25519")));
        assert_eq!(b64::decode(ed.x.as_deref().unwrap(), "x").unwrap().len(), 32);
        let p384 = key(Algorithm::ES384).public_jwk();
        assert_eq!((p384.kty.as_str(), p384.crv.as_deref()), ("EC", Some("P-384")));
        assert_eq!(b64::decode(p384.y.as_deref().unwrap(), "y").unwrap().len(), 48);
        assert_eq!(key(Algorithm::PS256).public_jwk().alg.as_deref(), Some("PS256"));
        if supports(Algorithm::MlDsa65) {
            for (alg, len) in [(Algorithm::MlDsa44, 1312), (Algorithm::MlDsa65, 1952)] {
                let k = key(alg);
                let jwk = k.public_jwk();
                assert_eq!((jwk.kty.as_str(), jwk.alg.as_deref()), ("AKP", Some(alg.as_str())));
                assert_eq!(b64::decode(jwk.pub_.as_deref().unwrap(), "pub").unwrap().len(), len);
                assert_eq!(thumbprint(&jwk).unwrap(), k.kid());
                let json = serde_json::to_value(&jwk).unwrap();
                assert!(json.get("priv").is_none() && json.get("x").is_none(), "{json}");
            }
        }
    }

    #[test]
    fn ml_dsa_on_a_backend_without_it_is_refused_when_the_key_is_loaded() {
        for alg in [Algorithm::MlDsa44, Algorithm::MlDsa65] {
            if supports(alg) {
                assert_eq!(BACKEND, "aws-lc-rs");
                continue;
            }
            assert_eq!(BACKEND, "ring");
            let refused = Error::UnsupportedByBackend { alg: alg.as_str(), backend: "ring" };
            assert_eq!(KeyPair::generate(alg, 2048).unwrap_err(), refused);
            assert_eq!(KeyPair::from_pkcs8(alg, &[0x30, 0]).unwrap_err(), refused);
            assert_eq!(VerifyingKey::ml_dsa(alg, &[0; 1952]).unwrap_err(), refused);
            assert!(refused.to_string().contains("aws-lc-rs"), "{refused}");
            assert!(!supported().contains(&alg));
        }
    }

    #[test]
    fn wrong_length_signatures_of_fixed_length_algorithms_are_rejected_before_the_math() {
        for alg in supported().into_iter().filter(|a| fixed_signature_len(*a).is_some()) {
            let k = key(alg);
            let v = k.public_jwk().verifying_key().unwrap();
            let sig = k.sign(b"m").unwrap();
            assert_eq!(v.verify(b"m", &sig[..sig.len() - 1]), Err(Error::BadSignature), "{alg}");
            let mut long = sig.clone();
            long.push(0);
            assert_eq!(v.verify(b"m", &long), Err(Error::BadSignature), "{alg}");
        }
        let k = key(Algorithm::ES384);
        let v = k.public_jwk().verifying_key().unwrap();
        let mut high = k.sign(b"m").unwrap();
        high[48..].copy_from_slice(&P384_ORDER);
        assert_eq!(v.verify(b"m", &high), Err(Error::BadSignature));
        assert_eq!(v.verify(b"m", &[0u8; 96]), Err(Error::BadSignature));
    }

    #[test]
    fn ecdsa_zero_high_and_misframed_signatures_are_rejected() {
        let k = key(Algorithm::ES256);
        let v = k.public_jwk().verifying_key().unwrap();
        let sig = k.sign(b"m").unwrap();
        assert_eq!(v.verify(b"m", &[0u8; 64]), Err(Error::BadSignature));
        let mut high = sig.clone();
        high[..32].copy_from_slice(&P256_ORDER);
        assert_eq!(v.verify(b"m", &high), Err(Error::BadSignature));
        assert_eq!(v.verify(b"m", &sig[..63]), Err(Error::BadSignature));
        let mut long = sig.clone();
        long.push(0);
        assert_eq!(v.verify(b"m", &long), Err(Error::BadSignature));
        assert_eq!(v.verify(b"m", &[]), Err(Error::BadSignature));
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint_and_public_jwk_has_no_private_member() {
        let k = key(Algorithm::RS256);
        let jwk = k.public_jwk();
        assert_eq!(thumbprint(&jwk).unwrap(), k.kid());
        let json = serde_json::to_string(&jwk).unwrap();
        assert!(!json.contains("\"d\""), "{json}");
        assert!(json.contains("\"use\":\"sig\"") && json.contains("\"alg\":\"RS256\""));
    }

    #[test]
    fn small_rsa_keys_and_off_curve_points_are_rejected() {
        let small = [0xffu8; 128];
        assert!(matches!(VerifyingKey::rsa(&small, &[1, 0, 1]), Err(Error::KeyRejected(_))));
        // Regression: an empty or all-zero modulus underflowed the bit count (a panic in debug builds).
        for zero in [&[][..], &[0u8; 256][..]] {
            assert!(matches!(VerifyingKey::rsa(zero, &[1, 0, 1]), Err(Error::KeyRejected(_))));
        }
        assert!(matches!(VerifyingKey::p256(&[1; 32], &[2; 32]), Err(Error::KeyRejected(_))));
    }

    /// A 2048-bit modulus (odd, top bit set) that no key needs to match:
    /// the exponent is checked before the modulus is used.
    fn modulus() -> Vec<u8> {
        let mut n = vec![0xc5u8; 256];
        n[255] |= 1;
        n
    }

    #[test]
    fn rsa_jwk_with_exponent_3_is_refused() {
        let n = modulus();
        assert!(VerifyingKey::rsa(&n, &[1, 0, 1]).is_ok(), "e = 65537 is the usual exponent");
        let err = VerifyingKey::rsa(&n, &[3]).unwrap_err();
        assert!(matches!(&err, Error::KeyRejected(m) if m.contains("FIPS 186-5")), "{err}");
        let jwk = crate::Jwk::rsa(&n, &[3]);
        assert!(matches!(jwk.verifying_key(), Err(Error::KeyRejected(m)) if m.contains("exponent 3 ")));
        // Leading zeros do not hide a small exponent.
        assert!(VerifyingKey::rsa(&n, &[0, 0, 0, 3]).is_err());
        for small in [&[1u8][..], &[0xff, 0xff], &[1, 0, 0]] {
            assert!(matches!(VerifyingKey::rsa(&n, small), Err(Error::KeyRejected(_))), "{small:?}");
        }
    }

    #[test]
    fn rsa_jwk_with_even_exponent_is_refused() {
        let n = modulus();
        for even in [&[1u8, 0, 2][..], &[1, 0, 0, 0], &[0x7f, 0xff, 0xff, 0xfe]] {
            assert!(matches!(VerifyingKey::rsa(&n, even), Err(Error::KeyRejected(m)) if m.contains("odd")), "{even:?}");
        }
        assert!(VerifyingKey::rsa(&n, &[0xff, 0xff, 0xff, 0xff]).is_ok(), "2^32 - 1 is odd and large");
    }

    #[test]
    fn rsa_pkcs8_with_exponent_3_is_refused() {
        use rsa::{BigUint, RsaPrivateKey, pkcs8::EncodePrivateKey};
        let private = RsaPrivateKey::new_with_exp(&mut rsa::rand_core::OsRng, 2048, &BigUint::from(3u32)).unwrap();
        let pkcs8 = private.to_pkcs8_der().unwrap();
        let err = SigningKey::from_pkcs8(Algorithm::RS256, pkcs8.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, Error::KeyRejected(m) if m.contains("exponent 3 ") || m.contains("RSA PKCS#8")),
            "{err}"
        );
        assert!(KeyPair::from_pkcs8(Algorithm::RS256, pkcs8.as_bytes()).is_err());
        // The same size with e = 65537 is accepted.
        let usual = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap().to_pkcs8_der().unwrap();
        assert!(SigningKey::from_pkcs8(Algorithm::RS256, usual.as_bytes()).is_ok());
    }

    #[test]
    fn rfc4231_test_case_2_hmac_sha256() {
        let key = HmacKey::new(b"Jefe");
        let tag = key.sign(b"what do ya want for nothing?");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(key.verify_truncated(b"what do ya want for nothing?", &tag[..16]));
        assert!(key.verify_truncated(b"what do ya want for nothing?", &tag));
        assert!(!key.verify_truncated(b"what do ya want for nothing?", &tag[..15]), "shorter than 16 bytes");
        assert!(!key.verify_truncated(b"what do ya want for nothing!", &tag[..16]));
    }

    #[test]
    fn rfc5869_a1_hkdf_sha256_first_32_bytes() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf_sha256(&ikm, &salt, &info).unwrap();
        let hex: String = okm.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf");
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_aad() {
        let s = Sealer::new(&[7u8; 32]).unwrap();
        let sealed = s.seal(b"private", b"kid-1").unwrap();
        assert_eq!(s.open(&sealed, b"kid-1").unwrap(), b"private");
        assert!(s.open(&sealed, b"kid-2").is_err());
        assert!(Sealer::new(&[8u8; 32]).unwrap().open(&sealed, b"kid-1").is_err());
        assert!(Sealer::new(&[1u8; 16]).is_err());
    }
}
