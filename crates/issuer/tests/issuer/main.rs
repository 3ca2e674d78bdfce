//! In-process tests of the issuer's HTTP and CLI contract (issue 2): the
//! token endpoint, JWKS, discovery, health, configuration and the binary.
//! One test binary (rustls and kanidm do the same: each file under `tests/`
//! would be a separate, slow-to-link binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod algorithms;
mod cli;
mod config;
mod discovery;
mod dpop;
mod dpop_nonce;
mod hardening;
mod jwks;
mod metrics;
mod postgres;
mod private_key_jwt;
mod secret_cache;
mod support;
mod throttle;
mod token_claims;
mod token_endpoint;
