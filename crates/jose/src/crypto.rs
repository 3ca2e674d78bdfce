//! The one crypto backend of the project.
//!
//! Everything cryptographic (signing, verification, key generation,
//! digests, randomness and sealing keys at rest) goes through this module,
//! backed by `aws-lc-rs` (default feature) or `ring` (feature `ring`, with
//! the `rsa` crate generating RSA keys only; RUSTSEC-2023-0071 concerns its
//! private-key operations, which are never used to sign). Signatures are
//! RSASSA-PKCS1-v1_5 SHA-256 and ECDSA P-256 SHA-256 in fixed `r || s` form.

use std::fmt;

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs as backend;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring as backend;

use backend::{
    aead, digest,
    rand::{SecureRandom, SystemRandom},
    signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair},
};

use crate::{Algorithm, Error, Jwk, thumbprint};

/// The name of the active backend (`"aws-lc-rs"` or `"ring"`).
pub const BACKEND: &str = if cfg!(feature = "aws-lc-rs") { "aws-lc-rs" } else { "ring" };

/// RSA modulus sizes this project generates.
pub const RSA_BITS_ALLOWED: [usize; 3] = [2048, 3072, 4096];

/// The order n of the P-256 group, big-endian (FIPS 186-4 D.1.2.3).
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Fills `out` from the operating system's CSPRNG.
pub fn fill_random(out: &mut [u8]) -> Result<(), Error> {
    SystemRandom::new().fill(out).map_err(|_| Error::Crypto("random source failed"))
}

/// A parsed private signing key: parsed once, used for every signature.
///
/// `Debug` shows the algorithm and kid, never key material.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    public: Jwk,
    inner: Inner,
    rng: SystemRandom,
}

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new private key for `alg` and returns it as PKCS#8 DER.
    /// `rsa_bits` (2048, 3072 or 4096) is used for RS256 only.
    ///
    /// RSA generation takes from a hundred milliseconds to seconds: call it
    /// off any async executor.
    pub fn generate(alg: Algorithm, rsa_bits: usize) -> Result<Vec<u8>, Error> {
        match alg {
            Algorithm::ES256 => {
                let rng = SystemRandom::new();
                let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| Error::Crypto("EC key generation failed"))?;
                Ok(doc.as_ref().to_vec())
            }
            Algorithm::RS256 => generate_rsa(rsa_bits),
        }
    }

    /// Parses a PKCS#8 DER private key for `alg`.
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let (inner, public) = match alg {
            Algorithm::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| Error::KeyRejected(format!("RSA PKCS#8: {e}")))?;
                let bits = kp.public_modulus_len() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(Error::KeyRejected(format!("RSA modulus of {bits} bits is outside 2048..=8192")));
                }
                let (n, e) = rsa_public_components(&kp);
                (Inner::Rsa(kp), Jwk::rsa(&n, &e))
            }
            Algorithm::ES256 => {
                let kp = ec_from_pkcs8(pkcs8, &rng)?;
                let point = kp.public_key().as_ref();
                // An uncompressed SEC1 point: 0x04 || x || y.
                let (x, y) = match point {
                    [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                    _ => return Err(Error::KeyRejected("unexpected EC public key encoding".into())),
                };
                let jwk = Jwk::p256(x, y);
                (Inner::Ec(kp), jwk)
            }
        };
        let kid = thumbprint(&public)?;
        let public = Jwk { kid: Some(kid.clone()), use_: Some("sig".into()), alg: Some(alg.as_str().into()), ..public };
        Ok(SigningKey { alg, kid, public, inner, rng })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK with `kid`, `use: sig` and `alg`.
    pub fn public_jwk(&self) -> Jwk {
        self.public.clone()
    }

    /// The length in bytes of this key's signatures.
    pub fn signature_len(&self) -> usize {
        match &self.inner {
            Inner::Rsa(kp) => kp.public_modulus_len(),
            Inner::Ec(_) => 64,
        }
    }

    /// Signs `message` (PKCS#1 v1.5 SHA-256, or ECDSA P-256 SHA-256 `r || s`).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match &self.inner {
            Inner::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| Error::Crypto("RSA signing failed"))?;
                Ok(sig)
            }
            Inner::Ec(kp) => kp
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Crypto("ECDSA signing failed")),
        }
    }
}

#[cfg(feature = "aws-lc-rs")]
fn generate_rsa(bits: usize) -> Result<Vec<u8>, Error> {
    use aws_lc_rs::{encoding::AsDer, rsa::KeySize};
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        other => return Err(Error::KeyRejected(format!("RSA size {other} is not one of 2048, 3072, 4096"))),
    };
    let kp = RsaKeyPair::generate(size).map_err(|_| Error::Crypto("RSA key generation failed"))?;
    let der = kp.as_der().map_err(|_| Error::Crypto("RSA key encoding failed"))?;
    Ok(der.as_ref().to_vec())
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn generate_rsa(bits: usize) -> Result<Vec<u8>, Error> {
    use rsa::pkcs8::EncodePrivateKey;
    if !RSA_BITS_ALLOWED.contains(&bits) {
        return Err(Error::KeyRejected(format!("RSA size {bits} is not one of 2048, 3072, 4096")));
    }
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
        .map_err(|_| Error::Crypto("RSA key generation failed"))?;
    let der = key.to_pkcs8_der().map_err(|_| Error::Crypto("RSA key encoding failed"))?;
    Ok(der.as_bytes().to_vec())
}

#[cfg(feature = "aws-lc-rs")]
fn rsa_public_components(kp: &RsaKeyPair) -> (Vec<u8>, Vec<u8>) {
    let public = kp.public_key();
    (
        public.modulus().big_endian_without_leading_zero().to_vec(),
        public.exponent().big_endian_without_leading_zero().to_vec(),
    )
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn rsa_public_components(kp: &RsaKeyPair) -> (Vec<u8>, Vec<u8>) {
    let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
    (c.n, c.e)
}

#[cfg(feature = "aws-lc-rs")]
fn ec_from_pkcs8(pkcs8: &[u8], _rng: &SystemRandom) -> Result<EcdsaKeyPair, Error> {
    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
        .map_err(|e| Error::KeyRejected(format!("EC PKCS#8: {e}")))
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn ec_from_pkcs8(pkcs8: &[u8], rng: &SystemRandom) -> Result<EcdsaKeyPair, Error> {
    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, rng)
        .map_err(|e| Error::KeyRejected(format!("EC PKCS#8: {e}")))
}

/// A parsed public key that verifies signatures of one algorithm.
///
/// It is parsed once (from a JWK, see [`Jwk::verifying_key`]) and then
/// verifies without re-parsing.
#[derive(Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    bits: usize,
    inner: VerifyInner,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey").field("alg", &self.alg).field("bits", &self.bits).finish_non_exhaustive()
    }
}

#[cfg(feature = "aws-lc-rs")]
type VerifyInner = signature::ParsedPublicKey;

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
#[derive(Clone)]
enum VerifyInner {
    Rsa(signature::RsaPublicKeyComponents<Vec<u8>>),
    Ec(Vec<u8>),
}

impl VerifyingKey {
    /// An RS256 key from big-endian `n` and `e`; 2048 to 8192 bits.
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<Self, Error> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        // An all-zero or empty modulus has 0 bits (and is refused below).
        let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
        if !(2048..=8192).contains(&bits) {
            return Err(Error::KeyRejected(format!("RSA modulus of {bits} bits is outside 2048..=8192")));
        }
        if e.is_empty() || e.len() > 4 {
            return Err(Error::KeyRejected("RSA exponent out of range".into()));
        }
        #[cfg(feature = "aws-lc-rs")]
        let inner = signature::RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
            .map_err(|err| Error::KeyRejected(format!("RSA public key: {err}")))?;
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        let inner = VerifyInner::Rsa(signature::RsaPublicKeyComponents { n: n.to_vec(), e: e.to_vec() });
        Ok(VerifyingKey { alg: Algorithm::RS256, bits, inner })
    }

    /// An ES256 key from 32-byte big-endian coordinates; the point must be
    /// on P-256.
    pub fn p256(x: &[u8], y: &[u8]) -> Result<Self, Error> {
        if x.len() != 32 || y.len() != 32 {
            return Err(Error::KeyRejected("P-256 coordinates must be 32 bytes".into()));
        }
        let mut point = Vec::with_capacity(65);
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        #[cfg(feature = "aws-lc-rs")]
        let inner = signature::ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
            .map_err(|_| Error::KeyRejected("EC point is not on P-256".into()))?;
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        let inner = {
            // ring parses the point per verification; validate it once here
            // through an ECDH agreement, which rejects points off the curve.
            use ring::agreement;
            let rng = SystemRandom::new();
            let eph = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
                .map_err(|_| Error::Crypto("random source failed"))?;
            agreement::agree_ephemeral(eph, &agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &point), |_| ())
                .map_err(|_| Error::KeyRejected("EC point is not on P-256".into()))?;
            VerifyInner::Ec(point)
        };
        Ok(VerifyingKey { alg: Algorithm::ES256, bits: 256, inner })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// RSA modulus size in bits, or 256 for P-256.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Verifies `signature` over `message`.
    ///
    /// ECDSA signatures must be exactly 64 bytes of `r || s` with
    /// `0 < r, s < n`; RSA signatures exactly as long as the modulus. Both
    /// are checked before any big-number arithmetic.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), Error> {
        match self.alg {
            Algorithm::ES256 => {
                let (r, s) = match sig.len() {
                    64 => sig.split_at(32),
                    _ => return Err(Error::BadSignature),
                };
                if !scalar_in_range(r) || !scalar_in_range(s) {
                    return Err(Error::BadSignature);
                }
            }
            Algorithm::RS256 => {
                if sig.len() != self.bits.div_ceil(8) {
                    return Err(Error::BadSignature);
                }
            }
        }
        #[cfg(feature = "aws-lc-rs")]
        let ok = self.inner.verify_sig(message, sig).is_ok();
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        let ok = match &self.inner {
            VerifyInner::Rsa(c) => c.verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig).is_ok(),
            VerifyInner::Ec(p) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p).verify(message, sig).is_ok()
            }
        };
        if ok { Ok(()) } else { Err(Error::BadSignature) }
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or_default()
}

/// `0 < v < n` for a 32-byte big-endian scalar.
fn scalar_in_range(v: &[u8]) -> bool {
    v.iter().any(|&b| b != 0) && v < &P256_ORDER[..]
}

/// A key-encryption key sealing private keys at rest with AES-256-GCM.
///
/// Sealed form: 12-byte random nonce || ciphertext || 16-byte tag.
pub struct Sealer {
    key: aead::LessSafeKey,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(AES-256-GCM)")
    }
}

impl Sealer {
    /// A sealer from a 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, key)
            .map_err(|_| Error::KeyRejected("the key-encryption key must be 32 bytes".into()))?;
        Ok(Sealer { key: aead::LessSafeKey::new(unbound) })
    }

    /// Encrypts and authenticates `plaintext`, binding `aad` (the kid).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), &mut buf)
            .map_err(|_| Error::Crypto("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`Sealer::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < 12 + 16 {
            return Err(Error::Crypto("sealed data too short"));
        }
        let (nonce, ct) = sealed.split_at(12);
        let mut nonce_arr = [0u8; 12];
        nonce_arr.copy_from_slice(nonce);
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(aead::Nonce::assume_unique_for_key(nonce_arr), aead::Aad::from(aad), &mut buf)
            .map_err(|_| Error::Crypto("wrong key-encryption key or damaged data"))?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alg: Algorithm) -> SigningKey {
        SigningKey::from_pkcs8(alg, &SigningKey::generate(alg, 2048).unwrap()).unwrap()
    }

    #[test]
    fn sign_then_verify_both_algorithms_and_tamper_fails() {
        for alg in Algorithm::ALL {
            let k = key(alg);
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
