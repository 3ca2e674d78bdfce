//! Counters emitted through the [`metrics`] facade (install any recorder,
//! e.g. a Prometheus exporter, to collect them):
//!
//! | name | labels | counts |
//! | --- | --- | --- |
//! | `jwks_verifier_fetches_total` | `outcome`: `ok`, `not_modified`, `network`, `http_status`, `too_large`, `invalid` | JWKS fetch attempts |
//! | `jwks_verifier_unknown_kid_refetches_total` | | refetches triggered by a kid not in the cache |
//! | `jwks_verifier_refetches_refused_total` | | unknown-kid refetches refused by the cooldown |
//! | `jwks_verifier_stale_keys_served_total` | | verifications with keys past their freshness lifetime |
//! | `jwks_verifier_verifications_total` | `outcome`: `valid` or an [`Error::code`](crate::Error::code) | verifications |

/// JWKS fetch attempts by `outcome`.
pub const FETCHES: &str = "jwks_verifier_fetches_total";
/// Refetches triggered by an unknown kid.
pub const UNKNOWN_KID_REFETCHES: &str = "jwks_verifier_unknown_kid_refetches_total";
/// Unknown-kid refetches refused by the cooldown.
pub const REFETCHES_REFUSED: &str = "jwks_verifier_refetches_refused_total";
/// Verifications served with keys past their freshness lifetime.
pub const STALE_KEYS_SERVED: &str = "jwks_verifier_stale_keys_served_total";
/// Verifications by `outcome` (`valid` or an error code).
pub const VERIFICATIONS: &str = "jwks_verifier_verifications_total";
