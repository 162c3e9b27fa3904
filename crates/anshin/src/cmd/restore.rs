//! `anshin restore --verify DIR`: checks a data backup against the current
//! key state. Every live record in the backup is opened with the data key the
//! key state holds for it now; a record whose key was destroyed after the
//! backup (crypto-shredded) is reported, and so is one that does not decrypt.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::app::App;
use crate::config::Config;
use crate::db::retention::shipping_field;
use crate::db::{Sealed, card_field, customer_field};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::TenantId;
use crate::vault::keys::RecordKind;

/// One record of the backup, with the key state's data key for it.
struct BackedUp {
    kind: RecordKind,
    id: String,
    tenant: TenantId,
    key: Option<(u32, Vec<u8>)>,
    fields: Vec<Option<Vec<u8>>>,
}

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

/// Verifies the data backup in `dir`; the error `backup_unreadable_records`
/// (exit code 8) if any record does not decrypt.
pub async fn run(config: &Config, dir: &Path, json: bool) -> Result<()> {
    let location = config.location();
    if location.database_url.is_some() {
        return Err(Error::new(
            ErrorKind::Invalid,
            "restore_postgres",
            "restore --verify reads backups of SQLite stores; for PostgreSQL restore pg_dump's output into a scratch database and run the server on it",
        ));
    }
    let backup = dir.join("anshin.db");
    if !backup.is_file() {
        return Err(Error::new(
            ErrorKind::Invalid,
            "not_a_backup",
            format!(
                "{} holds no anshin.db: give a directory written by `anshin backup` / バックアップのディレクトリを指定してください",
                dir.display()
            ),
        ));
    }
    let app = App::open(&location).await?;
    let records = read_backup(&backup, &location.data_dir.join("anshin.db"))?;
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
        backup: dir.display().to_string(),
        records: records.len() as u64,
        readable: 0,
        unreadable: Vec::new(),
    };
    for record in records {
        bar.inc(1);
        let reason = match opens(&app, &record).await {
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

/// Opens every sealed field of the record with the current keys.
async fn opens(app: &App, record: &BackedUp) -> std::result::Result<(), &'static str> {
    let Some((version, wrapped)) = &record.key else {
        return Err("key_destroyed");
    };
    let keys = app
        .keyring
        .tenant_holding(&app.store, &record.tenant, Some(*version))
        .await
        .map_err(|_| "key_destroyed")?;
    if !keys.holds(*version) {
        return Err("key_destroyed");
    }
    let names: &[&str] = match record.kind {
        RecordKind::Card => &card_field::NAMES,
        RecordKind::Customer => &customer_field::NAMES,
        RecordKind::Order => &shipping_field::NAMES,
    };
    let sealed = Sealed::<0> {
        kek_version: *version,
        wrapped_dek: wrapped.clone(),
        fields: [],
    };
    let opened = keys
        .open_record(record.kind, &record.id, &sealed)
        .map_err(|_| "does_not_decrypt")?;
    for (name, blob) in names.iter().zip(&record.fields) {
        if let Some(blob) = blob {
            opened.open(name, blob).map_err(|_| "does_not_decrypt")?;
        }
    }
    Ok(())
}

/// Reads the backup's live records, each joined with the current key state.
fn read_backup(backup: &Path, current: &Path) -> Result<Vec<BackedUp>> {
    let read = |e: rusqlite::Error| {
        Error::new(
            ErrorKind::Invalid,
            "backup_unreadable",
            "the backup's anshin.db cannot be read as an anshin vault",
        )
        .with_cause(e)
    };
    let conn = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(read)?;
    let uri = format!("file:{}?mode=ro", current.display());
    conn.execute("ATTACH DATABASE ?1 AS cur", [uri]).map_err(read)?;
    let queries: [(RecordKind, usize, &str); 3] = [
        (
            RecordKind::Card,
            3,
            "SELECT c.token, c.tenant_id, k.kek_version, k.wrapped_dek, c.number_ct, c.expiry_ct, c.holder_ct
             FROM main.cards c LEFT JOIN cur.record_keys k ON k.id = c.key_id WHERE c.deleted_at IS NULL",
        ),
        (
            RecordKind::Customer,
            7,
            "SELECT c.id, c.tenant_id, k.kek_version, k.wrapped_dek, c.name_ct, c.name_kana_ct, c.postal_code_ct,
                    c.address_ct, c.phone_ct, c.email_ct, c.fax_ct
             FROM main.customers c LEFT JOIN cur.record_keys k ON k.id = c.key_id WHERE c.deleted_at IS NULL",
        ),
        (
            RecordKind::Order,
            4,
            "SELECT s.order_id, o.tenant_id, k.kek_version, k.wrapped_dek, s.name_ct, s.postal_code_ct,
                    s.address_ct, s.phone_ct
             FROM main.order_shipping s JOIN main.orders o ON o.id = s.order_id
             LEFT JOIN cur.record_keys k ON k.id = s.key_id WHERE s.purged_at IS NULL",
        ),
    ];
    let mut out = Vec::new();
    for (kind, fields, sql) in queries {
        let mut stmt = conn.prepare(sql).map_err(read)?;
        let rows = stmt
            .query_map([], |r| {
                let version: Option<i64> = r.get(2)?;
                let wrapped: Option<Vec<u8>> = r.get(3)?;
                Ok(BackedUp {
                    kind,
                    id: r.get(0)?,
                    tenant: TenantId::from_db(r.get(1)?),
                    key: version.and_then(|v| u32::try_from(v).ok()).zip(wrapped),
                    fields: (0..fields)
                        .map(|i| r.get(4 + i))
                        .collect::<rusqlite::Result<_>>()?,
                })
            })
            .map_err(read)?;
        for row in rows {
            out.push(row.map_err(read)?);
        }
    }
    Ok(out)
}
