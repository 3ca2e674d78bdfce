//! Faults of the key lifecycle (issue 3, "Faults that must be tested"),
//! with real `jwks-issuer serve` processes:
//!
//! - `kill -9` at random moments during fast rotation, 50 times in a row;
//! - a key folder that cannot be written when a successor is due;
//! - two servers on one key folder for a minute.
//!
//! The random moments come from a seeded xorshift (`JWKS_E2E_SEED` to
//! replay a run); the seed is printed.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use jwks_e2e::{AUDIENCE, CLIENT_SECRET, ES_CLIENT, Issuer, IssuerOptions, RS_CLIENT, http_get, poll, serial};
use serde_json::Value;

/// A tiny xorshift64 generator: reproducible random moments without a dependency.
pub(crate) struct XorShift(u64);

impl XorShift {
    /// Seeded from `JWKS_E2E_SEED` when set, else a fixed seed (the same
    /// moments in every CI run); the seed is printed.
    pub(crate) fn from_env(test: &str) -> Self {
        let seed = std::env::var("JWKS_E2E_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_2024_0003);
        eprintln!("{test}: seed {seed} (JWKS_E2E_SEED={seed} replays it)");
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

pub(crate) fn blocking_http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("reqwest client")
}

/// A client-credentials token of `client` from the server at `url`, or why not.
pub(crate) fn try_token(http: &reqwest::blocking::Client, url: &str, client: &str) -> Result<String, String> {
    let resp = http
        .post(format!("{url}/token"))
        .basic_auth(client, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "read write")])
        .send()
        .map_err(|e| format!("POST /token: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().map_err(|e| format!("token response ({status}) is not JSON: {e}"))?;
    if status != 200 {
        return Err(format!("POST /token as {client}: {status} {body}"));
    }
    body["access_token"].as_str().map(str::to_string).ok_or_else(|| format!("no access_token in {body}"))
}

/// What a token's header and claims say: (kid, alg, exp).
fn token_facts(token: &str) -> (String, String, u64) {
    let header = jsonwebtoken::decode_header(token).expect("token header");
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(token).expect("token claims").claims;
    (header.kid.expect("kid"), format!("{:?}", header.alg), claims["exp"].as_u64().expect("exp"))
}

/// Verifies `token` with jsonwebtoken against `jwks`: the key of its kid,
/// the key's alg, `iss`, `aud`, `exp`.
pub(crate) fn verify(token: &str, jwks: &JwkSet, issuer: &str) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWK of {kid}: {e}"))?;
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[AUDIENCE]);
    v.leeway = 5;
    jsonwebtoken::decode::<Value>(token, &key, &v).map(|_| ()).map_err(|e| format!("kid {kid}: {e}"))
}

/// `GET /.well-known/jwks.json`: (ETag, body).
pub(crate) fn jwks_with_etag(http: &reqwest::blocking::Client, issuer: &Issuer) -> Result<(String, String), String> {
    let resp = http.get(issuer.jwks_uri()).send().map_err(|e| format!("GET jwks: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("GET jwks: {}", resp.status()));
    }
    let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = resp.text().map_err(|e| format!("GET jwks body: {e}"))?;
    Ok((etag, body))
}

/// `/readyz`: (status, body).
pub(crate) fn readyz(issuer: &Issuer) -> (u16, Value) {
    let (status, body) = http_get(issuer.addr(), "/readyz").expect("GET /readyz");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The value of an unlabelled metric in `/metrics`.
pub(crate) fn metric(issuer: &Issuer, name: &str) -> Option<f64> {
    let (_, text) = http_get(issuer.addr(), "/metrics")?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `keys list --json`, whole.
pub(crate) fn keys_list(issuer: &Issuer) -> Value {
    serde_json::from_slice(&issuer.cli(&["keys", "list", "--json"]).stdout).expect("keys list --json is JSON")
}

/// Files in the key folder that are neither key files nor the lock file
/// (temp files left by a write that a kill interrupted).
fn stray_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".lock" && (n.starts_with('.') || !n.ends_with(".json")))
                .collect()
        })
        .unwrap_or_default()
}

/// A token the test got, with what its header and claims say.
#[derive(Debug, Clone)]
struct Issued {
    kid: String,
    alg: String,
    exp: u64,
}

#[test]
fn kill_9_during_fast_rotation_never_loses_a_signing_key() {
    let _serial = serial();
    const ROUNDS: usize = 50;
    let started = Instant::now();
    let mut rng = XorShift::from_env("kill_9_during_fast_rotation");
    let opts = IssuerOptions {
        rotation_period: "3s",
        publish_ahead: "2s",
        max_age: "1s",
        ttl: "30s",
        retire_grace: "2s",
        throttle: false,
        ..Default::default()
    };
    let mut issuer = Issuer::start(&opts);
    let http = blocking_http();
    let mut issued: Vec<Issued> = Vec::new();
    let mut kids_by_alg: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut restarts, mut startup_kills, mut checked, mut stray_max) = (0usize, 0usize, 0usize, 0usize);

    for round in 0..ROUNDS {
        // Tokens while it runs (and rotates), until kill -9 at a random moment.
        let delay = Duration::from_millis(rng.below(1200));
        let pid = issuer.pid().to_string();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            Command::new("kill").args(["-9", &pid]).status().expect("run kill -9")
        });
        while !killer.is_finished() {
            for client in [ES_CLIENT, RS_CLIENT] {
                std::thread::sleep(Duration::from_millis(5));
                if let Ok(t) = try_token(&http, &issuer.url, client) {
                    let (kid, alg, exp) = token_facts(&t);
                    issued.push(Issued { kid, alg, exp });
                }
            }
        }
        assert!(killer.join().expect("killer thread").success(), "kill -9 failed");
        issuer.kill9(); // reaps the killed process
        restarts += 1;

        // Now and then a second kill while the restarted server opens its
        // store (creating or extending keys under the lock).
        if rng.below(4) == 0 {
            issuer.respawn();
            std::thread::sleep(Duration::from_millis(rng.below(300)));
            issuer.kill9();
            startup_kills += 1;
            restarts += 1;
        }

        issuer.respawn();
        issuer
            .wait_ready(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("round {round}: the store does not load after kill -9: {e}"));

        // The store loads whole: no damaged file, whatever the kill left.
        let list = keys_list(&issuer);
        assert_eq!(list["damaged"], serde_json::json!([]), "round {round}: damaged key files after kill -9: {list:#}");
        let (status, ready) = readyz(&issuer);
        assert_eq!(status, 200, "round {round}: /readyz after restart: {ready}");
        assert_eq!(ready["damaged_key_files"], 0, "round {round}: {ready}");
        stray_max = stray_max.max(stray_files(&issuer.keys_dir).len());
        for k in list["keys"].as_array().expect("keys array") {
            kids_by_alg
                .entry(k["alg"].as_str().unwrap_or("?").to_string())
                .or_default()
                .insert(k["kid"].as_str().unwrap_or("?").to_string());
        }

        // Every key that signed a still-valid token is published.
        let served: BTreeSet<String> = issuer.served_kids().into_iter().collect();
        let now = unix_now();
        let missing: Vec<&Issued> = issued.iter().filter(|t| t.exp > now + 1 && !served.contains(&t.kid)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: keys that signed still-valid tokens are not in the JWKS after kill -9 and restart: \
             {missing:#?}\nserved: {served:?}\nkeys: {list:#}\nlog:\n{}",
            issuer.log()
        );
        checked += issued.iter().filter(|t| t.exp > now + 1).count();
    }

    let signing_kids: BTreeMap<&str, BTreeSet<&str>> = issued.iter().fold(BTreeMap::new(), |mut m, t| {
        m.entry(t.alg.as_str()).or_default().insert(t.kid.as_str());
        m
    });
    for alg in ["ES256", "RS256"] {
        let n = signing_kids.get(alg).map_or(0, BTreeSet::len);
        assert!(n >= 5, "{alg}: only {n} kids signed in {:?}: the keys did not rotate", started.elapsed());
    }
    eprintln!(
        "kill -9: {ROUNDS} rounds, {restarts} restarts ({startup_kills} kills during start-up), {} tokens, \
         {checked} still-valid token checks, kids created {:?}, kids that signed {:?}, at most {stray_max} stray \
         temp files, {:.1} s",
        issued.len(),
        kids_by_alg.iter().map(|(a, k)| (a.as_str(), k.len())).collect::<Vec<_>>(),
        signing_kids.iter().map(|(a, k)| (*a, k.len())).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
}

/// Fails under `CI=true`, skips loudly elsewhere: a fault test that cannot
/// set up its fault proves nothing.
fn cannot_set_up(what: &str) {
    let msg = format!("cannot set up the fault: {what}");
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg} (CI=true: a fault test may not skip)");
    eprintln!("SKIPPED: {msg}");
}

/// `chattr +i` on a folder: no entry can be created, renamed or removed in
/// it, even by root (for whom `chmod` stops nothing). `chattr -i` on drop.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Result<Immutable, String> {
        let out = Command::new("chattr").arg("+i").arg(dir).output().map_err(|e| format!("run chattr: {e}"))?;
        if !out.status.success() {
            return Err(format!("chattr +i {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        match Command::new("chattr").arg("-i").arg(&self.0).status() {
            Ok(s) if s.success() => {}
            other => eprintln!("WARNING: chattr -i {} failed ({other:?}); undo it by hand", self.0.display()),
        }
    }
}

/// The key of `alg` in `keys list --json` that signs now.
fn active_key(list: &Value, alg: &str) -> Value {
    list["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["alg"] == alg && k["state"] == "active"))
        .cloned()
        .unwrap_or_else(|| panic!("no active {alg} key: {list:#}"))
}

#[test]
fn a_read_only_key_folder_keeps_signing_and_rotation_resumes() {
    let _serial = serial();
    blocked_folder_scenario("read-only folder (chattr +i)", None, Immutable::set);
}

/// Fills a folder on a small tmpfs with a filler file; removes it on drop.
struct Filler(PathBuf);

impl Filler {
    fn fill(dir: &Path) -> Result<Filler, String> {
        use std::io::Write;
        let path = dir.join("filler");
        let mut f = std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        let chunk = [0u8; 4096];
        let filler = Filler(path);
        for _ in 0..10_000 {
            match f.write_all(&chunk).and_then(|()| f.sync_all()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => return Ok(filler), // ENOSPC
                Err(e) => return Err(format!("fill {}: {e}", dir.display())),
            }
        }
        Err(format!("{} never filled up", dir.display()))
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A 64 KiB tmpfs mounted on a temporary folder; unmounted on drop.
struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    fn mount() -> Result<SmallTmpfs, String> {
        let dir = tempfile::Builder::new().prefix("jwks-e2e-tmpfs-").tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "jwks-e2e", &dir.path().display().to_string()])
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(SmallTmpfs { dir })
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        match Command::new("umount").arg(self.dir.path()).status() {
            Ok(s) if s.success() => {}
            other => eprintln!("WARNING: umount {} failed ({other:?}); undo it by hand", self.dir.path().display()),
        }
    }
}

#[test]
fn a_full_key_folder_keeps_signing_and_rotation_resumes() {
    let _serial = serial();
    let tmpfs = match SmallTmpfs::mount() {
        Ok(t) => t,
        Err(e) => return cannot_set_up(&e),
    };
    blocked_folder_scenario("full folder (64 KiB tmpfs)", Some(tmpfs.dir.path().join("keys")), Filler::fill);
    // The server is gone (killed when the scenario returned): unmount.
    drop(tmpfs);
}

/// Starts a server, blocks its key folder with `block` before a successor
/// is due, checks that it keeps signing and reports the failure, then
/// unblocks (drops the guard) and checks that rotation resumes.
fn blocked_folder_scenario<G>(what: &str, keys_dir: Option<PathBuf>, block: impl FnOnce(&Path) -> Result<G, String>) {
    let started = Instant::now();
    let opts = IssuerOptions {
        keys_dir,
        rotation_period: "10s",
        publish_ahead: "2s",
        max_age: "1s",
        ttl: "30s",
        retire_grace: "2s",
        throttle: false,
        ..Default::default()
    };
    let issuer = Issuer::start(&opts);
    let http = blocking_http();
    let list = keys_list(&issuer);
    let first: BTreeMap<&str, Value> = ["ES256", "RS256"].into_iter().map(|a| (a, active_key(&list, a))).collect();
    let first_kids: BTreeSet<String> = first.values().map(|k| k["kid"].as_str().expect("kid").to_string()).collect();
    let deactivates = first.values().map(|k| k["deactivates"].as_u64().expect("deactivates")).max().expect("keys");
    let due = first.values().map(|k| k["deactivates"].as_u64().expect("deactivates")).min().expect("keys") - 2;
    assert!(unix_now() < due, "the successor became due before the folder could be blocked: {list:#}");

    // The folder becomes unwritable before a successor is due.
    let guard = match block(&issuer.keys_dir) {
        Ok(g) => g,
        Err(e) => return cannot_set_up(&e),
    };
    let ready =
        poll("/readyz to report the rotation failure", Duration::from_secs(20), Duration::from_millis(100), || {
            let (status, body) = readyz(&issuer);
            assert_eq!(status, 200, "/readyz while a signing key exists: {body}");
            (body["status"] == "degraded" && body["rotation_failure"].is_string()).then_some(body)
        });
    let failures = metric(&issuer, "jwks_issuer_rotation_failures_total").expect("rotation failure metric");
    assert!(failures > 0.0, "jwks_issuer_rotation_failures_total is {failures} while rotation fails");

    // Signing goes on with the current keys, past their planned end.
    let mut blocked_tokens = 0;
    while unix_now() <= deactivates + 1 {
        for client in [ES_CLIENT, RS_CLIENT] {
            let t = try_token(&http, &issuer.url, client).unwrap_or_else(|e| panic!("no token while blocked: {e}"));
            let (kid, alg, _) = token_facts(&t);
            assert!(first_kids.contains(&kid), "{alg} token signed by {kid}, not a current key, while blocked");
            blocked_tokens += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, still) = readyz(&issuer);
    assert_eq!(still["status"], "degraded", "still failing past the current keys' planned end: {still}");
    assert!(issuer.full_log().contains("rotation step failed"), "the failure is logged:\n{}", issuer.log());
    let failures_blocked = metric(&issuer, "jwks_issuer_rotation_failures_total").unwrap_or(0.0);

    // Writable again: rotation resumes, a new kid is published, then signs.
    drop(guard);
    let new_kids = poll("new kids to sign", Duration::from_secs(20), Duration::from_millis(100), || {
        let kids: Vec<String> = [ES_CLIENT, RS_CLIENT]
            .into_iter()
            .map(|c| token_facts(&try_token(&http, &issuer.url, c).expect("token after unblocking")).0)
            .collect();
        kids.iter().all(|k| !first_kids.contains(k)).then_some(kids)
    });
    let jwks: JwkSet = serde_json::from_str(&jwks_with_etag(&http, &issuer).expect("jwks").1).expect("JWKS");
    for client in [ES_CLIENT, RS_CLIENT] {
        let t = try_token(&http, &issuer.url, client).expect("token");
        verify(&t, &jwks, &issuer.url).unwrap_or_else(|e| panic!("a new key's token does not verify: {e}"));
    }
    poll("/readyz to be ready again", Duration::from_secs(5), Duration::from_millis(100), || {
        (readyz(&issuer).1["status"] == "ready").then_some(())
    });
    eprintln!(
        "{what}: blocked {:?} ({failures_blocked} failed rotation steps, {blocked_tokens} tokens by the \
         current keys), readyz said {}, new kids {new_kids:?} after unblocking, {:.1} s",
        ready["rotation_failure"],
        ready["status"],
        started.elapsed().as_secs_f64()
    );
}

/// Removes ANSI colour sequences from a log.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Asserts one key per slot for each algorithm: the signing windows
/// `[activates, deactivates)` of one algorithm's keys never overlap (a
/// duplicate successor) and, when `contiguous`, meet exactly (no gap: a
/// missing successor). Returns how many keys each algorithm had.
pub(crate) fn assert_one_key_per_slot(
    timelines: &BTreeMap<String, Value>,
    contiguous: bool,
) -> BTreeMap<String, usize> {
    let mut per_alg: BTreeMap<String, Vec<(u64, u64, String)>> = BTreeMap::new();
    for (kid, k) in timelines {
        per_alg.entry(k["alg"].as_str().expect("alg").to_string()).or_default().push((
            k["activates"].as_u64().expect("activates"),
            k["deactivates"].as_u64().expect("deactivates"),
            kid.clone(),
        ));
    }
    for (alg, keys) in &mut per_alg {
        keys.sort();
        for w in keys.windows(2) {
            let ((a0, d0, k0), (a1, _, k1)) = (&w[0], &w[1]);
            let ok = if contiguous { d0 == a1 } else { d0 <= a1 };
            assert!(
                ok && a0 < a1,
                "{alg}: {k0} signs [{a0}, {d0}) and {k1} from {a1}: a duplicate or missing successor\n{timelines:#?}"
            );
        }
    }
    per_alg.into_iter().map(|(a, k)| (a, k.len())).collect()
}

/// The kids of the `key created` lines of a server's log.
pub(crate) fn created_kids(log: &str) -> Vec<String> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains("key created"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("kid=")).map(str::to_string))
        .collect()
}

/// A 4 s rotation published 2 s ahead, 30 s tokens and no throttling: the
/// settings of the tests that run servers side by side for a minute.
pub(crate) fn fast_rotation() -> IssuerOptions {
    IssuerOptions {
        rotation_period: "4s",
        publish_ahead: "2s",
        max_age: "1s",
        ttl: "30s",
        retire_grace: "2s",
        throttle: false,
        ..Default::default()
    }
}

#[test]
fn two_servers_on_one_folder_agree() {
    let _serial = serial();
    const RUN: Duration = Duration::from_secs(60);
    const AGREE_WITHIN: Duration = Duration::from_secs(2);
    let opts = fast_rotation();
    let a = Issuer::start(&opts);
    let b = Issuer::start(&IssuerOptions { keys_dir: Some(a.keys_dir.clone()), ..opts.clone() });
    let servers = [&a, &b];
    let http = blocking_http();
    let started = Instant::now();

    // Each key's last-seen timeline, from `keys list` now and then.
    let mut timelines: BTreeMap<String, Value> = BTreeMap::new();
    let mut last_list = Instant::now() - Duration::from_secs(10);
    let mut diverged_since: Option<Instant> = None;
    let (mut changes, mut longest) = (0usize, Duration::ZERO);
    let mut last_etag = String::new();
    let (mut tokens, mut failures) = (0usize, Vec::new());
    let mut round = 0usize;

    while started.elapsed() < RUN {
        round += 1;
        // Both JWKS as close together as possible.
        let ja = jwks_with_etag(&http, &a).expect("server A JWKS");
        let jb = jwks_with_etag(&http, &b).expect("server B JWKS");
        let now = Instant::now();
        if ja == jb {
            if let Some(since) = diverged_since.take() {
                longest = longest.max(now - since);
            }
            if ja.0 != last_etag {
                changes += 1;
                last_etag = ja.0.clone();
            }
        } else {
            assert!(ja.1 != jb.1, "equal bodies with different ETags: {} vs {}", ja.0, jb.0);
            let since = *diverged_since.get_or_insert(now);
            assert!(
                now - since <= AGREE_WITHIN,
                "the two servers' JWKS differ for {:?} (more than {AGREE_WITHIN:?}):\nA {}: {}\nB {}: {}\nkeys: {:#}",
                now - since,
                ja.0,
                ja.1,
                jb.0,
                jb.1,
                keys_list(&a)
            );
        }

        // A token from one server, verified against both JWKS fetched right after.
        let (issuer, client) = (servers[round % 2], [ES_CLIENT, RS_CLIENT][(round / 2) % 2]);
        let token = try_token(&http, &issuer.url, client).expect("token");
        tokens += 1;
        for (name, s) in [("A", &a), ("B", &b)] {
            let jwks: JwkSet = serde_json::from_str(&jwks_with_etag(&http, s).expect("JWKS").1).expect("JWKS parses");
            if let Err(e) = verify(&token, &jwks, &issuer.url) {
                failures.push(format!("token of {} verified against {name}'s JWKS: {e}", issuer.url));
            }
        }

        if last_list.elapsed() >= Duration::from_secs(1) {
            last_list = Instant::now();
            for k in keys_list(&a)["keys"].as_array().expect("keys") {
                timelines.insert(k["kid"].as_str().expect("kid").to_string(), k.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(failures.is_empty(), "{} of {tokens} tokens failed verification: {failures:#?}", failures.len());

    // Exactly one successor per slot: the signing windows [activates,
    // deactivates) of one algorithm's keys never overlap (so no two keys
    // share an `activates`), and every key was created once, by one server.
    let per_alg = assert_one_key_per_slot(&timelines, false);
    for (alg, n) in &per_alg {
        assert!(*n >= 10, "{alg}: only {n} keys in {RUN:?}: no rotation");
    }
    let created: Vec<(String, &str)> = created_kids(&a.full_log())
        .into_iter()
        .map(|k| (k, "A"))
        .chain(created_kids(&b.full_log()).into_iter().map(|k| (k, "B")))
        .collect();
    let mut once: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (kid, by) in &created {
        once.entry(kid).or_default().push(by);
    }
    let twice: Vec<_> = once.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(twice.is_empty(), "keys created more than once: {twice:?}");
    let unlogged: Vec<&String> = timelines.keys().filter(|k| !once.contains_key(k.as_str())).collect();
    assert!(unlogged.is_empty(), "keys in the folder without a `key created` line: {unlogged:?}");
    let by_a = created.iter().filter(|(_, s)| *s == "A").count();
    eprintln!(
        "two servers: {:.1} s, {changes} JWKS changes, longest disagreement {longest:?}, {} keys created ({by_a} by A, \
         {} by B), keys per algorithm {:?}, {tokens} tokens verified against both JWKS",
        started.elapsed().as_secs_f64(),
        created.len(),
        created.len() - by_a,
        per_alg
    );
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp as the
/// issuer's log writes it (`2026-12-01T16:40:00.123456Z`).
fn parse_log_time(ts: &str) -> Option<f64> {
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min, sec) =
        (t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86400.0 + h * 3600.0 + min * 60.0 + sec)
}

/// When each kid's `key activated` line was logged, from a server's log.
fn activations_logged(log: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in strip_ansi(log).lines().filter(|l| l.contains("key activated")) {
        let Some(ts) = line.split_whitespace().next().and_then(parse_log_time) else { continue };
        if let Some(kid) = line.split_whitespace().find_map(|w| w.strip_prefix("kid=")) {
            out.entry(kid.to_string()).or_insert(ts);
        }
    }
    out
}

fn unix_now_f64() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

/// Requests ES256 tokens from every server in parallel for `run`, then
/// checks each activation of a successor in that time: no server signs
/// with a key before its `activates` instant, and every server switches
/// within `bound` after it (from the server's own `key activated` log
/// line; the tokens bracket it). Returns the largest delay seen.
pub(crate) fn assert_signers_switch_at_the_instant(servers: &[&Issuer], run: Duration, bound: f64) -> f64 {
    let started = unix_now_f64();
    // (server, request start, response end, kid)
    let tokens: Vec<(usize, f64, f64, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = servers
            .iter()
            .enumerate()
            .map(|(i, server)| {
                let url = server.url.clone();
                s.spawn(move || {
                    let http = blocking_http();
                    let mut seen = Vec::new();
                    let until = Instant::now() + run;
                    while Instant::now() < until {
                        let t0 = unix_now_f64();
                        if let Ok(token) = try_token(&http, &url, ES_CLIENT) {
                            seen.push((i, t0, unix_now_f64(), token_facts(&token).0));
                        }
                        // About 200 requests a second per server: the
                        // tokens bracket a switch within a few ms.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("poller")).collect()
    });
    let ended = unix_now_f64();
    let keys = keys_list(servers[0]);
    let activates: BTreeMap<String, f64> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| (k["kid"].as_str().expect("kid").to_string(), k["activates"].as_f64().expect("activates")))
        .collect();
    let mut largest: f64 = 0.0;
    let mut checked = 0;
    for (kid, &at) in activates.iter().filter(|(_, at)| **at > started + 0.5 && **at < ended - 0.5) {
        for (i, server) in servers.iter().enumerate() {
            let logged = activations_logged(&server.log());
            let switched = *logged.get(kid).unwrap_or_else(|| panic!("server {i} never logged {kid} activating"));
            let delay = switched - at;
            assert!(delay >= 0.0, "server {i} switched to {kid} {:.3}s BEFORE its activates instant", -delay);
            assert!(delay < bound, "server {i} switched to {kid} {delay:.3}s after its activates instant");
            largest = largest.max(delay);
            // The tokens agree: none with the new kid before the instant,
            for (_, _, end, _) in tokens.iter().filter(|(s, _, _, k)| *s == i && k == kid) {
                assert!(*end >= at, "server {i} signed with {kid} before {at}");
            }
            // and none with another kid requested well after it.
            let stale = tokens
                .iter()
                .filter(|(s, start, _, k)| *s == i && k != kid && *start > at + bound && *start < at + 1.0)
                .count();
            assert_eq!(stale, 0, "server {i} signed with an older key more than {bound}s after {kid} activated");
        }
        checked += 1;
    }
    assert!(checked >= 2, "saw {checked} activations in {run:?}: {keys:#}");
    eprintln!(
        "signer switch: {checked} activations x {} servers, {} tokens; largest delay after `activates`: {:.1} ms",
        servers.len(),
        tokens.len(),
        largest * 1000.0
    );
    largest
}

#[test]
fn two_servers_switch_signer_at_the_activation_instant() {
    let _serial = serial();
    let opts = fast_rotation();
    let a = Issuer::start(&opts);
    let b = Issuer::start(&IssuerOptions { keys_dir: Some(a.keys_dir.clone()), ..opts.clone() });
    assert_signers_switch_at_the_instant(&[&a, &b], Duration::from_secs(14), 0.25);
}

/// Every file of a folder with its bytes.
fn folder_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read the key folder")
        .map(|e| e.expect("entry"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default()))
        .collect()
}

#[test]
fn serve_under_another_kek_stops_and_writes_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let keys_dir = dir.path().join("keys");
    let kek_a = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_string();
    let kek_b = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=".to_string();
    let opts = IssuerOptions { keys_dir: Some(keys_dir.clone()), kek: Some(kek_a), ..Default::default() };
    let first = Issuer::start(&opts);
    let kid = first.kid("ES256", "active").expect("an ES256 signer");
    drop(first);
    let before = folder_contents(&keys_dir);
    let started = Instant::now();
    let err = Issuer::try_start(&IssuerOptions { kek: Some(kek_b), ..opts }).expect_err("serve must stop");
    assert!(started.elapsed() < Duration::from_secs(20), "it stops at once");
    assert!(err.contains("cannot be opened") && err.contains("JWKS_ISSUER_KEK") && err.contains(&kid), "{err}");
    assert_eq!(folder_contents(&keys_dir), before, "no key was created, changed or removed");
}
