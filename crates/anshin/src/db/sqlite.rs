//! SQLite backend.
//!
//! Writes go to one writer thread that owns the only writable connection and
//! commits in groups: it takes every job queued while the previous commit was
//! syncing, runs each inside its own savepoint (one failing job does not undo the
//! others), commits once with `synchronous=FULL`, and only then answers each job.
//! Checkpoints (copying the WAL back into the database file) run on a thread of
//! their own, so the writer's time goes to commits only. Reads use a small pool
//! of read-only connections in WAL mode and run inline on the calling task: they
//! are point lookups of microseconds, cheaper than a hop to a blocking thread.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use super::credentials::{KeyRow, allow_list, hash_array};
use super::{
    BackupPart, CardInsert, CardRelease, CardRow, CustomerRow, KeyPurpose, OrderRow, OrderView, PrincipalRow,
    Scope, Sealed, ShopRow, StoreError, TenantKeyRow, TenantRow, fingerprint_array, pending, sealed_from,
};
use crate::access::Role;
use crate::db::audit::EntryFor;
use crate::ids::{CardToken, CustomerId, OrderId, PrincipalId, ShopId, TenantId};

mod alerts;
mod audit;
mod baselines;
mod checkout;
mod credentials;
mod inventory;
mod keys;
mod pages;
mod retention;
mod webhooks;

const MIGRATIONS: &[Migration] = &[
    (1, "vault", include_str!("../../migrations/sqlite/0001_vault.sql")),
    (2, "audit", include_str!("../../migrations/sqlite/0002_audit.sql")),
    (
        3,
        "alerts",
        include_str!("../../migrations/sqlite/0003_alerts.sql"),
    ),
    (
        4,
        "credentials",
        include_str!("../../migrations/sqlite/0004_credentials.sql"),
    ),
    (
        5,
        "retention",
        include_str!("../../migrations/sqlite/0005_retention.sql"),
    ),
    (
        6,
        "audit_outbox",
        include_str!("../../migrations/sqlite/0006_audit_outbox.sql"),
    ),
    (
        7,
        "inventory",
        include_str!("../../migrations/sqlite/0007_inventory.sql"),
    ),
    (
        8,
        "key_store",
        include_str!("../../migrations/sqlite/0008_key_store.sql"),
    ),
    (
        9,
        "checkout",
        include_str!("../../migrations/sqlite/0009_checkout.sql"),
    ),
    (
        10,
        "page_monitor",
        include_str!("../../migrations/sqlite/0010_page_monitor.sql"),
    ),
    (
        11,
        "record_keys_by_id",
        include_str!("../../migrations/sqlite/0011_record_keys_by_id.sql"),
    ),
    (
        12,
        "root_change",
        include_str!("../../migrations/sqlite/0012_root_change.sql"),
    ),
    (
        13,
        "payment_webhooks",
        include_str!("../../migrations/sqlite/0013_payment_webhooks.sql"),
    ),
    (
        14,
        "integrity_baselines",
        include_str!("../../migrations/sqlite/0014_integrity_baselines.sql"),
    ),
    (
        15,
        "delivery_claims",
        include_str!("../../migrations/sqlite/0015_delivery_claims.sql"),
    ),
];

/// The audit log's own file.
const LOG_MIGRATIONS: &[Migration] = &[(
    1,
    "audit_log",
    include_str!("../../migrations/sqlite-audit/0001_audit_log.sql"),
)];

/// Most jobs one commit carries; bounds the latency a single commit adds.
const MAX_BATCH: usize = 512;
/// Idle read connections kept open per database file.
const MAX_IDLE_READERS: usize = 4;
/// The vault's page caches (KiB): index pages of random tokens and
/// fingerprints stay in memory instead of being re-read through the kernel on
/// every insert and lookup.
const VAULT_CACHE: Caches = Caches {
    writer_kib: 40 * 1024,
    reader_kib: 12 * 1024,
};
/// The audit log's: appends touch the right edge of its tables and the
/// subject index; reads are listings and integration rounds.
const LOG_CACHE: Caches = Caches {
    writer_kib: 8 * 1024,
    reader_kib: 2 * 1024,
};
/// WAL pages (4 KiB each) after which the writer restarts the WAL.
const WAL_RESTART_FRAMES: i32 = 4096;
/// Least time between two checkpoints.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;
type Migration = (i64, &'static str, &'static str);

/// SQLite store: the vault's database file and, beside it, the audit log's
/// (`NAME-audit.db`). The log has a file of its own so that the entries every
/// read appends commit without touching the vault's file: SQLite drops a
/// reader's whole page cache whenever another connection has committed to its
/// file, so one shared file made every audited read start from a cold cache.
/// Clones share the writers and the reader pools.
#[derive(Clone)]
pub struct SqliteStore {
    vault: Arc<Db>,
    log: Arc<Db>,
}

/// Page-cache sizes of one database file's connections (KiB).
struct Caches {
    writer_kib: i64,
    reader_kib: i64,
}

/// One database file: its writer thread, checkpointer and reader pool.
struct Db {
    path: std::path::PathBuf,
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Mutex<Vec<Connection>>,
    reader_cache_kib: i64,
    stats: Arc<WriterStats>,
}

/// What group commit achieved: jobs per commit is the sharing factor.
#[derive(Default)]
struct WriterStats {
    commits: AtomicU64,
    jobs: AtomicU64,
}

/// A write's failure that is not SQLite's own, carried through rusqlite's
/// error type so [`backend`] can tell it apart.
#[derive(Debug)]
enum JobFailure {
    /// The audit entry could not be appended in the write's transaction.
    Audit(String),
    /// A new data key names a KEK version no longer stored.
    KeyGone,
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Audit(msg) => f.write_str(msg),
            Self::KeyGone => f.write_str("key-encryption key version no longer stored"),
        }
    }
}

impl std::error::Error for JobFailure {}

fn audit_failed(msg: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(JobFailure::Audit(msg)))
}

fn backend(err: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::ToSqlConversionFailure(inner) = &err
        && let Some(failure) = inner.downcast_ref::<JobFailure>()
    {
        return match failure {
            JobFailure::Audit(msg) => StoreError::Audit(msg.clone()),
            JobFailure::KeyGone => StoreError::KeyGone,
        };
    }
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(err.to_string())
        }
        Some(
            rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::DiskFull
            | rusqlite::ErrorCode::SystemIoFailure,
        ) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Backend(err.to_string()),
    }
}

/// Where the audit log of the vault at `vault` is kept: `anshin.db` →
/// `anshin-audit.db`, in the same directory.
pub(super) fn log_path(vault: &Path) -> std::path::PathBuf {
    let stem = vault.file_stem().unwrap_or_default().to_string_lossy();
    let name = match vault.extension() {
        Some(ext) => format!("{stem}-audit.{}", ext.to_string_lossy()),
        None => format!("{stem}-audit"),
    };
    vault.with_file_name(name)
}

impl SqliteStore {
    pub(super) async fn open(path: &Path) -> Result<Self, StoreError> {
        let log = Db::open(log_path(path), LOG_MIGRATIONS, LOG_CACHE, "log").await?;
        let vault = Db::open(path.to_owned(), MIGRATIONS, VAULT_CACHE, "vault").await?;
        let store = Self {
            vault: Arc::new(vault),
            log: Arc::new(log),
        };
        store.adopt_legacy_log().await?;
        Ok(store)
    }

    /// Writes and commits so far: how well group commit shares syncs.
    pub(super) fn group_commit(&self) -> (u64, u64) {
        let (vault, log) = (&self.vault.stats, &self.log.stats);
        (
            vault.jobs.load(Ordering::Relaxed) + log.jobs.load(Ordering::Relaxed),
            vault.commits.load(Ordering::Relaxed) + log.commits.load(Ordering::Relaxed),
        )
    }

    /// Runs `job` in the vault's next group commit and returns its result once committed.
    async fn write<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.vault.write(job).await
    }

    /// Runs a read on a pooled read-only connection to the vault.
    fn read<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, StoreError> {
        self.vault.read(f)
    }
}

impl SqliteStore {
    /// Copies the store into `dir` (which must exist) with SQLite's online
    /// backup, each file as one consistent snapshot taken while the server
    /// keeps serving. Returns each copy's name and size.
    ///
    /// [`BackupPart::Data`]: the vault's file without the key state, then the
    /// log's file. The order matters: an entry the sequencer moves between the
    /// two snapshots is then in both copies and taken once on restore, where
    /// the other order would lose it. [`BackupPart::Keys`]: the key state only.
    pub(super) async fn backup(
        &self,
        dir: &Path,
        part: BackupPart,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let (vault, log) = (self.vault.path.clone(), self.log.path.clone());
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || match part {
            BackupPart::Data => Ok(vec![
                backup_file(&vault, &dir, "anshin.db", Some(DROP_KEY_STATE))?,
                backup_file(&log, &dir, "anshin-audit.db", None)?,
            ]),
            BackupPart::Keys => Ok(vec![backup_file(
                &vault,
                &dir,
                "anshin-keys.db",
                Some(KEEP_ONLY_KEY_STATE),
            )?]),
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

/// What a data backup leaves out: the key state. A record shredded after the
/// backup then has no key anywhere the backup can be restored next to.
const DROP_KEY_STATE: &str = "DELETE FROM record_keys; DELETE FROM tenant_keys;";

/// What a key-state backup keeps: the tables holding keys (wrapped by the
/// root key or a KEK), the root check, and the schema version.
const KEEP_ONLY_KEY_STATE: &str = "keep:meta,tenant_keys,record_keys,schema_migrations";

/// One file's online backup into `dir` as `name`, owner-only. With `filter`,
/// the snapshot is first taken into a scratch file beside the source (so what
/// the filter removes never reaches the backup's medium), filtered there, and
/// written to `dir` with `VACUUM INTO`, which copies live rows only.
fn backup_file(
    source: &Path,
    dir: &Path,
    name: &str,
    filter: Option<&str>,
) -> Result<(String, u64), StoreError> {
    let target = dir.join(name);
    create_private(&target)?;
    let src = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(backend)?;
    src.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(backend)?;
    let dst = match filter {
        None => {
            let mut dst = Connection::open(&target).map_err(backend)?;
            snapshot(&src, &mut dst)?;
            dst
        }
        Some(filter) => {
            let scratch = source.with_extension(format!("backup-{}.tmp", std::process::id()));
            let _ = std::fs::remove_file(&scratch);
            create_private(&scratch)?;
            let filtered = (|| {
                let mut tmp = Connection::open(&scratch).map_err(backend)?;
                snapshot(&src, &mut tmp)?;
                apply_filter(&tmp, filter)?;
                tmp.execute("VACUUM INTO ?1", [target.to_string_lossy()])
                    .map_err(backend)?;
                Ok::<_, StoreError>(())
            })();
            let _ = std::fs::remove_file(&scratch);
            filtered?;
            Connection::open(&target).map_err(backend)?
        }
    };
    let check: String = dst
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(backend)?;
    if check != "ok" {
        return Err(StoreError::Corrupt("the backup copy failed its integrity check"));
    }
    drop(dst);
    let bytes = std::fs::metadata(&target)
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .len();
    Ok((name.to_owned(), bytes))
}

fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))
}

/// Copies every page of `src` into `dst` in one step: one read transaction,
/// so one snapshot (a stepwise copy would restart whenever the server commits).
fn snapshot(src: &Connection, dst: &mut Connection) -> Result<(), StoreError> {
    let copy = rusqlite::backup::Backup::new(src, dst).map_err(backend)?;
    loop {
        match copy.step(-1).map_err(backend)? {
            rusqlite::backup::StepResult::Done => return Ok(()),
            _ => thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// Runs a filter on a scratch copy: SQL, or `keep:T1,T2,…` to empty every other table.
fn apply_filter(conn: &Connection, filter: &str) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA foreign_keys = OFF").map_err(backend)?;
    let Some(keep) = filter.strip_prefix("keep:") else {
        return conn.execute_batch(filter).map_err(backend);
    };
    let keep: Vec<&str> = keep.split(',').collect();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
        .map_err(backend)?;
    for table in tables.iter().filter(|t| !keep.contains(&t.as_str())) {
        // Names come from the schema itself, quoted as identifiers.
        conn.execute_batch(&format!("DELETE FROM \"{}\"", table.replace('"', "\"\"")))
            .map_err(backend)?;
    }
    Ok(())
}

impl Db {
    /// Opens (creating if need be) and migrates the file, and starts its
    /// writer and checkpointer threads, named after `role`.
    async fn open(
        path: std::path::PathBuf,
        migrations: &'static [Migration],
        caches: Caches,
        role: &'static str,
    ) -> Result<Self, StoreError> {
        let writer_path = path.clone();
        let writer_kib = caches.writer_kib;
        // Opening and migrating touch the disk: keep them off the async threads.
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, StoreError> {
            let mut conn = Connection::open(&writer_path).map_err(backend)?;
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA secure_delete = ON;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA wal_autocheckpoint = 0;
                 PRAGMA journal_size_limit = 67108864;
                 PRAGMA cache_size = -{writer_kib};"
            ))
            .map_err(backend)?;
            migrate(&mut conn, migrations)?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        let checkpointer = Connection::open(&path).map_err(backend)?;
        checkpointer
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (committed, commits) = mpsc::channel::<()>();
        let stats = Arc::new(WriterStats::default());
        thread::Builder::new()
            .name(format!("anshin-sqlite-{role}-writer"))
            .spawn({
                let stats = stats.clone();
                move || writer_loop(&conn, &rx, &committed, &stats)
            })
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        thread::Builder::new()
            .name(format!("anshin-sqlite-{role}-checkpoint"))
            .spawn(move || checkpoint_loop(&checkpointer, &commits))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            path,
            writer: Mutex::new(tx),
            readers: Mutex::new(Vec::new()),
            reader_cache_kib: caches.reader_kib,
            stats,
        })
    }

    /// Runs `job` in the next group commit and returns its result once committed.
    async fn write<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel::<Result<R, StoreError>>();
        let job: Job = Box::new(move |conn| {
            let result = job(conn);
            let failed = result.is_err();
            let completion: Completion = Box::new(move |commit| {
                let outcome = match commit {
                    Ok(()) => result.map_err(backend),
                    Err(msg) => Err(StoreError::Unavailable(msg)),
                };
                let _ = reply.send(outcome);
            });
            (failed, completion)
        });
        self.writer
            .lock()
            .map_err(|_| StoreError::Unavailable("writer lock poisoned".into()))?
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        // A dropped reply means the job never ran (the batch could not begin).
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the write was not committed; retry".into()))?
    }

    /// Runs a read on a pooled read-only connection.
    fn read<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, StoreError> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(backend)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(backend)?;
                conn.pragma_update(None, "cache_size", -self.reader_cache_kib)
                    .map_err(backend)?;
                conn.set_prepared_statement_cache_capacity(64);
                conn
            }
        };
        let result = f(&conn).map_err(backend);
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < MAX_IDLE_READERS
        {
            pool.push(conn);
        }
        result
    }
}

impl SqliteStore {
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())))
    }

    pub(super) async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()
        })
    }

    pub(super) async fn meta_init(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let key = key.to_owned();
        self.write(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )?;
            c.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| r.get(0))
        })
        .await
    }

    pub(super) async fn insert_tenant(
        &self,
        tenant: TenantRow,
        keys: Vec<TenantKeyRow>,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached("INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)")?.execute(params![
                tenant.id.as_str(),
                tenant.name,
                tenant.created_at
            ])?;
            let mut stmt = c.prepare_cached(
                "INSERT INTO tenant_keys (tenant_id, purpose, version, wrapped, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for key in keys {
                stmt.execute(params![tenant.id.as_str(), key.purpose.as_str(), key.version, key.wrapped, key.created_at])?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT id, name, created_at FROM tenants WHERE id = ?1")?
                .query_row([id.as_str()], tenant_row)
                .optional()
        })
    }

    pub(super) async fn tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")?
                .query_map([], tenant_row)?
                .collect()
        })
    }

    pub(super) async fn tenant_keys(&self, id: &TenantId) -> Result<Vec<TenantKeyRow>, StoreError> {
        let rows: Vec<(String, u32, Vec<u8>, i64)> = self.read(|c| {
            c.prepare_cached(
                "SELECT purpose, version, wrapped, created_at FROM tenant_keys WHERE tenant_id = ?1 ORDER BY purpose, version",
            )?
            .query_map([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect()
        })?;
        rows.into_iter()
            .map(|(purpose, version, wrapped, created_at)| {
                Ok(TenantKeyRow {
                    purpose: KeyPurpose::parse(&purpose)?,
                    version,
                    wrapped,
                    created_at,
                })
            })
            .collect()
    }

    pub(super) async fn insert_shop(&self, shop: ShopRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached("INSERT INTO shops (id, tenant_id, name, created_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![
                    shop.id.as_str(),
                    shop.tenant_id.as_str(),
                    shop.name,
                    shop.created_at
                ])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn shop(&self, id: &ShopId) -> Result<Option<ShopRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT id, tenant_id, name, created_at FROM shops WHERE id = ?1")?
                .query_row([id.as_str()], shop_row)
                .optional()
        })
    }

    pub(super) async fn shops(&self, tenant: &TenantId) -> Result<Vec<ShopRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT id, tenant_id, name, created_at FROM shops WHERE tenant_id = ?1 ORDER BY created_at, id")?
                .query_map([tenant.as_str()], shop_row)?
                .collect()
        })
    }

    pub(super) async fn insert_principal(&self, p: PrincipalRow, key: KeyRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO principals (id, name, role, tenant_id, shop_id, allowed_ips, created_at, disabled_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                p.id.as_str(),
                p.name,
                p.role.as_str(),
                p.tenant_id.as_ref().map(TenantId::as_str),
                p.shop_id.as_ref().map(ShopId::as_str),
                p.allowed_ips.as_ref().map(|a| a.to_db()),
                p.created_at,
                p.disabled_at
            ])?;
            insert_key(c, &key)
        })
        .await
    }

    pub(super) async fn credential(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(PrincipalRow, KeyRow)>, StoreError> {
        let row = self.read(|c| {
            c.prepare_cached(
                "SELECT p.id, p.name, p.role, p.tenant_id, p.shop_id, p.allowed_ips, p.created_at, p.disabled_at,
                        k.key_hash, k.created_at, k.expires_at, k.revoked_at
                 FROM principal_keys k JOIN principals p ON p.id = k.principal_id WHERE k.key_hash = ?1",
            )?
            .query_row([&key_hash[..]], |r| {
                Ok((
                    raw_principal(r)?,
                    r.get::<_, Vec<u8>>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get::<_, Option<i64>>(11)?,
                ))
            })
            .optional()
        })?;
        row.map(|(principal, hash, created_at, expires_at, revoked_at)| {
            let principal = principal.into_row()?;
            let key = KeyRow {
                key_hash: hash_array(hash)?,
                principal_id: principal.id.clone(),
                created_at,
                expires_at,
                revoked_at,
            };
            Ok((principal, key))
        })
        .transpose()
    }

    pub(super) async fn principal(&self, id: &PrincipalId) -> Result<Option<PrincipalRow>, StoreError> {
        let row = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = ?1"
            ))?
            .query_row([id.as_str()], raw_principal)
            .optional()
        })?;
        row.map(RawPrincipal::into_row).transpose()
    }

    pub(super) async fn principals(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<PrincipalRow>, StoreError> {
        let rows: Vec<RawPrincipal> = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY created_at, id"
            ))?
            .query_map([tenant.map(TenantId::as_str)], raw_principal)?
            .collect()
        })?;
        rows.into_iter().map(RawPrincipal::into_row).collect()
    }

    pub(super) async fn disable_principal(&self, id: &PrincipalId, at: i64) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write(move |c| {
            let disabled = c
                .prepare_cached(
                    "UPDATE principals SET disabled_at = ?2 WHERE id = ?1 AND disabled_at IS NULL",
                )?
                .execute(params![id.as_str(), at])?
                == 1;
            c.prepare_cached(
                "UPDATE principal_keys SET revoked_at = ?2 WHERE principal_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![id.as_str(), at])?;
            Ok(disabled)
        })
        .await
    }

    pub(super) async fn insert_card(
        &self,
        card: CardRow,
        shop: Option<ShopId>,
        record: EntryFor<CardToken>,
    ) -> Result<CardInsert, StoreError> {
        self.write(move |c| {
            let outcome = insert_card_row(c, &card, shop)?;
            let token = match &outcome {
                CardInsert::Inserted => &card.token,
                CardInsert::Existing { token, .. } => token,
                CardInsert::Vanished => return Ok(outcome),
            };
            let entry = record(token).map_err(audit_failed)?;
            audit::insert_outbox(c, &entry).map_err(|e| audit_failed(e.to_string()))?;
            Ok(outcome)
        })
        .await
    }

    pub(super) async fn release_card(
        &self,
        tenant: &TenantId,
        shop: &ShopId,
        token: &CardToken,
        at: i64,
    ) -> Result<CardRelease, StoreError> {
        let (tenant, shop, token) = (tenant.clone(), shop.clone(), token.clone());
        self.write(move |c| {
            let (t, s) = (token.as_str(), shop.as_str());
            let visible = c
                .prepare_cached(
                    "SELECT 1 FROM cards WHERE token = ?1 AND tenant_id = ?2 AND deleted_at IS NULL
                       AND (shop_id = ?3 OR EXISTS (SELECT 1 FROM card_shops WHERE token = ?1 AND shop_id = ?3))",
                )?
                .exists(params![t, tenant.as_str(), s])?;
            if !visible {
                return Ok(CardRelease::NotFound);
            }
            c.prepare_cached("UPDATE cards SET shop_id = NULL WHERE token = ?1 AND shop_id = ?2")?.execute(params![t, s])?;
            c.prepare_cached("DELETE FROM card_shops WHERE token = ?1 AND shop_id = ?2")?.execute(params![t, s])?;
            let held = c
                .prepare_cached(
                    "SELECT 1 FROM cards WHERE token = ?1
                       AND (shop_id IS NOT NULL OR EXISTS (SELECT 1 FROM card_shops WHERE token = ?1))",
                )?
                .exists(params![t])?;
            if held {
                return Ok(CardRelease::Released);
            }
            shred_row(
                c,
                "UPDATE cards SET fingerprint = NULL, number_ct = NULL,
                                  expiry_ct = NULL, holder_ct = NULL, deleted_at = ?2
                 WHERE token = ?1 RETURNING key_id",
                params![t, at],
            )?;
            Ok(CardRelease::Shredded)
        })
        .await
    }

    pub(super) async fn card(
        &self,
        scope: Scope<'_>,
        token: &CardToken,
    ) -> Result<Option<CardRow>, StoreError> {
        let raw = self.read(|c| {
            c.prepare_cached(
                "SELECT token, c.tenant_id, fingerprint, brand, last4, k.kek_version, k.wrapped_dek,
                        number_ct, expiry_ct, holder_ct, created_at, deleted_at
                 FROM cards c LEFT JOIN record_keys k ON k.id = c.key_id
                 WHERE token = ?1 AND (?2 IS NULL OR c.tenant_id = ?2)
                   AND (?3 IS NULL OR c.shop_id = ?3
                        OR EXISTS (SELECT 1 FROM card_shops s WHERE s.token = c.token AND s.shop_id = ?3))",
            )?
            .query_row(
                params![token.as_str(), scope.tenant_str(), scope.shop_str()],
                raw_card,
            )
            .optional()
        })?;
        raw.map(RawCard::into_row).transpose()
    }

    pub(super) async fn card_by_fingerprint(
        &self,
        tenant: &TenantId,
        fingerprint: &[u8; 32],
    ) -> Result<Option<CardToken>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT token FROM cards WHERE tenant_id = ?1 AND fingerprint = ?2")?
                .query_row(params![tenant.as_str(), &fingerprint[..]], |r| {
                    r.get(0).map(CardToken::from_db)
                })
                .optional()
        })
    }

    pub(super) async fn update_card_details(
        &self,
        tenant: &TenantId,
        token: &CardToken,
        expiry: Vec<u8>,
        holder: Vec<u8>,
    ) -> Result<(), StoreError> {
        let (tenant, token) = (tenant.clone(), token.clone());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE cards SET expiry_ct = ?3, holder_ct = ?4 WHERE token = ?1 AND tenant_id = ?2 AND deleted_at IS NULL",
            )?
            .execute(params![token.as_str(), tenant.as_str(), expiry, holder])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn shred_card(
        &self,
        scope: Scope<'_>,
        token: &CardToken,
        at: i64,
    ) -> Result<bool, StoreError> {
        let (tenant, shop, token) = (scope.tenant.cloned(), scope.shop.cloned(), token.clone());
        self.write(move |c| {
            shred_row(
                c,
                "UPDATE cards SET fingerprint = NULL, number_ct = NULL,
                                  expiry_ct = NULL, holder_ct = NULL, deleted_at = ?4
                 WHERE token = ?1 AND (?2 IS NULL OR tenant_id = ?2) AND deleted_at IS NULL
                   AND (?3 IS NULL OR cards.shop_id = ?3
                        OR EXISTS (SELECT 1 FROM card_shops s WHERE s.token = cards.token AND s.shop_id = ?3))
                 RETURNING key_id",
                params![
                    token.as_str(),
                    tenant.as_ref().map(TenantId::as_str),
                    shop.as_ref().map(ShopId::as_str),
                    at
                ],
            )
        })
        .await
    }

    pub(super) async fn shred_customer(
        &self,
        scope: Scope<'_>,
        id: &CustomerId,
        at: i64,
    ) -> Result<bool, StoreError> {
        let (tenant, shop, id) = (scope.tenant.cloned(), scope.shop.cloned(), id.clone());
        self.write(move |c| {
            shred_row(c, "UPDATE customers SET name_ct = NULL, name_kana_ct = NULL, postal_code_ct = NULL, address_ct = NULL,
                                          phone_ct = NULL, email_ct = NULL, fax_ct = NULL, deleted_at = ?4
                     WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2) AND (?3 IS NULL OR shop_id = ?3)
                       AND deleted_at IS NULL
                     RETURNING key_id", params![id.as_str(), tenant.as_ref().map(TenantId::as_str), shop.as_ref().map(ShopId::as_str), at])
        })
        .await
    }

    pub(super) async fn insert_customer(&self, customer: CustomerRow) -> Result<(), StoreError> {
        self.write(move |c| {
            let sealed = customer.sealed.as_ref();
            let field = |i: usize| sealed.and_then(|s| s.fields[i].as_ref());
            let key_id = insert_record_key(c, customer.id.as_str(), &customer.tenant_id, "customer", sealed)?;
            c.prepare_cached(
                "INSERT INTO customers (id, tenant_id, shop_id, name_ct, name_kana_ct,
                                        postal_code_ct, address_ct, phone_ct, email_ct, fax_ct, created_at, key_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                customer.id.as_str(),
                customer.tenant_id.as_str(),
                customer.shop_id.as_ref().map(ShopId::as_str),
                field(0),
                field(1),
                field(2),
                field(3),
                field(4),
                field(5),
                field(6),
                customer.created_at,
                key_id
            ])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn customer(
        &self,
        scope: Scope<'_>,
        id: &CustomerId,
    ) -> Result<Option<CustomerRow>, StoreError> {
        let raw = self.read(|c| {
            c.prepare_cached(
                "SELECT c.id, c.tenant_id, shop_id, k.kek_version, k.wrapped_dek, name_ct, name_kana_ct, postal_code_ct,
                        address_ct, phone_ct, email_ct, fax_ct, created_at
                 FROM customers c LEFT JOIN record_keys k ON k.id = c.key_id
                 WHERE c.id = ?1 AND (?2 IS NULL OR c.tenant_id = ?2) AND (?3 IS NULL OR shop_id = ?3)",
            )?
            .query_row(params![id.as_str(), scope.tenant_str(), scope.shop_str()], raw_customer)
            .optional()
        })?;
        raw.map(RawCustomer::into_row).transpose()
    }

    pub(super) async fn insert_order(
        &self,
        o: OrderRow,
        shipping: Option<Sealed<4>>,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO orders (id, tenant_id, shop_id, customer_id, card_token, amount, currency, status,
                                     created_at, completed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                o.id.as_str(),
                o.tenant_id.as_str(),
                o.shop_id.as_str(),
                o.customer_id.as_str(),
                o.card_token.as_ref().map(CardToken::as_str),
                o.amount,
                o.currency,
                o.status,
                o.created_at,
                o.completed_at
            ])?;
            if let Some(sh) = shipping {
                let key_id = insert_record_key(c, o.id.as_str(), &o.tenant_id, "order", Some(&sh))?;
                let [name, postal, address, phone] = sh.fields;
                c.prepare_cached(
                    "INSERT INTO order_shipping (order_id, name_ct, postal_code_ct, address_ct, phone_ct, key_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![o.id.as_str(), name, postal, address, phone, key_id])?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn order(
        &self,
        scope: Scope<'_>,
        id: &OrderId,
    ) -> Result<Option<OrderView>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN cards c ON c.token = o.card_token
                 WHERE o.id = ?1 AND (?2 IS NULL OR o.tenant_id = ?2) AND (?3 IS NULL OR o.shop_id = ?3)"
            ))?
            .query_row(
                params![id.as_str(), scope.tenant_str(), scope.shop_str()],
                order_view,
            )
            .optional()
        })
    }

    pub(super) async fn orders(
        &self,
        shop: &ShopId,
        after: Option<&OrderId>,
        limit: u32,
    ) -> Result<Vec<OrderView>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN cards c ON c.token = o.card_token
                 WHERE o.shop_id = ?1
                   AND (?2 IS NULL OR (o.created_at, o.id) > (SELECT created_at, id FROM orders WHERE id = ?2 AND shop_id = ?1))
                 ORDER BY o.created_at, o.id LIMIT ?3"
            ))?
            .query_map(params![shop.as_str(), after.map(OrderId::as_str), limit], order_view)?
            .collect()
        })
    }

    pub(super) async fn complete_order(
        &self,
        scope: Scope<'_>,
        id: &OrderId,
        at: i64,
    ) -> Result<bool, StoreError> {
        let (tenant, shop, id) = (scope.tenant.cloned(), scope.shop.cloned(), id.clone());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE orders SET status = 'completed', completed_at = ?4
                 WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2) AND (?3 IS NULL OR shop_id = ?3) AND status = 'created'",
            )?
            .execute(params![id.as_str(), tenant.as_ref().map(TenantId::as_str), shop.as_ref().map(ShopId::as_str), at])
            .map(|n| n == 1)
        })
        .await
    }
}

/// Stores a record's wrapped data key in the key state (`record_keys`) and
/// returns the id its data row names it by. Ids ascend, so the row lands at
/// the table's end rather than on a random page.
fn insert_record_key<const N: usize>(
    c: &Connection,
    record: &str,
    tenant: &TenantId,
    kind: &str,
    sealed: Option<&Sealed<N>>,
) -> rusqlite::Result<Option<i64>> {
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    c.prepare_cached(
        "INSERT INTO record_keys (record_id, tenant_id, kind, kek_version, wrapped_dek) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![record, tenant.as_str(), kind, sealed.kek_version, sealed.wrapped_dek])
    // Its one foreign key is the KEK version's.
    .map_err(|err| match err {
        rusqlite::Error::SqliteFailure(e, _) if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
            rusqlite::Error::ToSqlConversionFailure(Box::new(JobFailure::KeyGone))
        }
        err => err,
    })?;
    Ok(Some(c.last_insert_rowid()))
}

/// Destroys the data key a data row names (secure_delete overwrites the freed bytes).
fn destroy_record_key(c: &Connection, key_id: Option<i64>) -> rusqlite::Result<()> {
    if let Some(id) = key_id {
        c.prepare_cached("DELETE FROM record_keys WHERE id = ?1")?
            .execute([id])?;
    }
    Ok(())
}

/// Runs `shred`, an `UPDATE … RETURNING key_id` that overwrites at most one
/// data row, and destroys the data key that row named; whether it shredded.
fn shred_row(c: &Connection, shred: &str, params: impl rusqlite::Params) -> rusqlite::Result<bool> {
    let key_id: Option<Option<i64>> = c
        .prepare_cached(shred)?
        .query_row(params, |r| r.get(0))
        .optional()?;
    if let Some(key_id) = key_id {
        destroy_record_key(c, key_id)?;
    }
    Ok(key_id.is_some())
}

/// Stores a card unless the tenant holds one with the same fingerprint, and
/// lets `shop` see it either way; inside the writer's transaction.
fn insert_card_row(c: &Connection, card: &CardRow, shop: Option<ShopId>) -> rusqlite::Result<CardInsert> {
    let sealed = card.sealed.as_ref();
    // The key first, for its id; dropped again if the tenant holds the card.
    let key_id = insert_record_key(c, card.token.as_str(), &card.tenant_id, "card", sealed)?;
    let inserted =
        c.prepare_cached(
            "INSERT INTO cards (token, tenant_id, fingerprint, brand, last4,
                                    number_ct, expiry_ct, holder_ct, created_at, shop_id, key_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (tenant_id, fingerprint) DO NOTHING",
        )?
        .execute(params![
            card.token.as_str(),
            card.tenant_id.as_str(),
            card.fingerprint.as_ref().map(|f| &f[..]),
            card.brand,
            card.last4,
            sealed.and_then(|s| s.fields[0].as_ref()),
            sealed.and_then(|s| s.fields[1].as_ref()),
            sealed.and_then(|s| s.fields[2].as_ref()),
            card.created_at,
            shop.as_ref().map(ShopId::as_str),
            key_id
        ])? == 1;
    if inserted {
        return Ok(CardInsert::Inserted);
    }
    destroy_record_key(c, key_id)?;
    let existing: String = c
        .prepare_cached("SELECT token FROM cards WHERE tenant_id = ?1 AND fingerprint = ?2")?
        .query_row(
            params![card.tenant_id.as_str(), card.fingerprint.as_ref().map(|f| &f[..])],
            |r| r.get(0),
        )?;
    let newly_visible = match shop {
        Some(shop) => {
            c.prepare_cached(
                "INSERT INTO card_shops (token, shop_id)
                     SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM cards WHERE token = ?1 AND shop_id = ?2)
                     ON CONFLICT DO NOTHING",
            )?
            .execute(params![existing, shop.as_str()])?
                == 1
        }
        None => false,
    };
    Ok(CardInsert::Existing {
        token: CardToken::from_db(existing),
        newly_visible,
    })
}

/// Applies pending migrations with foreign keys off, as SQLite's procedure for
/// schema changes that rebuild a table asks (the pragma is a no-op inside a
/// transaction); the keys are checked before the commit.
fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA foreign_keys = OFF").map_err(backend)?;
    let result = migrate_in_transaction(conn, migrations);
    conn.execute_batch("PRAGMA foreign_keys = ON").map_err(backend)?;
    result
}

fn migrate_in_transaction(conn: &mut Connection, migrations: &[Migration]) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT",
    )
    .map_err(backend)?;
    let applied: Vec<i64> = tx
        .prepare("SELECT version FROM schema_migrations")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(backend)?;
    for (version, name, sql) in pending(&applied, migrations) {
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, crate::clock::now_ms()],
        )
        .map_err(backend)?;
    }
    let dangling = tx
        .prepare("PRAGMA foreign_key_check")
        .and_then(|mut s| s.query([])?.next().map(|row| row.is_some()))
        .map_err(backend)?;
    if dangling {
        return Err(StoreError::Corrupt(
            "a migration left rows whose foreign keys dangle",
        ));
    }
    tx.commit().map_err(backend)
}

/// Inserts one key row (inside the caller's write).
fn insert_key(c: &Connection, key: &KeyRow) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO principal_keys (key_hash, principal_id, created_at, expires_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        &key.key_hash[..],
        key.principal_id.as_str(),
        key.created_at,
        key.expires_at,
        key.revoked_at
    ])?;
    Ok(())
}

fn writer_loop(
    conn: &Connection,
    jobs: &mpsc::Receiver<Job>,
    committed: &mpsc::Sender<()>,
    stats: &WriterStats,
) {
    conn.wal_hook(Some(note_wal_frames));
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len() as u64;
        let outcome = run_batch(conn, batch, &mut completions);
        if outcome.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.jobs.fetch_add(size, Ordering::Relaxed);
        metrics::counter!("anshin_sqlite_commits_total").increment(1);
        metrics::histogram!("anshin_sqlite_commit_batch_size").record(size as f64);
        for completion in completions.drain(..) {
            completion(outcome.clone());
        }
        if WAL_FRAMES.get() >= WAL_RESTART_FRAMES {
            restart_wal(conn);
        }
        let _ = committed.send(());
    }
}

thread_local! {
    /// Pages in the WAL after the last commit on this thread, as SQLite's
    /// WAL hook reports them (a plain `fn` hook: it cannot capture state).
    static WAL_FRAMES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// Copies committed WAL frames into the database file, at most every
/// [`CHECKPOINT_INTERVAL`], while commits keep coming, so that the writer's
/// restart has little left to copy. PASSIVE never blocks the writer or
/// readers; it ends when the writer does.
fn checkpoint_loop(conn: &Connection, commits: &mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        thread::sleep(CHECKPOINT_INTERVAL);
        while commits.try_recv().is_ok() {}
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {}
            Err(err) => {
                tracing::warn!(error = %err, "SQLite checkpoint failed; will retry after the next commit");
            }
        }
    }
    // Leave a short WAL behind on shutdown.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// Restarts the WAL from its start. A passive checkpoint never does while
/// readers keep arriving (and with the audit trail every read is followed by a
/// commit), so without this the WAL grows by every byte written: each commit
/// then extends the file, which makes its sync flush metadata too, and readers
/// search an ever longer WAL index. The writer does it itself, between
/// batches, once the WAL holds [`WAL_RESTART_FRAMES`] pages after a commit (a
/// checkpointer asking for the write lock starves against a busy writer, and
/// one that only looked from time to time let the WAL overshoot by however
/// much was written meanwhile). RESTART waits only for readers of older
/// snapshots (short reads).
fn restart_wal(conn: &Connection) {
    if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
        tracing::warn!(error = %err, "SQLite WAL restart failed; will retry after the next checkpoint");
    }
}

fn run_batch(conn: &Connection, batch: Vec<Job>, completions: &mut Vec<Completion>) -> Result<(), String> {
    // If the transaction cannot begin, the jobs are dropped unrun and their
    // callers see an uncommitted write.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for job in batch {
        conn.execute_batch("SAVEPOINT job").map_err(|e| e.to_string())?;
        let (failed, completion) = job(conn);
        completions.push(completion);
        let release = if failed {
            "ROLLBACK TO job; RELEASE job"
        } else {
            "RELEASE job"
        };
        conn.execute_batch(release).map_err(|e| e.to_string())?;
    }
    conn.execute_batch("COMMIT").map_err(|e| e.to_string())
}

const PRINCIPAL_COLUMNS: &str = "id, name, role, tenant_id, shop_id, allowed_ips, created_at, disabled_at";

struct RawPrincipal {
    id: String,
    name: String,
    role: String,
    tenant_id: Option<String>,
    shop_id: Option<String>,
    allowed_ips: Option<String>,
    created_at: i64,
    disabled_at: Option<i64>,
}

/// Reads [`PRINCIPAL_COLUMNS`] from the start of a row.
fn raw_principal(r: &Row<'_>) -> rusqlite::Result<RawPrincipal> {
    Ok(RawPrincipal {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        tenant_id: r.get(3)?,
        shop_id: r.get(4)?,
        allowed_ips: r.get(5)?,
        created_at: r.get(6)?,
        disabled_at: r.get(7)?,
    })
}

impl RawPrincipal {
    fn into_row(self) -> Result<PrincipalRow, StoreError> {
        Ok(PrincipalRow {
            id: PrincipalId::from_db(self.id),
            name: self.name,
            role: Role::parse(&self.role).ok_or(StoreError::Corrupt("unknown role"))?,
            tenant_id: self.tenant_id.map(TenantId::from_db),
            shop_id: self.shop_id.map(ShopId::from_db),
            allowed_ips: allow_list(self.allowed_ips)?,
            created_at: self.created_at,
            disabled_at: self.disabled_at,
        })
    }
}

fn tenant_row(r: &Row<'_>) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: TenantId::from_db(r.get(0)?),
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

fn shop_row(r: &Row<'_>) -> rusqlite::Result<ShopRow> {
    Ok(ShopRow {
        id: ShopId::from_db(r.get(0)?),
        tenant_id: TenantId::from_db(r.get(1)?),
        name: r.get(2)?,
        created_at: r.get(3)?,
    })
}

struct RawCard {
    row: CardRow,
    fingerprint: Option<Vec<u8>>,
    kek_version: Option<i64>,
    wrapped_dek: Option<Vec<u8>>,
    fields: [Option<Vec<u8>>; 3],
}

fn raw_card(r: &Row<'_>) -> rusqlite::Result<RawCard> {
    Ok(RawCard {
        row: CardRow {
            token: CardToken::from_db(r.get(0)?),
            tenant_id: TenantId::from_db(r.get(1)?),
            fingerprint: None,
            brand: r.get(3)?,
            last4: r.get(4)?,
            sealed: None,
            created_at: r.get(10)?,
            deleted_at: r.get(11)?,
        },
        fingerprint: r.get(2)?,
        kek_version: r.get(5)?,
        wrapped_dek: r.get(6)?,
        fields: [r.get(7)?, r.get(8)?, r.get(9)?],
    })
}

impl RawCard {
    fn into_row(self) -> Result<CardRow, StoreError> {
        let mut row = self.row;
        row.fingerprint = fingerprint_array(self.fingerprint)?;
        row.sealed = sealed_from(self.kek_version, self.wrapped_dek, self.fields)?;
        Ok(row)
    }
}

struct RawCustomer {
    id: String,
    tenant_id: String,
    shop_id: Option<String>,
    kek_version: Option<i64>,
    wrapped_dek: Option<Vec<u8>>,
    fields: [Option<Vec<u8>>; 7],
    created_at: i64,
}

fn raw_customer(r: &Row<'_>) -> rusqlite::Result<RawCustomer> {
    Ok(RawCustomer {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        shop_id: r.get(2)?,
        kek_version: r.get(3)?,
        wrapped_dek: r.get(4)?,
        fields: [
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
        ],
        created_at: r.get(12)?,
    })
}

impl RawCustomer {
    fn into_row(self) -> Result<CustomerRow, StoreError> {
        Ok(CustomerRow {
            id: CustomerId::from_db(self.id),
            tenant_id: TenantId::from_db(self.tenant_id),
            shop_id: self.shop_id.map(ShopId::from_db),
            sealed: sealed_from(self.kek_version, self.wrapped_dek, self.fields)?,
            created_at: self.created_at,
        })
    }
}

const ORDER_COLUMNS: &str = "o.id, o.tenant_id, o.shop_id, o.customer_id, o.card_token, o.amount, o.currency,
                             o.status, o.created_at, o.completed_at, c.brand, c.last4";

fn order_view(r: &Row<'_>) -> rusqlite::Result<OrderView> {
    Ok(OrderView {
        order: OrderRow {
            id: OrderId::from_db(r.get(0)?),
            tenant_id: TenantId::from_db(r.get(1)?),
            shop_id: ShopId::from_db(r.get(2)?),
            customer_id: CustomerId::from_db(r.get(3)?),
            card_token: r.get::<_, Option<String>>(4)?.map(CardToken::from_db),
            amount: r.get(5)?,
            currency: r.get(6)?,
            status: r.get(7)?,
            created_at: r.get(8)?,
            completed_at: r.get(9)?,
        },
        card_brand: r.get(10)?,
        card_last4: r.get(11)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// An install from before the key state kept each data key in its row:
    /// migrating moves every one into `record_keys`, byte for byte, each data
    /// row naming its key by id, and drops the old columns.
    #[test]
    fn data_keys_move_from_the_rows_into_the_key_state() {
        let mut conn = Connection::open_in_memory().expect("open");
        let before = MIGRATIONS
            .iter()
            .position(|m| m.1 == "key_store")
            .expect("key_store");
        migrate(&mut conn, &MIGRATIONS[..before]).expect("old schema");
        conn.execute_batch(
            "INSERT INTO tenants VALUES ('ten_a', 'a', 1);
             INSERT INTO tenant_keys VALUES ('ten_a', 'kek', 1, x'01', 1), ('ten_a', 'kek', 2, x'02', 2);
             INSERT INTO shops VALUES ('shp_a', 'ten_a', 's', 1);
             INSERT INTO cards (token, tenant_id, brand, last4, kek_version, wrapped_dek, number_ct, created_at)
                 VALUES ('card_a', 'ten_a', 'visa', '1111', 1, x'c1', x'aa', 1),
                        ('card_gone', 'ten_a', 'visa', '2222', NULL, NULL, NULL, 1);
             INSERT INTO customers (id, tenant_id, kek_version, wrapped_dek, name_ct, created_at)
                 VALUES ('cus_a', 'ten_a', 2, x'c2', x'bb', 1);
             INSERT INTO orders (id, tenant_id, shop_id, customer_id, amount, currency, status, created_at)
                 VALUES ('ord_a', 'ten_a', 'shp_a', 'cus_a', 100, 'JPY', 'created', 1);
             INSERT INTO order_shipping (order_id, kek_version, wrapped_dek, name_ct) VALUES ('ord_a', 1, x'c3', x'cc');",
        )
        .expect("old rows");
        migrate(&mut conn, MIGRATIONS).expect("migrate");
        let keys: Vec<(String, String, String, i64, Vec<u8>)> = conn
            .prepare(
                "SELECT k.record_id, k.tenant_id, k.kind, k.kek_version, k.wrapped_dek FROM record_keys k
                 JOIN (SELECT token AS record, key_id FROM cards UNION ALL SELECT id, key_id FROM customers
                       UNION ALL SELECT order_id, key_id FROM order_shipping) d
                   ON d.key_id = k.id AND d.record = k.record_id
                 ORDER BY k.record_id",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
            })
            .expect("keys");
        let row =
            |id: &str, kind: &str, v: i64, key: u8| (id.into(), "ten_a".into(), kind.into(), v, vec![key]);
        assert_eq!(
            keys,
            [
                row("card_a", "card", 1, 0xc1),
                row("cus_a", "customer", 2, 0xc2),
                row("ord_a", "order", 1, 0xc3)
            ]
        );
        for table in ["cards", "customers", "order_shipping"] {
            let gone = conn.prepare(&format!("SELECT wrapped_dek FROM {table}")).is_err();
            assert!(gone, "{table} no longer holds data keys");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("t.db")).await.expect("open");
        let writes = 400u64;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..writes {
            let store = store.clone();
            tasks.spawn(async move { store.meta_init(&format!("k{i}"), vec![1]).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task").expect("write committed");
        }
        let stats = &store.vault.stats;
        let (commits, jobs) = (
            stats.commits.load(Ordering::Relaxed),
            stats.jobs.load(Ordering::Relaxed),
        );
        assert!(jobs >= writes, "every write went through the writer");
        assert!(
            commits < jobs / 2,
            "{jobs} writes took {commits} commits: they should share"
        );
        for i in [0, writes - 1] {
            assert_eq!(store.meta(&format!("k{i}")).await.expect("read"), Some(vec![1]));
        }
    }

    /// A passive checkpoint cannot reset the WAL while reads keep arriving;
    /// before the restart the WAL of a busy server grew by every byte written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wal_stays_bounded_while_readers_keep_arriving() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.expect("open");
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, done) = (store.clone(), done.clone());
                thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        store
                            .read(|c| c.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0)))
                            .expect("read");
                    }
                })
            })
            .collect();
        // 64 MiB through the WAL, four times the restart threshold.
        let value = vec![7u8; 64 * 1024];
        for i in 0..1024 {
            store
                .meta_init(&format!("k{i}"), value.clone())
                .await
                .expect("write");
        }
        done.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.join().expect("reader");
        }
        // Without restarts the WAL holds all 64 MiB (and its frame
        // headers); with them, the threshold (16 MiB) and at most one
        // batch of writes past it, whatever the machine's load.
        let wal = std::fs::metadata(path.with_extension("db-wal"))
            .expect("wal")
            .len();
        assert!(wal < 20 << 20, "the WAL grew to {} MiB", wal >> 20);
    }

    fn entry(n: u8) -> crate::db::audit::NewAuditEntry {
        crate::db::audit::NewAuditEntry {
            time_ms: i64::from(n),
            tenant_id: Some("ten_t".into()),
            principal_id: None,
            kind: "card.tokenize",
            outcome: "success",
            leaf_hash: [n; 32],
            entry: vec![n; 8],
            subjects: vec![[n; 32], [n.wrapping_add(1); 32]],
        }
    }

    /// A crash after the log took the outbox's entries but before the outbox
    /// let them go leaves them in both: the next move must not log them twice.
    #[tokio::test]
    async fn an_interrupted_outbox_move_is_not_taken_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("t.db")).await.expect("open");
        let put = |n: u8| store.write(move |c| audit::insert_outbox(c, &entry(n)));
        put(1).await.expect("outbox");
        put(2).await.expect("outbox");
        assert!(store.audit_unsequenced().await.expect("read"));
        assert_eq!(store.audit_sequence(100).await.expect("move"), 2);
        assert!(!store.audit_unsequenced().await.expect("read"));
        // As if the outbox's delete had never committed: the same rows, same ids.
        store
            .write(|c| {
                c.execute_batch("INSERT INTO audit_outbox SELECT 1, 1, NULL, NULL, 'card.tokenize', 'success', zeroblob(32), x'01', x''")?;
                c.execute_batch("INSERT INTO audit_outbox SELECT 2, 2, NULL, NULL, 'card.tokenize', 'success', zeroblob(32), x'02', x''")
            })
            .await
            .expect("replay");
        put(3).await.expect("outbox");
        assert_eq!(store.audit_sequence(100).await.expect("move"), 3);
        assert_eq!(
            store.audit_sequenced().await.expect("size"),
            3,
            "1 and 2 once, then 3"
        );
        let entries = store.audit_entries(0, 3).await.expect("entries");
        assert_eq!(entries, vec![vec![1u8; 8], vec![2u8; 8], vec![3u8; 8]]);
        let history = store
            .audit_find(crate::db::audit::AuditFilter {
                subject: Some([4; 32]),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("find");
        assert_eq!(history.entries.len(), 1, "subjects move with their entry");
        assert_eq!(history.entries[0].idx, Some(2));
    }

    /// Installs from before the log had its own file kept it in the vault's:
    /// opening one moves it, entries, places and all, and leaves no copy behind.
    #[tokio::test]
    async fn a_log_kept_in_the_vault_file_is_adopted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("anshin.db");
        drop(SqliteStore::open(&path).await.expect("open"));
        // Rebuild the old layout by hand: the log's tables in the vault's file.
        let legacy = Connection::open(&path).expect("open vault");
        legacy
            .execute_batch(include_str!("../../migrations/sqlite/0002_audit.sql"))
            .expect("legacy tables");
        for idx in 0..3u8 {
            legacy
                .execute(
                    "INSERT INTO audit_entries VALUES (?1, 0, 'ten_t', NULL, 'card.read', 'success', ?2, ?3)",
                    params![idx, vec![idx; 32], vec![idx; 4]],
                )
                .expect("legacy entry");
        }
        legacy
            .execute("INSERT INTO audit_subjects VALUES (?1, 1)", [vec![9u8; 32]])
            .expect("legacy subject");
        drop(legacy);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", log_path(&path).display()));
        }
        for _ in 0..2 {
            let store = SqliteStore::open(&path).await.expect("reopen");
            assert_eq!(store.audit_sequenced().await.expect("size"), 3);
            assert_eq!(
                store.audit_entries(1, 2).await.expect("entry"),
                vec![vec![1u8; 4]]
            );
            let history = store
                .audit_find(crate::db::audit::AuditFilter {
                    subject: Some([9; 32]),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .expect("find");
            assert_eq!(history.entries.len(), 1);
            let left: i64 = store
                .read(|c| {
                    c.query_row(
                        "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'audit_%' AND name != 'audit_outbox'",
                        [],
                        |r| r.get(0),
                    )
                })
                .expect("schema");
            assert_eq!(left, 0, "no copy of the log stays in the vault's file");
        }
    }

    #[tokio::test]
    async fn a_failing_job_does_not_undo_its_batch_neighbours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("t.db")).await.expect("open");
        let bad = store.write(|c| c.execute("INSERT INTO no_such_table VALUES (1)", []).map(|_| ()));
        let good = store.meta_init("survives", vec![2]);
        let (bad, good) = tokio::join!(bad, good);
        assert!(bad.is_err());
        assert_eq!(good.expect("committed"), vec![2]);
        assert_eq!(store.meta("survives").await.expect("read"), Some(vec![2]));
    }
}
