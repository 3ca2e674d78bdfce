//! `/metrics` (issue 13, "One metrics idiom"): the exposition parses with the
//! Prometheus client's own text parser, one family per metric with its type,
//! and each app counts on its own recorder.

use std::io::Write as _;

use crate::support::{Fixture, SECRET, basic, cc};

/// The families the README documents, with their Prometheus type.
const FAMILIES: [(&str, &str); 8] = [
    ("jwks_issuer_tokens_issued", "counter"),
    ("jwks_issuer_token_errors", "counter"),
    ("jwks_issuer_key_state", "gauge"),
    ("jwks_issuer_key_age_seconds", "gauge"),
    ("jwks_issuer_next_rotation_timestamp_seconds", "gauge"),
    ("jwks_issuer_rotation_failures", "counter"),
    ("jwks_issuer_rotation_leader", "gauge"),
    ("jwks_issuer_damaged_key_files", "gauge"),
];

/// Prints `name type samples` per family the parser finds, one a line.
const PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    print(f.name, f.type, len(f.samples))
"#;

fn python() -> String {
    std::env::var("JWKS_E2E_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether `prometheus_client` imports; panics under CI when it does not,
/// and says loudly that the test is skipped otherwise.
fn prometheus_client_ready(test: &str) -> bool {
    let probe = std::process::Command::new(python()).args(["-c", "import prometheus_client"]).output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!("the Python library is missing: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("{} cannot run: {e}", python()),
    };
    assert!(std::env::var_os("CI").is_none(), "{test} under CI needs python3 with prometheus_client: {problem}");
    eprintln!("\n!!!!!!!! SKIPPED {test}: {problem}");
    eprintln!("!!!!!!!! install with: python3 -m pip install -r tests/interop/requirements.txt\n");
    false
}

/// The families of `text` as `prometheus_client` parses them: (name, type,
/// sample count).
fn parse_with_prometheus_client(text: &str) -> Vec<(String, String, usize)> {
    let mut child = std::process::Command::new(python())
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut w = l.split(' ');
            let name = w.next().unwrap().to_string();
            let kind = w.next().unwrap().to_string();
            (name, kind, w.next().unwrap().parse().unwrap())
        })
        .collect()
}

async fn scrape(f: &Fixture) -> String {
    let m = f.get("/metrics").await;
    assert_eq!(m.status.as_u16(), 200);
    String::from_utf8(m.body.to_vec()).unwrap()
}

/// Before: the key-state and key-age families interleaved, and the parser
/// split them into 12 untyped families.
#[actix_web::test]
async fn metrics_exposition_parses_into_one_typed_family_per_metric() {
    let test = "metrics_exposition_parses_into_one_typed_family_per_metric";
    if !prometheus_client_ready(test) {
        return;
    }
    let f = Fixture::new();
    assert_eq!(f.token(&cc(""), Some(&basic("svc", SECRET))).await.status.as_u16(), 200);
    f.token(&cc(""), Some(&basic("svc", "wrong"))).await.assert_error(401, "invalid_client");
    let text = scrape(&f).await;
    let families = parse_with_prometheus_client(&text);
    for (name, kind) in FAMILIES {
        let found: Vec<_> = families.iter().filter(|(n, _, _)| n == name).collect();
        assert_eq!(found.len(), 1, "{name} once: {families:?}\n{text}");
        assert_eq!(found[0].1, kind, "{name} is a {kind}: {families:?}\n{text}");
        assert!(found[0].2 >= 1, "{name} has samples: {families:?}\n{text}");
    }
    assert!(families.iter().all(|(_, kind, _)| kind != "unknown"), "no untyped family: {families:?}\n{text}");
    assert_eq!(families.len(), FAMILIES.len(), "no other family: {families:?}\n{text}");
}

#[actix_web::test]
async fn two_apps_in_one_process_count_on_their_own_recorders() {
    let a = Fixture::new();
    let b = Fixture::new();
    assert_eq!(a.token(&cc(""), Some(&basic("svc", SECRET))).await.status.as_u16(), 200);
    assert_eq!(a.token(&cc(""), Some(&basic("svc", SECRET))).await.status.as_u16(), 200);
    a.token(&cc(""), Some(&basic("svc", "wrong"))).await.assert_error(401, "invalid_client");
    let (ta, tb) = (scrape(&a).await, scrape(&b).await);
    let es = a.state.keyring.snapshot().signer(jwks_jose::Algorithm::ES256).unwrap().meta.kid.clone();
    let issued = format!("jwks_issuer_tokens_issued_total{{client_id=\"svc\",alg=\"ES256\",kid=\"{es}\"}} 2");
    assert!(ta.contains(&issued), "{ta}");
    assert!(ta.contains("jwks_issuer_token_errors_total{error=\"invalid_client\"} 1"), "{ta}");
    assert!(!tb.contains("jwks_issuer_tokens_issued_total{"), "{tb}");
    assert!(tb.contains("jwks_issuer_token_errors_total{error=\"invalid_client\"} 0"), "{tb}");
}

#[actix_web::test]
async fn every_error_code_is_exposed_before_its_first_error() {
    let f = Fixture::new();
    let text = scrape(&f).await;
    for code in ["invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope", "server_error"] {
        assert!(text.contains(&format!("jwks_issuer_token_errors_total{{error=\"{code}\"}} 0")), "{code}: {text}");
    }
}
