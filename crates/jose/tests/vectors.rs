//! Published test vectors (`tests/vectors/` at the workspace root, sources
//! named in each file and in `tests/vectors/README.md`) run through the
//! project's own crypto path: `jwks_jose::SigningKey`,
//! `jwks_jose::Jwk::verifying_key` and `jwks_jose::VerifyingKey::verify`,
//! the calls the verifier makes.
//!
//! They run on whichever backend the crate is built with:
//! `cargo test -p jwks-jose` (aws-lc-rs) and
//! `cargo test -p jwks-jose --no-default-features --features ring`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use jwks_jose::{Algorithm, Error, Jwk, JwkSet, SigningKey, b64, compact, thumbprint};
use rsa::{BigUint, RsaPrivateKey, pkcs8::EncodePrivateKey};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("member `{key}` is not a string"))
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The public part of an RFC example JWK (the private members dropped),
/// as a verifier would receive it.
fn public_jwk(key: &Value) -> Jwk {
    let mut public = key.clone();
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        public.as_object_mut().unwrap().remove(private);
    }
    serde_json::from_value(public).unwrap()
}

/// RFC 7515 A.2: the RS256 example key signs the example input to the
/// exact published signature (PKCS#1 v1.5 is deterministic).
#[test]
fn rfc7515_a2_rs256() {
    let v = &vector("rfc7515_appendix_a.json")["a2_rs256"];
    let key = &v["key"];
    let int = |name: &str| BigUint::from_bytes_be(&b64::decode(str_of(key, name), "jwk").unwrap());
    let private = RsaPrivateKey::from_components(int("n"), int("e"), int("d"), vec![int("p"), int("q")]).unwrap();
    let pkcs8 = private.to_pkcs8_der().unwrap();
    let signing = SigningKey::from_pkcs8(Algorithm::RS256, pkcs8.as_bytes()).unwrap();

    let compact = str_of(v, "compact");
    let parts = compact::split(compact, 8192).unwrap();
    assert_eq!(parts.header, str_of(v, "protected").as_bytes());
    assert_eq!(parts.payload, str_of(v, "payload").as_bytes());
    let signature = signing.sign(parts.signing_input.as_bytes()).unwrap();
    assert_eq!(b64::encode(&signature), compact.rsplit('.').next().unwrap(), "byte-for-byte RFC signature");
    assert_eq!(compact::sign(&signing, &parts.header, &parts.payload).unwrap(), compact);

    // The published public key verifies it, and our public JWK is the RFC's.
    let jwk = public_jwk(key);
    assert_eq!(signing.public_jwk().n, jwk.n);
    assert_eq!(signing.public_jwk().e, jwk.e);
    let verifying = jwk.verifying_key().unwrap();
    assert_eq!((verifying.algorithm(), verifying.bits()), (Algorithm::RS256, 2048));
    verifying.verify(parts.signing_input.as_bytes(), &parts.signature).unwrap();
    assert_eq!(verifying.verify(b"other input", &parts.signature), Err(Error::BadSignature));
}

/// RFC 7515 A.3: the ES256 example token verifies with the example key.
#[test]
fn rfc7515_a3_es256() {
    let v = &vector("rfc7515_appendix_a.json")["a3_es256"];
    let compact = str_of(v, "compact");
    let parts = compact::split(compact, 8192).unwrap();
    assert_eq!(parts.header, str_of(v, "protected").as_bytes());
    assert_eq!(parts.payload, str_of(v, "payload").as_bytes());
    assert_eq!(parts.signature.len(), 64);
    let verifying = public_jwk(&v["key"]).verifying_key().unwrap();
    assert_eq!(verifying.algorithm(), Algorithm::ES256);
    verifying.verify(parts.signing_input.as_bytes(), &parts.signature).unwrap();
    let mut tampered = parts.signature.clone();
    tampered[63] ^= 1;
    assert_eq!(verifying.verify(parts.signing_input.as_bytes(), &tampered), Err(Error::BadSignature));
    // A JWK that still carries the private `d` is refused where a public key is expected.
    let with_d: Jwk = serde_json::from_value(v["key"].clone()).unwrap();
    assert!(matches!(with_d.verifying_key(), Err(Error::KeyRejected(_))));
}

/// RFC 7517 A.1: the example public keys parse to the published
/// parameters; their RFC 7638 thumbprints match. The EC key is marked
/// `"use":"enc"`, so the verifier refuses it for signatures (its point is
/// on P-256 all the same); the RSA key is a usable RS256 key.
#[test]
fn rfc7517_a1_public_keys() {
    let v = vector("rfc7517_appendix_a_b.json");
    let raw = v["a1"]["keys"].as_array().unwrap();
    let set: JwkSet = serde_json::from_value(v["a1"].clone()).unwrap();
    assert_eq!(set.keys.len(), 2);
    for (jwk, raw) in set.keys.iter().zip(raw) {
        for member in ["kty", "kid", "use", "alg", "n", "e", "crv", "x", "y"] {
            let parsed = serde_json::to_value(jwk).unwrap()[member].clone();
            assert_eq!(parsed, raw[member], "member {member}");
        }
    }
    let thumbprints: Vec<&str> = v["a1_thumbprints"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for (jwk, expected) in set.keys.iter().zip(thumbprints) {
        assert_eq!(thumbprint(jwk).unwrap(), expected);
    }
    let ec = &set.keys[0];
    assert!(matches!(ec.verifying_key(), Err(Error::KeyRejected(m)) if m.contains("use")));
    let point = jwks_jose::VerifyingKey::p256(
        &b64::decode(ec.x.as_deref().unwrap(), "x").unwrap(),
        &b64::decode(ec.y.as_deref().unwrap(), "y").unwrap(),
    )
    .unwrap();
    assert_eq!(point.algorithm(), Algorithm::ES256);
    let rsa = set.keys[1].verifying_key().unwrap();
    assert_eq!((rsa.algorithm(), rsa.bits()), (Algorithm::RS256, 2048));
    assert_eq!(set.keys[1].kid.as_deref(), Some("2011-04-29"));
}

/// RFC 7517 B: an RSA key with `x5c` parses to the same `kty`, `use`,
/// `kid`, `n` and `e`; `x5c` is ignored (never trusted, never kept).
#[test]
fn rfc7517_b_rsa_key_with_x5c() {
    let v = vector("rfc7517_appendix_a_b.json");
    let raw = &v["b"];
    assert!(raw["x5c"].is_array());
    let jwk: Jwk = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(jwk.kty, "RSA");
    assert_eq!((jwk.use_.as_deref(), jwk.kid.as_deref()), (Some("sig"), Some("1b94c")));
    assert_eq!(jwk.n.as_deref(), raw["n"].as_str());
    assert_eq!(jwk.e.as_deref(), Some("AQAB"));
    assert!(!serde_json::to_string(&jwk).unwrap().contains("x5c"));
    let key = jwk.verifying_key().unwrap();
    assert_eq!((key.algorithm(), key.bits()), (Algorithm::RS256, 2048));
}

/// What one Wycheproof file did: (accepted, rejected) per result class.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    valid: (usize, usize),
    invalid: (usize, usize),
    acceptable: (usize, usize),
    /// tcIds of "acceptable" vectors we accept.
    acceptable_accepted: Vec<u64>,
}

/// Runs every test of a Wycheproof signature-verification file through
/// `Jwk::verifying_key` (the group's JWK) and `VerifyingKey::verify`.
/// A key the project refuses (see `refused_key`) counts its tests as
/// rejected.
fn run_wycheproof(file: &str, jwk_member: &str, refused_key: impl FnMut(&Value, &Error)) -> Tally {
    run_wycheproof_hash(file, jwk_member, Some("SHA-256"), refused_key)
}

/// [`run_wycheproof`] for a file whose groups name `sha` (`None`: Ed25519,
/// whose groups name no hash).
fn run_wycheproof_hash(
    file: &str,
    jwk_member: &str,
    sha: Option<&str>,
    mut refused_key: impl FnMut(&Value, &Error),
) -> Tally {
    // A few groups give the key only in hex (`publicKey.wx`, `wy`).
    let jwk_of = |group: &Value| -> Jwk {
        if !group[jwk_member].is_null() {
            return serde_json::from_value(group[jwk_member].clone()).unwrap();
        }
        let len = match group["publicKey"]["curve"].as_str() {
            Some("edwards25519") => return Jwk::ed25519(&hex(str_of(&group["publicKey"], "pk"))),
            Some("secp256r1") => 32,
            Some("secp384r1") => 48,
            other => panic!("{file}: a group without a JWK on curve {other:?}"),
        };
        let coordinate = |name: &str| {
            let mut bytes = hex(str_of(&group["publicKey"], name));
            while bytes.len() > len && bytes[0] == 0 {
                bytes.remove(0);
            }
            let mut padded = vec![0u8; len.saturating_sub(bytes.len())];
            padded.extend_from_slice(&bytes);
            padded
        };
        let (x, y) = (coordinate("wx"), coordinate("wy"));
        if len == 48 { Jwk::p384(&x, &y) } else { Jwk::p256(&x, &y) }
    };
    let doc = vector(file);
    let mut tally = Tally::default();
    let mut total = 0;
    for group in doc["testGroups"].as_array().unwrap() {
        assert_eq!(group["sha"].as_str(), sha, "{file}");
        let key = jwk_of(group).verifying_key();
        if let Err(e) = &key {
            refused_key(group, e);
        }
        for test in group["tests"].as_array().unwrap() {
            total += 1;
            let id = test["tcId"].as_u64().unwrap();
            let (msg, sig) = (hex(str_of(test, "msg")), hex(str_of(test, "sig")));
            let accepted = match &key {
                Ok(key) => match key.verify(&msg, &sig) {
                    Ok(()) => true,
                    Err(Error::BadSignature) => false,
                    Err(other) => panic!("tcId {id}: unexpected error {other:?}"),
                },
                Err(_) => false,
            };
            let slot = match str_of(test, "result") {
                "valid" => &mut tally.valid,
                "invalid" => &mut tally.invalid,
                "acceptable" => {
                    if accepted {
                        tally.acceptable_accepted.push(id);
                    }
                    &mut tally.acceptable
                }
                other => panic!("tcId {id}: unknown result {other}"),
            };
            if accepted { slot.0 += 1 } else { slot.1 += 1 }
        }
    }
    assert_eq!(total, doc["numberOfTests"].as_u64().unwrap() as usize, "{file}: every test ran");
    eprintln!("{file}: {tally:?}");
    tally
}

/// Wycheproof ECDSA P-256 SHA-256, IEEE P1363 (`r || s`) encoding: all 173
/// valid accepted, all 89 invalid rejected; the file has no "acceptable".
#[test]
fn wycheproof_ecdsa_p256_sha256_p1363() {
    let tally = run_wycheproof("wycheproof/ecdsa_secp256r1_sha256_p1363_test.json", "publicKeyJwk", |g, e| {
        panic!("P-256 key refused: {e} ({})", g["publicKey"]["uncompressed"])
    });
    assert_eq!(tally, Tally { valid: (173, 0), invalid: (0, 89), ..Tally::default() });
}

/// The refusal hook of the RSA files: only the `SmallPublicKey` groups
/// (e = 3) may be refused, and only for their exponent (FIPS 186-5 asks
/// e > 2^16). Answers how many groups were refused.
fn run_wycheproof_rsa(file: &str) -> (Tally, usize) {
    let mut refused = 0;
    let tally = run_wycheproof(file, "keyJwk", |g, e| {
        assert_eq!(g["publicKey"]["publicExponent"], "03", "{file}: a key refused for another reason: {e}");
        assert!(matches!(e, Error::KeyRejected(m) if m.contains("exponent 3 ")), "{e}");
        refused += 1;
    });
    (tally, refused)
}

/// Wycheproof RSASSA-PKCS1-v1_5 SHA-256, 2048-bit keys.
///
/// Two groups use e = 3 (flag `SmallPublicKey`): their keys are refused
/// (e < 65537, FIPS 186-5), so their vectors, valid ones included, count
/// as rejected (2 of the 9 valid ones). "Acceptable": tcId 8, a DigestInfo without the NULL
/// parameters (`MissingNull`): we reject it (strict PKCS#1 v1.5 only).
#[test]
fn wycheproof_rsa_pkcs1_2048_sha256() {
    let (tally, refused) = run_wycheproof_rsa("wycheproof/rsa_signature_2048_sha256_test.json");
    assert_eq!(refused, 2, "the two e = 3 groups");
    assert_eq!(tally, Tally { valid: (7, 2), invalid: (0, 249), acceptable: (0, 1), acceptable_accepted: vec![] });
}

/// Wycheproof RSASSA-PKCS1-v1_5 SHA-256, 3072-bit keys; the one e = 3
/// group is refused as above (its one valid vector rejected); "acceptable" is again tcId 8 (`MissingNull`),
/// rejected.
#[test]
fn wycheproof_rsa_pkcs1_3072_sha256() {
    let (tally, refused) = run_wycheproof_rsa("wycheproof/rsa_signature_3072_sha256_test.json");
    assert_eq!(refused, 1, "the e = 3 group");
    assert_eq!(tally, Tally { valid: (7, 1), invalid: (0, 250), acceptable: (0, 1), acceptable_accepted: vec![] });
}

/// RSA keys under 2048 bits are refused by design, before any signature
/// math: the Wycheproof moduli cut to 1024 bits do not make a key.
#[test]
fn rsa_keys_under_2048_bits_are_refused_by_design() {
    let doc = vector("wycheproof/rsa_signature_2048_sha256_test.json");
    let n = hex(str_of(&doc["testGroups"][0]["publicKey"], "modulus"));
    let short = &n[n.len() - 128..];
    assert!(matches!(jwks_jose::VerifyingKey::rsa(short, &[1, 0, 1]), Err(Error::KeyRejected(_))));
    let jwk = Jwk::rsa(short, &[1, 0, 1]);
    assert!(matches!(jwk.verifying_key(), Err(Error::KeyRejected(m)) if m.contains("2048")));
}

/// An Ed25519 PKCS#8 v1 document (RFC 8410 §7) around a 32-byte seed, the
/// form `openssl genpkey -algorithm ED25519` writes.
fn ed25519_pkcs8_v1(seed: &[u8]) -> Vec<u8> {
    let mut der = hex("302e020100300506032b657004220420");
    der.extend_from_slice(seed);
    der
}

/// An ML-DSA PKCS#8 document in the seed form of RFC 9881 §6
/// (`seed [0] IMPLICIT OCTET STRING (SIZE (32))`); `arc` is the last arc of
/// the algorithm's OID (17: ML-DSA-44, 18: ML-DSA-65).
fn ml_dsa_pkcs8_seed(arc: u8, seed: &[u8; 32]) -> Vec<u8> {
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 2.16.840.1.101.3.4.3.<arc> },
    // OCTET STRING { [0] seed } }
    let mut der = hex("3034020100300b06096086480165030403");
    der.push(arc);
    der.extend_from_slice(&hex("04228020"));
    der.extend_from_slice(seed);
    der
}

/// RFC 8037 A.1 to A.4: the example Ed25519 key (from its seed, as PKCS#8)
/// has the published public key and thumbprint, and signs the example input
/// to the exact published signature (Ed25519 is deterministic); the
/// published JWS verifies. Its header says `EdDSA`, the RFC 8037 name: the
/// key (no `alg`) admits it, and a key that says `Ed25519` does not.
#[test]
fn rfc8037_a4_ed25519() {
    let v = vector("rfc8037_appendix_a.json");
    let seed = b64::decode(str_of(&v["a1_private_jwk"], "d"), "d").unwrap();
    let signing = SigningKey::from_pkcs8(Algorithm::Ed25519, &ed25519_pkcs8_v1(&seed)).unwrap();
    let public: Jwk = serde_json::from_value(v["a2_public_jwk"].clone()).unwrap();
    assert_eq!(signing.public_jwk().x, public.x);
    assert_eq!(thumbprint(&public).unwrap(), str_of(&v, "a3_thumbprint"));
    assert_eq!(signing.kid(), str_of(&v, "a3_thumbprint"));

    let compact = str_of(&v, "a4_compact");
    let parts = compact::split(compact, 8192).unwrap();
    assert_eq!(parts.header, str_of(&v, "a4_protected").as_bytes());
    assert_eq!(parts.payload, str_of(&v, "a4_payload").as_bytes());
    let signature = signing.sign(parts.signing_input.as_bytes()).unwrap();
    assert_eq!(b64::encode(&signature), compact.rsplit('.').next().unwrap(), "byte-for-byte RFC signature");

    let verifying = public.verifying_key().unwrap();
    assert_eq!(verifying.algorithm(), Algorithm::Ed25519);
    verifying.verify(parts.signing_input.as_bytes(), &parts.signature).unwrap();
    let mut tampered = parts.signature.clone();
    tampered[0] ^= 1;
    assert_eq!(verifying.verify(parts.signing_input.as_bytes(), &tampered), Err(Error::BadSignature));
    assert!(verifying.admits_header_name("EdDSA") && verifying.admits_header_name("Ed25519"));
    let with_alg = |alg: &str| {
        let mut jwk = public.clone();
        jwk.alg = Some(alg.into());
        jwk.verifying_key().unwrap()
    };
    let named = with_alg("Ed25519");
    assert!(!named.admits_header_name("EdDSA") && named.admits_header_name("Ed25519"));
    let legacy = with_alg("EdDSA");
    assert!(legacy.admits_header_name("EdDSA") && !legacy.admits_header_name("Ed25519"));
}

/// RFC 9964 examples (ML-DSA-44, `draft-ietf-cose-dilithium-11`): the
/// private JWK's seed (32 zero bytes), as RFC 9881 seed-form PKCS#8, gives
/// the published `pub`; the kid is the thumbprint over `alg`, `kty` and
/// `pub`; the published JWS verifies, and ours over the same input does
/// too (ML-DSA signing is hedged, so not byte for byte). aws-lc-rs only:
/// on ring the same key is refused when loaded.
#[test]
fn rfc9964_ml_dsa_44_example() {
    let v = vector("rfc9964_examples.json");
    let raw = &v["ml_dsa_44_jwk"];
    let with_priv: Jwk = serde_json::from_value(raw.clone()).unwrap();
    assert!(matches!(with_priv.verifying_key(), Err(Error::KeyRejected(m)) if m.contains("private")));
    let mut public = raw.clone();
    public.as_object_mut().unwrap().remove("priv");
    let public: Jwk = serde_json::from_value(public).unwrap();
    assert_eq!(thumbprint(&public).unwrap(), str_of(raw, "kid"));

    let seed: [u8; 32] = b64::decode(str_of(raw, "priv"), "priv").unwrap().try_into().unwrap();
    let pkcs8 = ml_dsa_pkcs8_seed(17, &seed);
    if !jwks_jose::crypto::supports(Algorithm::MlDsa44) {
        let err = SigningKey::from_pkcs8(Algorithm::MlDsa44, &pkcs8).unwrap_err();
        assert!(matches!(err, Error::UnsupportedByBackend { alg: "ML-DSA-44", .. }), "{err}");
        assert!(matches!(public.verifying_key(), Err(Error::UnsupportedByBackend { .. })));
        return;
    }
    let signing = SigningKey::from_pkcs8(Algorithm::MlDsa44, &pkcs8).unwrap();
    assert_eq!(signing.public_jwk().pub_, public.pub_, "the seed expands to the published key");
    assert_eq!(signing.kid(), str_of(raw, "kid"));
    assert!(SigningKey::from_pkcs8(Algorithm::MlDsa65, &pkcs8).is_err(), "the OID names the parameter set");

    let compact = str_of(&v, "ml_dsa_44_compact");
    let parts = compact::split(compact, 16384).unwrap();
    assert_eq!(parts.header, str_of(&v, "ml_dsa_44_protected").as_bytes());
    assert_eq!(parts.signature.len(), 2420);
    let verifying = public.verifying_key().unwrap();
    assert_eq!(verifying.algorithm(), Algorithm::MlDsa44);
    verifying.verify(parts.signing_input.as_bytes(), &parts.signature).unwrap();
    let mut tampered = parts.signature.clone();
    tampered[100] ^= 1;
    assert_eq!(verifying.verify(parts.signing_input.as_bytes(), &tampered), Err(Error::BadSignature));
    let ours = signing.sign(parts.signing_input.as_bytes()).unwrap();
    verifying.verify(parts.signing_input.as_bytes(), &ours).unwrap();
    // The same seed as ML-DSA-65 is another key, with a 1952-byte `pub`.
    let k65 = SigningKey::from_pkcs8(Algorithm::MlDsa65, &ml_dsa_pkcs8_seed(18, &seed)).unwrap();
    assert_eq!(b64::decode(k65.public_jwk().pub_.as_deref().unwrap(), "pub").unwrap().len(), 1952);
    assert_eq!(
        k65.public_jwk().verifying_key().unwrap().verify(parts.signing_input.as_bytes(), &ours),
        Err(Error::BadSignature)
    );
}

/// Wycheproof Ed25519 (`ed25519_test.json`, 0.9rc5): all 117 valid
/// accepted, all 64 invalid rejected (non-canonical `S`, wrong lengths,
/// signatures with garbage). "Acceptable": tcIds 152 to 180, small-order
/// and mixed-order public keys, accepted, as RFC 8032 §5.1.7 verification
/// (aws-lc-rs and ring alike) does: a JWKS key is trusted because its
/// publisher chose it, and a DPoP key only proves possession for the
/// tokens bound to it.
#[test]
fn wycheproof_ed25519() {
    let tally = run_wycheproof_hash("wycheproof/ed25519_test.json", "publicKeyJwk", None, |g, e| {
        panic!("Ed25519 key refused: {e} ({})", g["publicKey"]["pk"])
    });
    let small_order: Vec<u64> = (152..=180).collect();
    assert_eq!(
        tally,
        Tally { valid: (117, 0), invalid: (0, 64), acceptable: (29, 0), acceptable_accepted: small_order }
    );
}

/// Wycheproof ECDSA P-384 SHA-384, IEEE P1363 (`r || s`) encoding: all 193
/// valid accepted, all 87 invalid rejected; no "acceptable" in the file.
#[test]
fn wycheproof_ecdsa_p384_sha384_p1363() {
    let tally = run_wycheproof_hash(
        "wycheproof/ecdsa_secp384r1_sha384_p1363_test.json",
        "publicKeyJwk",
        Some("SHA-384"),
        |g, e| panic!("P-384 key refused: {e} ({})", g["publicKey"]["uncompressed"]),
    );
    assert_eq!(tally, Tally { valid: (193, 0), invalid: (0, 87), ..Tally::default() });
}

/// Wycheproof RSASSA-PSS SHA-256, MGF1 SHA-256, 32-byte salt (the PS256
/// parameters), 2048- and 3072-bit keys, through a JWK with `alg` PS256:
/// in each file all 63 valid accepted and all 45 invalid rejected.
#[test]
fn wycheproof_rsa_pss_2048_and_3072_sha256_mgf1_32() {
    for file in ["wycheproof/rsa_pss_2048_sha256_mgf1_32_test.json", "wycheproof/rsa_pss_3072_sha256_mgf1_32_test.json"]
    {
        let tally =
            run_wycheproof(file, "publicKeyJwk", |g, e| panic!("{file}: PSS key refused: {e} ({})", g["keySize"]));
        assert_eq!(tally, Tally { valid: (63, 0), invalid: (0, 45), ..Tally::default() }, "{file}");
    }
}
