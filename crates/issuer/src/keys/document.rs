//! The stored key document: the JSON a folder file or a database row
//! holds (its timeline and its PKCS#8 private key, in clear or sealed with
//! the key-encryption key `JWKS_ISSUER_KEK`: AES-256-GCM, the kid as
//! associated data), and how it is encoded and decoded.

use std::sync::Arc;

use jwks_jose::{Algorithm, SigningKey, b64, crypto::Sealer};
use serde::{Deserialize, Serialize};

use super::{
    kek::ENV_KEK,
    lifecycle::{KeyMeta, Timeline},
    store::KeyRecord,
};
use crate::Error;

const FORMAT: u32 = 1;

/// The largest key document read (an RSA-4096 key is about 5 KiB).
pub(crate) const MAX_DOCUMENT: u64 = 64 * 1024;

/// Why a document did not decode: the kid when the document said it, and
/// a reason that never holds key material.
pub(crate) type Refused = (Option<String>, String);

/// A parsed, not yet opened, key document.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyFile {
    format: u32,
    /// The kid it says it holds.
    pub(crate) kid: String,
    alg: Algorithm,
    timeline: Timeline,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pkcs8: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
}

/// Parses a key document, refusing one in clear when `require_sealed`.
pub(crate) fn parse(bytes: &[u8], require_sealed: bool) -> Result<KeyFile, Refused> {
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err((None, "document larger than 64 KiB".into()));
    }
    let file: KeyFile = serde_json::from_slice(bytes).map_err(|e| (None, format!("not a key document: {e}")))?;
    if require_sealed && file.pkcs8.is_some() {
        return Err((
            Some(file.kid),
            format!("holds a private key in clear while {ENV_KEK} is set; refused (only sealed keys are used)"),
        ));
    }
    Ok(file)
}

/// Encodes `record` as the stored document, sealing its private key when
/// `sealer` is given.
pub(crate) fn encode(record: &KeyRecord, sealer: Option<&Sealer>) -> Result<Vec<u8>, Error> {
    let kid = &record.meta.kid;
    let (pkcs8, sealed) = match sealer {
        Some(s) => (None, Some(b64::encode(s.seal(&record.pkcs8, kid.as_bytes()).map_err(Error::Jose)?))),
        None => (Some(b64::encode(&record.pkcs8)), None),
    };
    let file = KeyFile {
        format: FORMAT,
        kid: kid.clone(),
        alg: record.meta.alg,
        timeline: record.meta.timeline,
        pkcs8,
        sealed,
    };
    serde_json::to_vec_pretty(&file).map_err(|e| Error::Store(format!("encoding key {kid}: {e}")))
}

/// Decodes a stored document into a key, checking that the key parses and
/// that its kid is its thumbprint. Errors carry the kid when known and a
/// reason that never holds key material.
pub(crate) fn decode_document(
    bytes: &[u8],
    sealer: Option<&Sealer>,
    require_sealed: bool,
) -> Result<KeyRecord, Refused> {
    decode(parse(bytes, require_sealed)?, sealer)
}

pub(crate) fn decode(file: KeyFile, sealer: Option<&Sealer>) -> Result<KeyRecord, Refused> {
    let kid = Some(file.kid.clone());
    if file.format != FORMAT {
        return Err((kid, format!("unknown format {}", file.format)));
    }
    let pkcs8 = match (&file.pkcs8, &file.sealed, sealer) {
        (Some(p), None, _) => b64::decode(p, "pkcs8").map_err(|e| (kid.clone(), e.to_string()))?,
        (None, Some(s), Some(sealer)) => {
            let sealed = b64::decode(s, "sealed").map_err(|e| (kid.clone(), e.to_string()))?;
            sealer
                .open(&sealed, file.kid.as_bytes())
                .map_err(|_| (kid.clone(), format!("cannot unseal: wrong {ENV_KEK} or damaged file")))?
        }
        (None, Some(_), None) => return Err((kid, format!("sealed, but {ENV_KEK} is not set"))),
        _ => return Err((kid, "needs exactly one of `pkcs8` and `sealed`".into())),
    };
    // Parse once to prove the file is whole and its kid is the key's.
    let key = SigningKey::from_pkcs8(file.alg, &pkcs8).map_err(|e| (kid.clone(), e.to_string()))?;
    if key.kid() != file.kid {
        return Err((kid, "kid is not the thumbprint of the stored key".into()));
    }
    Ok(KeyRecord { meta: KeyMeta { kid: file.kid, alg: file.alg, timeline: file.timeline }, pkcs8, key: Arc::new(key) })
}
