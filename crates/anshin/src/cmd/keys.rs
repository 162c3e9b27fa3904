//! `anshin keys status|rotate|retire|shred-tenant|approve|reject|requests|rewrap`: the key
//! state on the data directory. Requests and decisions act as the operator
//! whose API key is in `ANSHIN_API_KEY`, so dual control holds here as it does
//! over HTTP: the command line is not a way around the second operator.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::access::{Action, Actor};
use crate::app::App;
use crate::cli::KeysCommand;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::vault::rotation::{KeyRequest, NewKeyRequest, TenantKeyStatus};

pub async fn run(config: &Config, command: KeysCommand) -> Result<()> {
    let app = App::open(&config.location()).await?;
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
            let actor = operator(&app).await?;
            let input = NewKeyRequest {
                operation: "rotate".into(),
                below: None,
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
            let actor = operator(&app).await?;
            let input = NewKeyRequest {
                operation: "retire".into(),
                below: Some(below),
                reason,
                tenant_id: tenant,
            };
            print_request(&app.request_key_operation(&actor, input).await?, json)
        }
        KeysCommand::ShredTenant { tenant, reason, json } => {
            let actor = operator(&app).await?;
            let input = NewKeyRequest {
                operation: "shred_tenant".into(),
                below: None,
                reason,
                tenant_id: Some(tenant),
            };
            print_request(&app.request_key_operation(&actor, input).await?, json)
        }
        KeysCommand::Approve { id, no_rewrap, json } => {
            let actor = operator(&app).await?;
            let decided = app.decide_key_request(&actor, &id, true).await?;
            let rewrapped = if decided.operation == "rotate" && !no_rewrap {
                Some(rewrap(&app, json).await?)
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
            let actor = operator(&app).await?;
            print_request(&app.decide_key_request(&actor, &id, false).await?, json)
        }
        KeysCommand::Requests { json } => {
            let actor = operator(&app).await?;
            let requests = app.key_requests(&actor).await?;
            if json {
                return print_json(&requests);
            }
            for r in &requests {
                println!(
                    "{}  {:<8} {:<8} {}  by {}  {}",
                    r.id, r.operation, r.status, r.tenant_id, r.requested_by, r.reason
                );
            }
            Ok(())
        }
        KeysCommand::Rewrap { json } => {
            let started = Instant::now();
            let n = rewrap(&app, json).await?;
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
    match request.status {
        "pending" => println!(
            "Key request {} ({} for tenant {}) is waiting for another operator until {}:\n  \
             ANSHIN_API_KEY=<their key> anshin keys approve {}\n\
             鍵操作の依頼を登録しました。別のオペレーターの承認が必要です。",
            request.id, request.operation, request.tenant_id, request.expires_at, request.id
        ),
        status => println!(
            "Key request {} ({} for tenant {}): {status}{}",
            request.id,
            request.operation,
            request.tenant_id,
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
