//! The access policy, default deny.
//!
//! Every handler names the [`Action`] it performs and calls [`Actor::require`];
//! the table in [`Role::may`] is the whole answer. Scoping comes on top: a
//! tenant-scoped principal sees only its tenant and a shop principal only its
//! shop, and anything outside its scope is answered exactly like something that
//! does not exist (404), so ids of other tenants cannot be probed.
//!
//! | role      | may                                                                  |
//! |-----------|----------------------------------------------------------------------|
//! | operator  | manage tenants (global only), their settings, shops and principals; processor and outbound routes; checkout and payments; payment webhooks; tokenize; masked reads; delete cards; customers and orders; read the audit trail and alerts; upload and read data inventories |
//! | shop      | checkout sessions, payments, its own payment webhook and outbound routes (never seeing the card); tokenize; masked reads of its own cards, customers and orders; create customers and orders; complete orders; delete its own cards; shipping data of its own orders and CSV export, inside the retention window ([`super::retention`]) |
//! | processor | masked reads and full reveal of cards (for authorizations)           |
//! | auditor   | list principals and tenants; read the audit trail, alerts and data inventories (metadata only, no personal data) |
//!
//! Creating principals follows [`Role::may_create`]: a tenant operator may create
//! operators, shops and auditors of its tenant, never a processor (that would
//! give it reveal by the back door). Rotating another principal's key or
//! changing its allow-list follows the same rule; any principal may rotate its
//! own key.

use utoipa::ToSchema;

use crate::db::Scope;
use crate::error::{Error, Result};
use crate::ids::{PrincipalId, ShopId, TenantId};

/// A principal's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages tenants, shops and principals.
    Operator,
    /// One shop: its own customers and orders, masked.
    Shop,
    /// A card processor: may reveal full card data.
    Processor,
    /// Reads metadata only.
    Auditor,
}

/// Something a principal may try to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create tenants (global operators only).
    CreateTenant,
    /// List and read tenants.
    ReadTenants,
    /// Create shops in a tenant.
    ManageShops,
    /// Create and disable principals.
    ManagePrincipals,
    /// List principals.
    ReadPrincipals,
    /// Change a tenant's settings (key lifetime and rotation overlap).
    ManageTenantSettings,
    /// Turn card data into a token.
    Tokenize,
    /// Read a card's masked view (brand, last four, expiry).
    ReadCard,
    /// Look a card up by its number (through the keyed fingerprint).
    LookupCard,
    /// Read a card's full number, expiry and holder.
    RevealCard,
    /// Crypto-shred a card.
    DeleteCard,
    /// Create customers.
    WriteCustomer,
    /// Read a customer's masked view.
    ReadCustomer,
    /// Crypto-shred a customer's personal data.
    DeleteCustomer,
    /// Create and complete orders.
    WriteOrder,
    /// Read orders (masked).
    ReadOrder,
    /// Read an order's shipping data in clear, inside the retention window.
    ReadShipping,
    /// Export orders with shipping data (CSV), inside the window and limits.
    ExportOrders,
    /// Read audit entries of the actor's tenant and customers' access histories.
    ReadAudit,
    /// Read the whole audit log (tiles, entries of every tenant): global principals only.
    ReadAuditLog,
    /// List security alerts (of the actor's tenant; all for global principals).
    ReadAlerts,
    /// Upload a data inventory (`anshin scan --server`): the tenant's own
    /// statement of where its personal data lives, so its operators make it.
    UploadInventory,
    /// Read data inventories (locations and counts, never a value).
    ReadInventory,
    /// Request, approve or reject key rotations and retirements.
    ManageKeys,
    /// Read key versions, their record counts and key requests.
    ReadKeys,
    /// Open checkout sessions and make, capture, void and refund payments
    /// through the processor proxy (never seeing the card).
    Pay,
    /// Configure a tenant's processor and outbound routes (where card data
    /// may be sent): operator keys only.
    ManageRoutes,
    /// Send a request through a generic outbound route (tokens replaced by
    /// card data on the way to the allow-listed upstream).
    Forward,
    /// Register payment pages, authorise their scripts, check them.
    ManagePages,
    /// Read monitored pages and their script inventories.
    ReadPages,
    /// Send the host tool's integrity alerts (`anshin integrity --server`).
    ReportIntegrity,
    /// Set, read, rotate the secret of and remove a shop's payment webhook
    /// endpoint (operators of its tenant, or the shop itself).
    ManageWebhooks,
    /// Store a host's signed integrity baseline and pin its key
    /// (`anshin integrity baseline|approve --server`).
    StoreBaseline,
    /// Read stored integrity baselines and their approval history.
    ReadBaselines,
}

impl Action {
    /// Words for a 403 message: "this API key's role may not …".
    fn describe(self) -> &'static str {
        match self {
            Self::CreateTenant => "create tenants (a global operator key is needed)",
            Self::ReadTenants => "read tenants",
            Self::ManageShops => "manage shops",
            Self::ManagePrincipals => "manage principals",
            Self::ReadPrincipals => "list principals",
            Self::ManageTenantSettings => "change tenant settings",
            Self::Tokenize => "tokenize cards",
            Self::ReadCard => "read cards",
            Self::LookupCard => "look cards up by number",
            Self::RevealCard => "reveal card data (only processor keys may)",
            Self::DeleteCard => "delete cards",
            Self::WriteCustomer => "create customers",
            Self::ReadCustomer => "read customers",
            Self::DeleteCustomer => "delete customers",
            Self::WriteOrder => "create or change orders",
            Self::ReadOrder => "read orders",
            Self::ReadShipping => {
                "read shipping data (only the selling shop may, inside the retention window)"
            }
            Self::ExportOrders => "export orders (only shop keys may)",
            Self::ReadAudit => "read the audit trail",
            Self::ReadAuditLog => "read the whole audit log (a global auditor or operator key is needed)",
            Self::ReadAlerts => "read security alerts",
            Self::UploadInventory => "upload data inventories (operator keys only)",
            Self::ReadInventory => "read data inventories",
            Self::ManageKeys => "request or decide key operations (operator keys only)",
            Self::ReadKeys => "read the key state",
            Self::Pay => "open checkout sessions or make payments",
            Self::ManageRoutes => "configure processor and outbound routes (operator keys only)",
            Self::Forward => "send requests through outbound routes",
            Self::ManagePages => "manage monitored payment pages (operator keys only)",
            Self::ReadPages => "read monitored payment pages",
            Self::ReportIntegrity => "report integrity alerts (operator keys only)",
            Self::ManageWebhooks => "manage payment webhooks",
            Self::StoreBaseline => "store integrity baselines or pin their keys (operator keys only)",
            Self::ReadBaselines => "read integrity baselines",
        }
    }
}

impl Role {
    /// The policy table. Anything not listed is denied.
    pub fn may(self, action: Action) -> bool {
        use Action as A;
        match self {
            Self::Operator => matches!(
                action,
                A::CreateTenant
                    | A::ReadTenants
                    | A::ManageShops
                    | A::ManagePrincipals
                    | A::ReadPrincipals
                    | A::ManageTenantSettings
                    | A::Tokenize
                    | A::ReadCard
                    | A::LookupCard
                    | A::DeleteCard
                    | A::WriteCustomer
                    | A::ReadCustomer
                    | A::DeleteCustomer
                    | A::WriteOrder
                    | A::ReadOrder
                    | A::ReadAudit
                    | A::ReadAuditLog
                    | A::ReadAlerts
                    | A::UploadInventory
                    | A::ReadInventory
                    | A::ManageKeys
                    | A::ReadKeys
                    | A::Pay
                    | A::ManageRoutes
                    | A::Forward
                    | A::ManagePages
                    | A::ReadPages
                    | A::ReportIntegrity
                    | A::ManageWebhooks
                    | A::StoreBaseline
                    | A::ReadBaselines
            ),
            Self::Shop => matches!(
                action,
                A::ReadShipping
                    | A::ExportOrders
                    | A::Tokenize
                    | A::ReadCard
                    | A::DeleteCard
                    | A::WriteCustomer
                    | A::ReadCustomer
                    | A::DeleteCustomer
                    | A::WriteOrder
                    | A::ReadOrder
                    | A::Pay
                    | A::Forward
                    | A::ManageWebhooks
            ),
            Self::Processor => matches!(action, A::ReadCard | A::RevealCard),
            Self::Auditor => matches!(
                action,
                A::ReadTenants
                    | A::ReadPrincipals
                    | A::ReadAudit
                    | A::ReadAuditLog
                    | A::ReadAlerts
                    | A::ReadInventory
                    | A::ReadKeys
                    | A::ReadPages
                    | A::ReadBaselines
            ),
        }
    }

    /// Whether a principal with this role may create a principal with `target`.
    /// A creator never hands out rights it does not have: only global operators
    /// (and the local command line, which holds the root key) create processor
    /// keys, since processors reveal card data and operators may not.
    pub fn may_create(self, target: Role, creator_is_global: bool) -> bool {
        self == Self::Operator && (target != Self::Processor || creator_is_global)
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Shop => "shop",
            Self::Processor => "processor",
            Self::Auditor => "auditor",
        }
    }

    /// The inverse of [`Role::as_str`].
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "operator" => Self::Operator,
            "shop" => Self::Shop,
            "processor" => Self::Processor,
            "auditor" => Self::Auditor,
            _ => return None,
        })
    }
}

/// The authenticated caller of a request, with where it called from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The principal.
    pub principal_id: PrincipalId,
    /// Its role.
    pub role: Role,
    /// Its tenant; `None` for global principals.
    pub tenant_id: Option<TenantId>,
    /// Its shop, for shop principals.
    pub shop_id: Option<ShopId>,
    /// The client's IP address, for the audit log.
    pub origin: Option<std::net::IpAddr>,
    /// The purpose the client gave for this request (`Anshin-Purpose`).
    pub purpose: Option<String>,
}

impl Actor {
    /// Refuses with 403 unless the role may perform `action`. The whole audit
    /// log spans every tenant, so only global principals may read it.
    pub fn require(&self, action: Action) -> Result<()> {
        let scoped_out = action == Action::ReadAuditLog && self.tenant_id.is_some();
        if self.role.may(action) && !scoped_out {
            Ok(())
        } else {
            Err(Error::forbidden(action.describe()))
        }
    }

    /// True if the actor may see resources of `tenant`.
    pub fn sees_tenant(&self, tenant: &TenantId) -> bool {
        self.tenant_id.as_ref().is_none_or(|own| own == tenant)
    }

    /// The tenant a request acts in: the actor's own, or for a global principal
    /// the one it names. A tenant outside the actor's scope is 404.
    pub fn tenant_for(&self, requested: Option<&TenantId>) -> Result<TenantId> {
        match (&self.tenant_id, requested) {
            (Some(own), None) => Ok(own.clone()),
            (Some(own), Some(req)) if own == req => Ok(own.clone()),
            (Some(_), Some(_)) => Err(Error::not_found("tenant")),
            (None, Some(req)) => Ok(req.clone()),
            (None, None) => Err(Error::invalid(
                "tenant_required",
                "this API key is not bound to a tenant: give tenant_id in the request",
            )),
        }
    }

    /// What the actor may see: its tenant (all for global principals) and, for
    /// a shop principal, only its own shop.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            tenant: self.tenant_id.as_ref(),
            shop: if self.role == Role::Shop {
                self.shop_id.as_ref()
            } else {
                None
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_processors_reveal() {
        for role in [Role::Operator, Role::Shop, Role::Auditor] {
            assert!(!role.may(Action::RevealCard), "{role:?}");
        }
        assert!(Role::Processor.may(Action::RevealCard));
    }

    #[test]
    fn auditors_never_read_personal_or_card_data() {
        for action in [
            Action::ReadCard,
            Action::ReadCustomer,
            Action::ReadOrder,
            Action::RevealCard,
            Action::Tokenize,
        ] {
            assert!(!Role::Auditor.may(action), "{action:?}");
        }
    }

    #[test]
    fn only_operators_and_auditors_read_alerts() {
        assert!(Role::Operator.may(Action::ReadAlerts));
        assert!(Role::Auditor.may(Action::ReadAlerts));
        assert!(!Role::Shop.may(Action::ReadAlerts));
        assert!(!Role::Processor.may(Action::ReadAlerts));
    }

    #[test]
    fn only_operators_upload_inventories_and_auditors_read_them() {
        assert!(Role::Operator.may(Action::UploadInventory));
        assert!(Role::Operator.may(Action::ReadInventory));
        assert!(Role::Auditor.may(Action::ReadInventory));
        for role in [Role::Auditor, Role::Shop, Role::Processor] {
            assert!(!role.may(Action::UploadInventory), "{role:?}");
        }
        assert!(!Role::Shop.may(Action::ReadInventory));
        assert!(!Role::Processor.may(Action::ReadInventory));
    }

    #[test]
    fn shops_do_not_manage_or_reveal() {
        for action in [
            Action::CreateTenant,
            Action::ManageShops,
            Action::ManagePrincipals,
            Action::RevealCard,
            Action::LookupCard,
        ] {
            assert!(!Role::Shop.may(action), "{action:?}");
        }
    }

    #[test]
    fn only_global_operators_create_processors() {
        assert!(Role::Operator.may_create(Role::Processor, true));
        assert!(!Role::Operator.may_create(Role::Processor, false));
        for target in [Role::Operator, Role::Shop, Role::Auditor] {
            assert!(Role::Operator.may_create(target, false));
        }
        for creator in [Role::Shop, Role::Processor, Role::Auditor] {
            assert!(!creator.may_create(Role::Shop, true));
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Operator, Role::Shop, Role::Processor, Role::Auditor] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn tenant_scope_hides_other_tenants() {
        let own = TenantId::generate().expect("rng");
        let other = TenantId::generate().expect("rng");
        let actor = Actor {
            principal_id: PrincipalId::generate().expect("rng"),
            role: Role::Operator,
            tenant_id: Some(own.clone()),
            shop_id: None,
            origin: None,
            purpose: None,
        };
        assert_eq!(actor.tenant_for(None).expect("own"), own);
        assert_eq!(
            actor.tenant_for(Some(&other)).err().map(|e| e.code()),
            Some("not_found")
        );
        let global = Actor {
            tenant_id: None,
            ..actor
        };
        assert_eq!(global.tenant_for(Some(&other)).expect("named"), other);
        assert_eq!(
            global.tenant_for(None).err().map(|e| e.code()),
            Some("tenant_required")
        );
    }
}
