//! Integration tests of `jwks-verifier`, as one test binary.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod algorithms;
#[cfg(any(feature = "actix", feature = "axum"))]
mod answers;
mod cache;
mod cli;
mod dpop;
#[cfg(feature = "actix")]
mod extractor;
mod multi;
mod nonce;
mod rules;
mod support;
mod telemetry;
#[cfg(feature = "axum")]
mod tower_axum;
mod transport;
