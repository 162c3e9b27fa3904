//! Storage of the checkout-page monitor: registered payment pages with their
//! schedule and last inventory, the scripts authorised on them, and the
//! destinations browsers' CSP reports named (src/integrity).
//!
//! A run is claimed compare-and-swap on `next_run_at` ([`Store::page_claim`]),
//! so with several nodes on one database each due page is fetched once.

use super::{Store, StoreError};
use crate::ids::{PageId, PrincipalId, TenantId};

/// A registered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRow {
    pub id: PageId,
    pub tenant_id: TenantId,
    pub name: String,
    pub url: String,
    /// `http` or `browser`.
    pub mode: String,
    pub interval_s: i64,
    /// The last path segment of its CSP report URL.
    pub report_key: String,
    /// JSON array of hosts forms may post to.
    pub form_hosts: String,
    pub created_by: PrincipalId,
    pub created_at: i64,
    pub next_run_at: i64,
    pub last_run_at: Option<i64>,
    /// `ok` or the fetch error's code.
    pub last_status: Option<String>,
    /// The last inventory (JSON).
    pub last_inventory: Option<String>,
}

/// A script authorised on a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptAuthRow {
    pub page_id: PageId,
    pub script_key: String,
    pub justification: String,
    pub authorised_by: PrincipalId,
    pub authorised_at: i64,
}

/// What one run leaves on the page.
#[derive(Debug, Clone)]
pub struct PageRun {
    pub at: i64,
    pub status: String,
    /// The new inventory; `None` keeps the last one (the fetch failed).
    pub inventory: Option<String>,
}

impl Store {
    /// Registers a page.
    pub async fn page_insert(&self, row: PageRow) -> Result<(), StoreError> {
        dispatch!(self.page_insert(row))
    }

    /// A page by id.
    pub async fn page_get(&self, id: &PageId) -> Result<Option<PageRow>, StoreError> {
        dispatch!(self.page_get(id))
    }

    /// The page whose CSP report URL ends in `key`.
    pub async fn page_by_report_key(&self, key: &str) -> Result<Option<PageRow>, StoreError> {
        dispatch!(self.page_by_report_key(key))
    }

    /// Pages of `tenant` (every page for `None`), oldest first.
    pub async fn pages_list(&self, tenant: Option<&TenantId>) -> Result<Vec<PageRow>, StoreError> {
        dispatch!(self.pages_list(tenant))
    }

    /// Up to `limit` pages due at `now`, most overdue first.
    pub async fn pages_due(&self, now: i64, limit: u32) -> Result<Vec<PageRow>, StoreError> {
        dispatch!(self.pages_due(now, limit))
    }

    /// Moves a page's next run from `expected` to `next`; false when another
    /// node moved it first.
    pub async fn page_claim(&self, id: &PageId, expected: i64, next: i64) -> Result<bool, StoreError> {
        dispatch!(self.page_claim(id, expected, next))
    }

    /// Records a run's outcome.
    pub async fn page_record_run(&self, id: &PageId, run: PageRun) -> Result<(), StoreError> {
        dispatch!(self.page_record_run(id, run))
    }

    /// Scripts authorised on a page.
    pub async fn page_scripts(&self, id: &PageId) -> Result<Vec<ScriptAuthRow>, StoreError> {
        dispatch!(self.page_scripts(id))
    }

    /// Authorises a script (a new justification replaces the old).
    pub async fn page_script_authorise(&self, row: ScriptAuthRow) -> Result<(), StoreError> {
        dispatch!(self.page_script_authorise(row))
    }

    /// Counts a CSP report's destination; true when it was never seen for
    /// this page and directive.
    pub async fn csp_destination_seen(
        &self,
        page: &PageId,
        directive: &str,
        destination: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self.csp_destination_seen(page, directive, destination, now))
    }
}
