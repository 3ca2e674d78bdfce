//! DPoP at the token endpoint (RFC 9449 §5): a request may carry one `DPoP`
//! proof; a valid one binds the token to its key (`cnf.jkt`, §6.1).
//!
//! The proof's `htu` is checked against the token endpoint published in
//! discovery (`issuer` + `/token`), never a URL rebuilt from the request's
//! `Host`; `htm` must be `POST`, and there is no `ath` (no access token
//! yet). The check itself is [`jwks_verifier::dpop::verify_proof`]. The
//! proof's `jti` is only looked up here; it is claimed with the request's
//! other single-use ids once every rule has passed ([`super::replay`]).
//!
//! Server nonces (RFC 9449 §8) are stateless ([`jwks_jose::nonce`]): the
//! key is derived from `JWKS_ISSUER_KEK` with the label [`NONCE_LABEL`], so
//! replicas accept each other's nonces. The nonce rule runs after every
//! other rule of the proof and before anything is claimed: a request
//! answered `use_dpop_nonce` consumes neither the proof's `jti` nor a
//! client assertion's, and the client's retry with the same form and a new
//! proof succeeds.

use std::{sync::Mutex, time::Duration};

use jwks_jose::{clock::UnixTime, nonce::NonceKey};
use jwks_verifier::{
    dpop::{self, ProofError, Replay as VerifierReplay, ReplayGuard, Request},
    nonce::{NonceMode, NoncePolicy},
};

use super::{
    OAuthError,
    client::{ClientConfig, DpopMode, DpopNonceMode},
    error::printable,
    replay::{PendingId, SingleUse},
};

/// The algorithms a proof may use (`dpop_signing_alg_values_supported`):
/// every algorithm of the crypto backend, as for assertions. The proof's
/// own `jwk` fixes which one, and the token is bound to that key.
pub(crate) fn algorithms() -> Vec<jwks_jose::Algorithm> {
    jwks_jose::crypto::supported()
}

/// The HKDF label of the nonce key derived from `JWKS_ISSUER_KEK`.
pub(crate) const NONCE_LABEL: &str = "jwks-issuer dpop-nonce v1";

/// The nonce key and one client's mode (never [`DpopNonceMode::Off`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nonces<'a> {
    pub(crate) key: &'a NonceKey,
    pub(crate) mode: DpopNonceMode,
}

impl NoncePolicy for Nonces<'_> {
    fn mode(&self) -> NonceMode {
        match self.mode {
            DpopNonceMode::Required => NonceMode::Required,
            DpopNonceMode::Allowed | DpopNonceMode::Off => NonceMode::Allowed,
        }
    }

    fn check(&self, nonce: &str, now: UnixTime) -> Result<(), String> {
        self.key.check(nonce, now).map_err(|e| match e {
            jwks_jose::Error::InvalidNonce("not issued by this server") => {
                "the DPoP nonce is not one this server issued".to_owned()
            }
            jwks_jose::Error::InvalidNonce(reason) => format!("the DPoP nonce is {reason}"),
            other => other.to_string(),
        })
    }

    fn issue(&self, now: UnixTime) -> String {
        self.key.issue(now)
    }

    fn max_age(&self) -> Duration {
        self.key.max_age()
    }
}

/// A guard that only looks: it refuses an id already claimed and notes the
/// one the proof would use, to be claimed later.
struct LookOnly<'a> {
    guard: &'a SingleUse,
    client: &'a str,
    noted: Mutex<Option<PendingId>>,
}

impl ReplayGuard for LookOnly<'_> {
    fn check_and_insert(&self, id: &str, until: u64, now: u64) -> Result<(), VerifierReplay> {
        let pending = PendingId { kind: "dpop", id: id.to_owned(), until };
        if self.guard.is_used(self.client, &pending, UnixTime::from_secs(now)) {
            return Err(VerifierReplay::Seen);
        }
        if let Ok(mut n) = self.noted.lock() {
            *n = Some(pending);
        }
        Ok(())
    }
}

/// What a valid proof binds: the key thumbprint and the `jti` to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    /// The RFC 7638 thumbprint of the proof key.
    pub(crate) jkt: String,
    /// The proof's id, claimed when the token is issued.
    pub(crate) jti: PendingId,
}

/// The binding of a new token: `Some` for a request with a valid proof,
/// `None` for one without a proof from a client that may go without. A
/// proof that is present is always checked; with `nonces` (the client's
/// mode is not off) the nonce rule too.
pub(crate) fn binding(
    proof: Option<&str>,
    client: &ClientConfig,
    token_endpoint: &str,
    iat_window: Duration,
    guard: &SingleUse,
    nonces: Option<Nonces<'_>>,
    now: UnixTime,
) -> Result<Option<Binding>, OAuthError> {
    let Some(proof) = proof else {
        return match client.dpop {
            DpopMode::Allowed => Ok(None),
            DpopMode::Required => {
                tracing::info!(client_id = %client.id, "token request without the DPoP proof the client requires");
                Err(OAuthError::InvalidDpopProof("this client must send a DPoP proof (RFC 9449)".into()))
            }
        };
    };
    let request = Request { method: "POST", url: token_endpoint, access_token: None };
    let look = LookOnly { guard, client: &client.id, noted: Mutex::new(None) };
    let at = now.to_system_time();
    let verified = dpop::verify_proof_checked(
        proof,
        &request,
        &algorithms(),
        at,
        iat_window,
        &look,
        nonces.as_ref().map(|n| n as &dyn NoncePolicy),
    );
    match verified {
        Ok(key) => {
            let Some(jti) = look.noted.lock().ok().and_then(|mut n| n.take()) else {
                tracing::error!(client_id = %client.id, "DPoP proof accepted without a single-use id");
                return Err(OAuthError::Server);
            };
            Ok(Some(Binding { jkt: key.jkt, jti }))
        }
        Err(jwks_verifier::Error::InvalidDpopProof { reason: ProofError::ReplayCacheFull }) => {
            tracing::error!(client_id = %client.id, "DPoP replay cache full of live proofs");
            Err(OAuthError::Server)
        }
        Err(jwks_verifier::Error::UseDpopNonce { reason }) => {
            tracing::info!(client_id = %client.id, %reason, "DPoP proof without a valid nonce: use_dpop_nonce");
            // `use_dpop_nonce` comes only from the nonce rule, so `nonces` is set.
            let nonce = nonces.map(|n| n.issue(now)).unwrap_or_default();
            Err(OAuthError::UseDpopNonce { description: printable(&reason, 200), nonce })
        }
        Err(e) => {
            tracing::info!(client_id = %client.id, reason = %e, "DPoP proof rejected");
            Err(OAuthError::InvalidDpopProof(printable(&e.to_string(), 200)))
        }
    }
}
