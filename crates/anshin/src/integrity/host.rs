//! `POST /v1/integrity/alerts`: the host tool's findings (`anshin integrity
//! check|watch --server URL`) into the server's alert list, so a changed
//! payment application on the shop's host is seen where the page monitor's
//! and the audit log's alerts are, and reaches the same webhook.
//!
//! The alerts are `anshin-integrity-alert/1` objects; each becomes one
//! `host_integrity` alert of the key's tenant, deduplicated on the host
//! tool's own stable id, so a cron job sending the same situation every hour
//! raises it once.

use anshin_integrity::alert::{Alert as HostAlert, SCHEMA};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::EventKind;
use crate::audit::detect::{AlertKind, Severity};
use crate::error::{Error, Result};

/// Most alerts in one report.
pub const MAX_HOST_ALERTS: usize = 1_000;
/// Longest text field kept from an alert.
const MAX_TEXT: usize = 4_096;

/// A batch of the host tool's alerts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostReport {
    /// The tenant (global keys only; a tenant key uses its own).
    pub tenant_id: Option<String>,
    /// `anshin-integrity-alert/1` objects (docs/schemas/integrity-alert.schema.json).
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<HostAlert>,
}

/// What the server made of a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostReportAnswer {
    /// Alerts received.
    pub received: u64,
    /// Alerts new to the server's list (the others were raised before).
    pub raised: u64,
}

fn valid(alert: &HostAlert) -> bool {
    let id_ok = alert
        .id
        .strip_prefix("ial_")
        .is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    let texts = [
        &alert.kind,
        &alert.host,
        &alert.root,
        &alert.path,
        &alert.message_en,
    ];
    alert.schema == SCHEMA
        && id_ok
        && texts.iter().all(|t| t.len() <= MAX_TEXT)
        && alert.details.len() <= 100
        && alert.details.iter().all(|d| d.len() <= MAX_TEXT)
        && alert.rule.as_ref().is_none_or(|r| r.len() <= 200)
}

fn severity(alert: &HostAlert) -> Severity {
    match alert.severity {
        anshin_integrity::Severity::Low => Severity::Low,
        anshin_integrity::Severity::High => Severity::High,
        anshin_integrity::Severity::Critical => Severity::Critical,
    }
}

impl App {
    /// Stores the host tool's alerts in the alert list (operators).
    pub async fn report_host_alerts(&self, actor: &Actor, report: HostReport) -> Result<HostReportAnswer> {
        self.audited(actor, EventKind::IntegrityReport, async |event| {
            actor.require(Action::ReportIntegrity)?;
            let tenant = self.tenant_in_scope(actor, report.tenant_id.as_deref()).await?;
            event.tenant(&tenant).rows(report.alerts.len() as u64);
            if report.alerts.len() > MAX_HOST_ALERTS {
                return Err(Error::invalid("too_many_alerts", "at most 1000 alerts in one report"));
            }
            if !report.alerts.iter().all(valid) {
                return Err(Error::invalid(
                    "invalid_integrity_alert",
                    "every alert must be an anshin-integrity-alert/1 object as `anshin integrity --json` prints it",
                ));
            }
            self.record_now(actor, event).await?;
            let mut raised = 0;
            for alert in &report.alerts {
                let mut summary = format!("host {} {}/{}: {}", alert.host, alert.root, alert.path, alert.message_en);
                if let Some(rule) = &alert.rule {
                    summary.push_str(&format!(" [{rule}]"));
                }
                for detail in &alert.details {
                    summary.push_str(&format!("\n- {detail}"));
                }
                let dedup = format!("host:{tenant}:{}", alert.id);
                if self
                    .raise(AlertKind::HostIntegrity, severity(alert), &tenant, summary, dedup)
                    .await?
                {
                    raised += 1;
                }
            }
            Ok(HostReportAnswer {
                received: report.alerts.len() as u64,
                raised,
            })
        })
        .await
    }
}
