//! DPoP nonces at a resource server (RFC 9449 §9) or a token endpoint
//! (§8): a [`NoncePolicy`] says whether a proof must carry a server nonce,
//! checks the one it carries, and makes the fresh nonce to send back in the
//! `DPoP-Nonce` header.
//!
//! [`StatelessNonces`] is the implementation most servers want: nonces made
//! from a time step and a secret (`jwks_jose::nonce`), so every replica
//! with the same secret accepts every other's, and nothing is stored. A
//! nonce is accepted during its own step and the next one.
//!
//! With a policy, a proof is refused with [`Error::UseDpopNonce`] (code
//! `use_dpop_nonce`) when it has no nonce and one is required, when its
//! nonce is not valid, or when its `iat` is outside the window and it has
//! no valid nonce; a proof whose `iat` is outside the window but whose
//! nonce is valid is accepted: the nonce proves it is fresh (a client with
//! a skewed clock is rescued by one retry). A nonce is not a replay guard:
//! the proof's `jti` stays single-use.
//!
//! ```
//! use std::{sync::Arc, time::{Duration, UNIX_EPOCH}};
//! use jwks_verifier::{UnixTime, nonce::{NonceMode, NoncePolicy, StatelessNonces}};
//!
//! let nonces = StatelessNonces::new(&[7u8; 32], Duration::from_secs(60), NonceMode::Required)?;
//! let now = UnixTime::from_secs(1_700_000_000);
//! let fresh = nonces.issue(now);
//! assert!(nonces.check(&fresh, now).is_ok());
//! // Given to the builder: `Verifier::builder().dpop_nonce(Arc::new(nonces))`.
//! # let _ = (Arc::new(0), UNIX_EPOCH);
//! # Ok::<(), jwks_verifier::Error>(())
//! ```

use std::{fmt, time::Duration};

use jwks_jose::nonce::NonceKey;

use crate::{Error, UnixTime};

/// The HKDF label of [`StatelessNonces`]' key: the same secret used by
/// the issuer or for anything else gives unrelated nonces.
pub const LABEL: &str = "jwks-verifier dpop-nonce v1";

/// Whether proofs must carry a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonceMode {
    /// A proof without a nonce is accepted (if its `iat` is within the
    /// window); one with a nonce must have a valid one. Fresh nonces are
    /// still sent.
    #[default]
    Allowed,
    /// Every proof must carry a valid nonce.
    Required,
}

impl std::str::FromStr for NonceMode {
    type Err = Error;

    /// `"allowed"` or `"required"`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "allowed" => Ok(NonceMode::Allowed),
            "required" => Ok(NonceMode::Required),
            _ => Err(Error::config("the DPoP nonce mode is \"allowed\" or \"required\"")),
        }
    }
}

/// How a server hands out and checks DPoP nonces (RFC 9449 §8, §9).
/// Implement it to keep nonces in a store of your own; [`StatelessNonces`]
/// needs none.
pub trait NoncePolicy: Send + Sync + fmt::Debug {
    /// Whether a proof without a nonce is refused.
    fn mode(&self) -> NonceMode;

    /// `Ok` when `nonce` (the proof's `nonce` claim) is one this server
    /// accepts at `now`; else a short, client-safe reason.
    fn check(&self, nonce: &str, now: UnixTime) -> Result<(), String>;

    /// The nonce to send at `now` in the `DPoP-Nonce` header. It must be
    /// 1 or more NQCHAR characters (RFC 9449 §8.1).
    fn issue(&self, now: UnixTime) -> String;

    /// The longest a nonce stays accepted after it was issued: a proof
    /// accepted for its nonce keeps its `jti` single-use that long.
    fn max_age(&self) -> Duration;
}

/// Stateless nonces: a time step and an HMAC-SHA256 tag under a key
/// derived from a caller-supplied secret (HKDF-SHA256, label [`LABEL`]).
/// Replicas given the same secret and step accept each other's nonces.
/// `Debug` shows the step and mode, never the key.
#[derive(Debug)]
pub struct StatelessNonces {
    key: NonceKey,
    mode: NonceMode,
}

impl StatelessNonces {
    /// Nonces from `secret` (at least 16 bytes, e.g. 32 random bytes shared
    /// by the replicas) with time step `step` (whole seconds, at least one;
    /// 60 s is usual: a nonce then lives 60 to 120 s).
    pub fn new(secret: &[u8], step: Duration, mode: NonceMode) -> Result<Self, Error> {
        Self::with_label(secret, LABEL, step, mode)
    }

    /// As [`new`](Self::new) with another HKDF label (a server that derives
    /// its nonce key from a secret it also uses for something else names
    /// the use here).
    pub fn with_label(secret: &[u8], label: &str, step: Duration, mode: NonceMode) -> Result<Self, Error> {
        let key = NonceKey::derive(secret, label, step).map_err(|e| Error::config(format!("DPoP nonces: {e}")))?;
        Ok(StatelessNonces { key, mode })
    }

    /// Nonces under `key`.
    pub fn from_key(key: NonceKey, mode: NonceMode) -> Self {
        StatelessNonces { key, mode }
    }
}

impl NoncePolicy for StatelessNonces {
    fn mode(&self) -> NonceMode {
        self.mode
    }

    fn check(&self, nonce: &str, now: UnixTime) -> Result<(), String> {
        self.key.check(nonce, now).map_err(|e| match e {
            jwks_jose::Error::InvalidNonce(reason) => format!("the DPoP nonce is {}", describe(reason)),
            other => other.to_string(),
        })
    }

    fn issue(&self, now: UnixTime) -> String {
        self.key.issue(now)
    }

    fn max_age(&self) -> Duration {
        self.key.max_age()
    }
}

fn describe(reason: &str) -> &str {
    match reason {
        "not issued by this server" => "not one this server issued",
        other => other,
    }
}

/// What the nonce rule decides about a proof that passed every other check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Fresh by its `iat` alone.
    ByIat,
    /// Fresh by a valid nonce (its `iat` may be outside the window).
    ByNonce,
}

/// The nonce rule (RFC 9449 §8, §9 and the clock-skew rescue): `iat_fresh`
/// says whether the proof's `iat` is within the window; `nonce` is its
/// `nonce` claim.
pub(crate) fn rule(
    policy: &dyn NoncePolicy,
    nonce: Option<&str>,
    iat_fresh: bool,
    now: UnixTime,
) -> Result<Freshness, Error> {
    match nonce {
        Some(n) => match policy.check(n, now) {
            Ok(()) => Ok(Freshness::ByNonce),
            Err(reason) => Err(Error::UseDpopNonce { reason }),
        },
        None if !iat_fresh => Err(Error::UseDpopNonce {
            reason: "the proof's `iat` is outside the accepted window; retry with the server's nonce".into(),
        }),
        None if policy.mode() == NonceMode::Required => {
            Err(Error::UseDpopNonce { reason: "the proof must carry the server's nonce".into() })
        }
        None => Ok(Freshness::ByIat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

    fn policy(mode: NonceMode) -> StatelessNonces {
        StatelessNonces::new(&[3u8; 32], Duration::from_secs(60), mode).unwrap()
    }

    #[test]
    fn required_refuses_a_proof_without_nonce_and_allowed_accepts_it() {
        let code = |r: Result<Freshness, Error>| r.map_err(|e| e.code());
        assert_eq!(code(rule(&policy(NonceMode::Required), None, true, NOW)), Err("use_dpop_nonce"));
        assert_eq!(code(rule(&policy(NonceMode::Allowed), None, true, NOW)), Ok(Freshness::ByIat));
    }

    #[test]
    fn a_valid_nonce_rescues_an_iat_outside_the_window_and_none_asks_for_one() {
        for mode in [NonceMode::Allowed, NonceMode::Required] {
            let p = policy(mode);
            let n = p.issue(NOW);
            assert_eq!(rule(&p, Some(&n), false, NOW).unwrap(), Freshness::ByNonce);
            assert_eq!(rule(&p, None, false, NOW).unwrap_err().code(), "use_dpop_nonce");
        }
    }

    #[test]
    fn an_invalid_or_expired_nonce_is_use_dpop_nonce_in_both_modes() {
        for mode in [NonceMode::Allowed, NonceMode::Required] {
            let p = policy(mode);
            let old = p.issue(NOW.saturating_sub_secs(180));
            let e = rule(&p, Some(&old), true, NOW).unwrap_err();
            assert!(matches!(&e, Error::UseDpopNonce { reason } if reason.contains("expired")), "{e}");
            let foreign = StatelessNonces::new(&[4u8; 32], Duration::from_secs(60), mode).unwrap().issue(NOW);
            assert_eq!(rule(&p, Some(&foreign), true, NOW).unwrap_err().code(), "use_dpop_nonce");
        }
    }

    #[test]
    fn modes_parse_and_short_secrets_are_refused() {
        assert_eq!("required".parse::<NonceMode>().unwrap(), NonceMode::Required);
        assert!("off".parse::<NonceMode>().is_err());
        assert_eq!(
            StatelessNonces::new(&[1u8; 8], Duration::from_secs(60), NonceMode::Allowed).unwrap_err().code(),
            "invalid_config"
        );
    }
}
