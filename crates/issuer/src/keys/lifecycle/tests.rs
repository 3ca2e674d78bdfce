use std::collections::HashMap;

use super::*;

const H: u64 = 3600;
const T0: u64 = 1_800_000_000;

fn policy() -> Policy {
    Policy {
        rotation_period: Duration::from_secs(H),
        publish_ahead: Duration::from_secs(10 * 60),
        retire_after: Duration::from_secs(20 * 60),
    }
}

/// Applies `actions` to `keys` the way the store does.
fn apply(keys: &mut Vec<KeyMeta>, actions: Vec<Action>, next_id: &mut u32) {
    for a in actions {
        match a {
            Action::Create { alg, timeline } => {
                *next_id += 1;
                keys.push(KeyMeta { kid: format!("k{next_id}"), alg, timeline });
            }
            Action::Retime { kid, timeline } => {
                keys.iter_mut().filter(|k| k.kid == kid).for_each(|k| k.timeline = timeline);
            }
            Action::Delete { kid } => keys.retain(|k| k.kid != kid),
        }
    }
}

#[test]
fn state_is_derived_from_the_instants() {
    let t = policy().ahead(UnixTime::from_secs(T0), UnixTime::from_secs(0));
    assert_eq!(t.state(UnixTime::from_secs(T0)), KeyState::Pending);
    assert!(t.is_published(UnixTime::from_secs(T0)));
    assert_eq!(t.state(UnixTime::from_secs(T0 + 600)), KeyState::Active);
    assert_eq!(t.state(UnixTime::from_secs(T0 + 600 + H)), KeyState::Retiring);
    assert_eq!(t.state(UnixTime::from_secs(T0 + 600 + H + 1200)), KeyState::Expired);
    assert!(!t.is_published(UnixTime::from_secs(T0 + 600 + H + 1200)));
    let revoked = Timeline { revoked: Some(UnixTime::from_secs(T0 + 700)), ..t };
    assert_eq!(revoked.state(UnixTime::from_secs(T0 + 700)), KeyState::Revoked);
    assert!(!revoked.is_published(UnixTime::from_secs(T0 + 700)));
}

#[test]
fn a_new_store_gets_one_immediate_key_per_algorithm() {
    let actions = plan(&[], &Algorithm::ALL, &policy(), UnixTime::from_secs(T0));
    assert_eq!(actions.len(), Algorithm::ALL.len(), "one slot per algorithm, all seven");
    for a in actions {
        assert!(
            matches!(a, Action::Create { timeline, .. } if timeline.activates == UnixTime::from_secs(T0) && timeline.published == UnixTime::from_secs(T0))
        );
    }
}

#[test]
fn successor_is_created_publish_ahead_before_the_current_key_ends() {
    let p = policy();
    let mut keys =
        vec![KeyMeta { kid: "a".into(), alg: Algorithm::ES256, timeline: p.immediate(UnixTime::from_secs(T0)) }];
    assert!(plan(&keys, &[Algorithm::ES256], &p, UnixTime::from_secs(T0 + H - 602)).is_empty());
    // Planned one second early: published at the next whole second, after
    // the key is written, so its window is exactly publish_ahead.
    let actions = plan(&keys, &[Algorithm::ES256], &p, UnixTime::from_secs(T0 + H - 601));
    assert_eq!(
        actions,
        vec![Action::Create {
            alg: Algorithm::ES256,
            timeline: p.timeline(UnixTime::from_secs(T0 + H - 600), UnixTime::from_secs(T0 + H))
        }]
    );
    apply(&mut keys, actions, &mut 0);
    assert!(
        plan(&keys, &[Algorithm::ES256], &p, UnixTime::from_secs(T0 + H - 300)).is_empty(),
        "one successor per slot"
    );
    assert_eq!(signer(&keys, Algorithm::ES256, UnixTime::from_secs(T0 + H - 1)).unwrap().kid, "a");
    assert_eq!(signer(&keys, Algorithm::ES256, UnixTime::from_secs(T0 + H)).unwrap().kid, "k1");
}

#[test]
fn rotate_now_in_the_second_a_successor_activated_signs_with_the_new_key() {
    // Instants are whole seconds: `z` (a scheduled successor) activates at
    // T0 + 600, and `keys rotate --now` in that same second adds `a`,
    // activating at once and ending `z` (deactivates = now). The kid order
    // must not pick the retired `z` (the planner would then extend it and
    // create yet another key, and `a` would never sign).
    let p = policy();
    let now = T0 + 600;
    let mut retired = p.ahead(UnixTime::from_secs(T0), UnixTime::from_secs(T0 + 600));
    retired.deactivates = UnixTime::from_secs(now);
    let keys = vec![
        KeyMeta { kid: "z".into(), alg: Algorithm::ES256, timeline: retired },
        KeyMeta { kid: "a".into(), alg: Algorithm::ES256, timeline: p.immediate(UnixTime::from_secs(now)) },
    ];
    assert_eq!(signer(&keys, Algorithm::ES256, UnixTime::from_secs(now)).unwrap().kid, "a");
    assert!(plan(&keys, &[Algorithm::ES256], &p, UnixTime::from_secs(now)).is_empty(), "no extension, no extra key");
    // Two immediate keys in one second: the later published signs.
    let keys = vec![
        KeyMeta {
            kid: "z".into(),
            alg: Algorithm::ES256,
            timeline: Timeline { published: UnixTime::from_secs(now - 5), ..p.immediate(UnixTime::from_secs(now)) },
        },
        KeyMeta { kid: "a".into(), alg: Algorithm::ES256, timeline: p.immediate(UnixTime::from_secs(now)) },
    ];
    assert_eq!(signer(&keys, Algorithm::ES256, UnixTime::from_secs(now)).unwrap().kid, "a");
}

#[test]
fn a_late_successor_extends_the_current_key_instead_of_leaving_a_gap() {
    let p = policy();
    let keys = vec![KeyMeta { kid: "a".into(), alg: Algorithm::RS256, timeline: p.immediate(UnixTime::from_secs(T0)) }];
    let now = T0 + H + 300; // the service was down past the key's end
    let actions = plan(&keys, &[Algorithm::RS256], &p, UnixTime::from_secs(now));
    let create = p.timeline(UnixTime::from_secs(now + 1), UnixTime::from_secs(now + 1 + 600));
    assert!(actions.contains(&Action::Create { alg: Algorithm::RS256, timeline: create }), "{actions:?}");
    let Some(Action::Retime { timeline, .. }) = actions.iter().find(|a| matches!(a, Action::Retime { .. })) else {
        panic!("no extension in {actions:?}");
    };
    assert_eq!(timeline.deactivates, UnixTime::from_secs(now + 1 + 600));
    assert_eq!(timeline.expires, UnixTime::from_secs(now + 1 + 600 + 1200));
}

/// A year of hourly rotation, checked every minute, with two outages: one
/// shorter than the retirement window (the late successor extends the
/// current key) and one longer (every key expired: the store starts over
/// like a new one).
#[test]
fn a_year_of_hourly_rotation_keeps_every_invariant() {
    let p = policy();
    let algs = [Algorithm::RS256, Algorithm::ES256];
    let mut keys = Vec::new();
    let mut next_id = 0;
    // kid -> last instant it signed
    let mut last_signed: HashMap<String, u64> = HashMap::new();
    let mut immediate: Vec<String> = Vec::new();
    let short = T0 + 100 * 24 * H + 7..T0 + 100 * 24 * H + 7 + 15 * 60;
    let long = T0 + 200 * 24 * H..T0 + 200 * 24 * H + 5 * H;
    let step = 120;
    let mut now = T0;
    let end = T0 + 365 * 24 * H;
    let mut creations = 0;
    while now < end {
        if short.contains(&now) || long.contains(&now) {
            now += step;
            continue;
        }
        let actions = plan(&keys, &algs, &p, UnixTime::from_secs(now));
        let mut id = next_id;
        for a in &actions {
            if let Action::Create { timeline, .. } = a {
                id += 1;
                creations += 1;
                if timeline.activates == UnixTime::from_secs(now) {
                    immediate.push(format!("k{id}"));
                }
            }
        }
        apply(&mut keys, actions, &mut next_id);
        assert!(plan(&keys, &algs, &p, UnixTime::from_secs(now)).is_empty(), "a plan is complete in one step");
        for alg in algs {
            // Invariant 3: exactly one signing key per algorithm.
            let s = signer(&keys, alg, UnixTime::from_secs(now)).unwrap_or_else(|| panic!("no {alg} signer at {now}"));
            // Invariant 1: published for publish_ahead before signing,
            // except keys created to sign at once.
            if !immediate.contains(&s.kid) {
                assert!(
                    now >= (s.timeline.published.saturating_add(p.publish_ahead)).as_secs(),
                    "{} signs too early",
                    s.kid
                );
            }
            last_signed.insert(s.kid.clone(), now);
        }
        // Invariant 2: a key that signed stays published until its last
        // token expires plus max_age and grace (retire_after covers them).
        for (kid, &t) in &last_signed {
            if now < t + p.retire_after.as_secs() {
                let k = keys.iter().find(|k| &k.kid == kid).unwrap_or_else(|| panic!("{kid} deleted early"));
                assert!(k.timeline.is_published(UnixTime::from_secs(now)), "{kid} unpublished at {now}, signed at {t}");
            }
        }
        assert!(keys.len() <= 3 * algs.len(), "keys pile up: {}", keys.len());
        // Every timeline the planner writes passes the load-time check.
        for k in &keys {
            assert_eq!(p.check(&k.timeline), Ok(()), "{} at {now}", k.kid);
        }
        now += step;
    }
    // The first keys, and the keys after the outage that outlived them all.
    assert_eq!(immediate.len(), 4, "{immediate:?}");
    assert!(creations > 2 * 365 * 23, "created {creations} keys");
}
