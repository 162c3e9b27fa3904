//! `anshin restore --verify SOURCE`: checks a data backup against the current
//! key state. SOURCE is a directory written by `anshin backup`, or a
//! PostgreSQL database into which a data dump (`pg_dump
//! --exclude-table-data=record_keys --exclude-table-data=tenant_keys`) was
//! restored. Every live record in the backup is opened with the data key the
//! key state holds for it now; a record whose key was destroyed after the
//! backup (crypto-shredded) is reported, and so is one that does not decrypt.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::app::App;
use crate::config::Config;
use crate::db::keys::RecordKeyRow;
use crate::db::pg_connect::{PgConnect, tls_failure};
use crate::db::retention::shipping_field;
use crate::db::{Sealed, card_field, customer_field};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::TenantId;
use crate::vault::keys::RecordKind;
use crate::vault::rotation::REWRAP_BATCH;

/// One record of the backup: the id of its data key and its sealed fields.
struct BackedUp {
    kind: RecordKind,
    id: String,
    tenant: TenantId,
    key_id: Option<i64>,
    fields: Vec<Option<Vec<u8>>>,
}

/// The live records of each kind, with their sealed fields in the order of
/// the kind's field names; the same SQL on both backends.
const QUERIES: [(RecordKind, usize, &str); 3] = [
    (
        RecordKind::Card,
        3,
        "SELECT token, tenant_id, key_id, number_ct, expiry_ct, holder_ct FROM cards WHERE deleted_at IS NULL",
    ),
    (
        RecordKind::Customer,
        7,
        "SELECT id, tenant_id, key_id, name_ct, name_kana_ct, postal_code_ct, address_ct, phone_ct, email_ct, fax_ct
         FROM customers WHERE deleted_at IS NULL",
    ),
    (
        RecordKind::Order,
        4,
        "SELECT s.order_id, o.tenant_id, s.key_id, s.name_ct, s.postal_code_ct, s.address_ct, s.phone_ct
         FROM order_shipping s JOIN orders o ON o.id = s.order_id WHERE s.purged_at IS NULL",
    ),
];

/// A record the current keys cannot open.
#[derive(Debug, Serialize)]
struct Unreadable {
    kind: &'static str,
    id: String,
    /// `key_destroyed` (no data key in the key state: deleted after the
    /// backup) or `does_not_decrypt` (a key, but the ciphertext fails).
    reason: &'static str,
}

#[derive(Debug, Serialize)]
struct Report {
    backup: String,
    records: u64,
    readable: u64,
    unreadable: Vec<Unreadable>,
}

/// Verifies the data backup `source`; the error `backup_unreadable_records`
/// (exit code 8) if any record does not decrypt.
pub async fn run(config: &Config, source: &str, json: bool) -> Result<()> {
    let location = config.location();
    let records = if source.starts_with("postgres://") || source.starts_with("postgresql://") {
        read_postgres(source).await?
    } else {
        let backup = Path::new(source).join("anshin.db");
        if !backup.is_file() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "not_a_backup",
                format!(
                    "{source} holds no anshin.db: give a directory written by `anshin backup`, or the postgres:// \
                     URL of a database restored from pg_dump's output / バックアップを指定してください"
                ),
            ));
        }
        read_sqlite(&backup)?
    };
    let app = App::open(&location).await?;
    let keys = current_keys(&app, &records).await?;
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(records.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut report = Report {
        backup: redacted(source),
        records: records.len() as u64,
        readable: 0,
        unreadable: Vec::new(),
    };
    for record in records {
        bar.inc(1);
        let reason = match opens(&app, &record, &keys).await {
            Ok(()) => {
                report.readable += 1;
                continue;
            }
            Err(reason) => reason,
        };
        report.unreadable.push(Unreadable {
            kind: record.kind.as_str(),
            id: record.id,
            reason,
        });
    }
    bar.finish_and_clear();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(Error::internal)?
        );
    } else {
        println!(
            "{} records in the backup; {} decrypt with the current keys, {} do not.",
            report.records,
            report.readable,
            report.unreadable.len()
        );
        for u in &report.unreadable {
            println!("  {} {}: {}", u.kind, u.id, u.reason);
        }
        println!(
            "現在の鍵で復号できたレコード: {} / {}",
            report.readable, report.records
        );
    }
    if report.unreadable.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Conflict,
            "backup_unreadable_records",
            "records of the backup do not decrypt with the current keys (listed above) / 復号できないレコードがあります",
        ))
    }
}

/// A source as it may be shown: a database URL without its password.
fn redacted(source: &str) -> String {
    match crate::db::pg_connect::driver_config(source) {
        Ok(config) if config.get_password().is_some() => {
            let user = config.get_user().unwrap_or("");
            let at = source.rfind('@').map_or("", |i| &source[i..]);
            let scheme = source.split("://").next().unwrap_or("postgres");
            format!("{scheme}://{user}:***{at}")
        }
        _ => source.to_owned(),
    }
}

/// The current key state's data keys for the backup's records, by key id
/// (read per tenant in key id order, as the rewrap reads them).
async fn current_keys(app: &App, records: &[BackedUp]) -> Result<HashMap<i64, RecordKeyRow>> {
    let tenants: BTreeSet<&TenantId> = records.iter().map(|r| &r.tenant).collect();
    let mut keys = HashMap::new();
    for tenant in tenants {
        let mut after = None;
        loop {
            let page = app
                .store
                // Every version (PostgreSQL stores versions as INTEGER).
                .stale_record_keys(tenant, i32::MAX.unsigned_abs(), after, REWRAP_BATCH)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            keys.extend(page.into_iter().map(|k| (k.id, k)));
        }
    }
    Ok(keys)
}

/// Opens every sealed field of the record with the current keys.
async fn opens(
    app: &App,
    record: &BackedUp,
    keys: &HashMap<i64, RecordKeyRow>,
) -> std::result::Result<(), &'static str> {
    let Some(key) = record.key_id.and_then(|id| keys.get(&id)) else {
        return Err("key_destroyed");
    };
    let version = key.kek_version;
    let tenant_keys = app
        .keyring
        .tenant_holding(&app.store, &record.tenant, Some(version))
        .await
        .map_err(|_| "key_destroyed")?;
    if !tenant_keys.holds(version) {
        return Err("key_destroyed");
    }
    let names: &[&str] = match record.kind {
        RecordKind::Card => &card_field::NAMES,
        RecordKind::Customer => &customer_field::NAMES,
        RecordKind::Order => &shipping_field::NAMES,
    };
    let sealed = Sealed::<0> {
        kek_version: version,
        wrapped_dek: key.wrapped_dek.clone(),
        fields: [],
    };
    let opened = tenant_keys
        .open_record(record.kind, &record.id, &sealed)
        .map_err(|_| "does_not_decrypt")?;
    for (name, blob) in names.iter().zip(&record.fields) {
        if let Some(blob) = blob {
            opened.open(name, blob).map_err(|_| "does_not_decrypt")?;
        }
    }
    Ok(())
}

fn unreadable_backup(cause: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(
        ErrorKind::Invalid,
        "backup_unreadable",
        "the backup cannot be read as an anshin vault",
    )
    .with_cause(cause)
}

/// The live records of a backup directory's `anshin.db`.
fn read_sqlite(backup: &Path) -> Result<Vec<BackedUp>> {
    let conn =
        Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(unreadable_backup)?;
    let mut out = Vec::new();
    for (kind, fields, sql) in QUERIES {
        let mut stmt = conn.prepare(sql).map_err(unreadable_backup)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(BackedUp {
                    kind,
                    id: r.get(0)?,
                    tenant: TenantId::from_db(r.get(1)?),
                    key_id: r.get(2)?,
                    fields: (0..fields)
                        .map(|i| r.get(3 + i))
                        .collect::<rusqlite::Result<_>>()?,
                })
            })
            .map_err(unreadable_backup)?;
        for row in rows {
            out.push(row.map_err(unreadable_backup)?);
        }
    }
    Ok(out)
}

/// The live records of a PostgreSQL database restored from a data dump
/// (read only: nothing is migrated or written there).
async fn read_postgres(url: &str) -> Result<Vec<BackedUp>> {
    let connect = PgConnect::parse(url)?;
    let (client, connection) = connect.connect().await.map_err(|e| {
        let why = tls_failure(&e).unwrap_or("check the URL");
        Error::new(
            ErrorKind::Unavailable,
            "backup_unreachable",
            format!("cannot connect to the restored database; {why}"),
        )
        .with_cause(e)
    })?;
    let connection = tokio::spawn(connection);
    client
        .batch_execute("SET default_transaction_read_only = on")
        .await
        .map_err(unreadable_backup)?;
    let mut out = Vec::new();
    for (kind, fields, sql) in QUERIES {
        for r in client.query(sql, &[]).await.map_err(unreadable_backup)? {
            out.push(BackedUp {
                kind,
                id: r.try_get(0).map_err(unreadable_backup)?,
                tenant: TenantId::from_db(r.try_get(1).map_err(unreadable_backup)?),
                key_id: r.try_get(2).map_err(unreadable_backup)?,
                fields: (0..fields)
                    .map(|i| r.try_get(3 + i))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(unreadable_backup)?,
            });
        }
    }
    drop(client);
    let _ = connection.await;
    Ok(out)
}
