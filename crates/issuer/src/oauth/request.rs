//! Parsing the token request: the form body (RFC 6749 §3.2, §4.4.2) and
//! the Basic authorization header (RFC 6749 §2.3.1).

use base64::Engine;

use super::OAuthError;

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
