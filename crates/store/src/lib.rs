//! The store: Corral's durable state in SQLite (WAL), one transaction per API-visible change,
//! schema moved forward by numbered migrations (`PRAGMA user_version`).
//!
//! Records here are plain data; the store does not know EC2's wire format or the host. A
//! PostgreSQL backend for many hosts will implement the same methods.

mod account;
mod doc;
pub mod example;
mod idempotency;
mod image;
mod instance;
mod keypair;
mod list;
mod migrations;
mod network;
mod page;
mod storage;
mod stored;
mod tag;

pub use account::AccessKey;
pub use doc::Doc;
pub use image::{ImageBlockDevice, ImageRecord};
pub use instance::{Desired, InstanceOptions, InstanceRecord, MetadataOptions};
pub use keypair::KeyPairRecord;
pub use network::{
    AclEntry, AddressRecord, EniRecord, InternetGatewayRecord, NetworkAclRecord, RouteRecord, RouteTableAssociationRecord,
    RouteTableRecord, SecurityGroupRecord, SgRule, SubnetRecord, VpcRecord,
};
pub use page::{Cond, Listed, Related};
pub use storage::{KernelBoot, LayerRecord, SnapshotRecord, VolumeAttachment, VolumeModification, VolumeRecord};
pub use stored::Stored;
pub use tag::TagRecord;

use rusqlite::Connection;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the store at {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("making the store at {path} private to its owner")]
    Private {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("migrating the store to version {version}")]
    Migrate {
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store query failed")]
    Sql(#[from] rusqlite::Error),
    #[error("corrupt record {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<StoreError> for corral_types::Error {
    fn from(e: StoreError) -> Self {
        corral_types::Error::internal(format!("{e}: {:?}", std::error::Error::source(&e)))
    }
}

pub struct Store {
    conn: Mutex<Connection>,
}

/// A transaction in progress; every method on it runs inside it.
pub struct Tx<'a> {
    /// The connection, inside the transaction [`Store::transaction`] began.
    tx: &'a Connection,
}

/// How far a commit is on disk when it returns (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is fsynced before it returns: a power loss loses no answered change. For
    /// a cloud of real VMs, whose host steps follow the commits.
    Full,
    /// Commits are fsynced at checkpoints only: a crash of the process loses nothing, a power
    /// loss may lose the last commits. For the simulated hypervisor (a CI double), tests and
    /// tools, where an fsync per commit would dominate.
    Normal,
}

impl Store {
    /// [`Store::open_durable`] with [`Durability::Normal`].
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_durable(path, Durability::Normal)
    }

    pub fn open_durable(path: &Path, durability: Durability) -> Result<Store> {
        let failed = |source: std::io::Error| StoreError::Private { path: path.display().to_string(), source };
        private(path).map_err(failed)?;
        let conn = Connection::open(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        let store = Self::init(conn)?;
        if durability == Durability::Full {
            store.lock().pragma_update(None, "synchronous", "FULL")?;
        }
        // SQLite gives its WAL and shared-memory files the database file's mode; older ones
        // made before this are narrowed too, by name: a descriptor opened and closed here would
        // take the connection's POSIX locks with it (see `private`).
        for suffix in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            if Path::new(&p).exists() {
                narrow(Path::new(&p)).map_err(failed)?;
            }
        }
        Ok(store)
    }

    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // 32 MiB of pages in memory (SQLite's default is 2 MiB): with tens of thousands of
        // instances a page of them, with their interfaces, volumes and tags, spans more than
        // 2 MiB of the file, and every miss is a read from the kernel.
        conn.pragma_update(None, "cache_size", -32768)?;
        // Plans that do not depend on bound values. Without this SQLite re-prepares, at every
        // step after a new binding, each kept statement with `GLOB ?` (a pushed-down filter),
        // to try its LIKE optimisation on the pattern: a tenth of a millisecond per filtered
        // Describe, for an optimisation no index here can use.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Statements are prepared once and kept; those built for pushed-down filters vary, so
        // the cache is generous.
        conn.set_prepared_statement_cache_capacity(512);
        migrations::run(&mut conn)?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one transaction: committed if it returns Ok, rolled back otherwise. It
    /// holds the store's write lock from its start (`BEGIN IMMEDIATE`): another process (the
    /// CLI beside `corral serve`) that wrote between a deferred transaction's first read and
    /// its first write made that write fail at once (`SQLITE_BUSY`, the snapshot being stale,
    /// which no waiting cures); holding the lock first, it waits for the other writer instead.
    pub fn transaction<T, E: From<StoreError>>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        self.run_in("BEGIN IMMEDIATE", f)
    }

    /// A transaction that only reads (`BEGIN DEFERRED`: it takes no write lock, so it never
    /// waits for another process's writer).
    pub fn read<T, E: From<StoreError>>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        self.run_in("BEGIN DEFERRED", f)
    }

    fn run_in<T, E: From<StoreError>>(&self, begin: &str, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        let conn = self.lock();
        // BEGIN and COMMIT as cached statements: every request runs a transaction or two, and
        // parsing them each time was a measurable part of a small one.
        run(&conn, begin)?;
        let mut open = Open { conn: &conn, done: false };
        let out = f(&Tx { tx: &conn })?;
        run(&conn, "COMMIT")?;
        open.done = true;
        Ok(out)
    }

    /// Reads records a page of `limit` at a time, each page in a transaction of its own (so
    /// a walk over a large kind never holds the store for long): `read` gives the records
    /// after a position, in order, with their positions; `each` handles a page inside its
    /// transaction, which only reads. Stops after the first page shorter than `limit`.
    pub fn read_pages<T, E: From<StoreError>>(
        &self,
        limit: usize,
        read: impl Fn(&Tx<'_>, i64, usize) -> Result<Vec<(i64, T)>>,
        mut each: impl FnMut(&Tx<'_>, Vec<(i64, T)>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut after = i64::MIN;
        loop {
            let (n, last) = self.read(|tx| {
                let page = read(tx, after, limit)?;
                let (n, last) = (page.len(), page.last().map(|(pos, _)| *pos));
                each(tx, page)?;
                Ok::<_, E>((n, last))
            })?;
            match last {
                Some(last) if n == limit => after = last,
                _ => return Ok(()),
            }
        }
    }
}

/// Makes `path` readable and writable by its owner only (creating it empty if it is not
/// there): the store holds the secret access keys.
/// Makes the database file its owner's alone (0600), creating it so if it is not there.
///
/// POSIX locks belong to a process, not to a descriptor: closing any descriptor of a file
/// releases every lock the process holds on it, SQLite's included. So a file that may already
/// be open in this process (another `Store` on the same path) is never opened here, only
/// changed by name; a new one is created with `O_EXCL`, which no connection can have open.
fn private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => narrow(path),
        Err(e) => Err(e),
    }
}

/// Mode 0600, set by name (no descriptor, so no lock dropped).
fn narrow(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

fn run(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// A transaction begun and not committed: rolled back when dropped (an error, a failed commit,
/// a panic), as `rusqlite::Transaction` does.
struct Open<'a> {
    conn: &'a Connection,
    done: bool,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = run(self.conn, "ROLLBACK");
        }
    }
}

impl Tx<'_> {
    pub fn meta_get(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self.tx.prepare_cached("SELECT value FROM meta WHERE key = ?1")?.query_row([key], |r| r.get(0)).optional()?)
    }

    pub fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        self.tx
            .prepare_cached("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")?
            .execute([key, value])?;
        Ok(())
    }
}

/// The steps of SQLite's plan for `sql` on a new store (every parameter bound to `'x'`), for
/// tests that check a lookup reads an index, not a whole table.
#[cfg(test)]
pub(crate) fn query_plan(sql: &str) -> Vec<String> {
    let store = Store::open_in_memory().unwrap();
    let conn = store.lock();
    explained(&conn, "EXPLAIN QUERY PLAN", sql, 3)
}

/// The opcodes of `sql`'s program on a new store (with those of the triggers it runs).
#[cfg(test)]
pub(crate) fn opcodes(sql: &str) -> Vec<String> {
    let store = Store::open_in_memory().unwrap();
    let conn = store.lock();
    opcodes_on(&conn, sql)
}

/// [`opcodes`] on this connection.
#[cfg(test)]
pub(crate) fn opcodes_on(conn: &Connection, sql: &str) -> Vec<String> {
    explained(conn, "EXPLAIN", sql, 1)
}

/// Column `column` of `explain` (`EXPLAIN` or `EXPLAIN QUERY PLAN`) run on `sql`, every
/// parameter bound to `'x'`.
#[cfg(test)]
fn explained(conn: &Connection, explain: &str, sql: &str, column: usize) -> Vec<String> {
    let mut st = conn.prepare(&format!("{explain} {sql}")).unwrap();
    let args = vec!["x"; st.parameter_count()];
    let rows = st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(column)).unwrap().map(Result::unwrap).collect();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_sets_synchronous() {
        let dir = tempfile::tempdir().unwrap();
        let level = |s: &Store| s.lock().pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0)).unwrap();
        // SQLite: 1 is NORMAL, 2 is FULL.
        assert_eq!(level(&Store::open(&dir.path().join("a.db")).unwrap()), 1);
        assert_eq!(level(&Store::open_durable(&dir.path().join("b.db"), Durability::Full).unwrap()), 2);
    }

    #[test]
    fn the_store_and_its_wal_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corral.db");
        let mode = |suffix: &str| std::fs::metadata(format!("{}{suffix}", path.display())).unwrap().permissions().mode() & 0o777;
        let s = Store::open(&path).unwrap();
        s.transaction(|tx| tx.meta_set("a", "1")).unwrap();
        assert_eq!((mode(""), mode("-wal"), mode("-shm")), (0o600, 0o600, 0o600));
        drop(s);
        // A store made before (world-readable) is narrowed when opened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _s = Store::open(&path).unwrap();
        assert_eq!(mode(""), 0o600);
    }

    /// SQLite holds a shared lock on a byte of the `-shm` file for as long as a connection is
    /// open, so that a process opening the store later knows not to reset the shared memory
    /// that others have mapped. POSIX locks belong to the process and go when any descriptor of
    /// the file is closed: opening and closing `-shm` (or the database) alongside SQLite drops
    /// them, and the next process to open the store truncates `-shm` under this one, which then
    /// dies of SIGBUS. (It did: `corral serve`, while `corral images import` opened its store.)
    #[test]
    fn an_open_store_keeps_its_shared_memory_lock() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corral.db");
        let locked = |suffix: &str| {
            let inode = std::fs::metadata(format!("{}{suffix}", path.display())).unwrap().ino();
            let pid = std::process::id().to_string();
            std::fs::read_to_string("/proc/locks").unwrap().lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let at = f.iter().position(|w| *w == "POSIX");
                at.is_some_and(|i| f.get(i + 3) == Some(&pid.as_str()) && f.get(i + 4).is_some_and(|d| d.ends_with(&format!(":{inode}"))))
            })
        };
        // A new store, then the same one opened again (its `-wal` and `-shm` there already),
        // and then a second connection beside the first.
        let s = Store::open(&path).unwrap();
        s.transaction(|tx| tx.meta_set("a", "1")).unwrap();
        assert!(locked("-shm"), "a new store's connection holds no lock on -shm");
        let again = Store::open(&path).unwrap();
        assert!(locked("-shm"), "opening the store a second time dropped the first's lock on -shm");
        drop(s);
        assert!(locked("-shm"), "the second connection holds no lock on -shm");
        assert_eq!(again.read(|tx| tx.meta_get("a")).unwrap().as_deref(), Some("1"));
    }

    #[test]
    fn failed_transaction_rolls_back() {
        let s = Store::open_in_memory().unwrap();
        let r: Result<(), StoreError> = s.transaction(|tx| {
            tx.meta_set("a", "1")?;
            Err(StoreError::Corrupt("boom".into()))
        });
        assert!(r.is_err());
        let v: Option<String> = s.read(|tx| tx.meta_get("a")).unwrap();
        assert_eq!(v, None);
    }

    #[test]
    fn a_panic_inside_rolls_back_and_the_store_goes_on() {
        let s = Store::open_in_memory().unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<(), StoreError> = s.transaction(|tx| {
                tx.meta_set("a", "1")?;
                panic!("halfway");
            });
        }));
        assert!(r.is_err());
        s.transaction(|tx| tx.meta_set("b", "2")).unwrap();
        assert_eq!(s.read(|tx| tx.meta_get("a")).unwrap(), None);
        assert_eq!(s.read(|tx| tx.meta_get("b")).unwrap().as_deref(), Some("2"));
    }

    /// Two processes writing the same store (`corral serve` and the CLI): a transaction that
    /// read before it writes is not failed by the other's commit in between; the other waits.
    #[test]
    fn a_transaction_is_not_failed_by_another_writer_between_its_read_and_its_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let (a, b) = (Store::open(&path).unwrap(), Store::open(&path).unwrap());
        a.transaction(|tx| tx.meta_set("n", "0")).unwrap();
        let (done_tx, done) = std::sync::mpsc::channel();
        let result = a.transaction(|tx| {
            let n: i64 = tx.meta_get("n")?.unwrap().parse().unwrap();
            // The other writer tries now; it must not commit before this transaction does.
            std::thread::spawn(move || done_tx.send(b.transaction(|tx| tx.meta_set("other", "1")).is_ok()));
            let meanwhile = done.recv_timeout(std::time::Duration::from_millis(300));
            assert!(meanwhile.is_err(), "the other writer committed inside this transaction");
            tx.meta_set("n", &(n + 1).to_string())
        });
        result.unwrap();
        assert!(done.recv_timeout(std::time::Duration::from_secs(10)).unwrap(), "the other writer failed");
        a.read(|tx| {
            assert_eq!(tx.meta_get("n")?.as_deref(), Some("1"));
            assert_eq!(tx.meta_get("other")?.as_deref(), Some("1"));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    }

    #[test]
    fn a_kept_statement_with_a_pattern_is_not_prepared_again_for_each_binding() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.lock();
        let sql = "SELECT count(*) FROM tags WHERE resource_id = ?1 AND value GLOB ?2";
        for pattern in ["web-*", "db-?", "web-*"] {
            conn.prepare_cached(sql).unwrap().query_row(["i-0123456789abcdef0", pattern], |r| r.get::<_, i64>(0)).unwrap();
        }
        let reprepared = conn.prepare_cached(sql).unwrap().get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(reprepared, 0);
    }

    #[test]
    fn reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("corral.db");
        Store::open(&p).unwrap().transaction(|tx| tx.meta_set("k", "v")).unwrap();
        let s = Store::open(&p).unwrap();
        assert_eq!(s.read(|tx| tx.meta_get("k")).unwrap().as_deref(), Some("v"));
    }
}
