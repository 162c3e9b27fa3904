//! Storage: one [`Store`] over SQLite (the embedded default) and PostgreSQL.
//!
//! Both backends implement the same operations with the same meaning, in files
//! of the same shape (`sqlite.rs`, `postgres.rs`); the conformance suite in
//! `tests/it/store.rs` runs against both. Rows hold only ciphertext for sensitive
//! fields: this layer never sees a card number or personal data in clear.
//!
//! Durability: a write returns only after its transaction is committed durably
//! (SQLite `synchronous=FULL` in WAL mode; PostgreSQL's default synchronous
//! commit). Concurrent writes share commits: SQLite through one writer thread
//! that commits whatever queued while the previous commit was syncing,
//! PostgreSQL through its own WAL group flush.

mod postgres;
mod sqlite;

use std::fmt;

use crate::access::Role;
use crate::access::cidr::AllowList;
use crate::ids::{CardToken, CustomerId, OrderId, PrincipalId, ShopId, TenantId};

/// A storage failure. Messages carry SQL errors, never row contents.
#[derive(Debug)]
pub enum StoreError {
    /// The database cannot be reached or is busy beyond its timeout.
    Unavailable(String),
    /// The database answered with an error.
    Backend(String),
    /// A row read back violates an invariant this code relies on.
    Corrupt(&'static str),
    /// The database URL cannot be used: what is wrong and what to do (never
    /// the URL, which may hold a password), under a stable code.
    BadUrl { code: &'static str, message: String },
    /// The audit entry a write appends in its own transaction could not be
    /// appended, so the write was rolled back.
    Audit(String),
    /// A new record's data key names a KEK version the store no longer holds
    /// (retired, or the tenant shredded, on another node since this node read
    /// its keys): nothing was written.
    KeyGone,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(msg) => write!(f, "database unavailable: {msg}"),
            Self::Backend(msg) => write!(f, "database error: {msg}"),
            Self::Corrupt(what) => write!(f, "stored data is inconsistent: {what}"),
            Self::BadUrl { message, .. } => write!(f, "bad database URL: {message}"),
            Self::Audit(msg) => write!(f, "audit append failed, write rolled back: {msg}"),
            Self::KeyGone => f.write_str("a new record's key-encryption key version is no longer stored"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<pg_connect::PgUrlError> for StoreError {
    fn from(err: pg_connect::PgUrlError) -> Self {
        Self::BadUrl {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

/// Which backend a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in the data directory.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Lower-case name, for output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A tenant.
#[derive(Debug, Clone)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
}

/// What a tenant key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Key-encryption key: wraps record data keys.
    Kek,
    /// HMAC key for card fingerprints.
    Fingerprint,
}

impl KeyPurpose {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Kek => "kek",
            Self::Fingerprint => "fingerprint",
        }
    }

    pub(crate) fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "kek" => Ok(Self::Kek),
            "fingerprint" => Ok(Self::Fingerprint),
            _ => Err(StoreError::Corrupt("unknown key purpose")),
        }
    }
}

/// One version of a tenant key, wrapped by the root key.
#[derive(Debug, Clone)]
pub struct TenantKeyRow {
    pub purpose: KeyPurpose,
    pub version: u32,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
}

/// A shop.
#[derive(Debug, Clone)]
pub struct ShopRow {
    pub id: ShopId,
    pub tenant_id: TenantId,
    pub name: String,
    pub created_at: i64,
}

/// An API principal. Its keys are [`credentials::KeyRow`]s, stored only as hashes.
#[derive(Debug, Clone)]
pub struct PrincipalRow {
    pub id: PrincipalId,
    pub name: String,
    pub role: Role,
    pub tenant_id: Option<TenantId>,
    pub shop_id: Option<ShopId>,
    /// Where its keys may be used from; `None` for anywhere.
    pub allowed_ips: Option<AllowList>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

/// Encrypted payload of a record: its wrapped data key and sealed fields.
#[derive(Clone)]
pub struct Sealed<const N: usize> {
    pub kek_version: u32,
    pub wrapped_dek: Vec<u8>,
    pub fields: [Option<Vec<u8>>; N],
}

/// A card: brand and last four in clear (PCI DSS 3.4.1 allows showing them),
/// number, expiry and holder name sealed. `sealed` is `None` once shredded.
#[derive(Clone)]
pub struct CardRow {
    pub token: CardToken,
    pub tenant_id: TenantId,
    pub fingerprint: Option<[u8; 32]>,
    pub brand: String,
    pub last4: String,
    pub sealed: Option<Sealed<3>>,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

/// Index of each sealed card field in [`CardRow::sealed`].
pub mod card_field {
    pub const NUMBER: usize = 0;
    pub const EXPIRY: usize = 1;
    pub const HOLDER: usize = 2;
    pub const NAMES: [&str; 3] = ["number", "expiry", "holder"];
}

/// Result of storing a tokenized card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardInsert {
    /// A new card; the token given was stored.
    Inserted,
    /// The tenant already holds this card (same fingerprint) under `token`.
    /// `newly_visible` is true when this call gave the shop access to it.
    Existing { token: CardToken, newly_visible: bool },
    /// The conflicting card was shredded before it could be read: try again.
    Vanished,
}

/// Result of a shop giving up a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardRelease {
    /// The shop had no such card.
    NotFound,
    /// The shop no longer sees the card; other shops still hold it.
    Released,
    /// No one held it any more: the card was crypto-shredded.
    Shredded,
}

/// Index of each sealed customer field in [`CustomerRow::sealed`].
pub mod customer_field {
    pub const NAME: usize = 0;
    pub const NAME_KANA: usize = 1;
    pub const POSTAL_CODE: usize = 2;
    pub const ADDRESS: usize = 3;
    pub const PHONE: usize = 4;
    pub const EMAIL: usize = 5;
    pub const FAX: usize = 6;
    pub const NAMES: [&str; 7] = [
        "name",
        "name_kana",
        "postal_code",
        "address",
        "phone",
        "email",
        "fax",
    ];
}

/// A customer's personal data, every field sealed.
#[derive(Clone)]
pub struct CustomerRow {
    pub id: CustomerId,
    pub tenant_id: TenantId,
    pub shop_id: Option<ShopId>,
    pub sealed: Option<Sealed<7>>,
    pub created_at: i64,
}

/// An order.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub id: OrderId,
    pub tenant_id: TenantId,
    pub shop_id: ShopId,
    pub customer_id: CustomerId,
    pub card_token: Option<CardToken>,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// An order with the masked card it was paid with.
#[derive(Debug, Clone)]
pub struct OrderView {
    pub order: OrderRow,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
}

/// What a caller may see: one tenant (or, for global principals, all) and
/// within it one shop (or all). Rows outside the scope are never returned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub tenant: Option<&'a TenantId>,
    pub shop: Option<&'a ShopId>,
}

impl Scope<'_> {
    fn tenant_str(&self) -> Option<&str> {
        self.tenant.map(TenantId::as_str)
    }

    fn shop_str(&self) -> Option<&str> {
        self.shop.map(ShopId::as_str)
    }
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    /// SQLite.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL.
    Postgres(postgres::PgStore),
}

/// Forwards a method to the backend.
/// What `anshin backup` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupPart {
    /// The data (vault without key state, audit log): restorable only next
    /// to a key state, so shredded records stay unreadable in it.
    Data,
    /// The key state (tenant KEKs wrapped by the root key, record data keys
    /// wrapped by KEKs): kept apart from data backups, and short-lived.
    Keys,
}

macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

pub mod alerts;
pub mod audit;
pub mod baselines;
pub mod checkout;
pub mod credentials;
pub mod inventory;
pub mod keys;
pub mod pages;
pub mod pg_connect;
pub mod retention;
pub mod webhooks;

impl Store {
    /// Opens the store named by `url` and applies pending migrations.
    /// `sqlite://PATH` (or a bare path) selects SQLite, `postgres://…` PostgreSQL.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(postgres::PgStore::open(url).await?))
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            if path.is_empty() {
                return Err(StoreError::BadUrl {
                    code: "database_url_invalid",
                    message:
                        "the SQLite path is empty; give sqlite://PATH or postgres://… / SQLite のパスが空です"
                            .into(),
                });
            }
            Ok(Self::Sqlite(sqlite::SqliteStore::open(path.as_ref()).await?))
        }
    }

    /// An online backup of an SQLite store into the existing directory `dir`
    /// (see [`sqlite::SqliteStore`]); PostgreSQL is backed up with `pg_dump`.
    pub async fn backup(
        &self,
        dir: &std::path::Path,
        part: BackupPart,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        match self {
            Self::Sqlite(store) => store.backup(dir, part).await,
            Self::Postgres(_) => Err(StoreError::Backend(
                "anshin backup copies SQLite stores; back PostgreSQL up with pg_dump".into(),
            )),
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Writes and commits made by this process, where the store batches them
    /// itself (SQLite); PostgreSQL groups commits on the server.
    pub fn group_commit(&self) -> Option<(u64, u64)> {
        match self {
            Self::Sqlite(s) => Some(s.group_commit()),
            Self::Postgres(_) => None,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self.ping())
    }

    /// A value from the `meta` table.
    pub async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self.meta(key))
    }

    /// Sets a `meta` value unless one exists; returns the value in force.
    pub async fn meta_init(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        dispatch!(self.meta_init(key, value))
    }

    /// Creates a tenant with its first key versions.
    pub async fn insert_tenant(&self, tenant: TenantRow, keys: Vec<TenantKeyRow>) -> Result<(), StoreError> {
        dispatch!(self.insert_tenant(tenant, keys))
    }

    /// A tenant.
    pub async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRow>, StoreError> {
        dispatch!(self.tenant(id))
    }

    /// All tenants, oldest first.
    pub async fn tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        dispatch!(self.tenants())
    }

    /// Every key version of a tenant.
    pub async fn tenant_keys(&self, id: &TenantId) -> Result<Vec<TenantKeyRow>, StoreError> {
        dispatch!(self.tenant_keys(id))
    }

    /// Creates a shop.
    pub async fn insert_shop(&self, shop: ShopRow) -> Result<(), StoreError> {
        dispatch!(self.insert_shop(shop))
    }

    /// A shop.
    pub async fn shop(&self, id: &ShopId) -> Result<Option<ShopRow>, StoreError> {
        dispatch!(self.shop(id))
    }

    /// The shops of a tenant.
    pub async fn shops(&self, tenant: &TenantId) -> Result<Vec<ShopRow>, StoreError> {
        dispatch!(self.shops(tenant))
    }

    /// Creates a principal with its first key.
    pub async fn insert_principal(
        &self,
        principal: PrincipalRow,
        key: credentials::KeyRow,
    ) -> Result<(), StoreError> {
        dispatch!(self.insert_principal(principal, key))
    }

    /// The key with this hash and its principal, whatever their state
    /// (expired, revoked, disabled): the caller decides what each means.
    pub async fn credential(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(PrincipalRow, credentials::KeyRow)>, StoreError> {
        dispatch!(self.credential(key_hash))
    }

    /// A principal.
    pub async fn principal(&self, id: &PrincipalId) -> Result<Option<PrincipalRow>, StoreError> {
        dispatch!(self.principal(id))
    }

    /// Principals, of one tenant or (with `None`) all.
    pub async fn principals(&self, tenant: Option<&TenantId>) -> Result<Vec<PrincipalRow>, StoreError> {
        dispatch!(self.principals(tenant))
    }

    /// Disables a principal and revokes its keys; false if it was unknown or
    /// already disabled.
    pub async fn disable_principal(&self, id: &PrincipalId, at: i64) -> Result<bool, StoreError> {
        dispatch!(self.disable_principal(id, at))
    }

    /// Stores a card unless the tenant holds one with the same fingerprint, and
    /// lets `shop` see it either way (the first shop is kept on the card row;
    /// later ones in `card_shops`, so the common case writes one row).
    ///
    /// `record` builds the audit entry from the token the caller ends up with
    /// (new or existing); it is appended in the same transaction, so a card is
    /// never stored unrecorded and a failed append stores nothing.
    pub async fn insert_card(
        &self,
        card: CardRow,
        shop: Option<ShopId>,
        record: audit::EntryFor<CardToken>,
    ) -> Result<CardInsert, StoreError> {
        dispatch!(self.insert_card(card, shop, record))
    }

    /// Takes away `shop`'s access to a card, and crypto-shreds the card when no
    /// shop holds it any more, in one transaction.
    pub async fn release_card(
        &self,
        tenant: &TenantId,
        shop: &ShopId,
        token: &CardToken,
        at: i64,
    ) -> Result<CardRelease, StoreError> {
        dispatch!(self.release_card(tenant, shop, token, at))
    }

    /// A card within `scope` (a shop sees only cards linked to it).
    pub async fn card(&self, scope: Scope<'_>, token: &CardToken) -> Result<Option<CardRow>, StoreError> {
        dispatch!(self.card(scope, token))
    }

    /// The token of the live card with this fingerprint.
    pub async fn card_by_fingerprint(
        &self,
        tenant: &TenantId,
        fingerprint: &[u8; 32],
    ) -> Result<Option<CardToken>, StoreError> {
        dispatch!(self.card_by_fingerprint(tenant, fingerprint))
    }

    /// Replaces the sealed expiry and holder of a live card (same data key).
    pub async fn update_card_details(
        &self,
        tenant: &TenantId,
        token: &CardToken,
        expiry: Vec<u8>,
        holder: Vec<u8>,
    ) -> Result<(), StoreError> {
        dispatch!(self.update_card_details(tenant, token, expiry, holder))
    }

    /// Crypto-shreds a card: its data key and ciphertexts are overwritten and its
    /// fingerprint dropped; the token stays as a tombstone. False if not visible.
    pub async fn shred_card(&self, scope: Scope<'_>, token: &CardToken, at: i64) -> Result<bool, StoreError> {
        dispatch!(self.shred_card(scope, token, at))
    }

    /// Crypto-shreds a customer within `scope`: its data key is deleted and its
    /// ciphertexts overwritten. `false` if there is no such live customer.
    pub async fn shred_customer(
        &self,
        scope: Scope<'_>,
        id: &CustomerId,
        at: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self.shred_customer(scope, id, at))
    }

    /// Creates a customer.
    pub async fn insert_customer(&self, customer: CustomerRow) -> Result<(), StoreError> {
        dispatch!(self.insert_customer(customer))
    }

    /// A customer within `scope`.
    pub async fn customer(
        &self,
        scope: Scope<'_>,
        id: &CustomerId,
    ) -> Result<Option<CustomerRow>, StoreError> {
        dispatch!(self.customer(scope, id))
    }

    /// Creates an order, with its sealed shipping data if it has any, in one transaction.
    pub async fn insert_order(&self, order: OrderRow, shipping: Option<Sealed<4>>) -> Result<(), StoreError> {
        dispatch!(self.insert_order(order, shipping))
    }

    /// An order within `scope`.
    pub async fn order(&self, scope: Scope<'_>, id: &OrderId) -> Result<Option<OrderView>, StoreError> {
        dispatch!(self.order(scope, id))
    }

    /// A shop's orders, oldest first, after the order `after` (exclusive).
    pub async fn orders(
        &self,
        shop: &ShopId,
        after: Option<&OrderId>,
        limit: u32,
    ) -> Result<Vec<OrderView>, StoreError> {
        dispatch!(self.orders(shop, after, limit))
    }

    /// Marks a created order completed; false if not visible or not `created`.
    pub async fn complete_order(&self, scope: Scope<'_>, id: &OrderId, at: i64) -> Result<bool, StoreError> {
        dispatch!(self.complete_order(scope, id, at))
    }
}

/// Applies `migrations` (version, name, SQL) that are newer than `applied`.
fn pending<'a>(
    applied: &[i64],
    migrations: &'a [(i64, &'a str, &'a str)],
) -> Vec<&'a (i64, &'a str, &'a str)> {
    migrations
        .iter()
        .filter(|(version, ..)| !applied.contains(version))
        .collect()
}

fn fingerprint_array(bytes: Option<Vec<u8>>) -> Result<Option<[u8; 32]>, StoreError> {
    bytes
        .map(|b| {
            b.try_into()
                .map_err(|_| StoreError::Corrupt("fingerprint length"))
        })
        .transpose()
}

fn version_u32(value: Option<i64>) -> Result<Option<u32>, StoreError> {
    value
        .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt("key version out of range")))
        .transpose()
}

/// Builds the sealed payload of a row from its columns, or `None` if shredded.
fn sealed_from<const N: usize>(
    kek_version: Option<i64>,
    wrapped_dek: Option<Vec<u8>>,
    fields: [Option<Vec<u8>>; N],
) -> Result<Option<Sealed<N>>, StoreError> {
    match (version_u32(kek_version)?, wrapped_dek) {
        (Some(kek_version), Some(wrapped_dek)) => Ok(Some(Sealed {
            kek_version,
            wrapped_dek,
            fields,
        })),
        (None, None) => Ok(None),
        _ => Err(StoreError::Corrupt("data key without version")),
    }
}

/// Creates a fresh `schema` on the PostgreSQL server at `url` and returns a URL
/// whose connections use it, so benchmarks and tests never share tables.
pub async fn schema_url(url: &str, schema: &str) -> Result<String, StoreError> {
    postgres::create_schema(url, schema).await?;
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{separator}options=-c%20search_path%3D{schema}"))
}

/// Drops a schema made by [`schema_url`] and everything in it.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    postgres::drop_schema(url, schema).await
}
