//! Access keys (SigV4 credentials) and account facts.

use crate::{Result, Tx};
use rusqlite::OptionalExtension;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub user_name: String,
    pub created_at: String,
}

impl Tx<'_> {
    pub fn access_key_insert(&self, k: &AccessKey) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO access_keys(access_key_id, secret_access_key, user_name, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(access_key_id) DO UPDATE SET secret_access_key = excluded.secret_access_key",
            )?
            .execute([&k.access_key_id, &k.secret_access_key, &k.user_name, &k.created_at])?;
        Ok(())
    }

    pub fn access_key_get(&self, id: &str) -> Result<Option<AccessKey>> {
        Ok(self
            .tx
            .prepare_cached("SELECT access_key_id, secret_access_key, user_name, created_at FROM access_keys WHERE access_key_id = ?1")?
            .query_row([id], |r| {
                Ok(AccessKey { access_key_id: r.get(0)?, secret_access_key: r.get(1)?, user_name: r.get(2)?, created_at: r.get(3)? })
            })
            .optional()?)
    }

    /// Every access key, oldest first.
    pub fn access_key_list(&self) -> Result<Vec<AccessKey>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT access_key_id, secret_access_key, user_name, created_at FROM access_keys ORDER BY created_at, rowid")?;
        let rows = st.query_map([], |r| {
            Ok(AccessKey { access_key_id: r.get(0)?, secret_access_key: r.get(1)?, user_name: r.get(2)?, created_at: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Deletes an access key; says whether there was one.
    pub fn access_key_delete(&self, id: &str) -> Result<bool> {
        Ok(self.tx.prepare_cached("DELETE FROM access_keys WHERE access_key_id = ?1")?.execute([id])? > 0)
    }

    pub fn access_key_first(&self) -> Result<Option<AccessKey>> {
        let id: Option<String> = self
            .tx
            .prepare_cached("SELECT access_key_id FROM access_keys ORDER BY created_at LIMIT 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        match id {
            Some(id) => self.access_key_get(&id),
            None => Ok(None),
        }
    }
}
