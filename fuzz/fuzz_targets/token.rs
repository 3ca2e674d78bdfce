//! Token parsing and verification against a fixed JWKS: any bytes, as a
//! token, through `compact::split` and both offline verifiers.
#![no_main]

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, UNIX_EPOCH},
};

use jwks_jose::{JwkSet, compact};
use jwks_verifier::{ManualClock, OfflineVerifier, Verifier, dangerous::DangerousOptions};
use libfuzzer_sys::fuzz_target;

/// The RFC 7515 A.2 (RSA, kid `rsa`) and A.3 (EC, kid `ec`) public keys.
const JWKS: &str = r#"{"keys":[
 {"kty":"RSA","kid":"rsa","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"},
 {"kty":"EC","kid":"ec","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
]}"#;

fn verifiers() -> &'static (OfflineVerifier, OfflineVerifier) {
    static V: OnceLock<(OfflineVerifier, OfflineVerifier)> = OnceLock::new();
    V.get_or_init(|| {
        let set: JwkSet = serde_json::from_str(JWKS).expect("fixed JWKS");
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_300_000_000)));
        let builder = Verifier::builder().issuer("joe").audience("api").clock(clock);
        // Strict (typ at+jwt, two keys) and lax (any typ, the EC key alone,
        // so that a kid-less RFC 7515 A.3 token reaches the claims).
        let strict = builder.clone().build_offline(&set).expect("strict");
        let ec_only = JwkSet { keys: set.keys.into_iter().filter(|k| k.kty == "EC").collect() };
        let lax = builder.accept_any_type().build_offline(&ec_only).expect("lax");
        (strict, lax)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let _ = compact::split(token, 64 * 1024);
    let (strict, lax) = verifiers();
    let _ = strict.verify(token);
    let _ = lax.verify_as::<serde_json::Value>(token);
});
