//! One table of requests and the answers they must get, run against the
//! actix extractors and against the tower layer with the axum extractors:
//! the two frameworks cannot drift apart.

use jwks_jose::SigningKey;
use jwks_verifier::{ManualClock, MultiVerifier, ProtectedResource, PublicBaseUrl, Scope, Verifier};
use serde_json::{Value, json};

use crate::{dpop::bound_token, dpop::proof_at, support::*};

/// The base URL both apps are told they are addressed by.
pub(crate) const BASE: &str = "https://api.example.test";

pub(crate) struct Admin;
impl Scope for Admin {
    const NAME: &'static str = "admin";
}

/// A request: method, path and headers.
pub(crate) struct Call {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
}

/// What came back.
#[derive(Debug, PartialEq)]
pub(crate) struct Got {
    pub(crate) status: u16,
    pub(crate) challenges: Vec<String>,
    pub(crate) body: Value,
}

/// One case: a name, the request, and the answer expected.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) call: Call,
    pub(crate) status: u16,
    pub(crate) challenges: Vec<String>,
    /// The body's `error` member (or, for 200s, the body's `sub`).
    pub(crate) body: Value,
}

const BEARER_ANY: &str = "Bearer";
const DPOP_ANY: &str = r#"DPoP algs="ES256 RS256""#;

fn invalid(description: &str) -> Vec<String> {
    vec![format!(r#"Bearer error="invalid_token", error_description="{description}""#)]
}

fn get(path: &'static str, headers: Vec<(&'static str, String)>) -> Call {
    Call { method: "GET", path, headers }
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

/// The keys and clock of a table run.
pub(crate) struct Fixture {
    pub(crate) key: SigningKey,
    pub(crate) client: SigningKey,
    pub(crate) mock: MockJwks,
    pub(crate) clock: ManualClock,
}

impl Fixture {
    pub(crate) async fn new() -> Fixture {
        let key = es_key();
        let mock = MockJwks::start(&[&key]).await;
        Fixture { key, client: es_key(), mock, clock: ManualClock::new(start_time()) }
    }

    pub(crate) async fn verifier(&self) -> Verifier {
        self.mock.builder(&self.clock).build().await.unwrap()
    }
}

pub(crate) fn base() -> PublicBaseUrl {
    PublicBaseUrl::new(BASE).unwrap()
}

/// Every case. Each runner serves `/me` (required claims), `/admin`
/// (scope `admin`) and `/maybe` (optional claims: `anonymous` or the sub).
pub(crate) fn cases(f: &Fixture) -> Vec<Case> {
    let good = token(&f.key);
    let mut expired = claims();
    expired["exp"] = json!(NOW - 3600);
    let expired = sign(&f.key, &header(&f.key), &expired);
    let mut other_aud = claims();
    other_aud["aud"] = json!("https://another-api.example.test");
    let other_aud = sign(&f.key, &header(&f.key), &other_aud);
    let bound = bound_token(&f.key, &f.client);
    let proof = proof_at(&f.client, "GET", &format!("{BASE}/me"), Some(&bound), NOW);
    let ok = |sub: &str| json!({ "sub": sub });
    let err = |code: &str| json!({ "error": code });
    vec![
        Case {
            name: "missing header",
            call: get("/me", vec![]),
            status: 401,
            challenges: vec![BEARER_ANY.into(), DPOP_ANY.into()],
            body: json!({}),
        },
        Case {
            name: "another scheme is no token",
            call: get("/me", vec![("Authorization", "Basic dXNlcjpwYXNz".into())]),
            status: 401,
            challenges: vec![BEARER_ANY.into(), DPOP_ANY.into()],
            body: json!({}),
        },
        Case {
            name: "bad token",
            call: get("/me", bearer("not.a.token")),
            status: 401,
            challenges: invalid("the access token is malformed"),
            body: err("invalid_token"),
        },
        Case {
            name: "expired",
            call: get("/me", bearer(&expired)),
            status: 401,
            challenges: invalid("the access token expired"),
            body: err("invalid_token"),
        },
        Case {
            name: "wrong audience",
            call: get("/me", bearer(&other_aud)),
            status: 401,
            challenges: invalid("the token is not meant for this resource"),
            body: err("invalid_token"),
        },
        Case { name: "valid bearer", call: get("/me", bearer(&good)), status: 200, challenges: vec![], body: ok("user-1") },
        Case {
            name: "missing scope",
            call: get("/admin", bearer(&good)),
            status: 403,
            challenges: vec![
                r#"Bearer error="insufficient_scope", error_description="the access token lacks the required scope", scope="admin""#
                    .into(),
            ],
            body: err("insufficient_scope"),
        },
        Case {
            name: "no token before any scope check",
            call: get("/admin", vec![]),
            status: 401,
            challenges: vec![BEARER_ANY.into(), DPOP_ANY.into()],
            body: json!({}),
        },
        Case {
            name: "dpop with proof",
            call: get("/me", vec![("Authorization", format!("DPoP {bound}")), ("DPoP", proof)]),
            status: 200,
            challenges: vec![],
            body: ok("user-1"),
        },
        Case {
            name: "dpop without proof",
            call: get("/me", vec![("Authorization", format!("DPoP {bound}"))]),
            status: 401,
            challenges: vec![
                r#"DPoP error="invalid_dpop_proof", error_description="malformed DPoP proof: the request has no DPoP header", algs="ES256 RS256""#
                    .into(),
            ],
            body: err("invalid_dpop_proof"),
        },
        Case {
            name: "dpop-bound token as bearer",
            call: get("/me", bearer(&bound)),
            status: 401,
            challenges: vec![
                r#"DPoP error="invalid_token", error_description="the access token is DPoP-bound: use the DPoP scheme with a proof", algs="ES256 RS256""#
                    .into(),
            ],
            body: err("invalid_token"),
        },
        Case {
            name: "optional auth without token",
            call: get("/maybe", vec![]),
            status: 200,
            challenges: vec![],
            body: ok("anonymous"),
        },
        Case {
            name: "optional auth with a token",
            call: get("/maybe", bearer(&good)),
            status: 200,
            challenges: vec![],
            body: ok("user-1"),
        },
        Case {
            name: "optional auth with a bad token",
            call: get("/maybe", bearer(&expired)),
            status: 401,
            challenges: invalid("the access token expired"),
            body: err("invalid_token"),
        },
    ]
}

/// Checks one answer against its case: status, challenges, and the body's
/// `error` (or `sub`) member.
pub(crate) fn check(runner: &str, case: &Case, got: &Got) {
    let member = if case.status == 200 { "sub" } else { "error" };
    let body = match got.body.get(member) {
        Some(v) => json!({ member: v }),
        None => json!({}),
    };
    assert_eq!(
        (got.status, &got.challenges, &body),
        (case.status, &case.challenges, &case.body),
        "{runner}: {}",
        case.name
    );
}

/// The RFC 9728 document both frameworks serve in the metadata test.
pub(crate) fn resource() -> ProtectedResource {
    ProtectedResource::new("https://api.example.test/mcp")
        .unwrap()
        .authorization_server(ISS)
        .scopes(["read", "admin"])
        .dpop_bound_access_tokens_required(true)
}

pub(crate) fn check_metadata(runner: &str, status: u16, content_type: &str, doc: &Value) {
    assert_eq!(status, 200, "{runner}");
    assert!(content_type.starts_with("application/json"), "{runner}: {content_type}");
    assert_eq!(
        doc,
        &json!({
            "resource": "https://api.example.test/mcp",
            "authorization_servers": [ISS],
            "scopes_supported": ["read", "admin"],
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": ["ES256", "RS256"],
            "dpop_bound_access_tokens_required": true,
        }),
        "{runner}"
    );
}

pub(crate) const METADATA_URL: &str = "https://api.example.test/.well-known/oauth-protected-resource/mcp";

/// A 401 and a 403 both name the metadata.
pub(crate) fn check_challenge_names_metadata(runner: &str, got: &Got) {
    assert!(!got.challenges.is_empty(), "{runner}");
    for c in &got.challenges {
        assert!(c.ends_with(&format!(r#"resource_metadata="{METADATA_URL}""#)), "{runner}: {c}");
    }
}

/// A verifier over two mock issuers for the multi-issuer runners.
pub(crate) async fn multi(f: &Fixture, other: &MockJwks) -> MultiVerifier {
    MultiVerifier::builder()
        .issuer(f.mock.builder(&f.clock))
        .issuer(
            Verifier::builder()
                .issuer("https://other-issuer.example.test")
                .audience(AUD)
                .jwks_uri(other.url())
                .clock(std::sync::Arc::new(f.clock.clone())),
        )
        .build()
        .await
        .unwrap()
}
