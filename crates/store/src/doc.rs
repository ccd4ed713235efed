//! Document records: a resource kind stored as JSON bodies in the `docs` table, keyed by id,
//! with an optional parent id (the VPC of a subnet, the instance of an interface) for lookups.
//! Used for the network resources; uniqueness rules beyond the id live in the control plane,
//! inside the same transaction.

use crate::list::{from_list, json_list};
use crate::{Result, StoreError, Tx};
use rusqlite::OptionalExtension;
use serde::{de::DeserializeOwned, Serialize};

pub trait Doc: Serialize + DeserializeOwned {
    const KIND: &'static str;
    fn id(&self) -> &str;
    fn parent(&self) -> Option<&str> {
        None
    }
}

fn decode<T: Doc>(id: &str, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("{} {id}: {e}", T::KIND)))
}

/// The SQL of [`Tx::docs_in`]: the kind is `?1`, the list `?2`.
fn docs_in_sql(key: &str, ordered: bool) -> String {
    let order = if ordered { " ORDER BY d.seq" } else { "" };
    format!("SELECT d.id, d.body FROM {} WHERE d.kind = ?1 AND {key} = wanted{order}", from_list("?2", "docs d"))
}

impl Tx<'_> {
    /// Inserts or replaces `d` (keeping its original position in listings). A new document
    /// takes the next number of the `doc_seq` counter (migration 13) as its position.
    pub fn doc_put<T: Doc>(&self, d: &T) -> Result<()> {
        let body = serde_json::to_string(d).map_err(|e| StoreError::Corrupt(format!("{} {}: {e}", T::KIND, d.id())))?;
        let replaced = self
            .tx
            .prepare_cached("UPDATE docs SET parent = ?3, body = ?4 WHERE kind = ?1 AND id = ?2")?
            .execute(rusqlite::params![T::KIND, d.id(), d.parent(), body])?;
        if replaced == 0 {
            let seq: i64 =
                self.tx.prepare_cached("UPDATE counters SET n = n + 1 WHERE name = 'doc_seq' RETURNING n")?.query_row([], |r| r.get(0))?;
            self.tx
                .prepare_cached("INSERT INTO docs(kind, id, parent, seq, body) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(rusqlite::params![T::KIND, d.id(), d.parent(), seq, body])?;
        }
        Ok(())
    }

    pub fn doc_get<T: Doc>(&self, id: &str) -> Result<Option<T>> {
        let body: Option<String> = self
            .tx
            .prepare_cached("SELECT body FROM docs WHERE kind = ?1 AND id = ?2")?
            .query_row([T::KIND, id], |r| r.get(0))
            .optional()?;
        body.map(|b| decode(id, &b)).transpose()
    }

    /// Every document of a kind, oldest first.
    pub fn doc_list<T: Doc>(&self) -> Result<Vec<T>> {
        self.docs_query("SELECT id, body FROM docs WHERE kind = ?1 ORDER BY seq", [T::KIND])
    }

    /// Documents of a kind matching an SQL condition on `body` with one parameter (`?2`); for
    /// conditions an index covers.
    pub(crate) fn doc_list_where<T: Doc>(&self, condition: &str, value: &str) -> Result<Vec<T>> {
        // `+seq`: sorting the few rows found is cheaper than walking the kind in seq order,
        // which SQLite would otherwise choose to avoid the sort (and parse every body).
        self.docs_query(&format!("SELECT id, body FROM docs WHERE kind = ?1 AND {condition} ORDER BY +seq"), [T::KIND, value])
    }

    /// The documents `sql` selects as `(id, body)`, decoded.
    fn docs_query<T: Doc>(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<T>> {
        let mut st = self.tx.prepare_cached(sql)?;
        let rows = st.query_map(params, |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (id, body) = r?;
            out.push(decode(&id, &body)?);
        }
        Ok(out)
    }

    /// Documents of a kind whose `key` (SQL on the document `d`: `d.parent`, or a top-level
    /// field as its index spells it) is one of `values`, each value one probe of the key's
    /// index (see `list.rs`); oldest first when `ordered`, otherwise in the order found.
    pub(crate) fn docs_in<T: Doc, S: AsRef<str>>(&self, key: &str, values: &[S], ordered: bool) -> Result<Vec<T>> {
        self.docs_query(&docs_in_sql(key, ordered), [T::KIND, json_list(values).as_str()])
    }

    /// Documents of a kind whose parent is one of `parents` (a page's children).
    pub fn doc_list_by_parents<T: Doc>(&self, parents: &[String]) -> Result<Vec<T>> {
        self.docs_in::<T, _>("d.parent", parents, true)
    }

    /// [`Tx::doc_list_by_parents`] in no particular order (a page's children, which the caller
    /// sorts per parent).
    pub fn docs_by_parents_unordered<T: Doc>(&self, parents: &[String]) -> Result<Vec<T>> {
        self.docs_in::<T, _>("d.parent", parents, false)
    }

    pub fn doc_list_by_parent<T: Doc>(&self, parent: &str) -> Result<Vec<T>> {
        self.docs_query("SELECT id, body FROM docs WHERE kind = ?1 AND parent = ?2 ORDER BY +seq", [T::KIND, parent])
    }

    /// The values of one top-level string field of every document of a kind (with `parent`,
    /// of that parent only), read in SQL without decoding the documents: for allocators that
    /// only need to know what is taken.
    pub fn doc_field_values<T: Doc>(&self, field: &str, parent: Option<&str>) -> Result<Vec<String>> {
        // The path is spelt out in the SQL (field names are the code's, never a client's), so
        // SQLite can answer from an index on the same expression without parsing documents.
        if !field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::Corrupt(format!("field name {field:?}")));
        }
        let expr = format!("json_extract(body, '$.{field}')");
        let sql = match parent {
            Some(_) => format!("SELECT {expr} FROM docs WHERE kind = ?1 AND parent = ?2 AND {expr} IS NOT NULL"),
            None => format!("SELECT {expr} FROM docs WHERE kind = ?1 AND {expr} IS NOT NULL"),
        };
        let mut st = self.tx.prepare_cached(&sql)?;
        let rows = match parent {
            Some(p) => st.query_map(rusqlite::params![T::KIND, p], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?,
            None => st.query_map(rusqlite::params![T::KIND], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?,
        };
        Ok(rows)
    }

    /// Whether a document of this kind (under `parent`, when given) has `value` in `field`;
    /// answered from an index on the same expression where one exists.
    pub fn doc_field_taken<T: Doc>(&self, field: &str, value: &str, parent: Option<&str>) -> Result<bool> {
        if !field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::Corrupt(format!("field name {field:?}")));
        }
        let expr = format!("json_extract(body, '$.{field}')");
        let taken = match parent {
            Some(p) => self
                .tx
                .prepare_cached(&format!("SELECT EXISTS (SELECT 1 FROM docs WHERE kind = ?1 AND parent = ?2 AND {expr} = ?3)"))?
                .query_row(rusqlite::params![T::KIND, p, value], |r| r.get::<_, bool>(0))?,
            None => self
                .tx
                .prepare_cached(&format!("SELECT EXISTS (SELECT 1 FROM docs WHERE kind = ?1 AND {expr} = ?2)"))?
                .query_row(rusqlite::params![T::KIND, value], |r| r.get::<_, bool>(0))?,
        };
        Ok(taken)
    }

    pub fn doc_delete<T: Doc>(&self, id: &str) -> Result<bool> {
        Ok(self.tx.prepare_cached("DELETE FROM docs WHERE kind = ?1 AND id = ?2")?.execute([T::KIND, id])? == 1)
    }
}

impl Tx<'_> {
    /// Whether a resource of the kind kept as `record` (see [`corral_types::KINDS`]) has this id:
    /// the one existence check for every kind.
    pub fn resource_exists(&self, record: corral_types::Record, id: &str) -> Result<bool> {
        use corral_types::Record;
        let n: i64 = match record {
            Record::Table(table, column) => {
                self.tx.prepare_cached(&format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?1"))?.query_row([id], |r| r.get(0))?
            }
            Record::Doc(kind) => {
                self.tx.prepare_cached("SELECT COUNT(*) FROM docs WHERE kind = ?1 AND id = ?2")?.query_row([kind, id], |r| r.get(0))?
            }
            Record::SecurityGroupRule => self
                .tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM docs d, json_each(d.body, '$.rules') r
                 WHERE d.kind = 'security-group' AND json_extract(r.value, '$.rule_id') = ?1",
                )?
                .query_row([id], |r| r.get(0))?,
            Record::None => 0,
        };
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Note {
        id: String,
        text: String,
    }

    impl Doc for Note {
        const KIND: &'static str = "note";
        fn id(&self) -> &str {
            &self.id
        }
    }

    /// A new document takes the next position; a replaced one keeps its own; a position is
    /// not given again after the last document is deleted.
    #[test]
    fn positions_come_in_order_and_are_never_given_twice() {
        let store = crate::Store::open_in_memory().unwrap();
        let note = |id: &str, text: &str| Note { id: id.into(), text: text.into() };
        let seq = |tx: &Tx<'_>, id: &str| -> i64 { tx.tx.query_row("SELECT seq FROM docs WHERE id = ?1", [id], |r| r.get(0)).unwrap() };
        store
            .transaction(|tx| {
                tx.doc_put(&note("n-1", "a"))?;
                tx.doc_put(&note("n-2", "b"))?;
                let (one, two) = (seq(tx, "n-1"), seq(tx, "n-2"));
                assert!(two > one);
                tx.doc_put(&note("n-1", "changed"))?;
                assert_eq!(seq(tx, "n-1"), one);
                assert_eq!(tx.doc_get::<Note>("n-1")?.unwrap().text, "changed");
                tx.doc_delete::<Note>("n-2")?;
                tx.doc_put(&note("n-3", "c"))?;
                assert!(seq(tx, "n-3") > two);
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    /// Lookups by a list go through the list, each value a probe of the key's index, with no
    /// temporary b-tree (see `list.rs`).
    #[test]
    fn lookups_by_a_list_probe_the_index_once_per_value() {
        let cases = [
            (docs_in_sql("d.parent", true), "INDEX docs_by_parent "),
            (docs_in_sql("d.parent", false), "INDEX docs_by_parent "),
            (docs_in_sql("json_extract(d.body, '$.instance_id')", false), "INDEX docs_by_instance "),
            (docs_in_sql("json_extract(d.body, '$.layer')", true), "INDEX docs_by_layer "),
        ];
        for (sql, index) in cases {
            crate::list::assert_probes(&sql, index);
        }
    }

    /// Each lookup by a document field goes through the field's index, which holds only the
    /// documents that have the field (migration 11): the lookup's equality has to imply it.
    #[test]
    fn lookups_by_a_field_use_its_index() {
        let cases: &[(&str, &str)] = &[
            ("SELECT id FROM docs WHERE kind = ?1 AND json_extract(body, '$.instance_id') = ?2 ORDER BY +seq", "docs_by_instance"),
            ("SELECT 1 FROM docs r WHERE r.kind = ?1 AND json_extract(r.body, '$.instance_id') = ?2", "docs_by_instance"),
            ("SELECT EXISTS (SELECT 1 FROM docs WHERE kind = ?1 AND json_extract(body, '$.public_ip') = ?2)", "docs_by_public_ip"),
            ("SELECT EXISTS (SELECT 1 FROM docs WHERE kind = ?1 AND parent = ?2 AND json_extract(body, '$.private_ip') = ?3)", "docs_by_private_ip"),
            ("SELECT json_extract(body, '$.private_ip') FROM docs WHERE kind = ?1 AND parent = ?2 AND json_extract(body, '$.private_ip') IS NOT NULL", "docs_by_private_ip"),
            ("SELECT 1 FROM docs v WHERE v.kind = 'volume' AND json_extract(v.body, '$.layer') = ?1", "docs_by_layer"),
            ("SELECT l.id FROM docs l WHERE l.kind = 'layer' AND NOT EXISTS (SELECT 1 FROM docs v WHERE v.kind = 'volume' AND json_extract(v.body, '$.layer') = +l.id)", "docs_by_layer"),
        ];
        for (sql, index) in cases {
            let plan = crate::query_plan(sql);
            assert!(plan.iter().any(|step| step.contains(&format!("INDEX {index} "))), "{sql}: {plan:?}");
        }
    }
}
