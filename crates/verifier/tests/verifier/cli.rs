//! The `jwks-verify` binary: one long-lived process, one JSON line per
//! token, flushed at once; exit 0, 1 or 2.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use jwks_verifier::SystemClock;
use serde_json::{Value, json};

use crate::support::*;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_jwks-verify");

/// Seconds since the epoch on the system clock (the binary reads it).
pub(crate) fn now() -> u64 {
    SystemClock.now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A running `jwks-verify` for issuer [`ISS`] and audience [`AUD`] over
/// `jwks_uri`: one line in, one JSON answer out. Blocking: use it inside
/// `spawn_blocking` when the JWKS server runs on the test's runtime.
pub(crate) struct Cli {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Cli {
    pub(crate) fn spawn(jwks_uri: &str) -> Cli {
        let mut child = Command::new(BIN)
            .args(["--issuer", ISS, "--jwks-uri", jwks_uri, "--audience", "other", "--audience", AUD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Cli { child, stdin, stdout }
    }

    /// Writes `line` and reads the answer to it: output is flushed per line.
    pub(crate) fn ask(&mut self, line: &str) -> Value {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut out = String::new();
        self.stdout.read_line(&mut out).unwrap();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("jwks-verify printed {out:?}: {e}"))
    }

    /// Writes `text` at once, closes stdin, and answers every line printed
    /// and the exit status.
    pub(crate) fn send_all(mut self, text: &str) -> (Vec<String>, std::process::ExitStatus) {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        drop(stdin);
        let lines = (&mut self.stdout).lines().map(Result::unwrap).collect();
        (lines, self.child.wait().unwrap())
    }

    /// Closes stdin and waits for the exit status.
    pub(crate) fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
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
        let mut cli = Cli::spawn(&url);
        let mut ask = |line: &str| cli.ask(line);
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
        cli.finish()
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
        let (lines, status) = Cli::spawn(&url).send_all(&format!("{good}\n{good}\r\n"));
        assert_eq!(lines.len(), 2, "one answer per line");
        status
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

/// Issue 14: `jwks-verify` said `valid` for tokens whose claims the
/// library's `Claims` type rejects (`sub` a number, `scope` an array). Its
/// verdict is now the library's, for each such token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_verdict_equals_library_for_bad_claim_types() {
    let key = es_key();
    let mock = MockJwks::start(&[&key]).await;
    let url = mock.url();
    let library =
        jwks_verifier::Verifier::builder().issuer(ISS).audience(AUD).build_offline(&jwk_set(&[&key])).unwrap();
    let mut tokens = Vec::new();
    for (claim, value) in
        [("sub", json!(42)), ("scope", json!(["read", "write"])), ("jti", json!({"a": 1})), ("client_id", json!(7))]
    {
        let mut c = claims_at(now());
        c[claim] = value;
        tokens.push((claim, sign(&key, &header(&key), &c)));
    }
    let good = sign(&key, &header(&key), &claims_at(now()));
    tokens.push(("none", good));
    let expected: Vec<Option<&'static str>> =
        tokens.iter().map(|(_, t)| library.verify(t).err().map(|e| e.code())).collect();
    assert_eq!(
        expected,
        [Some("invalid_claim"), Some("invalid_claim"), Some("invalid_claim"), Some("invalid_claim"), None]
    );
    let answers = tokio::task::spawn_blocking(move || {
        let mut cli = Cli::spawn(&url);
        let answers: Vec<Value> = tokens.iter().map(|(_, t)| cli.ask(t)).collect();
        cli.finish();
        answers
    })
    .await
    .unwrap();
    for (answer, expected) in answers.iter().zip(&expected) {
        match expected {
            Some(code) => assert_eq!(
                (answer["valid"].as_bool(), answer["error"].as_str()),
                (Some(false), Some(*code)),
                "{answer}"
            ),
            None => assert_eq!(answer["valid"], true, "{answer}"),
        }
    }
}

/// Issue 22: every input line gets one answer, in order: an empty line
/// is `malformed` (it used to be skipped, shifting the answers), and a
/// captured request with `method` or `url` but no `dpop` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_answers_every_line_empty_ones_as_malformed() {
    let key = es_key();
    let mock = MockJwks::start(&[&key]).await;
    let url = mock.url();
    let good = sign(&key, &header(&key), &claims_at(now()));
    let with_method = json!({"token": good, "method": "GET"}).to_string();
    let with_url = json!({"token": good, "url": "https://api.example.test/"}).to_string();
    let input = format!("{good}\n\n   \n{with_method}\n{with_url}\n{good}\n");
    let (lines, status) = tokio::task::spawn_blocking(move || Cli::spawn(&url).send_all(&input)).await.unwrap();
    let answers: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let codes: Vec<&str> = answers.iter().map(|a| a["error"].as_str().unwrap_or("valid")).collect();
    assert_eq!(codes, ["valid", "malformed", "malformed", "malformed", "malformed", "valid"], "{answers:?}");
    assert_eq!(status.code(), Some(1));
}

/// Issue 14: a line longer than the limit is answered, not buffered, and
/// the process goes on with the next line. The peak memory of the process
/// stays far below the line's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_long_line_is_answered_too_large_with_flat_memory() {
    let key = es_key();
    let mock = MockJwks::start(&[&key]).await;
    let url = mock.url();
    let good = sign(&key, &header(&key), &claims_at(now()));
    let (first, second, peak_kib) = tokio::task::spawn_blocking(move || {
        let mut cli = Cli::spawn(&url);
        let stdin = cli.stdin.as_mut().unwrap();
        let chunk = vec![b'a'; 1024 * 1024];
        for _ in 0..64 {
            stdin.write_all(&chunk).unwrap();
        }
        let first = cli.ask("");
        let second = cli.ask(&good);
        let status = std::fs::read_to_string(format!("/proc/{}/status", cli.child.id())).unwrap_or_default();
        let peak_kib: Option<u64> = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
        cli.finish();
        (first, second, peak_kib)
    })
    .await
    .unwrap();
    assert_eq!(first["error"], "token_too_large", "{first}");
    assert!(first["message"].as_str().unwrap().contains("67108864 bytes"), "{first}");
    assert_eq!(second["valid"], true, "{second}");
    if let Some(kib) = peak_kib {
        eprintln!("jwks-verify peak RSS after a 64 MiB line: {kib} KiB");
        assert!(kib < 48 * 1024, "peak RSS {kib} KiB for a 64 MiB line");
    }
}

/// `| head` that already exited: verdicts to a closed stdout end the run
/// quietly (no panic, no error text), with the status so far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_is_quiet_on_a_closed_pipe() {
    let k1 = es_key();
    let mock = MockJwks::start(&[&k1]).await;
    let url = mock.url();
    let good = sign(&k1, &header(&k1), &claims_at(now()));
    let out = tokio::task::spawn_blocking(move || {
        let mut outs = Vec::new();
        for (args, input) in [
            (vec!["--issuer", ISS, "--jwks-uri", url.as_str(), "--audience", AUD], format!("{good}\n{good}\n")),
            (vec!["--help"], String::new()),
            (vec!["--version"], String::new()),
        ] {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let mut child = Command::new(BIN)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(writer)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            outs.push((args.join(" "), child.wait_with_output().unwrap()));
        }
        outs
    })
    .await
    .unwrap();
    for (args, o) in out {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args}: {stderr}");
        assert!(stderr.is_empty(), "{args}: quiet, but said: {stderr}");
    }
}

/// `--help` has examples, the values `--alg` takes, the environment and
/// the exit codes.
#[test]
fn help_has_examples_values_environment_and_exit_codes() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needed in
        ["Examples:\n  ", "jwks-verify --issuer", "RUST_LOG", "NO_COLOR", "Exit codes:", "  0  ", "  1  ", "  2  "]
    {
        assert!(help.contains(needed), "`{needed}` missing:\n{help}");
    }
    for alg in jwks_verifier::Algorithm::ALL {
        assert!(help.contains(alg.as_str()), "--alg lists {alg}:\n{help}");
    }
}
