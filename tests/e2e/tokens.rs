//! (a) A token over HTTP with each client authentication method, for each
//! algorithm, verified against the served JWKS by jsonwebtoken and by the
//! `jwks_verifier` library.

use jwks_e2e::{AUDIENCE, ES_CLIENT, Issuer, IssuerOptions, RS_CLIENT};
use jwks_verifier::Verifier;

use crate::common::{Auth, alg_of, http, jwks, kid_of, token_response, verify_with_jsonwebtoken};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_by_basic_and_post_verifies_with_jsonwebtoken_and_the_library() {
    let issuer = Issuer::start(&IssuerOptions::default());
    let http = http();
    let jwks = jwks(&http, &issuer).await;
    assert_eq!(jwks.keys.len(), 2, "one ES256 and one RS256 key on first start");
    // Discovery through RFC 8414 metadata, with every default setting.
    let verifier = Verifier::builder().issuer(issuer.url.clone()).audience(AUDIENCE).build().await.expect("verifier");

    for (client, alg) in [(ES_CLIENT, "ES256"), (RS_CLIENT, "RS256")] {
        let active = issuer.kid(alg, "active").expect("an active key per algorithm");
        for auth in [Auth::Basic, Auth::Post] {
            let body = token_response(&http, &issuer, client, auth).await;
            assert_eq!(body["token_type"], "Bearer", "{body}");
            assert_eq!(body["scope"], "read write", "{body}");
            assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0 && s <= 300), "{body}");
            let token = body["access_token"].as_str().expect("access_token");
            assert_eq!(alg_of(token), alg, "{client} signs with {alg}");
            assert_eq!(kid_of(token), active, "signed by the active key of `keys list`");

            let claims = verify_with_jsonwebtoken(token, &jwks, &issuer.url);
            assert_eq!(claims["iss"], issuer.url.as_str());
            assert_eq!(claims["sub"], client);
            assert_eq!(claims["client_id"], client);
            assert_eq!(claims["aud"], AUDIENCE);
            assert_eq!(claims["scope"], "read write");
            assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22), "jti of at least 128 bits: {claims}");

            let ours =
                verifier.verify(token).await.unwrap_or_else(|e| panic!("library rejects {client}/{auth:?}: {e}"));
            assert_eq!(ours.sub.as_deref(), Some(client));
            assert!(ours.has_scope("read") && ours.has_scope("write"));

            // A flipped signature byte is refused by both.
            let (head, sig) = token.rsplit_once('.').expect("three parts");
            let flipped = if sig.starts_with('A') { "B" } else { "A" };
            let forged = format!("{head}.{flipped}{}", &sig[1..]);
            let err = verifier.verify(&forged).await.expect_err("forged signature");
            assert_eq!(err.code(), "bad_signature", "{err}");
        }
    }

    // An unknown client and a wrong secret get the same 401 invalid_client.
    for (id, secret) in [(ES_CLIENT, "wrong-secret"), ("no-such-client", jwks_e2e::CLIENT_SECRET)] {
        let resp = http
            .post(issuer.token_endpoint())
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("POST /token");
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key("www-authenticate"), "Basic was tried: WWW-Authenticate");
        let body: serde_json::Value = resp.json().await.expect("JSON error");
        assert_eq!(body["error"], "invalid_client", "{body}");
    }
}
