//! PostgreSQL backend.
//!
//! Statements are prepared once per pooled connection. Each write is one
//! transaction committed with PostgreSQL's default synchronous commit, so a
//! success means the WAL record is on disk; concurrent commits share WAL flushes
//! (PostgreSQL's group commit). Several `anshin serve` nodes can share one
//! database: uniqueness (card fingerprints) is enforced by the database, and
//! migrations run under an advisory lock.

use std::sync::LazyLock;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Row;

use super::credentials::{KeyRow, allow_list, hash_array};
use super::pg_connect::{PgConnect, tls_failure};
use super::{
    CardInsert, CardRelease, CardRow, CustomerRow, KeyPurpose, OrderRow, OrderView, PrincipalRow, Scope,
    Sealed, ShopRow, StoreError, TenantKeyRow, TenantRow, fingerprint_array, pending, sealed_from,
};
use crate::access::Role;
use crate::db::audit::EntryFor;
use crate::ids::{CardToken, CustomerId, OrderId, PrincipalId, ShopId, TenantId};

mod alerts;
mod audit;
mod baselines;
mod checkout;
mod credentials;
mod inventory;
mod keys;
mod pages;
mod retention;
mod webhooks;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "vault",
        include_str!("../../migrations/postgres/0001_vault.sql"),
    ),
    (
        2,
        "audit",
        include_str!("../../migrations/postgres/0002_audit.sql"),
    ),
    (
        3,
        "alerts",
        include_str!("../../migrations/postgres/0003_alerts.sql"),
    ),
    (
        4,
        "credentials",
        include_str!("../../migrations/postgres/0004_credentials.sql"),
    ),
    (
        5,
        "retention",
        include_str!("../../migrations/postgres/0005_retention.sql"),
    ),
    (
        6,
        "inventory",
        include_str!("../../migrations/postgres/0006_inventory.sql"),
    ),
    (
        7,
        "key_store",
        include_str!("../../migrations/postgres/0007_key_store.sql"),
    ),
    (
        8,
        "checkout",
        include_str!("../../migrations/postgres/0008_checkout.sql"),
    ),
    (
        9,
        "page_monitor",
        include_str!("../../migrations/postgres/0009_page_monitor.sql"),
    ),
    (
        10,
        "record_keys_by_id",
        include_str!("../../migrations/postgres/0010_record_keys_by_id.sql"),
    ),
    (
        11,
        "root_change",
        include_str!("../../migrations/postgres/0011_root_change.sql"),
    ),
    (
        12,
        "payment_webhooks",
        include_str!("../../migrations/postgres/0012_payment_webhooks.sql"),
    ),
    (
        13,
        "integrity_baselines",
        include_str!("../../migrations/postgres/0013_integrity_baselines.sql"),
    ),
    (
        14,
        "delivery_claims",
        include_str!("../../migrations/postgres/0014_delivery_claims.sql"),
    ),
];

/// Advisory lock key that serialises migrations across nodes ("anshin" in ASCII).
const MIGRATION_LOCK: i64 = 0x616e_7368_696e;

/// Connections per node: enough to keep PostgreSQL busy on a small machine
/// without thrashing it.
const POOL_SIZE: usize = 24;

/// PostgreSQL store. Clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

fn pg(err: tokio_postgres::Error) -> StoreError {
    match err.as_db_error() {
        // A new record's data key naming a KEK version `tenant_keys` no
        // longer holds breaks the foreign key of `record_keys`.
        Some(db)
            if db.code() == &tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION
                && db.table() == Some("record_keys") =>
        {
            StoreError::KeyGone
        }
        Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
        None => connect_failed(&err),
    }
}

/// A connection that failed, with what to do when TLS refused it.
fn connect_failed(err: &tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(match tls_failure(err) {
        Some(why) => format!("{why} ({err})"),
        None => err.to_string(),
    })
}

fn pool_error(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => connect_failed(&err),
        err => StoreError::Unavailable(err.to_string()),
    }
}

/// The card `token` if it is inside the scope `tenant`, `shop` (SQL
/// expressions, NULL for no limit): the columns [`card_row`] reads.
fn card_query(token: &str, tenant: &str, shop: &str) -> String {
    format!(
        "SELECT token, c.tenant_id, fingerprint, brand, last4, k.kek_version, k.wrapped_dek,
                number_ct, expiry_ct, holder_ct, created_at, deleted_at
         FROM cards c LEFT JOIN record_keys k ON k.id = c.key_id
         WHERE token = {token} AND ({tenant}::text IS NULL OR c.tenant_id = {tenant})
           AND ({shop}::text IS NULL OR c.shop_id = {shop}
                OR EXISTS (SELECT 1 FROM card_shops s WHERE s.token = c.token AND s.shop_id = {shop}))"
    )
}

/// A [`card_query`] row whose columns start at `at`.
fn card_row(r: &Row, at: usize) -> Result<CardRow, StoreError> {
    Ok(CardRow {
        token: CardToken::from_db(r.get(at)),
        tenant_id: TenantId::from_db(r.get(at + 1)),
        fingerprint: fingerprint_array(r.get(at + 2))?,
        brand: r.get(at + 3),
        last4: r.get(at + 4),
        sealed: sealed_from(
            r.get::<_, Option<i32>>(at + 5).map(i64::from),
            r.get(at + 6),
            [r.get(at + 7), r.get(at + 8), r.get(at + 9)],
        )?,
        created_at: r.get(at + 10),
        deleted_at: r.get(at + 11),
    })
}

fn version_i32(version: u32) -> Result<i32, StoreError> {
    i32::try_from(version).map_err(|_| StoreError::Corrupt("key version out of range"))
}

impl PgStore {
    pub(super) async fn open(url: &str) -> Result<Self, StoreError> {
        // The URL with its TLS parameters (see [`super::pg_connect`]).
        let connect = PgConnect::parse(url)?;
        tracing::info!(sslmode = connect.mode().as_str(), "PostgreSQL store");
        let manager = Manager::from_config(
            connect.config().clone(),
            connect.tls(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            // Only timeouts without a runtime fail, and none are set.
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let store = Self { pool };
        store.require_durable_commits().await?;
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A 2xx answer promises a durable write: refuse a server (or role, or
    /// database) configured to acknowledge commits before they are flushed.
    async fn require_durable_commits(&self) -> Result<(), StoreError> {
        let row = self.query_opt("SHOW synchronous_commit", &[]).await?;
        let setting: String = row.map(|r| r.get(0)).unwrap_or_default();
        if setting == "off" {
            return Err(StoreError::Backend(
                "PostgreSQL has synchronous_commit = off; anshin needs durable commits: set it to on".into(),
            ));
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(pg)?;
        let applied: Vec<i64> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (version, name, sql) in pending(&applied, MIGRATIONS) {
            tx.batch_execute(sql).await.map_err(pg)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[version, name, &crate::clock::now_ms()],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    /// One statement with its parameters, returning the number of rows changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        client.execute(&stmt, params).await.map_err(pg)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        client.query_opt(&stmt, params).await.map_err(pg)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        client.query(&stmt, params).await.map_err(pg)
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.query_opt("SELECT 1", &[]).await.map(|_| ())
    }

    pub(super) async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .await?
            .map(|r| r.get(0)))
    }

    pub(super) async fn meta_init(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key, &value],
        )
        .await?;
        self.meta(key)
            .await?
            .ok_or(StoreError::Corrupt("meta value vanished"))
    }

    pub(super) async fn insert_tenant(
        &self,
        tenant: TenantRow,
        keys: Vec<TenantKeyRow>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
            &[&tenant.id.as_str(), &tenant.name, &tenant.created_at],
        )
        .await
        .map_err(pg)?;
        for key in keys {
            tx.execute(
                "INSERT INTO tenant_keys (tenant_id, purpose, version, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&tenant.id.as_str(), &key.purpose.as_str(), &version_i32(key.version)?, &key.wrapped, &key.created_at],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    pub(super) async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRow>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT id, name, created_at FROM tenants WHERE id = $1",
                &[&id.as_str()],
            )
            .await?
            .map(|r| tenant_row(&r)))
    }

    pub(super) async fn tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        Ok(self
            .query(
                "SELECT id, name, created_at FROM tenants ORDER BY created_at, id",
                &[],
            )
            .await?
            .iter()
            .map(tenant_row)
            .collect())
    }

    pub(super) async fn tenant_keys(&self, id: &TenantId) -> Result<Vec<TenantKeyRow>, StoreError> {
        self.query(
            "SELECT purpose, version, wrapped, created_at FROM tenant_keys WHERE tenant_id = $1 ORDER BY purpose, version",
            &[&id.as_str()],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(TenantKeyRow {
                purpose: KeyPurpose::parse(r.get(0))?,
                version: u32::try_from(r.get::<_, i32>(1)).map_err(|_| StoreError::Corrupt("key version"))?,
                wrapped: r.get(2),
                created_at: r.get(3),
            })
        })
        .collect()
    }

    pub(super) async fn insert_shop(&self, shop: ShopRow) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO shops (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4)",
            &[
                &shop.id.as_str(),
                &shop.tenant_id.as_str(),
                &shop.name,
                &shop.created_at,
            ],
        )
        .await
        .map(|_| ())
    }

    pub(super) async fn shop(&self, id: &ShopId) -> Result<Option<ShopRow>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT id, tenant_id, name, created_at FROM shops WHERE id = $1",
                &[&id.as_str()],
            )
            .await?
            .map(|r| shop_row(&r)))
    }

    pub(super) async fn shops(&self, tenant: &TenantId) -> Result<Vec<ShopRow>, StoreError> {
        Ok(self
            .query(
                "SELECT id, tenant_id, name, created_at FROM shops WHERE tenant_id = $1 ORDER BY created_at, id",
                &[&tenant.as_str()],
            )
            .await?
            .iter()
            .map(shop_row)
            .collect())
    }

    pub(super) async fn insert_principal(&self, p: PrincipalRow, key: KeyRow) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(
            "INSERT INTO principals (id, name, role, tenant_id, shop_id, allowed_ips, created_at, disabled_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &p.id.as_str(),
                &p.name,
                &p.role.as_str(),
                &p.tenant_id.as_ref().map(TenantId::as_str),
                &p.shop_id.as_ref().map(ShopId::as_str),
                &p.allowed_ips.as_ref().map(|a| a.to_db()),
                &p.created_at,
                &p.disabled_at,
            ],
        )
        .await
        .map_err(pg)?;
        insert_key(&tx, &key).await?;
        tx.commit().await.map_err(pg)
    }

    pub(super) async fn credential(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(PrincipalRow, KeyRow)>, StoreError> {
        self.query_opt(
            "SELECT p.id, p.name, p.role, p.tenant_id, p.shop_id, p.allowed_ips, p.created_at, p.disabled_at,
                    k.key_hash, k.created_at, k.expires_at, k.revoked_at
             FROM principal_keys k JOIN principals p ON p.id = k.principal_id WHERE k.key_hash = $1",
            &[&&key_hash[..]],
        )
        .await?
        .map(|r| {
            let principal = principal_row(&r)?;
            let key = KeyRow {
                key_hash: hash_array(r.get(8))?,
                principal_id: principal.id.clone(),
                created_at: r.get(9),
                expires_at: r.get(10),
                revoked_at: r.get(11),
            };
            Ok((principal, key))
        })
        .transpose()
    }

    pub(super) async fn principal(&self, id: &PrincipalId) -> Result<Option<PrincipalRow>, StoreError> {
        self.query_opt(
            &format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = $1"),
            &[&id.as_str()],
        )
        .await?
        .map(|r| principal_row(&r))
        .transpose()
    }

    pub(super) async fn principals(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<PrincipalRow>, StoreError> {
        self.query(
            &format!(
                "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE $1::text IS NULL OR tenant_id = $1
                 ORDER BY created_at, id"
            ),
            &[&tenant.map(TenantId::as_str)],
        )
        .await?
        .iter()
        .map(principal_row)
        .collect()
    }

    pub(super) async fn disable_principal(&self, id: &PrincipalId, at: i64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let disabled = tx
            .execute(
                "UPDATE principals SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL",
                &[&id.as_str(), &at],
            )
            .await
            .map_err(pg)?
            == 1;
        tx.execute(
            "UPDATE principal_keys SET revoked_at = $2 WHERE principal_id = $1 AND revoked_at IS NULL",
            &[&id.as_str(), &at],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(disabled)
    }

    pub(super) async fn insert_card(
        &self,
        card: CardRow,
        shop: Option<ShopId>,
        record: EntryFor<CardToken>,
    ) -> Result<CardInsert, StoreError> {
        let sealed = card.sealed.as_ref();
        let fingerprint = card.fingerprint.as_ref().map(|f| &f[..]);
        let shop = shop.as_ref().map(ShopId::as_str);
        // The common case, a new card, is one autocommit statement that stores
        // the card and its audit entry together (or neither). The entry names
        // the new token; a card the tenant already holds takes the path below.
        let new_card = record(&card.token).map_err(StoreError::Audit)?;
        if !new_card.subjects.is_empty() {
            return Err(StoreError::Audit("a card's entry names no customer".into()));
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                // The key's id comes from the sequence first, so the card row can
            // name it; an id the conflict leaves unused is never handed out again.
            "WITH key AS (
                     SELECT nextval('record_key_ids') AS id WHERE $7::bytea IS NOT NULL),
                 card AS (
                     INSERT INTO cards (token, tenant_id, fingerprint, brand, last4,
                                        number_ct, expiry_ct, holder_ct, created_at, shop_id, key_id)
                     VALUES ($1, $2, $3, $4, $5, $8, $9, $10, $11, $12, (SELECT id FROM key))
                     ON CONFLICT (tenant_id, fingerprint) DO NOTHING
                     RETURNING token, key_id),
                 record_key AS (
                     INSERT INTO record_keys (id, record_id, tenant_id, kind, kek_version, wrapped_dek)
                     SELECT key_id, token, $2, 'card', $6, $7 FROM card WHERE key_id IS NOT NULL),
                 entry AS (
                     INSERT INTO audit_entries (time_ms, tenant_id, principal_id, kind, outcome, leaf_hash, entry)
                     SELECT $13, $14, $15, $16, $17, $18, $19 FROM card
                     RETURNING id)
                 SELECT count(*) FROM entry",
            )
            .await
            .map_err(pg)?;
        let inserted: i64 = client
            .query_one(
                &stmt,
                &[
                    &card.token.as_str(),
                    &card.tenant_id.as_str(),
                    &fingerprint,
                    &card.brand,
                    &card.last4,
                    &sealed.map(|s| version_i32(s.kek_version)).transpose()?,
                    &sealed.map(|s| &s.wrapped_dek),
                    &sealed.and_then(|s| s.fields[0].as_ref()),
                    &sealed.and_then(|s| s.fields[1].as_ref()),
                    &sealed.and_then(|s| s.fields[2].as_ref()),
                    &card.created_at,
                    &shop,
                    &new_card.time_ms,
                    &new_card.tenant_id,
                    &new_card.principal_id,
                    &new_card.kind,
                    &new_card.outcome,
                    &new_card.leaf_hash.to_vec(),
                    &new_card.entry,
                ],
            )
            .await
            .map_err(|e| match e.as_db_error() {
                // The card insert itself cannot fail on a row trigger; the entry can.
                Some(db) if db.table() == Some("audit_entries") || db.code().code() == "P0001" => {
                    StoreError::Audit(db.message().to_owned())
                }
                _ => pg(e),
            })?
            .get(0);
        if inserted == 1 {
            return Ok(CardInsert::Inserted);
        }
        drop(client);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let outcome = {
            let Some(row) = tx
                .query_opt(
                    "SELECT token FROM cards WHERE tenant_id = $1 AND fingerprint = $2",
                    &[&card.tenant_id.as_str(), &fingerprint],
                )
                .await
                .map_err(pg)?
            else {
                return Ok(CardInsert::Vanished);
            };
            let token: String = row.get(0);
            let newly_visible = match shop {
                Some(shop) => {
                    tx.execute(
                        "INSERT INTO card_shops (token, shop_id)
                         SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM cards WHERE token = $1 AND shop_id = $2)
                         ON CONFLICT DO NOTHING",
                        &[&token, &shop],
                    )
                    .await
                    .map_err(pg)?
                        == 1
                }
                None => false,
            };
            CardInsert::Existing {
                token: CardToken::from_db(token),
                newly_visible,
            }
        };
        let CardInsert::Existing { token, .. } = &outcome else {
            return Ok(outcome);
        };
        let entry = record(token).map_err(StoreError::Audit)?;
        audit::insert_entries(&tx, vec![entry])
            .await
            .map_err(|e| StoreError::Audit(e.to_string()))?;
        tx.commit().await.map_err(pg)?;
        Ok(outcome)
    }

    pub(super) async fn release_card(
        &self,
        tenant: &TenantId,
        shop: &ShopId,
        token: &CardToken,
        at: i64,
    ) -> Result<CardRelease, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let (t, s) = (token.as_str(), shop.as_str());
        // Lock the card row so a concurrent release sees the result of this one.
        let visible = tx
            .query_opt(
                "SELECT 1 FROM cards WHERE token = $1 AND tenant_id = $2 AND deleted_at IS NULL
                   AND (shop_id = $3 OR EXISTS (SELECT 1 FROM card_shops WHERE token = $1 AND shop_id = $3))
                 FOR UPDATE",
                &[&t, &tenant.as_str(), &s],
            )
            .await
            .map_err(pg)?
            .is_some();
        if !visible {
            return Ok(CardRelease::NotFound);
        }
        tx.execute(
            "UPDATE cards SET shop_id = NULL WHERE token = $1 AND shop_id = $2",
            &[&t, &s],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "DELETE FROM card_shops WHERE token = $1 AND shop_id = $2",
            &[&t, &s],
        )
        .await
        .map_err(pg)?;
        let held = tx
            .query_opt(
                "SELECT 1 FROM cards WHERE token = $1
                   AND (shop_id IS NOT NULL OR EXISTS (SELECT 1 FROM card_shops WHERE token = $1))",
                &[&t],
            )
            .await
            .map_err(pg)?
            .is_some();
        let outcome = if held {
            CardRelease::Released
        } else {
            tx.execute(
                "WITH shredded AS (
                     UPDATE cards SET fingerprint = NULL, number_ct = NULL,
                                      expiry_ct = NULL, holder_ct = NULL, deleted_at = $2
                     WHERE token = $1 RETURNING key_id)
                 DELETE FROM record_keys WHERE id IN (SELECT key_id FROM shredded)",
                &[&t, &at],
            )
            .await
            .map_err(pg)?;
            CardRelease::Shredded
        };
        tx.commit().await.map_err(pg)?;
        Ok(outcome)
    }

    pub(super) async fn card(
        &self,
        scope: Scope<'_>,
        token: &CardToken,
    ) -> Result<Option<CardRow>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| card_query("$1", "$2", "$3"));
        self.query_opt(&SQL, &[&token.as_str(), &scope.tenant_str(), &scope.shop_str()])
            .await?
            .map(|r| card_row(&r, 0))
            .transpose()
    }

    pub(super) async fn card_by_fingerprint(
        &self,
        tenant: &TenantId,
        fingerprint: &[u8; 32],
    ) -> Result<Option<CardToken>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT token FROM cards WHERE tenant_id = $1 AND fingerprint = $2",
                &[&tenant.as_str(), &&fingerprint[..]],
            )
            .await?
            .map(|r| CardToken::from_db(r.get(0))))
    }

    pub(super) async fn update_card_details(
        &self,
        tenant: &TenantId,
        token: &CardToken,
        expiry: Vec<u8>,
        holder: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE cards SET expiry_ct = $3, holder_ct = $4 WHERE token = $1 AND tenant_id = $2 AND deleted_at IS NULL",
            &[&token.as_str(), &tenant.as_str(), &expiry, &holder],
        )
        .await
        .map(|_| ())
    }

    pub(super) async fn shred_card(
        &self,
        scope: Scope<'_>,
        token: &CardToken,
        at: i64,
    ) -> Result<bool, StoreError> {
        // The data key goes in the same statement: the card is unreadable from
        // then on, in this database and in any data backup taken before.
        Ok(self
            .query(
                "WITH shredded AS (
                     UPDATE cards SET fingerprint = NULL, number_ct = NULL,
                                      expiry_ct = NULL, holder_ct = NULL, deleted_at = $4
                     WHERE token = $1 AND ($2::text IS NULL OR tenant_id = $2) AND deleted_at IS NULL
                       AND ($3::text IS NULL OR cards.shop_id = $3
                            OR EXISTS (SELECT 1 FROM card_shops s WHERE s.token = cards.token AND s.shop_id = $3))
                     RETURNING token, key_id
                 ), destroyed AS (
                     DELETE FROM record_keys WHERE id IN (SELECT key_id FROM shredded)
                 )
                 SELECT token FROM shredded",
                &[&token.as_str(), &scope.tenant_str(), &scope.shop_str(), &at],
            )
            .await?
            .len()
            == 1)
    }

    pub(super) async fn shred_customer(
        &self,
        scope: Scope<'_>,
        id: &CustomerId,
        at: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .query(
                "WITH shredded AS (
                     UPDATE customers SET name_ct = NULL, name_kana_ct = NULL, postal_code_ct = NULL, address_ct = NULL,
                                          phone_ct = NULL, email_ct = NULL, fax_ct = NULL, deleted_at = $4
                     WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) AND ($3::text IS NULL OR shop_id = $3)
                       AND deleted_at IS NULL
                     RETURNING id, key_id
                 ), destroyed AS (
                     DELETE FROM record_keys WHERE id IN (SELECT key_id FROM shredded)
                 )
                 SELECT id FROM shredded",
                &[&id.as_str(), &scope.tenant_str(), &scope.shop_str(), &at],
            )
            .await?
            .len()
            == 1)
    }

    pub(super) async fn insert_customer(&self, customer: CustomerRow) -> Result<(), StoreError> {
        let sealed = customer.sealed.as_ref();
        let field = |i: usize| sealed.and_then(|s| s.fields[i].as_ref());
        self.execute(
            "WITH key AS (
                 INSERT INTO record_keys (record_id, tenant_id, kind, kek_version, wrapped_dek)
                 SELECT $1, $2, 'customer', $4, $5 WHERE $5::bytea IS NOT NULL
                 RETURNING id
             )
             INSERT INTO customers (id, tenant_id, shop_id, name_ct, name_kana_ct,
                                    postal_code_ct, address_ct, phone_ct, email_ct, fax_ct, created_at, key_id)
             VALUES ($1, $2, $3, $6, $7, $8, $9, $10, $11, $12, $13, (SELECT id FROM key))",
            &[
                &customer.id.as_str(),
                &customer.tenant_id.as_str(),
                &customer.shop_id.as_ref().map(ShopId::as_str),
                &sealed.map(|s| version_i32(s.kek_version)).transpose()?,
                &sealed.map(|s| &s.wrapped_dek),
                &field(0),
                &field(1),
                &field(2),
                &field(3),
                &field(4),
                &field(5),
                &field(6),
                &customer.created_at,
            ],
        )
        .await
        .map(|_| ())
    }

    pub(super) async fn customer(
        &self,
        scope: Scope<'_>,
        id: &CustomerId,
    ) -> Result<Option<CustomerRow>, StoreError> {
        self.query_opt(
            "SELECT c.id, c.tenant_id, shop_id, k.kek_version, k.wrapped_dek, name_ct, name_kana_ct, postal_code_ct,
                    address_ct, phone_ct, email_ct, fax_ct, created_at
             FROM customers c LEFT JOIN record_keys k ON k.id = c.key_id
             WHERE c.id = $1 AND ($2::text IS NULL OR c.tenant_id = $2) AND ($3::text IS NULL OR shop_id = $3)",
            &[&id.as_str(), &scope.tenant_str(), &scope.shop_str()],
        )
        .await?
        .map(|r| {
            Ok(CustomerRow {
                id: CustomerId::from_db(r.get(0)),
                tenant_id: TenantId::from_db(r.get(1)),
                shop_id: r.get::<_, Option<String>>(2).map(ShopId::from_db),
                sealed: sealed_from(
                    r.get::<_, Option<i32>>(3).map(i64::from),
                    r.get(4),
                    [r.get(5), r.get(6), r.get(7), r.get(8), r.get(9), r.get(10), r.get(11)],
                )?,
                created_at: r.get(12),
            })
        })
        .transpose()
    }

    pub(super) async fn insert_order(
        &self,
        o: OrderRow,
        shipping: Option<Sealed<4>>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(
            "INSERT INTO orders (id, tenant_id, shop_id, customer_id, card_token, amount, currency, status,
                                 created_at, completed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &o.id.as_str(),
                &o.tenant_id.as_str(),
                &o.shop_id.as_str(),
                &o.customer_id.as_str(),
                &o.card_token.as_ref().map(CardToken::as_str),
                &o.amount,
                &o.currency,
                &o.status,
                &o.created_at,
                &o.completed_at,
            ],
        )
        .await
        .map_err(pg)?;
        if let Some(sh) = shipping {
            let [name, postal, address, phone] = sh.fields;
            tx.execute(
                "WITH key AS (
                     INSERT INTO record_keys (record_id, tenant_id, kind, kek_version, wrapped_dek)
                     VALUES ($1, $2, 'order', $3, $4)
                     RETURNING id
                 )
                 INSERT INTO order_shipping (order_id, name_ct, postal_code_ct, address_ct, phone_ct, key_id)
                 VALUES ($1, $5, $6, $7, $8, (SELECT id FROM key))",
                &[
                    &o.id.as_str(),
                    &o.tenant_id.as_str(),
                    &version_i32(sh.kek_version)?,
                    &sh.wrapped_dek,
                    &name,
                    &postal,
                    &address,
                    &phone,
                ],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    pub(super) async fn order(
        &self,
        scope: Scope<'_>,
        id: &OrderId,
    ) -> Result<Option<OrderView>, StoreError> {
        Ok(self
            .query_opt(
                &format!(
                    "SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN cards c ON c.token = o.card_token
                     WHERE o.id = $1 AND ($2::text IS NULL OR o.tenant_id = $2) AND ($3::text IS NULL OR o.shop_id = $3)"
                ),
                &[&id.as_str(), &scope.tenant_str(), &scope.shop_str()],
            )
            .await?
            .map(|r| order_view(&r)))
    }

    pub(super) async fn orders(
        &self,
        shop: &ShopId,
        after: Option<&OrderId>,
        limit: u32,
    ) -> Result<Vec<OrderView>, StoreError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN cards c ON c.token = o.card_token
                     WHERE o.shop_id = $1
                       AND ($2::text IS NULL OR (o.created_at, o.id) > (SELECT created_at, id FROM orders WHERE id = $2 AND shop_id = $1))
                     ORDER BY o.created_at, o.id LIMIT $3"
                ),
                &[&shop.as_str(), &after.map(OrderId::as_str), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(order_view)
            .collect())
    }

    pub(super) async fn complete_order(
        &self,
        scope: Scope<'_>,
        id: &OrderId,
        at: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE orders SET status = 'completed', completed_at = $4
                 WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) AND ($3::text IS NULL OR shop_id = $3) AND status = 'created'",
                &[&id.as_str(), &scope.tenant_str(), &scope.shop_str(), &at],
            )
            .await?
            == 1)
    }
}

const PRINCIPAL_COLUMNS: &str = "id, name, role, tenant_id, shop_id, allowed_ips, created_at, disabled_at";

/// Reads [`PRINCIPAL_COLUMNS`] from the start of a row.
fn principal_row(r: &Row) -> Result<PrincipalRow, StoreError> {
    Ok(PrincipalRow {
        id: PrincipalId::from_db(r.get(0)),
        name: r.get(1),
        role: Role::parse(r.get(2)).ok_or(StoreError::Corrupt("unknown role"))?,
        tenant_id: r.get::<_, Option<String>>(3).map(TenantId::from_db),
        shop_id: r.get::<_, Option<String>>(4).map(ShopId::from_db),
        allowed_ips: allow_list(r.get(5))?,
        created_at: r.get(6),
        disabled_at: r.get(7),
    })
}

/// Inserts one key row inside the caller's transaction.
async fn insert_key(tx: &deadpool_postgres::Transaction<'_>, key: &KeyRow) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO principal_keys (key_hash, principal_id, created_at, expires_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &&key.key_hash[..],
            &key.principal_id.as_str(),
            &key.created_at,
            &key.expires_at,
            &key.revoked_at,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

fn tenant_row(r: &Row) -> TenantRow {
    TenantRow {
        id: TenantId::from_db(r.get(0)),
        name: r.get(1),
        created_at: r.get(2),
    }
}

fn shop_row(r: &Row) -> ShopRow {
    ShopRow {
        id: ShopId::from_db(r.get(0)),
        tenant_id: TenantId::from_db(r.get(1)),
        name: r.get(2),
        created_at: r.get(3),
    }
}

const ORDER_COLUMNS: &str = "o.id, o.tenant_id, o.shop_id, o.customer_id, o.card_token, o.amount, o.currency,
                             o.status, o.created_at, o.completed_at, c.brand, c.last4";

fn order_view(r: &Row) -> OrderView {
    OrderView {
        order: OrderRow {
            id: OrderId::from_db(r.get(0)),
            tenant_id: TenantId::from_db(r.get(1)),
            shop_id: ShopId::from_db(r.get(2)),
            customer_id: CustomerId::from_db(r.get(3)),
            card_token: r.get::<_, Option<String>>(4).map(CardToken::from_db),
            amount: r.get(5),
            currency: r.get(6),
            status: r.get(7),
            created_at: r.get(8),
            completed_at: r.get(9),
        },
        card_brand: r.get(10),
        card_last4: r.get(11),
    }
}

fn checked_schema(schema: &str) -> Result<&str, StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(schema)
    } else {
        Err(StoreError::BadUrl {
            code: "pg_schema_invalid",
            message: "schema names are lower-case letters, digits and _".into(),
        })
    }
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = PgConnect::parse(url)?.connect().await.map_err(pg)?;
    tokio::spawn(connection);
    Ok(client)
}

pub(super) async fn create_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    let schema = checked_schema(schema)?;
    admin_client(url)
        .await?
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .map_err(pg)
}

pub(super) async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    let schema = checked_schema(schema)?;
    admin_client(url)
        .await?
        .batch_execute(&format!(
            "SET client_min_messages = warning; DROP SCHEMA IF EXISTS {schema} CASCADE"
        ))
        .await
        .map_err(pg)
}
