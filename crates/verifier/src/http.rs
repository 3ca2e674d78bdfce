//! HTTP for the JWKS and discovery documents, with the limits of the
//! crate: https only (except loopback or `allow_http`), connect and total
//! timeouts, a body cap, no redirect to another host, conditional requests.

use std::{net::IpAddr, time::Duration};

use reqwest::{StatusCode, header, redirect};
use url::{Host, Url};

/// The largest JWKS or discovery document read, in bytes.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

/// At most this many redirects, all to the same host.
const MAX_REDIRECTS: usize = 3;

/// Whether `url` may be fetched: `https`, or `http` to a loopback host or
/// with `allow_http`.
pub(crate) fn check_url(url: &Url, allow_http: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err(format!("{url} is not https (http is allowed only for loopback hosts or with allow_http)")),
        other => Err(format!("unsupported URL scheme `{other}`")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// How the JWKS client reaches the issuer: roots, proxy, headers.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    /// PEM files of extra root CAs, read when the verifier is built.
    pub(crate) ca_files: Vec<std::path::PathBuf>,
    /// PEM text of extra root CAs.
    pub(crate) ca_pems: Vec<Vec<u8>>,
    /// The platform's roots instead of the Mozilla roots of `webpki-roots`.
    pub(crate) native_roots: bool,
    /// Whether `SSL_CERT_FILE`, when set, replaces the default roots.
    pub(crate) ssl_cert_file: bool,
    /// An HTTPS (or HTTP) proxy for every request.
    pub(crate) proxy: Option<String>,
    /// Extra request headers (a `User-Agent` here replaces the default).
    pub(crate) headers: Vec<(String, String)>,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            ca_files: Vec::new(),
            ca_pems: Vec::new(),
            native_roots: false,
            ssl_cert_file: true,
            proxy: None,
            headers: Vec::new(),
        }
    }
}

/// The default `User-Agent` of the JWKS client.
pub(crate) const USER_AGENT: &str = concat!("jwks-verifier/", env!("CARGO_PKG_VERSION"));

/// The root certificates: `SSL_CERT_FILE` (the path the environment
/// gives, `ssl_cert_file` set) instead of the default roots, the default
/// roots being the platform's (`native_roots`) or Mozilla's; then every
/// extra CA. The files are read here (callers run this off the executor).
pub(crate) fn roots(
    transport: &Transport,
    ssl_cert_file: Option<&std::path::Path>,
) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ssl_cert_file.filter(|_| transport.ssl_cert_file) {
        Some(path) => add_pem_file(&mut roots, path)?,
        None if transport.native_roots => add_native(&mut roots)?,
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    for path in &transport.ca_files {
        add_pem_file(&mut roots, path)?;
    }
    for pem in &transport.ca_pems {
        add_pem(&mut roots, pem, "CA certificate")?;
    }
    Ok(roots)
}

fn add_pem_file(roots: &mut rustls::RootCertStore, path: &std::path::Path) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
    add_pem(roots, &pem, &path.display().to_string())
}

fn add_pem(roots: &mut rustls::RootCertStore, pem: &[u8], what: &str) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut added = 0usize;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("{what}: not PEM: {e}"))?;
        roots.add(cert).map_err(|e| format!("{what}: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!("{what}: no certificate found"));
    }
    Ok(())
}

#[cfg(feature = "native-roots")]
fn add_native(roots: &mut rustls::RootCertStore) -> Result<(), String> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "a platform root certificate could not be loaded");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err("no platform root certificate could be loaded".into());
    }
    Ok(())
}

#[cfg(not(feature = "native-roots"))]
fn add_native(_: &mut rustls::RootCertStore) -> Result<(), String> {
    Err("native roots need the `native-roots` feature".into())
}

/// The HTTP client of one verifier (or of several: a multi-issuer
/// verifier shares one).
pub(crate) fn client(
    connect_timeout: Duration,
    timeout: Duration,
    allow_http: bool,
    transport: &Transport,
    roots: rustls::RootCertStore,
) -> Result<reqwest::Client, String> {
    let policy = redirect::Policy::custom(move |attempt| {
        let Some(first) = attempt.previous().first() else { return attempt.follow() };
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let same_host = attempt.url().host_str() == first.host_str()
            && attempt.url().port_or_known_default() == first.port_or_known_default();
        if !same_host {
            return attempt.error("redirect to another host refused");
        }
        if let Err(e) = check_url(attempt.url(), allow_http) {
            return attempt.error(e);
        }
        attempt.follow()
    });
    let mut headers = header::HeaderMap::new();
    headers.insert(header::USER_AGENT, header::HeaderValue::from_static(USER_AGENT));
    for (name, value) in &transport.headers {
        let name = header::HeaderName::try_from(name.as_str()).map_err(|e| format!("header name {name:?}: {e}"))?;
        let value = header::HeaderValue::try_from(value.as_str()).map_err(|e| format!("header {name}: {e}"))?;
        headers.insert(name, value);
    }
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(roots)?)
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(policy)
        .default_headers(headers);
    if let Some(proxy) = &transport.proxy {
        builder = builder.proxy(reqwest::Proxy::all(proxy).map_err(|e| format!("proxy: {e}"))?);
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// The TLS settings of the JWKS client: rustls with the provider of the
/// crate's crypto feature (aws-lc-rs by default, ring with `ring`) and the
/// given roots; TLS 1.2 and 1.3 only. No process-wide default provider is
/// read or installed.
fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    Ok(rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A failed fetch: a metric label and a reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchError {
    /// `network`, `http_status`, `too_large` or `invalid` (set by callers).
    pub(crate) outcome: &'static str,
    pub(crate) reason: String,
}

impl FetchError {
    pub(crate) fn new(outcome: &'static str, reason: impl Into<String>) -> Self {
        FetchError { outcome, reason: reason.into() }
    }
}

/// A successful response.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// A 200 with its body.
    Body { body: Vec<u8>, etag: Option<String>, max_age: Option<Duration>, age: Duration },
    /// A 304 to our `If-None-Match`.
    NotModified { max_age: Option<Duration>, age: Duration },
}

/// GETs `url`, sending `If-None-Match: etag` when given, reading at most
/// [`MAX_BODY_BYTES`].
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &Url,
    accept: &'static str,
    etag: Option<&str>,
) -> Result<Fetched, FetchError> {
    let mut request = client.get(url.clone()).header(header::ACCEPT, accept);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let mut response = request.send().await.map_err(|e| FetchError::new("network", describe(&e)))?;
    let max_age = response.headers().get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).and_then(max_age);
    let age = response.headers().get(header::AGE).and_then(|v| v.to_str().ok()).map_or(Duration::ZERO, age);
    match response.status() {
        StatusCode::OK => {}
        StatusCode::NOT_MODIFIED if etag.is_some() => return Ok(Fetched::NotModified { max_age, age }),
        status => return Err(FetchError::new("http_status", format!("HTTP {status} from {url}"))),
    }
    let etag = response.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if response.content_length().is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(FetchError::new("too_large", format!("body over {MAX_BODY_BYTES} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| FetchError::new("network", describe(&e)))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(FetchError::new("too_large", format!("body over {MAX_BODY_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body { body, etag, max_age, age })
}

/// The `Age` of a response (RFC 9111 §5.1): a non-negative integer of
/// seconds, set by caches between us and the origin. Anything else is
/// ignored (zero), as are values past 2^31 s, which §1.2.2 caps.
pub(crate) fn age(value: &str) -> Duration {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(secs) if !value.starts_with('+') => Duration::from_secs(secs.min(1 << 31)),
        _ => Duration::ZERO,
    }
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The freshness lifetime of a response from its `Cache-Control` header
/// (RFC 9111 §5.2.2): `max-age`, or zero for `no-store` / `no-cache`.
pub(crate) fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "no-store" | "no-cache" => return Some(Duration::ZERO),
            "max-age" => {
                let value = value.trim().trim_matches('"');
                if let Ok(secs) = value.parse::<u64>() {
                    found = Some(Duration::from_secs(secs));
                }
            }
            _ => {}
        }
    }
    found
}

/// The discovery documents of `issuer`, in order: RFC 8414 §3.1 (the
/// well-known segment inserted before the issuer's path), then OpenID
/// Connect Discovery §4 (appended to the path).
pub(crate) fn discovery_urls(issuer: &Url) -> [Url; 2] {
    let path = issuer.path().trim_end_matches('/');
    let mut oauth = issuer.clone();
    oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    oauth.set_query(None);
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    oidc.set_query(None);
    [oauth, oidc]
}

#[derive(serde::Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// Finds the JWKS URI of `issuer` through its metadata, whose `issuer`
/// must equal ours exactly (RFC 8414 §3.3).
pub(crate) async fn discover(client: &reqwest::Client, issuer: &str, allow_http: bool) -> Result<Url, FetchError> {
    let issuer_url = Url::parse(issuer).map_err(|e| FetchError::new("invalid", format!("issuer URL: {e}")))?;
    check_url(&issuer_url, allow_http).map_err(|e| FetchError::new("invalid", e))?;
    let mut failures = Vec::new();
    for url in discovery_urls(&issuer_url) {
        let body = match get(client, &url, "application/json", None).await {
            Ok(Fetched::Body { body, .. }) => body,
            Ok(Fetched::NotModified { .. }) => continue,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let meta: Metadata = match serde_json::from_slice(&body) {
            Ok(meta) => meta,
            Err(e) => {
                failures.push(FetchError::new("invalid", format!("{url}: not authorization server metadata: {e}")));
                continue;
            }
        };
        if meta.issuer != issuer {
            failures.push(FetchError::new("invalid", format!("{url}: metadata issuer does not match {issuer}")));
            continue;
        }
        let jwks_uri =
            Url::parse(&meta.jwks_uri).map_err(|e| FetchError::new("invalid", format!("{url}: jwks_uri: {e}")))?;
        check_url(&jwks_uri, allow_http).map_err(|e| FetchError::new("invalid", e))?;
        return Ok(jwks_uri);
    }
    let outcome = failures.last().map_or("invalid", |f| f.outcome);
    let reason = failures.into_iter().map(|f| f.reason).collect::<Vec<_>>().join("; ");
    Err(FetchError::new(outcome, format!("discovery failed: {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_allowed() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(check_url(&url("https://issuer.example/jwks"), false).is_ok());
        for ok in ["http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]/jwks", "http://127.8.9.1/"] {
            assert!(check_url(&url(ok), false).is_ok(), "{ok}");
        }
        assert!(check_url(&url("http://issuer.example/jwks"), false).is_err());
        assert!(check_url(&url("http://issuer.example/jwks"), true).is_ok());
        assert!(check_url(&url("ftp://issuer.example/jwks"), true).is_err());
        assert!(check_url(&url("http://localhost.evil.example/"), false).is_err());
    }

    #[test]
    fn cache_control_max_age_is_read_and_no_store_means_zero() {
        assert_eq!(max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("max-age=60, no-cache"), Some(Duration::ZERO));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=-5"), None);
    }

    #[test]
    fn age_is_delta_seconds_else_ignored() {
        assert_eq!(age("120"), Duration::from_secs(120));
        assert_eq!(age(" 7 "), Duration::from_secs(7));
        for bad in ["-5", "+5", "1.5", "10, 20", "", "x"] {
            assert_eq!(age(bad), Duration::ZERO, "{bad}");
        }
        assert_eq!(age("99999999999999"), Duration::from_secs(1 << 31));
    }

    #[test]
    fn discovery_urls_follow_rfc8414_and_oidc() {
        let [a, b] = discovery_urls(&Url::parse("https://as.example").unwrap());
        assert_eq!(a.as_str(), "https://as.example/.well-known/oauth-authorization-server");
        assert_eq!(b.as_str(), "https://as.example/.well-known/openid-configuration");
        let [a, b] = discovery_urls(&Url::parse("https://as.example/tenant/1/").unwrap());
        assert_eq!(a.as_str(), "https://as.example/.well-known/oauth-authorization-server/tenant/1");
        assert_eq!(b.as_str(), "https://as.example/tenant/1/.well-known/openid-configuration");
    }
}
