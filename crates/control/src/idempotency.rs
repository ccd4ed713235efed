//! ClientToken idempotency for every action whose model has one (RunInstances keeps its own):
//! the first successful call's response is kept under (action, token); a retry with the same
//! parameters gets it again, one with other parameters `IdempotentParameterMismatch`, as on AWS.

use crate::Control;
use corral_types::{Error, ErrorCode, Result};
use sha2::{Digest, Sha256};

/// EC2's limit on client tokens.
const MAX_TOKEN_LEN: usize = 64;

/// A digest of a request's parameters, whatever their order, without the token itself.
pub fn request_digest(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "ClientToken").collect();
    sorted.sort();
    let mut h = Sha256::new();
    for (k, v) in sorted {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

impl Control {
    /// The response kept for (action, token), if the same request was answered before.
    pub fn idempotent_replay(&self, action: &str, token: &str, digest: &str) -> Result<Option<String>> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::invalid_value("ClientToken", token, "Client tokens are at most 64 ASCII characters."));
        }
        match self.store.read(|tx| tx.idempotent_get(action, token))? {
            Some((d, response)) if d == digest => Ok(Some(response)),
            Some(_) => Err(Error::new(
                ErrorCode::IdempotentParameterMismatch,
                "The client token you have provided is associated with a resource that is already deleted or with different parameters.",
            )),
            None => Ok(None),
        }
    }

    pub fn idempotent_keep(&self, action: &str, token: &str, digest: &str, response: &str) -> Result<()> {
        Ok(self.store.transaction(|tx| tx.idempotent_put(action, token, digest, response))?)
    }
}
