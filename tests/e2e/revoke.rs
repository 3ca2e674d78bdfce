//! (c) `keys revoke` of the signing kid: it leaves the JWKS at once, a
//! replacement signs, new tokens verify, and the verifiers reject tokens
//! of the revoked kid after their next refresh.

use std::time::{Duration, Instant};

use jwks_e2e::{AUDIENCE, ES_CLIENT, Issuer, IssuerOptions, RS_CLIENT};
use jwks_verifier::Verifier;

use crate::common::{Auth, VerifyCli, fast_verifier, http, kid_of, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_signing_kid_is_rejected_after_refresh_and_new_tokens_verify() {
    let issuer = Issuer::start(&IssuerOptions::default());
    let http = http();
    // One verifier with the default cache (it learns only on refresh() or an
    // unknown kid), one that follows max-age, and the CLI.
    let default_verifier =
        Verifier::builder().issuer(issuer.url.clone()).audience(AUDIENCE).build().await.expect("verifier");
    let fast = fast_verifier(&issuer).await;
    let mut cli = VerifyCli::start(&issuer, &["--refetch-cooldown", "1s"]);

    let old = token(&http, &issuer, ES_CLIENT, Auth::Basic).await;
    let rs_old = token(&http, &issuer, RS_CLIENT, Auth::Basic).await;
    let revoked = kid_of(&old);
    for t in [&old, &rs_old] {
        default_verifier.verify(t).await.expect("valid before the revocation");
        fast.verify(t).await.expect("valid before the revocation");
        assert_eq!(cli.verify(t).await["valid"], true);
    }

    let out = issuer.cli(&["keys", "revoke", &revoked]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"), "{}", String::from_utf8_lossy(&out.stdout));

    // The server reloads its key folder every second.
    let deadline = Instant::now() + Duration::from_secs(10);
    while issuer.served_kids().contains(&revoked) {
        assert!(Instant::now() < deadline, "revoked kid still served after 10 s:\n{}", issuer.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new = loop {
        let t = token(&http, &issuer, ES_CLIENT, Auth::Post).await;
        if kid_of(&t) != revoked {
            break t;
        }
        assert!(Instant::now() < deadline, "the server still signs with the revoked kid after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(issuer.served_kids().contains(&kid_of(&new)), "the replacement is published");

    // The new token's unknown kid makes every verifier refetch; the set it
    // gets no longer holds the revoked kid.
    default_verifier.verify(&new).await.expect("the replacement's token verifies");
    fast.verify(&new).await.expect("the replacement's token verifies");
    assert_eq!(cli.verify(&new).await["valid"], true, "jwks-verify accepts the replacement's token");

    default_verifier.refresh().await.expect("refresh");
    for (name, result) in [
        ("default library verifier", default_verifier.verify(&old).await.map(|_| ())),
        ("max-age library verifier", fast.verify(&old).await.map(|_| ())),
    ] {
        let err = result.expect_err(&format!("{name} accepts a token of the revoked kid"));
        assert_eq!(err.code(), "unknown_kid", "{name}: {err}");
    }
    let answer = cli.verify(&old).await;
    assert_eq!(answer["valid"], false, "jwks-verify accepts a token of the revoked kid: {answer}");
    assert_eq!(answer["error"], "unknown_kid", "{answer}");

    // The other algorithm's key was not touched.
    default_verifier.verify(&rs_old).await.expect("RS256 token unaffected");
    assert_eq!(cli.verify(&rs_old).await["valid"], true);
}
