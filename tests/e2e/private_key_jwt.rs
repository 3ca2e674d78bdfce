//! `private_key_jwt` end to end (issue 8): a client whose public key is in
//! a `jwks_file` beside the config authenticates to the real issuer with a
//! signed assertion, and the `jwks-verify` CLI accepts the access token.

use jwks_e2e::{AUDIENCE, Issuer, IssuerOptions};
use jwks_jose::{Algorithm, JwkSet, SigningKey, compact};

use crate::common::{VerifyCli, http};

const CLIENT: &str = "e2e-kjwt";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn assertion(key: &SigningKey, aud: &str, jti: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({"iss": CLIENT, "sub": CLIENT, "aud": aud, "iat": now, "exp": now + 60, "jti": jti});
    let header = serde_json::json!({"alg": key.algorithm().as_str(), "kid": key.kid(), "typ": "JWT"});
    compact::sign(key, header.to_string().as_bytes(), claims.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn a_private_key_jwt_client_gets_a_token_that_jwks_verify_accepts() {
    let es = SigningKey::from_pkcs8(Algorithm::ES256, &SigningKey::generate(Algorithm::ES256, 2048).unwrap()).unwrap();
    let rs = SigningKey::from_pkcs8(Algorithm::RS256, &SigningKey::generate(Algorithm::RS256, 2048).unwrap()).unwrap();
    let set = JwkSet { keys: vec![es.public_jwk(), rs.public_jwk()] };
    let issuer = Issuer::start(&IssuerOptions {
        extra_toml: format!(
            "\n[[clients]]\nid = \"{CLIENT}\"\njwks_file = \"client-jwks.json\"\nscopes = [\"read\"]\naudiences = [\"{AUDIENCE}\"]\n"
        ),
        files: vec![("client-jwks.json".into(), serde_json::to_string(&set).unwrap())],
        ..IssuerOptions::default()
    });
    let check = issuer.cli(&["check-config"]);
    let listing = String::from_utf8_lossy(&check.stdout);
    assert!(listing.lines().any(|l| l.contains(CLIENT) && l.contains("private_key_jwt")), "{listing}");

    let http = http();
    let mut cli = VerifyCli::start(&issuer, &[]);
    for (i, key) in [&es, &rs].into_iter().enumerate() {
        // draft-ietf-oauth-rfc7523bis: the issuer identifier is the audience.
        let a = assertion(key, &issuer.url, &format!("jti-{i}"));
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", a.as_str()),
        ];
        let resp = http.post(issuer.token_endpoint()).form(&form).send().await.unwrap();
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().unwrap();
        let verdict = cli.verify(token).await;
        assert_eq!(verdict["valid"], true, "{verdict}");
        assert_eq!(verdict["claims"]["client_id"], CLIENT);
        assert_eq!(verdict["claims"]["scope"], "read");

        // The same assertion again is a replay.
        let resp = http.post(issuer.token_endpoint()).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
}
