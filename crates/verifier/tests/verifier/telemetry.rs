//! Counters through the `metrics` facade, captured by a thread-local recorder.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use jwks_verifier::{ManualClock, telemetry};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use crate::support::*;

#[derive(Default)]
struct Capture {
    counters: Mutex<BTreeMap<String, Arc<Count>>>,
}

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl Capture {
    fn get(&self, name: &str, outcome: Option<&str>) -> u64 {
        let key = match outcome {
            Some(o) => format!("{name}{{outcome={o}}}"),
            None => name.to_owned(),
        };
        self.counters.lock().unwrap().get(&key).map_or(0, |c| c.0.load(Ordering::SeqCst))
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let name =
            if labels.is_empty() { key.name().to_owned() } else { format!("{}{{{}}}", key.name(), labels.join(",")) };
        let count = self.counters.lock().unwrap().entry(name).or_default().clone();
        Counter::from_arc(count)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn counters_report_fetches_refetches_refusals_stale_keys_and_verifications() {
    let capture = Capture::default();
    // A current-thread runtime keeps every task (fetches included) on this
    // thread, where the local recorder is installed.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&capture, || {
        rt.block_on(async {
            let k1 = es_key();
            let mock = MockJwks::start(&[&k1]).await;
            mock.set_max_age(Some(60));
            let clock = ManualClock::new(start_time());
            let verifier = mock.builder(&clock).build().await.unwrap();
            verifier.verify(&token(&k1)).await.unwrap();
            assert!(verifier.verify(&token_with_kid(&k1, "new-1")).await.is_err());
            assert!(verifier.verify(&token_with_kid(&k1, "new-2")).await.is_err());
            mock.set_mode(Mode::Status(500));
            clock.advance(Duration::from_secs(61));
            verifier.verify(&token(&k1)).await.unwrap();
        })
    });
    assert_eq!(capture.get(telemetry::FETCHES, Some("ok")), 1);
    assert_eq!(capture.get(telemetry::FETCHES, Some("not_modified")), 1);
    assert_eq!(capture.get(telemetry::UNKNOWN_KID_REFETCHES, None), 1);
    assert_eq!(capture.get(telemetry::REFETCHES_REFUSED, None), 1);
    assert_eq!(capture.get(telemetry::STALE_KEYS_SERVED, None), 1);
    assert_eq!(capture.get(telemetry::VERIFICATIONS, Some("valid")), 2);
    assert_eq!(capture.get(telemetry::VERIFICATIONS, Some("unknown_kid")), 2);
}
