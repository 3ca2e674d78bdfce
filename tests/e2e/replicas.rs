//! Replicas on one PostgreSQL key store (issue 7), with real `serve`
//! processes and a real server:
//!
//! - three replicas under a mixed ES256/RS256 load for a minute of fast
//!   rotation: every token verifies against the JWKS of a random replica,
//!   one successor per slot, identical ETags within 1 s of each change;
//! - `kill -9` of the rotation leader while it generates a successor;
//! - PostgreSQL stopped and started under load (a server of the test's own);
//! - the `keys` commands and `keys migrate` against the database.
//!
//! They skip loudly without PostgreSQL on 127.0.0.1:5432, and fail instead
//! under `JWKS_TEST_REQUIRE_POSTGRES=1` (set by `.ci/run`).

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use jsonwebtoken::jwk::JwkSet;
use jwks_e2e::{
    ES_CLIENT, Issuer, IssuerOptions, PgDb, PrivatePostgres, RS_CLIENT, TEST_KEK, bin, poll, serial,
    skip_without_postgres,
};
use serde_json::Value;

use crate::faults::{
    XorShift, assert_one_key_per_slot, assert_signers_switch_at_the_instant, blocking_http, created_kids,
    fast_rotation, jwks_with_etag, keys_list, metric, readyz, try_token, unix_now, verify,
};

fn pg_options(url: &str) -> IssuerOptions {
    IssuerOptions { postgres: Some(url.to_string()), kek: Some(TEST_KEK.to_string()), ..fast_rotation() }
}

/// Starts `n` replicas at the same moment (they migrate and bootstrap the
/// store concurrently).
fn start_replicas(n: usize, opts: &IssuerOptions) -> Vec<Issuer> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(|| Issuer::start(opts))).collect();
        handles.into_iter().map(|h| h.join().expect("replica started")).collect()
    })
}

/// Which replicas report `jwks_issuer_rotation_leader 1`.
fn leaders(replicas: &[Issuer]) -> Vec<usize> {
    replicas
        .iter()
        .enumerate()
        .filter(|(_, r)| metric(r, "jwks_issuer_rotation_leader") == Some(1.0))
        .map(|(i, _)| i)
        .collect()
}

/// What a load thread reports: the replica's index and the token, or why not.
type Outcome = (usize, Result<String, String>);

/// Token load on every replica from one thread each, until `stop`: every
/// token (or failure) is sent on the channel with the replica's index.
fn load(
    replicas: &[Issuer],
    stop: &Arc<AtomicBool>,
    pause: Duration,
) -> (Vec<std::thread::JoinHandle<()>>, mpsc::Receiver<Outcome>) {
    let (tx, rx) = mpsc::channel();
    let handles = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (url, stop, tx) = (r.url.clone(), stop.clone(), tx.clone());
            std::thread::spawn(move || {
                let http = blocking_http();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let client = [ES_CLIENT, RS_CLIENT][(n + i) % 2];
                    n += 1;
                    if tx.send((i, try_token(&http, &url, client))).is_err() {
                        return;
                    }
                    std::thread::sleep(pause);
                }
            })
        })
        .collect();
    (handles, rx)
}

/// Every key's timeline from `keys list --json`, merged into `into`.
fn record_timelines(issuer: &Issuer, into: &mut BTreeMap<String, Value>) {
    for k in keys_list(issuer)["keys"].as_array().expect("keys") {
        into.insert(k["kid"].as_str().expect("kid").to_string(), k.clone());
    }
}

#[test]
fn three_replicas_on_one_database_publish_one_jwks_and_rotate_once() {
    let Some(db) = PgDb::create("replicas") else { return };
    let _serial = serial();
    const RUN: Duration = Duration::from_secs(60);
    const AGREE_WITHIN: Duration = Duration::from_secs(1);
    let replicas = start_replicas(3, &pg_options(&db.url));
    let http = blocking_http();
    let mut rng = XorShift::from_env("three_replicas");
    let stop = Arc::new(AtomicBool::new(false));
    let (workers, tokens) = load(&replicas, &stop, Duration::from_millis(20));
    let started = Instant::now();

    let mut latest: Vec<JwkSet> = vec![JwkSet { keys: Vec::new() }; 3];
    let mut timelines = BTreeMap::new();
    let (mut last_sample, mut diverged_since) = (Instant::now() - Duration::from_secs(10), None::<Instant>);
    let (mut changes, mut longest, mut last_etag) = (0usize, Duration::ZERO, String::new());
    let (mut verified, mut per_alg, mut failures) = (0usize, BTreeMap::<String, usize>::new(), Vec::new());
    let mut leader_seen = Vec::new();
    while started.elapsed() < RUN {
        let fetched: Vec<(String, String)> =
            replicas.iter().map(|r| jwks_with_etag(&http, r).expect("replica JWKS")).collect();
        let now = Instant::now();
        for (i, (_, body)) in fetched.iter().enumerate() {
            latest[i] = serde_json::from_str(body).expect("JWKS parses");
        }
        if fetched.iter().all(|f| f == &fetched[0]) {
            if let Some(since) = diverged_since.take() {
                longest = longest.max(now - since);
            }
            if fetched[0].0 != last_etag {
                changes += 1;
                last_etag = fetched[0].0.clone();
            }
        } else {
            let since = *diverged_since.get_or_insert(now);
            assert!(
                now - since <= AGREE_WITHIN,
                "the replicas' JWKS differ for {:?} (more than {AGREE_WITHIN:?}): {:?}",
                now - since,
                fetched.iter().map(|f| &f.0).collect::<Vec<_>>()
            );
        }
        // Every token so far, against the JWKS of a random replica, fetched
        // within the last round: a key signs only `publish_ahead` (2 s)
        // after it is published, so any replica that reloaded within 1 s
        // already publishes it.
        while let Ok((from, result)) = tokens.try_recv() {
            match result {
                Ok(token) => {
                    let alg = jsonwebtoken::decode_header(&token).map(|h| format!("{:?}", h.alg)).unwrap_or_default();
                    let r = rng.below(3) as usize;
                    if let Err(e) = verify(&token, &latest[r], &replicas[from].url) {
                        failures.push(format!("token of replica {from} against replica {r}'s JWKS: {e}"));
                    }
                    verified += 1;
                    *per_alg.entry(alg).or_default() += 1;
                }
                Err(e) => failures.push(format!("replica {from}: {e}")),
            }
        }
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            record_timelines(&replicas[rng.below(3) as usize], &mut timelines);
            let l = leaders(&replicas);
            assert_eq!(l.len(), 1, "exactly one rotation leader at a time: {l:?}");
            leader_seen.push(l[0]);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("load thread");
    }
    assert!(failures.is_empty(), "{} failures out of {verified} tokens: {:#?}", failures.len(), &failures[..]);

    record_timelines(&replicas[0], &mut timelines);
    let keys_per_alg = assert_one_key_per_slot(&timelines, true);
    for (alg, n) in &keys_per_alg {
        assert!(*n >= 10, "{alg}: only {n} keys in {RUN:?}: no rotation");
    }
    // Expired keys were deleted; every key still stored was seen listed.
    let stored = db.sql("SELECT kid FROM jwks_issuer_keys");
    let unseen: Vec<&str> = stored.lines().filter(|k| !timelines.contains_key(*k)).collect();
    assert!(unseen.is_empty(), "stored keys never listed: {unseen:?}");
    // Each key was created once, by one replica: the leader.
    let mut created: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in replicas.iter().enumerate() {
        for kid in created_kids(&r.full_log()) {
            created.entry(kid).or_default().push(i);
        }
    }
    let twice: Vec<_> = created.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(twice.is_empty(), "keys created more than once: {twice:?}");
    let leader = leader_seen[0];
    assert!(leader_seen.iter().all(|l| *l == leader), "the leader changed without a failure: {leader_seen:?}");
    for (i, r) in replicas.iter().enumerate() {
        let said = r.full_log().contains("took the rotation leader role");
        assert_eq!(said, i == leader, "replica {i}: only the leader logs taking the role");
    }
    let by_others: Vec<_> = created.iter().filter(|(_, by)| by[0] != leader).collect();
    // At start every replica may create a missing first key under the lock;
    // after that, only the leader rotates.
    assert!(by_others.len() <= 2, "followers created keys: {by_others:?}");
    eprintln!(
        "three replicas: {:.1} s, {verified} tokens verified ({per_alg:?}), {changes} JWKS changes, longest \
         disagreement {longest:?}, keys per algorithm {keys_per_alg:?}, {} created, leader replica {leader}",
        started.elapsed().as_secs_f64(),
        created.len()
    );
}

#[test]
fn killing_the_leader_mid_rotation_hands_over_without_a_duplicate_or_gap() {
    let Some(db) = PgDb::create("killleader") else { return };
    let _serial = serial();
    // 4096-bit RSA successors take the leader a while to make: the kill
    // lands while it holds the change lock.
    let opts = IssuerOptions { rotation_period: "6s", publish_ahead: "3s", rsa_bits: 4096, ..pg_options(&db.url) };
    let mut replicas = start_replicas(3, &opts);
    let http = blocking_http();
    let mut timelines = BTreeMap::new();
    let (mut mid_rotation, mut takeovers) = (0usize, Vec::new());
    let change_lock_held = || {
        db.sql(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.objid = 2 AND l.granted",
        ) != "0"
    };
    for round in 0..3 {
        let leader = poll("one leader", Duration::from_secs(10), Duration::from_millis(50), || {
            let l = leaders(&replicas);
            (l.len() == 1).then(|| l[0])
        });
        // Wait for the leader to be inside a rotation (the change lock held
        // on two looks in a row), at most two rotation periods.
        let deadline = Instant::now() + Duration::from_secs(12);
        let mut seen = 0;
        while Instant::now() < deadline && seen < 2 {
            seen = if change_lock_held() { seen + 1 } else { 0 };
        }
        let during = seen >= 2;
        mid_rotation += usize::from(during);
        record_timelines(&replicas[(leader + 1) % 3], &mut timelines);
        replicas[leader].kill9();
        let killed = Instant::now();
        let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let new_leader = poll("a new leader", Duration::from_secs(10), Duration::from_millis(20), || {
            let l: Vec<usize> = survivors
                .iter()
                .copied()
                .filter(|i| metric(&replicas[*i], "jwks_issuer_rotation_leader") == Some(1.0))
                .collect();
            (l.len() == 1).then(|| l[0])
        });
        takeovers.push(killed.elapsed());
        // The survivors sign throughout.
        for &i in &survivors {
            for client in [ES_CLIENT, RS_CLIENT] {
                let token = try_token(&http, &replicas[i].url, client).expect("a survivor signs");
                let jwks: JwkSet = serde_json::from_str(&jwks_with_etag(&http, &replicas[new_leader]).expect("JWKS").1)
                    .expect("JWKS parses");
                verify(&token, &jwks, &replicas[i].url).expect("verifies");
            }
        }
        eprintln!(
            "round {round}: killed leader {leader} {} rotation; replica {new_leader} led after {:?}",
            if during { "during" } else { "outside" },
            killed.elapsed()
        );
        replicas[leader].restart();
    }
    // Let the new leader finish what the old one left, then check the slots.
    std::thread::sleep(Duration::from_secs(7));
    record_timelines(&replicas[0], &mut timelines);
    let listed = keys_list(&replicas[0]);
    let current: BTreeMap<String, Value> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| (k["kid"].as_str().expect("kid").to_string(), k.clone()))
        .collect();
    // Keys deleted after expiry are gone from the store; the rest must meet.
    let keys_per_alg = assert_one_key_per_slot(&timelines, true);
    assert_one_key_per_slot(&current, true);
    for alg in ["ES256", "RS256"] {
        let pending = current.values().filter(|k| k["alg"] == alg && k["state"] == "pending").count();
        assert!(pending <= 1, "{alg}: {pending} pending successors");
    }
    assert!(mid_rotation >= 1, "no kill landed during a rotation (3 tries)");
    let slowest = takeovers.iter().max().copied().unwrap_or_default();
    assert!(slowest <= Duration::from_secs(3), "takeover took {slowest:?}");
    eprintln!(
        "kill the leader: 3 kills ({mid_rotation} during a rotation), takeovers {takeovers:?}, keys per algorithm \
         {keys_per_alg:?}, unix time {}",
        unix_now()
    );
}

#[test]
fn postgres_stopped_and_started_under_load_costs_no_token() {
    let _serial = serial();
    let pg = match PrivatePostgres::start() {
        Ok(pg) => pg,
        Err(e) => return skip_without_postgres("postgres_restart", &format!("cannot run a private PostgreSQL: {e}")),
    };
    let Some(db) = PgDb::create_on(pg.port, "restart") else { return };
    let opts = IssuerOptions { rotation_period: "1h", ..pg_options(&db.url) };
    let replicas = start_replicas(2, &opts);
    let stop = Arc::new(AtomicBool::new(false));
    let (workers, tokens) = load(&replicas, &stop, Duration::from_millis(10));
    std::thread::sleep(Duration::from_secs(2));

    pg.stop().expect("stop PostgreSQL");
    let down = Instant::now();
    for r in &replicas {
        poll("/readyz degraded", Duration::from_secs(5), Duration::from_millis(50), || {
            let (status, body) = readyz(r);
            assert_eq!(status, 200, "a replica with its keys in memory stays in service: {body}");
            (body["status"] == "degraded").then_some(())
        });
    }
    let degraded_after = down.elapsed();
    // A replica started now cannot load its keys: it refuses to start.
    let refused = Issuer::try_start(&opts).expect_err("a replica starts without its database");
    assert!(
        refused.contains("PostgreSQL") && refused.contains(&format!("127.0.0.1:{}", pg.port)),
        "the failure names the database: {refused}"
    );
    std::thread::sleep(Duration::from_secs(5).saturating_sub(down.elapsed()));
    let outage = down.elapsed();
    pg.resume().expect("start PostgreSQL");
    let up = Instant::now();
    for r in &replicas {
        poll("/readyz ready again", Duration::from_secs(10), Duration::from_millis(50), || {
            (readyz(r).1["status"] == "ready").then_some(())
        });
    }
    let ready_after = up.elapsed();

    // Caught up: a change made now reaches both replicas.
    let out = replicas[0].cli(&["keys", "rotate", "--alg", "ES256", "--now"]);
    let kid = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .map(str::to_string)
        .expect("keys rotate prints the kid");
    let changed = Instant::now();
    for r in &replicas {
        poll("the new key served", Duration::from_secs(3), Duration::from_millis(20), || {
            r.served_kids().contains(&kid).then_some(())
        });
    }
    let seen_after = changed.elapsed();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("load thread");
    }
    let results: Vec<Outcome> = tokens.try_iter().collect();
    let failed: Vec<&String> = results.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} of {} token requests failed: {:?}", failed.len(), results.len(), &failed[..]);
    eprintln!(
        "postgres restart: {} tokens, 0 failed; /readyz degraded after {degraded_after:?}, outage {outage:?}, ready \
         {ready_after:?} after the restart, a rotation seen by both replicas after {seen_after:?}",
        results.len()
    );
}

#[test]
fn keys_commands_and_migrate_work_against_the_database() {
    let Some(db) = PgDb::create("keyscli") else { return };
    // A folder store with a key for each algorithm.
    let mut folder = Issuer::start(&IssuerOptions::default());
    let folder_kids = {
        let mut k = folder.served_kids();
        k.sort();
        k
    };
    folder.kill9();
    let migrate = |kek: Option<&str>| {
        let mut cmd = Command::new(bin("jwks-issuer"));
        cmd.arg("--config")
            .arg(&folder.config)
            .args(["keys", "migrate", "--from-dir"])
            .arg(&folder.keys_dir)
            .args(["--to", &db.url])
            .env_remove("JWKS_ISSUER_KEK")
            .env_remove("JWKS_ISSUER_KEYS_DIR")
            .env_remove("JWKS_ISSUER_KEYS_POSTGRES")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        if let Some(k) = kek {
            cmd.env("JWKS_ISSUER_KEK", k);
        }
        cmd.output().expect("run keys migrate")
    };
    let out = migrate(None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWKS_ISSUER_KEK"), "{out:?}");
    let first = migrate(Some(TEST_KEK));
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success() && text.contains("2 copied, 0 already present"), "{first:?}");
    let again = migrate(Some(TEST_KEK));
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success() && text.contains("0 copied, 2 already present"), "idempotent: {again:?}");
    assert_eq!(db.sql("SELECT count(*) FROM jwks_issuer_keys WHERE document ? 'pkcs8'"), "0", "nothing in clear");

    // A replica on the database serves the migrated keys, timelines kept.
    let opts = IssuerOptions { publish_ahead: "2s", ..pg_options(&db.url) };
    let replica = Issuer::start(&IssuerOptions { rotation_period: "1h", ..opts });
    let mut served = replica.served_kids();
    served.sort();
    assert_eq!(served, folder_kids);
    let es = replica.kid("ES256", "active").expect("an active ES256 key");
    // `keys revoke` on the database: the replica drops the kid promptly.
    let out = replica.cli(&["keys", "revoke", &es]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"), "{out:?}");
    let revoked = Instant::now();
    poll("the revoked kid gone", Duration::from_secs(3), Duration::from_millis(20), || {
        (!replica.served_kids().contains(&es)).then_some(())
    });
    let gone_after = revoked.elapsed();
    // `keys import` into the database: the replica publishes the key.
    let der = jwks_jose::SigningKey::generate(jwks_jose::Algorithm::ES256, 2048).expect("generate");
    let imported =
        jwks_jose::SigningKey::from_pkcs8(jwks_jose::Algorithm::ES256, &der).expect("parse").kid().to_string();
    let body = crate::attacks::std_b64(&der);
    let label = concat!("PRIVATE", " KEY");
    let pem = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
    let pem_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(pem_file.path(), pem).expect("write PEM");
    let out = replica.cli(&["keys", "import", "--alg", "ES256", "--pem", pem_file.path().to_str().expect("utf-8")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&imported), "{out:?}");
    poll("the imported key published", Duration::from_secs(3), Duration::from_millis(20), || {
        replica.served_kids().contains(&imported).then_some(())
    });
    assert!(db.sql("SELECT kid FROM jwks_issuer_keys").lines().any(|k| k == imported));

    let listed = keys_list(&replica);
    let states: Vec<(&str, &str)> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| (k["alg"].as_str().unwrap_or(""), k["state"].as_str().unwrap_or("")))
        .collect();
    assert!(states.contains(&("ES256", "revoked")) && states.contains(&("ES256", "active")), "{states:?}");
    eprintln!("keys migrate: 2 copied then 0; revoke through the database left the JWKS after {gone_after:?}");
}

#[test]
fn a_client_assertion_or_dpop_proof_replayed_at_another_replica_is_refused() {
    use jwks_jose::{Algorithm, JwkSet, SigningKey, compact};
    let Some(db) = PgDb::create("replay") else { return };
    const ISSUER: &str = "https://issuer.replicas.e2e.test";
    const CLIENT: &str = "e2e-kjwt";
    let key = SigningKey::from_pkcs8(Algorithm::ES256, &SigningKey::generate(Algorithm::ES256, 2048).unwrap()).unwrap();
    let set = JwkSet { keys: vec![key.public_jwk()] };
    let opts = IssuerOptions {
        rotation_period: "1h",
        issuer: Some(ISSUER.into()),
        extra_toml: format!(
            "\n[[clients]]\nid = \"{CLIENT}\"\njwks_file = \"client-jwks.json\"\nscopes = [\"read\"]\n\
             audiences = [\"{}\"]\n",
            jwks_e2e::AUDIENCE
        ),
        files: vec![("client-jwks.json".into(), serde_json::to_string(&set).unwrap())],
        ..pg_options(&db.url)
    };
    let replicas = start_replicas(2, &opts);
    let http = blocking_http();
    let now = unix_now();
    let sign = |header: Value, claims: Value| {
        compact::sign(&key, header.to_string().as_bytes(), claims.to_string().as_bytes()).unwrap()
    };
    let post = |replica: &Issuer, form: &[(&str, &str)], dpop: Option<&str>, basic: bool| {
        let mut req = http.post(replica.token_endpoint()).form(form);
        if let Some(p) = dpop {
            req = req.header("DPoP", p);
        }
        if basic {
            req = req.basic_auth(ES_CLIENT, Some(jwks_e2e::CLIENT_SECRET));
        }
        let resp = req.send().expect("POST /token");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().expect("JSON"))
    };

    // private_key_jwt: the assertion is single-use across replicas.
    let assertion = sign(
        serde_json::json!({"alg": "ES256", "kid": key.kid(), "typ": "JWT"}),
        serde_json::json!({"iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "iat": now,
                           "exp": now + 60, "jti": "replayed-across-replicas"}),
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    let (status, body) = post(&replicas[0], &form, None, false);
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&replicas[1], &form, None, false);
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    assert_eq!(body["error_description"], "client authentication failed", "{body}");

    // DPoP: a proof is single-use across replicas; a fresh one works.
    let proof = |jti: &str| {
        sign(
            serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()}),
            serde_json::json!({"jti": jti, "htm": "POST", "htu": format!("{ISSUER}/token"), "iat": unix_now()}),
        )
    };
    let cc = [("grant_type", "client_credentials")];
    let first = proof("proof-1");
    let (status, body) = post(&replicas[1], &cc, Some(&first), true);
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    let (status, body) = post(&replicas[0], &cc, Some(&first), true);
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
    let (status, body) = post(&replicas[0], &cc, Some(&proof("proof-2")), true);
    assert_eq!(status, 200, "{body}");
    assert_eq!(db.sql("SELECT count(*) FROM jwks_issuer_replay"), "3", "one claim per single-use id");
}

#[test]
fn three_replicas_switch_signer_at_the_activation_instant() {
    let Some(db) = PgDb::create("switch") else { return };
    let _serial = serial();
    let replicas = start_replicas(3, &pg_options(&db.url));
    let servers: Vec<&Issuer> = replicas.iter().collect();
    assert_signers_switch_at_the_instant(&servers, Duration::from_secs(14), 0.25);
}
