//! JWKS parsing: any bytes as a JWK set document, the way the verifier's
//! cache reads one (a `keys` array whose members are parsed one by one,
//! unusable keys skipped, at most `MAX_KEYS`), then RFC 7638 thumbprints,
//! key construction and a verification against the resulting set.
#![no_main]

use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use jwks_jose::{Jwk, JwkSet, thumbprint};
use jwks_verifier::{MAX_KEYS, ManualClock, Verifier};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Document {
    keys: Vec<Value>,
}

/// The RFC 7515 A.3 token (ES256, no kid).
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

fuzz_target!(|data: &[u8]| {
    // Also the typed path a caller of `build_offline` takes.
    let _ = serde_json::from_slice::<JwkSet>(data);
    let Ok(doc) = serde_json::from_slice::<Document>(data) else { return };
    if doc.keys.len() > MAX_KEYS {
        return;
    }
    let keys: Vec<Jwk> = doc.keys.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
    for jwk in &keys {
        let _ = thumbprint(jwk);
        let _ = jwk.verifying_key();
    }
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_300_000_000)));
    let builder = Verifier::builder().issuer("joe").audience("api").clock(clock);
    if let Ok(verifier) =
        jwks_verifier::dangerous::DangerousOptions::accept_any_type(builder).build_offline(&JwkSet { keys })
    {
        let _ = verifier.verify(TOKEN);
    }
});
