//! TLS to PostgreSQL, as libpq spells it in the address:
//! `?sslmode=require` and `?sslmode=verify-full&sslrootcert=/path/ca.pem`,
//! on rustls with the provider of the crate's crypto feature (aws-lc-rs by
//! default).
//!
//! | `sslmode` | what happens (libpq's meaning) |
//! | --- | --- |
//! | `disable` | no TLS |
//! | `prefer` (the default) | TLS when the server offers it, without checking its certificate; plain otherwise |
//! | `require` | TLS or no connection; the certificate is not checked, unless `sslrootcert` is given (then as `verify-ca`) |
//! | `verify-ca` | TLS, the chain checked against `sslrootcert` |
//! | `verify-full` | TLS, the chain checked against `sslrootcert` and the host name against the certificate |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the
//! Mozilla roots (`webpki-roots`); `verify-ca` and `verify-full` need it.
//! The handshake's signature is always verified, so `require` still
//! proves the peer holds the key of the certificate it sent.

use std::{path::PathBuf, sync::Arc};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
pub(super) use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` address:
/// returns the address without them (for tokio-postgres, which knows only
/// `disable`, `prefer` and `require`), its `SslMode`, and the connector.
/// Reads the `sslrootcert` file; its errors name it.
pub(super) fn from_url(url: &str) -> Result<(String, tokio_postgres::config::SslMode, MakeRustlsConnect), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = None;
    let mut root: Option<String> = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(pair.as_bytes()).next().unwrap_or_default();
        match &*key {
            "sslmode" => {
                mode = Some(match &*value {
                    "disable" => Mode::Disable,
                    "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    "allow" => {
                        return Err("`sslmode=allow` is not supported; use `prefer`, `require` or `verify-full`".into());
                    }
                    other => {
                        return Err(format!(
                            "`sslmode={other}` is not disable, prefer, require, verify-ca or verify-full"
                        ));
                    }
                })
            }
            "sslrootcert" => root = Some(value.into_owned()),
            _ => kept.push(pair),
        }
    }
    let mode = mode.unwrap_or(Mode::Prefer);
    // libpq: `require` with a root certificate file checks the chain.
    let mode = if mode == Mode::Require && root.is_some() { Mode::VerifyCa } else { mode };
    let provider = Arc::new(provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root) {
        (Mode::VerifyCa | Mode::VerifyFull, None) => {
            return Err(format!(
                "`sslmode={}` needs `sslrootcert=/path/to/ca.pem` (PEM CA certificates) or `sslrootcert=system`",
                if mode == Mode::VerifyCa { "verify-ca" } else { "verify-full" }
            ));
        }
        (Mode::VerifyCa | Mode::VerifyFull, Some(root)) => {
            let roots = roots(&root)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("`sslrootcert={root}`: {e}"))?;
            if mode == Mode::VerifyFull { webpki } else { Arc::new(ChainOnly(webpki)) }
        }
        (_, Some(_)) => {
            return Err("`sslrootcert` is only read with `sslmode=require`, `verify-ca` or `verify-full`".into());
        }
        (Mode::Disable | Mode::Prefer | Mode::Require, None) => {
            Arc::new(Unauthenticated { provider: provider.clone() })
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let ssl_mode = match mode {
        Mode::Disable => tokio_postgres::config::SslMode::Disable,
        Mode::Prefer => tokio_postgres::config::SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => tokio_postgres::config::SslMode::Require,
    };
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, ssl_mode, MakeRustlsConnect::new(config)))
}

fn provider() -> CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    provider
}

/// The CA certificates of `sslrootcert`: a PEM file, or `system`.
fn roots(root: &str) -> Result<rustls::RootCertStore, String> {
    if root == "system" {
        return Ok(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    }
    let path = PathBuf::from(root);
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("`sslrootcert`: cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`sslrootcert`: {} is not a PEM certificate file: {e}", path.display()))?;
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("`sslrootcert`: {} holds no usable CA certificate", path.display()));
    }
    Ok(store)
}

/// `verify-ca`: the chain must lead to a root; the host name is not
/// compared (the verifier checks the chain before the name, so a name
/// error means the chain was good).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` and `prefer` without a root: encryption without checking who
/// the server is (libpq's meaning of these modes). The handshake
/// signatures are still verified against the certificate sent.
#[derive(Debug)]
struct Unauthenticated {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::SslMode;

    use super::*;

    fn mode(url: &str) -> Result<(String, SslMode), String> {
        from_url(url).map(|(rest, mode, _)| (rest, mode))
    }

    #[test]
    fn ssl_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, m) = mode("postgres://u@h/db?sslmode=require&connect_timeout=2").unwrap();
        assert_eq!((rest.as_str(), m), ("postgres://u@h/db?connect_timeout=2", SslMode::Require));
        let (rest, m) = mode("postgres://u@h/db").unwrap();
        assert_eq!((rest.as_str(), m), ("postgres://u@h/db", SslMode::Prefer));
        assert_eq!(mode("postgres://u@h/db?sslmode=disable").unwrap().1, SslMode::Disable);
        assert_eq!(mode("postgres://u@h/db?sslmode=verify-full&sslrootcert=system").unwrap().1, SslMode::Require);
    }

    #[test]
    fn verify_modes_need_a_root() {
        let e = mode("postgres://u@h/db?sslmode=verify-full").unwrap_err();
        assert!(e.contains("sslrootcert"), "{e}");
        let e = mode("postgres://u@h/db?sslmode=verify-ca").unwrap_err();
        assert!(e.contains("verify-ca"), "{e}");
    }

    #[test]
    fn an_unreadable_root_file_is_named() {
        let e = mode("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing").unwrap();
        let e = mode(&format!("postgres://u@h/db?sslmode=verify-full&sslrootcert={}", empty.display())).unwrap_err();
        assert!(e.contains("empty.pem") && e.contains("no usable CA"), "{e}");
    }

    #[test]
    fn unknown_modes_are_refused() {
        assert!(mode("postgres://u@h/db?sslmode=allow").unwrap_err().contains("allow"));
        assert!(mode("postgres://u@h/db?sslmode=bogus").unwrap_err().contains("bogus"));
        assert!(mode("postgres://u@h/db?sslrootcert=system").unwrap_err().contains("only read"));
    }
}
