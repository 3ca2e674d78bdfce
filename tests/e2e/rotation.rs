//! (b) Key rotation end to end: tokens issued continuously while
//! `jwks-issuer keys rotate` and then `keys rotate --now` run from the CLI
//! against the running server's key folder. Every token is verified at once
//! by the library and by one long-lived `jwks-verify` process, and all of
//! them again at the end: zero failures, and the new kids sign.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use jwks_e2e::{ES_CLIENT, Issuer, IssuerOptions, RS_CLIENT};
use tokio::sync::Mutex;

use crate::common::{Auth, VerifyCli, alg_of, fast_verifier, http, kid_of, token};

/// What the issuing tasks saw.
#[derive(Debug, Default)]
struct Seen {
    tokens: Vec<String>,
    kids: BTreeMap<String, BTreeSet<String>>,
    failures: Vec<String>,
}

impl Seen {
    fn has_kid(&self, kid: &str) -> bool {
        self.kids.values().any(|k| k.contains(kid))
    }
}

/// The kids `keys rotate` printed (`created ALG KID (...)`).
fn created_kids(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("created "))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// Waits until tokens signed by every kid of `kids` were seen.
async fn wait_for_kids(seen: &Mutex<Seen>, kids: &[String], what: &str, issuer: &Issuer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        {
            let s = seen.lock().await;
            if kids.iter().all(|k| s.has_kid(k)) {
                return;
            }
            assert!(s.failures.is_empty(), "failed verifications during {what}: {:#?}", s.failures);
        }
        assert!(
            Instant::now() < deadline,
            "no token from the new kids {kids:?} within 20 s after {what}; keys: {:#?}\nlog:\n{}",
            issuer.keys(),
            issuer.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_from_the_cli_fails_no_valid_token() {
    let started = Instant::now();
    let issuer = Arc::new(Issuer::start(&IssuerOptions { publish_ahead: "2s", max_age: "1s", ..Default::default() }));
    let verifier = fast_verifier(&issuer).await;
    let cli = Arc::new(Mutex::new(VerifyCli::start(&issuer, &["--refetch-cooldown", "1s"])));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let first: Vec<String> = issuer.served_kids();

    // Two issuing tasks: ES256 by Basic, RS256 by post.
    let mut workers = Vec::new();
    for (client, auth) in [(ES_CLIENT, Auth::Basic), (RS_CLIENT, Auth::Post)] {
        let (issuer, verifier, cli, seen, stop) =
            (issuer.clone(), verifier.clone(), cli.clone(), seen.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let http = http();
            while !stop.load(Ordering::Relaxed) {
                let token = token(&http, &issuer, client, auth).await;
                let kid = kid_of(&token);
                let mut problems = Vec::new();
                if let Err(e) = verifier.verify(&token).await {
                    problems.push(format!("library: {} {e} (kid {kid})", e.code()));
                }
                let answer = cli.lock().await.verify(&token).await;
                if answer["valid"] != true {
                    problems.push(format!("jwks-verify: {answer} (kid {kid})"));
                }
                let mut s = seen.lock().await;
                s.kids.entry(alg_of(&token)).or_default().insert(kid);
                s.tokens.push(token);
                s.failures.extend(problems);
                drop(s);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    // A scheduled rotation: published now, signing after publish_ahead.
    let out = tokio::task::spawn_blocking({
        let issuer = issuer.clone();
        move || issuer.cli(&["keys", "rotate"])
    })
    .await
    .expect("keys rotate");
    let rotated = created_kids(&out.stdout);
    assert_eq!(rotated.len(), 2, "one successor per algorithm: {}", String::from_utf8_lossy(&out.stdout));
    wait_for_kids(&seen, &rotated, "keys rotate", &issuer).await;

    // Immediate rotations: each new key signs as soon as the server sees it,
    // so verifiers learn it through an unknown-kid refetch. One algorithm at
    // a time, more than the 1 s refetch cooldown apart: the server may load
    // a two-algorithm `rotate --now` half-written (one key per reload), and
    // a second new kid within the cooldown is refused by design.
    let mut immediate = Vec::new();
    for alg in ["ES256", "RS256"] {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let out = tokio::task::spawn_blocking({
            let issuer = issuer.clone();
            move || issuer.cli(&["keys", "rotate", "--now", "--alg", alg])
        })
        .await
        .expect("keys rotate --now");
        let kids = created_kids(&out.stdout);
        assert_eq!(kids.len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
        wait_for_kids(&seen, &kids, &format!("keys rotate --now --alg {alg}"), &issuer).await;
        immediate.extend(kids);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("issuing task");
    }
    let seen = std::mem::take(&mut *seen.lock().await);
    assert!(seen.failures.is_empty(), "failed verifications of valid tokens: {:#?}", seen.failures);

    // Every kid appeared in turn: the first keys, the rotated, the immediate.
    for kid in first.iter().chain(&rotated).chain(&immediate) {
        assert!(seen.has_kid(kid), "no token signed by {kid}: {:?}", seen.kids);
    }
    for alg in ["ES256", "RS256"] {
        assert_eq!(seen.kids.get(alg).map(BTreeSet::len), Some(3), "three {alg} kids in turn: {:?}", seen.kids);
    }

    // Tokens of the retired keys still verify: their keys stay published.
    let mut cli = cli.lock().await;
    let mut failures = Vec::new();
    for t in &seen.tokens {
        if let Err(e) = verifier.verify(t).await {
            failures.push(format!("library: {e} (kid {})", kid_of(t)));
        }
    }
    // jwks-verify once per kid (re-verifying hundreds of tokens through a pipe adds nothing).
    let mut per_kid = BTreeMap::new();
    for t in &seen.tokens {
        per_kid.entry(kid_of(t)).or_insert(t);
    }
    for t in per_kid.values() {
        let answer = cli.verify(t).await;
        if answer["valid"] != true {
            failures.push(format!("jwks-verify: {answer}"));
        }
    }
    assert!(failures.is_empty(), "tokens of retired keys rejected after the rotation: {failures:#?}");
    eprintln!(
        "rotation: {} tokens, {} kids, 0 failures, {:.1} s",
        seen.tokens.len(),
        per_kid.len(),
        started.elapsed().as_secs_f64()
    );
}
