//! The one apply path: carries out a list of [`Action`]s from the planner
//! ([`super::lifecycle`]) on a store, under its lock. The scheduler
//! (`Keyring`) and the operator commands (`super::ops`) both go through
//! [`apply`], which needs the [`StoreLock`] as a parameter: the compiler
//! holds "only under the lock".

use jwks_jose::{
    Algorithm, SigningKey,
    clock::{Clock, UnixTime},
};

use super::{
    lifecycle::{Action, KeyMeta, Timeline},
    store::{KeyRecord, KeyStore, StoreLock, Write},
};
use crate::Error;

/// The timeline of a key not yet planned: set when a create takes it.
const UNSET: Timeline = Timeline {
    published: UnixTime::EPOCH,
    activates: UnixTime::EPOCH,
    deactivates: UnixTime::EPOCH,
    expires: UnixTime::EPOCH,
    revoked: None,
};

/// Keys made for the [`Action::Create`]s of a plan. They are made before
/// the plan's instants are decided (RSA-4096 takes seconds), so a key's
/// `published` never precedes its write.
#[derive(Debug, Default)]
pub struct Fresh(Vec<KeyRecord>);

impl Fresh {
    /// A pool holding `pkcs8` (`keys import`), checked to be a key of `alg`.
    pub fn with(alg: Algorithm, pkcs8: Vec<u8>) -> Result<Self, Error> {
        Ok(Fresh(vec![KeyRecord::new(alg, pkcs8, UNSET)?]))
    }

    /// How many keys of `alg` it holds.
    fn count(&self, alg: Algorithm) -> usize {
        self.0.iter().filter(|r| r.meta.alg == alg).count()
    }

    /// Generates keys until it holds one for every create of `actions`.
    fn fill(&mut self, actions: &[Action], rsa_bits: usize) -> Result<(), Error> {
        let mut wanted: Vec<Algorithm> = Vec::new();
        for a in actions {
            if let Action::Create { alg, .. } = a {
                wanted.push(*alg);
            }
        }
        for &alg in &wanted {
            let need = wanted.iter().filter(|a| **a == alg).count();
            while self.count(alg) < need {
                let pkcs8 = SigningKey::generate(alg, rsa_bits)?;
                self.0.push(KeyRecord::new(alg, pkcs8, UNSET)?);
            }
        }
        Ok(())
    }

    /// Takes a key of `alg`.
    fn take(&mut self, alg: Algorithm) -> Option<KeyRecord> {
        let i = self.0.iter().position(|r| r.meta.alg == alg)?;
        Some(self.0.swap_remove(i))
    }
}

/// A plan with the keys it creates already made: `plan` is called at the
/// time read after the keys were generated (again if that plan needs more
/// keys than were made, at most three times).
#[derive(Debug)]
pub struct Prepared {
    /// What to do.
    pub actions: Vec<Action>,
    /// The keys the creates take.
    pub fresh: Fresh,
    /// The time the actions were planned at.
    pub now: UnixTime,
}

/// Plans with `plan` at the current time, generating first the keys the
/// plan creates (besides those in `fresh`), then planning again at the time
/// read after them.
pub fn prepare(
    clock: &dyn Clock,
    rsa_bits: usize,
    mut fresh: Fresh,
    plan: impl Fn(UnixTime) -> Vec<Action>,
) -> Result<Prepared, Error> {
    let mut now = clock.unix_now();
    let mut actions = plan(now);
    for _ in 0..3 {
        let before = fresh.0.len();
        fresh.fill(&actions, rsa_bits)?;
        if fresh.0.len() == before {
            return Ok(Prepared { actions, fresh, now });
        }
        now = clock.unix_now();
        actions = plan(now);
    }
    fresh.fill(&actions, rsa_bits)?;
    Ok(Prepared { actions, fresh, now })
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Every key of the store after the actions.
    pub keys: Vec<KeyRecord>,
    /// The keys created, in the order of their actions.
    pub created: Vec<KeyMeta>,
}

/// Applies `prepared` to the store whose keys are `keys` (read under
/// `held`), as one list of writes ([`KeyStore::write`]: one transaction on
/// PostgreSQL), and returns the store's keys after it, computed in memory.
pub fn apply(store: &dyn KeyStore, held: &StoreLock, keys: &[KeyRecord], prepared: Prepared) -> Result<Applied, Error> {
    let Prepared { actions, mut fresh, now } = prepared;
    let mut after: Vec<KeyRecord> = keys.to_vec();
    let mut writes = Vec::with_capacity(actions.len());
    let mut created = Vec::new();
    for action in &actions {
        match action {
            Action::Create { alg, timeline } => {
                let Some(made) = fresh.take(*alg) else {
                    return Err(Error::Store(format!("no key was made for a {alg} key the plan creates")));
                };
                if after.iter().any(|r| r.meta.kid == made.meta.kid) {
                    return Err(Error::Usage(format!("key {} is already in the store", made.meta.kid)));
                }
                let record = made.with_timeline(*timeline);
                created.push(record.meta.clone());
                after.push(record.clone());
                writes.push(Write::Put(record));
            }
            Action::Retime { kid, timeline } => {
                let Some(r) = after.iter_mut().find(|r| &r.meta.kid == kid) else { continue };
                *r = r.with_timeline(*timeline);
                writes.push(Write::Put(r.clone()));
            }
            Action::Delete { kid } => {
                after.retain(|r| &r.meta.kid != kid);
                writes.push(Write::Delete(kid.clone()));
            }
        }
    }
    if writes.is_empty() {
        return Ok(Applied { keys: after, created });
    }
    store.write(held, &writes)?;
    for action in &actions {
        match action {
            Action::Create { alg, timeline } => {
                if let Some(m) = created.iter().find(|m| m.alg == *alg && m.timeline == *timeline) {
                    tracing::info!(kid = %m.kid, %alg, published = timeline.published.as_secs(), activates = timeline.activates.as_secs(), "key created");
                }
            }
            Action::Retime { kid, timeline } => {
                tracing::info!(%kid, activates = timeline.activates.as_secs(), deactivates = timeline.deactivates.as_secs(), expires = timeline.expires.as_secs(), revoked = ?timeline.revoked.map(UnixTime::as_secs), "key timeline changed");
            }
            Action::Delete { kid } => tracing::info!(%kid, now = now.as_secs(), "key expired and deleted"),
        }
    }
    Ok(Applied { keys: after, created })
}
