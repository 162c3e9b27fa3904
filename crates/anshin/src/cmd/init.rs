//! `anshin init`: create a data directory and print the bootstrap operator key
//! (and, with `--shares`, the custodians' shares) once.

use std::io::IsTerminal;
use std::path::PathBuf;

use anshin_crypto::secret::SecretString;

use crate::access::credentials::DEFAULT_KEY_LIFETIME_DAYS;
use crate::app::App;
use crate::cli::RootArgs;
use crate::config::Config;
use crate::db::keys::RootTarget;
use crate::error::{Error, ErrorKind, Result};
use crate::vault::pkcs11::Pkcs11Settings;
use crate::vault::root::NewRoot;

fn usage(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Invalid, "init_usage", message)
}

/// The kind of root `args` ask for (with the configuration's
/// `root_of_trust` as the default), without reading any secret.
pub fn target(args: &RootArgs, config: &Config) -> Result<RootTarget> {
    let kind = config.root_of_trust.root_of_trust.as_str();
    if args.pkcs11 || (kind == "pkcs11" && args.shares.is_none()) {
        return Ok(RootTarget::Pkcs11);
    }
    let (Some(shares), Some(threshold)) = (args.shares, args.threshold) else {
        if kind == "shares" {
            return Err(usage("root_of_trust = \"shares\": give --shares N --threshold K"));
        }
        return Ok(RootTarget::File);
    };
    if threshold > shares {
        return Err(usage("--threshold must not exceed --shares"));
    }
    Ok(RootTarget::Shares { threshold, shares })
}

/// The new root `args` ask for, with its secrets (passphrases, PIN) read.
pub fn resolve(args: &RootArgs, config: &Config) -> Result<NewRoot> {
    match target(args, config)? {
        RootTarget::Pkcs11 => {
            let rot = &config.root_of_trust;
            let (Some(module), Some(token)) = (&rot.pkcs11_module, &rot.pkcs11_token_label) else {
                return Err(usage(
                    "--pkcs11 needs pkcs11_module and pkcs11_token_label in the configuration \
                     (or ANSHIN_PKCS11_MODULE and ANSHIN_PKCS11_TOKEN_LABEL)",
                ));
            };
            Ok(NewRoot::Pkcs11(Pkcs11Settings::from_env(
                module.clone(),
                token.clone(),
                rot.pkcs11_key_label.clone(),
            )?))
        }
        RootTarget::File => Ok(NewRoot::KeyFile),
        RootTarget::Shares { threshold, shares } => {
            let passphrases = match (&args.passphrases, args.prompt_passphrases) {
                (Some(file), _) => read_passphrases(file, shares)?,
                (None, true) => prompt_passphrases(shares)?,
                (None, false) => vec![None; usize::from(shares)],
            };
            Ok(NewRoot::Shares {
                threshold,
                passphrases,
            })
        }
    }
}

fn read_passphrases(file: &PathBuf, count: u8) -> Result<Vec<Option<SecretString>>> {
    let text =
        SecretString::new(std::fs::read_to_string(file).map_err(|e| {
            usage(format!("cannot read the passphrase file {}", file.display())).with_cause(e)
        })?);
    let lines: Vec<Option<SecretString>> = text
        .expose()
        .lines()
        .map(|line| (!line.is_empty()).then(|| SecretString::new(line.to_owned())))
        .collect();
    if lines.len() != usize::from(count) {
        return Err(usage(format!(
            "the passphrase file {} must have one line per share ({count}); an empty line leaves that share unsealed",
            file.display()
        )));
    }
    Ok(lines)
}

fn prompt_passphrases(count: u8) -> Result<Vec<Option<SecretString>>> {
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "--prompt-passphrases needs a terminal; use --passphrases FILE in scripts",
        ));
    }
    let unreadable = |e: std::io::Error| usage("cannot read the passphrase").with_cause(e);
    (1..=count)
        .map(|i| {
            loop {
                let first = SecretString::new(
                    rpassword::prompt_password(format!(
                        "Custodian {i}: passphrase for share {i} (empty for none) / パスフレーズ: "
                    ))
                    .map_err(unreadable)?,
                );
                if first.is_empty() {
                    return Ok(None);
                }
                let again =
                    SecretString::new(rpassword::prompt_password("Again / 再入力: ").map_err(unreadable)?);
                if again == first {
                    return Ok(Some(first));
                }
                eprintln!("The two entries differ; try again / 一致しません。もう一度入力してください");
            }
        })
        .collect()
}

pub async fn run(config: &Config, json: bool, root: &RootArgs) -> Result<()> {
    let new_root = resolve(root, config)?;
    let (_app, key, shares) = App::init_with(&config.location(), new_root).await?;
    if json {
        let mut out = serde_json::json!({ "operator_api_key": key.expose() });
        if !shares.is_empty() {
            out["shares"] = shares.iter().map(|s| s.expose()).collect();
        }
        println!("{}", serde_json::to_string(&out).map_err(Error::internal)?);
        return Ok(());
    }
    println!("Initialised {}.", config.data_dir.display());
    println!("Operator API key (shown once; store it now) / 運用者APIキー（一度だけ表示）:");
    println!("  {}", key.expose());
    println!(
        "It expires in {DEFAULT_KEY_LIFETIME_DAYS} days, like every API key: rotate it before then with"
    );
    println!(
        "`anshin principal rotate <id>` (ids: `anshin principal list`) or POST /v1/principals/<id>/rotate."
    );
    if !shares.is_empty() {
        println!(
            "Custodian shares (shown once; give one to each custodian, never two to one person) / \
             分割鍵（一度だけ表示。各保管者に一つずつ渡してください）:"
        );
        print_shares(&shares);
        println!(
            "The server starts sealed: enter shares with `anshin unseal` until the threshold is reached."
        );
    }
    println!("Next: anshin serve --data-dir {}", config.data_dir.display());
    Ok(())
}

/// Custodians' shares, one numbered line each.
pub(super) fn print_shares(shares: &[SecretString]) {
    for (i, share) in shares.iter().enumerate() {
        println!("  {}: {}", i + 1, share.expose());
    }
}
