//! `anshin scan postgres://…` and `anshin scan sqlite://PATH`: databases read
//! directly, table by table, each row streamed into
//! [`anshin_scan::TableScan`] (which scans every cell with its column name as
//! header, as a CSV column is scanned).
//!
//! The drivers are the ones the server already uses (tokio-postgres with the
//! store's TLS and libpq's `sslmode`, see [`crate::db::pg_connect`];
//! rusqlite). Reading is read-only: PostgreSQL tables are read in a
//! `READ ONLY` transaction through a portal fetched 512 rows at a time, SQLite
//! files are opened read-only and stepped row by row, so memory does not grow
//! with the table. Connection passwords never reach a report or a message:
//! databases are named by a URL rebuilt from user, host, port and database.

use std::path::PathBuf;

use anshin_scan::{Discovery, ObjectReport, Status, TableColumn, table_path};

use crate::db::pg_connect::{PgConnect, PgUrlError, tls_failure};
use crate::error::{Error, ErrorKind, Result};

/// Rows fetched per round trip from PostgreSQL.
const FETCH_ROWS: i32 = 512;

/// A database given as a scan input.
pub enum Database {
    /// A PostgreSQL server.
    Postgres {
        // Boxed: a configuration is large beside a path.
        connect: Box<PgConnect>,
        /// The URL without password, for messages and the inventory's inputs.
        display: String,
        /// The URL without user: the database in report paths, the same
        /// whichever role scans it (inventories compare paths run to run).
        location: String,
    },
    /// A SQLite file.
    Sqlite { path: PathBuf, display: String },
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display())
    }
}

fn bad_url(message: &'static str) -> Error {
    Error::new(ErrorKind::Invalid, "scan_db_url", message)
}

impl Database {
    /// Recognises a database URL among the scan inputs: `Ok(None)` for
    /// anything that is not one (a path). Malformed URLs are an error that
    /// does not repeat the URL (it may hold a password).
    pub fn parse(arg: &str) -> Result<Option<Self>> {
        if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            let connect = PgConnect::parse(arg).map_err(|e| match e {
                PgUrlError::Malformed(_) => bad_url(
                    "not a valid PostgreSQL URL; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…] / PostgreSQL の URL が不正です",
                ),
                e => e.into(),
            })?;
            let config = connect.config();
            if config.get_hosts().is_empty() {
                return Err(bad_url(
                    "the PostgreSQL URL names no host; expected postgres://USER@HOST/DATABASE / PostgreSQL の URL にホストがありません",
                ));
            }
            return Ok(Some(Self::Postgres {
                display: pg_display(config, true),
                location: pg_display(config, false),
                connect: Box::new(connect),
            }));
        }
        if let Some(rest) = arg.strip_prefix("sqlite:") {
            // sqlite://PATH (relative) and sqlite:///abs/path, as sqlx reads them.
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() || path.contains(['?', '#']) {
                return Err(bad_url(
                    "not a valid SQLite URL; expected sqlite://PATH (a file, no query string) / SQLite の URL が不正です",
                ));
            }
            return Ok(Some(Self::Sqlite {
                path: PathBuf::from(path),
                // Masked as report paths are: a file named after a card number.
                display: anshin_scan::mask_name(&format!("sqlite://{path}")),
            }));
        }
        Ok(None)
    }

    /// The URL as reports show it (never with a password).
    pub fn display(&self) -> &str {
        match self {
            Self::Postgres { display, .. } | Self::Sqlite { display, .. } => display,
        }
    }
}

/// `postgres://[user@]host:port/database`, built from the parsed
/// configuration so that no password (in the user info or a `password=`
/// parameter) survives.
fn pg_display(config: &tokio_postgres::Config, with_user: bool) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = config.get_ports().get(i).or(config.get_ports().first()).copied();
            match port {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let user = config
        .get_user()
        .filter(|_| with_user)
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    // PostgreSQL's own default: the database named after the user.
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

/// Which tables and how many rows of each.
#[derive(Debug, Clone, Default)]
pub struct DbOptions {
    /// Tables to read (schema-qualified or on the search path for PostgreSQL);
    /// empty: every user table.
    pub tables: Vec<String>,
    /// Most rows read from each table.
    pub row_limit: Option<u64>,
}

fn unreachable(db: &Database) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "scan_db_unreachable",
        format!(
            "cannot connect to or open the database {}; check the URL, that it is running and the credentials / データベースに接続できません",
            db.display()
        ),
    )
}

/// A PostgreSQL connection that failed: refused at TLS (the reason says
/// what to do) or otherwise unreachable.
fn connect_failed(db: &Database, err: tokio_postgres::Error) -> Error {
    match tls_failure(&err) {
        Some(why) => Error::new(
            ErrorKind::Unavailable,
            "scan_db_tls",
            format!("no secure connection to {}: {why}", db.display()),
        ),
        None => unreachable(db),
    }
    .with_cause(err)
}

fn unknown_table(db: &Database) -> Error {
    Error::new(
        ErrorKind::NotFound,
        "scan_db_unknown_table",
        format!(
            "a --table is not a table or view of {} (PostgreSQL: schema.table, or a table on the search path) / 指定したテーブルがありません",
            db.display()
        ),
    )
}

/// Double-quoted SQL identifier (the same quoting in PostgreSQL and SQLite).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The reason for a table that stopped at the row limit.
fn limit_reason(limit: u64) -> String {
    format!("stopped at --row-limit ({limit} rows)")
}

/// Scans every selected table of `db`, handing each table's report to `emit`.
/// Connection and unknown-table errors end the scan before any table is
/// read; a table that fails while being read is reported partial or skipped.
pub async fn scan(
    db: &Database,
    options: &DbOptions,
    discovery: &Discovery,
    emit: &mut dyn FnMut(ObjectReport),
) -> Result<()> {
    match db {
        Database::Postgres {
            connect, location, ..
        } => postgres(connect, db, location, options, discovery, emit).await,
        Database::Sqlite { path, display } => sqlite(path, db, display, options, discovery, emit),
    }
}

// ---------------------------------------------------------------- PostgreSQL

struct PgTable {
    oid: u32,
    schema: String,
    name: String,
    can_select: bool,
}

/// How a column is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Cast to text and scanned: string types, json, xml, integers, numeric,
    /// arrays of those.
    Text,
    /// bytea, scanned where it is valid UTF-8.
    Bytes,
    /// Not scanned (dates, booleans, floats, geometry…).
    Skip,
}

fn pg_read(typ: &str, category: &str, element: &str) -> Read {
    const TEXTUAL: [&str; 7] = ["json", "jsonb", "xml", "int2", "int4", "int8", "numeric"];
    match (typ, category) {
        ("bytea", _) => Read::Bytes,
        (_, "S") => Read::Text,
        (t, _) if TEXTUAL.contains(&t) => Read::Text,
        // Arrays of strings or integers (text[] of phone numbers), read as `{…}`.
        (_, "A")
            if matches!(element, "text" | "varchar" | "bpchar" | "name" | "citext")
                || TEXTUAL.contains(&element) =>
        {
            Read::Text
        }
        _ => Read::Skip,
    }
}

async fn postgres(
    connect: &PgConnect,
    db: &Database,
    location: &str,
    options: &DbOptions,
    discovery: &Discovery,
    emit: &mut dyn FnMut(ObjectReport),
) -> Result<()> {
    let (mut client, connection) = connect.connect().await.map_err(|e| connect_failed(db, e))?;
    let connection = tokio::spawn(connection);
    let tables = pg_tables(&client, db, options).await?;
    for table in tables {
        let path = table_path(location, Some(&table.schema), &table.name);
        if !table.can_select {
            emit(ObjectReport::skipped_table(
                path,
                "no SELECT privilege on the table",
            ));
            continue;
        }
        emit(pg_table(&mut client, &table, &path, options, discovery).await);
    }
    drop(client);
    // The connection task ends when the client is dropped.
    let _ = connection.await;
    Ok(())
}

async fn pg_tables(
    client: &tokio_postgres::Client,
    db: &Database,
    options: &DbOptions,
) -> Result<Vec<PgTable>> {
    let failed = |e: tokio_postgres::Error| unreachable(db).with_cause(e);
    let to_table = |r: &tokio_postgres::Row| PgTable {
        oid: r.get(0),
        schema: r.get(1),
        name: r.get(2),
        can_select: r.get(3),
    };
    if options.tables.is_empty() {
        // Every table, partitioned table (its partitions through it, once) and
        // materialized view outside the system schemas.
        let rows = client
            .query(
                "SELECT c.oid, n.nspname::text, c.relname::text, has_table_privilege(c.oid, 'SELECT')
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
                    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
                  ORDER BY 2, 3",
                &[],
            )
            .await
            .map_err(failed)?;
        return Ok(rows.iter().map(to_table).collect());
    }
    let mut out: Vec<PgTable> = Vec::new();
    for name in &options.tables {
        // to_regclass resolves quoting and the search path, and is NULL for an
        // unknown name; a malformed name (a.b.c.d) is an error: unknown too.
        let row = client
            .query_opt(
                "SELECT c.oid, n.nspname::text, c.relname::text, has_table_privilege(c.oid, 'SELECT')
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm', 'v', 'f')",
                &[name],
            )
            .await;
        let table = match row {
            Ok(Some(row)) => to_table(&row),
            Ok(None) => return Err(unknown_table(db)),
            Err(e) if e.as_db_error().is_some() => return Err(unknown_table(db)),
            Err(e) => return Err(failed(e)),
        };
        if !out.iter().any(|t| t.oid == table.oid) {
            out.push(table);
        }
    }
    Ok(out)
}

/// The reason a PostgreSQL read failed, without the server's message (it can
/// quote a value): the SQLSTATE, or that the connection failed.
fn pg_reason(e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(code) if *code == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE => {
            "reading failed: permission denied (SQLSTATE 42501)".to_owned()
        }
        Some(code) => format!("reading failed: SQLSTATE {}", code.code()),
        None => "reading failed: the connection broke".to_owned(),
    }
}

async fn pg_table(
    client: &mut tokio_postgres::Client,
    table: &PgTable,
    path: &str,
    options: &DbOptions,
    discovery: &Discovery,
) -> ObjectReport {
    let columns = match client
        .query(
            "SELECT a.attname::text,
                    COALESCE(b.typname, t.typname)::text,
                    COALESCE(b.typcategory, t.typcategory)::text,
                    COALESCE(el.typname::text, ''),
                    -- 1-based place in the key (an int2vector's subscripts start at 0).
                    COALESCE(array_position(pk.indkey::int2[], a.attnum)
                             - array_lower(pk.indkey::int2[], 1) + 1, 0)::int4
               FROM pg_attribute a
               JOIN pg_type t ON t.oid = a.atttypid
               LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype
               LEFT JOIN pg_type el ON el.oid = COALESCE(b.typelem, t.typelem)
                                   AND COALESCE(b.typcategory, t.typcategory) = 'A'
               LEFT JOIN pg_index pk ON pk.indrelid = a.attrelid AND pk.indisprimary
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&table.oid],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => return ObjectReport::skipped_table(path.to_owned(), pg_reason(&e)),
    };
    let mut select = Vec::with_capacity(columns.len());
    let mut reads = Vec::with_capacity(columns.len());
    let mut table_columns = Vec::with_capacity(columns.len());
    let mut keys: Vec<(i32, String)> = Vec::new();
    for c in &columns {
        let name: String = c.get(0);
        let natural = pg_read(c.get(1), c.get(2), c.get(3));
        let key_pos: i32 = c.get(4);
        let q = ident(&name);
        // Key columns are always read as text (any type casts to text) for the
        // row key; only text-like ones are scanned as well.
        let read = if key_pos > 0 { Read::Text } else { natural };
        select.push(match read {
            Read::Text => format!("{q}::text"),
            Read::Bytes => q.clone(),
            Read::Skip => "NULL::text".to_owned(),
        });
        if key_pos > 0 {
            // Qualified: a bare name would sort by the text cast of the output column.
            keys.push((key_pos, format!("t.{q}")));
        }
        reads.push(read);
        table_columns.push(
            TableColumn::new(name)
                .scan(natural != Read::Skip && natural == read)
                .key(key_pos > 0),
        );
    }
    keys.sort();
    let order = if keys.is_empty() {
        String::new()
    } else {
        let keys: Vec<&str> = keys.iter().map(|(_, q)| q.as_str()).collect();
        format!(" ORDER BY {}", keys.join(", "))
    };
    let sql = format!(
        "SELECT {} FROM {}.{} AS t{order} LIMIT $1",
        if select.is_empty() {
            "1".to_owned()
        } else {
            select.join(", ")
        },
        ident(&table.schema),
        ident(&table.name)
    );
    // One more row than the limit tells whether the limit cut the table short.
    let fetch_limit: Option<i64> = options
        .row_limit
        .map(|n| i64::try_from(n.saturating_add(1)).unwrap_or(i64::MAX));
    let mut scan = discovery.table(path, &table_columns);
    let result: Result<(), tokio_postgres::Error> = async {
        let tx = client.build_transaction().read_only(true).start().await?;
        let statement = tx.prepare(&sql).await?;
        let portal = tx.bind(&statement, &[&fetch_limit]).await?;
        'fetch: loop {
            let rows = tx.query_portal(&portal, FETCH_ROWS).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                if let Some(limit) = options.row_limit
                    && scan.rows() as u64 >= limit
                {
                    scan.degrade(Status::Partial, limit_reason(limit));
                    break 'fetch;
                }
                let mut cells: Vec<Option<&str>> = Vec::with_capacity(reads.len());
                for (i, read) in reads.iter().enumerate() {
                    let cell = match read {
                        Read::Text => row.try_get::<_, Option<&str>>(i)?,
                        // Binary that is not UTF-8 text (images, ciphertext) is not scanned.
                        Read::Bytes => row
                            .try_get::<_, Option<&[u8]>>(i)?
                            .and_then(|b| std::str::from_utf8(b).ok()),
                        Read::Skip => None,
                    };
                    cells.push(cell);
                }
                scan.row(&cells);
            }
        }
        tx.rollback().await
    }
    .await;
    if let Err(e) = result {
        scan.fail(pg_reason(&e));
    }
    scan.finish()
}

// -------------------------------------------------------------------- SQLite

fn sqlite_reason(e: &rusqlite::Error) -> String {
    // SQLite's own description of the error code, never the message (which
    // can quote SQL).
    match e.sqlite_error() {
        Some(code) => format!("reading failed: {code}"),
        None => "reading failed".to_owned(),
    }
}

fn sqlite(
    path: &std::path::Path,
    db: &Database,
    display: &str,
    options: &DbOptions,
    discovery: &Discovery,
    emit: &mut dyn FnMut(ObjectReport),
) -> Result<()> {
    use rusqlite::OpenFlags;
    let failed = |e: rusqlite::Error| unreachable(db).with_cause(e);
    // Read-only and never created: a typo must not leave an empty database behind.
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed)?;
    let all: Vec<(String, String)> = {
        // Reading the schema is also the check that the file is a database.
        let mut stmt = conn
            .prepare(
                "SELECT name, type FROM sqlite_schema
                  WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                  ORDER BY name",
            )
            .map_err(failed)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(failed)?
            .collect::<rusqlite::Result<_>>()
            .map_err(failed)?
    };
    let tables: Vec<String> = if options.tables.is_empty() {
        all.into_iter()
            .filter(|(_, kind)| kind == "table")
            .map(|(name, _)| name)
            .collect()
    } else {
        let mut out: Vec<String> = Vec::new();
        for wanted in &options.tables {
            // SQLite table names are case-insensitive (ASCII).
            let found = all
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(name, _)| name.clone())
                .ok_or_else(|| unknown_table(db))?;
            if !out.contains(&found) {
                out.push(found);
            }
        }
        out
    };
    for table in tables {
        let path = table_path(display, None, &table);
        emit(sqlite_table(&conn, &table, &path, options, discovery));
    }
    Ok(())
}

fn sqlite_table(
    conn: &rusqlite::Connection,
    table: &str,
    path: &str,
    options: &DbOptions,
    discovery: &Discovery,
) -> ObjectReport {
    let columns: rusqlite::Result<Vec<(String, i64)>> = conn
        .prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")
        .and_then(|mut s| s.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?.collect());
    let columns = match columns {
        Ok(c) => c,
        Err(e) => return ObjectReport::skipped_table(path.to_owned(), sqlite_reason(&e)),
    };
    let mut keys: Vec<(i64, String)> = columns
        .iter()
        .filter(|(_, pk)| *pk > 0)
        .map(|(name, pk)| (*pk, ident(name)))
        .collect();
    keys.sort();
    let order = if keys.is_empty() {
        String::new()
    } else {
        let keys: Vec<&str> = keys.iter().map(|(_, q)| q.as_str()).collect();
        format!(" ORDER BY {}", keys.join(", "))
    };
    let select: Vec<String> = columns.iter().map(|(name, _)| ident(name)).collect();
    let sql = format!(
        "SELECT {} FROM {}{order} LIMIT ?1",
        if select.is_empty() {
            "1".to_owned()
        } else {
            select.join(", ")
        },
        ident(table)
    );
    let table_columns: Vec<TableColumn> = columns
        .iter()
        .map(|(name, pk)| TableColumn::new(name.clone()).key(*pk > 0))
        .collect();
    // SQLite's LIMIT -1 is no limit; one row more than the limit tells whether it cut.
    let fetch_limit: i64 = options
        .row_limit
        .map_or(-1, |n| i64::try_from(n.saturating_add(1)).unwrap_or(i64::MAX));
    let mut scan = discovery.table(path, &table_columns);
    let result: rusqlite::Result<()> = (|| {
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([fetch_limit])?;
        let mut cells: Vec<Option<String>> = Vec::with_capacity(columns.len());
        while let Some(row) = rows.next()? {
            if let Some(limit) = options.row_limit
                && scan.rows() as u64 >= limit
            {
                scan.degrade(Status::Partial, limit_reason(limit));
                break;
            }
            cells.clear();
            for (i, (_, pk)) in columns.iter().enumerate() {
                use rusqlite::types::ValueRef;
                // Typed per value: SQLite columns hold whatever was stored.
                let cell = match row.get_ref(i)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(n) => Some(n.to_string()),
                    // Floats cannot hold a 16-digit number exactly: only a key is shown.
                    ValueRef::Real(x) => (*pk > 0).then(|| x.to_string()),
                    ValueRef::Text(b) | ValueRef::Blob(b) => std::str::from_utf8(b).ok().map(str::to_owned),
                };
                cells.push(cell);
            }
            let refs: Vec<Option<&str>> = cells.iter().map(Option::as_deref).collect();
            scan.row(&refs);
            // Cells hold raw values: wipe them before the buffer is reused.
            for cell in cells.iter_mut().flatten() {
                zeroize::Zeroize::zeroize(cell);
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        scan.fail(sqlite_reason(&e));
    }
    scan.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let db = Database::parse("postgres://app:s3cret@db.example:6543/shop?password=other")
            .expect("ok")
            .expect("a database");
        assert_eq!(db.display(), "postgres://app@db.example:6543/shop");
        assert!(!format!("{db:?}").contains("s3cret"));
        assert!(
            matches!(&db, Database::Postgres { location, .. } if location == "postgres://db.example:6543/shop")
        );
        let db = Database::parse("postgresql://app@db/shop")
            .expect("ok")
            .expect("db");
        assert_eq!(db.display(), "postgres://app@db:5432/shop");
        let db = Database::parse("sqlite:///tmp/x.db").expect("ok").expect("db");
        assert!(matches!(&db, Database::Sqlite { path, .. } if path == std::path::Path::new("/tmp/x.db")));
        let db = Database::parse("sqlite://data/x.db").expect("ok").expect("db");
        assert!(matches!(&db, Database::Sqlite { path, .. } if path == std::path::Path::new("data/x.db")));
        assert!(Database::parse("./exports").expect("ok").is_none());
        assert!(Database::parse("-").expect("ok").is_none());
        let err = Database::parse("postgres://app:s3cret@db:notaport/x").expect_err("bad port");
        assert_eq!(err.code(), "scan_db_url");
        assert!(!err.to_string().contains("s3cret"));
        assert_eq!(
            Database::parse("sqlite://").expect_err("empty").code(),
            "scan_db_url"
        );
        assert_eq!(
            Database::parse("sqlite://x.db?mode=rw")
                .expect_err("query")
                .code(),
            "scan_db_url"
        );
    }

    #[test]
    fn column_types_read() {
        assert!(pg_read("varchar", "S", "") == Read::Text);
        assert!(pg_read("int8", "N", "") == Read::Text);
        assert!(pg_read("numeric", "N", "") == Read::Text);
        assert!(pg_read("jsonb", "U", "") == Read::Text);
        assert!(pg_read("bytea", "U", "") == Read::Bytes);
        assert!(pg_read("_text", "A", "text") == Read::Text);
        assert!(pg_read("_int8", "A", "int8") == Read::Text);
        assert!(pg_read("float8", "N", "") == Read::Skip);
        assert!(pg_read("date", "D", "") == Read::Skip);
        assert!(pg_read("_bytea", "A", "bytea") == Read::Skip);
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
