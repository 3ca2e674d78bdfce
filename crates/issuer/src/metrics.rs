//! Prometheus text metrics for `GET /metrics`, through the `metrics` facade
//! and the Prometheus exporter's recorder. The recorder is kept in the app
//! state (no global recorder), so several apps in one process count apart.
//!
//! Issuing a token is one atomic increment: the counter handle of each
//! (client, alg, kid) sits in a lock-free map (`arc-swap`), filled the first
//! time the triple is seen. The gauges that describe the key set are set at
//! render time on a recorder of their own, built for that render, so a key
//! that left the set leaves no stale series behind.

use std::collections::HashMap;

use arc_swap::ArcSwap;
use jwks_jose::{Algorithm, clock::UnixTime};
use metrics::{Counter, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::keys::Snapshot;

const TOKENS_ISSUED: &str = "jwks_issuer_tokens_issued_total";
const TOKEN_ERRORS: &str = "jwks_issuer_token_errors_total";
const ROTATION_FAILURES: &str = "jwks_issuer_rotation_failures_total";
const KEY_STATE: &str = "jwks_issuer_key_state";
const KEY_AGE: &str = "jwks_issuer_key_age_seconds";
const NEXT_ROTATION: &str = "jwks_issuer_next_rotation_timestamp_seconds";
const ROTATION_LEADER: &str = "jwks_issuer_rotation_leader";
const DAMAGED: &str = "jwks_issuer_damaged_key_files";

/// The RFC 6749 (and RFC 9449) codes that `OAuthError::code` returns,
/// registered up front; a code not listed here is registered when first
/// seen.
const ERROR_CODES: [&str; 9] = [
    "invalid_request",
    "invalid_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "temporarily_unavailable",
    "server_error",
];

/// Counter handles of tokens issued: by (kid, algorithm), a short list (the
/// keys the issuer signed with in this process's life, compared without
/// hashing the long kid), then by client.
type IssuedMap = Vec<(Algorithm, String, HashMap<String, Counter>)>;

/// The issuer's counters.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    issued: ArcSwap<IssuedMap>,
    errors: ArcSwap<HashMap<&'static str, Counter>>,
    rotation_failures: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

impl Metrics {
    /// Counters on a recorder of their own.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        recorder.describe_counter(KeyName::from_const_str(TOKENS_ISSUED), None, "Access tokens issued.".into());
        recorder.describe_counter(
            KeyName::from_const_str(TOKEN_ERRORS),
            None,
            "Token endpoint errors by RFC 6749 code.".into(),
        );
        recorder.describe_counter(KeyName::from_const_str(ROTATION_FAILURES), None, "Failed rotation steps.".into());
        let errors = ERROR_CODES.iter().map(|code| (*code, error_counter(&recorder, code))).collect();
        let rotation_failures = recorder.register_counter(&Key::from_static_name(ROTATION_FAILURES), &metadata());
        Metrics {
            recorder,
            handle,
            issued: ArcSwap::from_pointee(IssuedMap::new()),
            errors: ArcSwap::from_pointee(errors),
            rotation_failures,
        }
    }

    /// Counts a token issued: once the triple has been seen, a lock-free
    /// lookup and an atomic increment, no allocation.
    pub fn token_issued(&self, client: &str, alg: Algorithm, kid: &str) {
        let seen = self.issued.load();
        let cached =
            seen.iter().find(|(a, k, _)| *a == alg && k == kid).and_then(|(_, _, by_client)| by_client.get(client));
        if let Some(c) = cached {
            c.increment(1);
            return;
        }
        drop(seen);
        let labels = vec![
            Label::new("client_id", client.to_string()),
            Label::new("alg", alg.to_string()),
            Label::new("kid", kid.to_string()),
        ];
        // The recorder hands out one shared handle per key, so two threads
        // that both miss count into the same counter.
        let counter = self.recorder.register_counter(&Key::from_parts(TOKENS_ISSUED, labels), &metadata());
        counter.increment(1);
        self.issued.rcu(|map| {
            let mut map = IssuedMap::clone(map);
            match map.iter_mut().find(|(a, k, _)| *a == alg && k == kid) {
                Some((_, _, by_client)) => {
                    by_client.entry(client.to_string()).or_insert_with(|| counter.clone());
                }
                None => map.push((alg, kid.to_string(), HashMap::from([(client.to_string(), counter.clone())]))),
            }
            map
        });
    }

    /// Counts a token error by its RFC 6749 code.
    pub fn token_error(&self, code: &'static str) {
        if let Some(c) = self.errors.load().get(code) {
            c.increment(1);
            return;
        }
        let counter = error_counter(&self.recorder, code);
        counter.increment(1);
        self.errors.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.entry(code).or_insert_with(|| counter.clone());
            map
        });
    }

    /// Counts a failed rotation step.
    pub fn rotation_failed(&self) {
        self.rotation_failures.increment(1);
    }

    /// Renders every metric in the Prometheus text format: the counters,
    /// then the gauges of the key set as they are `now`. `leader` is whether
    /// this process leads rotation.
    pub fn render(&self, snapshot: &Snapshot, leader: bool, now: UnixTime) -> String {
        let mut out = self.handle.render();
        out.push_str(&key_set_gauges(snapshot, leader, now));
        out
    }
}

fn error_counter(recorder: &PrometheusRecorder, code: &'static str) -> Counter {
    recorder
        .register_counter(&Key::from_parts(TOKEN_ERRORS, vec![Label::from_static_parts("error", code)]), &metadata())
}

/// The gauges that describe the key set, on a recorder built for this
/// render.
fn key_set_gauges(snapshot: &Snapshot, leader: bool, now: UnixTime) -> String {
    let r = PrometheusBuilder::new().build_recorder();
    let describe = |name: &'static str, help: &'static str| {
        r.describe_gauge(KeyName::from_const_str(name), None, SharedString::const_str(help));
    };
    describe(KEY_STATE, "1 for the state each key is in.");
    describe(KEY_AGE, "Seconds since the key was published.");
    describe(NEXT_ROTATION, "When the next signing key change is due.");
    describe(ROTATION_LEADER, "1 when this replica plans rotation (always 1 with a folder store).");
    describe(DAMAGED, "Key files that did not load.");
    let md = metadata();
    for k in &snapshot.keys {
        let t = &k.meta.timeline;
        let kid = Label::new("kid", k.meta.kid.clone());
        let alg = Label::new("alg", k.meta.alg.to_string());
        let state = Label::new("state", t.state(now).to_string());
        r.register_gauge(&Key::from_parts(KEY_STATE, vec![kid.clone(), alg.clone(), state]), &md).set(1.0);
        #[allow(clippy::cast_precision_loss)] // ages in seconds are far below 2^53
        r.register_gauge(&Key::from_parts(KEY_AGE, vec![kid, alg]), &md)
            .set(now.saturating_duration_since(t.published).as_secs() as f64);
    }
    if let Some(t) = snapshot.next_change {
        #[allow(clippy::cast_precision_loss)] // Unix seconds are far below 2^53
        r.register_gauge(&Key::from_static_name(NEXT_ROTATION), &md).set(t.as_secs() as f64);
    }
    r.register_gauge(&Key::from_static_name(ROTATION_LEADER), &md).set(f64::from(u8::from(leader)));
    #[allow(clippy::cast_precision_loss)] // a count of files
    r.register_gauge(&Key::from_static_name(DAMAGED), &md).set(snapshot.damaged.len() as f64);
    r.handle().render()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use super::*;

    fn sample(text: &str, series: &str) -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Threads that all miss the cache for one new triple at once count
    /// into one counter: no count is lost to the race.
    #[test]
    fn first_counts_of_a_triple_from_many_threads_are_not_lost() {
        let m = Metrics::new();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        m.token_issued("svc", Algorithm::ES256, "k1");
                        m.token_issued("svc", Algorithm::RS256, "k2");
                        m.token_error("invalid_client");
                    }
                });
            }
        });
        let text = m.handle.render();
        assert_eq!(
            sample(&text, r#"jwks_issuer_tokens_issued_total{client_id="svc",alg="ES256",kid="k1"}"#),
            Some(8000)
        );
        assert_eq!(
            sample(&text, r#"jwks_issuer_tokens_issued_total{client_id="svc",alg="RS256",kid="k2"}"#),
            Some(8000)
        );
        assert_eq!(sample(&text, r#"jwks_issuer_token_errors_total{error="invalid_client"}"#), Some(8000));
        assert_eq!(m.issued.load().len(), 2, "one cache entry per (alg, kid)");
    }

    /// A client id with a quote or a newline stays one well-formed label.
    #[test]
    fn a_client_id_with_a_quote_is_escaped_in_its_label() {
        let m = Metrics::new();
        m.token_issued("a\"b\nc", Algorithm::ES256, "k1");
        let text = m.handle.render();
        assert_eq!(
            sample(&text, r#"jwks_issuer_tokens_issued_total{client_id="a\"b\nc",alg="ES256",kid="k1"}"#),
            Some(1),
            "{text}"
        );
    }

    /// A code outside the registered set still counts.
    #[test]
    fn an_unlisted_error_code_is_counted_when_first_seen() {
        let m = Metrics::new();
        m.token_error("some_new_code");
        m.token_error("some_new_code");
        let text = m.handle.render();
        assert_eq!(sample(&text, r#"jwks_issuer_token_errors_total{error="some_new_code"}"#), Some(2), "{text}");
    }

    #[test]
    fn rotation_failures_count() {
        let m = Metrics::new();
        m.rotation_failed();
        assert_eq!(sample(&m.handle.render(), "jwks_issuer_rotation_failures_total"), Some(1));
    }
}
