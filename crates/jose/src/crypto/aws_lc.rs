//! The `aws-lc-rs` backend (default feature `aws-lc-rs`): the primitives
//! behind [`crate::crypto`], nothing else. Every check that does not depend
//! on the backend (sizes, exponents, scalar ranges) is made by the
//! backend-neutral module before these are called.

use aws_lc_rs::{
    aead, digest,
    encoding::AsDer,
    hkdf, hmac,
    rand::{SecureRandom, SystemRandom},
    rsa::KeySize,
    signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair},
};

use crate::Error;

/// The backend's name.
pub(crate) const NAME: &str = "aws-lc-rs";

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

/// A new P-256 private key as PKCS#8 DER.
pub(crate) fn generate_ec() -> Result<Vec<u8>, Error> {
    let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| Error::Crypto("EC key generation failed"))?;
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
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl PrivateKey {
    /// An RSA key from PKCS#8 DER.
    pub(crate) fn rsa_from_pkcs8(pkcs8: &[u8]) -> Result<Self, Error> {
        RsaKeyPair::from_pkcs8(pkcs8).map(PrivateKey::Rsa).map_err(|e| Error::KeyRejected(format!("RSA PKCS#8: {e}")))
    }

    /// A P-256 key from PKCS#8 DER.
    pub(crate) fn ec_from_pkcs8(pkcs8: &[u8]) -> Result<Self, Error> {
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map(PrivateKey::Ec)
            .map_err(|e| Error::KeyRejected(format!("EC PKCS#8: {e}")))
    }

    /// RSA: big-endian `(n, e)` without leading zeros. EC: `(point, [])`
    /// with the uncompressed SEC1 point.
    pub(crate) fn public_parts(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            PrivateKey::Rsa(kp) => {
                let public = kp.public_key();
                (
                    public.modulus().big_endian_without_leading_zero().to_vec(),
                    public.exponent().big_endian_without_leading_zero().to_vec(),
                )
            }
            PrivateKey::Ec(kp) => (kp.public_key().as_ref().to_vec(), Vec::new()),
        }
    }

    /// The length of a signature in bytes.
    pub(crate) fn signature_len(&self) -> usize {
        match self {
            PrivateKey::Rsa(kp) => kp.public_modulus_len(),
            PrivateKey::Ec(_) => 64,
        }
    }

    /// PKCS#1 v1.5 SHA-256, or ECDSA P-256 SHA-256 `r || s`.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        match self {
            PrivateKey::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| Error::Crypto("RSA signing failed"))?;
                Ok(sig)
            }
            PrivateKey::Ec(kp) => {
                kp.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| Error::Crypto("ECDSA signing failed"))
            }
        }
    }
}

/// A parsed public key.
#[derive(Clone)]
pub(crate) struct PublicKey(signature::ParsedPublicKey);

impl PublicKey {
    /// An RSA PKCS#1 v1.5 SHA-256 key from big-endian `n` and `e`.
    pub(crate) fn rsa(n: &[u8], e: &[u8]) -> Result<Self, Error> {
        signature::RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
            .map(PublicKey)
            .map_err(|err| Error::KeyRejected(format!("RSA public key: {err}")))
    }

    /// An ECDSA P-256 SHA-256 key from an uncompressed SEC1 point.
    pub(crate) fn p256(point: &[u8]) -> Result<Self, Error> {
        signature::ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .map(PublicKey)
            .map_err(|_| Error::KeyRejected("EC point is not on P-256".into()))
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
