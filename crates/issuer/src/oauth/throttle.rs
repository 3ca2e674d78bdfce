//! Brute-force limits on client authentication: token buckets keyed by
//! (client id, source) and by source alone, where a source is an address
//! or an IPv6 prefix ([`super::peer::limit_key`]).
//!
//! A request that will do secret or signature work takes one token from
//! each bucket *before* the work, in one step under one lock, so that
//! simultaneous guesses cannot all pass a check made before any of them is
//! charged; a request that then authenticates gets its tokens back. A
//! request whose credentials are already remembered as correct costs no
//! argon2 work and passes the buckets untouched, so guesses from a shared
//! address cannot lock the real client out.

use std::{collections::HashMap, net::IpAddr, sync::Mutex, time::Duration};

use jwks_jose::clock::UnixTime;

/// At most this many buckets of each kind are kept; refilled ones are
/// dropped first.
pub(crate) const MAX_BUCKETS: usize = 100_000;

/// `[throttle]` settings (their defaults are the configuration's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    /// Failures allowed at once per (client, source); 0 turns throttling
    /// off.
    pub burst: u32,
    /// One failure is forgiven per this interval, per (client, source).
    pub refill_every: Duration,
    /// Failures allowed at once per source.
    pub address_burst: u32,
    /// One failure is forgiven per this interval, per source.
    pub address_refill_every: Duration,
    /// IPv6 sources are counted per prefix of this many bits.
    pub ipv6_prefix: u8,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: UnixTime,
}

impl Bucket {
    fn level(&self, now: UnixTime, burst: u32, refill: Duration) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs() as f64;
        (self.tokens + elapsed / refill.as_secs_f64().max(0.001)).min(f64::from(burst))
    }
}

#[derive(Debug, Default)]
struct Buckets {
    pairs: HashMap<(String, Option<IpAddr>), Bucket>,
    sources: HashMap<Option<IpAddr>, Bucket>,
}

/// The buckets.
#[derive(Debug)]
pub(crate) struct Throttle {
    config: ThrottleConfig,
    buckets: Mutex<Buckets>,
}

/// The tokens one request took; give them back with [`Throttle::refund`]
/// when it authenticates.
#[derive(Debug)]
#[must_use = "refund the charge when the client authenticates"]
pub(crate) struct Charge {
    client: Option<String>,
    source: Option<IpAddr>,
    taken: bool,
}

/// Seconds until a bucket at `level` holds one token again.
fn retry_after(level: f64, refill: Duration) -> u64 {
    ((1.0 - level).max(0.0) * refill.as_secs_f64()).ceil().max(1.0) as u64
}

impl Throttle {
    /// Buckets with `config`.
    pub(crate) fn new(config: ThrottleConfig) -> Self {
        Throttle { config, buckets: Mutex::default() }
    }

    /// The settings.
    pub(crate) fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Takes one token for `client` from `source` (a limit key) and one for
    /// `source` alone, or answers `Err(seconds)` when either bucket is
    /// empty, taking nothing.
    pub(crate) fn admit(&self, client: Option<&str>, source: Option<IpAddr>, now: UnixTime) -> Result<Charge, u64> {
        let none = Charge { client: None, source, taken: false };
        if self.config.burst == 0 {
            return Ok(none);
        }
        let c = &self.config;
        let client: Option<String> = client.map(|s| s.chars().take(256).collect());
        let Ok(mut b) = self.buckets.lock() else { return Ok(none) };
        let source_level = b
            .sources
            .get(&source)
            .map_or(f64::from(c.address_burst), |x| x.level(now, c.address_burst, c.address_refill_every));
        if source_level < 1.0 {
            return Err(retry_after(source_level, c.address_refill_every));
        }
        let pair_key = client.clone().map(|id| (id, source));
        let pair_level = pair_key
            .as_ref()
            .and_then(|k| b.pairs.get(k))
            .map_or(f64::from(c.burst), |x| x.level(now, c.burst, c.refill_every));
        if pair_level < 1.0 {
            return Err(retry_after(pair_level, c.refill_every));
        }
        set(&mut b.sources, source, source_level - 1.0, now, c.address_burst, c.address_refill_every);
        if let Some(k) = pair_key {
            set(&mut b.pairs, k, pair_level - 1.0, now, c.burst, c.refill_every);
        }
        Ok(Charge { client, source, taken: true })
    }

    /// Gives back what `charge` took: the request authenticated.
    pub(crate) fn refund(&self, charge: Charge, now: UnixTime) {
        if !charge.taken {
            return;
        }
        let c = &self.config;
        let Ok(mut b) = self.buckets.lock() else { return };
        if let Some(x) = b.sources.get_mut(&charge.source) {
            x.tokens = (x.level(now, c.address_burst, c.address_refill_every) + 1.0).min(f64::from(c.address_burst));
            x.at = now;
        }
        if let Some(x) = charge.client.and_then(|id| b.pairs.get_mut(&(id, charge.source))) {
            x.tokens = (x.level(now, c.burst, c.refill_every) + 1.0).min(f64::from(c.burst));
            x.at = now;
        }
    }
}

fn set<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Bucket>,
    key: K,
    tokens: f64,
    now: UnixTime,
    burst: u32,
    refill: Duration,
) {
    if map.len() >= MAX_BUCKETS && !map.contains_key(&key) {
        map.retain(|_, b| b.level(now, burst, refill) < f64::from(burst));
        if map.len() >= MAX_BUCKETS {
            // Under a flood from more sources than we track, forget the
            // oldest half rather than grow without bound.
            let mut ats: Vec<UnixTime> = map.values().map(|b| b.at).collect();
            ats.sort_unstable();
            let cut = ats.get(ats.len() / 2).copied().unwrap_or(now);
            map.retain(|_, b| b.at > cut);
        }
    }
    map.insert(key, Bucket { tokens: tokens.max(0.0), at: now });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped limits, which these tests vary one at a time.
    impl Default for ThrottleConfig {
        fn default() -> Self {
            ThrottleConfig {
                burst: 20,
                refill_every: Duration::from_secs(3),
                address_burst: 100,
                address_refill_every: Duration::from_secs(1),
                ipv6_prefix: 64,
            }
        }
    }

    fn addr(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn failures_past_the_burst_are_throttled_until_refilled() {
        let t = Throttle::new(ThrottleConfig { burst: 3, ..ThrottleConfig::default() });
        for _ in 0..3 {
            let _kept = t.admit(Some("c"), addr(1), UnixTime::from_secs(100)).unwrap();
        }
        assert_eq!(t.admit(Some("c"), addr(1), UnixTime::from_secs(100)).map(|_| ()), Err(3));
        assert_eq!(t.admit(Some("c"), addr(1), UnixTime::from_secs(102)).map(|_| ()), Err(1));
        assert!(t.admit(Some("c"), addr(1), UnixTime::from_secs(103)).is_ok(), "one failure forgiven per refill_every");
        // The same client from another address is not affected.
        assert!(t.admit(Some("c"), addr(2), UnixTime::from_secs(100)).is_ok());
    }

    #[test]
    fn simultaneous_guesses_are_charged_before_the_work() {
        // Admissions made before any outcome is known still count: the
        // burst is the number admitted, not the number checked.
        let t = Throttle::new(ThrottleConfig { burst: 5, ..ThrottleConfig::default() });
        let admitted: Vec<Charge> =
            (0..50).filter_map(|_| t.admit(Some("c"), addr(1), UnixTime::from_secs(10)).ok()).collect();
        assert_eq!(admitted.len(), 5);
    }

    #[test]
    fn a_refund_gives_the_tokens_back() {
        let t = Throttle::new(ThrottleConfig { burst: 2, ..ThrottleConfig::default() });
        for _ in 0..10 {
            let c = t.admit(Some("c"), addr(1), UnixTime::from_secs(10)).unwrap();
            t.refund(c, UnixTime::from_secs(10));
        }
        assert!(t.admit(Some("c"), addr(1), UnixTime::from_secs(10)).is_ok());
    }

    #[test]
    fn a_source_is_throttled_across_client_ids() {
        let t = Throttle::new(ThrottleConfig { address_burst: 5, ..ThrottleConfig::default() });
        for i in 0..5 {
            let _kept = t.admit(Some(&format!("random-{i}")), addr(9), UnixTime::from_secs(50)).unwrap();
        }
        assert_eq!(t.admit(Some("fresh"), addr(9), UnixTime::from_secs(50)).map(|_| ()), Err(1));
        assert!(t.admit(Some("fresh"), addr(8), UnixTime::from_secs(50)).is_ok());
        assert!(t.admit(Some("fresh"), addr(9), UnixTime::from_secs(51)).is_ok());
    }

    #[test]
    fn burst_zero_turns_throttling_off() {
        let t = Throttle::new(ThrottleConfig { burst: 0, ..ThrottleConfig::default() });
        for _ in 0..1000 {
            let _kept = t.admit(Some("c"), addr(1), UnixTime::from_secs(0)).unwrap();
        }
    }
}
