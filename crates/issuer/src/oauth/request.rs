//! Parsing the token request, and every check that needs nothing but the
//! request: the form body (RFC 6749 §3.2, §4.4.2), `grant_type`, the
//! syntax of `scope` and of the target, the Basic authorization header
//! (RFC 6749 §2.3.1), which authentication method is used, and the shape
//! of the `DPoP` header. All of it runs before any argon2, signature or
//! single-use-id work, so a request refused for its shape costs little and
//! consumes nothing.

use std::net::IpAddr;

use base64::Engine;
use jwks_jose::clock::UnixTime;

use super::{OAuthError, client::is_scope_char, error::printable};

/// The largest token request body accepted.
pub const MAX_BODY: usize = 16 * 1024;
/// The largest `Authorization` header value accepted.
const MAX_AUTHORIZATION: usize = 4096;

/// The parameters of a token request; each appears at most once and an
/// empty value counts as absent (RFC 6749 §3.1).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenForm {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `client_secret`.
    pub client_secret: Option<String>,
    /// `resource` (RFC 8707).
    pub resource: Option<String>,
    /// `audience`.
    pub audience: Option<String>,
    /// `client_assertion_type` (RFC 7521).
    pub client_assertion_type: Option<String>,
    /// `client_assertion` (RFC 7521).
    pub client_assertion: Option<String>,
}

/// Whether a `Content-Type` is `application/x-www-form-urlencoded`.
pub fn is_form_content_type(value: Option<&str>) -> bool {
    value
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

impl TokenForm {
    /// Parses a form-encoded body.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut form = TokenForm::default();
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let (name, value) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
            let bad = || OAuthError::InvalidRequest("the body is not valid form-urlencoded UTF-8".into());
            let name = form_decode(name).ok_or_else(bad)?;
            let value = form_decode(value).ok_or_else(bad)?;
            let slot = match name.as_str() {
                "grant_type" => &mut form.grant_type,
                "scope" => &mut form.scope,
                "client_id" => &mut form.client_id,
                "client_secret" => &mut form.client_secret,
                "resource" => &mut form.resource,
                "audience" => &mut form.audience,
                "client_assertion_type" => &mut form.client_assertion_type,
                "client_assertion" => &mut form.client_assertion,
                // RFC 6749 §3.2: unknown parameters are ignored.
                _ => continue,
            };
            if slot.is_some() && name == "resource" {
                // RFC 8707 §2 allows several; these tokens carry one audience.
                return Err(OAuthError::InvalidTarget("one `resource` per token request".into()));
            }
            if slot.is_some() {
                return Err(OAuthError::InvalidRequest(format!("parameter `{name}` is repeated")));
            }
            if !value.is_empty() {
                *slot = Some(value);
            }
        }
        Ok(form)
    }
}

/// Credentials from `Authorization: Basic`.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The client id, form-urldecoded.
    pub id: String,
    /// The secret, form-urldecoded.
    pub secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Parses an `Authorization` header value for Basic client credentials:
/// base64 of `form-urlencode(id) ":" form-urlencode(secret)` (RFC 6749 §2.3.1).
pub fn parse_basic(value: &[u8]) -> Result<BasicCredentials, OAuthError> {
    let fail = |d: &str| OAuthError::InvalidClient { description: d.into() };
    if value.len() > MAX_AUTHORIZATION {
        return Err(fail("Authorization header too long"));
    }
    let value = std::str::from_utf8(value).map_err(|_| fail("malformed Basic credentials"))?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(|| fail("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::InvalidClient { description: "unsupported authentication scheme; use Basic".into() });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| fail("malformed Basic credentials"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| fail("malformed Basic credentials"))?;
    let (id, secret) = decoded.split_once(':').ok_or_else(|| fail("malformed Basic credentials"))?;
    let id = form_decode(id.as_bytes()).ok_or_else(|| fail("malformed Basic credentials"))?;
    let secret = form_decode(secret.as_bytes()).ok_or_else(|| fail("malformed Basic credentials"))?;
    if id.is_empty() {
        return Err(fail("empty client id"));
    }
    Ok(BasicCredentials { id, secret })
}

/// Strict `application/x-www-form-urlencoded` decoding of one name or
/// value: `+` is a space, `%XX` a byte, and the result must be UTF-8.
fn form_decode(s: &[u8]) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = s.iter();
    while let Some(&b) = i.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(*i.next()?)?;
                let lo = hex(*i.next()?)?;
                out.push((hi * 16 + lo) as u8);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The longest `scope` accepted.
pub const MAX_SCOPE: usize = 4096;
/// The longest `resource` or `audience` accepted.
pub const MAX_TARGET: usize = 2048;
/// The `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The request as the HTTP layer hands it over: headers and body as they
/// arrived, the client's address, and the time, read once at the edge.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
    /// Every `Authorization` header value.
    pub authorization: &'a [&'a [u8]],
    /// Every `DPoP` header value.
    pub dpop: &'a [&'a [u8]],
    /// The client's address (after `[server] trusted_proxies`).
    pub peer: Option<IpAddr>,
    /// Now.
    pub now: UnixTime,
}

/// How the client authenticates, read once from the header and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `client_secret_basic` or `client_secret_post`.
    Secret(BasicCredentials),
    /// `private_key_jwt`: the assertion and its unverified `iss`, which
    /// picks the client whose keys verify it.
    Assertion {
        /// The compact JWT.
        assertion: String,
        /// Its `iss`, not yet verified.
        iss: String,
    },
    /// None at all.
    None,
}

impl Credentials {
    /// The client id the request claims, before it is authenticated.
    pub fn claimed_id(&self) -> Option<&str> {
        match self {
            Credentials::Secret(b) => Some(&b.id),
            Credentials::Assertion { iss, .. } => Some(iss),
            Credentials::None => None,
        }
    }
}

/// A token request that passed every check of its shape.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The form.
    pub form: TokenForm,
    /// The credentials.
    pub credentials: Credentials,
    /// The one `DPoP` proof, if sent.
    pub dpop: Option<String>,
    /// The client's address.
    pub peer: Option<IpAddr>,
    /// Now.
    pub now: UnixTime,
}

impl TokenRequest {
    /// Checks everything that needs only the request, cheapest first.
    pub fn parse(raw: &RawRequest<'_>) -> Result<Self, OAuthError> {
        if !is_form_content_type(raw.content_type) {
            return Err(OAuthError::InvalidRequest("Content-Type must be application/x-www-form-urlencoded".into()));
        }
        let form = TokenForm::parse(raw.body)?;
        match form.grant_type.as_deref() {
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError::UnsupportedGrantType(format!(
                    "grant type `{}` is not supported; use client_credentials",
                    printable(other, 64)
                )));
            }
            None => return Err(OAuthError::InvalidRequest("missing parameter `grant_type`".into())),
        }
        if let Some(scope) = form.scope.as_deref() {
            check_scope_syntax(scope)?;
        }
        check_target_syntax(&form)?;
        let dpop = match raw.dpop {
            [] => None,
            [one] => Some(
                std::str::from_utf8(one)
                    .ok()
                    .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
                    .ok_or_else(|| OAuthError::InvalidDpopProof("the DPoP header is not a compact JWS".into()))?
                    .to_owned(),
            ),
            _ => return Err(OAuthError::InvalidDpopProof("send exactly one DPoP header".into())),
        };
        let credentials = credentials(raw.authorization, &form)?;
        Ok(TokenRequest { form, credentials, dpop, peer: raw.peer, now: raw.now })
    }

    /// The target the request names (`resource`, or `audience`), if any.
    pub fn target(&self) -> Option<&str> {
        self.form.resource.as_deref().or(self.form.audience.as_deref())
    }
}

/// RFC 6749 §3.3: space-delimited scope tokens.
fn check_scope_syntax(scope: &str) -> Result<(), OAuthError> {
    if scope.len() > MAX_SCOPE {
        return Err(OAuthError::InvalidScope(format!("scope is longer than {MAX_SCOPE} characters")));
    }
    if !scope.split(' ').all(|s| s.bytes().all(is_scope_char)) {
        return Err(OAuthError::InvalidScope("scope contains characters outside RFC 6749 section 3.3".into()));
    }
    Ok(())
}

/// RFC 8707 §2: `resource` is an absolute URI without a fragment;
/// `audience` is printable; when both are sent they name one target.
fn check_target_syntax(form: &TokenForm) -> Result<(), OAuthError> {
    for (name, v) in [("resource", &form.resource), ("audience", &form.audience)] {
        let Some(v) = v.as_deref() else { continue };
        if v.len() > MAX_TARGET || v.chars().any(char::is_control) {
            return Err(OAuthError::InvalidTarget(format!(
                "`{name}` must be at most {MAX_TARGET} printable characters"
            )));
        }
    }
    if let Some(r) = form.resource.as_deref() {
        let ok = url::Url::parse(r).is_ok_and(|u| u.fragment().is_none()) && !r.contains('#');
        if !ok {
            return Err(OAuthError::InvalidTarget(
                "`resource` must be an absolute URI without a fragment (RFC 8707)".into(),
            ));
        }
    }
    if let (Some(r), Some(a)) = (form.resource.as_deref(), form.audience.as_deref())
        && r != a
    {
        return Err(OAuthError::InvalidTarget("resource and audience name different targets".into()));
    }
    Ok(())
}

/// Which method authenticates the client: one of them, never several
/// (RFC 6749 §2.3).
fn credentials(authorization: &[&[u8]], form: &TokenForm) -> Result<Credentials, OAuthError> {
    let several = || {
        OAuthError::InvalidRequest(
            "use one client authentication method: a client assertion, Basic or client_secret, not several".into(),
        )
    };
    let header = match authorization {
        [] => None,
        [one] => Some(*one),
        _ => return Err(OAuthError::InvalidRequest("send at most one Authorization header".into())),
    };
    if form.client_assertion_type.is_some() || form.client_assertion.is_some() {
        if header.is_some() || form.client_secret.is_some() {
            return Err(several());
        }
        let fail = |d: &str| OAuthError::InvalidClient { description: d.into() };
        if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
            return Err(fail("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
        }
        let Some(assertion) = form.client_assertion.clone() else { return Err(fail("missing client_assertion")) };
        let Some(iss) = unverified_issuer(&assertion) else {
            return Err(fail("client assertion is not a JWT with an `iss` claim"));
        };
        if form.client_id.as_deref().is_some_and(|id| id != iss) {
            return Err(fail("client_id differs from the assertion's `iss`"));
        }
        return Ok(Credentials::Assertion { assertion, iss });
    }
    let basic = header.map(parse_basic).transpose()?;
    match (basic, &form.client_secret) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest(
            "use one client authentication method: Basic or client_secret in the body, not both".into(),
        )),
        (Some(b), None) => {
            if form.client_id.as_deref().is_some_and(|id| id != b.id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body differs from the Basic credentials".into(),
                ));
            }
            Ok(Credentials::Secret(b))
        }
        (None, Some(secret)) => {
            let Some(id) = form.client_id.clone() else {
                return Err(OAuthError::InvalidRequest("client_secret without client_id".into()));
            };
            Ok(Credentials::Secret(BasicCredentials { id, secret: secret.clone() }))
        }
        (None, None) => Ok(Credentials::None),
    }
}

/// The `iss` of an assertion, read without verification.
pub fn unverified_issuer(assertion: &str) -> Option<String> {
    let parts = jwks_jose::compact::split(assertion, jwks_verifier::limits::MAX_TOKEN_LIMIT).ok()?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: String,
    }
    serde_json::from_slice::<Iss>(&parts.payload).ok().map(|c| c.iss)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        let c = parse_basic(basic("my%20client:p%40ss+word%3A").as_bytes()).unwrap();
        assert_eq!(c.id, "my client");
        assert_eq!(c.secret, "p@ss word:");
        let c = parse_basic(basic("a:b:c").as_bytes()).unwrap();
        assert_eq!((c.id.as_str(), c.secret.as_str()), ("a", "b:c"));
    }

    #[test]
    fn malformed_basic_headers_are_invalid_client() {
        for bad in ["Basic", "Basic !!!", "Bearer abc", &basic("no-colon"), &basic(":secret"), &"B".repeat(5000)] {
            assert!(matches!(parse_basic(bad.as_bytes()), Err(OAuthError::InvalidClient { .. })), "{bad}");
        }
        assert!(parse_basic(b"Basic \xff\xfe").is_err());
    }

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_are_absent() {
        let f = TokenForm::parse(b"grant_type=client_credentials&scope=&x=1").unwrap();
        assert_eq!(f.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(f.scope, None);
        assert!(
            matches!(TokenForm::parse(b"scope=a&scope=b"), Err(OAuthError::InvalidRequest(m)) if m.contains("scope"))
        );
        for bad in [&b"scope=%ff"[..], b"scope=%4", b"scope=\xff", b"scope=%zz"] {
            assert!(matches!(TokenForm::parse(bad), Err(OAuthError::InvalidRequest(_))), "{bad:?}");
        }
        let f = TokenForm::parse(b"scope=a+b%20c&client_id=x%26y%3Dz").unwrap();
        assert_eq!(f.scope.as_deref(), Some("a b c"));
        assert_eq!(f.client_id.as_deref(), Some("x&y=z"));
    }

    #[test]
    fn content_type_must_be_form() {
        assert!(is_form_content_type(Some("application/x-www-form-urlencoded; charset=UTF-8")));
        assert!(is_form_content_type(Some("Application/X-WWW-Form-URLEncoded")));
        assert!(!is_form_content_type(Some("application/json")));
        assert!(!is_form_content_type(None));
    }
}
