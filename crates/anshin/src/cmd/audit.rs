//! `anshin audit`: the log's verifier key and its export as C2SP tlog tiles.

use std::fs;
use std::path::Path;

use anshin_crypto::merkle::{Tile, TileKind};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::app::App;
use crate::audit::log::tile_bytes;
use crate::cli::AuditCommand;
use crate::config::Config;
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
    let head = app.audit.integrate(&app.store).await?;
    let tiles: Vec<Tile> = Tile::all_for_size(head.size).collect();
    let progress = ProgressBar::new(tiles.len() as u64).with_message("exporting tiles");
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
    if json {
        println!(
            "{}",
            json!({"dir": out.display().to_string(), "tree_size": head.size, "tiles": tiles.len(), "origin": app.audit.origin()})
        );
    } else {
        println!(
            "Exported {} entries ({} tiles) to {}.",
            head.size,
            tiles.len(),
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
