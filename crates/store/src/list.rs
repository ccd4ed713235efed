//! Lookups by a list of values (a page's ids, an instance's interfaces, a layer's volumes).
//!
//! The list is bound as one JSON array and read with `json_each`, which drives the join: each
//! value probes the looked-up column's index once. It is written as
//!
//! ```sql
//! FROM (SELECT value AS wanted FROM json_each(?)) CROSS JOIN t WHERE t.col = wanted
//! ```
//!
//! `CROSS JOIN` keeps the list outside (SQLite does not reorder it), and the subquery keeps
//! `json_each`'s own columns (`id`, `parent`, `key`, ...) out of the names the query sees.
//! `t.col IN (SELECT value FROM json_each(?))` read the same rows but first copied the list
//! into a temporary b-tree, a page of its own zeroed per query: most of the cost of a lookup
//! of one or two ids, which the reconciler makes several times per launch.

/// The values as the JSON array a lookup binds, each once and sorted: a value twice in the
/// list would give its rows twice, where `IN` gave them once.
pub(crate) fn json_list<S: AsRef<str>>(values: &[S]) -> String {
    let mut v: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
    v.sort_unstable();
    v.dedup();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

/// The `FROM` clause of a lookup of `table` (with its alias) by the list bound at `param`
/// (e.g. `?2`); the values are the column `wanted`.
pub(crate) fn from_list(param: &str, table: &str) -> String {
    format!("(SELECT value AS wanted FROM json_each({param})) CROSS JOIN {table}")
}

/// Checks that `sql` reads the list first and then probes `via` (by the plan: `INDEX name `,
/// or `PRIMARY KEY` for a table without rowid), and builds no temporary b-tree (by the
/// program's opcodes).
#[cfg(test)]
pub(crate) fn assert_probes(sql: &str, via: &str) {
    let plan = crate::query_plan(sql);
    assert!(plan.first().is_some_and(|s| s.starts_with("SCAN json_each")), "{sql}: the list is not outside: {plan:?}");
    assert!(plan.iter().any(|s| s.starts_with("SEARCH") && s.contains(via)), "{sql}: {plan:?}");
    let ops = crate::opcodes(sql);
    assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{sql}: a temporary b-tree: {ops:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_holds_each_value_once() {
        assert_eq!(json_list(&["b", "a", "b"]), r#"["a","b"]"#);
        assert_eq!(json_list::<&str>(&[]), "[]");
        assert_eq!(json_list(&[r#"a"b"#.to_string()]), r#"["a\"b"]"#);
    }
}
