//! Tags on any resource, keyed by resource id.

use crate::list::{from_list, json_list};
use crate::{Result, Tx};
use rusqlite::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    pub resource_id: String,
    pub resource_type: String,
    pub key: String,
    pub value: String,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<TagRecord> {
    Ok(TagRecord { resource_id: r.get(0)?, resource_type: r.get(1)?, key: r.get(2)?, value: r.get(3)? })
}

impl Tx<'_> {
    pub fn tag_set(&self, t: &TagRecord) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO tags(resource_id, resource_type, key, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(resource_id, key) DO UPDATE SET value = excluded.value",
            )?
            .execute([&t.resource_id, &t.resource_type, &t.key, &t.value])?;
        Ok(())
    }

    /// Deletes `key` from `resource_id`; with `value`, only if the value matches.
    pub fn tag_delete(&self, resource_id: &str, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.tx.prepare_cached("DELETE FROM tags WHERE resource_id = ?1 AND key = ?2 AND value = ?3")?.execute([
                resource_id,
                key,
                v,
            ])?,
            None => self.tx.prepare_cached("DELETE FROM tags WHERE resource_id = ?1 AND key = ?2")?.execute([resource_id, key])?,
        };
        Ok(())
    }

    pub fn tag_delete_all(&self, resource_id: &str) -> Result<()> {
        self.tx.prepare_cached("DELETE FROM tags WHERE resource_id = ?1")?.execute([resource_id])?;
        Ok(())
    }

    pub fn tag_list_for(&self, resource_id: &str) -> Result<Vec<TagRecord>> {
        let mut st =
            self.tx.prepare_cached("SELECT resource_id, resource_type, key, value FROM tags WHERE resource_id = ?1 ORDER BY key")?;
        let rows = st.query_map([resource_id], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn tag_list(&self) -> Result<Vec<TagRecord>> {
        let mut st = self.tx.prepare_cached("SELECT resource_id, resource_type, key, value FROM tags ORDER BY resource_id, key")?;
        let rows = st.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// All tags, grouped by resource id (one query instead of one per resource).
    pub fn tag_map(&self) -> Result<std::collections::HashMap<String, Vec<TagRecord>>> {
        let mut map: std::collections::HashMap<String, Vec<TagRecord>> = std::collections::HashMap::new();
        for t in self.tag_list()? {
            map.entry(t.resource_id.clone()).or_default().push(t);
        }
        Ok(map)
    }
}

/// The SQL of [`Tx::tag_map_for`]: the ids are `?1`.
fn tags_for_sql() -> String {
    format!("SELECT t.resource_id, t.resource_type, t.key, t.value FROM {} WHERE t.resource_id = wanted", from_list("?1", "tags t"))
}

impl Tx<'_> {
    /// The tags of these resources only, grouped by resource id: a page's tags.
    pub fn tag_map_for(&self, ids: &[&str]) -> Result<std::collections::HashMap<String, Vec<TagRecord>>> {
        // Each resource's tags come in key order from the table's key; the resources in no
        // particular order, which the map does not keep anyway.
        let mut st = self.tx.prepare_cached(&tags_for_sql())?;
        let mut map: std::collections::HashMap<String, Vec<TagRecord>> = std::collections::HashMap::new();
        for t in st.query_map([json_list(ids)], from_row)? {
            let t = t?;
            map.entry(t.resource_id.clone()).or_default().push(t);
        }
        for tags in map.values_mut() {
            // In key order already: a check, not a sort.
            tags.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pages_tags_probe_the_table_once_per_resource() {
        crate::list::assert_probes(&super::tags_for_sql(), "PRIMARY KEY (resource_id=?)");
    }

    #[test]
    fn a_tag_is_one_probe_of_its_key() {
        let plan = crate::query_plan("SELECT value FROM tags WHERE resource_id = ?1 AND key = ?2");
        assert_eq!(plan, ["SEARCH tags USING PRIMARY KEY (resource_id=? AND key=?)"], "{plan:?}");
    }
}
