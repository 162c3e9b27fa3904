//! The root of trust: the key that wraps every tenant key, never inside the
//! database, so a database copied without it reveals nothing. Three kinds:
//!
//! - a key file in the data directory, readable by its owner only (the default);
//! - custodian shares ([`crate::vault::shares`]): the key exists only in memory
//!   after K custodians have entered their shares into a sealed server;
//! - a non-extractable AES key inside a PKCS#11 token ([`crate::vault::pkcs11`]).
//!
//! The last two are recorded in `root-of-trust.json` in the data directory:
//! the kind, the vault id, and a check value sealed under the root key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anshin_crypto::envelope::{AeadKey, Context};
use anshin_crypto::secret::{KeyBytes, SecretString, SecretVec};
use data_encoding::HEXLOWER;
use zeroize::Zeroize;

use serde::{Deserialize, Serialize};

use crate::db::keys::RootTarget;
use crate::error::{Error, ErrorKind, Result};
use crate::vault::pkcs11::{Pkcs11Settings, TokenKey};
use crate::vault::shares::{self, OpenShare, VaultId};

/// File name of the root key inside the data directory (key-file kind).
pub const ROOT_KEY_FILE: &str = "root.key";
/// File name of the root-of-trust record (shares and PKCS#11 kinds).
pub const RECORD_FILE: &str = "root-of-trust.json";
/// Suffix of a next root of trust staged by `anshin keys change-root`, until
/// it replaces the current one.
const STAGED_SUFFIX: &str = ".next";

fn staged(name: &str) -> String {
    format!("{name}{STAGED_SUFFIX}")
}

/// The root key: wraps every tenant key. Reached only through its four
/// operations, whatever holds the key.
#[derive(Debug)]
pub struct RootKey(Holder);

/// Where the key lives; either way `Debug` shows no key material.
#[derive(Debug)]
enum Holder {
    /// In this process's memory (key file, or rebuilt from shares).
    Memory(AeadKey),
    /// Inside a PKCS#11 token, never in this process.
    Token(TokenKey),
}

impl RootKey {
    /// A root key over material held in memory (rebuilt from shares).
    pub fn from_material(material: &KeyBytes) -> Result<Self> {
        Ok(Self(Holder::Memory(AeadKey::new(material)?)))
    }

    /// Writes a new random root key to `path`, which must not exist, readable by
    /// its owner only.
    pub fn create_file(path: &Path) -> Result<()> {
        let key = KeyBytes::generate()?;
        let mut text = HEXLOWER.encode(key.expose());
        text.push('\n');
        // The directory entry is made durable too: a database that outlives its
        // root key after a crash could never be opened again.
        let written = write_private(path, text.as_bytes());
        text.zeroize();
        written
    }

    /// Reads the root key from `path`, refusing a file that others can read.
    pub fn load(path: &Path) -> Result<Self> {
        let unreadable = |e: std::io::Error| {
            Error::new(
                ErrorKind::Internal,
                "root_key_unreadable",
                format!(
                    "cannot read the root key file {}; run `anshin init` first",
                    path.display()
                ),
            )
            .with_cause(e)
        };
        let mode = fs::metadata(path).map_err(unreadable)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(Error::new(
                ErrorKind::Internal,
                "root_key_permissions",
                format!(
                    "the root key file {} is accessible to other users (mode {:o}); run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                ),
            ));
        }
        let mut text = fs::read_to_string(path).map_err(unreadable)?;
        let decoded = HEXLOWER.decode(text.trim().as_bytes());
        text.zeroize();
        let bytes = SecretVec::new(decoded.map_err(|_| malformed_root(path))?);
        let material = KeyBytes::from_slice(bytes.expose()).map_err(|_| malformed_root(path))?;
        Self::from_material(&material)
    }
}

fn malformed_root(path: &Path) -> Error {
    Error::new(
        ErrorKind::Internal,
        "root_key_malformed",
        format!(
            "the root key file {} does not hold 32 hex-encoded bytes",
            path.display()
        ),
    )
}

impl RootKey {
    /// Seals `plaintext` under the root key, bound to `context`.
    pub fn seal(&self, context: &Context, plaintext: &[u8]) -> Result<Vec<u8>> {
        match &self.0 {
            Holder::Memory(key) => Ok(key.seal(context, plaintext)?),
            Holder::Token(key) => key.seal(context, plaintext),
        }
    }

    /// Opens a blob sealed by [`RootKey::seal`].
    pub fn open(&self, context: &Context, blob: &[u8]) -> Result<SecretVec> {
        match &self.0 {
            Holder::Memory(key) => Ok(key.open(context, blob)?),
            Holder::Token(key) => key.open(context, blob),
        }
    }

    /// Wraps key material (a tenant key, an installation key).
    pub fn wrap(&self, context: &Context, key: &KeyBytes) -> Result<Vec<u8>> {
        self.seal(context, key.expose())
    }

    /// Unwraps key material wrapped by [`RootKey::wrap`].
    pub fn unwrap_key(&self, context: &Context, blob: &[u8]) -> Result<KeyBytes> {
        let plain = self.open(context, blob)?;
        Ok(KeyBytes::from_slice(plain.expose())?)
    }

    /// Destroys a root key that has been replaced: a token key is deleted
    /// from its token; a key in memory is zeroized as it is dropped.
    pub fn destroy(self) -> Result<()> {
        match self.0 {
            Holder::Memory(_) => Ok(()),
            Holder::Token(key) => key.destroy(),
        }
    }

    /// The root key rebuilt from custodians' opened shares, if they are
    /// shares of `record`'s key.
    pub fn from_shares(record: &Record, shares: &[OpenShare]) -> Result<Self> {
        let root = shares::combine(shares).and_then(|key| Self::from_material(&key));
        match root {
            Ok(root) if record.matches(&root)? => Ok(root),
            _ => Err(shares::share_error("share_combination_wrong")),
        }
    }
}

/// The root-of-trust record of a vault whose root key is not a key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Record {
    /// Split into custodian shares.
    Shares {
        /// The vault id every share carries.
        vault_id: String,
        /// Shares that rebuild the key.
        threshold: u8,
        /// Shares issued.
        shares: u8,
        /// The check value (hex), sealed under the root key.
        check: String,
    },
    /// A key inside a PKCS#11 token.
    Pkcs11 {
        /// The vault id.
        vault_id: String,
        /// The PKCS#11 module (shared library) path.
        module: PathBuf,
        /// The token's label.
        token_label: String,
        /// The key object's label.
        key_label: String,
        /// The check value (hex), sealed under the root key.
        check: String,
    },
}

const CHECK_PLAINTEXT: &[u8] = b"anshin root of trust check v1";

fn check_context(vault: VaultId) -> Context {
    Context::new("anshin.root-of-trust-check.v1").part(vault.as_bytes())
}

impl Record {
    /// The record in `data_dir`, if there is one.
    pub fn read(data_dir: &Path) -> Result<Option<Self>> {
        Self::read_at(&data_dir.join(RECORD_FILE))
    }

    fn read_at(path: &Path) -> Result<Option<Self>> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "root_of_trust_unreadable",
                    format!("cannot read {}", path.display()),
                )
                .with_cause(e));
            }
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                "root_of_trust_unreadable",
                format!(
                    "{} is not a root-of-trust record; restore it from a backup",
                    path.display()
                ),
            )
            .with_cause(e)
        })
    }

    fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(Error::internal)?;
        write_private(path, text.as_bytes())
    }

    fn vault_text(&self) -> &str {
        match self {
            Self::Shares { vault_id, .. } | Self::Pkcs11 { vault_id, .. } => vault_id,
        }
    }

    /// The vault id.
    pub fn vault_id(&self) -> Result<VaultId> {
        VaultId::from_hex(self.vault_text()).ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                "root_of_trust_unreadable",
                "the root-of-trust record's vault_id is not 32 hex digits; restore it from a backup",
            )
        })
    }

    /// Whether `root` is the key this record was made with.
    pub fn matches(&self, root: &RootKey) -> Result<bool> {
        let check = match self {
            Self::Shares { check, .. } | Self::Pkcs11 { check, .. } => check,
        };
        let Ok(blob) = HEXLOWER.decode(check.as_bytes()) else {
            return Ok(false);
        };
        Ok(root
            .open(&check_context(self.vault_id()?), &blob)
            .is_ok_and(|plain| plain.expose() == CHECK_PLAINTEXT))
    }
}

/// How a new vault's root key is made (`anshin init`).
#[derive(Debug)]
pub enum NewRoot {
    /// A key file in the data directory.
    KeyFile,
    /// Custodian shares: one per passphrase slot (sealed when given), any
    /// `threshold` of which rebuild the key.
    Shares {
        /// Shares needed.
        threshold: u8,
        /// One entry per share.
        passphrases: Vec<Option<SecretString>>,
    },
    /// A new non-extractable key in a PKCS#11 token.
    Pkcs11(Pkcs11Settings),
}

/// A new root key, with the shares to hand to custodians (shares kind only).
#[derive(Debug)]
pub struct Provisioned {
    /// The key.
    pub root: RootKey,
    /// The custodians' shares, in text form.
    pub shares: Vec<SecretString>,
}

impl NewRoot {
    /// What this root is, as a `change_root` request names it.
    pub fn target(&self) -> Result<RootTarget> {
        Ok(match self {
            Self::KeyFile => RootTarget::File,
            Self::Shares {
                threshold,
                passphrases,
            } => RootTarget::Shares {
                threshold: *threshold,
                shares: u8::try_from(passphrases.len()).map_err(Error::internal)?,
            },
            Self::Pkcs11(_) => RootTarget::Pkcs11,
        })
    }

    /// Makes the root key and records it in `data_dir`.
    pub fn provision(self, data_dir: &Path) -> Result<Provisioned> {
        self.provision_as(data_dir, ROOT_KEY_FILE, RECORD_FILE)
    }

    /// Makes the root key and records it in `data_dir` beside the current
    /// one, which stays in force until [`commit_staged`]. A root staged
    /// earlier and never committed is removed first.
    pub fn stage(self, data_dir: &Path) -> Result<Provisioned> {
        discard_staged(data_dir)?;
        self.provision_as(data_dir, &staged(ROOT_KEY_FILE), &staged(RECORD_FILE))
    }

    fn provision_as(self, data_dir: &Path, key_file: &str, record_file: &str) -> Result<Provisioned> {
        match self {
            Self::KeyFile => {
                let path = data_dir.join(key_file);
                RootKey::create_file(&path)?;
                Ok(Provisioned {
                    root: RootKey::load(&path)?,
                    shares: Vec::new(),
                })
            }
            Self::Shares {
                threshold,
                passphrases,
            } => {
                let material = KeyBytes::generate()?;
                let vault = VaultId::generate()?;
                let split = shares::split(&material, vault, threshold, &passphrases)?;
                let root = RootKey::from_material(&material)?;
                Record::Shares {
                    vault_id: vault.to_hex(),
                    threshold,
                    shares: u8::try_from(split.len()).map_err(Error::internal)?,
                    check: check_value(&root, vault)?,
                }
                .write(&data_dir.join(record_file))?;
                Ok(Provisioned {
                    root,
                    shares: split.iter().map(shares::Share::to_text).collect(),
                })
            }
            Self::Pkcs11(settings) => {
                let root = RootKey(Holder::Token(TokenKey::create(&settings)?));
                let vault = VaultId::generate()?;
                let recorded = check_value(&root, vault).and_then(|check| {
                    Record::Pkcs11 {
                        vault_id: vault.to_hex(),
                        check,
                        module: settings.module,
                        token_label: settings.token_label,
                        key_label: settings.key_label,
                    }
                    .write(&data_dir.join(record_file))
                });
                if let Err(err) = recorded {
                    // A key no record names would only clutter the token.
                    let _ = root.destroy();
                    return Err(err);
                }
                Ok(Provisioned {
                    root,
                    shares: Vec::new(),
                })
            }
        }
    }
}

fn check_value(root: &RootKey, vault: VaultId) -> Result<String> {
    Ok(HEXLOWER.encode(&root.seal(&check_context(vault), CHECK_PLAINTEXT)?))
}

/// Whether `data_dir` holds a root of trust of any kind.
pub fn exists(data_dir: &Path) -> bool {
    data_dir.join(ROOT_KEY_FILE).exists() || data_dir.join(RECORD_FILE).exists()
}

/// Removes a root of trust just made, when the vault around it could not be
/// created; a PKCS#11 key is destroyed in its token.
pub fn remove(data_dir: &Path, root: RootKey) {
    let _ = root.destroy();
    let _ = fs::remove_file(data_dir.join(ROOT_KEY_FILE));
    let _ = fs::remove_file(data_dir.join(RECORD_FILE));
}

/// Removes a staged next root of trust: a key file, or a record and the
/// PKCS#11 key it names (the token's PIN from the environment).
pub fn discard_staged(data_dir: &Path) -> Result<()> {
    if let Some(Record::Pkcs11 {
        module,
        token_label,
        key_label,
        ..
    }) = Record::read_at(&data_dir.join(staged(RECORD_FILE)))?
    {
        let settings = Pkcs11Settings::from_env(module, token_label, key_label)?;
        match TokenKey::find(&settings) {
            Ok(key) => key.destroy()?,
            Err(err) if err.code() == "pkcs11_key_missing" => {}
            Err(err) => return Err(err),
        }
    }
    for name in [ROOT_KEY_FILE, RECORD_FILE] {
        match fs::remove_file(data_dir.join(staged(name))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_failed(&data_dir.join(staged(name)), e)),
        }
    }
    Ok(())
}

/// Puts the staged root of trust in force. The switch is one atomic rename
/// or unlink, so a crash leaves either root in force, never neither: a record
/// wins over a key file, so a staged key file is renamed into place before
/// the record is removed, and a staged record replaces the record in one
/// rename before the key file is removed. The replaced key file is
/// overwritten before it is unlinked (on storage that writes in place).
pub fn commit_staged(data_dir: &Path) -> Result<()> {
    let key = data_dir.join(ROOT_KEY_FILE);
    let record = data_dir.join(RECORD_FILE);
    let (staged_key, staged_record) = (
        data_dir.join(staged(ROOT_KEY_FILE)),
        data_dir.join(staged(RECORD_FILE)),
    );
    let old_key = fs::OpenOptions::new().write(true).open(&key).ok();
    let (rename_from, rename_to, superseded) = if staged_key.exists() {
        (staged_key, key.clone(), Some(record))
    } else {
        (staged_record, record, Some(key.clone()))
    };
    fs::rename(&rename_from, &rename_to).map_err(|e| write_failed(&rename_to, e))?;
    if let Some(old) = superseded {
        match fs::remove_file(&old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_failed(&old, e)),
        }
    }
    if let Some(mut file) = old_key {
        // The old key file's inode, renamed over or unlinked just now.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
        let _ = file.write_all(&zeros).and_then(|()| file.sync_all());
    }
    fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| write_failed(data_dir, e))
}

fn write_failed(path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Internal,
        "root_key_write_failed",
        format!("cannot write {}", path.display()),
    )
    .with_cause(e)
}

/// The root key of an initialised data directory, for the kinds that need no
/// custodian: a key file, or a PKCS#11 token (its PIN from the environment).
pub fn load(data_dir: &Path) -> Result<RootKey> {
    let Some(record) = Record::read(data_dir)? else {
        return RootKey::load(&data_dir.join(ROOT_KEY_FILE));
    };
    let Record::Pkcs11 {
        module,
        token_label,
        key_label,
        ..
    } = &record
    else {
        return Err(sealed());
    };
    let settings = Pkcs11Settings::from_env(module.clone(), token_label.clone(), key_label.clone())?;
    let root = RootKey(Holder::Token(TokenKey::find(&settings)?));
    if !record.matches(&root)? {
        return Err(Error::new(
            ErrorKind::Internal,
            "root_key_mismatch",
            "the PKCS#11 key found under this label is not this vault's root key; check pkcs11_key_label and the token",
        ));
    }
    Ok(root)
}

/// 503 `sealed`: the root key is not in memory until custodians unseal.
pub fn sealed() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "sealed",
        "the vault is sealed: its root key is split among custodians; enter shares with `anshin unseal` \
         (POST /v1/sys/unseal) until the threshold is reached",
    )
}

/// Writes a new owner-only file durably (file and directory entry).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| match path.parent() {
            Some(dir) => fs::File::open(dir).and_then(|d| d.sync_all()),
            None => Ok(()),
        });
    written.map_err(|e| write_failed(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_key_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("root.key");
        RootKey::create_file(&path).expect("create");
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(RootKey::load(&path).is_ok());
        assert!(
            RootKey::create_file(&path).is_err(),
            "never overwrites a root key"
        );
    }

    #[test]
    fn debug_of_every_root_key_holder_is_redacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let passphrase = SecretString::new("custodian words".into());
        let new_root = NewRoot::Shares {
            threshold: 2,
            passphrases: vec![Some(passphrase), None],
        };
        let shown_new = format!("{new_root:?}");
        let provisioned = new_root.provision(dir.path()).expect("provision");
        let settings = Pkcs11Settings {
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            token_label: "t".into(),
            key_label: "k".into(),
            pin: SecretString::new("9876".into()),
        };
        let shown = format!("{shown_new} {provisioned:?} {:?} {settings:?}", provisioned.root);
        assert!(
            !shown.contains("custodian words") && !shown.contains("9876"),
            "{shown}"
        );
        for share in &provisioned.shares {
            assert!(!shown.contains(&share.expose()[20..40]), "{shown}");
        }
        // The record holds the vault id and check value, never a share.
        let record = fs::read_to_string(dir.path().join(RECORD_FILE)).expect("record");
        for share in &provisioned.shares {
            assert!(!record.contains(&share.expose()[20..40]));
        }
        let parsed = Record::read(dir.path()).expect("read").expect("record");
        assert!(parsed.matches(&provisioned.root).expect("check"));
        let other = RootKey::from_material(&KeyBytes::generate().expect("rng")).expect("key");
        assert!(!parsed.matches(&other).expect("check"));
        assert_eq!(load(dir.path()).err().map(|e| e.code()), Some("sealed"));
    }

    #[test]
    fn root_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("root.key");
        RootKey::create_file(&path).expect("create");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = RootKey::load(&path).expect_err("refused");
        assert_eq!(err.code(), "root_key_permissions");
        assert!(err.message().contains("chmod 600"));
    }

    #[test]
    fn malformed_root_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("root.key");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("open");
        fs::write(&path, "not hex\n").expect("write");
        assert_eq!(
            RootKey::load(&path).err().map(|e| e.code()),
            Some("root_key_malformed")
        );
    }
}
