//! DPoP proofs (RFC 9449): the check of a `DPoP` header, usable by a
//! resource server on any framework, and by an authorization server at its
//! token endpoint.
//!
//! [`verify_proof`] applies the rules of RFC 9449 §4.3 in this order: size,
//! three strict base64url segments, a duplicate-free JSON header, `typ`
//! `dpop+jwt`, `alg` RS256 or ES256 (never `none` or HMAC), no `crit`, a
//! public `jwk` (a private member is refused), the signature with that key,
//! then the claims: `htm` equal to the method, `htu` equal to the URL
//! without query and fragment (after RFC 3986 §6.2.2/§6.2.3 normalisation:
//! scheme and host case, default port, dot segments, empty path), `iat`
//! within the window either side of now, `ath` (when an access token is
//! given) equal to base64url(SHA-256(token)), and last a `jti` never seen
//! within the window ([`ReplayGuard`]). It answers the RFC 7638 thumbprint
//! of the proof key, to compare with the access token's `cnf.jkt` (§6.1).
//!
//! [`Verifier::verify_dpop`](crate::Verifier::verify_dpop) does all of this
//! for a DPoP-bound access token, with the verifier's own replay cache.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use jwks_jose::{Algorithm, SigningKey, compact};
//! use jwks_verifier::dpop::{self, ReplayCache, Request};
//!
//! // The client's proof key and a proof for `GET https://api.example/data`.
//! let key = SigningKey::from_pkcs8(Algorithm::ES256, &SigningKey::generate(Algorithm::ES256, 2048)?)?;
//! let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
//! let claims = serde_json::json!({
//!     "jti": "e1j3V_bKic8-LAEB", "htm": "GET", "htu": "https://api.example/data",
//!     "iat": 1_700_000_000, "ath": dpop::ath("an-access-token"),
//! });
//! let proof = compact::sign(&key, header.to_string().as_bytes(), claims.to_string().as_bytes())?;
//!
//! // The resource server's check.
//! let replay = ReplayCache::default();
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_010);
//! let request = Request {
//!     method: "GET",
//!     url: "https://API.example:443/data?page=2",
//!     access_token: Some("an-access-token"),
//! };
//! let proof_key = dpop::verify_proof(&proof, &request, now, Duration::from_secs(60), &replay)?;
//! assert_eq!(proof_key.jkt, jwks_jose::thumbprint(&key.public_jwk())?);
//!
//! // The same proof again is a replay.
//! let again = dpop::verify_proof(&proof, &request, now, Duration::from_secs(60), &replay);
//! assert_eq!(again.unwrap_err().code(), "invalid_dpop_proof");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use jwks_jose::{Algorithm, Jwk, b64, compact, crypto};
use serde_json::{Map, Value};
use url::Url;

use crate::{
    Error,
    claims::numeric_date_value,
    clock::{UnixTime, unix_seconds},
    error::truncated,
    json::parse_object,
    limits::{self, proof_limit},
    nonce::{self, Freshness, NoncePolicy},
};

pub use crate::proof::{ALGORITHMS, MAX_JTI_LEN, MAX_PROOF_LEN, PROOF_TYPE, ProofError};
pub use jwks_jose::replay::{Replay, ReplayCache};

/// JWK members that only a private or symmetric key has (RFC 7518 §6.2.2,
/// §6.3.2, §6.4).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method, compared exactly with `htm` (`"GET"`).
    pub method: &'a str,
    /// The full URL the request was sent to, as the client addressed it
    /// (`https://api.example/data?x=1`); query and fragment are ignored.
    pub url: &'a str,
    /// The access token presented with the proof, if any; the proof's `ath`
    /// must then be its hash. `None` at a token endpoint.
    pub access_token: Option<&'a str>,
}

/// A verified proof: the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProofKey {
    /// The RFC 7638 thumbprint of the proof key: the `cnf.jkt` of a token
    /// bound to it (RFC 9449 §6.1).
    pub jkt: String,
    /// The proof's algorithm.
    pub alg: Algorithm,
    /// The proof's `jti`.
    pub jti: String,
    /// The proof's `iat`.
    pub iat: u64,
}

/// A single-use record of proof ids. [`verify_proof`] records each proof
/// that passed every other check, until its `iat` leaves the window.
///
/// [`ReplayCache`] (`jwks_jose::replay::ReplayCache`) is the in-memory one:
/// bounded in total and per proof key, failing closed when full (see
/// [`ReplayGuard::check_and_insert_for`]).
pub trait ReplayGuard: Send + Sync {
    /// Records `id` until `until` (seconds since the epoch); refuses it if
    /// it is already recorded and `now` is before its expiry.
    fn check_and_insert(&self, id: &str, until: u64, now: u64) -> Result<(), Replay>;

    /// Records `id` for the proof key whose RFC 7638 thumbprint is `jkt`
    /// (`id` already names the key too). A guard that bounds each key on its
    /// own overrides this: [`ReplayCache`] answers [`Replay::PartitionFull`]
    /// when `jkt` has its limit of live ids, and [`Replay::Full`] when the
    /// whole cache has; it never forgets a live id to make room. The
    /// default ignores `jkt` and calls [`check_and_insert`](Self::check_and_insert).
    fn check_and_insert_for(&self, jkt: &str, id: &str, until: u64, now: u64) -> Result<(), Replay> {
        let _ = jkt;
        self.check_and_insert(id, until, now)
    }
}

impl ReplayGuard for ReplayCache {
    /// Ids of no key: all in one partition.
    fn check_and_insert(&self, id: &str, until: u64, now: u64) -> Result<(), Replay> {
        ReplayCache::check_and_insert(self, "", id, UnixTime::from_secs(until), UnixTime::from_secs(now))
    }

    fn check_and_insert_for(&self, jkt: &str, id: &str, until: u64, now: u64) -> Result<(), Replay> {
        ReplayCache::check_and_insert(self, jkt, id, UnixTime::from_secs(until), UnixTime::from_secs(now))
    }
}

/// The `ath` of an access token: base64url(SHA-256(token)) (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    b64::encode(crypto::sha256(access_token.as_bytes()))
}

/// Checks a DPoP proof against `request` at `now`, accepting an `iat` up to
/// `iat_window` either side, and records its `jti` in `replay`.
///
/// Every refusal is [`Error::InvalidDpopProof`] (code `invalid_dpop_proof`)
/// with a [`ProofError`] saying why. The caller compares the answered
/// [`ProofKey::jkt`] with the access token's `cnf.jkt`, or binds a new token
/// to it.
pub fn verify_proof(
    proof: &str,
    request: &Request<'_>,
    now: SystemTime,
    iat_window: Duration,
    replay: &dyn ReplayGuard,
) -> Result<ProofKey, Error> {
    verify_proof_with(proof, request, &ALGORITHMS, now, iat_window, replay)
}

/// [`verify_proof`] with the caller's algorithm allow-list (a token
/// endpoint's configured algorithms, say) instead of [`ALGORITHMS`]. Each
/// algorithm's proofs are held to its size limit ([`crate::limits`]).
pub fn verify_proof_with(
    proof: &str,
    request: &Request<'_>,
    algorithms: &[Algorithm],
    now: SystemTime,
    iat_window: Duration,
    replay: &dyn ReplayGuard,
) -> Result<ProofKey, Error> {
    verify_proof_checked(proof, request, algorithms, now, iat_window, replay, None)
}

/// [`verify_proof`] with a server nonce policy (RFC 9449 §8, §9): after
/// every other check of the proof, the [`crate::nonce`] rule; its refusals
/// are [`Error::UseDpopNonce`], and then nothing is recorded. A proof whose
/// `iat` is outside `iat_window` is accepted when its nonce is valid, and
/// its `jti` is then kept for the nonce's [`max_age`](NoncePolicy::max_age).
pub fn verify_proof_with_nonce(
    proof: &str,
    request: &Request<'_>,
    now: SystemTime,
    iat_window: Duration,
    replay: &dyn ReplayGuard,
    nonce: &dyn NoncePolicy,
) -> Result<ProofKey, Error> {
    verify_proof_checked(proof, request, &ALGORITHMS, now, iat_window, replay, Some(nonce))
}

/// The general form: the caller's algorithm allow-list and, optionally, a
/// nonce policy ([`verify_proof_with`], [`verify_proof_with_nonce`]).
pub fn verify_proof_checked(
    proof: &str,
    request: &Request<'_>,
    algorithms: &[Algorithm],
    now: SystemTime,
    iat_window: Duration,
    replay: &dyn ReplayGuard,
    nonce: Option<&dyn NoncePolicy>,
) -> Result<ProofKey, Error> {
    let checked = check_proof(proof, request, algorithms, unix_seconds(now), iat_window.as_secs(), nonce)?;
    Ok(record(checked, unix_seconds(now), replay)?)
}

/// A proof that passed every check but the replay, and how long its `jti`
/// must stay recorded.
#[derive(Debug)]
struct Checked {
    key: ProofKey,
    until: u64,
}

/// Every check but the replay.
fn check_proof(
    proof: &str,
    request: &Request<'_>,
    algorithms: &[Algorithm],
    now: u64,
    window: u64,
    nonce: Option<&dyn NoncePolicy>,
) -> Result<Checked, Error> {
    let max = limits::largest(algorithms, proof_limit);
    if proof.len() > max {
        return Err(ProofError::TooLarge { len: proof.len(), max }.into());
    }
    let parts = compact::split(proof, max).map_err(|e| ProofError::Malformed(e.to_string()))?;
    let header = parse_object(&parts.header).map_err(|e| ProofError::Malformed(format!("header: {e}")))?;
    if !matches!(header.get("typ"), Some(Value::String(t)) if crate::token::type_matches(t, PROOF_TYPE)) {
        return Err(ProofError::WrongType.into());
    }
    let (alg, alg_name) = match header.get("alg") {
        Some(Value::String(name)) => crate::token::header_alg(name)
            .filter(|(a, _)| algorithms.contains(a))
            .ok_or_else(|| ProofError::UnsupportedAlg(truncated(name)))?,
        Some(_) => return Err(ProofError::Malformed("header `alg` is not a string".into()).into()),
        None => return Err(ProofError::Malformed("header has no `alg`".into()).into()),
    };
    if proof.len() > proof_limit(alg) {
        return Err(ProofError::TooLarge { len: proof.len(), max: proof_limit(alg) }.into());
    }
    if header.contains_key("crit") {
        return Err(ProofError::UnsupportedCrit.into());
    }
    let jwk = public_jwk(&header)?;
    let key = jwk.verifying_key().map_err(|e| ProofError::BadKey(e.to_string()))?;
    if key.algorithm() != alg || !key.admits_header_name(alg_name) {
        return Err(ProofError::BadKey(format!("a {} key cannot verify {alg_name}", truncated(&jwk.kty))).into());
    }
    key.verify(parts.signing_input.as_bytes(), &parts.signature).map_err(|_| ProofError::BadSignature)?;
    let jkt = jwks_jose::thumbprint(&jwk).map_err(|e| ProofError::BadKey(e.to_string()))?;

    let claims = parse_object(&parts.payload).map_err(|e| ProofError::Malformed(format!("claims: {e}")))?;
    let jti = string_claim(&claims, "jti")?;
    if jti.is_empty() || jti.chars().count() > MAX_JTI_LEN {
        return Err(ProofError::Malformed(format!("`jti` must be 1 to {MAX_JTI_LEN} characters")).into());
    }
    if string_claim(&claims, "htm")? != request.method {
        return Err(ProofError::WrongMethod.into());
    }
    if !same_url(string_claim(&claims, "htu")?, request.url) {
        return Err(ProofError::WrongUrl.into());
    }
    let iat = match claims.get("iat") {
        None => return Err(ProofError::MissingClaim("iat").into()),
        Some(v) => numeric_date_value(v).ok_or_else(|| ProofError::Malformed("`iat` is not a NumericDate".into()))?,
    };
    let iat_error = if iat < now.saturating_sub(window) {
        Some(ProofError::Stale { iat, now })
    } else if iat > now.saturating_add(window) {
        Some(ProofError::Future { iat, now })
    } else {
        None
    };
    if let (None, Some(e)) = (nonce, &iat_error) {
        return Err(e.clone().into());
    }
    if let Some(token) = request.access_token {
        let found = string_claim(&claims, "ath")?;
        // Both sides are public values; a plain comparison leaks nothing.
        if found != ath(token) {
            return Err(ProofError::WrongAth.into());
        }
    }
    let nonce_claim = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.as_str()),
        Some(_) => return Err(ProofError::Malformed("`nonce` is not a string".into()).into()),
    };
    // The `jti` is kept while the proof could be accepted again: until its
    // `iat` leaves the window, or its nonce expires.
    let mut until = iat.saturating_add(window).saturating_add(1);
    if let Some(policy) = nonce
        && nonce::rule(policy, nonce_claim, iat_error.is_none(), UnixTime::from_secs(now))? == Freshness::ByNonce
    {
        until = until.max(now.saturating_add(policy.max_age().as_secs()).saturating_add(1));
    }
    Ok(Checked { key: ProofKey { jkt, alg, jti: jti.to_owned(), iat }, until })
}

/// Records the proof's `jti`, namespaced by its key, until the proof could
/// no longer be accepted (`until`). Called last, once every other check
/// passed.
fn record(checked: Checked, now: u64, replay: &dyn ReplayGuard) -> Result<ProofKey, ProofError> {
    let Checked { key: proof, until } = checked;
    let mut input = Vec::with_capacity(proof.jkt.len() + 1 + proof.jti.len());
    input.extend_from_slice(proof.jkt.as_bytes());
    input.push(0);
    input.extend_from_slice(proof.jti.as_bytes());
    let id = format!("dpop:{}", b64::encode(crypto::sha256(&input)));
    match replay.check_and_insert_for(&proof.jkt, &id, until, now) {
        Ok(()) => Ok(proof),
        Err(Replay::Seen) => Err(ProofError::Replayed),
        Err(Replay::PartitionFull) => {
            tracing::warn!(jkt = %proof.jkt, "DPoP replay cache holds this key's limit of live proofs; refusing its proofs");
            Err(ProofError::TooManyProofsForKey)
        }
        Err(_) => {
            tracing::warn!("DPoP replay cache full of live proofs; refusing proofs");
            Err(ProofError::ReplayCacheFull)
        }
    }
}

/// The header's `jwk` as a public key: private members are refused before
/// anything else reads it.
fn public_jwk(header: &Map<String, Value>) -> Result<Jwk, ProofError> {
    let value = match header.get("jwk") {
        Some(Value::Object(members)) => {
            if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
                return Err(ProofError::PrivateKey);
            }
            Value::Object(members.clone())
        }
        Some(_) => return Err(ProofError::BadKey("`jwk` is not a JSON object".into())),
        None => return Err(ProofError::BadKey("the header has no `jwk`".into())),
    };
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| ProofError::BadKey(truncated(&e.to_string())))?;
    if jwk.has_private_parts() {
        return Err(ProofError::PrivateKey);
    }
    Ok(jwk)
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, ProofError> {
    match claims.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ProofError::Malformed(format!("`{name}` is not a string"))),
        None => Err(ProofError::MissingClaim(name)),
    }
}

/// Whether two http(s) URLs are the same resource, ignoring query and
/// fragment (RFC 9449 §4.3 step 9). Parsing applies the syntax- and
/// scheme-based normalisations of RFC 3986 §6.2.2 and §6.2.3: lowercase
/// scheme and host, no default port, resolved dot segments, `/` for an
/// empty path.
pub fn same_url(htu: &str, url: &str) -> bool {
    match (normalised(htu), normalised(url)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn normalised(s: &str) -> Option<String> {
    let mut url = Url::parse(s).ok()?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    Some(url.into())
}

/// The DPoP settings and replay cache of one verifier.
#[derive(Debug)]
pub(crate) struct Binding {
    /// The proof algorithms: the verifier's allow-list.
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) iat_window: Duration,
    pub(crate) replay: ReplayCache,
    /// The server nonce policy (RFC 9449 §9), if any.
    pub(crate) nonce: Option<Arc<dyn NoncePolicy>>,
}

/// A proof presented with an access token, and the request it came with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented<'a> {
    pub(crate) proof: &'a str,
    pub(crate) method: &'a str,
    pub(crate) url: &'a str,
}

/// A proof that passed every check but the replay check, waiting for the
/// rest of the token's checks (see [`Binding::check`]).
#[derive(Debug)]
#[must_use = "the proof's `jti` is recorded only by `Binding::record`"]
pub(crate) struct Pending(Checked);

impl Binding {
    /// Enforces the token's confirmation (`cnf`, RFC 7800): a token bound to
    /// a key (`cnf.jkt`) needs a proof by that key for this request; a
    /// token without `cnf` must come without a proof. Any other
    /// confirmation method cannot be enforced here, so it is refused.
    ///
    /// Nothing is recorded yet: the caller finishes its own checks, then
    /// calls [`Binding::record`] with the answered proof, so that a proof
    /// refused for any reason (its key not the token's `cnf.jkt` included)
    /// is refused for that reason every time, never as a replay.
    pub(crate) fn check(
        &self,
        claims: &Map<String, Value>,
        token: &str,
        presented: Option<Presented<'_>>,
        now: SystemTime,
    ) -> Result<Option<Pending>, Error> {
        let jkt = match claims.get("cnf") {
            None => None,
            Some(Value::Object(cnf)) => match cnf.get("jkt") {
                Some(Value::String(jkt)) => Some(jkt),
                Some(_) => return Err(Error::invalid_claim("`cnf.jkt` is not a string")),
                None => return Err(Error::invalid_claim("`cnf` has no confirmation method this verifier enforces")),
            },
            Some(_) => return Err(Error::invalid_claim("`cnf` is not an object")),
        };
        match (jkt, presented) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(Error::DpopBound),
            (None, Some(_)) => Err(Error::NotDpopBound),
            (Some(jkt), Some(p)) => {
                let request = Request { method: p.method, url: p.url, access_token: Some(token) };
                let nonce = self.nonce.as_deref();
                let checked = check_proof(
                    p.proof,
                    &request,
                    &self.algorithms,
                    unix_seconds(now),
                    self.iat_window.as_secs(),
                    nonce,
                )?;
                if checked.key.jkt == *jkt { Ok(Some(Pending(checked))) } else { Err(ProofError::KeyMismatch.into()) }
            }
        }
    }

    /// A fresh nonce at `now`, if there is a nonce policy.
    pub(crate) fn fresh_nonce(&self, now: SystemTime) -> Option<String> {
        self.nonce.as_ref().map(|p| p.issue(UnixTime::from_system_time(now)))
    }

    /// Records the `jti` of a proof [`Binding::check`] passed, once every
    /// other check of the request passed too.
    pub(crate) fn record(&self, pending: Option<Pending>, now: SystemTime) -> Result<(), Error> {
        match pending {
            None => Ok(()),
            Some(Pending(checked)) => {
                record(checked, unix_seconds(now), &self.replay)?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_without_query_fragment_case_or_default_port() {
        let base = "https://server.example.com/token";
        for same in [
            "https://server.example.com/token",
            "HTTPS://Server.Example.COM/token",
            "https://server.example.com:443/token",
            "https://server.example.com/token?x=1",
            "https://server.example.com/token#frag",
            "https://server.example.com/a/../token",
        ] {
            assert!(same_url(base, same), "{same}");
        }
        for other in [
            "http://server.example.com/token",
            "https://server.example.com:8443/token",
            "https://server.example.com/Token",
            "https://server.example.com/token/",
            "https://other.example.com/token",
            "not a url",
            "urn:x:y",
        ] {
            assert!(!same_url(base, other), "{other}");
        }
        assert!(same_url("http://127.0.0.1:8080", "http://127.0.0.1:8080/"));
    }

    #[test]
    fn the_replay_cache_is_single_use_and_bounded_per_key() {
        let c = ReplayCache::new(3, 2);
        let guard: &dyn ReplayGuard = &c;
        assert_eq!(guard.check_and_insert_for("k1", "a", 100, 10), Ok(()));
        assert_eq!(guard.check_and_insert_for("k1", "a", 100, 50), Err(Replay::Seen));
        assert_eq!(guard.check_and_insert_for("k1", "b", 100, 50), Ok(()));
        assert_eq!(guard.check_and_insert_for("k1", "c", 100, 50), Err(Replay::PartitionFull));
        assert_eq!(guard.check_and_insert_for("k2", "c", 100, 50), Ok(()));
        assert_eq!(guard.check_and_insert_for("k3", "d", 100, 50), Err(Replay::Full), "full of live ids: fail closed");
        assert_eq!(guard.check_and_insert_for("k3", "d", 200, 100), Ok(()), "expired ids are pruned when full");
        assert_eq!(guard.check_and_insert("x", 200, 100), Ok(()), "ids of no key share one partition");
    }

    #[test]
    fn ath_is_base64url_sha256_of_the_token() {
        // RFC 9449 §7.1's example: the token and its `ath`.
        assert_eq!(ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    }
}
