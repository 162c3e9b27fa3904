//! Typed identifiers. Each is a type prefix and 128 random bits (see
//! [`anshin_crypto::token`]); parsing checks the shape, so a card number or any
//! other free text can never be taken for an id.

use std::fmt;

use anshin_crypto::token;

use crate::error::{Error, Result};

/// A typed id: only these can name a resource in the audit log, so free text
/// from a request (which could be a card number) never reaches it.
///
/// [`CustomerId`] does not implement it, on purpose: customers appear in the
/// log only as per-tenant keyed hashes ([`crate::audit::Event::subject`]), so
/// the log can outlive their data and never names them; a customer id passed
/// to [`crate::audit::Event::resource`] does not compile.
pub trait TypedId {
    /// The id as text.
    fn id_str(&self) -> &str;
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The type prefix of this id.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            pub fn generate() -> Result<Self> {
                Ok(Self(token::random_token($prefix)?))
            }

            /// Parses an id; `None` if it does not have this type's shape.
            pub fn parse(value: &str) -> Option<Self> {
                token::is_token($prefix, value).then(|| Self(value.to_owned()))
            }

            /// Takes an id read back from the database, which only ever stores valid ids.
            pub fn from_db(value: String) -> Self {
                Self(value)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: a marketplace, a payment provider or a single shop's operator.
    TenantId, "ten"
);
id_type!(
    /// A shop inside a tenant.
    ShopId, "shop"
);
id_type!(
    /// A shopper whose personal data the vault holds.
    CustomerId, "cus"
);
id_type!(
    /// An order.
    OrderId, "ord"
);
id_type!(
    /// A tokenized card.
    CardToken, "card"
);
id_type!(
    /// An API principal.
    PrincipalId, "prn"
);
id_type!(
    /// A security alert raised by the detectors over the audit log.
    AlertId, "alr"
);
id_type!(
    /// A data inventory uploaded by `anshin scan --server`.
    InventoryId, "inv"
);
id_type!(
    /// A request for a manual key operation, awaiting a second operator.
    KeyRequestId, "kreq"
);
id_type!(
    /// A checkout session: the shopper's page capability (128 random bits).
    CheckoutSessionId, "cs"
);
id_type!(
    /// A payment made through the processor proxy.
    PaymentId, "pay"
);

/// Lets these id types name resources in the audit log ([`TypedId`]). Every id
/// type but [`CustomerId`] is listed.
macro_rules! resource_id {
    ($($name:ident),* $(,)?) => {
        $(
            impl TypedId for $name {
                fn id_str(&self) -> &str {
                    &self.0
                }
            }
        )*
    };
}

resource_id!(
    TenantId,
    ShopId,
    OrderId,
    CardToken,
    PrincipalId,
    AlertId,
    InventoryId,
    KeyRequestId,
    EventId,
    CheckoutSessionId,
    PaymentId
);

/// Parses an id from a request, or answers 404 for `what` (a malformed id names
/// nothing that exists, and saying so differently would be an oracle).
pub fn parse_or_404<T>(parse: fn(&str) -> Option<T>, value: &str, what: &'static str) -> Result<T> {
    parse(value).ok_or_else(|| Error::not_found(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_their_own_shape() {
        let id = CardToken::generate().expect("rng");
        assert_eq!(CardToken::parse(id.as_str()), Some(id.clone()));
        assert!(CustomerId::parse(id.as_str()).is_none());
        assert!(CardToken::parse("4111111111111111").is_none());
        assert!(CardToken::parse("card_").is_none());
    }

    #[test]
    fn resource_ids_name_themselves_in_the_log() {
        fn logged(id: &impl TypedId) -> String {
            id.id_str().to_owned()
        }
        let event = EventId::generate().expect("rng");
        assert_eq!(logged(&event), event.as_str());
        assert!(logged(&event).starts_with("evt_"));
        let order = OrderId::generate().expect("rng");
        assert_eq!(logged(&order), order.as_str());
        assert!(logged(&order).starts_with("ord_"));
    }
}
id_type!(
    /// One audit log entry: makes every entry unique, so two identical
    /// accesses in the same millisecond are still two entries an auditor can
    /// tell apart (and a deleted one cannot hide behind its twin).
    EventId, "evt"
);
