//! The command line: `serve`, `hash-secret`, `clients new`, `check-config`
//! and the `keys` operations.

use std::{
    io::{self, IsTerminal, Read, Write},
    path::PathBuf,
};

use clap::{Args, Parser, Subcommand, builder::TypedValueParser};
use jwks_jose::{
    Algorithm,
    clock::{Clock, SystemClock, UnixTime},
};

use crate::{
    Config, Error,
    config::KeyStoreConfig,
    config::{DEFAULT_CONFIG, ENV_CONFIG},
    keys::{
        self, DirStore, KeyStore, PgStore, PgUrl, Policy, kek,
        ops::{self, Done},
    },
    oauth::secret::hash_secret,
};

/// The help's closing sections, shared by the commands: the environment
/// and the exit codes. Literals, so that `concat!` can join them.
macro_rules! env_common {
    () => {
        "  JWKS_ISSUER_CONFIG         the configuration file, as --config (default config/issuer.toml)\n  \
         RUST_LOG                   the log filter for stderr (default info), e.g. RUST_LOG=debug\n  \
         NO_COLOR                   set to anything: no colours in help and logs\n"
    };
}
macro_rules! env_overrides {
    () => {
        "  JWKS_ISSUER_ISSUER         overrides `issuer`\n  \
         JWKS_ISSUER_LISTEN         overrides `listen`\n  \
         JWKS_ISSUER_KEYS_DIR       overrides the key store with a folder (`keys.dir`)\n  \
         JWKS_ISSUER_KEYS_POSTGRES  overrides the key store with PostgreSQL (`keys.postgres`)\n  \
         JWKS_ISSUER_TOKENS_TTL     overrides `tokens.ttl` (a duration such as 15m)\n"
    };
}
macro_rules! env_kek {
    () => {
        "  JWKS_ISSUER_KEK            base64 of 32 bytes: seals private keys at rest (required with PostgreSQL)\n"
    };
}
macro_rules! exit_codes {
    () => {
        "\nExit codes:\n  \
         0  success (also when the reader of stdout goes away early, as `| head` does)\n  \
         1  failure, explained on stderr (bad configuration, key store, input)\n  \
         2  the command line is wrong (unknown option, missing or bad value)\n"
    };
}
/// A command's help footer: its examples, then the environment (with the
/// overrides and the KEK when it reads the configuration), then the exit
/// codes.
macro_rules! footer {
    ($examples:literal) => {
        concat!("Examples:\n", $examples, "\nEnvironment:\n", env_common!(), exit_codes!())
    };
    ($examples:literal, config) => {
        concat!(
            "Examples:\n",
            $examples,
            "\nEnvironment:\n",
            env_common!(),
            env_overrides!(),
            env_kek!(),
            exit_codes!()
        )
    };
}

/// The values `--alg` takes: every algorithm the issuer signs with.
fn algorithm_parser() -> impl TypedValueParser<Value = Algorithm> {
    clap::builder::PossibleValuesParser::new(Algorithm::ALL.map(Algorithm::as_str)).try_map(|s| s.parse::<Algorithm>())
}

/// OAuth 2.0 client-credentials issuer of RFC 9068 JWT access tokens.
#[derive(Debug, Parser)]
#[command(
    name = "jwks-issuer",
    version,
    about,
    after_help = footer!(
        "  jwks-issuer serve\n  \
         jwks-issuer --config /etc/jwks/issuer.toml check-config\n  \
         jwks-issuer clients new --id billing --scope invoices:read\n  \
         jwks-issuer keys list\n",
        config
    )
)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, env = ENV_CONFIG, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the token endpoint, JWKS and discovery; rotate keys on schedule.
    #[command(after_help = footer!(
        "  jwks-issuer serve\n  \
         JWKS_ISSUER_LISTEN=0.0.0.0:8443 JWKS_ISSUER_ISSUER=https://auth.example.com jwks-issuer serve\n",
        config
    ))]
    Serve,
    /// Read a secret and print its argon2id `secret_hash`. At a terminal it
    /// prompts without echo; otherwise all of stdin is the secret (one
    /// trailing newline stripped).
    #[command(after_help = footer!(
        "  jwks-issuer hash-secret                          (prompts; the secret is not shown)\n  \
         printf %s \"$SECRET\" | jwks-issuer hash-secret\n"
    ))]
    HashSecret,
    /// Manage clients.
    #[command(subcommand, after_help = footer!("  jwks-issuer clients new --id billing --scope invoices:read\n"))]
    Clients(ClientsCommand),
    /// Validate the configuration as `serve` would (the KEK included) and
    /// print its clients.
    #[command(after_help = footer!(
        "  jwks-issuer check-config\n  \
         jwks-issuer --config /etc/jwks/issuer.toml check-config\n",
        config
    ))]
    CheckConfig,
    /// Inspect and change the key store (safe while servers run).
    #[command(subcommand, after_help = footer!("  jwks-issuer keys list\n  jwks-issuer keys rotate --alg ES256\n", config))]
    Keys(KeysCommand),
}

/// `clients` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientsCommand {
    /// Generate a client with a 256-bit random secret; prints the secret
    /// once and the TOML block to paste into the config.
    #[command(after_help = footer!(
        "  jwks-issuer clients new --id billing --scope invoices:read --scope invoices:write\n  \
         jwks-issuer clients new --id edge --audience https://api.example.com --private-key-jwt\n"
    ))]
    New(NewClient),
}

/// `clients new` arguments.
#[derive(Debug, Args)]
pub(crate) struct NewClient {
    /// The client id: 1 to 128 bytes, no control character.
    #[arg(long, value_name = "ID")]
    id: String,
    /// A scope the client may ask for (repeatable): an RFC 6749 §3.3 scope
    /// token, printable ASCII without space, `"` or `\`.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// An audience the client may ask for (repeatable; the first is the
    /// default), such as `https://api.example.com`.
    #[arg(long = "audience", value_name = "URI")]
    audiences: Vec<String>,
    /// Authenticate with `private_key_jwt` (RFC 7523) instead of a secret:
    /// generate an ES256 key pair, print the private key once (PEM) and the
    /// public JWK in the TOML block.
    #[arg(long)]
    private_key_jwt: bool,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List keys: kid, algorithm, state, every instant, damaged files.
    #[command(after_help = footer!("  jwks-issuer keys list\n  jwks-issuer keys list --json | jq '.signing'\n", config))]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a successor now; it signs after `publish_ahead` (or at once with --now).
    #[command(after_help = footer!("  jwks-issuer keys rotate\n  jwks-issuer keys rotate --alg RS256 --now\n", config))]
    Rotate {
        /// Only this algorithm (default: every one of `keys.algorithms`).
        #[arg(long, value_parser = algorithm_parser())]
        alg: Option<Algorithm>,
        /// Sign with the new key at once.
        #[arg(long)]
        now: bool,
    },
    /// Withdraw a key from the JWKS at once; a signing key is replaced at once.
    #[command(after_help = footer!("  jwks-issuer keys revoke whQJ3yq1iM7bRhzUeS3sOyzXv1cG6uQ0Nw1eS2aHqTY\n", config))]
    Revoke {
        /// The key id, as `keys list` prints it (one that begins with `-`
        /// is taken as written).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Import an existing PKCS#8 PEM private key as the next signing key.
    #[command(after_help = footer!(
        "  jwks-issuer keys import --alg ES256 --pem old-signing-key.pem\n  \
         openssl pkcs8 -topk8 -nocrypt -in legacy.pem -out key.pem && jwks-issuer keys import --alg RS256 --pem key.pem\n",
        config
    ))]
    Import {
        /// Its algorithm.
        #[arg(long, value_parser = algorithm_parser())]
        alg: Algorithm,
        /// The PEM file: a PKCS#8 `PRIVATE KEY` block.
        #[arg(long, value_name = "FILE")]
        pem: PathBuf,
    },
    /// Copy every key of a folder store, with its timeline, into a
    /// PostgreSQL store; keys already there are left as they are, so it can
    /// be run again. Needs `JWKS_ISSUER_KEK`.
    #[command(after_help = footer!(
        "  JWKS_ISSUER_KEK=$(cat kek.b64) jwks-issuer keys migrate --from-dir keys --to postgres://issuer@db/jwks\n",
        config
    ))]
    Migrate {
        /// The folder store to copy from.
        #[arg(long, value_name = "DIR")]
        from_dir: PathBuf,
        /// The PostgreSQL store to copy into (`postgres://user@host/db`).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let mut out = Out::new();
    match cli.command {
        Command::HashSecret => hash_secret_command(&mut out),
        Command::Clients(ClientsCommand::New(args)) => new_client(args, &mut out),
        Command::CheckConfig => check_config(&Config::load(&cli.config)?, &mut out),
        Command::Serve => crate::serve::run(Config::load(&cli.config)?).await,
        Command::Keys(cmd) => {
            let config = Config::load(&cli.config)?;
            tokio::task::spawn_blocking(move || keys_command(&config, cmd, &mut out))
                .await
                .map_err(|e| Error::Store(format!("task failed: {e}")))?
        }
    }
}

fn hash_secret_command(out: &mut Out) -> Result<(), Error> {
    let input = if io::stdin().is_terminal() {
        // At a terminal: a prompt on the terminal, and no echo.
        rpassword::prompt_password("secret (not shown): ")
            .map_err(|e| Error::Usage(format!("reading the secret: {e}")))?
    } else {
        // All of stdin is the secret, minus one trailing newline: reading
        // one line would silently drop the rest of a multi-line secret.
        let mut input = String::new();
        io::stdin().lock().read_to_string(&mut input).map_err(|e| Error::Usage(format!("reading stdin: {e}")))?;
        input
    };
    let secret = input.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&input);
    if secret.is_empty() {
        return Err(Error::Usage("no secret on stdin".into()));
    }
    writeln!(out, "{}", hash_secret(secret)?)?;
    Ok(())
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml::Value::String(s.clone()).to_string()).collect();
    format!("[{}]", quoted.join(", "))
}

fn new_client(args: NewClient, out: &mut Out) -> Result<(), Error> {
    // The same rule as `clients[].id` in the config, so the block printed
    // (with its secret) is never one the config refuses.
    if let Err(e) = crate::oauth::client::ClientId::parse(&args.id) {
        return Err(Error::Usage(format!("--id: {e}")));
    }
    for s in &args.scopes {
        crate::oauth::client::ScopeToken::parse(s).map_err(|e| Error::Usage(format!("--scope: {e}")))?;
    }
    let auth_line = if args.private_key_jwt {
        let pkcs8 = jwks_jose::SigningKey::generate(Algorithm::ES256, 2048)?;
        let key = jwks_jose::SigningKey::from_pkcs8(Algorithm::ES256, &pkcs8)?;
        writeln!(out, "# client private key (shown once; give it to the client, store it nowhere else):")?;
        write!(out, "{}", pem("PRIVATE KEY", &pkcs8))?;
        let set = jwks_jose::JwkSet { keys: vec![key.public_jwk()] };
        let value = toml::Value::try_from(&set).map_err(|e| Error::Usage(format!("encoding the JWK: {e}")))?;
        format!("jwks = {value}")
    } else {
        let mut raw = [0u8; 32];
        jwks_jose::crypto::fill_random(&mut raw)?;
        let secret = jwks_jose::b64::encode(raw);
        let hash = hash_secret(&secret)?;
        writeln!(out, "# client secret (shown once; give it to the client, store it nowhere else):")?;
        writeln!(out, "# {secret}")?;
        format!("secret_hash = {}", toml::Value::String(hash))
    };
    writeln!(out, "[[clients]]")?;
    writeln!(out, "id = {}", toml::Value::String(args.id.clone()))?;
    writeln!(out, "{auth_line}")?;
    writeln!(out, "scopes = {}", toml_list(&args.scopes))?;
    if !args.audiences.is_empty() {
        writeln!(out, "audiences = {}", toml_list(&args.audiences))?;
    }
    Ok(())
}

/// PEM armour (RFC 7468) around DER bytes.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn check_config(config: &Config, out: &mut Out) -> Result<(), Error> {
    // Everything `serve` checks before it touches the store: the KEK's
    // presence and form, and the clients' assertion verifiers.
    let sealer = kek::sealer_from_env()?;
    if matches!(config.keys.store, KeyStoreConfig::Postgres(_)) && sealer.is_none() {
        return Err(Error::Kek(format!(
            "{} is required with `keys.postgres`: private keys are sealed before they reach the database",
            kek::ENV_KEK
        )));
    }
    let clock: crate::clock::SharedClock = std::sync::Arc::new(SystemClock);
    let settings = config.token_settings();
    let rule = crate::oauth::assertion::AudienceRule {
        issuer: settings.issuer.clone(),
        token_endpoint: settings.token_endpoint.clone(),
        mode: settings.assertion_audience,
    };
    crate::oauth::assertion::Assertions::new(&config.clients, &rule, settings.assertion_max_lifetime, &clock)?;
    crate::oauth::Clients::new(&config.clients)?;
    if let Some(warning) = issuer_listen_mismatch(config) {
        eprintln!("warning: {warning}");
    }
    writeln!(out, "{}: ok", config.path.display())?;
    writeln!(out, "issuer   {}", config.issuer)?;
    writeln!(out, "listen   {}", config.listen)?;
    let store = match &config.keys.store {
        KeyStoreConfig::Dir(dir) => dir.display().to_string(),
        KeyStoreConfig::Postgres(url) => url.location().to_string(),
    };
    writeln!(out, "keys     {store} ({})", algs(&config.keys.algorithms))?;
    for c in &config.clients {
        writeln!(
            out,
            "client   {:<24} auth={:<40} alg={} ttl={} scopes=[{}]",
            c.id,
            c.auth.method_names(),
            c.algorithm,
            humantime::format_duration(c.ttl),
            c.scopes.join(" ")
        )?;
    }
    Ok(())
}

/// A loopback `listen` that the issuer URL does not name: tokens would
/// carry an `iss` (and discovery a token endpoint) that nobody reaches,
/// unless a proxy forwards the issuer's host to this address.
fn issuer_listen_mismatch(config: &Config) -> Option<String> {
    if !config.listen.ip().is_loopback() {
        return None;
    }
    let url = url::Url::parse(&config.issuer).ok()?;
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']');
    let host_is_listen = host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip == config.listen.ip() || ip.is_loopback());
    let port = url.port_or_known_default()?;
    if host_is_listen && port == config.listen.port() {
        return None;
    }
    Some(format!(
        "`issuer` {} is not the address `serve` listens on ({}); that is right only behind a proxy that forwards \
         it here",
        config.issuer, config.listen
    ))
}

fn algs(a: &[Algorithm]) -> String {
    a.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
}

fn open_store(config: &Config) -> Result<keys::Opened, Error> {
    if let KeyStoreConfig::Dir(dir) = &config.keys.store
        && !dir.exists()
    {
        return Err(Error::Usage(format!("key folder {} does not exist (start `serve` once)", dir.display())));
    }
    keys::open_store(&config.keys.store)
}

/// `keys migrate`: copies the folder's keys into the database, under the
/// database's change lock; prints what it did and fails on damaged files
/// after copying the good ones.
fn migrate(from_dir: &std::path::Path, to: &str, clock: &SystemClock, out: &mut Out) -> Result<(), Error> {
    let url: PgUrl = to.parse().map_err(|e| Error::Usage(format!("--to: {e}")))?;
    if !from_dir.is_dir() {
        return Err(Error::Usage(format!("--from-dir: {} is not a folder", from_dir.display())));
    }
    let sealer = kek::sealer_from_env()?.ok_or_else(|| {
        Error::Kek(format!("{} is required: keys are sealed before they reach the database", kek::ENV_KEK))
    })?;
    // Keys in clear are read here on purpose: they are sealed on their way in.
    let from = DirStore::open(from_dir, kek::sealer_from_env()?)?.accepting_clear_keys();
    // A folder of keys in clear opens with any KEK; sealed ones need this one.
    let loaded = from.read(None)?;
    let to = PgStore::open(&url, sealer)?;
    let lock = KeyStore::lock(&to, keys::LOCK_TIMEOUT)?;
    let (mut copied, mut present) = (0, 0);
    for r in &loaded.keys {
        if to.insert_new(&lock, r)? {
            copied += 1;
            writeln!(out, "copied  {} {} ({})", r.meta.alg, r.meta.kid, r.meta.timeline.state(clock.unix_now()))?;
        } else {
            present += 1;
            writeln!(out, "present {} {} (left as it is)", r.meta.alg, r.meta.kid)?;
        }
    }
    for d in &loaded.damaged {
        eprintln!("DAMAGED {} (kid {}): {} (not copied)", d.file, d.kid.as_deref().unwrap_or("?"), d.reason);
    }
    writeln!(
        out,
        "{copied} copied, {present} already present, {} damaged, into {}",
        loaded.damaged.len(),
        url.location()
    )?;
    if loaded.damaged.is_empty() {
        Ok(())
    } else {
        Err(Error::Usage(format!("{} damaged key files were not copied", loaded.damaged.len())))
    }
}

fn print_done(verb: &str, d: &Done, out: &mut Out) -> Result<(), Error> {
    writeln!(
        out,
        "{verb} {} {} (published {}, activates {}, deactivates {}, expires {})",
        d.alg,
        d.kid,
        fmt_time(d.timeline.published),
        fmt_time(d.timeline.activates),
        fmt_time(d.timeline.deactivates),
        fmt_time(d.timeline.expires)
    )?;
    if let Some(r) = &d.replaces {
        writeln!(out, "  replaces {r} as the {} signing key", d.alg)?;
    }
    Ok(())
}

fn fmt_time(t: UnixTime) -> String {
    humantime::format_rfc3339_seconds(t.to_system_time()).to_string()
}

/// Standard output of the commands. A reader that went away (`| head`)
/// ends the output quietly: later writes are dropped and the command
/// still succeeds; any other write failure is an error.
pub(crate) struct Out {
    closed: bool,
}

impl Out {
    fn new() -> Self {
        Out { closed: false }
    }

    /// What `write!` and `writeln!` call: writes and flushes at once.
    fn write_fmt(&mut self, args: std::fmt::Arguments<'_>) -> Result<(), Error> {
        if self.closed {
            return Ok(());
        }
        let mut stdout = io::stdout().lock();
        match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(Error::Usage(format!("writing to stdout: {e}"))),
            Ok(()) => Ok(()),
        }
    }
}

/// `keys list`: every key with its state and instants, then, per
/// algorithm, which key signs now and what changes next; `--json` gives
/// the same as `{"keys": [...], "signing": [...], "damaged": [...]}`.
fn list_text(loaded: &keys::Loaded, algorithms: &[Algorithm], policy: &Policy, now: UnixTime, json: bool) -> String {
    use std::fmt::Write as _;
    let metas: Vec<keys::KeyMeta> = loaded.keys.iter().map(|r| r.meta.clone()).collect();
    let outlooks: Vec<keys::lifecycle::Outlook> =
        algorithms.iter().map(|&a| keys::lifecycle::outlook(&metas, a, policy, now)).collect();
    let mut out = String::new();
    if json {
        let keys: Vec<serde_json::Value> = metas
            .iter()
            .map(|m| {
                let t = &m.timeline;
                serde_json::json!({
                    "kid": m.kid, "alg": m.alg, "state": keys::lifecycle::state_among(&metas, m, now),
                    "signs": outlooks.iter().any(|o| o.signer.as_deref() == Some(m.kid.as_str())),
                    "published": t.published, "activates": t.activates,
                    "deactivates": t.deactivates, "expires": t.expires,
                    "revoked": t.revoked,
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::json!({"keys": keys, "signing": outlooks, "damaged": loaded.damaged}));
        return out;
    }
    let _ = writeln!(
        out,
        "{:<44} {:<6} {:<9} {:<21} {:<21} {:<21} {:<21}",
        "KID", "ALG", "STATE", "PUBLISHED", "ACTIVATES", "DEACTIVATES", "EXPIRES"
    );
    for m in &metas {
        let t = &m.timeline;
        let _ = writeln!(
            out,
            "{:<44} {:<6} {:<9} {:<21} {:<21} {:<21} {:<21}",
            m.kid,
            m.alg.as_str(),
            keys::lifecycle::state_among(&metas, m, now).to_string(),
            fmt_time(t.published),
            fmt_time(t.activates),
            fmt_time(t.deactivates),
            fmt_time(t.expires)
        );
    }
    let _ = writeln!(out);
    for o in &outlooks {
        let signs = o.signer.as_deref().unwrap_or("(no key)");
        let when = o
            .next_at
            .map(|t| format!(" at {} (in {}s)", fmt_time(t), t.saturating_duration_since(now).as_secs()))
            .unwrap_or_default();
        let _ = writeln!(out, "{:<6} signs with {signs}; next{when}: {}", o.alg.as_str(), o.next);
    }
    for d in &loaded.damaged {
        let _ = writeln!(out, "DAMAGED {} (kid {}): {}", d.file, d.kid.as_deref().unwrap_or("?"), d.reason);
    }
    out
}

fn keys_command(config: &Config, cmd: KeysCommand, out: &mut Out) -> Result<(), Error> {
    let clock = SystemClock;
    if let KeysCommand::Migrate { from_dir, to } = &cmd {
        return migrate(from_dir, to, &clock, out);
    }
    let opened = open_store(config)?;
    let store = opened.store.as_ref();
    let policy = config.key_policy();
    let now = clock.unix_now();
    match cmd {
        KeysCommand::List { json } => {
            let loaded = keys::load_screened(store, &policy)?;
            write!(out, "{}", list_text(&loaded, &config.keys.algorithms, &policy, now, json))
        }
        KeysCommand::Rotate { alg, now: immediately } => {
            let algs = match alg {
                Some(a) if !config.keys.algorithms.contains(&a) => {
                    return Err(Error::Usage(format!("{a} is not in keys.algorithms")));
                }
                Some(a) => vec![a],
                None => config.keys.algorithms.clone(),
            };
            let lock = store.lock(keys::LOCK_TIMEOUT)?;
            // Every algorithm in one list of writes (one transaction on
            // PostgreSQL): servers see the change whole.
            for done in ops::rotate_all(store, &lock, &policy, &algs, config.keys.rsa_bits, &clock, immediately)? {
                print_done("created", &done, out)?;
            }
            if immediately {
                eprintln!(
                    "warning: the new keys sign at once; verifiers caching the old JWKS will refetch it on the unknown kid"
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { kid } => {
            let lock = store.lock(keys::LOCK_TIMEOUT)?;
            let (done, replacement) = ops::revoke(store, &lock, &policy, &kid, config.keys.rsa_bits, &clock)?;
            writeln!(out, "revoked {} {}: it left the JWKS", done.alg, done.kid)?;
            if let Some(r) = replacement {
                print_done("created", &r, out)?;
            }
            Ok(())
        }
        KeysCommand::Import { alg, pem } => {
            if !config.keys.algorithms.contains(&alg) {
                return Err(Error::Usage(format!("{alg} is not in keys.algorithms")));
            }
            let text = std::fs::read_to_string(&pem).map_err(|e| Error::Usage(format!("{}: {e}", pem.display())))?;
            let der = ops::pkcs8_from_pem(&text).map_err(|e| Error::Usage(format!("{}: {e}", pem.display())))?;
            let lock = store.lock(keys::LOCK_TIMEOUT)?;
            let done = ops::import(store, &lock, &policy, alg, der, &clock)?;
            print_done("imported", &done, out)?;
            Ok(())
        }
        KeysCommand::Migrate { .. } => Ok(()),
    }
}
