//! `anshin init`: create a data directory and print the bootstrap operator key once.

use crate::access::credentials::DEFAULT_KEY_LIFETIME_DAYS;
use crate::app::App;
use crate::config::Config;
use crate::error::{Error, Result};

pub async fn run(config: &Config, json: bool) -> Result<()> {
    let (_app, key) = App::init(&config.location()).await?;
    if json {
        let out = serde_json::json!({ "operator_api_key": key.expose() });
        println!("{}", serde_json::to_string(&out).map_err(Error::internal)?);
    } else {
        println!("Initialised {}.", config.data_dir.display());
        println!("Operator API key (shown once; store it now) / 運用者APIキー（一度だけ表示）:");
        println!("  {}", key.expose());
        println!(
            "It expires in {DEFAULT_KEY_LIFETIME_DAYS} days, like every API key: rotate it before then with"
        );
        println!(
            "`anshin principal rotate <id>` (ids: `anshin principal list`) or POST /v1/principals/<id>/rotate."
        );
        println!("Next: anshin serve --data-dir {}", config.data_dir.display());
    }
    Ok(())
}
