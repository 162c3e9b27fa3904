//! The root of trust: the key that wraps every tenant key.
//!
//! Today it is a key file in the data directory, readable by its owner only,
//! never inside the database, so a database copied without it reveals nothing.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anshin_crypto::envelope::{AeadKey, Context};
use anshin_crypto::secret::{KeyBytes, SecretVec};
use data_encoding::HEXLOWER;
use zeroize::Zeroize;

use crate::error::{Error, ErrorKind, Result};

/// The root key: wraps every tenant key. Reached only through its four
/// operations, whatever holds the key.
#[derive(Debug)]
pub struct RootKey(AeadKey);

impl RootKey {
    /// Writes a new random root key to `path`, which must not exist, readable by
    /// its owner only.
    pub fn create_file(path: &Path) -> Result<()> {
        let key = KeyBytes::generate()?;
        let mut text = HEXLOWER.encode(key.expose());
        text.push('\n');
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()).and_then(|()| file.sync_all()));
        text.zeroize();
        // The directory entry must be durable too: a database that outlives its
        // root key after a crash could never be opened again.
        let written = written.and_then(|()| match path.parent() {
            Some(dir) => fs::File::open(dir).and_then(|d| d.sync_all()),
            None => Ok(()),
        });
        written.map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                "root_key_write_failed",
                format!("cannot write the root key file {}", path.display()),
            )
            .with_cause(e)
        })
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
        Ok(Self(AeadKey::new(&material)?))
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
        Ok(self.0.seal(context, plaintext)?)
    }

    /// Opens a blob sealed by [`RootKey::seal`].
    pub fn open(&self, context: &Context, blob: &[u8]) -> Result<SecretVec> {
        Ok(self.0.open(context, blob)?)
    }

    /// Wraps key material (a tenant key, an installation key).
    pub fn wrap(&self, context: &Context, key: &KeyBytes) -> Result<Vec<u8>> {
        Ok(self.0.wrap(context, key)?)
    }

    /// Unwraps key material wrapped by [`RootKey::wrap`].
    pub fn unwrap_key(&self, context: &Context, blob: &[u8]) -> Result<KeyBytes> {
        Ok(self.0.unwrap_key(context, blob)?)
    }
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
