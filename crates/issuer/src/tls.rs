//! TLS on the public listener: the certificate and key from PEM files,
//! served by rustls on the provider of the crate's crypto feature (aws-lc-rs
//! by default), and swapped in place when the files change.
//!
//! [`CertResolver`] holds the current [`CertifiedKey`] in an `ArcSwap`:
//! every handshake reads it, [`CertResolver::reload`] replaces it. A
//! connection keeps the certificate it was opened with, so a reload drops
//! nothing; a file that does not load leaves the old certificate in place.
//! TLS 1.2 and 1.3 with rustls's safe defaults; the HTTP server adds the
//! ALPN protocols (`h2`, `http/1.1`).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use crate::Error;

/// `[tls]`: the listener's certificate chain and private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `tls.cert_file`: the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// `tls.key_file`: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The crypto provider of the crate's crypto feature.
fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

fn file_error(path: &Path, message: impl fmt::Display) -> Error {
    Error::Tls { path: path.to_path_buf(), message: message.to_string() }
}

/// Reads and checks `files`: a non-empty chain, a private key the provider
/// can sign with, and the key matching the leaf certificate. Each error
/// names the file at fault.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, Error> {
    load_with(&provider(), files)
}

fn load_with(provider: &CryptoProvider, files: &TlsFiles) -> Result<CertifiedKey, Error> {
    let cert = &files.cert_file;
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, format!("cannot read the certificate chain: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(cert, "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)"));
    }
    let key_path = &files.key_file;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            file_error(key_path, "holds no PEM private key (a PKCS#8, SEC1 or PKCS#1 `PRIVATE KEY` block)")
        }
        e => file_error(key_path, format!("cannot read the private key: {e}")),
    })?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_error(key_path, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(file_error(
            key_path,
            format!("the private key does not belong to the first certificate of {}", cert.display()),
        )),
        Err(e) => Err(file_error(cert, format!("the first certificate is unusable: {e}"))),
    }
}

/// The listener's current certificate, replaced in place by
/// [`CertResolver::reload`].
pub struct CertResolver {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").field("files", &self.files).finish_non_exhaustive()
    }
}

impl CertResolver {
    /// Loads `files` ([`load`]); an error names the file.
    pub fn open(files: TlsFiles) -> Result<Self, Error> {
        let provider = provider();
        let current = load_with(&provider, &files)?;
        Ok(CertResolver { files, provider, current: ArcSwap::from_pointee(current) })
    }

    /// Reads the files again and serves them to new connections; on an
    /// error the previous certificate stays. Blocking (file reads).
    pub fn reload(&self) -> Result<(), Error> {
        let next = load_with(&self.provider, &self.files)?;
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// The rustls server settings answering with this resolver: the
    /// provider's safe defaults (TLS 1.2 and 1.3), no client certificates.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, Error> {
        let config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| file_error(&self.files.cert_file, format!("TLS settings: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A P-256 key and a self-signed certificate for it (CN=localhost),
    /// made by the `openssl` command.
    fn openssl_pair(dir: &Path, name: &str) -> TlsFiles {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl on PATH");
        assert!(status.success());
        TlsFiles { cert_file: cert, key_file: key }
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let files = openssl_pair(dir.path(), "a");
        let r = CertResolver::open(files).unwrap();
        assert_eq!(r.current().cert.len(), 1);
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = openssl_pair(dir.path(), "a");
        files.cert_file = dir.path().join("missing.crt");
        let e = load(&files).unwrap_err();
        assert_eq!(e.code(), "tls");
        assert!(e.to_string().contains("missing.crt"), "{e}");
    }

    #[test]
    fn a_file_without_a_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = openssl_pair(dir.path(), "a");
        files.cert_file = write(dir.path(), "empty.crt", "not a certificate\n");
        let e = load(&files).unwrap_err();
        assert!(e.to_string().contains("empty.crt") && e.to_string().contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn a_key_file_without_a_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = openssl_pair(dir.path(), "a");
        files.key_file = files.cert_file.clone();
        let e = load(&files).unwrap_err();
        assert!(e.to_string().contains("a.crt") && e.to_string().contains("no PEM private key"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = openssl_pair(dir.path(), "a");
        let b = openssl_pair(dir.path(), "b");
        let e = load(&TlsFiles { cert_file: a.cert_file, key_file: b.key_file }).unwrap_err();
        assert!(e.to_string().contains("b.key") && e.to_string().contains("does not belong"), "{e}");
    }

    #[test]
    fn a_bad_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = openssl_pair(dir.path(), "a");
        let r = CertResolver::open(files.clone()).unwrap();
        let before = r.current().cert.clone();
        std::fs::write(&files.cert_file, "garbage").unwrap();
        assert!(r.reload().is_err());
        assert_eq!(r.current().cert, before);
        // A good new pair is taken.
        let b = openssl_pair(dir.path(), "b");
        std::fs::copy(&b.cert_file, &files.cert_file).unwrap();
        std::fs::copy(&b.key_file, &files.key_file).unwrap();
        r.reload().unwrap();
        assert_ne!(r.current().cert, before);
    }
}
