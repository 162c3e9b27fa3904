//! PostgreSQL storage of the checkout-page monitor.

use tokio_postgres::Row;

use super::PgStore;
use crate::db::StoreError;
use crate::db::pages::{PageRow, PageRun, ScriptAuthRow};
use crate::ids::{PageId, PrincipalId, TenantId};

const COLUMNS: &str = "id, tenant_id, name, url, mode, interval_s, report_key, form_hosts, created_by, \
                       created_at, next_run_at, last_run_at, last_status, last_inventory";

fn page_row(r: &Row) -> PageRow {
    PageRow {
        id: PageId::from_db(r.get(0)),
        tenant_id: TenantId::from_db(r.get(1)),
        name: r.get(2),
        url: r.get(3),
        mode: r.get(4),
        interval_s: r.get(5),
        report_key: r.get(6),
        form_hosts: r.get(7),
        created_by: PrincipalId::from_db(r.get(8)),
        created_at: r.get(9),
        next_run_at: r.get(10),
        last_run_at: r.get(11),
        last_status: r.get(12),
        last_inventory: r.get(13),
    }
}

impl PgStore {
    pub(in crate::db) async fn page_insert(&self, row: PageRow) -> Result<(), StoreError> {
        self.execute(
            &format!(
                "INSERT INTO monitored_pages ({COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            ),
            &[
                &row.id.as_str(),
                &row.tenant_id.as_str(),
                &row.name,
                &row.url,
                &row.mode,
                &row.interval_s,
                &row.report_key,
                &row.form_hosts,
                &row.created_by.as_str(),
                &row.created_at,
                &row.next_run_at,
                &row.last_run_at,
                &row.last_status,
                &row.last_inventory,
            ],
        )
        .await
        .map(|_| ())
    }

    pub(in crate::db) async fn page_get(&self, id: &PageId) -> Result<Option<PageRow>, StoreError> {
        let row = self
            .query_opt(
                &format!("SELECT {COLUMNS} FROM monitored_pages WHERE id = $1"),
                &[&id.as_str()],
            )
            .await?;
        Ok(row.as_ref().map(page_row))
    }

    pub(in crate::db) async fn page_by_report_key(&self, key: &str) -> Result<Option<PageRow>, StoreError> {
        let row = self
            .query_opt(
                &format!("SELECT {COLUMNS} FROM monitored_pages WHERE report_key = $1"),
                &[&key],
            )
            .await?;
        Ok(row.as_ref().map(page_row))
    }

    pub(in crate::db) async fn pages_list(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<PageRow>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM monitored_pages WHERE $1::TEXT IS NULL OR tenant_id = $1
                     ORDER BY created_at, id"
                ),
                &[&tenant.map(TenantId::as_str)],
            )
            .await?;
        Ok(rows.iter().map(page_row).collect())
    }

    pub(in crate::db) async fn pages_due(&self, now: i64, limit: u32) -> Result<Vec<PageRow>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM monitored_pages WHERE next_run_at <= $1
                     ORDER BY next_run_at, id LIMIT $2"
                ),
                &[&now, &i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(page_row).collect())
    }

    pub(in crate::db) async fn page_claim(
        &self,
        id: &PageId,
        expected: i64,
        next: i64,
    ) -> Result<bool, StoreError> {
        self.execute(
            "UPDATE monitored_pages SET next_run_at = $3 WHERE id = $1 AND next_run_at = $2",
            &[&id.as_str(), &expected, &next],
        )
        .await
        .map(|n| n == 1)
    }

    pub(in crate::db) async fn page_record_run(&self, id: &PageId, run: PageRun) -> Result<(), StoreError> {
        self.execute(
            "UPDATE monitored_pages SET last_run_at = $2, last_status = $3,
                 last_inventory = COALESCE($4, last_inventory)
             WHERE id = $1",
            &[&id.as_str(), &run.at, &run.status, &run.inventory],
        )
        .await
        .map(|_| ())
    }

    pub(in crate::db) async fn page_scripts(&self, id: &PageId) -> Result<Vec<ScriptAuthRow>, StoreError> {
        let rows = self
            .query(
                "SELECT page_id, script_key, justification, authorised_by, authorised_at
                 FROM page_scripts WHERE page_id = $1 ORDER BY authorised_at, script_key",
                &[&id.as_str()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ScriptAuthRow {
                page_id: PageId::from_db(r.get(0)),
                script_key: r.get(1),
                justification: r.get(2),
                authorised_by: PrincipalId::from_db(r.get(3)),
                authorised_at: r.get(4),
            })
            .collect())
    }

    pub(in crate::db) async fn page_script_authorise(&self, row: ScriptAuthRow) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO page_scripts (page_id, script_key, justification, authorised_by, authorised_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (page_id, script_key) DO UPDATE SET justification = excluded.justification,
                 authorised_by = excluded.authorised_by, authorised_at = excluded.authorised_at",
            &[
                &row.page_id.as_str(),
                &row.script_key,
                &row.justification,
                &row.authorised_by.as_str(),
                &row.authorised_at,
            ],
        )
        .await
        .map(|_| ())
    }

    pub(in crate::db) async fn csp_destination_seen(
        &self,
        page: &PageId,
        directive: &str,
        destination: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        // xmax = 0 only for a row this statement inserted.
        let row = self
            .query_opt(
                "INSERT INTO csp_destinations (page_id, directive, destination, first_seen, last_seen, reports)
                 VALUES ($1, $2, $3, $4, $4, 1)
                 ON CONFLICT (page_id, directive, destination)
                 DO UPDATE SET reports = csp_destinations.reports + 1, last_seen = excluded.last_seen
                 RETURNING (xmax = 0)",
                &[&page.as_str(), &directive, &destination, &now],
            )
            .await?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }
}
