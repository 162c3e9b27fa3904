//! Orders: which shop sold what to which customer, paid with which card token.
//! A shop sees only its own orders, with the card masked.

use anshin_crypto::secret::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::{Event, EventKind, field};
use crate::clock;
use crate::db::retention::shipping_field;
use crate::db::{OrderRow, OrderView, Scope, Sealed};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{OrderId, ShopId, parse_or_404};
use crate::vault::keys::RecordKind;
use crate::vault::pii;

/// Most orders one page returns.
pub const MAX_PAGE: u32 = 500;
/// Largest amount accepted, in minor units.
pub(crate) const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// A new order.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The selling shop; shop keys use their own.
    #[serde(default)]
    pub shop_id: Option<String>,
    /// The buying customer.
    pub customer_id: String,
    /// The card token it is paid with, if any.
    #[serde(default)]
    pub card_token: Option<String>,
    /// Amount in the currency's minor unit (yen for JPY, cents for USD).
    #[schema(example = 4980)]
    pub amount: i64,
    /// ISO 4217 currency code.
    #[schema(example = "JPY")]
    pub currency: String,
    /// Where to ship: sealed in the vault, readable by the shop only inside
    /// the retention window (`GET /v1/orders/{id}/shipping`).
    #[serde(default)]
    pub shipping: Option<ShippingInput>,
}

/// Shipping data of a new order. Name and address are required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingInput {
    /// Recipient's name (お届け先氏名).
    #[serde(deserialize_with = "crate::vault::secret")]
    #[schema(value_type = String, example = "山田 太郎")]
    pub name: SecretString,
    /// Postal code (郵便番号).
    #[serde(default, deserialize_with = "crate::vault::secret_opt")]
    #[schema(value_type = Option<String>, example = "100-0001")]
    pub postal_code: Option<SecretString>,
    /// Address (住所).
    #[serde(deserialize_with = "crate::vault::secret")]
    #[schema(value_type = String, example = "東京都千代田区千代田1-1")]
    pub address: SecretString,
    /// Phone number for the carrier.
    #[serde(default, deserialize_with = "crate::vault::secret_opt")]
    #[schema(value_type = Option<String>, example = "090-1234-5678")]
    pub phone: Option<SecretString>,
}

impl ShippingInput {
    /// Parses every field; the first invalid one decides the error.
    fn parse(&self) -> Result<[Option<SecretString>; 4]> {
        Ok([
            Some(pii::name(self.name.expose())?),
            self.postal_code
                .as_ref()
                .map(|v| pii::postal_code(v.expose()))
                .transpose()?,
            Some(pii::address(self.address.expose())?),
            self.phone
                .as_ref()
                .map(|v| pii::phone(v.expose(), "invalid_phone", "shipping.phone"))
                .transpose()?,
        ])
    }
}

/// Query of an order listing.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// The shop whose orders to list; shop keys may omit it.
    pub shop_id: Option<String>,
    /// Continue after this order id (from `next_after` of the previous page).
    pub after: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
}

/// The masked card an order was paid with.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderCard {
    /// Card token.
    pub token: String,
    /// Brand.
    pub brand: Option<String>,
    /// Last four digits.
    pub last4: Option<String>,
}

/// An order as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Order {
    /// Order id.
    pub id: String,
    /// Selling shop.
    pub shop_id: String,
    /// Buying customer.
    pub customer_id: String,
    /// Card it was paid with, masked.
    pub card: Option<OrderCard>,
    /// Amount in minor units.
    pub amount: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// created, completed or cancelled.
    pub status: String,
    /// When the order was created (RFC 3339).
    pub created_at: String,
    /// When it was completed (RFC 3339).
    pub completed_at: Option<String>,
}

/// One page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// The orders, oldest first.
    pub orders: Vec<Order>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

impl From<OrderView> for Order {
    fn from(view: OrderView) -> Self {
        let o = view.order;
        Self {
            id: o.id.to_string(),
            shop_id: o.shop_id.to_string(),
            customer_id: o.customer_id.to_string(),
            card: o.card_token.map(|t| OrderCard {
                token: t.to_string(),
                brand: view.card_brand,
                last4: view.card_last4,
            }),
            amount: o.amount,
            currency: o.currency,
            status: o.status,
            created_at: clock::rfc3339(o.created_at),
            completed_at: o.completed_at.map(clock::rfc3339),
        }
    }
}

pub(crate) fn currency(code: &str) -> Result<String> {
    let upper = code.to_ascii_uppercase();
    iso_currency::Currency::from_code(&upper)
        .map(|c| c.code().to_owned())
        .ok_or_else(|| {
            Error::invalid(
                "invalid_currency",
                "currency must be an ISO 4217 code such as JPY",
            )
        })
}

impl App {
    /// Creates an order for a customer of the shop, optionally paid with a card
    /// the shop tokenized.
    pub async fn create_order(&self, actor: &Actor, input: NewOrder) -> Result<Order> {
        self.audited(actor, EventKind::OrderCreate, async |event| {
            self.new_order(actor, input, event).await
        })
        .await
    }

    async fn new_order(&self, actor: &Actor, input: NewOrder, event: &mut Event) -> Result<Order> {
        actor.require(Action::WriteOrder)?;
        if !(1..=MAX_AMOUNT).contains(&input.amount) {
            return Err(Error::invalid(
                "invalid_amount",
                "amount must be a positive whole number of minor units",
            ));
        }
        let currency = currency(&input.currency)?;
        let shipping = input.shipping.as_ref().map(ShippingInput::parse).transpose()?;
        let (tenant, shop) = self
            .placement(actor, None, input.shop_id.as_deref(), true)
            .await?;
        let shop = shop.ok_or_else(|| Error::invalid("shop_required", "give shop_id"))?;
        let scope = Scope {
            tenant: Some(&tenant),
            shop: Some(&shop),
        };
        let customer = self
            .customer_row(
                Scope {
                    tenant: Some(&tenant),
                    shop: actor.scope().shop,
                },
                &input.customer_id,
            )
            .await?;
        let card_token = match &input.card_token {
            Some(token) => Some(self.live_card(scope, token).await?.0.token),
            None => None,
        };
        let row = OrderRow {
            id: OrderId::generate()?,
            tenant_id: tenant.clone(),
            shop_id: shop,
            customer_id: customer.id,
            card_token,
            amount: input.amount,
            currency,
            status: "created".into(),
            created_at: clock::now_ms(),
            completed_at: None,
        };
        event
            .tenant(&tenant)
            .resource(&row.id)
            .resource(&row.shop_id)
            .subject(self.subject(&tenant, &row.customer_id).await?)
            .fields(&[field::ORDER]);
        if let Some(card) = &row.card_token {
            event.resource(card);
        }
        let sealed = match &shipping {
            Some(fields) => {
                event.fields(&[field::SHIPPING_SEALED]);
                let keys = self.keyring.tenant(&self.store, &tenant).await?;
                let (record, kek_version, wrapped_dek) =
                    keys.new_record(RecordKind::Order, row.id.as_str())?;
                let mut sealed: [Option<Vec<u8>>; 4] = Default::default();
                for (i, value) in fields.iter().enumerate() {
                    if let Some(value) = value {
                        sealed[i] = Some(record.seal(shipping_field::NAMES[i], value.expose().as_bytes())?);
                    }
                }
                Some(Sealed {
                    kek_version,
                    wrapped_dek,
                    fields: sealed,
                })
            }
            None => None,
        };
        self.record_now(actor, event).await?;
        let inserted = self.store.insert_order(row.clone(), sealed).await;
        self.keys_checked(&tenant, inserted).await?;
        self.order_view(
            Scope {
                tenant: Some(&tenant),
                shop: None,
            },
            &row.id,
        )
        .await
    }

    /// An order.
    pub async fn order(&self, actor: &Actor, id: &str) -> Result<Order> {
        self.audited(actor, EventKind::OrderRead, async |event| {
            actor.require(Action::ReadOrder)?;
            let id = parse_or_404(OrderId::parse, id, "order")?;
            event.resource(&id).fields(&[field::ORDER, field::CARD_MASKED]);
            let view = self.order_row(actor.scope(), &id).await?;
            event.tenant(&view.order.tenant_id).subject(
                self.subject(&view.order.tenant_id, &view.order.customer_id)
                    .await?,
            );
            Ok(view.into())
        })
        .await
    }

    async fn order_row(&self, scope: Scope<'_>, id: &OrderId) -> Result<OrderView> {
        self.store
            .order(scope, id)
            .await?
            .ok_or_else(|| Error::not_found("order"))
    }

    async fn order_view(&self, scope: Scope<'_>, id: &OrderId) -> Result<Order> {
        Ok(self.order_row(scope, id).await?.into())
    }

    /// A page of one shop's orders.
    pub async fn orders(&self, actor: &Actor, query: OrderQuery) -> Result<OrderPage> {
        self.audited(actor, EventKind::OrderList, async |event| {
            self.order_page(actor, query, event).await
        })
        .await
    }

    async fn order_page(&self, actor: &Actor, query: OrderQuery, event: &mut Event) -> Result<OrderPage> {
        actor.require(Action::ReadOrder)?;
        event.fields(&[field::ORDER, field::CARD_MASKED]);
        let limit = query.limit.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid("invalid_limit", "limit must be 1 to 500"));
        }
        let shop = match (actor.scope().shop, query.shop_id.as_deref()) {
            (Some(own), None) => own.clone(),
            (Some(own), Some(requested)) if own.as_str() == requested => own.clone(),
            (Some(_), Some(_)) => return Err(Error::not_found("shop")),
            (None, requested) => {
                let requested = requested.ok_or_else(|| Error::invalid("shop_required", "give shop_id"))?;
                let shop_id = parse_or_404(ShopId::parse, requested, "shop")?;
                let shop = self
                    .store
                    .shop(&shop_id)
                    .await?
                    .ok_or_else(|| Error::not_found("shop"))?;
                if !actor.sees_tenant(&shop.tenant_id) {
                    return Err(Error::not_found("shop"));
                }
                shop.id
            }
        };
        let after = query
            .after
            .as_deref()
            .map(|a| parse_or_404(OrderId::parse, a, "order"))
            .transpose()?;
        // The cursor must be an order of this shop: anything else is the same 404
        // as a missing id, so cursors cannot probe other shops' orders.
        if let Some(after) = &after {
            let scope = Scope {
                tenant: actor.tenant_id.as_ref(),
                shop: Some(&shop),
            };
            self.store
                .order(scope, after)
                .await?
                .ok_or_else(|| Error::not_found("order"))?;
        }
        let rows = self.store.orders(&shop, after.as_ref(), limit).await?;
        event.resource(&shop).rows(rows.len() as u64);
        if let Some(first) = rows.first() {
            let keys = self.keyring.tenant(&self.store, &first.order.tenant_id).await?;
            event.tenant(&first.order.tenant_id);
            for view in &rows {
                event.resource(&view.order.id).subject(keys.fingerprint(
                    crate::vault::customers::SUBJECT,
                    view.order.customer_id.as_str().as_bytes(),
                ));
            }
        }
        let full_page = rows.len() == limit as usize;
        let orders: Vec<Order> = rows.into_iter().map(Order::from).collect();
        let next_after = if full_page {
            orders.last().map(|o| o.id.clone())
        } else {
            None
        };
        Ok(OrderPage { orders, next_after })
    }

    /// Marks an order completed (shipped and done); starts its retention window.
    pub async fn complete_order(&self, actor: &Actor, id: &str) -> Result<Order> {
        self.audited(actor, EventKind::OrderComplete, async |event| {
            actor.require(Action::WriteOrder)?;
            let id = parse_or_404(OrderId::parse, id, "order")?;
            event.resource(&id).fields(&[field::ORDER]);
            let order = self.order_row(actor.scope(), &id).await?.order;
            event
                .tenant(&order.tenant_id)
                .subject(self.subject(&order.tenant_id, &order.customer_id).await?);
            if order.status != "created" {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "order_not_open",
                    "only an order in status created can be completed",
                ));
            }
            self.record_now(actor, event).await?;
            self.store
                .complete_order(actor.scope(), &id, clock::now_ms())
                .await?;
            self.order_view(actor.scope(), &id).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_iso_4217() {
        assert_eq!(currency("jpy").expect("jpy"), "JPY");
        assert_eq!(currency("USD").expect("usd"), "USD");
        assert_eq!(currency("XXQ").err().map(|e| e.code()), Some("invalid_currency"));
    }
}
