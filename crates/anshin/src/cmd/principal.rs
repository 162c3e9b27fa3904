//! `anshin principal create|list|disable|rotate`: local administration with the
//! data directory's root key, acting as a global operator.

use anshin_crypto::secret::SecretString;

use crate::access::credentials::{RotateRequest, RotatedKey};
use crate::access::principals::{NewPrincipal, Principal, PrincipalQuery};
use crate::access::{Actor, Role};
use crate::app::App;
use crate::cli::PrincipalCommand;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::PrincipalId;

pub async fn run(config: &Config, command: PrincipalCommand) -> Result<()> {
    let app = App::open(&config.location()).await?;
    // Whoever holds the data directory holds the root key: a global operator.
    let local = Actor {
        principal_id: PrincipalId::generate()?,
        role: Role::Operator,
        tenant_id: None,
        shop_id: None,
        origin: None,
        purpose: Some("local command line".into()),
    };
    match command {
        PrincipalCommand::Create {
            name,
            role,
            tenant,
            shop,
            allowed_ips,
            json,
        } => {
            let input = NewPrincipal {
                name,
                role,
                tenant_id: tenant,
                shop_id: shop,
                allowed_ips: (!allowed_ips.is_empty()).then_some(allowed_ips),
            };
            let (principal, key) = app.create_principal(Some(&local), input).await?;
            print_created(&principal, &key, json)
        }
        PrincipalCommand::List { tenant, json } => {
            let principals = app
                .principals(&local, PrincipalQuery { tenant_id: tenant })
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&principals).map_err(Error::internal)?
                );
            } else {
                print_table(&principals);
            }
            Ok(())
        }
        PrincipalCommand::Disable { id } => {
            let principal = app.disable_principal(&local, &id).await?;
            println!("Disabled {} ({}).", principal.id, principal.name);
            Ok(())
        }
        PrincipalCommand::Rotate {
            id,
            overlap_hours,
            json,
        } => {
            let rotated = app
                .rotate_principal(&local, &id, RotateRequest { overlap_hours }, None)
                .await?;
            print_rotated(&rotated, json)
        }
    }
}

fn print_table(principals: &[Principal]) {
    println!(
        "{:<31} {:<10} {:<31} {:<9} {:<21} NAME",
        "ID", "ROLE", "TENANT", "STATE", "KEY EXPIRES"
    );
    for p in principals {
        let state = if p.disabled_at.is_some() {
            "disabled"
        } else if p.keys.is_empty() {
            "expired"
        } else {
            "active"
        };
        let tenant = p
            .tenant_id
            .as_ref()
            .map_or("(global)".to_owned(), ToString::to_string);
        let expires = p.key_expires_at.as_deref().unwrap_or("-");
        let allowed = p
            .allowed_ips
            .as_ref()
            .map(|ips| format!(" [from {}]", ips.join(", ")))
            .unwrap_or_default();
        println!(
            "{:<31} {:<10} {:<31} {:<9} {:<21} {}{}",
            p.id,
            p.role.as_str(),
            tenant,
            state,
            expires,
            p.name,
            allowed
        );
    }
}

fn print_created(principal: &Principal, key: &SecretString, json: bool) -> Result<()> {
    if json {
        let out = serde_json::json!({
            "id": principal.id,
            "role": principal.role,
            "api_key": key.expose(),
            "expires_at": principal.key_expires_at,
        });
        println!("{}", serde_json::to_string(&out).map_err(Error::internal)?);
    } else {
        println!("Created {} ({}).", principal.id, principal.role.as_str());
        println!("API key (shown once; store it now) / APIキー（一度だけ表示）:");
        println!("  {}", key.expose());
        if let Some(expires) = &principal.key_expires_at {
            println!(
                "It expires at {expires}; rotate it before then with `anshin principal rotate {}`.",
                principal.id
            );
        }
    }
    Ok(())
}

fn print_rotated(rotated: &RotatedKey, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(rotated).map_err(Error::internal)?);
    } else {
        println!("Rotated {}.", rotated.id);
        println!("New API key (shown once; store it now) / 新しいAPIキー（一度だけ表示）:");
        println!("  {}", rotated.api_key.expose());
        println!("It expires at {}.", rotated.expires_at);
        match &rotated.previous_key_expires_at {
            Some(at) => println!("The previous key works until {at}."),
            None => println!("The principal had no working key before."),
        }
    }
    Ok(())
}
