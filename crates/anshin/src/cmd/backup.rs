//! `anshin backup`: a consistent online copy of an SQLite store (the vault's
//! file, then the audit log's), taken while `anshin serve` keeps serving.
//! The root key is not copied: the backup holds only ciphertext and wrapped
//! keys, and a card deleted (its keys destroyed) after the backup stays
//! unreadable in it once its tenant's keys are gone. PostgreSQL is backed up
//! with `pg_dump`.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::config::Config;
use crate::db::{Backend, Store};
use crate::error::{Error, ErrorKind, Result};

pub async fn run(config: &Config, out: &Path, json: bool) -> Result<()> {
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
    let files = store.backup(out).await?;
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
        println!(
            "The root key is not in the backup: keep root.key apart from it / ルートキーは含まれません."
        );
    }
    Ok(())
}
