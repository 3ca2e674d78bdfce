//! The `jwks-verify` binary: one long-lived process, one JSON line per
//! token, flushed at once; exit 0, 1 or 2.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use jwks_verifier::SystemClock;
use serde_json::{Value, json};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_jwks-verify");

fn now() -> u64 {
    SystemClock.now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn spawn(jwks_uri: &str) -> std::process::Child {
    Command::new(BIN)
        .args(["--issuer", ISS, "--jwks-uri", jwks_uri, "--audience", "other", "--audience", AUD])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_answers_each_line_at_once_and_exits_1_on_any_invalid_token() {
    let (k1, k2) = (es_key(), es_key());
    let mock = MockJwks::start(&[&k1]).await;
    let url = mock.url();
    let good = sign(&k1, &header(&k1), &claims_at(now()));
    let rotated = sign(&k2, &header(&k2), &claims_at(now()));
    let mut expired_claims = claims_at(now());
    expired_claims["exp"] = json!(now() - 3600);
    let expired = sign(&k1, &header(&k1), &expired_claims);
    let kid1 = k1.kid().to_owned();
    let set_k2 = move || mock.set_keys(&[&k1, &k2]);

    let status = tokio::task::spawn_blocking(move || {
        let mut child = spawn(&url);
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ask = |line: &str| -> Value {
            writeln!(stdin, "{line}").unwrap();
            stdin.flush().unwrap();
            let mut out = String::new();
            stdout.read_line(&mut out).unwrap();
            serde_json::from_str(&out).unwrap()
        };
        // Each answer is read before the next token is written: output is flushed per line.
        let v = ask(&good);
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!((v["kid"].as_str(), v["alg"].as_str()), (Some(kid1.as_str()), Some("ES256")));
        assert_eq!(v["claims"]["sub"], "user-1");
        let v = ask(&expired);
        assert_eq!((v["valid"].as_bool(), v["error"].as_str()), (Some(false), Some("expired")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("expired"));
        let v = ask("garbage");
        assert_eq!(v["error"], "malformed");
        set_k2();
        let v = ask(&rotated);
        assert_eq!(v["valid"], true, "a rotated key is fetched by the same process: {v}");
        drop(stdin);
        child.wait().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exits_0_when_every_token_is_valid_and_2_on_bad_arguments() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let url = mock.url();
    let good = sign(&k1, &header(&k1), &claims_at(now()));
    let status = tokio::task::spawn_blocking(move || {
        let mut child = spawn(&url);
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{good}\n\n{good}").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        assert_eq!(lines.len(), 2, "blank lines are skipped");
        out.status
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0));

    for args in [
        vec!["--audience", AUD],
        vec!["--issuer", ISS],
        vec!["--issuer", ISS, "--audience", AUD, "--alg", "HS256"],
        vec!["--issuer", ISS, "--audience", AUD, "--leeway", "soon"],
        vec!["--issuer", ISS, "--audience", AUD, "--jwks-uri", "http://keys.example/jwks"],
    ] {
        let out = Command::new(BIN).args(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
