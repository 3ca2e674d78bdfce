//! The issuer's token endpoint parsers: any bytes as an
//! `application/x-www-form-urlencoded` body and as a `Basic` header value.
#![no_main]

use jwks_issuer::oauth::request::{TokenForm, parse_basic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = TokenForm::parse(data);
    let _ = parse_basic(data);
});
