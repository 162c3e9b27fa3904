//! SQLite storage of the checkout-page monitor.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::db::StoreError;
use crate::db::pages::{PageRow, PageRun, ScriptAuthRow};
use crate::ids::{PageId, PrincipalId, TenantId};

const COLUMNS: &str = "id, tenant_id, name, url, mode, interval_s, report_key, form_hosts, created_by, \
                       created_at, next_run_at, last_run_at, last_status, last_inventory";

fn page_row(r: &Row<'_>) -> rusqlite::Result<PageRow> {
    Ok(PageRow {
        id: PageId::from_db(r.get(0)?),
        tenant_id: TenantId::from_db(r.get(1)?),
        name: r.get(2)?,
        url: r.get(3)?,
        mode: r.get(4)?,
        interval_s: r.get(5)?,
        report_key: r.get(6)?,
        form_hosts: r.get(7)?,
        created_by: PrincipalId::from_db(r.get(8)?),
        created_at: r.get(9)?,
        next_run_at: r.get(10)?,
        last_run_at: r.get(11)?,
        last_status: r.get(12)?,
        last_inventory: r.get(13)?,
    })
}

impl SqliteStore {
    pub(in crate::db) async fn page_insert(&self, row: PageRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO monitored_pages ({COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))?
            .execute(params![
                row.id.as_str(),
                row.tenant_id.as_str(),
                row.name,
                row.url,
                row.mode,
                row.interval_s,
                row.report_key,
                row.form_hosts,
                row.created_by.as_str(),
                row.created_at,
                row.next_run_at,
                row.last_run_at,
                row.last_status,
                row.last_inventory,
            ])
            .map(|_| ())
        })
        .await
    }

    pub(in crate::db) async fn page_get(&self, id: &PageId) -> Result<Option<PageRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM monitored_pages WHERE id = ?1"))?
                .query_row([id.as_str()], page_row)
                .optional()
        })
    }

    pub(in crate::db) async fn page_by_report_key(&self, key: &str) -> Result<Option<PageRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM monitored_pages WHERE report_key = ?1"
            ))?
            .query_row([key], page_row)
            .optional()
        })
    }

    pub(in crate::db) async fn pages_list(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<PageRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM monitored_pages WHERE ?1 IS NULL OR tenant_id = ?1
                 ORDER BY created_at, id"
            ))?
            .query_map([tenant.map(TenantId::as_str)], page_row)?
            .collect()
        })
    }

    pub(in crate::db) async fn pages_due(&self, now: i64, limit: u32) -> Result<Vec<PageRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM monitored_pages WHERE next_run_at <= ?1
                 ORDER BY next_run_at, id LIMIT ?2"
            ))?
            .query_map(params![now, limit], page_row)?
            .collect()
        })
    }

    pub(in crate::db) async fn page_claim(
        &self,
        id: &PageId,
        expected: i64,
        next: i64,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE monitored_pages SET next_run_at = ?3 WHERE id = ?1 AND next_run_at = ?2",
            )?
            .execute(params![id.as_str(), expected, next])
            .map(|n| n == 1)
        })
        .await
    }

    pub(in crate::db) async fn page_record_run(&self, id: &PageId, run: PageRun) -> Result<(), StoreError> {
        let id = id.clone();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE monitored_pages SET last_run_at = ?2, last_status = ?3,
                     last_inventory = COALESCE(?4, last_inventory)
                 WHERE id = ?1",
            )?
            .execute(params![id.as_str(), run.at, run.status, run.inventory])
            .map(|_| ())
        })
        .await
    }

    pub(in crate::db) async fn page_scripts(&self, id: &PageId) -> Result<Vec<ScriptAuthRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT page_id, script_key, justification, authorised_by, authorised_at
                 FROM page_scripts WHERE page_id = ?1 ORDER BY authorised_at, script_key",
            )?
            .query_map([id.as_str()], |r| {
                Ok(ScriptAuthRow {
                    page_id: PageId::from_db(r.get(0)?),
                    script_key: r.get(1)?,
                    justification: r.get(2)?,
                    authorised_by: PrincipalId::from_db(r.get(3)?),
                    authorised_at: r.get(4)?,
                })
            })?
            .collect()
        })
    }

    pub(in crate::db) async fn page_script_authorise(&self, row: ScriptAuthRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO page_scripts (page_id, script_key, justification, authorised_by, authorised_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (page_id, script_key) DO UPDATE SET justification = excluded.justification,
                     authorised_by = excluded.authorised_by, authorised_at = excluded.authorised_at",
            )?
            .execute(params![
                row.page_id.as_str(),
                row.script_key,
                row.justification,
                row.authorised_by.as_str(),
                row.authorised_at,
            ])
            .map(|_| ())
        })
        .await
    }

    pub(in crate::db) async fn csp_destination_seen(
        &self,
        page: &PageId,
        directive: &str,
        destination: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (page, directive, destination) = (page.clone(), directive.to_owned(), destination.to_owned());
        self.write(move |c| {
            let updated = c
                .prepare_cached(
                    "UPDATE csp_destinations SET reports = reports + 1, last_seen = ?4
                     WHERE page_id = ?1 AND directive = ?2 AND destination = ?3",
                )?
                .execute(params![page.as_str(), directive, destination, now])?;
            if updated > 0 {
                return Ok(false);
            }
            c.prepare_cached(
                "INSERT INTO csp_destinations (page_id, directive, destination, first_seen, last_seen, reports)
                 VALUES (?1, ?2, ?3, ?4, ?4, 1)",
            )?
            .execute(params![page.as_str(), directive, destination, now])
            .map(|_| true)
        })
        .await
    }
}
