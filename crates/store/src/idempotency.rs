//! Responses of calls made with a ClientToken, kept so a retry with the same token gets the
//! same answer instead of a second resource (RunInstances keeps its own, by reservation).

use crate::{Result, Tx};
use rusqlite::OptionalExtension;

impl Tx<'_> {
    /// (request digest, response) of an earlier call of `action` with `token`.
    pub fn idempotent_get(&self, action: &str, token: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .tx
            .prepare_cached("SELECT request_hash, response FROM idempotent_responses WHERE action = ?1 AND token = ?2")?
            .query_row([action, token], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    pub fn idempotent_put(&self, action: &str, token: &str, request_hash: &str, response: &str) -> Result<()> {
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO idempotent_responses(action, token, request_hash, response) VALUES (?1, ?2, ?3, ?4)")?
            .execute([action, token, request_hash, response])?;
        Ok(())
    }
}
