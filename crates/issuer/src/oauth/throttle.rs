//! Brute-force limits on client authentication: token buckets keyed by
//! (client id, source address) and by source address alone. Only failed
//! authentications take from them; a request meeting an empty bucket is
//! answered 429 with `Retry-After` before any argon2 work is done.
//!
//! A correct client is never locked out by failures from other addresses:
//! its (client, address) bucket is its own.

use std::{collections::HashMap, net::IpAddr, sync::Mutex, time::Duration};

use crate::clock::UnixTime;

/// At most this many buckets are kept; refilled ones are dropped first.
pub const MAX_BUCKETS: usize = 100_000;

/// `[throttle]` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    /// Failures allowed at once per (client, address); 0 turns throttling off.
    pub burst: u32,
    /// One failure is forgiven per this interval, per (client, address).
    pub refill_every: Duration,
    /// Failures allowed at once per address.
    pub address_burst: u32,
    /// One failure is forgiven per this interval, per address.
    pub address_refill_every: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            burst: 20,
            refill_every: Duration::from_secs(3),
            address_burst: 100,
            address_refill_every: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: UnixTime,
}

impl Bucket {
    fn level(&self, now: UnixTime, burst: u32, refill: Duration) -> f64 {
        let elapsed = now.saturating_sub(self.at) as f64;
        (self.tokens + elapsed / refill.as_secs_f64().max(0.001)).min(f64::from(burst))
    }
}

/// The buckets.
#[derive(Debug, Default)]
pub struct Throttle {
    config: ThrottleConfig,
    pairs: Mutex<HashMap<(String, Option<IpAddr>), Bucket>>,
    addresses: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

/// Seconds until `bucket` holds one token again.
fn retry_after(level: f64, refill: Duration) -> u64 {
    ((1.0 - level).max(0.0) * refill.as_secs_f64()).ceil().max(1.0) as u64
}

impl Throttle {
    /// Buckets with `config`.
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle { config, ..Throttle::default() }
    }

    fn enabled(&self) -> bool {
        self.config.burst > 0
    }

    /// `Err(seconds)` when a failure now would find an empty bucket for
    /// `client` from `addr`, or for `addr` alone.
    pub fn check(&self, client: Option<&str>, addr: Option<IpAddr>, now: UnixTime) -> Result<(), u64> {
        if !self.enabled() {
            return Ok(());
        }
        let c = &self.config;
        let address_level = self
            .addresses
            .lock()
            .ok()
            .and_then(|map| map.get(&addr).map(|b| b.level(now, c.address_burst, c.address_refill_every)));
        if let Some(level) = address_level.filter(|l| *l < 1.0) {
            return Err(retry_after(level, c.address_refill_every));
        }
        let pair_level = client.and_then(|client| {
            let map = self.pairs.lock().ok()?;
            map.get(&(client.to_string(), addr)).map(|b| b.level(now, c.burst, c.refill_every))
        });
        if let Some(level) = pair_level.filter(|l| *l < 1.0) {
            return Err(retry_after(level, c.refill_every));
        }
        Ok(())
    }

    /// Records a failed authentication of `client` from `addr`.
    pub fn failed(&self, client: Option<&str>, addr: Option<IpAddr>, now: UnixTime) {
        if !self.enabled() {
            return;
        }
        let c = self.config;
        if let Ok(mut map) = self.addresses.lock() {
            take(&mut map, addr, now, c.address_burst, c.address_refill_every);
        }
        if let (Some(client), Ok(mut map)) = (client, self.pairs.lock()) {
            take(&mut map, (client.chars().take(256).collect(), addr), now, c.burst, c.refill_every);
        }
    }
}

fn take<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Bucket>, key: K, now: UnixTime, burst: u32, refill: Duration) {
    if map.len() >= MAX_BUCKETS && !map.contains_key(&key) {
        map.retain(|_, b| b.level(now, burst, refill) < f64::from(burst));
        if map.len() >= MAX_BUCKETS {
            // Under a flood from more addresses than we track, forget the
            // oldest half rather than grow without bound.
            let mut ats: Vec<UnixTime> = map.values().map(|b| b.at).collect();
            ats.sort_unstable();
            let cut = ats.get(ats.len() / 2).copied().unwrap_or(now);
            map.retain(|_, b| b.at > cut);
        }
    }
    let level = map.get(&key).map_or(f64::from(burst), |b| b.level(now, burst, refill));
    map.insert(key, Bucket { tokens: (level - 1.0).max(0.0), at: now });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn failures_past_the_burst_are_throttled_until_refilled() {
        let t = Throttle::new(ThrottleConfig { burst: 3, ..ThrottleConfig::default() });
        for _ in 0..3 {
            assert_eq!(t.check(Some("c"), addr(1), 100), Ok(()));
            t.failed(Some("c"), addr(1), 100);
        }
        assert_eq!(t.check(Some("c"), addr(1), 100), Err(3));
        assert_eq!(t.check(Some("c"), addr(1), 102), Err(1));
        assert_eq!(t.check(Some("c"), addr(1), 103), Ok(()), "one failure forgiven per refill_every");
        // The same client from another address is not affected.
        assert_eq!(t.check(Some("c"), addr(2), 100), Ok(()));
    }

    #[test]
    fn an_address_is_throttled_across_client_ids() {
        let t = Throttle::new(ThrottleConfig { address_burst: 5, ..ThrottleConfig::default() });
        for i in 0..5 {
            t.failed(Some(&format!("random-{i}")), addr(9), 50);
        }
        assert_eq!(t.check(Some("fresh"), addr(9), 50), Err(1));
        assert_eq!(t.check(Some("fresh"), addr(8), 50), Ok(()));
        assert_eq!(t.check(Some("fresh"), addr(9), 51), Ok(()));
    }

    #[test]
    fn burst_zero_turns_throttling_off() {
        let t = Throttle::new(ThrottleConfig { burst: 0, ..ThrottleConfig::default() });
        for _ in 0..1000 {
            t.failed(Some("c"), addr(1), 0);
        }
        assert_eq!(t.check(Some("c"), addr(1), 0), Ok(()));
    }
}
