//! The real `jwks-issuer` binary: `hash-secret`, `clients new`,
//! `check-config`, `--config` placement, `--help`, and `keys`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use crate::support::{secret_hash, verifies};

const BIN: &str = env!("CARGO_BIN_EXE_jwks-issuer");

/// The binary with a clean environment for its own variables.
fn cmd() -> Command {
    let mut c = Command::new(BIN);
    for v in [
        "JWKS_ISSUER_CONFIG",
        "JWKS_ISSUER_ISSUER",
        "JWKS_ISSUER_LISTEN",
        "JWKS_ISSUER_KEYS_DIR",
        "JWKS_ISSUER_TOKENS_TTL",
        "JWKS_ISSUER_KEK",
    ] {
        c.env_remove(v);
    }
    c.env("RUST_LOG", "warn");
    c
}

fn run(c: &mut Command, stdin: &[u8]) -> Output {
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", o.status, text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// A valid config over `dir/keys` in `dir/issuer.toml`, with `algorithms`.
/// The binary with `--config path` and `args`.
fn with_config(path: &Path, args: &[&str]) -> Command {
    let mut c = cmd();
    c.arg("--config").arg(path).args(args);
    c
}

fn write_config(dir: &Path, algorithms: &str) -> PathBuf {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let path = dir.join("issuer.toml");
    std::fs::write(
        &path,
        format!(
            "issuer = \"http://127.0.0.1:8080\"\n[keys]\ndir = \"{}\"\nalgorithms = {algorithms}\n[tokens]\nalgorithm = \"ES256\"\n\n[[clients]]\nid = \"svc\"\nsecret_hash = \"{}\"\nscopes = [\"read\"]\n",
            keys.display(),
            secret_hash()
        ),
    )
    .unwrap();
    path
}

#[test]
fn hash_secret_prints_an_argon2id_hash_of_stdin_without_one_trailing_newline() {
    let o = run(cmd().arg("hash-secret"), b"correct horse battery\n");
    let out = ok(&o);
    let hash = out.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(verifies(hash, "correct horse battery"));
    assert!(!verifies(hash, "correct horse battery\n"));
    assert!(!out.contains("correct horse") && !text(&o.stderr).contains("correct horse"), "the secret is not printed");
    // Without a trailing newline, the whole input is the secret.
    let hash = ok(&run(cmd().arg("hash-secret"), b"no-newline")).trim().to_string();
    assert!(verifies(&hash, "no-newline"));
}

#[test]
fn hash_secret_strips_only_one_trailing_newline_and_keeps_the_rest() {
    // Everything on stdin is the secret: a second line is not dropped.
    let hash = ok(&run(cmd().arg("hash-secret"), b"two\nlines\n")).trim().to_string();
    assert!(verifies(&hash, "two\nlines"), "the secret is all of stdin minus one trailing newline");
    let hash = ok(&run(cmd().arg("hash-secret"), b"blank-after\n\n")).trim().to_string();
    assert!(verifies(&hash, "blank-after\n"));
    // Empty input is refused.
    let o = run(cmd().arg("hash-secret"), b"\n");
    assert!(!o.status.success());
}

#[test]
fn clients_new_prints_a_secret_once_and_a_block_that_passes_check_config() {
    let o = run(
        cmd().args(["clients", "new", "--id", "x", "--scope", "a", "--scope", "b", "--audience", "https://a"]),
        b"",
    );
    let out = ok(&o);
    // The secret: 256 random bits, base64url, on a comment line.
    let secret = out
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .find(|l| l.len() == 43 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .unwrap_or_else(|| panic!("no 43-character secret in:\n{out}"))
        .to_string();
    assert_eq!(out.matches(&secret).count(), 1, "printed once");
    assert!(!text(&o.stderr).contains(&secret));
    let block: String = out.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    let table: toml::Table = block.parse().unwrap();
    let client = &table["clients"].as_array().unwrap()[0];
    assert_eq!(client["id"].as_str(), Some("x"));
    assert_eq!(client["scopes"], toml::Value::Array(vec!["a".into(), "b".into()]));
    assert_eq!(client["audiences"], toml::Value::Array(vec!["https://a".into()]));
    assert!(verifies(client["secret_hash"].as_str().unwrap(), &secret));

    // Pasted (whole, comments included) into a config, it passes check-config.
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push('\n');
    config.push_str(&out);
    std::fs::write(&path, config).unwrap();
    let check = ok(&run(cmd().arg("--config").arg(&path).arg("check-config"), b""));
    assert!(check.contains("client   x"), "{check}");
    assert!(!check.contains(&secret));
}

#[test]
fn clients_new_refuses_what_the_config_would_refuse() {
    let long_id = "x".repeat(129);
    for args in [
        &["clients", "new", "--id", "x", "--scope", "a b"][..],
        &["clients", "new", "--id", "", "--scope", "a"],
        &["clients", "new", "--id", "x\u{7}y", "--scope", "a"],
        // The config refuses ids over 128 characters: a block it would
        // refuse must not be printed (with a secret already shown).
        &["clients", "new", "--id", &long_id, "--scope", "a"],
    ] {
        let o = run(cmd().args(args), b"");
        assert!(!o.status.success(), "{args:?} accepted: {}", text(&o.stdout));
        assert!(!text(&o.stdout).contains("secret_hash"), "{args:?}");
    }
    // 128 is fine.
    ok(&run(cmd().args(["clients", "new", "--id", &"y".repeat(128)]), b""));
}

#[test]
fn check_config_exits_non_zero_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    ok(&run(cmd().arg("check-config").arg("--config").arg(&path), b""));
    let good = std::fs::read_to_string(&path).unwrap();
    for (bad, key) in [
        (good.replace("[tokens]\n", "[tokens]\nttl = \"forever\"\n"), "tokens.ttl"),
        (good.replace("[\"ES256\"]", "[\"ES256\", \"XS1\"]"), "keys.algorithms[1]"),
        (format!("{good}\n[[clients]]\nid = \"svc\"\nsecret_hash = \"{}\"\n", secret_hash()), "clients[1].id"),
        (good.replace("[keys]\n", "[keys]\nsize = 1\n"), "size"),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let o = run(cmd().arg("check-config").arg("--config").arg(&path), b"");
        assert!(!o.status.success(), "accepted:\n{bad}");
        let err = text(&o.stderr);
        assert!(err.contains(&path.display().to_string()), "names the file: {err}");
        assert!(err.contains(key), "names `{key}`: {err}");
    }
    // A missing file too.
    let o = run(cmd().arg("check-config").arg("--config").arg(dir.path().join("nope.toml")), b"");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("nope.toml"));
}

#[test]
fn config_is_accepted_before_or_after_the_subcommand_and_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    let shown = path.display().to_string();
    let before = ok(&run(cmd().arg("--config").arg(&path).arg("check-config"), b""));
    let after = ok(&run(cmd().arg("check-config").arg("--config").arg(&path), b""));
    let env = ok(&run(cmd().arg("check-config").env("JWKS_ISSUER_CONFIG", &path), b""));
    for out in [&before, &after, &env] {
        assert!(out.contains(&format!("{shown}: ok")), "{out}");
    }
    // The flag wins over the environment.
    let o =
        run(cmd().args(["check-config", "--config"]).arg(&path).env("JWKS_ISSUER_CONFIG", "/nonexistent.toml"), b"");
    ok(&o);
    // The environment overrides reach the binary.
    let o =
        run(cmd().arg("check-config").env("JWKS_ISSUER_CONFIG", &path).env("JWKS_ISSUER_LISTEN", "0.0.0.0:7777"), b"");
    assert!(ok(&o).contains("0.0.0.0:7777"));
}

#[test]
fn help_works_on_every_subcommand() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["hash-secret", "--help"],
        &["clients", "--help"],
        &["clients", "new", "--help"],
        &["check-config", "--help"],
        &["keys", "--help"],
        &["keys", "list", "--help"],
        &["keys", "rotate", "--help"],
        &["keys", "revoke", "--help"],
        &["keys", "import", "--help"],
    ] {
        let out = ok(&run(cmd().args(args), b""));
        assert!(out.contains("Usage:"), "{args:?}: {out}");
        assert!(out.contains("--config"), "{args:?} documents --config: {out}");
    }
}

#[test]
fn keys_list_json_shows_the_keys_after_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    let c = |args: &[&str]| with_config(&path, args);
    ok(&run(&mut c(&["keys", "rotate", "--now", "--alg", "ES256"]), b""));
    ok(&run(&mut c(&["keys", "rotate", "--alg", "ES256"]), b""));
    let out = ok(&run(&mut c(&["keys", "list", "--json"]), b""));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{doc}");
    let mut states: Vec<&str> = keys.iter().map(|k| k["state"].as_str().unwrap()).collect();
    states.sort_unstable();
    assert_eq!(states, ["active", "pending"]);
    assert!(keys.iter().all(|k| k["alg"] == "ES256"));
    assert_eq!(doc["damaged"], serde_json::json!([]));
    for private in ["pkcs8", "\"d\"", "PRIVATE"] {
        assert!(!out.contains(private), "no key material in the listing");
    }
    // An algorithm outside keys.algorithms is refused.
    assert!(!run(&mut c(&["keys", "rotate", "--alg", "RS256"]), b"").status.success());
    // The table form lists both kids too.
    let table = ok(&run(&mut c(&["keys", "list"]), b""));
    for k in keys {
        assert!(table.contains(k["kid"].as_str().unwrap()));
    }
}

#[test]
fn clients_new_private_key_jwt_prints_the_private_key_once_and_a_public_jwk_block() {
    use base64::Engine;
    let o = run(cmd().args(["clients", "new", "--id", "kjwt", "--scope", "read", "--private-key-jwt"]), b"");
    let out = ok(&o);
    let begin = concat!("-----BEGIN ", "PRIVATE KEY-----");
    let end = concat!("-----END ", "PRIVATE KEY-----");
    assert_eq!(out.matches(begin).count(), 1, "the private key is printed once:\n{out}");
    let pem_body: String = out.split(begin).nth(1).unwrap().split(end).next().unwrap().split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD.decode(pem_body).unwrap();
    let key = jwks_jose::SigningKey::from_pkcs8(jwks_jose::Algorithm::ES256, &der).unwrap();
    // The block after the key: a `jwks` with the public half only.
    let block = out.split(end).nth(1).unwrap();
    let table: toml::Table = block.parse().unwrap();
    let client = &table["clients"].as_array().unwrap()[0];
    assert!(client.get("secret_hash").is_none());
    let jwk = &client["jwks"]["keys"].as_array().unwrap()[0];
    assert_eq!(jwk["kid"].as_str(), Some(key.kid()));
    assert!(jwk.get("d").is_none(), "no private member in the config block");
    // Pasted into a config, it passes check-config as a private_key_jwt client.
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(block);
    std::fs::write(&path, config).unwrap();
    let check = ok(&run(cmd().arg("--config").arg(&path).arg("check-config"), b""));
    assert!(check.lines().any(|l| l.contains("kjwt") && l.contains("private_key_jwt")), "{check}");
}

/// A PKCS#8 PEM `PRIVATE KEY` block around `der`.
fn pkcs8_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let label = "PRIVATE KEY";
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[test]
fn revoke_takes_a_kid_that_begins_with_a_dash() {
    use jwks_jose::{Algorithm, SigningKey};
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    let c = |args: &[&str]| with_config(&path, args);
    ok(&run(&mut c(&["keys", "rotate", "--now", "--alg", "ES256"]), b""));
    // One kid in 64 begins with `-`: make ES256 keys until one does.
    let (der, kid) = (0..2000)
        .map(|_| {
            let der = SigningKey::generate(Algorithm::ES256, 2048).unwrap();
            let kid = SigningKey::from_pkcs8(Algorithm::ES256, &der).unwrap().kid().to_string();
            (der, kid)
        })
        .find(|(_, kid)| kid.starts_with('-'))
        .expect("a kid that begins with `-`");
    let pem = dir.path().join("dash.pem");
    std::fs::write(&pem, pkcs8_pem(&der)).unwrap();
    ok(&run(&mut c(&["keys", "import", "--alg", "ES256", "--pem", pem.to_str().unwrap()]), b""));
    let listed = ok(&run(&mut c(&["keys", "list"]), b""));
    assert!(listed.contains(&kid), "{listed}");
    // As printed, with no `--`.
    let out = ok(&run(&mut c(&["keys", "revoke", &kid]), b""));
    assert!(out.contains(&format!("revoked ES256 {kid}")), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&ok(&run(&mut c(&["keys", "list", "--json"]), b""))).unwrap();
    let key = doc["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).unwrap().clone();
    assert_eq!(key["state"], "revoked", "{doc}");
    // An option that is not a kid is still an error, not a kid.
    let again = run(&mut c(&["keys", "revoke", &kid]), b"");
    assert!(!again.status.success() && text(&again.stderr).contains("already revoked"), "{}", text(&again.stderr));
}

/// Every command that prints, with stdout a pipe whose reader already
/// left (`| head` that exited): no panic, no error text, exit 0.
#[test]
fn every_command_is_quiet_on_a_closed_pipe() {
    use jwks_jose::{Algorithm, SigningKey};
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    ok(&run(&mut with_config(&path, &["keys", "rotate", "--now"]), b""));
    let listing: serde_json::Value =
        serde_json::from_str(&ok(&run(&mut with_config(&path, &["keys", "list", "--json"]), b""))).unwrap();
    let kid = listing["keys"][0]["kid"].as_str().unwrap().to_string();
    let pem = dir.path().join("import.pem");
    std::fs::write(&pem, pkcs8_pem(&SigningKey::generate(Algorithm::ES256, 2048).unwrap())).unwrap();
    let pem = pem.to_str().unwrap();
    let commands: [(&[&str], &[u8]); 13] = [
        (&["--help"], b""),
        (&["--version"], b""),
        (&["keys", "rotate", "--help"], b""),
        (&["hash-secret"], b"a secret\n"),
        (&["clients", "new", "--id", "svc2", "--scope", "read"], b""),
        (&["clients", "new", "--id", "svc3", "--private-key-jwt"], b""),
        (&["check-config"], b""),
        (&["keys", "list"], b""),
        (&["keys", "list", "--json"], b""),
        (&["keys", "rotate"], b""),
        (&["keys", "rotate", "--now"], b""),
        (&["keys", "import", "--alg", "ES256", "--pem", pem], b""),
        (&["keys", "revoke", &kid], b""),
    ];
    for (args, stdin) in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut child =
            with_config(&path, args).stdin(Stdio::piped()).stdout(writer).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        for noise in ["panicked", "error", "Broken pipe"] {
            assert!(!stderr.contains(noise), "{args:?} is quiet on a closed pipe: {stderr}");
        }
    }
    // What the closed pipe did not stop: the import and the revocation took place.
    let after: serde_json::Value =
        serde_json::from_str(&ok(&run(&mut with_config(&path, &["keys", "list", "--json"]), b""))).unwrap();
    let revoked = after["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    assert_eq!(revoked["state"], "revoked", "{after}");
}

/// Every command of the tree, as clap knows it: its `--help` has an
/// example of itself, the values of each option that has a fixed set, the
/// environment variables that change it, and the exit codes.
#[test]
fn every_command_help_has_examples_values_environment_and_exit_codes() {
    use clap::CommandFactory;
    fn walk(c: &clap::Command, path: Vec<String>, all: &mut Vec<(Vec<String>, clap::Command)>) {
        all.push((path.clone(), c.clone()));
        for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, all);
        }
    }
    let mut all = Vec::new();
    walk(&jwks_issuer::cli::Cli::command(), Vec::new(), &mut all);
    assert!(all.len() >= 11, "{} commands", all.len());
    for (path, command) in &all {
        let mut args = path.clone();
        args.push("--help".into());
        let help = ok(&run(cmd().args(&args), b""));
        let name = std::iter::once("jwks-issuer".to_string()).chain(path.iter().cloned()).collect::<Vec<_>>().join(" ");
        let examples = help.split("Examples:\n").nth(1).unwrap_or_else(|| panic!("{name}: no examples\n{help}"));
        let examples = examples.split("\n\n").next().unwrap();
        assert!(examples.contains(&name), "{name}: an example of itself\n{help}");
        for needed in
            ["Environment:", "JWKS_ISSUER_CONFIG", "RUST_LOG", "NO_COLOR", "Exit codes:", "  0  ", "  1  ", "  2  "]
        {
            assert!(help.contains(needed), "{name}: `{needed}` missing\n{help}");
        }
        let reads_config = matches!(path.first().map(String::as_str), None | Some("serve" | "check-config" | "keys"));
        if reads_config {
            for var in [
                "JWKS_ISSUER_ISSUER",
                "JWKS_ISSUER_LISTEN",
                "JWKS_ISSUER_KEYS_DIR",
                "JWKS_ISSUER_KEYS_POSTGRES",
                "JWKS_ISSUER_TOKENS_TTL",
                "JWKS_ISSUER_KEK",
            ] {
                assert!(help.contains(var), "{name}: `{var}` missing\n{help}");
            }
        }
        for arg in command.get_arguments().filter(|a| a.get_action().takes_values()) {
            for value in arg.get_possible_values() {
                assert!(
                    help.contains(value.get_name()),
                    "{name}: value `{}` of `{}` missing\n{help}",
                    value.get_name(),
                    arg.get_id()
                );
            }
        }
    }
    // `--alg` lists every algorithm, and refuses others naming them.
    let rotate = ok(&run(cmd().args(["keys", "rotate", "--help"]), b""));
    for alg in jwks_jose::Algorithm::ALL {
        assert!(rotate.contains(alg.as_str()), "{rotate}");
    }
    let bad = run(cmd().args(["keys", "rotate", "--alg", "HS256"]), b"");
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("possible values"), "{}", text(&bad.stderr));
}

/// At a terminal, `hash-secret` prompts on it and the secret is not echoed;
/// driven through a pseudo-terminal by Python's `pty` module.
#[test]
fn hash_secret_at_a_terminal_prompts_without_echo() {
    const SCRIPT: &str = r#"
import os, pty, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "hash-secret"])
out = b""
deadline = time.time() + 30
while b"secret" not in out and time.time() < deadline:
    out += os.read(fd, 1024)
# Type only once the program has turned echo off, as a person would after
# reading the prompt (if it never does, the secret shows and the test fails).
while termios.tcgetattr(fd)[3] & termios.ECHO and time.time() < deadline:
    time.sleep(0.01)
os.write(fd, b"pty-s3cret-value\n")
while time.time() < deadline:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
done, status = os.waitpid(pid, os.WNOHANG)
while not done and time.time() < deadline:
    time.sleep(0.01)
    done, status = os.waitpid(pid, os.WNOHANG)
if not done:
    os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let python = match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => "python3",
        _ => {
            assert!(std::env::var_os("CI").is_none(), "python3 is needed for the pty test in CI");
            eprintln!("python3 missing: pty test not run");
            return;
        }
    };
    let o = run(Command::new(python).args(["-c", SCRIPT, BIN]).env("RUST_LOG", "warn"), b"");
    let shown = ok(&o);
    assert!(shown.contains("secret (not shown):"), "it prompts: {shown}");
    assert!(!shown.contains("pty-s3cret-value"), "the secret is not echoed: {shown}");
    let hash = shown.lines().find(|l| l.starts_with("$argon2id$")).unwrap_or_else(|| panic!("a hash: {shown}"));
    assert!(verifies(hash.trim(), "pty-s3cret-value"), "the hash is of the typed secret");
}

#[test]
fn keys_list_says_which_key_signs_and_what_changes_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    let c = |args: &[&str]| with_config(&path, args);
    ok(&run(&mut c(&["keys", "rotate", "--now"]), b""));
    ok(&run(&mut c(&["keys", "rotate"]), b""));
    ok(&run(&mut c(&["keys", "rotate"]), b""));
    let doc: serde_json::Value = serde_json::from_str(&ok(&run(&mut c(&["keys", "list", "--json"]), b""))).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    let active: Vec<&serde_json::Value> = keys.iter().filter(|k| k["state"] == "active").collect();
    assert_eq!(active.len(), 1, "exactly one ES256 key is called active: {doc}");
    assert_eq!(active[0]["signs"], true);
    let signing = &doc["signing"][0];
    assert_eq!(signing["alg"], "ES256");
    assert_eq!(signing["signer"], active[0]["kid"]);
    let next_kid = signing["next"].as_str().unwrap().split(' ').next().unwrap().to_string();
    let next = keys.iter().find(|k| k["kid"] == next_kid.as_str()).expect("the next signer is listed");
    assert_eq!(signing["next_at"], next["activates"], "{doc}");
    let table = ok(&run(&mut c(&["keys", "list"]), b""));
    assert!(table.contains(&format!("ES256  signs with {}; next at ", active[0]["kid"].as_str().unwrap())), "{table}");
    assert!(table.contains(&format!("{next_kid} starts signing")), "{table}");
}

#[test]
fn serve_binds_its_port_before_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    let keys = dir.path().join("keys");
    std::fs::remove_dir(&keys).unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let text_cfg = std::fs::read_to_string(&path).unwrap().replacen('\n', &format!("\nlisten = \"{addr}\"\n"), 1);
    std::fs::write(&path, text_cfg).unwrap();
    let out = cmd().arg("--config").arg(&path).arg("serve").stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot listen"), "{}", text(&out.stderr));
    assert!(!keys.exists(), "no key folder was created, no key made");
}

#[test]
fn check_config_refuses_publish_ahead_shorter_than_max_age_plus_follow() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    let base = std::fs::read_to_string(&path).unwrap();
    let with = |ahead: &str, max_age: &str| {
        let text = base
            .replace("[keys]\n", &format!("[jwks]\nmax_age = \"{max_age}\"\n[keys]\npublish_ahead = \"{ahead}\"\n"));
        std::fs::write(&path, text).unwrap();
        run(cmd().arg("--config").arg(&path).arg("check-config"), b"")
    };
    let out = with("2s", "2s");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for named in ["keys.publish_ahead", "2s", "jwks.max_age", "follows", "1s", "3s"] {
        assert!(err.contains(named), "names {named}: {err}");
    }
    ok(&with("3s", "2s"));
}

#[test]
fn published_is_taken_after_generation() {
    // RSA-4096 takes seconds to generate: a `published` taken before it
    // shortens the window in which verifiers can fetch the key.
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\", \"RS256\"]");
    let text_cfg = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[keys]\n", "[jwks]\nmax_age = \"1s\"\n[keys]\nrsa_bits = 4096\npublish_ahead = \"4s\"\n");
    std::fs::write(&path, text_cfg).unwrap();
    let c = |args: &[&str]| with_config(&path, args);
    ok(&run(&mut c(&["keys", "rotate", "--now", "--alg", "ES256"]), b""));
    let mut slowest = 0.0f64;
    for _ in 0..2 {
        let before = unix_secs_f64();
        ok(&run(&mut c(&["keys", "rotate", "--alg", "RS256"]), b""));
        let returned = unix_secs_f64();
        slowest = slowest.max(returned - before);
        let doc: serde_json::Value = serde_json::from_str(&ok(&run(&mut c(&["keys", "list", "--json"]), b""))).unwrap();
        let newest = doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == "RS256")
            .max_by_key(|k| k["published"].as_u64().unwrap())
            .unwrap()
            .clone();
        let published = newest["published"].as_f64().unwrap();
        let activates = newest["activates"].as_f64().unwrap();
        // The key is durable before the command returns: `published` (a
        // whole second, rounded up) comes after the generation, and the
        // key signs a full `publish_ahead` after the command returned
        // (less the exit of the process).
        assert!(published >= before.floor() + 1.0, "published {published} before generation ({before})");
        assert!(activates - returned >= 4.0 - 0.25, "signs {:.2}s after the command returned", activates - returned);
    }
    eprintln!("slowest RSA-4096 `keys rotate`: {slowest:.2}s");
}

#[allow(clippy::disallowed_methods)] // the real time the command ran at
fn unix_secs_f64() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn check_config_checks_the_kek_and_warns_when_the_issuer_is_not_the_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[\"ES256\"]");
    let good = std::fs::read_to_string(&path).unwrap();
    // A malformed KEK is refused, naming the variable.
    let o = run(cmd().arg("--config").arg(&path).arg("check-config").env("JWKS_ISSUER_KEK", "short"), b"");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("JWKS_ISSUER_KEK"), "{}", text(&o.stderr));
    // A PostgreSQL store without a KEK is refused as `serve` would.
    let pg = good
        .replacen("dir = ", "# dir = ", 1)
        .replace("[keys]\n", "[keys]\npostgres = \"postgres://u@127.0.0.1/test\"\n");
    std::fs::write(&path, &pg).unwrap();
    let o = run(cmd().arg("--config").arg(&path).arg("check-config"), b"");
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("JWKS_ISSUER_KEK"), "{}", text(&o.stderr));
    // An issuer naming another port than a loopback listen: a warning.
    let listen_line = good.lines().find(|l| l.starts_with("listen")).map(str::to_owned);
    let mismatched = match listen_line {
        Some(l) => good.replace(&l, "listen = \"127.0.0.1:9999\""),
        None => format!("listen = \"127.0.0.1:9999\"\n{good}"),
    };
    std::fs::write(&path, &mismatched).unwrap();
    let o = run(cmd().arg("--config").arg(&path).arg("check-config"), b"");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("warning") && text(&o.stderr).contains("127.0.0.1:9999"), "{}", text(&o.stderr));
}

/// `keys import` takes PKCS#8 PEMs of every kind the backend has: RSA for
/// PS256, P-384, Ed25519 in PKCS#8 v1 (what `openssl genpkey` writes) and
/// v2, and ML-DSA in the seed form of RFC 9881 (aws-lc-rs only).
#[test]
fn keys_import_takes_pkcs8_pems_of_every_algorithm() {
    use jwks_jose::{Algorithm, SigningKey, crypto};
    let names: Vec<String> = crypto::supported().iter().map(|a| format!("\"{a}\"")).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &format!("[{}]", names.join(", ")));
    let c = |args: &[&str]| with_config(&path, args);
    let v2 = SigningKey::generate(Algorithm::Ed25519, 2048).unwrap();
    // PKCS#8 v1 (RFC 8410 §7): the same seed without the public key.
    let seed = &v2[16..48];
    let mut v1 = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    v1.extend_from_slice(seed);
    let mut ders: Vec<(Algorithm, Vec<u8>)> = vec![(Algorithm::Ed25519, v1)];
    for alg in crypto::supported().into_iter().filter(|a| *a != Algorithm::RS256) {
        ders.push((alg, SigningKey::generate(alg, 2048).unwrap()));
    }
    for (i, (alg, der)) in ders.iter().enumerate() {
        let kid = SigningKey::from_pkcs8(*alg, der).unwrap().kid().to_string();
        let pem = dir.path().join(format!("{i}.pem"));
        std::fs::write(&pem, pkcs8_pem(der)).unwrap();
        let out = ok(&run(&mut c(&["keys", "import", "--alg", alg.as_str(), "--pem", pem.to_str().unwrap()]), b""));
        assert!(out.contains(&kid), "{alg}: {out}");
    }
    let listed = ok(&run(&mut c(&["keys", "list"]), b""));
    for (alg, der) in &ders {
        assert!(listed.contains(SigningKey::from_pkcs8(*alg, der).unwrap().kid()), "{alg}: {listed}");
    }
    // A key of one kind is refused under another algorithm's name.
    let p384 = dir.path().join("p384.pem");
    std::fs::write(&p384, pkcs8_pem(&SigningKey::generate(Algorithm::ES384, 2048).unwrap())).unwrap();
    let wrong = run(&mut c(&["keys", "import", "--alg", "Ed25519", "--pem", p384.to_str().unwrap()]), b"");
    assert!(!wrong.status.success(), "{}", text(&wrong.stdout));
}
