//! The key hierarchy: root key → tenant keys (versioned KEKs and a fingerprint
//! key) → one data key per record.
//!
//! The root key ([`crate::vault::root`]) lives outside the database;
//! the database holds tenant keys wrapped by it, and records hold data keys wrapped
//! by a tenant KEK. A database copied without the root key file reveals nothing.
//! The database also holds a check value sealed under the root key, so a server
//! started with the wrong root key stops at once instead of failing per record.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anshin_crypto::envelope::{AeadKey, Context};
use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::{KeyBytes, SecretVec};

use crate::db::keys::{RecordKeyRow, Rewrapped, RootChange};
use crate::db::{KeyPurpose, Sealed, Store, StoreError, TenantKeyRow};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{KeyRequestId, TenantId};
use crate::vault::root::RootKey;

const ROOT_CHECK_KEY: &str = "root_key_check";
const ROOT_CHECK_PLAINTEXT: &[u8] = b"anshin root key check v1";
/// The names of every installation key ([`Keyring::installation_key`]): a
/// change of the root of trust re-wraps each.
const INSTALLATION_KEYS: &[&str] = &[
    crate::audit::log::SIGNING_KEY,
    crate::proxy::webhooks::SEALING_KEY,
];

fn root_check_context() -> Context {
    Context::new("anshin.root-check.v1")
}

fn installation_key_context(name: &str) -> Context {
    Context::new("anshin.installation-key.v1").part(name.as_bytes())
}

/// Whether a database may be opened while a change of its root of trust is
/// staged but not yet in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagedChange {
    /// No: a server must not run beside a change under way.
    Refuse,
    /// Yes: `anshin keys change-root` itself (to redo or cancel it).
    Allow,
}

/// How long a node serves tenant keys from memory before reading them again,
/// so that a rotation made on another node reaches it. Retiring a version or
/// shredding a tenant on another node takes effect here at once all the same:
/// a record's data key is read with the record (a retired version wraps none,
/// a shredded tenant has none left), the store refuses a new data key under a
/// version it no longer holds ([`Keyring::reload`] then), and a shredded
/// tenant's cards keep no fingerprint to find them by.
pub const KEYS_REFRESH: Duration = Duration::from_secs(30);

/// A tenant's unwrapped keys.
pub struct TenantKeys {
    tenant: TenantId,
    current_kek: u32,
    keks: BTreeMap<u32, AeadKey>,
    fingerprint: FingerprintKey,
    loaded: Instant,
    counts: Arc<EncryptionCounts>,
}

/// Encryptions under each KEK version since they were last added to the
/// store: AES-GCM with random nonces is safe for 2^32 encryptions per key
/// (NIST SP 800-38D), and automatic rotation watches the sum.
#[derive(Default)]
struct EncryptionCounts(Mutex<HashMap<(TenantId, u32), u64>>);

impl EncryptionCounts {
    fn add(&self, tenant: &TenantId, version: u32) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry((tenant.clone(), version)).or_default() += 1;
        }
    }

    fn take(&self) -> Vec<(TenantId, u32, u64)> {
        self.0
            .lock()
            .map(|mut map| map.drain().map(|((t, v), n)| (t, v, n)).collect())
            .unwrap_or_default()
    }
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
    /// The stable name, as stored in `record_keys.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Customer => "customer",
            Self::Order => "order",
        }
    }

    fn parse(value: &str) -> Result<Self> {
        match value {
            "card" => Ok(Self::Card),
            "customer" => Ok(Self::Customer),
            "order" => Ok(Self::Order),
            _ => Err(Error::internal(StoreError::Corrupt("unknown record kind"))),
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
        self.counts.add(&self.tenant, self.current_kek);
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

    /// Whether this holds KEK `version`.
    pub fn holds(&self, version: u32) -> bool {
        self.keks.contains_key(&version)
    }

    /// The KEK version new records are wrapped with.
    pub fn current_version(&self) -> u32 {
        self.current_kek
    }

    /// Re-wraps a record's data key under the current KEK. The record's data
    /// is never opened: only its 32-byte data key passes through memory.
    pub fn rewrap(&self, row: &RecordKeyRow) -> Result<Vec<u8>> {
        let kind = RecordKind::parse(&row.kind)?;
        let (old, new) = (self.keks.get(&row.kek_version), self.keks.get(&self.current_kek));
        let (Some(old), Some(new)) = (old, new) else {
            return Err(Error::internal(MissingKek));
        };
        let material = old.unwrap_key(
            &dek_context(&self.tenant, kind, &row.record_id, row.kek_version),
            &row.wrapped_dek,
        )?;
        let wrapped = new.wrap(
            &dek_context(&self.tenant, kind, &row.record_id, self.current_kek),
            &material,
        )?;
        self.counts.add(&self.tenant, self.current_kek);
        Ok(wrapped)
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
    pub(super) root: RootKey,
    tenants: RwLock<HashMap<TenantId, Arc<TenantKeys>>>,
    counts: Arc<EncryptionCounts>,
}

impl Keyring {
    /// A keyring over the root key.
    pub fn new(root: RootKey) -> Self {
        Self {
            root,
            tenants: RwLock::new(HashMap::new()),
            counts: Arc::default(),
        }
    }

    /// The root key, to be destroyed once a change of the root of trust is
    /// in force.
    pub fn into_root(self) -> RootKey {
        self.root
    }

    fn is_root_check(&self, sealed: &[u8]) -> bool {
        self.root
            .open(&root_check_context(), sealed)
            .is_ok_and(|plain| plain.expose() == ROOT_CHECK_PLAINTEXT)
    }

    /// Checks that the root key is the one this database was created with (and
    /// records the check value on a fresh database). When it is instead the
    /// next root of a change that was put in force but not yet applied to the
    /// database (a crash in between), the change is applied now and its
    /// request returned.
    pub async fn verify(&self, store: &Store, staged: StagedChange) -> Result<Option<KeyRequestId>> {
        let candidate = self.root.seal(&root_check_context(), ROOT_CHECK_PLAINTEXT)?;
        let stored = store.meta_init(ROOT_CHECK_KEY, candidate).await?;
        let pending = store
            .meta(super::root_change::STAGED_META)
            .await?
            .map(|bytes| super::root_change::decode(&bytes))
            .transpose()?;
        if self.is_root_check(&stored) {
            return match (pending, staged) {
                (Some(change), StagedChange::Refuse) => Err(super::root_change::pending(&change.request)),
                _ => Ok(None),
            };
        }
        if let Some(change) = pending
            && change
                .meta
                .iter()
                .any(|m| m.key == ROOT_CHECK_KEY && self.is_root_check(&m.new))
        {
            let request = change.request.clone();
            super::root_change::apply(store, change).await?;
            return Ok(Some(request));
        }
        Err(Error::new(
            ErrorKind::Internal,
            "root_key_mismatch",
            "the root key does not belong to this database; use the data directory's own root of trust",
        ))
    }

    /// Everything the root key wraps (every tenant key, the root check, the
    /// installation keys), re-wrapped under `next`, for `request`. Only keys
    /// are unwrapped, never a record.
    pub async fn rewrap_under(
        &self,
        store: &Store,
        next: &RootKey,
        request: KeyRequestId,
    ) -> Result<RootChange> {
        let rewrap = |context: &Context, old: Vec<u8>| -> Result<(Vec<u8>, Vec<u8>)> {
            let plain = self.root.open(context, &old)?;
            let new = next.seal(context, plain.expose())?;
            Ok((old, new))
        };
        let mut tenant_keys = Vec::new();
        for (tenant, row) in store.all_tenant_keys().await? {
            let (old, new) = rewrap(
                &tenant_key_context(&tenant, row.purpose, row.version),
                row.wrapped,
            )?;
            tenant_keys.push(Rewrapped {
                key: (tenant, row.purpose, row.version),
                old,
                new,
            });
        }
        let mut meta = Vec::new();
        let named = std::iter::once((ROOT_CHECK_KEY, root_check_context())).chain(
            INSTALLATION_KEYS
                .iter()
                .map(|name| (*name, installation_key_context(name))),
        );
        for (name, context) in named {
            if let Some(old) = store.meta(name).await? {
                let (old, new) = rewrap(&context, old)?;
                meta.push(Rewrapped {
                    key: name.to_owned(),
                    old,
                    new,
                });
            }
        }
        Ok(RootChange {
            request,
            tenant_keys,
            meta,
        })
    }

    /// A key of the whole installation, named `name` (one of
    /// [`INSTALLATION_KEYS`]), kept in the database wrapped by the root key.
    /// The first node to ask creates it; every node then reads the same one.
    pub async fn installation_key(&self, store: &Store, name: &str) -> Result<KeyBytes> {
        if !INSTALLATION_KEYS.contains(&name) {
            return Err(Error::internal(StoreError::Corrupt(
                "an installation key a root change would not re-wrap",
            )));
        }
        let context = installation_key_context(name);
        let candidate = self.root.wrap(&context, &KeyBytes::generate()?)?;
        let stored = store.meta_init(name, candidate).await?;
        self.root.unwrap_key(&context, &stored)
    }

    /// Adds a KEK version to `tenant`; new records use it at once on this node
    /// and within [`KEYS_REFRESH`] on every other. Returns the new version.
    pub async fn rotate(&self, store: &Store, tenant: &TenantId, now: i64) -> Result<u32> {
        loop {
            self.forget(tenant);
            let version = self
                .tenant(store, tenant)
                .await?
                .current_kek
                .checked_add(1)
                .ok_or_else(|| Error::internal(StoreError::Corrupt("key version out of range")))?;
            let wrapped = self.root.wrap(
                &tenant_key_context(tenant, KeyPurpose::Kek, version),
                &KeyBytes::generate()?,
            )?;
            // Another node may have taken this version a moment ago: then read
            // its state and rotate past it, so every call adds one version.
            if store.insert_kek_version(tenant, version, wrapped, now).await? {
                self.forget(tenant);
                return Ok(version);
            }
        }
    }

    /// Drops `tenant`'s cached keys (after a rotation or a retirement).
    pub fn forget(&self, tenant: &TenantId) {
        if let Ok(mut map) = self.tenants.write() {
            map.remove(tenant);
        }
    }

    /// The tenant's keys read from the store now, whatever this node holds:
    /// for a use the store cannot confirm by itself, and when it has refused
    /// a write made with the cached ones. 404 once the tenant is shredded.
    pub async fn reload(&self, store: &Store, tenant: &TenantId) -> Result<Arc<TenantKeys>> {
        self.forget(tenant);
        self.tenant(store, tenant).await
    }

    /// Encryption counts since the last call, to add to the store.
    pub fn take_encryption_counts(&self) -> Vec<(TenantId, u32, u64)> {
        self.counts.take()
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

    /// The tenant's keys, unwrapped once and then served from memory for
    /// [`KEYS_REFRESH`].
    pub async fn tenant(&self, store: &Store, tenant: &TenantId) -> Result<Arc<TenantKeys>> {
        self.tenant_holding(store, tenant, None).await
    }

    /// The tenant's keys, read again if they lack KEK `version` (which a
    /// rotation on another node has just created).
    pub async fn tenant_holding(
        &self,
        store: &Store,
        tenant: &TenantId,
        version: Option<u32>,
    ) -> Result<Arc<TenantKeys>> {
        let cached = self.tenants.read().ok().and_then(|map| map.get(tenant).cloned());
        if let Some(keys) = cached
            && keys.loaded.elapsed() < KEYS_REFRESH
            && version.is_none_or(|v| keys.keks.contains_key(&v))
        {
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
            loaded: Instant::now(),
            counts: self.counts.clone(),
        });
        if let Ok(mut map) = self.tenants.write() {
            map.insert(tenant.clone(), keys.clone());
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tenant_keys(versions: &[u32]) -> TenantKeys {
        let material = |v: u32| KeyBytes::from_slice(&[v as u8; 32]).expect("32 bytes");
        TenantKeys {
            tenant: TenantId::generate().expect("rng"),
            current_kek: versions.iter().copied().max().expect("a version"),
            keks: versions
                .iter()
                .map(|&v| (v, AeadKey::new(&material(v)).expect("key")))
                .collect(),
            fingerprint: FingerprintKey::new(&material(99)),
            loaded: Instant::now(),
            counts: Arc::default(),
        }
    }

    fn row_of(kind: &str, version: u32, wrapped: Vec<u8>) -> RecordKeyRow {
        RecordKeyRow {
            id: 1,
            record_id: "card_x".into(),
            kind: kind.into(),
            kek_version: version,
            wrapped_dek: wrapped,
        }
    }

    #[test]
    fn rewrap_moves_a_data_key_to_the_current_version_unchanged() {
        let old = tenant_keys(&[1]);
        let (record, version, wrapped) = old.new_record(RecordKind::Card, "card_x").expect("new");
        let field = record.seal("number", b"4111111111111111").expect("seal");
        let both = TenantKeys {
            tenant: old.tenant.clone(),
            ..tenant_keys(&[1, 2])
        };
        let rewrapped = both.rewrap(&row_of("card", version, wrapped)).expect("rewrap");
        let sealed = Sealed::<0> {
            kek_version: 2,
            wrapped_dek: rewrapped,
            fields: [],
        };
        let reopened = both
            .open_record(RecordKind::Card, "card_x", &sealed)
            .expect("opens under v2");
        assert_eq!(
            reopened.open("number", &field).expect("field").expose(),
            b"4111111111111111",
            "the same data key: fields need no re-encryption"
        );
        assert_eq!(both.counts.take().iter().map(|c| c.2).sum::<u64>(), 1);
    }

    #[test]
    fn rewrap_refuses_a_key_of_another_kind_or_an_unknown_version() {
        let keys = tenant_keys(&[1, 2]);
        let (_, version, wrapped) = keys.new_record(RecordKind::Card, "card_x").expect("new");
        assert!(
            keys.rewrap(&row_of("customer", version, wrapped.clone()))
                .is_err(),
            "bound to the record kind"
        );
        assert!(keys.rewrap(&row_of("vault", version, wrapped.clone())).is_err());
        assert!(keys.rewrap(&row_of("card", 7, wrapped)).is_err());
    }

    #[test]
    fn key_types_print_no_key_material() {
        let keys = tenant_keys(&[1]);
        let (record, _, _) = keys.new_record(RecordKind::Card, "card_x").expect("new");
        let material = KeyBytes::from_slice(&[0xAB; 32]).expect("32 bytes");
        let printed = format!(
            "{:?} {:?} {:?} {:?}",
            material,
            AeadKey::new(&material).expect("key"),
            FingerprintKey::new(&material),
            keys.keks.get(&1).expect("v1"),
        );
        assert!(printed.contains("redacted"), "{printed}");
        for leak in ["ab, ab", "AB, AB", "171, 171", "abab"] {
            assert!(!printed.contains(leak), "{printed}");
        }
        drop(record);
    }

    proptest! {
        /// A wrapped data key read back from an edited database: any change
        /// fails with an error, never a panic and never a different key.
        #[test]
        fn a_tampered_wrapped_key_never_rewraps(flip in 0usize..60, byte in 1u8..=255, cut in 0usize..70) {
            let keys = tenant_keys(&[1, 2]);
            let (_, version, wrapped) = keys.new_record(RecordKind::Order, "card_x").expect("new");
            let mut tampered = wrapped.clone();
            let i = flip % tampered.len();
            tampered[i] ^= byte;
            let refused = keys.rewrap(&row_of("order", version, tampered)).is_err();
            prop_assert!(refused);
            let truncated = wrapped[..cut.min(wrapped.len() - 1)].to_vec();
            let refused = keys.rewrap(&row_of("order", version, truncated)).is_err();
            prop_assert!(refused);
        }
    }
}
