//! Cards: tokenize, masked read, reveal, look up by number, crypto-shred.
//!
//! A card is stored once per tenant (the keyed fingerprint finds it again), with
//! brand and last four in clear and number, expiry and holder sealed under the
//! card's own data key. Shops that tokenized a card are linked to it and see only
//! linked cards; only processors may reveal.

use anshin_crypto::pan::{Pan, PanError};
use anshin_crypto::secret::SecretString;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::{Event, EventKind, field};
use crate::clock;
use crate::db::{CardInsert, CardRelease, CardRow, Scope, Sealed, card_field};
use crate::error::{Error, Result};
use crate::ids::{CardToken, TenantId, parse_or_404};
use crate::vault::keys::{RecordKind, TenantKeys};

/// Card data as a client sends it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    /// Card number; digits, optionally grouped by spaces or hyphens; full-width digits accepted.
    #[serde(deserialize_with = "super::secret")]
    #[schema(value_type = String, example = "4111 1111 1111 1111")]
    pub number: SecretString,
    /// Expiry month, 1–12.
    #[schema(example = 12)]
    pub exp_month: u8,
    /// Expiry year, four digits (two are read as 20YY).
    #[schema(example = 2030)]
    pub exp_year: u16,
    /// Name on the card.
    #[serde(deserialize_with = "super::secret")]
    #[schema(value_type = String, example = "TARO YAMADA")]
    pub holder_name: SecretString,
    /// Tenant to store the card in; only for principals not bound to a tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// A card number to look up.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardLookup {
    /// Card number.
    #[serde(deserialize_with = "super::secret")]
    #[schema(value_type = String, example = "4111111111111111")]
    pub number: SecretString,
    /// Tenant to search; only for principals not bound to a tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// What anyone allowed to read a card sees (PCI DSS 3.4.1). No timestamps: when
/// a card was first tokenized would tell a shop about other shops' customers.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaskedCard {
    /// The card's token.
    #[schema(value_type = String, example = "card_4bqz7kd2m5xw3ay6n7p2c4r5ta")]
    pub token: CardToken,
    /// Brand: visa, mastercard, amex, jcb, diners, discover or unionpay.
    pub brand: String,
    /// Last four digits.
    pub last4: String,
    /// Expiry month.
    pub exp_month: u8,
    /// Expiry year.
    pub exp_year: u16,
}

/// Full card data, for processors. Serialized only into a reveal response
/// (or, by the payment proxy, onto the wire to a processor).
#[derive(ToSchema)]
pub struct RevealedCard {
    /// Card number, digits only.
    #[schema(value_type = String)]
    pub(crate) number: SecretString,
    /// Expiry month.
    pub(crate) exp_month: u8,
    /// Expiry year.
    pub(crate) exp_year: u16,
    /// Name on the card.
    #[schema(value_type = String)]
    pub(crate) holder_name: SecretString,
}

impl Serialize for RevealedCard {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("RevealedCard", 4)?;
        s.serialize_field("number", self.number.expose())?;
        s.serialize_field("exp_month", &self.exp_month)?;
        s.serialize_field("exp_year", &self.exp_year)?;
        s.serialize_field("holder_name", self.holder_name.expose())?;
        s.end()
    }
}

/// A valid expiry date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expiry {
    month: u8,
    year: u16,
}

impl Expiry {
    fn parse(month: u8, year: u16) -> Result<Self> {
        let year = if year < 100 { 2000 + year } else { year };
        let (now_year, now_month) = clock::year_month();
        if !(1..=12).contains(&month) || !(2000..=2099).contains(&year) || year > now_year.saturating_add(25)
        {
            return Err(Error::invalid(
                "invalid_expiry",
                "exp_month must be 1 to 12 and exp_year a year within the next 25 years",
            ));
        }
        if (year, month) < (now_year, now_month) {
            return Err(Error::invalid("card_expired", "the card has expired"));
        }
        Ok(Self { month, year })
    }

    fn is_later_than(self, other: Self) -> bool {
        (self.year, self.month) > (other.year, other.month)
    }

    fn encode(self) -> String {
        format!("{:02}/{:04}", self.month, self.year)
    }

    fn decode(text: &str) -> Result<Self> {
        let parsed = text.split_once('/').and_then(|(m, y)| {
            Some(Self {
                month: m.parse().ok()?,
                year: y.parse().ok()?,
            })
        });
        parsed.ok_or_else(|| Error::internal(crate::db::StoreError::Corrupt("sealed expiry")))
    }
}

fn card_number(input: &SecretString) -> Result<Pan> {
    Pan::parse(input.expose()).map_err(|err| {
        let reason = match err {
            PanError::InvalidCharacter => "it may contain only digits, spaces and hyphens",
            PanError::Length => "it must have 12 to 19 digits",
            PanError::Luhn => "its check digit is wrong (Luhn)",
            _ => "its brand is not supported",
        };
        Error::invalid(
            "invalid_card_number",
            format!("the card number is not valid: {reason}"),
        )
    })
}

fn holder_name(input: &SecretString) -> Result<SecretString> {
    let value = input.expose().trim();
    let count = value.chars().count();
    if count == 0 || count > 128 || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_holder_name",
            "holder_name must be 1 to 128 characters without control characters",
        ));
    }
    Ok(SecretString::new(value.to_owned()))
}

fn optional_tenant(value: Option<&str>) -> Result<Option<TenantId>> {
    value
        .map(|v| parse_or_404(TenantId::parse, v, "tenant"))
        .transpose()
}

impl App {
    /// Tokenizes a card. Returns the masked card and whether it is new to the
    /// caller: the same number in the same tenant always gets the same token,
    /// and a shop gets 201 for any card it had not tokenized itself, so it
    /// learns nothing about other shops' customers. A later expiry (a renewed
    /// card) replaces the stored expiry and holder name; anything else keeps them,
    /// so one shop cannot rewrite the details other shops' payments rely on.
    pub async fn tokenize(&self, actor: &Actor, input: CardInput) -> Result<(MaskedCard, bool)> {
        self.audited(actor, EventKind::CardTokenize, async |event| {
            self.store_card(actor, input, event).await
        })
        .await
    }

    async fn store_card(
        &self,
        actor: &Actor,
        input: CardInput,
        event: &mut Event,
    ) -> Result<(MaskedCard, bool)> {
        actor.require(Action::Tokenize)?;
        let tenant = actor.tenant_for(optional_tenant(input.tenant_id.as_deref())?.as_ref())?;
        let pan = card_number(&input.number)?;
        let expiry = Expiry::parse(input.exp_month, input.exp_year)?;
        let holder = holder_name(&input.holder_name)?;
        let keys = self.keyring.tenant(&self.store, &tenant).await?;
        let fingerprint = keys.fingerprint("pan", pan.expose().as_bytes());
        let shop = actor.scope().shop.cloned();
        let expiry_text = expiry.encode();
        event
            .tenant(&tenant)
            .fields(&[field::CARD_NUMBER, field::CARD_EXPIRY, field::CARD_HOLDER]);
        // A card shredded between the insert and the read below is stored anew.
        for _ in 0..3 {
            let token = CardToken::generate()?;
            let (record, kek_version, wrapped_dek) = keys.new_record(RecordKind::Card, token.as_str())?;
            let row = CardRow {
                token: token.clone(),
                tenant_id: tenant.clone(),
                fingerprint: Some(fingerprint),
                brand: pan.brand().as_str().to_owned(),
                last4: pan.last4(),
                sealed: Some(Sealed {
                    kek_version,
                    wrapped_dek,
                    fields: [
                        Some(record.seal("number", pan.expose().as_bytes())?),
                        Some(record.seal("expiry", expiry_text.as_bytes())?),
                        Some(record.seal("holder", holder.expose().as_bytes())?),
                    ],
                }),
                created_at: clock::now_ms(),
                deleted_at: None,
            };
            // The entry names the token the caller gets, new or existing, and
            // is appended in the insert's own transaction.
            let recorded = self.entry_for(actor, event);
            let inserted = self.store.insert_card(row.clone(), shop.clone(), recorded).await;
            let (existing, newly_visible) = match self.keys_checked(&tenant, inserted).await? {
                CardInsert::Inserted => {
                    event.resource(&row.token).recorded_with_write();
                    return Ok((masked(&row, expiry), true));
                }
                CardInsert::Vanished => continue,
                CardInsert::Existing { token, newly_visible } => (token, newly_visible),
            };
            event.resource(&existing).recorded_with_write();
            let scope = Scope {
                tenant: Some(&tenant),
                shop: None,
            };
            let Some(stored) = self
                .store
                .card(scope, &existing)
                .await?
                .filter(|r| r.sealed.is_some())
            else {
                continue;
            };
            let keys = self
                .keyring
                .tenant_holding(
                    &self.store,
                    &tenant,
                    stored.sealed.as_ref().map(|s| s.kek_version),
                )
                .await?;
            let (stored_expiry, _) = open_details(&keys, &stored)?;
            let shown = if expiry.is_later_than(stored_expiry) {
                let sealed = stored.sealed.as_ref().ok_or_else(|| Error::not_found("card"))?;
                let record = keys.open_record(RecordKind::Card, existing.as_str(), sealed)?;
                let new_expiry = record.seal("expiry", expiry_text.as_bytes())?;
                let new_holder = record.seal("holder", holder.expose().as_bytes())?;
                self.store
                    .update_card_details(&tenant, &existing, new_expiry, new_holder)
                    .await?;
                expiry
            } else {
                stored_expiry
            };
            return Ok((masked(&stored, shown), newly_visible));
        }
        Err(Error::new(
            crate::error::ErrorKind::Conflict,
            "card_busy",
            "the card was being deleted while it was tokenized; retry",
        ))
    }

    /// A card's masked view.
    pub async fn card(&self, actor: &Actor, token: &str) -> Result<MaskedCard> {
        self.audited(actor, EventKind::CardRead, async |event| {
            actor.require(Action::ReadCard)?;
            event
                .resource(&parse_or_404(CardToken::parse, token, "card")?)
                .fields(&[field::CARD_MASKED]);
            self.masked_card(actor, token, event).await
        })
        .await
    }

    async fn masked_card(&self, actor: &Actor, token: &str, event: &mut Event) -> Result<MaskedCard> {
        let (row, keys) = self.live_card(actor.scope(), token).await?;
        event.tenant(&row.tenant_id);
        let (expiry, _) = open_details(&keys, &row)?;
        Ok(masked(&row, expiry))
    }

    /// Full card data, for processors only. The reveal is in the audit log
    /// before the data leaves this function.
    pub async fn reveal_card(&self, actor: &Actor, token: &str) -> Result<RevealedCard> {
        self.audited(actor, EventKind::CardReveal, async |event| {
            actor.require(Action::RevealCard)?;
            event
                .resource(&parse_or_404(CardToken::parse, token, "card")?)
                .fields(&[field::CARD_NUMBER, field::CARD_EXPIRY, field::CARD_HOLDER]);
            let (card, row) = self.open_card(actor.scope(), token).await?;
            event.tenant(&row.tenant_id);
            Ok(card)
        })
        .await
    }

    /// A card's full data inside `scope`, with its row: for a reveal, or for
    /// the payment proxy to send to a processor. Callers record the access.
    pub(crate) async fn open_card(&self, scope: Scope<'_>, token: &str) -> Result<(RevealedCard, CardRow)> {
        let (row, keys) = self.live_card(scope, token).await?;
        open_card_row(row, &keys)
    }

    /// [`App::open_card`] for a card already read inside its scope (`None`:
    /// none there), so the read can share a round trip with others.
    pub(crate) async fn open_card_read(&self, row: Option<CardRow>) -> Result<(RevealedCard, CardRow)> {
        let (row, keys) = self.live_card_read(row).await?;
        open_card_row(row, &keys)
    }

    /// Finds a card by its number through the keyed fingerprint, decrypting nothing.
    pub async fn lookup_card(&self, actor: &Actor, input: CardLookup) -> Result<MaskedCard> {
        self.audited(actor, EventKind::CardLookup, async |event| {
            actor.require(Action::LookupCard)?;
            let tenant = actor.tenant_for(optional_tenant(input.tenant_id.as_deref())?.as_ref())?;
            event.tenant(&tenant).fields(&[field::CARD_MASKED]);
            let pan = card_number(&input.number)?;
            let keys = self.keyring.tenant(&self.store, &tenant).await?;
            let fingerprint = keys.fingerprint("pan", pan.expose().as_bytes());
            let token = self
                .store
                .card_by_fingerprint(&tenant, &fingerprint)
                .await?
                .ok_or_else(|| Error::not_found("card"))?;
            event.resource(&token);
            self.masked_card(actor, token.as_str(), event).await
        })
        .await
    }

    /// Deletes a card. An operator crypto-shreds it: its data key and
    /// ciphertexts are overwritten and the token remains as a tombstone. A shop
    /// gives up its own access; the card is shredded once no shop holds it, so
    /// one shop cannot destroy a card other shops' orders still use.
    pub async fn delete_card(&self, actor: &Actor, token: &str) -> Result<()> {
        self.audited(actor, EventKind::CardDelete, async |event| {
            actor.require(Action::DeleteCard)?;
            event.resource(&parse_or_404(CardToken::parse, token, "card")?);
            let (row, _) = self.live_card(actor.scope(), token).await?;
            event.tenant(&row.tenant_id);
            self.record_now(actor, event).await?;
            let now = clock::now_ms();
            let found = match actor.scope().shop {
                Some(shop) => {
                    self.store
                        .release_card(&row.tenant_id, shop, &row.token, now)
                        .await?
                        != CardRelease::NotFound
                }
                None => self.store.shred_card(actor.scope(), &row.token, now).await?,
            };
            if found {
                Ok(())
            } else {
                Err(Error::not_found("card"))
            }
        })
        .await
    }

    /// A live (not shredded) card within `scope`, with its tenant's keys.
    pub(crate) async fn live_card(
        &self,
        scope: Scope<'_>,
        token: &str,
    ) -> Result<(CardRow, std::sync::Arc<TenantKeys>)> {
        let token = parse_or_404(CardToken::parse, token, "card")?;
        self.live_card_read(self.store.card(scope, &token).await?).await
    }

    /// [`App::live_card`] for a card already read inside its scope.
    async fn live_card_read(&self, row: Option<CardRow>) -> Result<(CardRow, std::sync::Arc<TenantKeys>)> {
        let row = row
            .filter(|r| r.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("card"))?;
        let keys = self
            .keyring
            .tenant_holding(
                &self.store,
                &row.tenant_id,
                row.sealed.as_ref().map(|s| s.kek_version),
            )
            .await?;
        Ok((row, keys))
    }
}

fn masked(row: &CardRow, expiry: Expiry) -> MaskedCard {
    MaskedCard {
        token: row.token.clone(),
        brand: row.brand.clone(),
        last4: row.last4.clone(),
        exp_month: expiry.month,
        exp_year: expiry.year,
    }
}

fn open_text(
    record: &crate::vault::keys::RecordKey<'_>,
    sealed: &Sealed<3>,
    field: usize,
) -> Result<SecretString> {
    let blob = sealed.fields[field]
        .as_ref()
        .ok_or_else(|| Error::not_found("card"))?;
    Ok(record
        .open(card_field::NAMES[field], blob)?
        .into_secret_string()?)
}

/// A live card's full data, with its row.
fn open_card_row(row: CardRow, keys: &TenantKeys) -> Result<(RevealedCard, CardRow)> {
    let sealed = row.sealed.as_ref().ok_or_else(|| Error::not_found("card"))?;
    let record = keys.open_record(RecordKind::Card, row.token.as_str(), sealed)?;
    let number = open_text(&record, sealed, card_field::NUMBER)?;
    let (expiry, holder_name) = open_details(keys, &row)?;
    Ok((
        RevealedCard {
            number,
            exp_month: expiry.month,
            exp_year: expiry.year,
            holder_name,
        },
        row,
    ))
}

fn open_details(keys: &TenantKeys, row: &CardRow) -> Result<(Expiry, SecretString)> {
    let sealed = row.sealed.as_ref().ok_or_else(|| Error::not_found("card"))?;
    let record = keys.open_record(RecordKind::Card, row.token.as_str(), sealed)?;
    let expiry = Expiry::decode(open_text(&record, sealed, card_field::EXPIRY)?.expose())?;
    let holder = open_text(&record, sealed, card_field::HOLDER)?;
    Ok((expiry, holder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rules() {
        let (year, month) = clock::year_month();
        assert!(Expiry::parse(month, year).is_ok(), "this month is still valid");
        assert_eq!(
            Expiry::parse(12, year - 1).err().map(|e| e.code()),
            Some("card_expired")
        );
        assert_eq!(
            Expiry::parse(13, year + 1).err().map(|e| e.code()),
            Some("invalid_expiry")
        );
        assert_eq!(
            Expiry::parse(0, year + 1).err().map(|e| e.code()),
            Some("invalid_expiry")
        );
        assert_eq!(
            Expiry::parse(1, year + 40).err().map(|e| e.code()),
            Some("invalid_expiry")
        );
        let two_digit = Expiry::parse(1, (year % 100) + 1).expect("two-digit year");
        assert_eq!(two_digit.year, year + 1);
        assert_eq!(
            Expiry::decode(&two_digit.encode()).expect("round trip"),
            two_digit
        );
    }

    #[test]
    fn invalid_numbers_never_echo() {
        let err = card_number(&SecretString::new("4111111111111112".into())).expect_err("luhn");
        assert_eq!(err.code(), "invalid_card_number");
        assert!(!err.message().contains("4111"));
    }
}
