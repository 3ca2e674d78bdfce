//! The `aws-lc-rs` backend (default feature `aws-lc-rs`): the primitives
//! behind [`crate::crypto`], nothing else. Every check that does not depend
//! on the backend (sizes, exponents, scalar ranges) is made by the
//! backend-neutral module before these are called. It has every algorithm
//! of [`Algorithm`], ML-DSA included (`aws_lc_rs::signature::PqdsaKeyPair`,
//! stable since aws-lc-rs 1.18).

use aws_lc_rs::{
    aead, digest,
    encoding::AsDer,
    hkdf, hmac,
    rand::{SecureRandom, SystemRandom},
    rsa::KeySize,
    signature::{
        self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, PqdsaKeyPair, PqdsaSigningAlgorithm,
        RsaEncoding, RsaKeyPair,
    },
};

use crate::{Algorithm, Error};

/// The backend's name.
pub(crate) const NAME: &str = "aws-lc-rs";

/// Whether this backend has `alg`: every algorithm.
pub(crate) const fn supports(_alg: Algorithm) -> bool {
    true
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Fills `out` from the operating system's CSPRNG.
pub(crate) fn fill_random(out: &mut [u8]) -> Result<(), Error> {
    SystemRandom::new().fill(out).map_err(|_| Error::Crypto("random source failed"))
}

fn ecdsa_signing(alg: Algorithm) -> &'static EcdsaSigningAlgorithm {
    match alg {
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}

fn ml_dsa_signing(alg: Algorithm) -> &'static PqdsaSigningAlgorithm {
    match alg {
        Algorithm::MlDsa44 => &signature::ML_DSA_44_SIGNING,
        _ => &signature::ML_DSA_65_SIGNING,
    }
}

fn rsa_encoding(alg: Algorithm) -> &'static dyn RsaEncoding {
    match alg {
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        _ => &signature::RSA_PKCS1_SHA256,
    }
}

/// A new ECDSA private key (ES256 or ES384) as PKCS#8 DER.
pub(crate) fn generate_ec(alg: Algorithm) -> Result<Vec<u8>, Error> {
    let doc = EcdsaKeyPair::generate_pkcs8(ecdsa_signing(alg), &SystemRandom::new())
        .map_err(|_| Error::Crypto("EC key generation failed"))?;
    Ok(doc.as_ref().to_vec())
}

/// A new Ed25519 private key as PKCS#8 (v2, with the public key) DER.
pub(crate) fn generate_ed25519() -> Result<Vec<u8>, Error> {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| Error::Crypto("Ed25519 key generation failed"))?;
    Ok(doc.as_ref().to_vec())
}

/// A new ML-DSA private key as PKCS#8 DER in the seed form of RFC 9881.
pub(crate) fn generate_ml_dsa(alg: Algorithm) -> Result<Vec<u8>, Error> {
    let kp = PqdsaKeyPair::generate(ml_dsa_signing(alg)).map_err(|_| Error::Crypto("ML-DSA key generation failed"))?;
    let doc = kp.to_pkcs8v1().map_err(|_| Error::Crypto("ML-DSA key encoding failed"))?;
    Ok(doc.as_ref().to_vec())
}

/// A new RSA private key of `bits` (2048, 3072 or 4096) as PKCS#8 DER.
pub(crate) fn generate_rsa(bits: usize) -> Result<Vec<u8>, Error> {
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

/// A parsed private key.
pub(crate) enum PrivateKey {
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
    Ec(EcdsaKeyPair, usize),
    Ed25519(Ed25519KeyPair),
    MlDsa(PqdsaKeyPair),
}

impl PrivateKey {
    /// An RSA key from PKCS#8 DER, signing RS256 or PS256.
    pub(crate) fn rsa_from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, Error> {
        RsaKeyPair::from_pkcs8(pkcs8)
            .map(|kp| PrivateKey::Rsa(kp, rsa_encoding(alg)))
            .map_err(|e| Error::KeyRejected(format!("RSA PKCS#8: {e}")))
    }

    /// A P-256 (ES256) or P-384 (ES384) key from PKCS#8 DER.
    pub(crate) fn ec_from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, Error> {
        let len = if alg == Algorithm::ES384 { 96 } else { 64 };
        EcdsaKeyPair::from_pkcs8(ecdsa_signing(alg), pkcs8)
            .map(|kp| PrivateKey::Ec(kp, len))
            .map_err(|e| Error::KeyRejected(format!("EC PKCS#8 ({}): {e}", alg.as_str())))
    }

    /// An Ed25519 key from PKCS#8 v1 or v2 DER (RFC 8410).
    pub(crate) fn ed25519_from_pkcs8(pkcs8: &[u8]) -> Result<Self, Error> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(PrivateKey::Ed25519)
            .map_err(|e| Error::KeyRejected(format!("Ed25519 PKCS#8: {e}")))
    }

    /// An ML-DSA key from PKCS#8 DER: the seed, expanded or both forms of
    /// RFC 9881 (when both are present they must agree).
    pub(crate) fn ml_dsa_from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, Error> {
        PqdsaKeyPair::from_pkcs8(ml_dsa_signing(alg), pkcs8)
            .map(PrivateKey::MlDsa)
            .map_err(|e| Error::KeyRejected(format!("{} PKCS#8: {e}", alg.as_str())))
    }

    /// RSA: big-endian `(n, e)` without leading zeros. EC: `(point, [])`
    /// with the uncompressed SEC1 point. Ed25519 and ML-DSA: the raw
    /// public key and `[]`.
    pub(crate) fn public_parts(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            PrivateKey::Rsa(kp, _) => {
                let public = kp.public_key();
                (
                    public.modulus().big_endian_without_leading_zero().to_vec(),
                    public.exponent().big_endian_without_leading_zero().to_vec(),
                )
            }
            PrivateKey::Ec(kp, _) => (kp.public_key().as_ref().to_vec(), Vec::new()),
            PrivateKey::Ed25519(kp) => (kp.public_key().as_ref().to_vec(), Vec::new()),
            PrivateKey::MlDsa(kp) => (kp.public_key().as_ref().to_vec(), Vec::new()),
        }
    }

    /// The length of a signature in bytes.
    pub(crate) fn signature_len(&self) -> usize {
        match self {
            PrivateKey::Rsa(kp, _) => kp.public_modulus_len(),
            PrivateKey::Ec(_, len) => *len,
            PrivateKey::Ed25519(_) => 64,
            PrivateKey::MlDsa(kp) => kp.algorithm().signature_len(),
        }
    }

    /// PKCS#1 v1.5 or PSS with SHA-256; ECDSA `r || s`; Ed25519; ML-DSA
    /// (hedged, with the empty context string).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            PrivateKey::Rsa(kp, encoding) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(*encoding, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| Error::Crypto("RSA signing failed"))?;
                Ok(sig)
            }
            PrivateKey::Ec(kp, _) => kp
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Crypto("ECDSA signing failed")),
            PrivateKey::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            PrivateKey::MlDsa(kp) => {
                let mut sig = vec![0u8; kp.algorithm().signature_len()];
                let len = kp.sign(message, &mut sig).map_err(|_| Error::Crypto("ML-DSA signing failed"))?;
                sig.truncate(len);
                Ok(sig)
            }
        }
    }
}

/// A parsed public key.
#[derive(Clone)]
pub(crate) struct PublicKey(signature::ParsedPublicKey);

impl PublicKey {
    /// An RSA key (PKCS#1 v1.5 for RS256, PSS for PS256, SHA-256) from
    /// big-endian `n` and `e`.
    pub(crate) fn rsa(alg: Algorithm, n: &[u8], e: &[u8]) -> Result<Self, Error> {
        let params = match alg {
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            _ => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        signature::RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(params)
            .map(PublicKey)
            .map_err(|err| Error::KeyRejected(format!("RSA public key: {err}")))
    }

    /// An ECDSA key (P-256 SHA-256 or P-384 SHA-384) from an uncompressed
    /// SEC1 point.
    pub(crate) fn ec(alg: Algorithm, point: &[u8]) -> Result<Self, Error> {
        let (params, curve) = match alg {
            Algorithm::ES384 => (&signature::ECDSA_P384_SHA384_FIXED, "P-384"),
            _ => (&signature::ECDSA_P256_SHA256_FIXED, "P-256"),
        };
        signature::ParsedPublicKey::new(params, point)
            .map(PublicKey)
            .map_err(|_| Error::KeyRejected(format!("EC point is not on {curve}")))
    }

    /// An Ed25519 key from its 32 bytes.
    pub(crate) fn ed25519(x: &[u8]) -> Result<Self, Error> {
        signature::ParsedPublicKey::new(&signature::ED25519, x)
            .map(PublicKey)
            .map_err(|_| Error::KeyRejected("not an Ed25519 public key".into()))
    }

    /// An ML-DSA key from its raw encoding (FIPS 204 `pkEncode`).
    pub(crate) fn ml_dsa(alg: Algorithm, public: &[u8]) -> Result<Self, Error> {
        let params = match alg {
            Algorithm::MlDsa44 => &signature::ML_DSA_44,
            _ => &signature::ML_DSA_65,
        };
        signature::ParsedPublicKey::new(params, public)
            .map(PublicKey)
            .map_err(|_| Error::KeyRejected(format!("not an {} public key", alg.as_str())))
    }

    /// Whether `sig` is a valid signature of `message`.
    pub(crate) fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        self.0.verify_sig(message, sig).is_ok()
    }
}

/// AES-256-GCM with a caller-supplied nonce.
pub(crate) struct Aead(aead::LessSafeKey);

impl Aead {
    /// A key from 32 bytes.
    pub(crate) fn new(key: &[u8]) -> Result<Self, Error> {
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, key)
            .map_err(|_| Error::KeyRejected("the key-encryption key must be 32 bytes".into()))?;
        Ok(Aead(aead::LessSafeKey::new(unbound)))
    }

    /// Encrypts `buf` in place and appends the tag.
    pub(crate) fn seal(&self, nonce: [u8; 12], aad: &[u8], buf: &mut Vec<u8>) -> Result<(), Error> {
        self.0
            .seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), buf)
            .map_err(|_| Error::Crypto("sealing failed"))
    }

    /// Decrypts `buf` (ciphertext || tag) in place; answers the plaintext.
    pub(crate) fn open<'a>(&self, nonce: [u8; 12], aad: &[u8], buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        self.0
            .open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), buf)
            .map(|plain| &*plain)
            .map_err(|_| Error::Crypto("wrong key-encryption key or damaged data"))
    }
}

/// HMAC-SHA256 with a fixed key.
pub(crate) struct HmacKey(hmac::Key);

impl HmacKey {
    /// A key from any number of bytes.
    pub(crate) fn new(key: &[u8]) -> Self {
        HmacKey(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// The tag of `data`.
    pub(crate) fn sign(&self, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.0, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// HKDF-SHA256 (RFC 5869) of `ikm` with `salt` and `info`, 32 bytes out.
pub(crate) fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8]) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| Error::Crypto("HKDF failed"))?;
    Ok(out)
}
