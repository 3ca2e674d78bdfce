//! The credentials of an HTTP request, read from its header values by one
//! set of rules for every framework: `Authorization: Bearer` (RFC 6750
//! §2.1) or `Authorization: DPoP` with one `DPoP` proof header (RFC 9449
//! §7.1); and the URL a DPoP proof must name.

use crate::{
    Claims, Error, MultiVerifier,
    answer::{Refusal, Scheme},
    dpop,
};

/// The credentials of a request.
#[derive(Debug)]
pub(crate) enum Credentials {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: DPoP <token>` and one `DPoP` header.
    Dpop { token: String, proof: String },
}

/// A header value as text, if it is visible ASCII (and spaces or tabs),
/// as `http`'s `to_str` asks.
fn ascii(value: &[u8]) -> Option<&str> {
    let visible = value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    if visible { std::str::from_utf8(value).ok() } else { None }
}

/// The credentials of a request with these `Authorization` and `DPoP`
/// header values. No `Authorization` header, or another scheme, is
/// [`Error::MissingToken`] (RFC 6750 §3.1).
pub(crate) fn read<'a>(
    mut authorization: impl Iterator<Item = &'a [u8]>,
    mut proofs: impl Iterator<Item = &'a [u8]>,
) -> Result<Credentials, Refusal> {
    let Some(value) = authorization.next() else { return Err(Error::MissingToken.into()) };
    if authorization.next().is_some() {
        return Err(Error::malformed("more than one Authorization header").into());
    }
    let value = ascii(value).ok_or_else(|| Error::malformed("Authorization header is not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let token = rest.trim_matches(' ');
    if scheme.eq_ignore_ascii_case("bearer") {
        if token.is_empty() {
            return Err(Error::malformed("empty bearer token").into());
        }
        return Ok(Credentials::Bearer(token.to_owned()));
    }
    if !scheme.eq_ignore_ascii_case("dpop") {
        // Another scheme is no token authentication at all (RFC 6750 §3.1).
        return Err(Error::MissingToken.into());
    }
    if token.is_empty() {
        return Err(Refusal::new(Error::malformed("empty DPoP token"), Scheme::Dpop));
    }
    let proof = match (proofs.next(), proofs.next()) {
        (Some(p), None) => ascii(p).ok_or_else(|| proof_error("the DPoP header is not ASCII"))?,
        (None, _) => return Err(proof_error("the request has no DPoP header")),
        (Some(_), Some(_)) => return Err(proof_error("the request has more than one DPoP header")),
    };
    Ok(Credentials::Dpop { token: token.to_owned(), proof: proof.to_owned() })
}

fn proof_error(reason: &str) -> Refusal {
    Refusal::new(dpop::ProofError::Malformed(reason.to_owned()).into(), Scheme::Dpop)
}

/// Verifies the credentials: a bearer token alone, a DPoP token with its
/// proof for `method` and `url`.
pub(crate) async fn verify(
    verifier: &MultiVerifier,
    credentials: Credentials,
    method: &str,
    url: &str,
) -> Result<Claims, Refusal> {
    match credentials {
        Credentials::Bearer(token) => verifier.verify(&token).await.map_err(Refusal::from),
        Credentials::Dpop { token, proof } => {
            verifier.verify_dpop(&token, &proof, method, url).await.map_err(|e| Refusal::new(e, Scheme::Dpop))
        }
    }
}

/// The public base URL of a resource server (scheme, host, optional port
/// and path prefix) as clients address it: the base of the URL that DPoP
/// proofs (`htu`) are checked against. Set it when the server runs behind a
/// reverse proxy or terminates TLS itself; the request path is appended.
///
/// ```
/// use jwks_verifier::PublicBaseUrl;
///
/// let base = PublicBaseUrl::new("https://api.example.com/v1")?;
/// # let _ = base;
/// # Ok::<(), jwks_verifier::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBaseUrl(String);

impl PublicBaseUrl {
    /// An http(s) URL without query or fragment.
    pub fn new(url: &str) -> Result<Self, Error> {
        let parsed = url::Url::parse(url).map_err(|e| Error::config(format!("public base URL: {e}")))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::config("the public base URL must be http(s) without query or fragment"));
        }
        Ok(PublicBaseUrl(url.trim_end_matches('/').to_owned()))
    }

    /// The URL of `path` under this base.
    pub(crate) fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_one(auth: &[&str], dpop: &[&str]) -> Result<Credentials, Refusal> {
        read(auth.iter().map(|s| s.as_bytes()), dpop.iter().map(|s| s.as_bytes()))
    }

    #[test]
    fn schemes_are_case_insensitive_and_others_are_no_token() {
        assert!(matches!(read_one(&["bearer  t"], &[]), Ok(Credentials::Bearer(t)) if t == "t"));
        assert!(matches!(read_one(&["DPOP t"], &["p"]), Ok(Credentials::Dpop { .. })));
        assert_eq!(read_one(&["Basic x"], &[]).unwrap_err().error(), &Error::MissingToken);
        assert_eq!(read_one(&[], &[]).unwrap_err().error(), &Error::MissingToken);
        assert_eq!(read_one(&["Bearer a", "Bearer b"], &[]).unwrap_err().error().code(), "malformed");
        assert_eq!(read_one(&["Bearer "], &[]).unwrap_err().error().code(), "malformed");
        let no_proof = read_one(&["DPoP t"], &[]).unwrap_err();
        assert_eq!((no_proof.error().code(), no_proof.scheme()), ("invalid_dpop_proof", Scheme::Dpop));
        assert_eq!(read_one(&["DPoP t"], &["a", "b"]).unwrap_err().error().code(), "invalid_dpop_proof");
        let bytes: &[u8] = b"Bearer \xff";
        assert_eq!(read([bytes].into_iter(), std::iter::empty()).unwrap_err().error().code(), "malformed");
    }
}
