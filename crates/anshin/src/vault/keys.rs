//! The key hierarchy: root key → tenant keys (versioned KEKs and a fingerprint
//! key) → one data key per record.
//!
//! The root key ([`crate::vault::root`]) lives outside the database;
//! the database holds tenant keys wrapped by it, and records hold data keys wrapped
//! by a tenant KEK. A database copied without the root key file reveals nothing.
//! The database also holds a check value sealed under the root key, so a server
//! started with the wrong root key stops at once instead of failing per record.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use anshin_crypto::envelope::{AeadKey, Context};
use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::{KeyBytes, SecretVec};

use crate::db::{KeyPurpose, Sealed, Store, TenantKeyRow};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::TenantId;
use crate::vault::root::RootKey;

const ROOT_CHECK_KEY: &str = "root_key_check";
const ROOT_CHECK_PLAINTEXT: &[u8] = b"anshin root key check v1";

/// A tenant's unwrapped keys.
pub struct TenantKeys {
    tenant: TenantId,
    current_kek: u32,
    keks: BTreeMap<u32, AeadKey>,
    fingerprint: FingerprintKey,
}

/// What a sealed record is, for its associated data.
#[derive(Debug, Clone, Copy)]
pub enum RecordKind {
    /// A card.
    Card,
    /// A customer's personal data.
    Customer,
    /// An order's shipping data.
    Order,
}

impl RecordKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Customer => "customer",
            Self::Order => "order",
        }
    }
}

/// A record's data key, bound to the record's place.
pub struct RecordKey<'a> {
    key: AeadKey,
    tenant: &'a TenantId,
    kind: RecordKind,
    id: &'a str,
}

impl RecordKey<'_> {
    fn field_context(&self, field: &str) -> Context {
        Context::new("anshin.field.v1")
            .part(self.tenant.as_str().as_bytes())
            .part(self.kind.as_str().as_bytes())
            .part(self.id.as_bytes())
            .part(field.as_bytes())
    }

    /// Seals one field of the record.
    pub fn seal(&self, field: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        Ok(self.key.seal(&self.field_context(field), plaintext)?)
    }

    /// Opens one field of the record.
    pub fn open(&self, field: &str, blob: &[u8]) -> Result<SecretVec> {
        Ok(self.key.open(&self.field_context(field), blob)?)
    }
}

fn dek_context(tenant: &TenantId, kind: RecordKind, id: &str, kek_version: u32) -> Context {
    Context::new("anshin.dek.v1")
        .part(tenant.as_str().as_bytes())
        .part(kind.as_str().as_bytes())
        .part(id.as_bytes())
        .number(u64::from(kek_version))
}

impl TenantKeys {
    /// A fresh data key for a new record, and its wrapped form under the current KEK.
    pub fn new_record<'a>(&'a self, kind: RecordKind, id: &'a str) -> Result<(RecordKey<'a>, u32, Vec<u8>)> {
        let material = KeyBytes::generate()?;
        let kek = self
            .keks
            .get(&self.current_kek)
            .ok_or_else(|| Error::internal(MissingKek))?;
        let wrapped = kek.wrap(&dek_context(&self.tenant, kind, id, self.current_kek), &material)?;
        let key = RecordKey {
            key: AeadKey::new(&material)?,
            tenant: &self.tenant,
            kind,
            id,
        };
        Ok((key, self.current_kek, wrapped))
    }

    /// The data key of an existing record.
    pub fn open_record<'a, const N: usize>(
        &'a self,
        kind: RecordKind,
        id: &'a str,
        sealed: &Sealed<N>,
    ) -> Result<RecordKey<'a>> {
        let kek = self
            .keks
            .get(&sealed.kek_version)
            .ok_or_else(|| Error::internal(MissingKek))?;
        let material = kek.unwrap_key(
            &dek_context(&self.tenant, kind, id, sealed.kek_version),
            &sealed.wrapped_dek,
        )?;
        Ok(RecordKey {
            key: AeadKey::new(&material)?,
            tenant: &self.tenant,
            kind,
            id,
        })
    }

    /// The keyed fingerprint of a value.
    pub fn fingerprint(&self, purpose: &str, value: &[u8]) -> [u8; 32] {
        self.fingerprint.fingerprint(purpose, value)
    }
}

/// A record names a KEK version the tenant does not have.
#[derive(Debug)]
struct MissingKek;

impl std::fmt::Display for MissingKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record refers to a key-encryption key version this tenant does not have")
    }
}

impl std::error::Error for MissingKek {}

fn tenant_key_context(tenant: &TenantId, purpose: KeyPurpose, version: u32) -> Context {
    let purpose = match purpose {
        KeyPurpose::Kek => "kek",
        KeyPurpose::Fingerprint => "fingerprint",
    };
    Context::new("anshin.tenant-key.v1")
        .part(tenant.as_str().as_bytes())
        .part(purpose.as_bytes())
        .number(u64::from(version))
}

/// The root key and a cache of unwrapped tenant keys.
pub struct Keyring {
    root: RootKey,
    tenants: RwLock<HashMap<TenantId, Arc<TenantKeys>>>,
}

impl Keyring {
    /// A keyring over the root key.
    pub fn new(root: RootKey) -> Self {
        Self {
            root,
            tenants: RwLock::new(HashMap::new()),
        }
    }

    /// Checks that the root key is the one this database was created with (and
    /// records the check value on a fresh database).
    pub async fn verify(&self, store: &Store) -> Result<()> {
        let context = Context::new("anshin.root-check.v1");
        let candidate = self.root.seal(&context, ROOT_CHECK_PLAINTEXT)?;
        let stored = store.meta_init(ROOT_CHECK_KEY, candidate).await?;
        match self.root.open(&context, &stored) {
            Ok(plain) if plain.expose() == ROOT_CHECK_PLAINTEXT => Ok(()),
            _ => Err(Error::new(
                ErrorKind::Internal,
                "root_key_mismatch",
                "the root key file does not belong to this database; use the data directory's own root.key",
            )),
        }
    }

    /// A key of the whole installation, named `name`, kept in the database
    /// wrapped by the root key. The first node to ask creates it; every node then
    /// reads the same one.
    pub async fn installation_key(&self, store: &Store, name: &str) -> Result<KeyBytes> {
        let context = Context::new("anshin.installation-key.v1").part(name.as_bytes());
        let candidate = self.root.wrap(&context, &KeyBytes::generate()?)?;
        let stored = store.meta_init(name, candidate).await?;
        self.root.unwrap_key(&context, &stored)
    }

    /// New first-version keys for a new tenant, wrapped for storage.
    pub fn new_tenant_keys(&self, tenant: &TenantId, now: i64) -> Result<Vec<TenantKeyRow>> {
        [KeyPurpose::Kek, KeyPurpose::Fingerprint]
            .into_iter()
            .map(|purpose| {
                let material = KeyBytes::generate()?;
                let wrapped = self
                    .root
                    .wrap(&tenant_key_context(tenant, purpose, 1), &material)?;
                Ok(TenantKeyRow {
                    purpose,
                    version: 1,
                    wrapped,
                    created_at: now,
                })
            })
            .collect()
    }

    /// The tenant's keys, unwrapped once and then served from memory.
    pub async fn tenant(&self, store: &Store, tenant: &TenantId) -> Result<Arc<TenantKeys>> {
        if let Some(keys) = self.tenants.read().ok().and_then(|map| map.get(tenant).cloned()) {
            return Ok(keys);
        }
        let rows = store.tenant_keys(tenant).await?;
        let mut keks = BTreeMap::new();
        let mut fingerprint = None;
        for row in rows {
            let material = self.root.unwrap_key(
                &tenant_key_context(tenant, row.purpose, row.version),
                &row.wrapped,
            )?;
            match row.purpose {
                KeyPurpose::Kek => {
                    keks.insert(row.version, AeadKey::new(&material)?);
                }
                // The newest fingerprint key wins; there is one version today.
                KeyPurpose::Fingerprint => fingerprint = Some(FingerprintKey::new(&material)),
            }
        }
        let (Some(fingerprint), Some(&current_kek)) = (fingerprint, keks.keys().next_back()) else {
            return Err(Error::not_found("tenant"));
        };
        let keys = Arc::new(TenantKeys {
            tenant: tenant.clone(),
            current_kek,
            keks,
            fingerprint,
        });
        if let Ok(mut map) = self.tenants.write() {
            map.insert(tenant.clone(), keys.clone());
        }
        Ok(keys)
    }
}
