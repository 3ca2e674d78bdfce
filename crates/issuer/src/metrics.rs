//! Prometheus text metrics for `GET /metrics`, kept in the app state (no
//! global recorder).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use jwks_jose::Algorithm;

use crate::{clock::UnixTime, keys::Snapshot};

/// The issuer's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    issued: Mutex<BTreeMap<(String, Algorithm, String), u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    rotation_failures: AtomicU64,
}

impl Metrics {
    /// Counts a token issued.
    pub fn token_issued(&self, client: &str, alg: Algorithm, kid: &str) {
        if let Ok(mut m) = self.issued.lock() {
            match m.get_mut(&(client.to_string(), alg, kid.to_string())) {
                Some(n) => *n += 1,
                None => {
                    m.insert((client.to_string(), alg, kid.to_string()), 1);
                }
            }
        }
    }

    /// Counts a token error by its RFC 6749 code.
    pub fn token_error(&self, code: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// Counts a failed rotation step.
    pub fn rotation_failed(&self) {
        self.rotation_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every metric in the Prometheus text format.
    /// `leader` is whether this process leads rotation.
    pub fn render(&self, snapshot: &Snapshot, leader: bool, now: UnixTime) -> String {
        let mut out = String::new();
        out.push_str("# HELP jwks_issuer_tokens_issued_total Access tokens issued.\n");
        out.push_str("# TYPE jwks_issuer_tokens_issued_total counter\n");
        if let Ok(m) = self.issued.lock() {
            for ((client, alg, kid), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "jwks_issuer_tokens_issued_total{{client_id=\"{}\",alg=\"{alg}\",kid=\"{kid}\"}} {n}",
                    escape(client)
                );
            }
        }
        out.push_str("# HELP jwks_issuer_token_errors_total Token endpoint errors by RFC 6749 code.\n");
        out.push_str("# TYPE jwks_issuer_token_errors_total counter\n");
        if let Ok(m) = self.errors.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(out, "jwks_issuer_token_errors_total{{error=\"{code}\"}} {n}");
            }
        }
        out.push_str("# HELP jwks_issuer_key_state 1 for the state each key is in.\n");
        out.push_str("# TYPE jwks_issuer_key_state gauge\n");
        out.push_str("# HELP jwks_issuer_key_age_seconds Seconds since the key was published.\n");
        out.push_str("# TYPE jwks_issuer_key_age_seconds gauge\n");
        for k in &snapshot.keys {
            let t = &k.meta.timeline;
            let _ = writeln!(
                out,
                "jwks_issuer_key_state{{kid=\"{}\",alg=\"{}\",state=\"{}\"}} 1",
                k.meta.kid,
                k.meta.alg,
                t.state(now)
            );
            let _ = writeln!(
                out,
                "jwks_issuer_key_age_seconds{{kid=\"{}\",alg=\"{}\"}} {}",
                k.meta.kid,
                k.meta.alg,
                now.saturating_sub(t.published)
            );
        }
        out.push_str("# HELP jwks_issuer_next_rotation_timestamp_seconds When the next signing key change is due.\n");
        out.push_str("# TYPE jwks_issuer_next_rotation_timestamp_seconds gauge\n");
        if let Some(t) = snapshot.next_change {
            let _ = writeln!(out, "jwks_issuer_next_rotation_timestamp_seconds {t}");
        }
        out.push_str("# HELP jwks_issuer_rotation_failures_total Failed rotation steps.\n");
        out.push_str("# TYPE jwks_issuer_rotation_failures_total counter\n");
        let _ = writeln!(out, "jwks_issuer_rotation_failures_total {}", self.rotation_failures.load(Ordering::Relaxed));
        out.push_str(
            "# HELP jwks_issuer_rotation_leader 1 when this replica plans rotation (always 1 with a folder store).\n",
        );
        out.push_str("# TYPE jwks_issuer_rotation_leader gauge\n");
        let _ = writeln!(out, "jwks_issuer_rotation_leader {}", u8::from(leader));
        out.push_str("# HELP jwks_issuer_damaged_key_files Key files that did not load.\n");
        out.push_str("# TYPE jwks_issuer_damaged_key_files gauge\n");
        let _ = writeln!(out, "jwks_issuer_damaged_key_files {}", snapshot.damaged.len());
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
