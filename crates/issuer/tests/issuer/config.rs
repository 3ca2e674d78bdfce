//! `Config::from_toml`: every refusal names the file and the key; the
//! environment overrides apply.

use std::{net::SocketAddr, path::Path, time::Duration};

use jwks_issuer::{Config, Error, config::KeyStoreConfig};

use crate::support::secret_hash;

const FILE: &str = "/etc/jwks/issuer-under-test.toml";

fn base() -> String {
    format!(
        r#"issuer = "https://issuer.example.test"
[keys]
dir = "keys"
algorithms = ["ES256", "RS256"]
[jwks]
max_age = "5m"
[tokens]
ttl = "15m"
algorithm = "ES256"
[[clients]]
id = "a"
secret_hash = "{h}"
scopes = ["read"]
[[clients]]
id = "b"
secret_hash = "{h}"
algorithm = "RS256"
"#,
        h = secret_hash()
    )
}

fn load(text: &str) -> Result<Config, Error> {
    Config::from_toml(Path::new(FILE), text, &|_| None)
}

/// Asserts `text` is refused with `Error::Config` naming the file and
/// containing each of `needles` (the key, and what is wrong).
#[track_caller]
fn assert_refused(text: &str, needles: &[&str]) {
    match load(text) {
        Err(e @ Error::Config { .. }) => {
            let Error::Config { path, message } = &e else { unreachable!() };
            assert_eq!(path, Path::new(FILE));
            let shown = e.to_string();
            assert!(shown.contains(FILE), "the message names the file: {shown}");
            for n in needles {
                assert!(message.contains(n), "`{n}` missing from: {message}");
            }
            assert_eq!(e.code(), "config");
        }
        Err(other) => panic!("expected Error::Config, got {other:?}"),
        Ok(_) => panic!("accepted:\n{text}"),
    }
}

#[test]
fn the_base_config_is_accepted_with_its_values() {
    let c = load(&base()).unwrap();
    assert_eq!(c.issuer, "https://issuer.example.test");
    assert_eq!(c.tokens.ttl, Duration::from_secs(900));
    assert_eq!(c.clients[1].algorithm, jwks_jose::Algorithm::RS256);
    assert_eq!(c.clients[0].ttl, Duration::from_secs(900));
    assert_eq!(c.tokens.audience, c.issuer, "default aud is the issuer");
}

#[test]
fn an_unknown_key_is_refused_naming_it() {
    assert_refused(&format!("colour = \"blue\"\n{}", base()), &["colour"]);
    assert_refused(&base().replace("[keys]\n", "[keys]\nrotation = \"1d\"\n"), &["rotation"]);
    assert_refused(&base().replace("[tokens]\n", "[tokens]\naud = \"x\"\n"), &["aud"]);
    assert_refused(&base().replace("scopes = [\"read\"]", "scopes = [\"read\"]\nscope = \"x\""), &["scope"]);
    assert_refused(&format!("{}\n[extra]\nx = 1\n", base()), &["extra"]);
}

#[test]
fn a_bad_duration_is_refused_naming_the_key() {
    assert_refused(&base().replace("ttl = \"15m\"", "ttl = \"15 parsecs\""), &["tokens.ttl", "15 parsecs"]);
    assert_refused(&base().replace("max_age = \"5m\"", "max_age = \"soon\""), &["jwks.max_age"]);
    assert_refused(&base().replace("[keys]\n", "[keys]\nrotation_period = \"0s\"\n"), &["keys.rotation_period"]);
    assert_refused(
        &base().replace("algorithm = \"RS256\"", "algorithm = \"RS256\"\nttl = \"-5m\""),
        &["clients[1].ttl"],
    );
}

#[test]
fn an_unknown_algorithm_is_refused_naming_the_key() {
    assert_refused(
        &base().replace("[\"ES256\", \"RS256\"]", "[\"ES256\", \"HS256\"]"),
        &["keys.algorithms[1]", "HS256"],
    );
    assert_refused(&base().replace("algorithm = \"ES256\"", "algorithm = \"none\""), &["tokens.algorithm", "none"]);
    assert_refused(
        &base().replace("algorithm = \"RS256\"", "algorithm = \"PS256\""),
        &["clients[1].algorithm", "PS256"],
    );
}

#[test]
fn a_duplicate_client_id_is_refused_naming_the_key() {
    assert_refused(&base().replace("id = \"b\"", "id = \"a\""), &["clients[1].id", "duplicate", "`a`"]);
}

#[test]
fn a_client_algorithm_not_in_keys_algorithms_is_refused() {
    let text = base().replace("[\"ES256\", \"RS256\"]", "[\"ES256\"]");
    assert_refused(&text, &["clients[1].algorithm", "RS256", "keys.algorithms"]);
    let text = base().replace("[\"ES256\", \"RS256\"]", "[\"RS256\"]").replace("algorithm = \"RS256\"", "");
    assert_refused(&text, &["tokens.algorithm", "ES256"]);
}

#[test]
fn an_invalid_secret_hash_is_refused_naming_the_key() {
    let h = secret_hash();
    for bad in [
        "plain-text-secret".to_string(),
        h.replacen("argon2id", "argon2i", 1),
        h.replacen("m=7168", "m=1", 1),
        // Weaker than OWASP's minimum, and absurdly heavy.
        h.replacen("m=7168,t=5", "m=19456,t=1", 1),
        h.replacen("m=7168,t=5", "m=4194304,t=4294967295", 1),
        String::new(),
    ] {
        assert_refused(&base().replacen(h, &bad, 1), &["clients[0].secret_hash"]);
    }
    // Missing altogether.
    assert_refused(&base().replacen(&format!("secret_hash = \"{h}\"\n"), "", 1), &["clients[0]", "secret_hash"]);
}

#[test]
fn publish_ahead_shorter_than_jwks_max_age_is_refused() {
    let text = base().replace("[keys]\n", "[keys]\npublish_ahead = \"1m\"\n");
    assert_refused(&text, &["keys.publish_ahead", "jwks.max_age"]);
    // The follow interval (1 s) counts too: equal to max_age is too short.
    let equal = base().replace("[keys]\n", "[keys]\npublish_ahead = \"5m\"\n");
    assert_refused(&equal, &["keys.publish_ahead", "jwks.max_age", "5m 1s"]);
    let enough = base().replace("[keys]\n", "[keys]\npublish_ahead = \"5m 1s\"\n");
    assert!(load(&enough).is_ok());
}

#[test]
fn other_bad_values_are_refused_naming_the_key() {
    assert_refused(&base().replace("https://issuer.example.test", "not a url"), &["issuer"]);
    assert_refused(&format!("listen = \"localhost\"\n{}", base()), &["listen"]);
    assert_refused(&base().replace("[keys]\n", "[keys]\nrsa_bits = 1024\n"), &["keys.rsa_bits"]);
    assert_refused(&base().replace("scopes = [\"read\"]", "scopes = [\"re ad\"]"), &["clients[0].scopes"]);
    assert_refused(&base().replace("[\"ES256\", \"RS256\"]", "[\"ES256\", \"ES256\"]"), &["keys.algorithms"]);
    assert_refused("issuer = 3\n", &["issuer"]);
    assert_refused("issuer = \"https://x\"\n[keys\n", &[]);
}

#[test]
fn environment_overrides_issuer_listen_and_keys_dir() {
    let env = |k: &str| match k {
        "JWKS_ISSUER_ISSUER" => Some("https://env.example.test".to_string()),
        "JWKS_ISSUER_LISTEN" => Some("0.0.0.0:9999".to_string()),
        "JWKS_ISSUER_KEYS_DIR" => Some("/var/lib/jwks/keys".to_string()),
        "JWKS_ISSUER_TOKENS_TTL" => Some("2m".to_string()),
        _ => None,
    };
    let c = Config::from_toml(Path::new(FILE), &base(), &env).unwrap();
    assert_eq!(c.issuer, "https://env.example.test");
    assert_eq!(c.listen, "0.0.0.0:9999".parse::<SocketAddr>().unwrap());
    assert_eq!(c.keys.store, KeyStoreConfig::Dir("/var/lib/jwks/keys".into()));
    assert_eq!(c.tokens.ttl, Duration::from_secs(120));
    assert_eq!(c.token_endpoint(), "https://env.example.test/token");
    // Without overrides the file's values stand.
    let c = load(&base()).unwrap();
    assert_eq!(c.keys.store, KeyStoreConfig::Dir("keys".into()));
    assert_eq!(c.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
}

#[test]
fn keys_postgres_replaces_the_folder_and_naming_both_is_refused() {
    let pg = base().replace("dir = \"keys\"\n", "postgres = \"postgres://issuer:s3cret@db.internal:6543/keys\"\n");
    let c = load(&pg).unwrap();
    let KeyStoreConfig::Postgres(url) = &c.keys.store else { panic!("expected postgres: {:?}", c.keys.store) };
    assert_eq!(url.location(), "postgres://issuer@db.internal:6543/keys");
    let shown = format!("{:?}", c.keys);
    assert!(!shown.contains("s3cret"), "the password never shows: {shown}");

    let both = pg.replace("[keys]\n", "[keys]\ndir = \"keys\"\n");
    assert!(both.contains("dir = ") && both.contains("postgres = "));
    assert_refused(&both, &["keys.dir", "keys.postgres", "not both"]);
    assert_refused(&base().replace("dir = \"keys\"", "postgres = \"mysql://x/y\""), &["keys.postgres"]);
    // TLS as libpq spells it: require is taken, verify-full needs a CA file.
    load(&base().replace("dir = \"keys\"", "postgres = \"postgres://u@h/d?sslmode=require\"")).unwrap();
    assert_refused(
        &base().replace("dir = \"keys\"", "postgres = \"postgres://u@h/d?sslmode=verify-full\""),
        &["keys.postgres", "sslmode=verify-full", "sslrootcert"],
    );
    assert_refused(
        &base()
            .replace("dir = \"keys\"", "postgres = \"postgres://u@h/d?sslmode=verify-full&sslrootcert=/nope/ca.pem\""),
        &["keys.postgres", "/nope/ca.pem"],
    );
    assert_refused(&base().replace("dir = \"keys\"", "postgres = \"postgres://u@h\""), &["keys.postgres", "database"]);

    // JWKS_ISSUER_KEYS_POSTGRES replaces the file's folder, and the folder
    // override replaces the file's database; both at once is refused.
    let env = |k: &str| (k == "JWKS_ISSUER_KEYS_POSTGRES").then(|| "postgres://u@127.0.0.1/test".to_string());
    let c = Config::from_toml(Path::new(FILE), &base(), &env).unwrap();
    assert!(matches!(&c.keys.store, KeyStoreConfig::Postgres(u) if u.location() == "postgres://u@127.0.0.1:5432/test"));
    let env = |k: &str| (k == "JWKS_ISSUER_KEYS_DIR").then(|| "/srv/keys".to_string());
    let c = Config::from_toml(Path::new(FILE), &pg, &env).unwrap();
    assert_eq!(c.keys.store, KeyStoreConfig::Dir("/srv/keys".into()));
    let env = |k: &str| k.starts_with("JWKS_ISSUER_KEYS_").then(|| "postgres://u@h/d".to_string());
    let e = Config::from_toml(Path::new(FILE), &base(), &env).unwrap_err();
    assert!(e.to_string().contains("not both"), "{e}");
}

#[test]
fn a_bad_environment_override_is_refused_naming_the_key() {
    let env = |k: &str| (k == "JWKS_ISSUER_LISTEN").then(|| "nowhere".to_string());
    let e = Config::from_toml(Path::new(FILE), &base(), &env).unwrap_err();
    assert!(matches!(&e, Error::Env { variable: "JWKS_ISSUER_LISTEN", key: "listen", .. }), "{e}");
}

/// Logs print configs with `{:?}`: the secret hash is not in it.
#[test]
fn debug_of_the_config_hides_secret_hashes() {
    let c = load(&base()).unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains(secret_hash()), "{shown}");
    assert!(!shown.contains("$argon2id$"));
}

#[test]
fn issuer_with_a_trailing_slash_is_refused() {
    let text = base().replace("https://issuer.example.test", "https://issuer.example.test/");
    assert_refused(&text, &["issuer", "trailing slash", "`https://issuer.example.test`"]);
}

#[test]
fn a_bad_environment_override_names_the_variable_not_the_file() {
    let env = |k: &str| (k == "JWKS_ISSUER_TOKENS_TTL").then(|| "soon".to_string());
    let e = Config::from_toml(Path::new(FILE), &base(), &env).unwrap_err().to_string();
    assert!(e.contains("JWKS_ISSUER_TOKENS_TTL"), "{e}");
    assert!(!e.contains(FILE), "{e}");
    let env = |k: &str| (k == "JWKS_ISSUER_ISSUER").then(|| "https://x.test/".to_string());
    let e = Config::from_toml(Path::new(FILE), &base(), &env).unwrap_err().to_string();
    assert!(e.contains("JWKS_ISSUER_ISSUER"), "{e}");
}

#[test]
fn config_parse_errors_never_echo_the_source_line() {
    // A password in a PostgreSQL URL, and a secret pasted where a number goes.
    let leaky = [
        "issuer = \"https://x.test\"\n[keys]\npostgres = 5\nrsa_bits = \"hunter2-secret\"\n",
        "issuer = \"https://x.test\"\n[keys]\npostgres = \"postgres://u:hunter2-secret@db/x\" x\n",
        "issuer = \"https://x.test\"\n[throttle]\nburst = \"hunter2-secret\"\n",
    ];
    for text in leaky {
        let e = Config::from_toml(Path::new(FILE), text, &|_| None).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("line "), "names the position: {e}");
    }
    let e = Config::from_toml(Path::new(FILE), leaky[2], &|_| None).unwrap_err().to_string();
    assert!(e.contains("burst"), "names the key: {e}");
}

#[test]
fn tls_files_are_relative_to_the_config_and_need_an_https_issuer() {
    let with_tls = format!("{}\n[tls]\ncert_file = \"tls/issuer.crt\"\nkey_file = \"/abs/issuer.key\"\n", base());
    let c = load(&with_tls).unwrap();
    let tls = c.tls.expect("[tls] read");
    assert_eq!(tls.cert_file, Path::new("/etc/jwks/tls/issuer.crt"));
    assert_eq!(tls.key_file, Path::new("/abs/issuer.key"));
    assert!(load(&base()).unwrap().tls.is_none());
    assert_refused(
        &with_tls.replace("https://issuer.example.test", "http://issuer.example.test"),
        &["issuer", "is http", "[tls]"],
    );
    assert_refused(&format!("{}\n[tls]\ncert_file = \"a.crt\"\n", base()), &["key_file"]);
}

/// The README's configuration reference states each default; writing that
/// value into the file must change nothing, so the README and the code
/// cannot drift apart (the code writes each default once, in the file
/// layer).
#[test]
fn the_readme_defaults_are_the_code_defaults() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme.split("## Configuration reference").nth(1).unwrap();
    let rows: Vec<(&str, &str)> = section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| {
            let mut cells = l.strip_prefix("| `")?.splitn(2, "` | ");
            let key = cells.next()?;
            let default = cells.next()?.strip_prefix('`')?.split('`').next()?;
            Some((key, default))
        })
        .collect();
    let keys: Vec<&str> = rows.iter().map(|(k, _)| *k).collect();
    let top = "issuer = \"https://issuer.example.test\"\n";
    let client = format!("[[clients]]\nid = \"a\"\nsecret_hash = \"{}\"\n", secret_hash());
    let reference = format!("{:?}", load(&format!("{top}{client}")).unwrap());
    let mut checked = 0;
    for (key, default) in &rows {
        if keys.contains(default) {
            continue; // "the same as another key", not a literal
        }
        let value = if toml::from_str::<toml::Table>(&format!("v = {default}")).is_ok() {
            (*default).to_string()
        } else {
            toml::Value::String((*default).to_string()).to_string()
        };
        let text = match key.split_once('.') {
            None => format!("{key} = {value}\n{top}{client}"),
            Some(("clients[]", k)) => format!("{top}{client}{k} = {value}\n"),
            Some((table, k)) => format!("{top}[{table}]\n{k} = {value}\n{client}"),
        };
        let got = load(&text).unwrap_or_else(|e| panic!("README default of `{key}` ({default}) is refused: {e}"));
        assert_eq!(format!("{got:?}"), reference, "README default of `{key}` ({default}) is not the code's");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} README defaults checked: {rows:?}");
}

#[test]
fn a_typed_value_error_names_the_line_and_the_full_key() {
    let text = base().replace("algorithm = \"RS256\"", "algorithm = \"RS256\"\nttl = \"-5m\"");
    let line = text.lines().position(|l| l.starts_with("ttl = \"-5m\"")).unwrap() + 1;
    assert_refused(&text, &[&format!("line {line}, "), "key `clients[1].ttl`", "`-5m` is not a duration"]);
    let text = base().replace("[tokens]\n", "[tokens]\nassertion_audience = \"anyone\"\n");
    assert_refused(&text, &["key `tokens.assertion_audience`", "`issuer_or_token_endpoint`"]);
    let text = base().replace("secret_hash = \"$", "dpop = \"always\"\nsecret_hash = \"$");
    assert_refused(&text, &["key `clients[0].dpop`", "`required`"]);
}
