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
//! With `--dpop-nonce allowed|required` and `--dpop-nonce-secret-file`
//! (RFC 9449 §9), proofs are checked against stateless server nonces made
//! from that secret (the same file on every replica): a proof without a
//! valid nonce is answered `{"valid":false,"error":"use_dpop_nonce",
//! "dpop_nonce":"..."}`, and every answer to a captured DPoP request
//! carries the current `dpop_nonce`.
//!
//! Lines are read at most [`MAX_LINE_LEN`] bytes at a time: a longer line
//! is answered `token_too_large` and skipped without being buffered. The
//! verdict is the library's: claims are checked into its [`Claims`] type.
//!
//! Exit status: 0 when every token was valid, 1 otherwise, 2 on bad
//! arguments.

use std::{
    io::{self, IsTerminal},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::{
    Parser,
    builder::{PossibleValuesParser, TypedValueParser},
};
use jwks_verifier::{
    Algorithm, Claims, Error, Verified, Verifier,
    dangerous::DangerousOptions,
    limits::{MAX_PROOF_LIMIT, MAX_TOKEN_LIMIT},
    nonce::{NonceMode, StatelessNonces},
};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The longest input line read: a captured request holds a token and a
/// DPoP proof of at most the largest limits of any algorithm (13 KiB and
/// 16 KiB, ML-DSA-65's; each algorithm's own limit is the library's), and
/// its JSON framing.
const MAX_LINE_LEN: usize = MAX_TOKEN_LIMIT + MAX_PROOF_LIMIT + 4096;

/// Verify JWT access tokens (one per line on stdin) against an issuer's JWKS.
///
/// A line is a bare token, or a captured request
/// `{"token": "...", "dpop": "...", "method": "GET", "url": "https://..."}`;
/// each line gets one JSON verdict on stdout.
#[derive(Debug, Parser)]
#[command(
    name = "jwks-verify",
    version,
    after_help = "Examples:\n  \
        echo \"$TOKEN\" | jwks-verify --issuer https://auth.example.com --audience https://api.example.com\n  \
        jwks-verify --issuer http://127.0.0.1:8080 --audience https://api.example.test --alg ES256 < tokens.txt\n  \
        jwks-verify --issuer https://auth.example.com --jwks-uri https://auth.example.com/keys --audience api --leeway 30s\n\
        \nEnvironment:\n  \
        RUST_LOG  the log filter for stderr (default warn), e.g. RUST_LOG=jwks_verifier=debug\n  \
        NO_COLOR  set to anything: no colours in help and logs\n\
        \nExit codes:\n  \
        0  every token was valid (also when the reader of stdout goes away early, as `| head` does, and all so far were)\n  \
        1  at least one token was invalid (its line says why), or reading stdin failed\n  \
        2  the command line is wrong, or the issuer's JWKS or discovery could not be set up\n"
)]
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
    /// Allowed algorithm, for tokens and DPoP proofs (repeatable; default
    /// RS256 and ES256; also ES384, PS256, Ed25519, ML-DSA-44, ML-DSA-65).
    /// Ed25519 also admits the header name EdDSA on an Ed25519 key whose
    /// JWK says EdDSA or has no alg.
    #[arg(long = "alg", value_parser = algorithm_parser())]
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
    /// A PEM file of extra root CAs for the JWKS endpoint (repeatable).
    #[arg(long = "ca-file")]
    ca_files: Vec<PathBuf>,
    /// DPoP server nonces (RFC 9449 §9): off, allowed or required.
    #[arg(long, default_value = "off", value_parser = ["off", "allowed", "required"])]
    dpop_nonce: String,
    /// The file holding the nonce secret (at least 16 bytes; a final
    /// newline is ignored), the same for every replica. Required unless
    /// --dpop-nonce is off.
    #[arg(long)]
    dpop_nonce_secret_file: Option<PathBuf>,
    /// The nonce time step; a nonce is accepted during its step and the next.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    dpop_nonce_step: Duration,
}

/// The nonce policy of the options, or a message for exit status 2.
fn nonce_policy(args: &Args) -> Result<Option<StatelessNonces>, String> {
    let mode = match args.dpop_nonce.as_str() {
        "off" => return Ok(None),
        other => other.parse::<NonceMode>().map_err(|e| e.to_string())?,
    };
    let Some(path) = &args.dpop_nonce_secret_file else {
        return Err("--dpop-nonce-secret-file is required with --dpop-nonce allowed or required".into());
    };
    let mut secret = std::fs::read(path).map_err(|e| format!("--dpop-nonce-secret-file {}: {e}", path.display()))?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    StatelessNonces::new(&secret, args.dpop_nonce_step, mode).map(Some).map_err(|e| e.to_string())
}

/// The values `--alg` takes: every algorithm the verifier knows.
fn algorithm_parser() -> impl TypedValueParser<Value = Algorithm> {
    PossibleValuesParser::new(Algorithm::ALL.map(Algorithm::as_str)).try_map(|s| s.parse::<Algorithm>())
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
    let colour = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let nonces = match nonce_policy(&args) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("jwks-verify: {e}");
            return ExitCode::from(2);
        }
    };
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
    for file in args.ca_files {
        builder = builder.ca_file(file);
    }
    if let Some(n) = nonces {
        builder = builder.dpop_nonce(Arc::new(n));
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
async fn run(verifier: &Verifier) -> io::Result<bool> {
    let mut reader = BufReader::with_capacity(16 * 1024, tokio::io::stdin());
    let mut line = Vec::with_capacity(MAX_LINE_LEN);
    let mut stdout = tokio::io::stdout();
    let mut all_valid = true;
    while let Some(read) = read_line_bounded(&mut reader, &mut line, MAX_LINE_LEN).await? {
        let out = match read {
            Line::TooLong { len } => {
                let e = Error::TokenTooLarge { len: usize::try_from(len).unwrap_or(usize::MAX), max: MAX_LINE_LEN };
                json!({"valid": false, "error": e.code(), "message": format!("line of {len} bytes exceeds the limit of {MAX_LINE_LEN}")})
            }
            Line::Complete => match std::str::from_utf8(&line).map(str::trim) {
                Ok(text) => {
                    let (verdict, dpop) = check_line(verifier, text).await;
                    let mut out = match verdict {
                        Ok(Verified { claims, kid, alg, .. }) => {
                            json!({"valid": true, "kid": kid, "alg": alg, "claims": claims})
                        }
                        Err(e) => json!({"valid": false, "error": e.code(), "message": e.to_string()}),
                    };
                    if let (true, Some(nonce)) = (dpop, verifier.dpop_nonce()) {
                        out["dpop_nonce"] = json!(nonce);
                    }
                    out
                }
                Err(_) => json!({"valid": false, "error": "malformed", "message": "the line is not UTF-8"}),
            },
        };
        all_valid &= out["valid"] == true;
        let mut text = out.to_string();
        text.push('\n');
        match stdout.write_all(text.as_bytes()).await.and(stdout.flush().await) {
            // The reader went away (`| head`): nobody reads further verdicts.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            other => other?,
        }
    }
    Ok(all_valid)
}

/// What [`read_line_bounded`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// The line (without its `\n`) is in the buffer.
    Complete,
    /// The line was longer than the limit; it was read to its end and
    /// dropped, and the buffer is empty.
    TooLong {
        /// The line's length in bytes.
        len: u64,
    },
}

/// Reads one line into `line` (cleared first), keeping at most `max` bytes:
/// the rest of a longer line is consumed chunk by chunk and dropped, so
/// memory stays bounded whatever the input. `None` at the end of input.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<Line>> {
    line.clear();
    let (mut len, mut too_long, mut any) = (0u64, false, false);
    loop {
        let (consumed, ended) = {
            let chunk = reader.fill_buf().await?;
            if chunk.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (part, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (chunk.get(..i).unwrap_or(chunk), true),
                None => (chunk, false),
            };
            len = len.saturating_add(part.len() as u64);
            if !too_long {
                if line.len() + part.len() > max {
                    too_long = true;
                    line.clear();
                } else {
                    line.extend_from_slice(part);
                }
            }
            (part.len() + usize::from(ended), ended)
        };
        reader.consume(consumed);
        if ended {
            break;
        }
    }
    Ok(Some(if too_long { Line::TooLong { len } } else { Line::Complete }))
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
/// The claims are the library's [`Claims`], so the verdict is the one a
/// program using the library would get. Also answers whether the line was
/// a captured DPoP request.
async fn check_line(verifier: &Verifier, line: &str) -> (Result<Verified<Claims>, Error>, bool) {
    if line.is_empty() {
        return (Err(Error::Malformed { reason: "the line is empty".into() }), false);
    }
    if !line.starts_with('{') {
        return (verifier.verify_token(line).await, false);
    }
    let captured: Captured = match serde_json::from_str(line) {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("the line is not a token or a {{\"token\",\"dpop\",\"method\",\"url\"}} object: {e}");
            return (Err(Error::Malformed { reason: reason.into() }), false);
        }
    };
    match (captured.dpop, captured.method, captured.url) {
        (None, None, None) => (verifier.verify_token(&captured.token).await, false),
        (Some(proof), Some(method), Some(url)) => {
            (verifier.verify_dpop_token(&captured.token, &proof, &method, &url).await, true)
        }
        _ => (Err(Error::Malformed { reason: "`dpop`, `method` and `url` go together or not at all".into() }), false),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use tokio::io::{AsyncRead, ReadBuf};

    use super::*;

    /// An endless-looking input made on the fly: `len` bytes of `a`, then
    /// `\n`, then `tail`; it never holds more than one small chunk.
    struct Generated {
        left: u64,
        tail: &'static [u8],
    }

    impl AsyncRead for Generated {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            if self.left > 0 {
                let n = buf.remaining().min(usize::try_from(self.left).unwrap_or(usize::MAX));
                buf.put_slice(&vec![b'a'; n]);
                self.left -= n as u64;
            } else {
                let n = buf.remaining().min(self.tail.len());
                let (now, later) = self.tail.split_at(n);
                buf.put_slice(now);
                self.tail = later;
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Issue 14: a 300 MB line was buffered whole (298 MB RSS) before the
    /// size check. The reader keeps at most the limit, whatever the line.
    #[tokio::test]
    async fn stdin_line_over_the_limit_is_not_buffered() {
        let len = 300 * 1024 * 1024;
        let mut reader = BufReader::with_capacity(16 * 1024, Generated { left: len, tail: b"\nnext\n" });
        let mut line = Vec::with_capacity(MAX_LINE_LEN);
        let capacity = line.capacity();
        let read = read_line_bounded(&mut reader, &mut line, MAX_LINE_LEN).await.unwrap();
        assert_eq!(read, Some(Line::TooLong { len }));
        assert!(line.is_empty());
        assert_eq!(line.capacity(), capacity, "the buffer never grew past the limit");
        // The next line is read normally.
        assert_eq!(read_line_bounded(&mut reader, &mut line, MAX_LINE_LEN).await.unwrap(), Some(Line::Complete));
        assert_eq!(line, b"next");
        assert_eq!(read_line_bounded(&mut reader, &mut line, MAX_LINE_LEN).await.unwrap(), None);
    }

    #[tokio::test]
    async fn lines_at_the_limit_and_without_a_final_newline_are_complete() {
        let input: &[u8] = b"abc\n\nabcd\nxy";
        let mut reader = BufReader::with_capacity(2, input);
        let mut line = Vec::new();
        let mut got = Vec::new();
        while let Some(read) = read_line_bounded(&mut reader, &mut line, 3).await.unwrap() {
            got.push((read, String::from_utf8(line.clone()).unwrap()));
        }
        assert_eq!(
            got,
            [
                (Line::Complete, "abc".into()),
                (Line::Complete, String::new()),
                (Line::TooLong { len: 4 }, String::new()),
                (Line::Complete, "xy".into()),
            ]
        );
    }
}
