//! The published test vectors (RFC 7515, 7517, 7638 and Wycheproof) moved
//! to `crates/jose/tests/vectors.rs`, so that they run on both crypto
//! backends (`cargo test -p jwks-jose` and `cargo test -p jwks-jose
//! --no-default-features --features ring`); none of them needs the issuer.
