//! Checkout sessions.
//!
//! The shop's server opens a session (`POST /v1/checkout/sessions`) for an
//! amount and the origin of the page that will embed the hosted card page;
//! the shopper's browser submits the card to `POST /checkout/{id}/card` from
//! that hosted page (anshin's own origin), anshin tokenizes it into the
//! session's tenant and holds the security code for the authorization; the
//! page polls `GET /checkout/{id}/status`. A session is used once: the card
//! is attached by one conditional write, and it expires (15 minutes by
//! default).
//!
//! The shopper-facing routes take no API key: the session id (128 random
//! bits) is the capability. Their audit entries have no actor and name the
//! client's address; the card's tokenization is recorded under the
//! principal that opened the session, with purpose `checkout`.

use std::net::IpAddr;
use std::time::Instant;

use anshin_crypto::pan::{Brand, Pan};
use anshin_crypto::secret::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Action, Actor, Role};
use crate::app::App;
use crate::audit::{Event, EventKind, field};
use crate::clock;
use crate::db::checkout::{SessionCard, SessionRow, session_status};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{CheckoutSessionId, parse_or_404};
use crate::orders::{MAX_AMOUNT, currency};
use crate::vault::cards::CardInput;

/// What a shop's server sends to open a checkout session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// Amount in the currency's minor unit (yen for JPY).
    #[schema(example = 3980)]
    pub amount: i64,
    /// ISO 4217 currency code.
    #[schema(example = "JPY")]
    pub currency: String,
    /// The shop's own order reference: 1–64 of `A-Z a-z 0-9 . _ : -`.
    #[schema(example = "order-2026-0001")]
    pub order_ref: String,
    /// Origin of the shop page that embeds the card page (`https://shop.example[:port]`, no path).
    #[schema(example = "https://shop.example")]
    pub allowed_origin: String,
    /// Language of the card page: `ja` or `en`.
    #[serde(default = "default_locale")]
    #[schema(example = "ja")]
    pub locale: String,
    /// The shop the payment is for (operator keys; a shop key's own shop otherwise).
    #[serde(default)]
    pub shop_id: Option<String>,
    /// The tenant (global operator keys only).
    #[serde(default)]
    pub tenant_id: Option<String>,
}

fn default_locale() -> String {
    "ja".to_owned()
}

/// A newly opened session.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenedSession {
    /// Session id (`cs_…`).
    pub id: String,
    /// The hosted card page to embed (iframe) or open.
    pub url: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// `open`.
    pub status: String,
}

/// The card attached to a session, masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCardView {
    /// The card's token in the vault.
    pub token: String,
    /// Brand.
    pub brand: String,
    /// Last four digits.
    pub last4: String,
}

/// A session as its shop's server reads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// `open`, `card_submitted`, `completed` or `expired`.
    pub status: String,
    /// Amount in minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// The shop's order reference.
    pub order_ref: String,
    /// The submitted card, once submitted.
    pub card: Option<SessionCardView>,
    /// The payment made with it, once made.
    pub payment_id: Option<String>,
    /// When it expires (RFC 3339).
    pub expires_at: String,
}

/// What the hosted card page needs to render a session.
#[derive(Debug, Clone, Serialize)]
pub struct PageView {
    /// The shop page's origin: `frame-ancestors` and the only `postMessage` target.
    pub allowed_origin: String,
    /// `ja` or `en`.
    pub locale: String,
    /// Amount in minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// `open`, `card_submitted`, `completed` or `expired`.
    pub status: String,
    /// Origins of the processors' 3-D Secure pages (ACS) the page may frame.
    pub acs_origins: Vec<String>,
}

/// A card as the hosted page submits it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSubmission {
    #[serde(deserialize_with = "crate::vault::secret")]
    number: SecretString,
    exp_month: u8,
    exp_year: u16,
    #[serde(deserialize_with = "crate::vault::secret")]
    holder_name: SecretString,
    #[serde(deserialize_with = "crate::vault::secret")]
    cvc: SecretString,
}

/// The answer to a card submission.
#[derive(Debug, Serialize)]
pub struct SubmittedCard {
    /// The card's token.
    pub card_token: String,
    /// Brand.
    pub brand: String,
    /// Last four digits.
    pub last4: String,
    /// Expiry month.
    pub exp_month: u8,
    /// Expiry year.
    pub exp_year: u16,
}

/// The masked card in a status answer.
#[derive(Debug, Serialize)]
pub struct StatusCard {
    /// Brand.
    pub brand: String,
    /// Last four digits.
    pub last4: String,
}

/// The payment in a status answer.
#[derive(Debug, Serialize)]
pub struct StatusPayment {
    /// Payment id.
    pub id: String,
    /// Its status.
    pub status: String,
    /// Why it was declined.
    pub decline_code: Option<String>,
    /// The issuer's challenge page, while a 3-D Secure challenge is pending.
    pub challenge_url: Option<String>,
}

/// What the hosted page polls.
#[derive(Debug, Serialize)]
pub struct SessionStatus {
    /// `open`, `card_submitted`, `completed` or `expired`.
    pub status: String,
    /// The submitted card, masked.
    pub card: Option<StatusCard>,
    /// The payment, once the shop's server made it.
    pub payment: Option<StatusPayment>,
}

/// The status a session shows at `now`.
fn shown_status(row: &SessionRow, now: i64) -> &str {
    if row.status != session_status::COMPLETED && now >= row.expires_at {
        "expired"
    } else {
        &row.status
    }
}

fn order_ref(value: &str) -> Result<String> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Error::invalid(
            "order_ref_invalid",
            "order_ref must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
        )
        .with_param("order_ref"))
    }
}

/// Parses a web origin `scheme://host[:port]` (no path, query, fragment or
/// user), lower-cased and without a default port, so it compares exactly
/// with what browsers send. `https` only, but `http` to a loopback host.
pub fn web_origin(value: &str, param: &'static str) -> Result<String> {
    let bad = || {
        Error::invalid(
            "origin_invalid",
            "give an origin: https://HOST[:PORT] without a path (http:// only for 127.0.0.1, [::1] or localhost)",
        )
        .with_param(param)
    };
    let uri: axum::http::Uri = value.parse().map_err(|_| bad())?;
    let authority = uri.authority().ok_or_else(bad)?;
    if authority.as_str().contains('@')
        || uri.query().is_some()
        || value.contains('#')
        || !matches!(uri.path(), "" | "/")
        || value.ends_with('/')
    {
        return Err(bad());
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return Err(bad());
    }
    let scheme = uri.scheme_str().map(str::to_ascii_lowercase).ok_or_else(bad)?;
    let loopback = {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" if loopback => 80,
        _ => return Err(bad()),
    };
    Ok(match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn locale(value: &str) -> Result<String> {
    match value {
        "ja" | "en" => Ok(value.to_owned()),
        _ => Err(Error::invalid("locale_invalid", "locale must be ja or en").with_param("locale")),
    }
}

/// The security code: 4 digits for American Express, 3 for other brands;
/// full-width digits are read as digits.
fn cvc(input: &SecretString, brand: Brand) -> Result<SecretString> {
    let mut digits = String::with_capacity(4);
    let mut valid = true;
    for c in input.expose().trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            '０'..='９' => digits.push(char::from(b'0' + (c as u32 - '０' as u32) as u8)),
            _ => valid = false,
        }
        if digits.len() > 4 {
            valid = false;
        }
        if !valid {
            break;
        }
    }
    let digits = SecretString::new(digits);
    let wanted = if brand == Brand::Amex { 4 } else { 3 };
    if valid && digits.expose().len() == wanted {
        Ok(digits)
    } else {
        Err(Error::invalid(
            "cvc_invalid",
            "the security code must be 3 digits (4 for American Express)",
        )
        .with_param("cvc"))
    }
}

/// The vault's answers, in the words of the card page's contract.
fn card_error(err: Error) -> Error {
    let (code, param, message) = match err.code() {
        "invalid_card_number" => ("card_invalid", "number", "the card number is not valid"),
        "invalid_expiry" => (
            "card_invalid",
            "exp_month",
            "the expiry date is not valid (month 1 to 12, a year within 25 years)",
        ),
        "card_expired" => ("card_expired", "exp_year", "the card has expired"),
        "invalid_holder_name" => (
            "holder_name_invalid",
            "holder_name",
            "the name on the card must be 1 to 128 characters",
        ),
        _ => return err,
    };
    Error::invalid(code, message).with_param(param)
}

fn gone(status: &str) -> Error {
    if status == "expired" {
        Error::new(
            ErrorKind::Gone,
            "session_expired",
            "this checkout session has expired; go back to the shop and start again",
        )
    } else {
        Error::new(
            ErrorKind::Gone,
            "session_used",
            "this checkout session has been used; go back to the shop and start again",
        )
    }
}

impl SessionView {
    fn of(row: &SessionRow, now: i64) -> Self {
        Self {
            id: row.id.to_string(),
            status: shown_status(row, now).to_owned(),
            amount: row.amount,
            currency: row.currency.clone(),
            order_ref: row.order_ref.clone(),
            card: row.card.as_ref().map(|c| SessionCardView {
                token: c.token.to_string(),
                brand: c.brand.clone(),
                last4: c.last4.clone(),
            }),
            payment_id: row.payment_id.as_ref().map(ToString::to_string),
            expires_at: clock::rfc3339(row.expires_at),
        }
    }
}

impl App {
    /// Opens a checkout session for a shop's server.
    pub async fn create_checkout_session(&self, actor: &Actor, input: NewSession) -> Result<OpenedSession> {
        self.audited(actor, EventKind::CheckoutCreate, async |event| {
            actor.require(Action::Pay)?;
            if !(1..=MAX_AMOUNT).contains(&input.amount) {
                return Err(Error::invalid(
                    "amount_invalid",
                    "amount must be a positive whole number of minor units",
                )
                .with_param("amount"));
            }
            let currency = currency(&input.currency).map_err(|e| e.with_param("currency"))?;
            let order_ref = order_ref(&input.order_ref)?;
            let allowed_origin = web_origin(&input.allowed_origin, "allowed_origin")?;
            let locale = locale(&input.locale)?;
            let (tenant, shop) = self
                .placement(actor, input.tenant_id.as_deref(), input.shop_id.as_deref(), false)
                .await?;
            let settings = self.checkout.settings();
            let now = clock::now_ms();
            let ttl_ms = i64::try_from(settings.session_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            let row = SessionRow {
                id: CheckoutSessionId::generate()?,
                tenant_id: tenant.clone(),
                shop_id: shop,
                created_by: actor.principal_id.clone(),
                amount: input.amount,
                currency,
                order_ref,
                allowed_origin,
                locale,
                status: session_status::OPEN.to_owned(),
                card: None,
                payment_id: None,
                created_at: now,
                expires_at: now.saturating_add(ttl_ms),
            };
            event.tenant(&tenant).resource(&row.id);
            self.record_now(actor, event).await?;
            self.store.checkout_insert(row.clone()).await?;
            Ok(OpenedSession {
                url: format!("{}/checkout/{}", settings.public_url, row.id),
                id: row.id.to_string(),
                expires_at: clock::rfc3339(row.expires_at),
                status: row.status,
            })
        })
        .await
    }

    /// A session, for the shop's server that may see it.
    pub async fn checkout_session(&self, actor: &Actor, id: &str) -> Result<SessionView> {
        self.audited(actor, EventKind::CheckoutRead, async |event| {
            actor.require(Action::Pay)?;
            let row = self.visible_session(actor, id).await?;
            event.tenant(&row.tenant_id).resource(&row.id);
            if let Some(card) = &row.card {
                event.resource(&card.token).fields(&[field::CARD_MASKED]);
            }
            Ok(SessionView::of(&row, clock::now_ms()))
        })
        .await
    }

    /// A session inside the actor's scope (404 otherwise).
    pub(crate) async fn visible_session(&self, actor: &Actor, id: &str) -> Result<SessionRow> {
        let id = parse_or_404(CheckoutSessionId::parse, id, "checkout session")?;
        let row = self.store.checkout_session(&id).await?;
        let scope = actor.scope();
        row.filter(|r| {
            actor.sees_tenant(&r.tenant_id) && scope.shop.is_none_or(|shop| r.shop_id.as_ref() == Some(shop))
        })
        .ok_or_else(|| Error::not_found("checkout session"))
    }

    /// A session by the id in a shopper-facing URL.
    async fn shopper_session(&self, id: &str) -> Result<SessionRow> {
        let id = parse_or_404(CheckoutSessionId::parse, id, "checkout session")?;
        self.store
            .checkout_session(&id)
            .await?
            .ok_or_else(|| Error::not_found("checkout session"))
    }

    /// The actor a session's card is tokenized as: the principal that opened
    /// the session, acting for the shopper's browser at `client`.
    fn session_actor(row: &SessionRow, client: Option<IpAddr>) -> Actor {
        Actor {
            principal_id: row.created_by.clone(),
            role: if row.shop_id.is_some() {
                Role::Shop
            } else {
                Role::Operator
            },
            tenant_id: Some(row.tenant_id.clone()),
            shop_id: row.shop_id.clone(),
            origin: client,
            purpose: Some("checkout".to_owned()),
        }
    }
}

/// The shopper-facing side of checkout (the hosted page's routes).
pub struct Checkout<'a> {
    pub(crate) app: &'a App,
}

impl Checkout<'_> {
    /// Counts a page load or status poll from `client` (429 `rate_limited`
    /// past the limit).
    pub fn allow_request(&self, client: Option<IpAddr>) -> Result<()> {
        self.app.checkout.limits.requests.take(client, Instant::now())
    }

    /// The origin shoppers' browsers reach anshin at.
    pub fn public_origin(&self) -> String {
        self.app.checkout.settings().public_url.clone()
    }

    /// What the hosted page renders for a session; 404 `not_found` for an
    /// unknown id. A used or expired session is answered (its status says so)
    /// so the page can tell the shopper.
    pub async fn page_view(&self, id: &str) -> Result<PageView> {
        let row = self.app.shopper_session(id).await?;
        let acs_origins = self.app.acs_origins(&row.tenant_id).await?;
        Ok(PageView {
            status: shown_status(&row, clock::now_ms()).to_owned(),
            allowed_origin: row.allowed_origin,
            locale: row.locale,
            amount: row.amount,
            currency: row.currency,
            acs_origins,
        })
    }

    /// Takes the card the hosted page submits: checks the request's `Origin`
    /// is anshin's own, tokenizes the card into the session's tenant, holds
    /// the security code for the authorization, and marks the session used.
    pub async fn submit_card(
        &self,
        id: &str,
        origin_header: Option<&str>,
        client: Option<IpAddr>,
        input: CardSubmission,
    ) -> Result<SubmittedCard> {
        let app = self.app;
        app.checkout.limits.cards.take(client, Instant::now())?;
        let mut event = Event::new(EventKind::CheckoutCard);
        let result = self.take_card(id, origin_header, client, input, &mut event).await;
        match &result {
            Ok(_) => app.record(None, client, &event, None).await?,
            Err(err) => {
                if let Err(log_err) = app.record(None, client, &event, Some(err)).await {
                    tracing::warn!(error = ?log_err, "could not record a refused card submission");
                }
            }
        }
        result
    }

    async fn take_card(
        &self,
        id: &str,
        origin_header: Option<&str>,
        client: Option<IpAddr>,
        input: CardSubmission,
        event: &mut Event,
    ) -> Result<SubmittedCard> {
        let app = self.app;
        let settings = app.checkout.settings();
        if origin_header != Some(settings.public_url.as_str()) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                "origin_mismatch",
                "cards are accepted only from anshin's own card page",
            ));
        }
        let row = app.shopper_session(id).await?;
        event.tenant(&row.tenant_id).resource(&row.id);
        let now = clock::now_ms();
        let status = shown_status(&row, now);
        if status != session_status::OPEN {
            return Err(gone(status));
        }
        let brand = Pan::parse(input.number.expose())
            .map_err(|_| Error::invalid("card_invalid", "the card number is not valid").with_param("number"))?
            .brand();
        let cvc = cvc(&input.cvc, brand)?;
        let actor = App::session_actor(&row, client);
        let (card, _) = app
            .tokenize(
                &actor,
                CardInput {
                    number: input.number,
                    exp_month: input.exp_month,
                    exp_year: input.exp_year,
                    holder_name: input.holder_name,
                    tenant_id: None,
                },
            )
            .await
            .map_err(card_error)?;
        event
            .resource(&card.token)
            .fields(&[field::CARD_MASKED, field::CARD_CVC]);
        // Held before the session is marked used: a payment that finds the
        // session used finds the code too.
        app.cvc_hold(&row.id, &cvc, now).await?;
        let attached = app
            .store
            .checkout_attach_card(
                &row.id,
                SessionCard {
                    token: card.token.clone(),
                    brand: card.brand.clone(),
                    last4: card.last4.clone(),
                },
                clock::now_ms(),
            )
            .await;
        if !matches!(attached, Ok(true)) {
            app.cvc_forget(&row.id).await?;
            attached?;
            // Another submission won the race, or the session expired meanwhile.
            let now = clock::now_ms();
            let again = app.shopper_session(id).await?;
            return Err(gone(shown_status(&again, now)));
        }
        Ok(SubmittedCard {
            card_token: card.token.to_string(),
            brand: card.brand,
            last4: card.last4,
            exp_month: card.exp_month,
            exp_year: card.exp_year,
        })
    }

    /// What the hosted page polls: the session's status, the masked card and
    /// the payment with its 3-D Secure challenge, if any.
    pub async fn status(&self, id: &str) -> Result<SessionStatus> {
        let app = self.app;
        let row = app.shopper_session(id).await?;
        let payment = app.status_payment(&row).await?;
        Ok(SessionStatus {
            status: shown_status(&row, clock::now_ms()).to_owned(),
            card: row.card.map(|c| StatusCard {
                brand: c.brand,
                last4: c.last4,
            }),
            payment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_paths_refused() {
        assert_eq!(
            web_origin("https://Shop.Example:443", "o").expect("ok"),
            "https://shop.example"
        );
        assert_eq!(
            web_origin("https://shop.example:8443", "o").expect("ok"),
            "https://shop.example:8443"
        );
        assert_eq!(
            web_origin("http://127.0.0.1:3000", "o").expect("ok"),
            "http://127.0.0.1:3000"
        );
        for bad in [
            "http://shop.example",
            "https://shop.example/checkout",
            "https://shop.example/",
            "https://user@shop.example",
            "https://shop.example?x=1",
            "ftp://shop.example",
            "shop.example",
            "*",
        ] {
            let err = web_origin(bad, "allowed_origin").expect_err(bad);
            assert_eq!(
                (err.code(), err.param()),
                ("origin_invalid", Some("allowed_origin"))
            );
        }
    }

    #[test]
    fn security_codes_follow_the_brand() {
        let code = |s: &str, b| cvc(&SecretString::new(s.to_owned()), b).map(|c| c.expose().to_owned());
        assert_eq!(code("123", Brand::Visa).expect("visa"), "123");
        assert_eq!(code("１２３", Brand::Jcb).expect("full width"), "123");
        assert_eq!(code("1234", Brand::Amex).expect("amex"), "1234");
        for (bad, brand) in [
            ("1234", Brand::Visa),
            ("123", Brand::Amex),
            ("12a", Brand::Visa),
            ("", Brand::Visa),
            ("12345", Brand::Amex),
        ] {
            let err = code(bad, brand).expect_err(bad);
            assert!(!err.message().contains(bad) || bad.is_empty());
            assert_eq!(err.param(), Some("cvc"));
        }
    }

    #[test]
    fn order_refs_cannot_carry_free_text() {
        assert!(order_ref("order-2026:0001").is_ok());
        for bad in ["", "山田太郎", "a b", &"x".repeat(65)] {
            assert_eq!(order_ref(bad).expect_err(bad).code(), "order_ref_invalid");
        }
    }
}
