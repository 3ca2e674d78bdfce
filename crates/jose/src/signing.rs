//! Private signing keys with their identity: a [`crypto::KeyPair`] plus
//! its RFC 7638 kid and public JWK.

use std::fmt;

use crate::{
    Algorithm, Error, Jwk,
    crypto::{KeyPair, PublicParts},
    thumbprint,
};

/// A parsed private signing key: parsed once, used for every signature.
///
/// `Debug` shows the algorithm and kid, never key material.
pub struct SigningKey {
    kid: String,
    public: Jwk,
    pair: KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.pair.algorithm())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new private key for `alg` and returns it as PKCS#8 DER.
    /// `rsa_bits` (2048, 3072 or 4096) is used for RS256 and PS256 only;
    /// ML-DSA keys come in the seed form of RFC 9881.
    ///
    /// RSA generation takes from a hundred milliseconds to seconds: call it
    /// off any async executor.
    pub fn generate(alg: Algorithm, rsa_bits: usize) -> Result<Vec<u8>, Error> {
        KeyPair::generate(alg, rsa_bits)
    }

    /// Parses a PKCS#8 DER private key for `alg` (see
    /// [`KeyPair::from_pkcs8`] for the forms of each).
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, Error> {
        let pair = KeyPair::from_pkcs8(alg, pkcs8)?;
        let public = match pair.public_parts() {
            PublicParts::Rsa { n, e } => Jwk::rsa(n, e),
            PublicParts::P256 { x, y } => Jwk::p256(x, y),
            PublicParts::P384 { x, y } => Jwk::p384(x, y),
            PublicParts::Ed25519 { x } => Jwk::ed25519(x),
            PublicParts::MlDsa { public } => Jwk::ml_dsa(alg, public),
        };
        // `alg` first: the AKP thumbprint covers it (RFC 9964).
        let public = Jwk { alg: Some(alg.as_str().into()), ..public };
        let kid = thumbprint(&public)?;
        let public = Jwk { kid: Some(kid.clone()), use_: Some("sig".into()), ..public };
        Ok(SigningKey { kid, public, pair })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.pair.algorithm()
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
        self.pair.signature_len()
    }

    /// Signs `message` with the key's algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.pair.sign(message)
    }
}
