//! DPoP at the token endpoint (RFC 9449 §5): a request may carry one `DPoP`
//! proof; a valid one binds the token to its key (`cnf.jkt`, §6.1).
//!
//! The proof's `htu` is checked against the token endpoint published in
//! discovery (`issuer` + `/token`), never a URL rebuilt from the request's
//! `Host`; `htm` must be `POST`, and there is no `ath` (no access token
//! yet). The check itself is [`jwks_verifier::dpop::verify_proof`]; the
//! proofs' `jti`s go to their own [`ReplayCache`].

use std::time::{Duration, UNIX_EPOCH};

use actix_web::HttpRequest;
use jwks_verifier::dpop::{self, ProofError, Replay as VerifierReplay, ReplayGuard, Request};

use super::{
    OAuthError,
    replay::{Replay, ReplayCache},
};
use crate::{
    config::{ClientConfig, DpopMode},
    http::AppState,
};

/// The algorithms a proof may use (`dpop_signing_alg_values_supported`).
pub const ALGORITHMS: [jwks_jose::Algorithm; 2] = dpop::ALGORITHMS;

impl ReplayGuard for ReplayCache {
    fn check_and_insert(&self, id: &str, until: u64, now: u64) -> Result<(), VerifierReplay> {
        ReplayCache::check_and_insert(self, id, until, now).map_err(|e| match e {
            Replay::Seen => VerifierReplay::Seen,
            Replay::Full => VerifierReplay::Full,
        })
    }
}

/// The local replay cache, noting the id it accepted for the claim across
/// replicas that follows a valid proof.
struct Noting<'a> {
    cache: &'a ReplayCache,
    accepted: std::sync::Mutex<Option<(String, u64)>>,
}

impl ReplayGuard for Noting<'_> {
    fn check_and_insert(&self, id: &str, until: u64, now: u64) -> Result<(), VerifierReplay> {
        ReplayGuard::check_and_insert(self.cache, id, until, now)?;
        if let Ok(mut a) = self.accepted.lock() {
            *a = Some((format!("dpop\0{id}"), until));
        }
        Ok(())
    }
}

/// The key thumbprint a new token is bound to: `Some(jkt)` for a request
/// with a valid proof, `None` for one without a proof from a client that
/// may go without. A proof that is present is always checked.
pub(crate) async fn binding(
    req: &HttpRequest,
    client: &ClientConfig,
    state: &AppState,
) -> Result<Option<String>, OAuthError> {
    let mut values = req.headers().get_all("dpop");
    let proof = match (values.next(), values.next()) {
        (None, _) => {
            return match client.dpop {
                DpopMode::Allowed => Ok(None),
                DpopMode::Required => {
                    tracing::info!(client_id = %client.id, "token request without the DPoP proof the client requires");
                    Err(OAuthError::InvalidDpopProof("this client must send a DPoP proof (RFC 9449)".into()))
                }
            };
        }
        (Some(_), Some(_)) => return Err(OAuthError::InvalidDpopProof("send exactly one DPoP header".into())),
        (Some(v), None) => {
            v.to_str().map_err(|_| OAuthError::InvalidDpopProof("the DPoP header is not a compact JWS".into()))?
        }
    };
    let url = state.config.token_endpoint();
    let request = Request { method: "POST", url: &url, access_token: None };
    let now = UNIX_EPOCH + Duration::from_secs(state.clock.now());
    let guard = Noting { cache: &state.dpop_replay, accepted: std::sync::Mutex::new(None) };
    let verified = dpop::verify_proof(proof, &request, now, state.config.dpop_iat_window, &guard);
    let accepted = guard.accepted.lock().ok().and_then(|mut a| a.take());
    match verified {
        Ok(key) => {
            if let Some((id, until)) = accepted {
                let now = state.clock.now();
                if super::replay::claim_across_replicas(&state.keyring, &id, until, now).await.is_err() {
                    tracing::info!(client_id = %client.id, "DPoP proof replayed at another replica");
                    return Err(OAuthError::InvalidDpopProof("the proof's `jti` was already used".into()));
                }
            }
            Ok(Some(key.jkt))
        }
        Err(jwks_verifier::Error::InvalidDpopProof { reason: ProofError::ReplayCacheFull }) => {
            tracing::error!(client_id = %client.id, "DPoP replay cache full of live proofs");
            Err(OAuthError::Server)
        }
        Err(e) => {
            tracing::info!(client_id = %client.id, reason = %e, "DPoP proof rejected");
            Err(OAuthError::InvalidDpopProof(described(&e.to_string())))
        }
    }
}

/// A description with only the characters RFC 6749 §5.2 allows in
/// `error_description`, at most 200 of them.
fn described(s: &str) -> String {
    s.chars().take(200).map(|c| if matches!(c, ' '..='~') && c != '"' && c != '\\' { c } else { '?' }).collect()
}
