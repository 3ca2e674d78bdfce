//! Stateless server nonces for DPoP (RFC 9449 §8 at an authorization
//! server, §9 at a resource server): a nonce is made from a time step and
//! a secret, so every replica that holds the secret accepts every other
//! replica's nonces, and nothing is stored.
//!
//! A nonce is `base64url(step || tag)`: the 8-byte big-endian number of the
//! time step (`now / step`), and the first 16 bytes of
//! HMAC-SHA256(key, step). It is accepted during its own step and the next
//! one, so it lives between one and two steps; the tag is compared in
//! constant time. The key comes from a secret through HKDF-SHA256 with a
//! label naming its use ([`NonceKey::derive`]), or at random
//! ([`NonceKey::random`], for one process).
//!
//! A nonce proves that a proof was made after the server said it: it is
//! not a replay guard (a proof's `jti` stays single-use).
//!
//! ```
//! use std::time::Duration;
//! use jwks_jose::{clock::UnixTime, nonce::NonceKey};
//!
//! let key = NonceKey::derive(&[7u8; 32], "example dpop-nonce v1", Duration::from_secs(60))?;
//! let t = UnixTime::from_secs(1_700_000_000);
//! let nonce = key.issue(t);
//! assert!(key.check(&nonce, t.saturating_add_secs(60)).is_ok(), "the next step still accepts it");
//! assert!(key.check(&nonce, t.saturating_add_secs(180)).is_err(), "two steps later it expired");
//! # Ok::<(), jwks_jose::Error>(())
//! ```

use std::{fmt, time::Duration};

use crate::{
    Error, b64,
    clock::UnixTime,
    crypto::{self, HmacKey},
};

/// The length of a nonce in characters: base64url of 8 + 16 bytes.
pub const NONCE_LEN: usize = 32;

/// The bytes of the tag kept in a nonce.
const TAG_LEN: usize = 16;

/// The shortest secret [`NonceKey::derive`] accepts, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The key and time step of stateless nonces. `Debug` shows the step only.
pub struct NonceKey {
    hmac: HmacKey,
    step: u64,
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceKey").field("step_secs", &self.step).finish_non_exhaustive()
    }
}

impl NonceKey {
    /// A key derived from `secret` (at least [`MIN_SECRET_LEN`] bytes) with
    /// HKDF-SHA256 and `label` as its `info`, so the same secret used for
    /// something else (a key-encryption key) gives an unrelated key. `step`
    /// is the time step, whole seconds, at least one.
    pub fn derive(secret: &[u8], label: &str, step: Duration) -> Result<Self, Error> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(Error::KeyRejected(format!(
                "a nonce secret must be at least {MIN_SECRET_LEN} bytes, not {}",
                secret.len()
            )));
        }
        let key = crypto::hkdf_sha256(secret, &[], label.as_bytes())?;
        Self::with_key(&key, step)
    }

    /// A key of 32 random bytes: nonces that only this process accepts.
    pub fn random(step: Duration) -> Result<Self, Error> {
        let mut key = [0u8; 32];
        crypto::fill_random(&mut key)?;
        Self::with_key(&key, step)
    }

    fn with_key(key: &[u8; 32], step: Duration) -> Result<Self, Error> {
        let step = step.as_secs();
        if step == 0 {
            return Err(Error::KeyRejected("the nonce time step must be at least one second".into()));
        }
        Ok(NonceKey { hmac: HmacKey::new(key), step })
    }

    /// The time step.
    pub fn step(&self) -> Duration {
        Duration::from_secs(self.step)
    }

    /// The longest time a nonce is accepted after it was issued: two steps.
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.step.saturating_mul(2))
    }

    /// The nonce of the step `now` falls in.
    pub fn issue(&self, now: UnixTime) -> String {
        let step = now.as_secs() / self.step;
        let tag = self.hmac.sign(&step.to_be_bytes());
        let mut raw = [0u8; 8 + TAG_LEN];
        let (head, tail) = raw.split_at_mut(8);
        head.copy_from_slice(&step.to_be_bytes());
        // `tag` is 32 bytes, longer than TAG_LEN.
        tail.copy_from_slice(tag.get(..TAG_LEN).unwrap_or(&[0u8; TAG_LEN]));
        b64::encode(raw)
    }

    /// `Ok` when `nonce` was issued with this key during the step `now`
    /// falls in or the one before. [`Error::InvalidNonce`] says why not:
    /// malformed, not made with this key, expired, or of a later step.
    pub fn check(&self, nonce: &str, now: UnixTime) -> Result<(), Error> {
        if nonce.len() != NONCE_LEN {
            return Err(Error::InvalidNonce("malformed"));
        }
        let raw = b64::decode(nonce, "nonce").map_err(|_| Error::InvalidNonce("malformed"))?;
        let Some((step, tag)) = raw.split_first_chunk::<8>() else {
            return Err(Error::InvalidNonce("malformed"));
        };
        if !self.hmac.verify_truncated(step, tag) {
            return Err(Error::InvalidNonce("not issued by this server"));
        }
        let step = u64::from_be_bytes(*step);
        let current = now.as_secs() / self.step;
        if step > current {
            return Err(Error::InvalidNonce("issued for a later time"));
        }
        if current - step > 1 {
            return Err(Error::InvalidNonce("expired"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const STEP: Duration = Duration::from_secs(60);
    const T0: UnixTime = UnixTime::from_secs(1_700_000_080);

    fn key() -> NonceKey {
        NonceKey::derive(&[1u8; 32], "test dpop-nonce v1", STEP).unwrap()
    }

    #[test]
    fn a_nonce_is_accepted_in_its_step_and_the_next_and_refused_after() {
        let clock = ManualClock::at(T0);
        let k = key();
        let nonce = k.issue(clock.unix_now());
        assert_eq!(nonce.len(), NONCE_LEN);
        assert_eq!(k.check(&nonce, clock.unix_now()), Ok(()));
        // T0 is 40 s into its step: the step ends 20 s later, the next 80 s later.
        clock.advance(Duration::from_secs(79));
        assert_eq!(k.check(&nonce, clock.unix_now()), Ok(()), "last second of the next step");
        clock.advance(Duration::from_secs(1));
        assert_eq!(k.check(&nonce, clock.unix_now()), Err(Error::InvalidNonce("expired")));
    }

    #[test]
    fn a_nonce_lives_at_most_two_steps() {
        let k = key();
        let start = UnixTime::from_secs(1_700_000_040 / 60 * 60);
        let nonce = k.issue(start);
        let last = start.saturating_add(k.max_age()).saturating_sub_secs(1);
        assert_eq!(k.check(&nonce, last), Ok(()));
        assert!(k.check(&nonce, start.saturating_add(k.max_age())).is_err());
    }

    #[test]
    fn a_nonce_of_a_later_step_is_refused() {
        let k = key();
        let nonce = k.issue(T0.saturating_add_secs(60));
        assert_eq!(k.check(&nonce, T0), Err(Error::InvalidNonce("issued for a later time")));
    }

    #[test]
    fn replicas_with_the_same_secret_and_label_accept_each_others_nonces() {
        let a = key();
        let b = key();
        assert_eq!(b.check(&a.issue(T0), T0), Ok(()));
        let other_label = NonceKey::derive(&[1u8; 32], "other v1", STEP).unwrap();
        let other_secret = NonceKey::derive(&[2u8; 32], "test dpop-nonce v1", STEP).unwrap();
        let random = NonceKey::random(STEP).unwrap();
        for k in [other_label, other_secret, random] {
            assert_eq!(k.check(&a.issue(T0), T0), Err(Error::InvalidNonce("not issued by this server")));
        }
    }

    #[test]
    fn forged_and_malformed_nonces_are_refused() {
        let k = key();
        let good = k.issue(T0);
        let mut raw = b64::decode(&good, "t").unwrap();
        raw[12] ^= 1;
        assert_eq!(k.check(&b64::encode(&raw), T0), Err(Error::InvalidNonce("not issued by this server")));
        // The step moved without its tag.
        let mut moved = b64::decode(&good, "t").unwrap();
        moved[7] ^= 1;
        assert!(k.check(&b64::encode(&moved), T0).is_err());
        for bad in ["", "short", &"A".repeat(NONCE_LEN + 1), &"*".repeat(NONCE_LEN), &format!("{}=", &good[..31])] {
            assert_eq!(k.check(bad, T0), Err(Error::InvalidNonce("malformed")), "{bad:?}");
        }
    }

    #[test]
    fn short_secrets_and_zero_steps_are_refused_and_debug_hides_the_key() {
        assert!(NonceKey::derive(&[1u8; 15], "l", STEP).is_err());
        assert!(NonceKey::derive(&[1u8; 16], "l", Duration::from_millis(999)).is_err());
        assert_eq!(format!("{:?}", key()), "NonceKey { step_secs: 60, .. }");
    }

    #[test]
    fn nonces_use_only_rfc9449_nqchar_characters() {
        let n = key().issue(T0);
        assert!(n.bytes().all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)), "{n}");
    }
}
