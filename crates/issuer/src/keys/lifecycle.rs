//! The key lifecycle: each key's timeline of instants, the state derived
//! from it, and the one planner: pure functions of (keys, now, policy)
//! that return the [`Action`]s the store needs, for the scheduler
//! ([`plan`]: first keys, successors, extension of a late successor,
//! expiry) and for the operator (`keys rotate [--now]` and `keys import`:
//! [`successor`]; `keys revoke`: [`revoke`]). Nothing else edits a
//! timeline; `super::apply` carries the actions out.
//!
//! A key's state is never a mutable flag: it is derived from its instants
//! (`published`, `activates`, `deactivates`, `expires`, `revoked`) and the
//! time asked about, so every process that reads the same store at the same
//! time reaches the same answer.

use std::{fmt, time::Duration};

use jwks_jose::{Algorithm, clock::UnixTime};
use serde::{Deserialize, Serialize};

/// The instants of one key, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    /// It enters the JWKS.
    pub published: UnixTime,
    /// It starts signing (`published + publish_ahead`, except for the
    /// first keys of a store, a revoke's replacement and `rotate --now`).
    pub activates: UnixTime,
    /// It stops signing (`activates + rotation_period`).
    pub deactivates: UnixTime,
    /// It leaves the JWKS (`deactivates` + longest token ttl +
    /// `jwks.max_age` + `keys.retire_grace`).
    pub expires: UnixTime,
    /// Set by `keys revoke`: it leaves the JWKS at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<UnixTime>,
}

/// A key's state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    /// Signing.
    Active,
    /// No longer signing, still published for tokens it signed.
    Retiring,
    /// Past `expires`: out of the JWKS, to be deleted.
    Expired,
    /// Revoked: out of the JWKS at once.
    Revoked,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        })
    }
}

impl Timeline {
    /// The state at `now`.
    pub fn state(&self, now: UnixTime) -> KeyState {
        if self.revoked.is_some_and(|r| r <= now) {
            KeyState::Revoked
        } else if now >= self.expires {
            KeyState::Expired
        } else if now < self.activates {
            KeyState::Pending
        } else if now < self.deactivates {
            KeyState::Active
        } else {
            KeyState::Retiring
        }
    }

    /// Whether the key is in the JWKS at `now`.
    pub fn is_published(&self, now: UnixTime) -> bool {
        self.published <= now && matches!(self.state(now), KeyState::Pending | KeyState::Active | KeyState::Retiring)
    }

    /// The instants after `now` at which the derived state may change.
    pub fn next_change_after(&self, now: UnixTime) -> Option<UnixTime> {
        [Some(self.published), Some(self.activates), Some(self.deactivates), Some(self.expires), self.revoked]
            .into_iter()
            .flatten()
            .filter(|&t| t > now)
            .min()
    }
}

/// The durations that shape every timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a key signs.
    pub rotation_period: Duration,
    /// How long a key is published before it signs.
    pub publish_ahead: Duration,
    /// From `deactivates` to `expires`: the longest token ttl +
    /// `jwks.max_age` + `keys.retire_grace`.
    pub retire_after: Duration,
}

impl Policy {
    /// The timeline of a key published at `now` that signs from `activates`.
    pub fn timeline(&self, now: UnixTime, activates: UnixTime) -> Timeline {
        let deactivates = activates.saturating_add(self.rotation_period);
        Timeline {
            published: now,
            activates,
            deactivates,
            expires: deactivates.saturating_add(self.retire_after),
            revoked: None,
        }
    }

    /// Checks that `t` is a timeline this policy's planner could have
    /// written: its instants in order (`published <= activates <=
    /// deactivates <= expires`), a signing window of at most
    /// [`Policy::longest_signing`] and a retirement of at most as long.
    /// A document edited to sign or stay published for longer is refused.
    pub fn check(&self, t: &Timeline) -> Result<(), String> {
        if !(t.published <= t.activates && t.activates <= t.deactivates && t.deactivates <= t.expires) {
            return Err(format!(
                "timeline out of order (published {}, activates {}, deactivates {}, expires {})",
                t.published, t.activates, t.deactivates, t.expires
            ));
        }
        let longest = self.longest_signing().as_secs();
        let signs = t.deactivates.saturating_duration_since(t.activates).as_secs();
        if signs > longest {
            return Err(format!("timeline signs for {signs}s, longer than this policy allows ({longest}s)"));
        }
        let retires = t.expires.saturating_duration_since(t.deactivates).as_secs();
        if retires > longest {
            return Err(format!("timeline stays published {retires}s after signing, longer than allowed ({longest}s)"));
        }
        Ok(())
    }

    /// The longest signing window a stored timeline may hold: twice the
    /// rotation period (a late successor extends the current key; the
    /// period may have been halved since), plus `publish_ahead` and the
    /// retirement.
    pub fn longest_signing(&self) -> Duration {
        self.rotation_period.saturating_mul(2).saturating_add(self.publish_ahead).saturating_add(self.retire_after)
    }

    /// A key that signs at once (first keys, revoke replacement, `--now`).
    pub fn immediate(&self, now: UnixTime) -> Timeline {
        self.timeline(now, now)
    }

    /// A key published now that signs after `publish_ahead`, but never
    /// before `not_before` (the current key's planned end).
    pub fn ahead(&self, now: UnixTime, not_before: UnixTime) -> Timeline {
        self.timeline(now, now.saturating_add(self.publish_ahead).max(not_before))
    }
}

/// The `published` instant of a key written at the (truncated) second
/// `now`: the next whole second, which never precedes the write.
pub fn published_after(now: UnixTime) -> UnixTime {
    now.saturating_add_secs(1)
}

/// What the planner needs to know of a stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    /// The key id.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// Its timeline.
    pub timeline: Timeline,
}

/// The key that signs for `alg` at `now`: among keys that are neither
/// revoked nor expired and whose `activates <= now`, the one that activated
/// last. A key past `deactivates` keeps signing only while no successor has
/// activated, which the planner prevents by extending its timeline.
///
/// Instants are whole seconds, so two keys can activate in the same second
/// (`keys rotate --now` right after a successor activated, or twice in one
/// second): then a key still before its `deactivates` wins over one that
/// `rotate --now` retired, and the later published over the earlier; the
/// kid only breaks what is left.
pub fn signer(keys: &[KeyMeta], alg: Algorithm, now: UnixTime) -> Option<&KeyMeta> {
    let rank = |k: &KeyMeta| (k.timeline.activates, now < k.timeline.deactivates, k.timeline.published);
    keys.iter()
        .filter(|k| k.alg == alg && k.timeline.activates <= now)
        .filter(|k| matches!(k.timeline.state(now), KeyState::Active | KeyState::Retiring))
        .max_by(|a, b| (rank(a), &a.kid).cmp(&(rank(b), &b.kid)))
}

/// The state of `key` among `keys` at `now`: as [`Timeline::state`],
/// except that exactly the key that signs ([`signer`]) is
/// [`KeyState::Active`]; another key inside its signing window, which the
/// signer superseded, is [`KeyState::Retiring`].
pub fn state_among(keys: &[KeyMeta], key: &KeyMeta, now: UnixTime) -> KeyState {
    let own = key.timeline.state(now);
    match own {
        KeyState::Active | KeyState::Retiring => {
            if signer(keys, key.alg, now).is_some_and(|s| s.kid == key.kid) {
                KeyState::Active
            } else {
                KeyState::Retiring
            }
        }
        other => other,
    }
}

/// What signs `alg` at `now` and what changes next, for `keys list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outlook {
    /// The algorithm.
    pub alg: Algorithm,
    /// The kid that signs now, if any.
    pub signer: Option<String>,
    /// When the next change of signer happens (or is planned), if known.
    pub next_at: Option<UnixTime>,
    /// What that change is, in words.
    pub next: String,
}

/// The [`Outlook`] of `alg` at `now` under `policy`.
pub fn outlook(keys: &[KeyMeta], alg: Algorithm, policy: &Policy, now: UnixTime) -> Outlook {
    let current = signer(keys, alg, now);
    let pending = keys
        .iter()
        .filter(|k| {
            k.alg == alg && k.timeline.state(now) == KeyState::Pending && k.timeline.activates < k.timeline.deactivates
        })
        .min_by_key(|k| (k.timeline.activates, &k.kid));
    let (next_at, next) = match (current, pending) {
        (_, Some(p)) => (Some(p.timeline.activates), format!("{} starts signing", p.kid)),
        (Some(c), None) => {
            let due = c.timeline.deactivates.saturating_sub(policy.publish_ahead);
            (
                Some(due.max(now)),
                format!("a successor of {} is published, to sign at {}", c.kid, c.timeline.deactivates.max(now)),
            )
        }
        (None, None) => (None, "no key signs: the next `serve` creates one".to_string()),
    };
    Outlook { alg, signer: current.map(|c| c.kid.clone()), next_at, next }
}

/// One change the store needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create a key of `alg` with this timeline.
    Create {
        /// Algorithm of the new key.
        alg: Algorithm,
        /// Its timeline.
        timeline: Timeline,
    },
    /// Replace the timeline of `kid`: a late successor extends the current
    /// key's signing (and so its publication), a new successor ends it, a
    /// revocation sets `revoked`.
    Retime {
        /// The key to change.
        kid: String,
        /// The new timeline.
        timeline: Timeline,
    },
    /// Delete `kid`: expired, or revoked and past its planned expiry.
    Delete {
        /// The key to delete.
        kid: String,
    },
}

/// Decides what the store needs at `now` so that every algorithm has
/// exactly one signing key, each successor is published `publish_ahead`
/// before it signs, and expired keys go.
pub fn plan(keys: &[KeyMeta], algorithms: &[Algorithm], policy: &Policy, now: UnixTime) -> Vec<Action> {
    let mut actions = Vec::new();
    for &alg in algorithms {
        let Some(current) = signer(keys, alg, now) else {
            // No key signs for `alg`: the first keys of a store (or of a
            // newly configured algorithm) sign at once. A pending key that
            // would sign later is not waited for.
            if let Some(pending) = keys
                .iter()
                .filter(|k| k.alg == alg && k.timeline.state(now) == KeyState::Pending)
                .min_by_key(|k| k.timeline.activates)
            {
                // Bring the earliest pending key forward rather than adding
                // another one.
                let mut t = pending.timeline;
                t.activates = now;
                actions.push(Action::Retime { kid: pending.kid.clone(), timeline: t });
            } else {
                actions.push(Action::Create { alg, timeline: policy.immediate(now) });
            }
            continue;
        };
        // A key that gave way to another (an empty signing window) is no
        // successor: it never signs.
        let successor = keys.iter().any(|k| {
            k.alg == alg
                && k.timeline.activates > current.timeline.activates
                && k.timeline.activates < k.timeline.deactivates
                && k.timeline.state(now) == KeyState::Pending
        });
        // One second early: the successor is published at the next whole
        // second and so activates exactly at the current key's end.
        let due = current.timeline.deactivates.saturating_sub(policy.publish_ahead).saturating_sub_secs(1);
        if !successor && now >= due {
            // Instants are whole seconds and `now` is truncated: published
            // at the next whole second, the key is in the store by then (it
            // is written right after this plan), so its window is never
            // shorter than `publish_ahead`.
            let next = policy.ahead(published_after(now), current.timeline.deactivates);
            if next.activates > current.timeline.deactivates {
                // Late (the service was down): the current key signs until
                // the successor activates, and stays published for the
                // tokens it signs meanwhile.
                let mut t = current.timeline;
                t.deactivates = next.activates;
                t.expires = t.expires.max(next.activates.saturating_add(policy.retire_after));
                actions.push(Action::Retime { kid: current.kid.clone(), timeline: t });
            }
            actions.push(Action::Create { alg, timeline: next });
        }
    }
    // An expired key (revoked or not) is never a signer: `signer` skips it.
    actions.extend(keys.iter().filter(|k| now >= k.timeline.expires).map(|k| Action::Delete { kid: k.kid.clone() }));
    actions
}

/// What adding a key of `alg` as the successor of its current signer
/// needs (`keys rotate`, `keys import`, a revoke's replacement): the new
/// key is published at the next whole second after `now` (the caller made
/// it before reading the clock, so it is in the store by then) and signs
/// `publish_ahead` later, or at `now` when `immediately` (`--now`).
///
/// Pending keys of `alg` give way (an empty signing window at the new
/// key's activation, where the new key outranks them; they stay published
/// until they expire), and the current signer signs exactly until the new
/// key does (earlier with `--now`, later when its window ends first), then
/// stays published for `retire_after`.
///
/// The order of the actions is what a crash between two writes of a
/// folder may cut: an extension of the current signer comes before the
/// [`Action::Create`] (alone, it only publishes longer), and what ends a
/// window (a pending key giving way, the signer stopping early) after it
/// (alone, before the new key exists, it would hand signing to a key
/// before its time).
pub fn successor(keys: &[KeyMeta], alg: Algorithm, policy: &Policy, now: UnixTime, immediately: bool) -> Vec<Action> {
    let timeline = if immediately {
        policy.immediate(now)
    } else {
        let published = published_after(now);
        policy.ahead(published, published)
    };
    let (mut early, mut late) = (Vec::new(), Vec::new());
    for k in keys.iter().filter(|k| k.alg == alg && k.timeline.state(now) == KeyState::Pending) {
        let mut t = k.timeline;
        // Its activation is the new key's (never later, or it would
        // outrank it); it was written before now, so `published` may move
        // back to it.
        t.activates = timeline.activates;
        t.published = t.published.min(t.activates);
        t.deactivates = t.activates;
        t.expires = t.expires.max(t.deactivates);
        late.push(Action::Retime { kid: k.kid.clone(), timeline: t });
    }
    if let Some(cur) = signer(keys, alg, now).filter(|c| c.timeline.deactivates != timeline.activates) {
        let mut t = cur.timeline;
        let extends = timeline.activates > t.deactivates;
        t.deactivates = timeline.activates;
        t.expires = t.expires.max(t.deactivates.saturating_add(policy.retire_after));
        let retime = Action::Retime { kid: cur.kid.clone(), timeline: t };
        if extends { early.push(retime) } else { late.push(retime) }
    }
    early.push(Action::Create { alg, timeline });
    early.extend(late);
    early
}

/// What `keys revoke <kid>` needs at `now`: the key leaves the JWKS at
/// once; if it was signing, a [`successor`] of its algorithm signs at once
/// (planned on the keys as they are after the revocation, and written
/// before the revocation: a crash between the two leaves the replacement
/// signing and the key to revoke again, never no signer). `Err` names why
/// nothing can be done (no such key, already revoked).
pub fn revoke(keys: &[KeyMeta], kid: &str, policy: &Policy, now: UnixTime) -> Result<Vec<Action>, String> {
    let Some(key) = keys.iter().find(|k| k.kid == kid) else {
        return Err(format!("no key with kid `{kid}`"));
    };
    if key.timeline.revoked.is_some() {
        return Err(format!("key {kid} is already revoked"));
    }
    let was_signing = signer(keys, key.alg, now).is_some_and(|s| s.kid == kid);
    let mut timeline = key.timeline;
    timeline.revoked = Some(now);
    let revocation = Action::Retime { kid: kid.to_string(), timeline };
    let mut actions = Vec::new();
    if was_signing {
        let after = retimed(keys, std::slice::from_ref(&revocation));
        actions.extend(successor(&after, key.alg, policy, now, true));
    }
    actions.push(revocation);
    Ok(actions)
}

/// `keys` with the [`Action::Retime`]s and [`Action::Delete`]s of
/// `actions` applied (a created key has no kid until it is made).
pub fn retimed(keys: &[KeyMeta], actions: &[Action]) -> Vec<KeyMeta> {
    let mut out: Vec<KeyMeta> = keys.to_vec();
    for a in actions {
        match a {
            Action::Retime { kid, timeline } => {
                if let Some(k) = out.iter_mut().find(|k| &k.kid == kid) {
                    k.timeline = *timeline;
                }
            }
            Action::Delete { kid } => out.retain(|k| &k.kid != kid),
            Action::Create { .. } => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;
