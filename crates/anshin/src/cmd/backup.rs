//! `anshin backup`: a consistent online copy of an SQLite store, taken while
//! `anshin serve` keeps serving. A data backup (the default) holds the vault's
//! ciphertexts without the key state, then the audit log; `--keys` copies the
//! key state alone. Neither holds the root key. A record deleted after a data
//! backup has no data key left in any later key state, so the backup can never
//! reveal it again. PostgreSQL is backed up with `pg_dump` (see README).

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::config::Config;
use crate::db::{Backend, BackupPart, Store};
use crate::error::{Error, ErrorKind, Result};

pub async fn run(config: &Config, out: &Path, keys: bool, json: bool) -> Result<()> {
    let location = config.location();
    if !location.is_initialised() {
        return Err(Error::new(
            ErrorKind::Invalid,
            "not_initialised",
            format!(
                "{} is not an anshin data directory (no root key); pass --data-dir / データディレクトリではありません",
                config.data_dir.display()
            ),
        ));
    }
    let store = Store::open(&location.database_url()).await?;
    if store.backend() == Backend::Postgres {
        return Err(Error::new(
            ErrorKind::Invalid,
            "backup_postgres",
            "this store is PostgreSQL: back it up with `pg_dump -Fc` (see README) / PostgreSQL は pg_dump でバックアップしてください",
        ));
    }
    // A new, owner-only directory: a backup never overwrites or mixes with another.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(out)
        .map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                "backup_target",
                format!(
                    "cannot create {}: give a new directory (it must not exist) / 新しいディレクトリを指定してください",
                    out.display()
                ),
            )
            .with_cause(e)
        })?;
    let part = if keys { BackupPart::Keys } else { BackupPart::Data };
    let files = store.backup(out, part).await?;
    let created_at = crate::clock::rfc3339(crate::clock::now_ms());
    if json {
        let files: Vec<_> = files
            .iter()
            .map(|(name, bytes)| serde_json::json!({"name": name, "bytes": bytes}))
            .collect();
        let summary = serde_json::json!({"dir": out, "created_at": created_at, "files": files});
        println!("{}", serde_json::to_string(&summary).map_err(Error::internal)?);
    } else {
        println!(
            "Backed up to {} at {created_at} / バックアップしました:",
            out.display()
        );
        for (name, bytes) in &files {
            println!("  {name}  {bytes} bytes");
        }
        if keys {
            println!(
                "Key state only: keep it apart from data backups and replace it often; a key backup taken\n\
                 before a deletion can reveal the deleted record with an older data backup.\n\
                 鍵のみのバックアップです。データのバックアップとは別に保管してください。"
            );
        } else {
            println!(
                "Data only: no root key and no data keys. Restore it next to the current key state\n\
                 (`anshin restore --verify DIR` checks every record). / 鍵は含まれません。"
            );
        }
    }
    Ok(())
}
