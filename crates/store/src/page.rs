//! Reading a kind one page at a time, for Describe calls: records come in a stable order
//! (each has a position that never changes), and a page is read after a position, so a page
//! costs the rows it holds, not the whole kind, and a page token stays exact while records are
//! added and removed around it.

use crate::{Doc, ImageRecord, InstanceRecord, KeyPairRecord, Result, StoreError, Tx};
use rusqlite::{params, Row};

/// A kind the store reads by page: `Position` orders it.
pub trait Listed: Sized {
    /// Up to `limit` records after position `after`, in order, each with its position.
    fn page(tx: &Tx<'_>, after: i64, limit: usize) -> Result<Vec<(i64, Self)>>;
    /// The records with these ids (those that exist), in order, each with its position.
    fn with_ids(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<(i64, Self)>>;
}

fn ids_json(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Tx<'_> {
    fn positioned<T>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        map: impl Fn(&Row<'_>) -> rusqlite::Result<(i64, Result<T>)>,
    ) -> Result<Vec<(i64, T)>> {
        let mut st = self.tx.prepare_cached(sql)?;
        let rows = st.query_map(args, map)?;
        let mut out = Vec::new();
        for r in rows {
            let (pos, t) = r?;
            out.push((pos, t?));
        }
        Ok(out)
    }
}

fn doc_body<T: Doc>(r: &Row<'_>) -> rusqlite::Result<(i64, Result<T>)> {
    let (pos, id, body): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
    Ok((pos, serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("{} {id}: {e}", T::KIND)))))
}

impl<T: Doc> Listed for T {
    fn page(tx: &Tx<'_>, after: i64, n: usize) -> Result<Vec<(i64, T)>> {
        tx.positioned(
            "SELECT seq, id, body FROM docs WHERE kind = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            params![T::KIND, after, limit(n)],
            doc_body::<T>,
        )
    }

    fn with_ids(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<(i64, T)>> {
        tx.positioned(
            "SELECT seq, id, body FROM docs WHERE kind = ?1 AND id IN (SELECT value FROM json_each(?2)) ORDER BY seq",
            params![T::KIND, ids_json(ids)],
            doc_body::<T>,
        )
    }
}

/// A kind kept in a table of its own: its module's `COLS` and `from_row`, then the position
/// column last.
macro_rules! table_listed {
    ($t:ty, $table:literal, $pos:literal, $id:literal, $module:ident, $row:expr) => {
        impl Listed for $t {
            fn page(tx: &Tx<'_>, after: i64, n: usize) -> Result<Vec<(i64, $t)>> {
                let sql = format!(
                    "SELECT {cols}, {pos} FROM {table} WHERE {pos} > ?1 ORDER BY {pos} LIMIT ?2",
                    pos = $pos,
                    cols = crate::$module::COLS,
                    table = $table
                );
                tx.positioned(&sql, params![after, limit(n)], |r| table_row(r, crate::$module::COLS, $row))
            }

            fn with_ids(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<(i64, $t)>> {
                let sql = format!(
                    "SELECT {cols}, {pos} FROM {table} WHERE {id} IN (SELECT value FROM json_each(?1)) ORDER BY {pos}",
                    pos = $pos,
                    cols = crate::$module::COLS,
                    table = $table,
                    id = $id
                );
                tx.positioned(&sql, params![ids_json(ids)], |r| table_row(r, crate::$module::COLS, $row))
            }
        }
    };
}

fn table_row<T>(
    r: &Row<'_>,
    cols: &str,
    read: impl Fn(&Row<'_>) -> rusqlite::Result<Result<T>>,
) -> rusqlite::Result<(i64, Result<T>)> {
    let pos: i64 = r.get(cols.split(',').count())?;
    Ok((pos, read(r)?))
}

table_listed!(InstanceRecord, "instances", "seq", "instance_id", instance, crate::instance::from_row);
table_listed!(ImageRecord, "images", "rowid", "image_id", image, |r: &Row<'_>| crate::image::from_row(r).map(Ok));
table_listed!(KeyPairRecord, "key_pairs", "rowid", "key_pair_id", keypair, |r: &Row<'_>| crate::keypair::from_row(r).map(Ok));

impl Tx<'_> {
    /// The security groups holding any of these rules, with their positions.
    pub fn security_groups_with_rules(&self, rule_ids: &[String]) -> Result<Vec<(i64, crate::SecurityGroupRecord)>> {
        self.positioned(
            "SELECT seq, id, body FROM docs WHERE kind = 'security-group' AND EXISTS (
                 SELECT 1 FROM json_each(docs.body, '$.rules') r
                 WHERE json_extract(r.value, '$.rule_id') IN (SELECT value FROM json_each(?1))
             ) ORDER BY seq",
            params![ids_json(rule_ids)],
            doc_body::<crate::SecurityGroupRecord>,
        )
    }
}
