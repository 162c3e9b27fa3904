//! `anshin principal create|list|disable`: local administration with the data
//! directory's root key, acting as a global operator.

use anshin_crypto::secret::SecretString;

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
            json,
        } => {
            let input = NewPrincipal {
                name,
                role,
                tenant_id: tenant,
                shop_id: shop,
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
                println!("{:<31} {:<10} {:<31} {:<9} NAME", "ID", "ROLE", "TENANT", "STATE");
                for p in principals {
                    let state = if p.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    };
                    let tenant = p
                        .tenant_id
                        .as_ref()
                        .map_or("(global)".to_owned(), ToString::to_string);
                    println!(
                        "{:<31} {:<10} {:<31} {:<9} {}",
                        p.id,
                        p.role.as_str(),
                        tenant,
                        state,
                        p.name
                    );
                }
            }
            Ok(())
        }
        PrincipalCommand::Disable { id } => {
            let principal = app.disable_principal(&local, &id).await?;
            println!("Disabled {} ({}).", principal.id, principal.name);
            Ok(())
        }
    }
}

fn print_created(principal: &Principal, key: &SecretString, json: bool) -> Result<()> {
    if json {
        let out = serde_json::json!({ "id": principal.id, "role": principal.role, "api_key": key.expose() });
        println!("{}", serde_json::to_string(&out).map_err(Error::internal)?);
    } else {
        println!("Created {} ({}).", principal.id, principal.role.as_str());
        println!("API key (shown once; store it now) / APIキー（一度だけ表示）:");
        println!("  {}", key.expose());
    }
    Ok(())
}
