//! `anshin audit`: the log's verifier key, export as C2SP tlog tiles, and
//! offline verification that needs nothing but the exported files and the key.

use std::fs;
use std::io::Write;
use std::path::Path;

use anshin_crypto::merkle::{Tile, TileKind};
use anshin_crypto::note::{Checkpoint, NoteVerifier};
use anshin_crypto::tlog;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::app::App;
use crate::audit::log::tile_bytes;
use crate::cli::AuditCommand;
use crate::config::Config;
use crate::db::audit::AuditHead;
use crate::error::{Error, ErrorKind, Result};

pub async fn run(config: &Config, command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::PublicKey { json } => {
            let app = App::open(&config.location()).await?;
            if json {
                println!(
                    "{}",
                    json!({"origin": app.audit.origin(), "public_key": app.audit.verifier_key()})
                );
            } else {
                println!("{}", app.audit.verifier_key());
            }
            Ok(())
        }
        AuditCommand::Export { out, json } => {
            let app = App::open(&config.location()).await?;
            export(&app, &out, json).await
        }
        AuditCommand::Verify {
            dir,
            public_key,
            since,
            json,
        } => verify(&dir, &public_key, since.as_deref(), json),
    }
}

fn io_error(what: &str, path: &Path, err: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Invalid,
        "audit_export_io",
        format!("cannot {what} {}", path.display()),
    )
    .with_cause(err)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    fs::write(path, bytes).map_err(|e| io_error("write", path, e))
}

async fn export(app: &App, out: &Path, json: bool) -> Result<()> {
    if out.exists()
        && fs::read_dir(out)
            .map_err(|e| io_error("read", out, e))?
            .next()
            .is_some()
    {
        return Err(Error::new(
            ErrorKind::Invalid,
            "export_dir_not_empty",
            format!("{} is not empty; name a new directory", out.display()),
        ));
    }
    let (head, tiles) = write_export(app, out, ProgressBar::new(0)).await?;
    if json {
        println!(
            "{}",
            json!({"dir": out.display().to_string(), "tree_size": head.size, "tiles": tiles, "origin": app.audit.origin()})
        );
    } else {
        println!(
            "Exported {} entries ({} tiles) to {}.",
            head.size,
            tiles,
            out.display()
        );
        println!(
            "Verify with: anshin audit verify {} --public-key '{}'",
            out.display(),
            app.audit.verifier_key()
        );
    }
    Ok(())
}

/// Integrates, then writes every tile and entry bundle of the log and, last,
/// its checkpoint into `out`. Returns the head exported and the tile count.
pub(super) async fn write_export(app: &App, out: &Path, progress: ProgressBar) -> Result<(AuditHead, usize)> {
    let head = app.audit.integrate(&app.store).await?;
    let tiles: Vec<Tile> = Tile::all_for_size(head.size).collect();
    progress.set_length(tiles.len() as u64);
    progress.set_message("exporting tiles");
    progress.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for tile in &tiles {
        write_file(
            &out.join(tile.path()),
            &tile_bytes(&app.store, head.size, TileKind::Hashes, *tile).await?,
        )?;
        if let Some(path) = tile.entries_path() {
            write_file(
                &out.join(path),
                &tile_bytes(&app.store, head.size, TileKind::Entries, *tile).await?,
            )?;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    // The checkpoint last: a reader that finds it finds every tile it covers.
    write_file(&out.join("checkpoint"), head.checkpoint.as_bytes())?;
    Ok((head, tiles.len()))
}

fn bad_input(code: &'static str, message: String) -> Error {
    Error::new(ErrorKind::Invalid, code, message)
}

fn open_checkpoint(path: &Path, verifier: &NoteVerifier) -> Result<Checkpoint> {
    let bytes = fs::read(path).map_err(|e| io_error("read", path, e))?;
    Checkpoint::open(&bytes, verifier.name(), std::slice::from_ref(verifier)).map_err(|e| {
        bad_input(
            "audit_verification_failed",
            format!(
                "{}: the checkpoint's signature does not verify with this key ({e})",
                path.display()
            ),
        )
    })
}

/// Verifies the export in `dir` against a checkpoint whose signature was checked.
pub(super) fn verify_dir(
    dir: &Path,
    checkpoint: &Checkpoint,
    old: Option<&Checkpoint>,
) -> Result<tlog::Report> {
    tlog::verify_export(checkpoint, old, |path: &str| match fs::read(dir.join(path)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", &dir.join(path), e)),
    })
}

fn verify(dir: &Path, public_key: &str, since: Option<&Path>, json: bool) -> Result<()> {
    let verifier = NoteVerifier::parse(public_key.trim()).map_err(|_| {
        bad_input(
            "invalid_public_key",
            "the public key is not a signed-note verifier key (name+keyid+key); print it with `anshin audit public-key`"
                .into(),
        )
    })?;
    let checkpoint = open_checkpoint(&dir.join("checkpoint"), &verifier)?;
    let old = since.map(|p| open_checkpoint(p, &verifier)).transpose()?;
    let report = verify_dir(dir, &checkpoint, old.as_ref())?;
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    if json {
        println!(
            "{}",
            json!({
                "ok": report.is_ok(),
                "origin": checkpoint.origin(),
                "tree_size": report.size,
                "entries_read": report.entries_read,
                "first_bad_entry": report.first_bad_entry,
                "verified_prefix": report.verified_prefix,
                "problems": problems,
            })
        );
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "log {} at size {}", checkpoint.origin(), report.size);
        for problem in &problems {
            let _ = writeln!(out, "  problem: {problem}");
        }
    }
    if report.is_ok() {
        if !json {
            println!(
                "OK: the signature verifies and all {} entries hash to the signed root.",
                report.size
            );
        }
        Ok(())
    } else {
        let at = report.first_bad_entry.map_or_else(String::new, |i| {
            format!(" The first entry that does not match is #{i}.")
        });
        Err(bad_input(
            "audit_verification_failed",
            format!("the exported log does not verify.{at}"),
        ))
    }
}
