//! Numbered schema migrations. `PRAGMA user_version` records how many have run; each runs in
//! its own transaction. Append, never edit a released one.

use crate::{Result, StoreError};
use rusqlite::Connection;

/// The triggers that raise an instance's revision when its tags change (migration 8), made
/// again by migration 10 when the table was rebuilt.
macro_rules! tag_rev_triggers {
    () => {
        r#"
    CREATE TRIGGER instance_rev_tag_insert AFTER INSERT ON tags WHEN new.resource_id GLOB 'i-*'
    BEGIN UPDATE instances SET rev = rev + 1 WHERE instance_id = new.resource_id; END;
    CREATE TRIGGER instance_rev_tag_update AFTER UPDATE ON tags WHEN new.resource_id GLOB 'i-*' OR old.resource_id GLOB 'i-*'
    BEGIN UPDATE instances SET rev = rev + 1 WHERE instance_id IN (new.resource_id, old.resource_id); END;
    CREATE TRIGGER instance_rev_tag_delete AFTER DELETE ON tags WHEN old.resource_id GLOB 'i-*'
    BEGIN UPDATE instances SET rev = rev + 1 WHERE instance_id = old.resource_id; END;
    "#
    };
}

const MIGRATIONS: &[&str] = &[
    // 1: foundation
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE access_keys (
        access_key_id TEXT PRIMARY KEY,
        secret_access_key TEXT NOT NULL,
        user_name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE images (
        image_id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL,
        owner_id TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        base_disk TEXT NOT NULL,
        kernel TEXT,
        initrd TEXT,
        cmdline TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        recipe_hash TEXT NOT NULL,
        root_device_name TEXT NOT NULL,
        is_public INTEGER NOT NULL
    );
    CREATE TABLE key_pairs (
        key_pair_id TEXT PRIMARY KEY,
        key_name TEXT NOT NULL UNIQUE,
        key_type TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        public_key TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE instances (
        instance_id TEXT PRIMARY KEY,
        reservation_id TEXT NOT NULL,
        image_id TEXT NOT NULL,
        instance_type TEXT NOT NULL,
        vcpus INTEGER NOT NULL,
        memory_mib INTEGER NOT NULL,
        key_name TEXT,
        state TEXT NOT NULL,
        desired TEXT NOT NULL,
        force_stop INTEGER NOT NULL DEFAULT 0,
        state_reason_code TEXT,
        state_reason_message TEXT,
        state_transition_reason TEXT NOT NULL DEFAULT '',
        availability_zone TEXT NOT NULL,
        launch_time TEXT NOT NULL,
        ami_launch_index INTEGER NOT NULL,
        user_data TEXT,
        client_token TEXT,
        disable_api_termination INTEGER NOT NULL,
        shutdown_behavior TEXT NOT NULL,
        host TEXT NOT NULL,
        observed_generation INTEGER NOT NULL DEFAULT 0,
        terminated_at TEXT,
        seq INTEGER NOT NULL
    );
    CREATE INDEX instances_by_reservation ON instances(reservation_id);
    CREATE INDEX instances_by_seq ON instances(seq);
    CREATE TABLE client_tokens (
        token TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        reservation_id TEXT NOT NULL
    );
    CREATE TABLE tags (
        resource_id TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (resource_id, key)
    );
    "#,
    // 2: networks. Network resources are documents (JSON bodies keyed by id, with a parent id
    // for lookups): many small resource kinds whose shapes will keep growing, none of them
    // queried by anything but id, parent or kind.
    r#"
    CREATE TABLE docs (
        kind TEXT NOT NULL,
        id TEXT PRIMARY KEY,
        parent TEXT,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX docs_by_kind ON docs(kind, seq);
    CREATE INDEX docs_by_parent ON docs(kind, parent);
    "#,
    // 3: instance metadata options (JSON; empty means AWS's defaults).
    r#"
    ALTER TABLE instances ADD COLUMN metadata_options TEXT NOT NULL DEFAULT '';
    "#,
    // 4: images made of snapshots (block device mappings as JSON), with launch permissions.
    // Volumes, snapshots and layers are documents (see storage.rs).
    r#"
    ALTER TABLE images ADD COLUMN block_devices TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE images ADD COLUMN launch_users TEXT NOT NULL DEFAULT '[]';
    "#,
    // 5: documents are numbered by MAX(seq) + 1 on insert; without an index on seq alone that
    // was a scan of every document per insert (launches insert three).
    r#"
    CREATE INDEX docs_by_seq ON docs(seq);
    "#,
    // 6: responses kept for ClientToken retries; indexes on the document fields launches look
    // up (an instance's interfaces, taken addresses, used layers); instance settings beside the state (stop protection, source/destination check, CPU
    // credits, monitoring), as JSON with AWS's defaults for missing fields.
    r#"
    ALTER TABLE instances ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE images ADD COLUMN deprecation_time TEXT;
    CREATE INDEX docs_by_instance ON docs(kind, json_extract(body, '$.instance_id'));
    CREATE INDEX docs_by_public_ip ON docs(kind, json_extract(body, '$.public_ip'));
    CREATE INDEX docs_by_private_ip ON docs(kind, parent, json_extract(body, '$.private_ip'));
    CREATE INDEX docs_by_layer ON docs(kind, json_extract(body, '$.layer'));
    CREATE TABLE idempotent_responses (
        action TEXT NOT NULL,
        token TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        response TEXT NOT NULL,
        PRIMARY KEY (action, token)
    );
    "#,
    // 7: the number of instances not terminated (every launch checks it against the quota),
    // kept by triggers so reading it does not count the fleet.
    r#"
    CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
    INSERT INTO counters SELECT 'live_instances', COUNT(*) FROM instances WHERE state != 'terminated';
    CREATE TRIGGER live_instances_insert AFTER INSERT ON instances WHEN new.state != 'terminated'
    BEGIN UPDATE counters SET n = n + 1 WHERE name = 'live_instances'; END;
    CREATE TRIGGER live_instances_delete AFTER DELETE ON instances WHEN old.state != 'terminated'
    BEGIN UPDATE counters SET n = n - 1 WHERE name = 'live_instances'; END;
    CREATE TRIGGER live_instances_update AFTER UPDATE OF state ON instances
    WHEN (old.state = 'terminated') != (new.state = 'terminated')
    BEGIN UPDATE counters SET n = n + (CASE WHEN new.state = 'terminated' THEN -1 ELSE 1 END) WHERE name = 'live_instances'; END;
    "#,
    // 8: an instance's revision, raised in the same transaction as every write to what
    // DescribeInstances shows of it: its row, its interfaces and volumes (documents naming it
    // by `instance_id` or `attachment.instance_id`, before or after the write), its tags, and
    // its image's row (its root device name). A reader holding a rendering of an instance at
    // a revision knows it is still exact while the revision is unchanged.
    concat!(
        r#"
        ALTER TABLE instances ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
        CREATE TRIGGER instance_rev_row AFTER UPDATE ON instances WHEN new.rev = old.rev
        BEGIN UPDATE instances SET rev = old.rev + 1 WHERE rowid = new.rowid; END;
        CREATE TRIGGER instance_rev_doc_insert AFTER INSERT ON docs WHEN new.kind IN ('network-interface', 'volume')
        BEGIN UPDATE instances SET rev = rev + 1
            WHERE instance_id IN (json_extract(new.body, '$.instance_id'), json_extract(new.body, '$.attachment.instance_id')); END;
        CREATE TRIGGER instance_rev_doc_update AFTER UPDATE ON docs WHEN new.kind IN ('network-interface', 'volume')
        BEGIN UPDATE instances SET rev = rev + 1
            WHERE instance_id IN (json_extract(new.body, '$.instance_id'), json_extract(new.body, '$.attachment.instance_id'),
                                  json_extract(old.body, '$.instance_id'), json_extract(old.body, '$.attachment.instance_id')); END;
        CREATE TRIGGER instance_rev_doc_delete AFTER DELETE ON docs WHEN old.kind IN ('network-interface', 'volume')
        BEGIN UPDATE instances SET rev = rev + 1
            WHERE instance_id IN (json_extract(old.body, '$.instance_id'), json_extract(old.body, '$.attachment.instance_id')); END;
        "#,
        tag_rev_triggers!(),
        r#"
        CREATE TRIGGER instance_rev_image_update AFTER UPDATE OF root_device_name ON images
        BEGIN UPDATE instances SET rev = rev + 1 WHERE image_id = old.image_id; END;
        CREATE TRIGGER instance_rev_image_delete AFTER DELETE ON images
        BEGIN UPDATE instances SET rev = rev + 1 WHERE image_id = old.image_id; END;
        "#
    ),
    // 9: the terminated instances, for the reconciler's full pass that forgets those
    // terminated long enough ago: it read every row of the fleet (a tenth of a second of the
    // server's core at 50,000 instances, every 30 s), now only theirs.
    r#"
    CREATE INDEX instances_terminated ON instances(seq) WHERE state = 'terminated';
    "#,
    // 10: tags kept in their key's order (WITHOUT ROWID), so a tag is one B-tree probe, not
    // one in the key's index and a second in the table: a tag filter probes once per record
    // it reads, and every page reads its records' tags. Dropping the old table dropped its
    // triggers (migration 8's), which are made again as they were.
    concat!(
        r#"
        CREATE TABLE tags_by_key (
            resource_id TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (resource_id, key)
        ) WITHOUT ROWID;
        INSERT INTO tags_by_key(resource_id, resource_type, key, value) SELECT resource_id, resource_type, key, value FROM tags;
        DROP TABLE tags;
        ALTER TABLE tags_by_key RENAME TO tags;
        "#,
        tag_rev_triggers!(),
    ),
    // 11: the indexes on a document field hold only the documents that have it (a layer has
    // none of the four, a volume only its layer). Every write of a document updated all four,
    // and at 50,000 instances each held 150,000 entries, mostly empty ones. Every lookup
    // through them compares the field for equality, which implies the field is there, so
    // SQLite still uses them (`doc::tests` checks the plans).
    r#"
    DROP INDEX docs_by_instance;
    DROP INDEX docs_by_public_ip;
    DROP INDEX docs_by_private_ip;
    DROP INDEX docs_by_layer;
    CREATE INDEX docs_by_instance ON docs(kind, json_extract(body, '$.instance_id'))
        WHERE json_extract(body, '$.instance_id') IS NOT NULL;
    CREATE INDEX docs_by_public_ip ON docs(kind, json_extract(body, '$.public_ip'))
        WHERE json_extract(body, '$.public_ip') IS NOT NULL;
    CREATE INDEX docs_by_private_ip ON docs(kind, parent, json_extract(body, '$.private_ip'))
        WHERE json_extract(body, '$.private_ip') IS NOT NULL;
    CREATE INDEX docs_by_layer ON docs(kind, json_extract(body, '$.layer'))
        WHERE json_extract(body, '$.layer') IS NOT NULL;
    "#,
    // 12: migration 8's revision triggers bump each instance a write names with an equality
    // of its own. With `instance_id IN (a, b)` SQLite built two temporary b-trees (the list,
    // and the rows to update) on every write of an interface, a volume or an instance's tag:
    // a fifth of the cost of writing the document. Bumping an instance twice is harmless; a
    // revision only has to change.
    r#"
    DROP TRIGGER instance_rev_doc_insert;
    DROP TRIGGER instance_rev_doc_update;
    DROP TRIGGER instance_rev_doc_delete;
    DROP TRIGGER instance_rev_tag_update;
    CREATE TRIGGER instance_rev_doc_insert AFTER INSERT ON docs WHEN new.kind = 'network-interface' OR new.kind = 'volume'
    BEGIN
        UPDATE instances SET rev = rev + 1 WHERE instance_id = json_extract(new.body, '$.instance_id');
        UPDATE instances SET rev = rev + 1 WHERE instance_id = json_extract(new.body, '$.attachment.instance_id');
    END;
    CREATE TRIGGER instance_rev_doc_update AFTER UPDATE ON docs WHEN new.kind = 'network-interface' OR new.kind = 'volume'
    BEGIN
        UPDATE instances SET rev = rev + 1 WHERE instance_id = json_extract(new.body, '$.instance_id');
        UPDATE instances SET rev = rev + 1 WHERE instance_id = json_extract(new.body, '$.attachment.instance_id');
        UPDATE instances SET rev = rev + 1 WHERE instance_id = json_extract(old.body, '$.instance_id');
        UPDATE instances SET rev = rev + 1 WHERE instance_id = json_extract(old.body, '$.attachment.instance_id');
    END;
    CREATE TRIGGER instance_rev_doc_delete AFTER DELETE ON docs WHEN old.kind = 'network-interface' OR old.kind = 'volume'
    BEGIN
        UPDATE instances SET rev = rev + 1 WHERE instance_id = json_extract(old.body, '$.instance_id');
        UPDATE instances SET rev = rev + 1 WHERE instance_id = json_extract(old.body, '$.attachment.instance_id');
    END;
    CREATE TRIGGER instance_rev_tag_update AFTER UPDATE ON tags WHEN new.resource_id GLOB 'i-*' OR old.resource_id GLOB 'i-*'
    BEGIN
        UPDATE instances SET rev = rev + 1 WHERE instance_id = new.resource_id;
        UPDATE instances SET rev = rev + 1 WHERE instance_id = old.resource_id;
    END;
    "#,
    // 13: a new document's position comes from a counter beside `live_instances`, not from
    // MAX(seq) + 1, so the index on seq alone (migration 5) goes: it was one more b-tree page
    // written by every transaction that adds a document (a launch adds three). A position is
    // never given twice, even after the last document is deleted.
    r#"
    INSERT INTO counters SELECT 'doc_seq', COALESCE(MAX(seq), 0) FROM docs;
    DROP INDEX docs_by_seq;
    "#,
    // 14: each subnet's interfaces, counted by triggers in `counters` as 'interfaces:SUBNET'
    // (a row while the subnet has any), for DescribeSubnets' free addresses: it counted them
    // in the index, every interface of every subnet it listed (5.5 ms at 50,000 instances
    // against 0.6 ms at 1,000). The launch and termination that change a count already write
    // this table's page (`doc_seq`, `live_instances`).
    r#"
    INSERT INTO counters(name, n)
        SELECT 'interfaces:' || parent, COUNT(*) FROM docs WHERE kind = 'network-interface' AND parent IS NOT NULL GROUP BY parent;
    CREATE TRIGGER interfaces_count_insert AFTER INSERT ON docs WHEN new.kind = 'network-interface' AND new.parent IS NOT NULL
    BEGIN
        INSERT OR IGNORE INTO counters(name, n) VALUES ('interfaces:' || new.parent, 0);
        UPDATE counters SET n = n + 1 WHERE name = 'interfaces:' || new.parent;
    END;
    CREATE TRIGGER interfaces_count_delete AFTER DELETE ON docs WHEN old.kind = 'network-interface' AND old.parent IS NOT NULL
    BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'interfaces:' || old.parent;
        DELETE FROM counters WHERE name = 'interfaces:' || old.parent AND n <= 0;
    END;
    CREATE TRIGGER interfaces_count_move AFTER UPDATE OF kind, parent ON docs
    WHEN (old.kind = 'network-interface' OR new.kind = 'network-interface') AND (old.kind IS NOT new.kind OR old.parent IS NOT new.parent)
    BEGIN
        UPDATE counters SET n = n - 1 WHERE old.kind = 'network-interface' AND name = 'interfaces:' || old.parent;
        DELETE FROM counters WHERE old.kind = 'network-interface' AND name = 'interfaces:' || old.parent AND n <= 0;
        INSERT OR IGNORE INTO counters(name, n) SELECT 'interfaces:' || new.parent, 0 WHERE new.kind = 'network-interface' AND new.parent IS NOT NULL;
        UPDATE counters SET n = n + 1 WHERE new.kind = 'network-interface' AND name = 'interfaces:' || new.parent;
    END;
    "#,
];

pub fn run(conn: &mut Connection) -> Result<()> {
    run_to(conn, MIGRATIONS.len())
}

/// Runs the migrations not yet run, up to version `last`.
fn run_to(conn: &mut Connection, last: usize) -> Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().take(last).skip(current) {
        let version = i + 1;
        let tx = conn.transaction().map_err(|source| StoreError::Migrate { version, source })?;
        tx.execute_batch(sql).map_err(|source| StoreError::Migrate { version, source })?;
        tx.pragma_update(None, "user_version", version as i64).map_err(|source| StoreError::Migrate { version, source })?;
        tx.commit().map_err(|source| StoreError::Migrate { version, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{run, run_to};
    use rusqlite::Connection;

    /// A store made before migrations 10 and 11 keeps its tags (and their triggers) and its
    /// documents, and finds them through the rebuilt table and indexes.
    #[test]
    fn tags_and_documents_outlive_the_rebuilt_table_and_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        run_to(&mut conn, 9).unwrap();
        conn.execute_batch(
            "INSERT INTO tags VALUES ('i-1', 'instance', 'Name', 'web'), ('vol-1', 'volume', 'team', 'a');
             INSERT INTO docs(kind, id, parent, seq, body) VALUES
                 ('volume', 'vol-1', 'i-1', 1, '{\"layer\": \"layer-1\"}'),
                 ('layer', 'layer-1', NULL, 2, '{}'),
                 ('network-interface', 'eni-1', 'subnet-1', 3, '{\"instance_id\": \"i-1\", \"private_ip\": \"10.0.0.5\"}');",
        )
        .unwrap();
        run(&mut conn).unwrap();
        let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, String>(0)).unwrap();
        assert_eq!(one("SELECT value FROM tags WHERE resource_id = 'i-1' AND key = 'Name'"), "web");
        assert_eq!(one("SELECT value FROM tags WHERE resource_id = 'vol-1' AND key = 'team'"), "a");
        assert_eq!(one("SELECT id FROM docs WHERE kind = 'volume' AND json_extract(body, '$.layer') = 'layer-1'"), "vol-1");
        assert_eq!(one("SELECT id FROM docs WHERE kind = 'network-interface' AND json_extract(body, '$.instance_id') = 'i-1'"), "eni-1");
        let triggers: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'tags'", [], |r| r.get(0)).unwrap();
        assert_eq!(triggers, 3, "the tag triggers of migration 8");
        let doc_seq: i64 = conn.query_row("SELECT n FROM counters WHERE name = 'doc_seq'", [], |r| r.get(0)).unwrap();
        assert_eq!(doc_seq, 3, "new documents are numbered after those there (migration 13)");
    }

    /// A store made before migration 14 gets each subnet's interfaces counted from the
    /// documents there, and the count then follows new ones.
    #[test]
    fn interface_counts_start_from_the_interfaces_there() {
        let mut conn = Connection::open_in_memory().unwrap();
        run_to(&mut conn, 13).unwrap();
        conn.execute_batch(
            "INSERT INTO docs(kind, id, parent, seq, body) VALUES
                 ('network-interface', 'eni-1', 'subnet-1', 1, '{}'),
                 ('network-interface', 'eni-2', 'subnet-1', 2, '{}'),
                 ('network-interface', 'eni-3', 'subnet-2', 3, '{}'),
                 ('subnet', 'subnet-3', 'vpc-1', 4, '{}');",
        )
        .unwrap();
        run(&mut conn).unwrap();
        conn.execute("INSERT INTO docs(kind, id, parent, seq, body) VALUES ('network-interface', 'eni-4', 'subnet-2', 5, '{}')", [])
            .unwrap();
        let counts: Vec<(String, i64)> = conn
            .prepare("SELECT name, n FROM counters WHERE name GLOB 'interfaces:*' ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(counts, [("interfaces:subnet-1".to_string(), 2), ("interfaces:subnet-2".to_string(), 2)]);
    }

    /// Writing a document, or an instance's tag, runs the revision triggers without building
    /// a temporary b-tree (migration 12); they still run.
    #[test]
    fn revision_triggers_build_no_temporary_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        for sql in [
            "INSERT INTO docs(kind, id, parent, seq, body) VALUES ('volume', 'vol-1', 'i-1', 1, '{}')",
            "UPDATE docs SET body = '{}' WHERE kind = 'volume' AND id = 'vol-1'",
            "INSERT INTO docs(kind, id, parent, seq, body) VALUES ('network-interface', 'eni-1', 'subnet-1', 2, '{}')",
            "UPDATE docs SET parent = 'subnet-2', body = '{}' WHERE kind = 'network-interface' AND id = 'eni-1'",
            "DELETE FROM docs WHERE kind = 'network-interface' AND id = 'eni-1'",
            "INSERT INTO tags VALUES ('i-1', 'instance', 'Name', 'web') ON CONFLICT DO UPDATE SET value = excluded.value",
            "DELETE FROM tags WHERE resource_id = 'i-1' AND key = 'Name'",
        ] {
            let ops = crate::opcodes_on(&conn, sql);
            assert!(ops.iter().any(|o| o == "Program"), "{sql}: no trigger runs: {ops:?}");
            assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{sql}: {ops:?}");
        }
    }
}
