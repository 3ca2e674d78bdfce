//! `jwks-verify`: verifies access tokens read from stdin, one per line, in
//! one long-lived process, printing one JSON line per token.
//!
//! A line is a bare token, or a JSON object describing a captured request
//! `{"token": "...", "dpop": "...", "method": "GET", "url": "https://..."}`:
//! with `dpop` the token must be DPoP-bound and the proof valid for that
//! method and URL (RFC 9449 §7.1); the replay cache lives as long as the
//! process, so a proof repeated on a later line is refused. Without `dpop`
//! a DPoP-bound token is invalid (`dpop_bound_token`).
//!
//! Exit status: 0 when every token was valid, 1 otherwise, 2 on bad
//! arguments.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use jwks_verifier::{Algorithm, Error, Verified, Verifier, dangerous::DangerousOptions};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Verify JWT access tokens (one per line on stdin) against an issuer's JWKS.
#[derive(Debug, Parser)]
#[command(name = "jwks-verify", version)]
struct Args {
    /// Expected `iss`; also the base for discovery when --jwks-uri is absent.
    #[arg(long)]
    issuer: String,
    /// JWKS URI (skips discovery).
    #[arg(long)]
    jwks_uri: Option<String>,
    /// Accepted audience (repeatable).
    #[arg(long, required = true)]
    audience: Vec<String>,
    /// Allowed algorithm (repeatable; default RS256 and ES256).
    #[arg(long = "alg")]
    algs: Vec<Algorithm>,
    /// Clock skew tolerated for exp, nbf and iat.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    leeway: Duration,
    /// Least time between refetches caused by unknown kids.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    refetch_cooldown: Duration,
    /// Allow http URLs on non-loopback hosts.
    #[arg(long)]
    allow_http: bool,
    /// How far a DPoP proof's iat may be from now, either side.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    dpop_iat_window: Duration,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(2),
            };
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let mut builder = Verifier::builder()
        .issuer(args.issuer)
        .leeway(args.leeway)
        .refetch_cooldown(args.refetch_cooldown)
        .dpop_iat_window(args.dpop_iat_window);
    for aud in args.audience {
        builder = builder.audience(aud);
    }
    if !args.algs.is_empty() {
        builder = builder.algorithms(args.algs);
    }
    if let Some(uri) = args.jwks_uri {
        builder = builder.jwks_uri(uri);
    }
    if args.allow_http {
        builder = builder.allow_http();
    }
    let verifier = match builder.build().await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("jwks-verify: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&verifier).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("jwks-verify: {e}");
            ExitCode::from(1)
        }
    }
}

/// Verifies each line; `Ok(true)` when every token was valid.
async fn run(verifier: &Verifier) -> std::io::Result<bool> {
    let mut lines = BufReader::new(tokio::io::stdin()).split(b'\n');
    let mut stdout = tokio::io::stdout();
    let mut all_valid = true;
    while let Some(line) = lines.next_segment().await? {
        let out = match std::str::from_utf8(&line).map(str::trim) {
            Ok("") => continue,
            Ok(line) => match check_line(verifier, line).await {
                Ok(Verified { claims, kid, alg, .. }) => {
                    json!({"valid": true, "kid": kid, "alg": alg, "claims": claims})
                }
                Err(e) => json!({"valid": false, "error": e.code(), "message": e.to_string()}),
            },
            Err(_) => json!({"valid": false, "error": "malformed", "message": "the line is not UTF-8"}),
        };
        all_valid &= out["valid"] == true;
        let mut text = out.to_string();
        text.push('\n');
        stdout.write_all(text.as_bytes()).await?;
        stdout.flush().await?;
    }
    Ok(all_valid)
}

/// A captured request: a token, and a DPoP proof with the request it came with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Captured {
    token: String,
    dpop: Option<String>,
    method: Option<String>,
    url: Option<String>,
}

/// Verifies one line: a bare token, or a JSON object (a captured request).
async fn check_line(verifier: &Verifier, line: &str) -> Result<Verified<Value>, Error> {
    if !line.starts_with('{') {
        return verifier.verify_token(line).await;
    }
    let captured: Captured = serde_json::from_str(line).map_err(|e| Error::Malformed {
        reason: format!("the line is not a token or a {{\"token\",\"dpop\",\"method\",\"url\"}} object: {e}").into(),
    })?;
    match (captured.dpop, captured.method, captured.url) {
        (None, _, _) => verifier.verify_token(&captured.token).await,
        (Some(proof), Some(method), Some(url)) => {
            verifier.verify_dpop_token(&captured.token, &proof, &method, &url).await
        }
        (Some(_), _, _) => Err(Error::Malformed { reason: "a line with `dpop` needs `method` and `url`".into() }),
    }
}
