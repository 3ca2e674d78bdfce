//! End-to-end tests: the real `jwks-issuer` and `jwks-verify` binaries and
//! the `jwks_verifier` library together, plus clients we did not write
//! (jsonwebtoken here, PyJWT and requests-oauthlib in `tests/interop/`).
//!
//! One test binary (STYLE.md rule 3); helpers in `tests/support/lib.rs`.
//! Every test starts its own issuer on a free port with a temporary config
//! and key folder; every child process is killed on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "e2e/age_proxy.rs"]
mod age_proxy;
#[path = "e2e/argon2_burst.rs"]
mod argon2_burst;
#[path = "e2e/attacks.rs"]
mod attacks;
#[path = "e2e/axum_example.rs"]
mod axum_example;
#[path = "e2e/common.rs"]
mod common;
#[path = "e2e/config.rs"]
mod config;
#[path = "e2e/dpop.rs"]
mod dpop;
#[path = "e2e/dpop_nonce.rs"]
mod dpop_nonce;
#[path = "e2e/faults.rs"]
mod faults;
#[path = "e2e/interop.rs"]
mod interop;
#[path = "e2e/postgres_tls.rs"]
mod postgres_tls;
#[path = "e2e/private_key_jwt.rs"]
mod private_key_jwt;
#[path = "e2e/replicas.rs"]
mod replicas;
#[path = "e2e/revoke.rs"]
mod revoke;
#[path = "e2e/rotation.rs"]
mod rotation;
#[path = "e2e/slow_clients.rs"]
mod slow_clients;
#[path = "e2e/tls.rs"]
mod tls;
#[path = "e2e/tokens.rs"]
mod tokens;
