//! Every verification rule, with the error code it must produce (offline
//! verifier; the async verifier shares the same code path in `token`).

use std::sync::Arc;

use jwks_jose::{Algorithm, SigningKey, b64};
use jwks_verifier::{Audience, Claims, Error, ManualClock, OfflineVerifier, Verifier, dangerous::DangerousOptions};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::*;

struct Fixture {
    es: SigningKey,
    rs: &'static SigningKey,
    verifier: OfflineVerifier,
}

fn fixture() -> Fixture {
    let es = es_key();
    let rs = rsa_key();
    let verifier = builder().build_offline(&jwk_set(&[&es, rs])).unwrap();
    Fixture { es, rs, verifier }
}

fn builder() -> jwks_verifier::VerifierBuilder {
    Verifier::builder().issuer(ISS).audience(AUD).clock(Arc::new(ManualClock::new(start_time())))
}

#[track_caller]
fn code(verifier: &OfflineVerifier, token: &str) -> &'static str {
    match verifier.verify(token) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.code(),
    }
}

fn with_claim(f: &Fixture, name: &str, value: Value) -> String {
    let mut c = claims();
    c[name] = value;
    sign(&f.es, &header(&f.es), &c)
}

fn without_claim(f: &Fixture, name: &str) -> String {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(name);
    sign(&f.es, &header(&f.es), &c)
}

fn with_header(f: &Fixture, name: &str, value: Value) -> String {
    let mut h = header(&f.es);
    h[name] = value;
    sign(&f.es, &h, &claims())
}

#[test]
fn valid_es256_and_rs256_tokens_verify_with_typed_claims() {
    let f = fixture();
    for key in [&f.es, f.rs] {
        let v = f.verifier.verify_token::<Claims>(&token(key)).unwrap();
        assert_eq!(v.alg, key.algorithm());
        assert_eq!(v.kid.as_deref(), Some(key.kid()));
        let c = v.claims;
        assert_eq!(c.iss, ISS);
        assert_eq!(c.aud, Audience::One(AUD.into()));
        assert_eq!(
            (c.sub.as_deref(), c.client_id.as_deref(), c.jti.as_deref()),
            (Some("user-1"), Some("client-1"), Some("j-1"))
        );
        assert_eq!((c.exp, c.iat, c.nbf), (NOW + 300, Some(NOW), Some(NOW)));
        assert!(c.has_scope("read") && c.has_scope("write") && !c.has_scope("admin"));
    }
}

#[test]
fn verify_as_deserialises_into_the_callers_type() {
    #[derive(Debug, Deserialize)]
    struct Mine {
        sub: String,
        tenant: String,
    }
    let f = fixture();
    let mut c = claims();
    c["tenant"] = json!("acme");
    let mine: Mine = f.verifier.verify_as(&sign(&f.es, &header(&f.es), &c)).unwrap();
    assert_eq!((mine.sub.as_str(), mine.tenant.as_str()), ("user-1", "acme"));
    let missing = f.verifier.verify_as::<Mine>(&token(&f.es)).unwrap_err();
    assert_eq!(missing.code(), "invalid_claim");
}

#[test]
fn token_over_8_kib_is_token_too_large() {
    let f = fixture();
    let mut c = claims();
    c["pad"] = json!("x".repeat(8 * 1024));
    assert_eq!(code(&f.verifier, &sign(&f.es, &header(&f.es), &c)), "token_too_large");
    assert_eq!(code(&f.verifier, &"a".repeat(10_000)), "token_too_large");
}

#[test]
fn framing_errors_are_malformed() {
    let f = fixture();
    let t = token(&f.es);
    let segs: Vec<&str> = t.split('.').collect();
    let cases = [
        format!("{}.{}", segs[0], segs[1]),
        format!("{t}.{}", segs[2]),
        format!("{}.{}.{}=", segs[0], segs[1], segs[2]),
        format!("{}.{}.{}", segs[0], segs[1].replace('A', "+"), segs[2]),
        format!(" {t}"),
        format!("{}.{} .{}", segs[0], segs[1], segs[2]),
        format!("{}..{}", segs[0], segs[2]),
        String::new(),
        "not a token".into(),
    ];
    for case in cases {
        assert_eq!(code(&f.verifier, &case), "malformed", "{case:?}");
    }
}

#[test]
fn header_and_claims_must_be_duplicate_free_json_objects() {
    let f = fixture();
    let h = header(&f.es).to_string();
    let c = claims().to_string();
    let dup_header = h.replacen('{', r#"{"alg":"ES256","#, 1);
    let dup_claims = c.replacen('{', &format!(r#"{{"iss":"{ISS}","#), 1);
    let cases = [
        sign_raw(&f.es, dup_header.as_bytes(), c.as_bytes()),
        sign_raw(&f.es, h.as_bytes(), dup_claims.as_bytes()),
        sign_raw(&f.es, h.as_bytes(), br#"{"exp":1,"exp":99999999999}"#),
        sign_raw(&f.es, b"[1,2]", c.as_bytes()),
        sign_raw(&f.es, b"not json", c.as_bytes()),
        sign_raw(&f.es, h.as_bytes(), b"\"a string\""),
        sign_raw(&f.es, h.as_bytes(), format!("{}{}", "[".repeat(200), "]".repeat(200)).as_bytes()),
    ];
    for case in cases {
        assert_eq!(code(&f.verifier, &case), "malformed");
    }
}

#[test]
fn none_hmac_and_unknown_algorithms_are_unsupported_alg() {
    let f = fixture();
    let c = b64::encode(claims().to_string());
    for alg in ["none", "None", "NONE", "nOnE", "HS256", "HS384", "HS512", "PS256", "es256", "EdDSA", ""] {
        let h = b64::encode(json!({"alg": alg, "typ": "at+jwt", "kid": f.es.kid()}).to_string());
        let t = format!("{h}.{c}.{}", b64::encode(b"sig"));
        assert_eq!(code(&f.verifier, &t), "unsupported_alg", "{alg}");
    }
    assert_eq!(code(&f.verifier, &with_header(&f, "alg", json!(null))), "malformed");
}

/// Issue 22: `alg: none` framed `h.p.` (empty signature) or `h.p` (two
/// segments) was `malformed`; the allow-list rule makes it
/// `unsupported_alg`, like `h.p.sig`.
#[test]
fn alg_none_framed_without_a_signature_is_unsupported_alg() {
    let f = fixture();
    let c = b64::encode(claims().to_string());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64::encode(json!({"alg": alg, "typ": "at+jwt", "kid": f.es.kid()}).to_string());
        for t in [format!("{h}.{c}."), format!("{h}.{c}"), format!("{h}.{c}.{}", b64::encode(b"sig"))] {
            assert_eq!(code(&f.verifier, &t), "unsupported_alg", "{alg}: {t}");
        }
    }
    // The same framing with an allowed alg stays a framing error.
    let h = b64::encode(json!({"alg": "ES256", "typ": "at+jwt", "kid": f.es.kid()}).to_string());
    assert_eq!(code(&f.verifier, &format!("{h}.{c}.")), "malformed");
    assert_eq!(code(&f.verifier, &format!("{h}.{c}")), "malformed");
}

#[test]
fn algorithm_outside_the_allow_list_is_unsupported_alg() {
    let f = fixture();
    let es_only = builder().algorithms([Algorithm::ES256]).build_offline(&jwk_set(&[&f.es, f.rs])).unwrap();
    assert_eq!(code(&es_only, &token(f.rs)), "unsupported_alg");
    es_only.verify(&token(&f.es)).unwrap();
}

#[test]
fn header_alg_must_equal_the_keys_algorithm() {
    let f = fixture();
    // RS256 header naming the EC key's kid, signed by the RSA key.
    let mut h = header(f.rs);
    h["kid"] = json!(f.es.kid());
    assert_eq!(code(&f.verifier, &sign(f.rs, &h, &claims())), "alg_mismatch");
}

#[test]
fn crit_header_is_refused() {
    let f = fixture();
    assert_eq!(code(&f.verifier, &with_header(&f, "crit", json!(["exp"]))), "unsupported_crit");
    assert_eq!(code(&f.verifier, &with_header(&f, "crit", json!([]))), "unsupported_crit");
}

#[test]
fn typ_must_be_at_jwt_unless_turned_off() {
    let f = fixture();
    for ok in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"] {
        f.verifier.verify(&with_header(&f, "typ", json!(ok))).unwrap();
    }
    for bad in [json!("JWT"), json!("jwt"), json!("application/jwt"), json!("dpop+jwt"), json!(1)] {
        assert_eq!(code(&f.verifier, &with_header(&f, "typ", bad.clone())), "wrong_type", "{bad}");
    }
    let mut h = header(&f.es);
    h.as_object_mut().unwrap().remove("typ");
    let untyped = sign(&f.es, &h, &claims());
    assert_eq!(code(&f.verifier, &untyped), "wrong_type");
    let lax = builder().accept_any_type().build_offline(&jwk_set(&[&f.es])).unwrap();
    lax.verify(&untyped).unwrap();
    lax.verify(&with_header(&f, "typ", json!("JWT"))).unwrap();
    let custom = builder().required_type("token+jwt").build_offline(&jwk_set(&[&f.es])).unwrap();
    assert_eq!(code(&custom, &token(&f.es)), "wrong_type");
}

#[test]
fn unknown_or_missing_kid_is_unknown_kid() {
    let f = fixture();
    for kid in ["nope", "../../etc/passwd", "' OR 1=1 --", "a\u{0}b", &"k".repeat(5000)] {
        assert_eq!(code(&f.verifier, &token_with_kid(&f.es, kid)), "unknown_kid");
    }
    assert_eq!(code(&f.verifier, &with_header(&f, "kid", json!(7))), "malformed");
    let mut h = header(&f.es);
    h.as_object_mut().unwrap().remove("kid");
    let kidless = sign(&f.es, &h, &claims());
    assert_eq!(code(&f.verifier, &kidless), "unknown_kid", "two keys: a kid is required");
    let single = builder().build_offline(&jwk_set(&[&f.es])).unwrap();
    single.verify(&kidless).unwrap();
}

#[test]
fn a_token_from_another_issuers_key_is_unknown_kid() {
    let f = fixture();
    assert_eq!(code(&f.verifier, &token(&es_key())), "unknown_kid");
}

#[test]
fn bad_signatures_are_bad_signature() {
    let f = fixture();
    let t = token(&f.es);
    let (signing_input, sig) = t.rsplit_once('.').unwrap();
    let sig = b64::decode(sig, "sig").unwrap();
    let with_sig = |s: &[u8]| format!("{signing_input}.{}", b64::encode(s));
    // Another key under the same kid.
    assert_eq!(code(&f.verifier, &token_with_kid(&es_key(), f.es.kid())), "bad_signature");
    // Tampered claims.
    let mut c = claims();
    c["scope"] = json!("admin");
    let forged = format!("{}.{}.{}", t.split('.').next().unwrap(), b64::encode(c.to_string()), b64::encode(&sig));
    assert_eq!(code(&f.verifier, &forged), "bad_signature");
    // CVE-2022-21449 and misframed ECDSA signatures.
    let order = b64::decode("_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE", "n").unwrap();
    let mut high = sig.clone();
    high[..32].copy_from_slice(&order);
    let mut der = vec![0x30, 0x44, 0x02, 0x20];
    der.extend_from_slice(&sig[..32]);
    der.extend_from_slice(&[0x02, 0x20]);
    der.extend_from_slice(&sig[32..]);
    for bad in [vec![0u8; 64], high, sig[..63].to_vec(), [sig.clone(), vec![0]].concat(), der] {
        assert_eq!(code(&f.verifier, &with_sig(&bad)), "bad_signature");
    }
    // RSA signatures of the wrong length or all zero.
    let rt = token(f.rs);
    let (rs_input, rs_sig) = rt.rsplit_once('.').unwrap();
    let rs_sig = b64::decode(rs_sig, "sig").unwrap();
    for bad in [rs_sig[1..].to_vec(), vec![0u8; rs_sig.len()], [rs_sig.clone(), vec![0]].concat()] {
        assert_eq!(code(&f.verifier, &format!("{rs_input}.{}", b64::encode(bad))), "bad_signature");
    }
}

#[test]
fn embedded_key_headers_are_ignored() {
    let f = fixture();
    let attacker = es_key();
    let mut h = header(&attacker);
    h["kid"] = json!(f.es.kid());
    h["jwk"] = serde_json::to_value(attacker.public_jwk()).unwrap();
    h["jku"] = json!("https://attacker.example/jwks");
    h["x5u"] = json!("https://attacker.example/cert");
    h["x5c"] = json!(["MIIB"]);
    assert_eq!(code(&f.verifier, &sign(&attacker, &h, &claims())), "bad_signature");
    // The same headers on a token from the real key change nothing.
    let mut h = header(&f.es);
    h["jku"] = json!("https://attacker.example/jwks");
    f.verifier.verify(&sign(&f.es, &h, &claims())).unwrap();
}

#[test]
fn iss_must_match_exactly() {
    let f = fixture();
    for bad in [format!("{ISS}/"), ISS.to_uppercase(), "https://evil.example".into()] {
        assert_eq!(code(&f.verifier, &with_claim(&f, "iss", json!(bad))), "wrong_issuer");
    }
    assert_eq!(code(&f.verifier, &without_claim(&f, "iss")), "missing_claim");
    assert_eq!(code(&f.verifier, &with_claim(&f, "iss", json!(["x"]))), "invalid_claim");
}

#[test]
fn aud_must_contain_an_accepted_audience() {
    let f = fixture();
    f.verifier.verify(&with_claim(&f, "aud", json!(["other", AUD]))).unwrap();
    for bad in [json!("other"), json!(["a", "b"]), json!([])] {
        assert_eq!(code(&f.verifier, &with_claim(&f, "aud", bad.clone())), "wrong_audience", "{bad}");
    }
    for bad in [json!(1), json!({"a": AUD}), json!([AUD, 1]), json!(null)] {
        assert_eq!(code(&f.verifier, &with_claim(&f, "aud", bad.clone())), "invalid_claim", "{bad}");
    }
    assert_eq!(code(&f.verifier, &without_claim(&f, "aud")), "missing_claim");
    let two = builder().audience("second").build_offline(&jwk_set(&[&f.es])).unwrap();
    two.verify(&with_claim(&f, "aud", json!("second"))).unwrap();
}

#[test]
fn exp_is_required_and_checked_with_leeway() {
    let f = fixture();
    f.verifier.verify(&with_claim(&f, "exp", json!(NOW - 59))).unwrap();
    assert_eq!(code(&f.verifier, &with_claim(&f, "exp", json!(NOW - 60))), "expired");
    assert_eq!(code(&f.verifier, &with_claim(&f, "exp", json!(NOW - 3600))), "expired");
    assert_eq!(code(&f.verifier, &without_claim(&f, "exp")), "missing_claim");
    for bad in [json!("9999999999"), json!(-1), json!(null), json!(9_007_199_254_740_993u64), json!(1e300), json!([1])]
    {
        assert_eq!(code(&f.verifier, &with_claim(&f, "exp", bad.clone())), "invalid_claim", "{bad}");
    }
    let strict = builder().leeway(std::time::Duration::ZERO).build_offline(&jwk_set(&[&f.es])).unwrap();
    assert!(matches!(
        strict.verify(&with_claim(&f, "exp", json!(NOW))),
        Err(Error::Expired { exp: NOW, now: NOW, leeway: 0 })
    ));
}

#[test]
fn nbf_and_iat_in_the_future_are_not_yet_valid() {
    let f = fixture();
    f.verifier.verify(&with_claim(&f, "nbf", json!(NOW + 60))).unwrap();
    f.verifier.verify(&with_claim(&f, "iat", json!(NOW + 60))).unwrap();
    assert_eq!(code(&f.verifier, &with_claim(&f, "nbf", json!(NOW + 61))), "not_yet_valid");
    assert_eq!(code(&f.verifier, &with_claim(&f, "iat", json!(NOW + 61))), "not_yet_valid");
    assert_eq!(code(&f.verifier, &with_claim(&f, "nbf", json!("soon"))), "invalid_claim");
    f.verifier.verify(&without_claim(&f, "nbf")).unwrap();
    f.verifier.verify(&without_claim(&f, "iat")).unwrap();
}

#[test]
fn builder_rejects_incomplete_configuration() {
    let es = es_key();
    let set = jwk_set(&[&es]);
    let no_aud = Verifier::builder().issuer(ISS).build_offline(&set).unwrap_err();
    assert_eq!(no_aud.code(), "invalid_config");
    let no_iss = Verifier::builder().audience(AUD).build_offline(&set).unwrap_err();
    assert_eq!(no_iss.code(), "invalid_config");
    let no_algs = builder().algorithms([]).build_offline(&set).unwrap_err();
    assert_eq!(no_algs.code(), "invalid_config");
    let empty = builder().build_offline(&jwk_set(&[])).unwrap_err();
    assert_eq!(empty.code(), "invalid_config");
}
