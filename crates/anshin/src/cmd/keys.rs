//! `anshin keys status|rotate|retire|shred-tenant|approve|reject|requests|rewrap|change-root`:
//! the key state on the data directory. Requests and decisions act as the
//! operator whose API key is in `ANSHIN_API_KEY`, so dual control holds here
//! as it does over HTTP: the command line is not a way around the second
//! operator.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::access::{Action, Actor};
use crate::app::App;
use crate::cli::{KeysCommand, RootArgs};
use crate::cmd::{init, unseal};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::vault::root::{self, Record, RootKey};
use crate::vault::rotation::{KeyRequest, NewKeyRequest, TenantKeyStatus};
use crate::vault::shares::{OpenShare, Share, share_error};

pub async fn run(config: &Config, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::ChangeRoot {
            request: Some(id),
            root,
            json,
            ..
        } => change_root(config, &id, &root, json).await,
        KeysCommand::ChangeRoot {
            cancel: true, json, ..
        } => cancel_root_change(config, json).await,
        command => on_data(config, &App::open(&config.location()).await?, command).await,
    }
}

async fn on_data(config: &Config, app: &App, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Status { tenant, json } => {
            let tenant = tenant
                .map(|t| {
                    crate::ids::TenantId::parse(&t).ok_or_else(|| {
                        Error::invalid("invalid_tenant", "--tenant must be a tenant id (ten_…)")
                    })
                })
                .transpose()?;
            let status = app.key_status_of(tenant.as_ref()).await?;
            if json {
                print_json(&status)
            } else {
                print_status(&status);
                Ok(())
            }
        }
        KeysCommand::Rotate { tenant, reason, json } => {
            let actor = operator(app).await?;
            let input = NewKeyRequest {
                operation: "rotate".into(),
                below: None,
                target: None,
                reason,
                tenant_id: tenant,
            };
            print_request(&app.request_key_operation(&actor, input).await?, json)
        }
        KeysCommand::Retire {
            tenant,
            below,
            reason,
            json,
        } => {
            let actor = operator(app).await?;
            let input = NewKeyRequest {
                operation: "retire".into(),
                below: Some(below),
                target: None,
                reason,
                tenant_id: tenant,
            };
            print_request(&app.request_key_operation(&actor, input).await?, json)
        }
        KeysCommand::ShredTenant { tenant, reason, json } => {
            let actor = operator(app).await?;
            let input = NewKeyRequest {
                operation: "shred_tenant".into(),
                below: None,
                target: None,
                reason,
                tenant_id: Some(tenant),
            };
            print_request(&app.request_key_operation(&actor, input).await?, json)
        }
        KeysCommand::Approve { id, no_rewrap, json } => {
            let actor = operator(app).await?;
            let decided = app.decide_key_request(&actor, &id, true).await?;
            let rewrapped = if decided.operation == "rotate" && !no_rewrap {
                Some(rewrap(app, json).await?)
            } else {
                None
            };
            if json {
                return print_json(&json!({"request": decided, "rewrapped": rewrapped}));
            }
            print_request(&decided, false)?;
            if let Some(n) = rewrapped {
                println!("Re-wrapped {n} data keys to the new version.");
            }
            Ok(())
        }
        KeysCommand::Reject { id, json } => {
            let actor = operator(app).await?;
            print_request(&app.decide_key_request(&actor, &id, false).await?, json)
        }
        KeysCommand::Requests { json } => {
            let actor = operator(app).await?;
            let requests = app.key_requests(&actor).await?;
            if json {
                return print_json(&requests);
            }
            for r in &requests {
                let scope = r
                    .tenant_id
                    .as_ref()
                    .map_or_else(|| r.target.clone().unwrap_or_default(), ToString::to_string);
                println!(
                    "{}  {:<12} {:<8} {}  by {}  {}",
                    r.id, r.operation, r.status, scope, r.requested_by, r.reason
                );
            }
            Ok(())
        }
        KeysCommand::ChangeRoot {
            reason, root, json, ..
        } => {
            let actor = operator(app).await?;
            let input = NewKeyRequest {
                operation: "change_root".into(),
                below: None,
                target: Some(init::target(&root, config)?.to_text()),
                reason: reason.unwrap_or_default(),
                tenant_id: None,
            };
            print_request(&app.request_key_operation(&actor, input).await?, json)
        }
        KeysCommand::Rewrap { json } => {
            let started = Instant::now();
            let n = rewrap(app, json).await?;
            if json {
                print_json(&json!({"rewrapped": n, "seconds": started.elapsed().as_secs_f64()}))
            } else {
                println!(
                    "Re-wrapped {n} data keys in {:.1} s.",
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
        }
    }
}

/// The operator whose key is in `ANSHIN_API_KEY`.
async fn operator(app: &App) -> Result<Actor> {
    let key = std::env::var("ANSHIN_API_KEY").map_err(|_| {
        Error::new(
            ErrorKind::Unauthenticated,
            "api_key_required",
            "set ANSHIN_API_KEY to your operator API key: key operations are requested and approved by named operators",
        )
    })?;
    let actor = app.authenticate(key.trim()).await?;
    actor.require(Action::ManageKeys)?;
    Ok(actor)
}

/// Re-wraps everything left, as fast as it goes, with a progress bar on a terminal.
async fn rewrap(app: &App, quiet: bool) -> Result<u64> {
    let pending: u64 = app
        .key_status_of(None)
        .await?
        .iter()
        .map(|s| s.pending_rewrap)
        .sum();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(pending)
    };
    bar.set_style(
        ProgressStyle::with_template("re-wrapping {bar:40} {pos}/{len} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let n = app.rewrap_all(Duration::ZERO, |batch| bar.inc(batch)).await?;
    bar.finish_and_clear();
    Ok(n)
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(Error::internal)?
    );
    Ok(())
}

fn print_request(request: &KeyRequest, json: bool) -> Result<()> {
    if json {
        return print_json(request);
    }
    let scope = match (&request.tenant_id, &request.target) {
        (Some(tenant), _) => format!("for tenant {tenant}"),
        (None, Some(target)) => format!("to {target}"),
        (None, None) => String::new(),
    };
    match request.status {
        "pending" => println!(
            "Key request {} ({} {scope}) is waiting for another operator until {}:\n  \
             ANSHIN_API_KEY=<their key> anshin keys approve {}\n\
             鍵操作の依頼を登録しました。別のオペレーターの承認が必要です。",
            request.id, request.operation, request.expires_at, request.id
        ),
        "approved" if request.operation == "change_root" => println!(
            "Key request {} ({} {scope}) is approved. Within a day, with every node stopped, run:\n  \
             ANSHIN_API_KEY=<your key> anshin keys change-root --request {} <the same root options>\n\
             承認されました。全ノードを停止し、24時間以内に実行してください。",
            request.id, request.operation, request.id
        ),
        status => println!(
            "Key request {} ({} {scope}): {status}{}",
            request.id,
            request.operation,
            request
                .result
                .map(|r| match request.operation {
                    "rotate" => format!(", new KEK version {r}"),
                    _ => format!(", {r} KEK versions destroyed"),
                })
                .unwrap_or_default()
        ),
    }
    Ok(())
}

fn print_status(status: &[TenantKeyStatus]) {
    if status.is_empty() {
        println!("No tenants yet.");
    }
    for tenant in status {
        println!(
            "{}  current KEK version {}, {} records to re-wrap",
            tenant.tenant_id, tenant.current_version, tenant.pending_rewrap
        );
        for v in &tenant.versions {
            println!(
                "  v{:<4} {:>10} records  {:>12} encryptions  created {}",
                v.version, v.records, v.encryptions, v.created_at
            );
        }
    }
}

/// Opens the data directory with its current root for a root change: a
/// vault split into shares takes K custodians' shares from standard input.
async fn open_for_root_change(config: &Config) -> Result<App> {
    let location = config.location();
    let root = match Record::read(&location.data_dir)? {
        Some(record @ Record::Shares { threshold, .. }) => {
            let vault = record.vault_id()?;
            let mut opened: Vec<OpenShare> = Vec::new();
            for (text, passphrase) in unseal::read_shares(threshold)? {
                let share = Share::parse(text.expose())?;
                if share.vault() != vault {
                    return Err(share_error("share_wrong_vault"));
                }
                if opened.iter().any(|s| s.index() == share.index()) {
                    return Err(share_error("share_duplicate"));
                }
                opened.push(share.open(vault, threshold, passphrase.as_ref())?);
            }
            RootKey::from_shares(&record, &opened)?
        }
        _ => root::load(&location.data_dir)?,
    };
    App::open_for_root_change(&location, root).await
}

/// `anshin keys change-root --request ID`: see [`crate::vault::root_change`].
async fn change_root(config: &Config, id: &str, args: &RootArgs, json: bool) -> Result<()> {
    let data_dir = config.location().data_dir;
    let new_root = init::resolve(args, config)?;
    let target = new_root.target()?;
    let app = open_for_root_change(config).await?;
    let actor = operator(&app).await?;
    let request = app.approved_root_change(&actor, id, target).await?;
    let next = new_root.stage(&data_dir)?;
    let change = match app.stage_root_change(&request, &next.root).await {
        Ok(change) => change,
        Err(err) => {
            drop(next);
            root::discard_staged(&data_dir)?;
            return Err(err);
        }
    };
    let rewrapped = change.tenant_keys.len();
    // Shown before the switch: once the new root is in force they are the
    // only way in, so they must be out before, never lost to a crash after.
    if !next.shares.is_empty() {
        if json {
            let shares: Vec<&str> = next.shares.iter().map(|s| s.expose()).collect();
            println!("{}", json!({"shares": shares}));
        } else {
            println!(
                "New custodian shares, valid only once this command reports success; give one to each \
                 custodian / 新しい分割鍵（成功の表示の後に有効。各保管者に一つずつ）:"
            );
            init::print_shares(&next.shares);
        }
        std::io::Write::flush(&mut std::io::stdout()).map_err(Error::internal)?;
    }
    drop(next);
    root::commit_staged(&data_dir)?;
    app.finish_root_change(&actor, change).await.map_err(|err| {
        Error::new(
            ErrorKind::Unavailable,
            "root_change_unfinished",
            "the new root of trust is in force but the database was not updated; \
             the next `anshin serve` (with the new root) finishes it",
        )
        .with_cause(err)
    })?;
    let App { keyring, .. } = app;
    keyring.into_root().destroy()?;
    if json {
        // One object per line: the shares (if any) came first.
        println!(
            "{}",
            json!({"request": request.id, "target": target.to_text(), "tenant_keys": rewrapped})
        );
        Ok(())
    } else {
        println!(
            "Root of trust changed to {} ({rewrapped} tenant keys re-wrapped); the old root is destroyed.\n\
             ルート鍵を変更しました。古いルート鍵は破棄されました。",
            target.to_text()
        );
        Ok(())
    }
}

/// `anshin keys change-root --cancel`.
async fn cancel_root_change(config: &Config, json: bool) -> Result<()> {
    let app = open_for_root_change(config).await?;
    let actor = operator(&app).await?;
    let request = app.cancel_root_change(&actor).await?;
    root::discard_staged(&config.location().data_dir)?;
    if json {
        return print_json(&json!({"cancelled": request}));
    }
    match request {
        Some(id) => println!("Cancelled the staged root change of key request {id} / 取り消しました"),
        None => println!("No root change was staged / 取り消す変更はありません"),
    }
    Ok(())
}
