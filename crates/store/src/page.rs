//! Reading a kind one page at a time, for Describe calls: records come in a stable order
//! (each has a position that never changes), and a page is read after a position, so a page
//! costs the rows it holds, not the whole kind, and a page token stays exact while records are
//! added and removed around it.

use crate::list::{from_list, json_list};
use crate::{Doc, ImageRecord, InstanceRecord, KeyPairRecord, Result, StoreError, Tx};
use rusqlite::{params, Row};

/// A condition a page's records must meet, checked in SQL so a selective filter reads only
/// the rows it selects. Values are EC2 filter patterns (`*` any run, `?` one character); a
/// record meets the condition when one value matches. Callers check every filter again on
/// the records read: a condition only narrows what is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// A text field of the record (a column, or a top-level field of a document), named by
    /// the code (never by a client).
    Field(&'static str, Vec<String>),
    /// A tag with this key whose value matches.
    Tag(String, Vec<String>),
    /// A tag whose key matches.
    TagKey(Vec<String>),
    /// A document of another kind that names the record (an instance's interfaces) has a
    /// matching field.
    Related(Related, Vec<String>),
}

/// Where a [`Cond::Related`] looks: documents of `kind` whose top-level field `link` holds
/// the record's id, and their field `field` (a list of strings when `list`). Named by the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Related {
    pub kind: &'static str,
    pub link: &'static str,
    pub field: &'static str,
    pub list: bool,
}

fn is_name(f: &str) -> bool {
    f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// SQLite's GLOB reads `*` and `?` as EC2 does; `[` opens a class there, so it is escaped.
fn glob(pattern: &str) -> String {
    pattern.replace('[', "[[]")
}

/// The SQL of `conds` (each ` AND (...)`, with `?` placeholders) for records whose id is
/// `id_sql` and whose field `f` is `field(f)`, and its arguments in order.
fn where_sql(conds: &[Cond], id_sql: &str, field: impl Fn(&str) -> String) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut args = Vec::new();
    let any = |n: usize, what: &str| vec![what; n].join(" OR ");
    for c in conds {
        match c {
            Cond::Field(f, values) if is_name(f) => {
                sql.push_str(&format!(" AND ({})", any(values.len(), &format!("{} GLOB ?", field(f)))));
                args.extend(values.iter().map(|v| glob(v)));
            }
            Cond::Field(..) => {}
            Cond::Tag(key, values) => {
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = {id_sql} AND t.key = ? AND ({}))",
                    any(values.len(), "t.value GLOB ?")
                ));
                args.push(key.clone());
                args.extend(values.iter().map(|v| glob(v)));
            }
            Cond::TagKey(keys) => {
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = {id_sql} AND ({}))",
                    any(keys.len(), "t.key GLOB ?")
                ));
                args.extend(keys.iter().map(|v| glob(v)));
            }
            Cond::Related(r, values) if is_name(r.link) && is_name(r.field) => {
                // The link is read as `docs_by_instance` indexes it, so each record costs a probe.
                let (from, value) = match r.list {
                    true => (format!("docs r, json_each(r.body, '$.{}') e", r.field), "e.value".to_string()),
                    false => ("docs r".to_string(), format!("json_extract(r.body, '$.{}')", r.field)),
                };
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM {from} WHERE r.kind = ? AND json_extract(r.body, '$.{}') = {id_sql} AND ({}))",
                    r.link,
                    any(values.len(), &format!("{value} GLOB ?"))
                ));
                args.push(r.kind.to_string());
                args.extend(values.iter().map(|v| glob(v)));
            }
            Cond::Related(..) => {}
        }
    }
    (sql, args)
}

/// A kind the store reads by page: `Position` orders it.
pub trait Listed: Sized {
    /// Up to `limit` records after position `after`, in order, each with its position.
    fn page(tx: &Tx<'_>, after: i64, limit: usize) -> Result<Vec<(i64, Self)>> {
        Self::page_where(tx, after, limit, &[])
    }
    /// [`Listed::page`] of the records that meet every condition.
    fn page_where(tx: &Tx<'_>, after: i64, limit: usize, conds: &[Cond]) -> Result<Vec<(i64, Self)>>;
    /// The records with these ids (those that exist), in order, each with its position.
    fn with_ids(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<(i64, Self)>>;
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

/// The SQL of a document kind's [`Listed::with_ids`]: the kind is `?1`, the ids `?2`.
fn doc_ids_sql() -> String {
    format!("SELECT d.seq, d.id, d.body FROM {} WHERE d.kind = ?1 AND d.id = wanted ORDER BY d.seq", from_list("?2", "docs d"))
}

/// The SQL of a table kind's [`Listed::with_ids`]: the ids are `?1`.
fn table_ids_sql(cols: &str, table: &str, pos: &str, id: &str) -> String {
    format!("SELECT {cols}, {table}.{pos} FROM {} WHERE {table}.{id} = wanted ORDER BY {table}.{pos}", from_list("?1", table))
}

fn doc_body<T: Doc>(r: &Row<'_>) -> rusqlite::Result<(i64, Result<T>)> {
    let (pos, id, body): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
    Ok((pos, serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("{} {id}: {e}", T::KIND)))))
}

impl<T: Doc> Listed for T {
    fn page_where(tx: &Tx<'_>, after: i64, n: usize, conds: &[Cond]) -> Result<Vec<(i64, T)>> {
        let (extra, args) = where_sql(conds, "docs.id", |f| format!("json_extract(docs.body, '$.{f}')"));
        let sql = format!("SELECT seq, id, body FROM docs WHERE kind = ? AND seq > ?{extra} ORDER BY seq LIMIT ?");
        let mut all: Vec<rusqlite::types::Value> = vec![T::KIND.to_string().into(), after.into()];
        all.extend(args.into_iter().map(Into::into));
        all.push(limit(n).into());
        tx.positioned(&sql, rusqlite::params_from_iter(all), doc_body::<T>)
    }

    fn with_ids(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<(i64, T)>> {
        tx.positioned(&doc_ids_sql(), params![T::KIND, json_list(ids)], doc_body::<T>)
    }
}

/// A kind kept in a table of its own: its module's `COLS` and `from_row`, then the position
/// column last.
macro_rules! table_listed {
    ($t:ty, $table:literal, $pos:literal, $id:literal, $module:ident, $row:expr) => {
        impl Listed for $t {
            fn page_where(tx: &Tx<'_>, after: i64, n: usize, conds: &[Cond]) -> Result<Vec<(i64, $t)>> {
                let (extra, args) = where_sql(conds, &format!("{}.{}", $table, $id), |f| format!("{}.{f}", $table));
                let sql = format!(
                    "SELECT {cols}, {pos} FROM {table} WHERE {pos} > ?{extra} ORDER BY {pos} LIMIT ?",
                    pos = $pos,
                    cols = crate::$module::COLS,
                    table = $table
                );
                let mut all: Vec<rusqlite::types::Value> = vec![after.into()];
                all.extend(args.into_iter().map(Into::into));
                all.push(limit(n).into());
                tx.positioned(&sql, rusqlite::params_from_iter(all), |r| table_row(r, crate::$module::COLS, $row))
            }

            fn with_ids(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<(i64, $t)>> {
                let sql = table_ids_sql(crate::$module::COLS, $table, $pos, $id);
                tx.positioned(&sql, params![json_list(ids)], |r| table_row(r, crate::$module::COLS, $row))
            }
        }
    };
}

fn table_row<T>(r: &Row<'_>, cols: &str, read: impl Fn(&Row<'_>) -> rusqlite::Result<Result<T>>) -> rusqlite::Result<(i64, Result<T>)> {
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
            params![json_list(rule_ids)],
            doc_body::<crate::SecurityGroupRecord>,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records asked for by id are read through the list, a probe of the id's key each.
    #[test]
    fn records_by_id_probe_their_key_once_per_id() {
        crate::list::assert_probes(&doc_ids_sql(), "INDEX sqlite_autoindex_docs_1 ");
        crate::list::assert_probes(
            &table_ids_sql(crate::instance::COLS, "instances", "seq", "instance_id"),
            "INDEX sqlite_autoindex_instances_1 ",
        );
        crate::list::assert_probes(&table_ids_sql(crate::image::COLS, "images", "rowid", "image_id"), "INDEX sqlite_autoindex_images_1 ");
        crate::list::assert_probes(
            &table_ids_sql(crate::keypair::COLS, "key_pairs", "rowid", "key_pair_id"),
            "INDEX sqlite_autoindex_key_pairs_1 ",
        );
    }
}
