//! OAuth 2.0 protected-resource metadata (RFC 9728): the document a
//! resource server publishes at `/.well-known/oauth-protected-resource`,
//! and the URL its challenges name in `resource_metadata` (§5.1). MCP
//! servers must publish it. The handlers are in [`crate::axum`] and
//! [`crate::actix`]; this module is the document alone.
//!
//! ```
//! use jwks_verifier::ProtectedResource;
//!
//! let resource = ProtectedResource::new("https://api.example/mcp")?
//!     .authorization_server("https://login.example")
//!     .scopes(["read", "write"]);
//! assert_eq!(resource.metadata_url(), "https://api.example/.well-known/oauth-protected-resource/mcp");
//! assert_eq!(resource.document()["authorization_servers"][0], "https://login.example");
//! # Ok::<(), jwks_verifier::Error>(())
//! ```

use serde_json::{Value, json};

use crate::{Error, answer::ChallengeOptions, dpop};

/// The well-known path segment of RFC 9728 §3.
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The RFC 9728 §2 metadata of one protected resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResource {
    /// The identifier exactly as configured (RFC 9728 §3.3 compares it).
    given: String,
    resource: url::Url,
    authorization_servers: Vec<String>,
    scopes: Vec<String>,
    bearer_methods: Vec<String>,
    dpop_algs: Vec<String>,
    dpop_required: bool,
}

impl ProtectedResource {
    /// The metadata of the resource identified by `resource`: an https URL
    /// without query or fragment (RFC 9728 §1.2; this is also the RFC 8707
    /// audience clients ask tokens for).
    pub fn new(resource: &str) -> Result<Self, Error> {
        let parsed = url::Url::parse(resource).map_err(|e| Error::config(format!("resource: {e}")))?;
        if parsed.scheme() != "https" || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::config("the resource identifier must be an https URL without query or fragment"));
        }
        Ok(ProtectedResource {
            given: resource.to_owned(),
            resource: parsed,
            authorization_servers: Vec::new(),
            scopes: Vec::new(),
            bearer_methods: vec!["header".to_owned()],
            dpop_algs: dpop::ALGORITHMS.iter().map(|a| a.as_str().to_owned()).collect(),
            dpop_required: false,
        })
    }

    /// Adds an issuer whose tokens the resource accepts
    /// (`authorization_servers`). Defaults to none.
    #[must_use]
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// The scopes the resource uses (`scopes_supported`). Defaults to none
    /// (the member is then left out).
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the resource takes only DPoP-bound tokens
    /// (`dpop_bound_access_tokens_required`). Defaults to `false`.
    #[must_use]
    pub fn dpop_bound_access_tokens_required(mut self, required: bool) -> Self {
        self.dpop_required = required;
        self
    }

    /// The resource identifier as given.
    pub fn resource(&self) -> &str {
        &self.given
    }

    /// The path the document is served at: the well-known segment inserted
    /// before the resource's path (RFC 9728 §3.1).
    pub fn well_known_path(&self) -> String {
        let path = self.resource.path().trim_end_matches('/');
        format!("{WELL_KNOWN}{path}")
    }

    /// The URL of the document, for the `resource_metadata` parameter.
    pub fn metadata_url(&self) -> String {
        let mut url = self.resource.clone();
        url.set_path(&self.well_known_path());
        url.to_string()
    }

    /// Challenge options naming this document (RFC 9728 §5.1).
    pub fn challenge_options(&self) -> ChallengeOptions {
        ChallengeOptions::default().resource_metadata(self.metadata_url())
    }

    /// The JSON document (RFC 9728 §2): `resource`, `authorization_servers`,
    /// `scopes_supported` (when set), `bearer_methods_supported`
    /// (`["header"]`: tokens are read from the `Authorization` header only),
    /// `dpop_signing_alg_values_supported` and
    /// `dpop_bound_access_tokens_required`.
    pub fn document(&self) -> Value {
        let mut doc = json!({
            "resource": self.resource(),
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": self.bearer_methods,
            "dpop_signing_alg_values_supported": self.dpop_algs,
            "dpop_bound_access_tokens_required": self.dpop_required,
        });
        if !self.scopes.is_empty() {
            doc["scopes_supported"] = json!(self.scopes);
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9728_3_1_well_known_url_is_inserted_before_the_path() {
        let r = ProtectedResource::new("https://resource.example.com").unwrap();
        assert_eq!(r.metadata_url(), "https://resource.example.com/.well-known/oauth-protected-resource");
        assert_eq!(r.document()["resource"], "https://resource.example.com");
        let r = ProtectedResource::new("https://resource.example.com/resource1/").unwrap();
        assert_eq!(r.metadata_url(), "https://resource.example.com/.well-known/oauth-protected-resource/resource1");
        for bad in ["http://api.example", "https://api.example/?q=1", "https://api.example/#f", "not a url"] {
            assert_eq!(ProtectedResource::new(bad).unwrap_err().code(), "invalid_config", "{bad}");
        }
    }
}
