//! Customers: shoppers' personal data, every field sealed under the customer's
//! own data key. Shops get masked e-mail and phone; nothing else leaves the vault
//! through this module.

use anshin_crypto::secret::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Action, Actor, Role};
use crate::app::App;
use crate::audit::{EventKind, field};
use crate::clock;
use crate::db::{CustomerRow, Scope, Sealed, customer_field};
use crate::error::{Error, Result};
use crate::ids::{CustomerId, ShopId, TenantId, parse_or_404};
use crate::vault::keys::RecordKind;
use crate::vault::pii;

/// Purpose label of the keyed hash under which the audit log names a customer.
pub(crate) const SUBJECT: &str = "audit-subject";

/// A new customer's personal data. Only `name` is required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// The shop the customer belongs to; shop keys use their own shop.
    #[serde(default)]
    pub shop_id: Option<String>,
    /// Tenant; only for principals not bound to a tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Full name (氏名).
    #[serde(deserialize_with = "super::secret")]
    #[schema(value_type = String, example = "山田 太郎")]
    pub name: SecretString,
    /// Name in kana (フリガナ).
    #[serde(default, deserialize_with = "super::secret_opt")]
    #[schema(value_type = Option<String>, example = "ヤマダ タロウ")]
    pub name_kana: Option<SecretString>,
    /// Postal code (郵便番号).
    #[serde(default, deserialize_with = "super::secret_opt")]
    #[schema(value_type = Option<String>, example = "100-0001")]
    pub postal_code: Option<SecretString>,
    /// Address (住所).
    #[serde(default, deserialize_with = "super::secret_opt")]
    #[schema(value_type = Option<String>, example = "東京都千代田区千代田1-1")]
    pub address: Option<SecretString>,
    /// Phone number (電話番号).
    #[serde(default, deserialize_with = "super::secret_opt")]
    #[schema(value_type = Option<String>, example = "090-1234-5678")]
    pub phone: Option<SecretString>,
    /// E-mail address.
    #[serde(default, deserialize_with = "super::secret_opt")]
    #[schema(value_type = Option<String>, example = "taro@example.jp")]
    pub email: Option<SecretString>,
    /// Fax number.
    #[serde(default, deserialize_with = "super::secret_opt")]
    #[schema(value_type = Option<String>)]
    pub fax: Option<SecretString>,
}

/// A customer as shops and operators see it: masked e-mail and phone only.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaskedCustomer {
    /// The customer's id.
    #[schema(value_type = String)]
    pub id: CustomerId,
    /// The shop the customer belongs to.
    #[schema(value_type = Option<String>)]
    pub shop_id: Option<ShopId>,
    /// Masked e-mail, such as `t***@example.jp`.
    pub email: Option<String>,
    /// Masked phone, such as `090******78`.
    pub phone: Option<String>,
    /// When the customer was created (RFC 3339).
    pub created_at: String,
}

/// Parses every given field; the first invalid one decides the error.
fn parse_fields(input: &NewCustomer) -> Result<[Option<SecretString>; 7]> {
    let optional = |value: &Option<SecretString>, parse: &dyn Fn(&str) -> Result<SecretString>| {
        value.as_ref().map(|v| parse(v.expose())).transpose()
    };
    Ok([
        Some(pii::name(input.name.expose())?),
        optional(&input.name_kana, &pii::name_kana)?,
        optional(&input.postal_code, &pii::postal_code)?,
        optional(&input.address, &pii::address)?,
        optional(&input.phone, &|v| pii::phone(v, "invalid_phone", "phone"))?,
        optional(&input.email, &pii::email)?,
        optional(&input.fax, &|v| pii::phone(v, "invalid_fax", "fax"))?,
    ])
}

impl App {
    /// Resolves the tenant and shop a shop-owned record is created in: a shop key
    /// uses its own shop; other roles name one (or none, where allowed) inside
    /// their tenant.
    pub(crate) async fn placement(
        &self,
        actor: &Actor,
        tenant_id: Option<&str>,
        shop_id: Option<&str>,
        shop_required: bool,
    ) -> Result<(TenantId, Option<ShopId>)> {
        if actor.role == Role::Shop {
            let tenant = actor.tenant_for(None)?;
            return Ok((tenant, actor.shop_id.clone()));
        }
        let requested_tenant = tenant_id
            .map(|v| parse_or_404(TenantId::parse, v, "tenant"))
            .transpose()?;
        match shop_id {
            Some(shop_id) => {
                let shop_id = parse_or_404(ShopId::parse, shop_id, "shop")?;
                let shop = self
                    .store
                    .shop(&shop_id)
                    .await?
                    .ok_or_else(|| Error::not_found("shop"))?;
                if !actor.sees_tenant(&shop.tenant_id)
                    || requested_tenant.as_ref().is_some_and(|t| *t != shop.tenant_id)
                {
                    return Err(Error::not_found("shop"));
                }
                Ok((shop.tenant_id, Some(shop.id)))
            }
            None if shop_required => Err(Error::invalid(
                "shop_required",
                "give shop_id: the shop this belongs to",
            )),
            None => Ok((actor.tenant_for(requested_tenant.as_ref())?, None)),
        }
    }

    /// Creates a customer.
    pub async fn create_customer(&self, actor: &Actor, input: NewCustomer) -> Result<MaskedCustomer> {
        self.audited(actor, EventKind::CustomerCreate, async |event| {
            self.new_customer(actor, input, event).await
        })
        .await
    }

    async fn new_customer(
        &self,
        actor: &Actor,
        input: NewCustomer,
        event: &mut crate::audit::Event,
    ) -> Result<MaskedCustomer> {
        actor.require(Action::WriteCustomer)?;
        let fields = parse_fields(&input)?;
        let (tenant, shop) = self
            .placement(actor, input.tenant_id.as_deref(), input.shop_id.as_deref(), false)
            .await?;
        let keys = self.keyring.tenant(&self.store, &tenant).await?;
        let id = CustomerId::generate()?;
        let (record, kek_version, wrapped_dek) = keys.new_record(RecordKind::Customer, id.as_str())?;
        let mut sealed_fields: [Option<Vec<u8>>; 7] = Default::default();
        for (i, value) in fields.iter().enumerate() {
            if let Some(value) = value {
                sealed_fields[i] = Some(record.seal(customer_field::NAMES[i], value.expose().as_bytes())?);
            }
        }
        let row = CustomerRow {
            id,
            tenant_id: tenant,
            shop_id: shop,
            sealed: Some(Sealed {
                kek_version,
                wrapped_dek,
                fields: sealed_fields,
            }),
            created_at: clock::now_ms(),
        };
        event
            .tenant(&row.tenant_id)
            .subject(keys.fingerprint(SUBJECT, row.id.as_str().as_bytes()))
            .fields(&[field::PII_SEALED]);
        if let Some(shop) = &row.shop_id {
            event.resource(shop);
        }
        self.record_now(actor, event).await?;
        let inserted = self.store.insert_customer(row.clone()).await;
        self.keys_checked(&row.tenant_id, inserted).await?;
        Ok(MaskedCustomer {
            id: row.id,
            shop_id: row.shop_id,
            email: fields[customer_field::EMAIL]
                .as_ref()
                .map(|v| pii::mask_email(v.expose())),
            phone: fields[customer_field::PHONE]
                .as_ref()
                .map(|v| pii::mask_phone(v.expose())),
            created_at: clock::rfc3339(row.created_at),
        })
    }

    /// A customer's masked view.
    pub async fn customer(&self, actor: &Actor, id: &str) -> Result<MaskedCustomer> {
        self.audited(actor, EventKind::CustomerRead, async |event| {
            actor.require(Action::ReadCustomer)?;
            event.fields(&[field::EMAIL_MASKED, field::PHONE_MASKED]);
            self.masked_customer(actor, id, event).await
        })
        .await
    }

    async fn masked_customer(
        &self,
        actor: &Actor,
        id: &str,
        event: &mut crate::audit::Event,
    ) -> Result<MaskedCustomer> {
        let row = self.customer_row(actor.scope(), id).await?;
        let keys = self
            .keyring
            .tenant_holding(
                &self.store,
                &row.tenant_id,
                row.sealed.as_ref().map(|s| s.kek_version),
            )
            .await?;
        event
            .tenant(&row.tenant_id)
            .subject(keys.fingerprint(SUBJECT, row.id.as_str().as_bytes()));
        let sealed = row.sealed.as_ref().ok_or_else(|| Error::not_found("customer"))?;
        let record = keys.open_record(RecordKind::Customer, row.id.as_str(), sealed)?;
        let open = |field: usize| -> Result<Option<SecretString>> {
            sealed.fields[field]
                .as_ref()
                .map(|blob| {
                    Ok(record
                        .open(customer_field::NAMES[field], blob)?
                        .into_secret_string()?)
                })
                .transpose()
        };
        let email = open(customer_field::EMAIL)?;
        let phone = open(customer_field::PHONE)?;
        Ok(MaskedCustomer {
            id: row.id.clone(),
            shop_id: row.shop_id.clone(),
            email: email.as_ref().map(|v| pii::mask_email(v.expose())),
            phone: phone.as_ref().map(|v| pii::mask_phone(v.expose())),
            created_at: clock::rfc3339(row.created_at),
        })
    }

    /// Deletes a customer's personal data for good (APPI erasure requests):
    /// its data key is destroyed, so no copy of its ciphertexts, backups
    /// included, can be read again. Its orders keep their own shipping data
    /// until the retention purge.
    pub async fn delete_customer(&self, actor: &Actor, id: &str) -> Result<()> {
        self.audited(actor, EventKind::CustomerDelete, async |event| {
            actor.require(Action::DeleteCustomer)?;
            let row = self.customer_row(actor.scope(), id).await?;
            if row.sealed.is_none() {
                return Err(Error::not_found("customer"));
            }
            let keys = self.keyring.tenant(&self.store, &row.tenant_id).await?;
            event
                .tenant(&row.tenant_id)
                .subject(keys.fingerprint(SUBJECT, row.id.as_str().as_bytes()));
            self.record_now(actor, event).await?;
            if self
                .store
                .shred_customer(actor.scope(), &row.id, clock::now_ms())
                .await?
            {
                Ok(())
            } else {
                Err(Error::not_found("customer"))
            }
        })
        .await
    }

    pub(crate) async fn customer_row(&self, scope: Scope<'_>, id: &str) -> Result<CustomerRow> {
        let id = parse_or_404(CustomerId::parse, id, "customer")?;
        self.store
            .customer(scope, &id)
            .await?
            .ok_or_else(|| Error::not_found("customer"))
    }
}
