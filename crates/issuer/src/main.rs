//! The `jwks-issuer` binary: parses the command line and runs it.
//!
//! Exit codes: 0 success, 1 failure (explained on stderr), 2 a command
//! line that clap refuses. Logs go to stderr, filtered by `RUST_LOG`
//! (default `info`), in colour only at a terminal and without `NO_COLOR`.
#![forbid(unsafe_code)]

use std::io::IsTerminal;

use clap::Parser;
use jwks_issuer::cli::{Cli, run};

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
