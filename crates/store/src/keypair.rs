//! Key pairs: the public half and its fingerprint. The private half is never stored.

use crate::{Result, Tx};
use rusqlite::{OptionalExtension, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairRecord {
    pub key_pair_id: String,
    pub key_name: String,
    pub key_type: String,
    pub fingerprint: String,
    pub public_key: String,
    pub created_at: String,
}

pub(crate) const COLS: &str = "key_pair_id, key_name, key_type, fingerprint, public_key, created_at";

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<KeyPairRecord> {
    Ok(KeyPairRecord {
        key_pair_id: r.get(0)?,
        key_name: r.get(1)?,
        key_type: r.get(2)?,
        fingerprint: r.get(3)?,
        public_key: r.get(4)?,
        created_at: r.get(5)?,
    })
}

impl Tx<'_> {
    /// Inserts `k`; returns false (and changes nothing) when the name is taken.
    pub fn keypair_insert(&self, k: &KeyPairRecord) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached(&format!("INSERT INTO key_pairs({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(key_name) DO NOTHING"))?
            .execute([&k.key_pair_id, &k.key_name, &k.key_type, &k.fingerprint, &k.public_key, &k.created_at])?;
        Ok(n == 1)
    }

    pub fn keypair_get_by_name(&self, name: &str) -> Result<Option<KeyPairRecord>> {
        Ok(self.tx.prepare_cached(&format!("SELECT {COLS} FROM key_pairs WHERE key_name = ?1"))?.query_row([name], from_row).optional()?)
    }

    pub fn keypair_get(&self, id: &str) -> Result<Option<KeyPairRecord>> {
        Ok(self.tx.prepare_cached(&format!("SELECT {COLS} FROM key_pairs WHERE key_pair_id = ?1"))?.query_row([id], from_row).optional()?)
    }

    pub fn keypair_list(&self) -> Result<Vec<KeyPairRecord>> {
        let mut st = self.tx.prepare_cached(&format!("SELECT {COLS} FROM key_pairs ORDER BY key_name"))?;
        let rows = st.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn keypair_delete(&self, id: &str) -> Result<bool> {
        Ok(self.tx.prepare_cached("DELETE FROM key_pairs WHERE key_pair_id = ?1")?.execute([id])? == 1)
    }
}
