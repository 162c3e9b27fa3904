//! The checkout-page monitor and CSP report intake of `anshin serve`
//! (PCI DSS 6.4.3 and 11.6.1; the host-side half is `anshin integrity`).
//!
//! Operators register payment pages (`POST /v1/pages`); each is fetched on
//! its schedule (hourly by default, at least weekly) over HTTP, or also in
//! headless Chromium (`mode: browser`) to see scripts inserted at run time.
//! Every fetch is inventoried ([`page`]) and compared with the last one and
//! with the scripts authorised, each with a justification
//! (`POST /v1/pages/{id}/scripts`). A new or changed script, a form posting
//! to an unknown host, a new frame host or a weakened CSP / Integrity-Policy
//! raises an alert in the server's alert list (and so the webhook), with the
//! difference in its summary.
//!
//! Browsers' CSP violation reports arrive at `POST /v1/csp-reports/{key}`,
//! the key being the page's unguessable report key (browsers send no API
//! key); they are rate-limited per client and per page, and a destination
//! never reported before for the page raises an alert once, later reports of
//! it are counted (as Report URI does).

pub mod baselines;
pub mod csp;
pub mod fetch;
pub mod host;
pub mod page;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::{IntoParams, ToSchema};

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::EventKind;
use crate::audit::detect::{AlertKind, Severity};
use crate::browser::BrowserOptions;
use crate::clock;
use crate::db::alerts::NewAlert;
use crate::db::pages::{PageRow, PageRun, ScriptAuthRow};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{AlertId, PageId, TenantId, parse_or_404};
use crate::net::NetworkPolicy;
use page::{FindingKind, Inventory, Reference};

/// Default interval between two fetches of a page.
pub const DEFAULT_INTERVAL_S: u64 = 3_600;
/// Shortest interval (a shop's page is not to be hammered).
pub const MIN_INTERVAL_S: u64 = 60;
/// Longest interval: PCI DSS 11.6.1 asks for at least weekly.
pub const MAX_INTERVAL_S: u64 = 7 * 24 * 3_600;
/// Pages fetched per scheduler round.
const DUE_BATCH: u32 = 16;
/// CSP reports accepted per client address per minute.
const REPORTS_PER_CLIENT: u32 = 60;
/// CSP reports accepted per page per minute.
const REPORTS_PER_PAGE: u32 = 600;
/// Largest CSP report body.
pub const MAX_REPORT_BODY: usize = 64 << 10;
/// Rate-limit windows remembered at most (a flood of addresses cannot grow it).
const MAX_WINDOWS: usize = 10_000;

/// How a page is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Its HTML and headers over HTTP.
    Http,
    /// Also loaded in headless Chromium, for scripts inserted at run time.
    Browser,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Browser => "browser",
        }
    }
}

/// The monitor's state in the running server.
#[derive(Debug, Default)]
pub struct PageMonitor {
    windows: Mutex<HashMap<String, (i64, u32)>>,
    /// How Chromium is launched in browser mode.
    pub browser: BrowserOptions,
    /// Where fetches may connect (public addresses and the allowed networks).
    network: RwLock<Arc<NetworkPolicy>>,
}

impl PageMonitor {
    fn network(&self) -> Arc<NetworkPolicy> {
        self.network
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Counts one report against `key`'s one-minute window; false when over `limit`.
    fn admit(&self, key: String, limit: u32, now: i64) -> bool {
        let Ok(mut windows) = self.windows.lock() else {
            return false;
        };
        let minute = now / 60_000;
        if windows.len() >= MAX_WINDOWS {
            windows.retain(|_, (m, _)| *m == minute);
            if windows.len() >= MAX_WINDOWS {
                windows.clear();
            }
        }
        let entry = windows.entry(key).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        entry.1 <= limit
    }
}

/// A page to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPage {
    /// The tenant (global keys only; a tenant key uses its own).
    pub tenant_id: Option<String>,
    /// A name people recognise ("Checkout, step 3").
    pub name: String,
    /// The page's address (http or https).
    pub url: String,
    /// `http` (default) or `browser`.
    pub mode: Option<Mode>,
    /// Seconds between fetches, 60 to 604800 (default 3600).
    pub interval_s: Option<u64>,
    /// Hosts forms may post to besides the page's own (the payment provider's).
    #[serde(default)]
    pub form_hosts: Vec<String>,
}

/// A script authorisation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Authorisation {
    /// The script's key from the inventory (`src:…` or `inline:sha256-…`).
    pub script: String,
    /// Why the page needs it (PCI DSS 6.4.3), 3 to 1000 characters.
    pub justification: String,
}

/// A script of the page's last inventory with its authorisation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScriptView {
    /// The script.
    #[serde(flatten)]
    pub script: page::Script,
    /// Whether it is authorised.
    pub authorised: bool,
    /// Why, when it is.
    pub justification: Option<String>,
}

/// A registered page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView {
    /// Its id (`page_…`).
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its name.
    pub name: String,
    /// Its address.
    pub url: String,
    /// How it is fetched.
    pub mode: Mode,
    /// Seconds between fetches.
    pub interval_s: u64,
    /// Where its CSP should send reports (`report-uri` / `report-to`), a path on this server.
    pub csp_report_path: String,
    /// Hosts forms may post to besides the page's own.
    pub form_hosts: Vec<String>,
    /// When it is fetched next (RFC 3339).
    pub next_run_at: String,
    /// When it was last fetched.
    pub last_run_at: Option<String>,
    /// `ok`, or why the last fetch failed.
    pub last_status: Option<String>,
    /// The last inventory's scripts with their authorisation.
    pub scripts: Vec<ScriptView>,
    /// The last inventory.
    pub inventory: Option<Inventory>,
}

/// One difference a check found.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckFinding {
    /// The alert kind.
    pub kind: String,
    /// How urgent.
    pub severity: Severity,
    /// The difference, one line each (`+` now, `-` before).
    pub lines: Vec<String>,
    /// Whether it raised a new alert (false: the same was alerted before).
    pub alerted: bool,
}

/// The outcome of one check of a page.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    /// `ok`, or the fetch error's code (`page_timeout`, `page_status`, …).
    pub status: String,
    /// Why the fetch failed.
    pub detail: Option<String>,
    /// The differences found, worst first.
    pub findings: Vec<CheckFinding>,
    /// The inventory made.
    pub inventory: Option<Inventory>,
}

/// Tenant filter of the page list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Only this tenant's pages (global keys).
    pub tenant_id: Option<String>,
}

/// The registered pages.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageList {
    /// Oldest first.
    pub pages: Vec<PageView>,
}

fn alert_kind(kind: FindingKind) -> AlertKind {
    match kind {
        FindingKind::ScriptAdded => AlertKind::PageScriptAdded,
        FindingKind::ScriptChanged => AlertKind::PageScriptChanged,
        FindingKind::ScriptSignature => AlertKind::PageScriptSignature,
        FindingKind::ScriptUnauthorised => AlertKind::PageScriptUnauthorised,
        FindingKind::FormActionUnknown => AlertKind::PageFormActionUnknown,
        FindingKind::FrameAdded => AlertKind::PageFrameAdded,
        FindingKind::HeaderWeakened => AlertKind::PageHeaderWeakened,
    }
}

fn short_hash(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    data_encoding::HEXLOWER.encode(&digest.as_ref()[..12])
}

fn parse_page_url(raw: &str) -> Result<Url> {
    let bad = || {
        Error::invalid(
            "invalid_url",
            "url must be an absolute http:// or https:// address without credentials",
        )
    };
    let url = Url::parse(raw.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad());
    }
    Ok(url)
}

fn parse_host(raw: &str) -> Result<String> {
    let host = raw.trim().to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return Err(Error::invalid(
            "invalid_form_host",
            "form_hosts must be host names such as pay.psp.example",
        ));
    }
    Ok(host)
}

impl App {
    /// Marks alerts raised from now on for the webhook (set by the alert
    /// service when a webhook is configured).
    pub fn queue_alerts_for_webhook(&self, queued: bool) {
        self.alerts_queued.store(queued, Ordering::Relaxed);
    }

    /// Lets the page monitor reach `networks` besides public addresses
    /// (`page_monitor_allow_networks`: an intranet shop, tests on loopback).
    pub fn allow_page_networks(&self, networks: Vec<crate::access::cidr::Cidr>) {
        *self
            .pages
            .network
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(NetworkPolicy::new(networks));
    }

    /// Stores an alert the page monitor raised; true when it is new.
    pub(crate) async fn raise(
        &self,
        kind: AlertKind,
        severity: Severity,
        tenant: &TenantId,
        summary: String,
        dedup_key: String,
    ) -> Result<bool> {
        let now = clock::now_ms();
        let alert = NewAlert {
            id: AlertId::generate()?,
            kind,
            severity,
            tenant_id: Some(tenant.to_string()),
            principal_id: None,
            summary,
            evidence: Vec::new(),
            dedup_key,
            observed_at: now,
            created_at: now,
            next_attempt_at: self.alerts_queued.load(Ordering::Relaxed).then_some(now),
        };
        let new = self.store.alert_insert(alert.clone()).await?;
        if new {
            crate::audit::alerts::report(&alert);
        }
        Ok(new)
    }

    /// Registers a payment page (operators); its first fetch is due at once.
    pub async fn register_page(&self, actor: &Actor, new: NewPage) -> Result<PageView> {
        self.audited(actor, EventKind::PageRegister, async |event| {
            actor.require(Action::ManagePages)?;
            let tenant = self.tenant_in_scope(actor, new.tenant_id.as_deref()).await?;
            event.tenant(&tenant);
            let name = new.name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(Error::invalid("invalid_name", "name must be 1 to 200 characters"));
            }
            let url = parse_page_url(&new.url)?;
            let interval = new.interval_s.unwrap_or(DEFAULT_INTERVAL_S);
            if !(MIN_INTERVAL_S..=MAX_INTERVAL_S).contains(&interval) {
                return Err(Error::invalid(
                    "invalid_interval",
                    "interval_s must be 60 to 604800 (PCI DSS 11.6.1 asks for at least weekly)",
                ));
            }
            if new.form_hosts.len() > 50 {
                return Err(Error::invalid("invalid_form_host", "at most 50 form_hosts"));
            }
            let hosts: BTreeSet<String> = new
                .form_hosts
                .iter()
                .map(|h| parse_host(h))
                .collect::<Result<_>>()?;
            let id = PageId::generate()?;
            event.resource(&id);
            let now = clock::now_ms();
            let row = PageRow {
                id,
                tenant_id: tenant,
                name,
                url: url.to_string(),
                mode: new.mode.unwrap_or(Mode::Http).as_str().to_owned(),
                interval_s: i64::try_from(interval).unwrap_or(i64::MAX),
                report_key: anshin_crypto::token::random_token("cspk")?,
                form_hosts: serde_json::to_string(&hosts).map_err(Error::internal)?,
                created_by: actor.principal_id.clone(),
                created_at: now,
                next_run_at: now,
                last_run_at: None,
                last_status: None,
                last_inventory: None,
            };
            self.record_now(actor, event).await?;
            self.store.page_insert(row.clone()).await?;
            self.page_view(&row).await
        })
        .await
    }

    /// The actor's pages (operators and auditors).
    pub async fn pages(&self, actor: &Actor, query: PageQuery) -> Result<PageList> {
        self.audited(actor, EventKind::PageRead, async |event| {
            actor.require(Action::ReadPages)?;
            let requested = TenantId::requested(query.tenant_id.as_deref())?;
            let tenant = match (&actor.tenant_id, requested) {
                (None, None) => None,
                (_, requested) => Some(actor.tenant_for(requested.as_ref())?),
            };
            if let Some(t) = &tenant {
                event.tenant(t);
            }
            let rows = self.store.pages_list(tenant.as_ref()).await?;
            event.rows(rows.len() as u64);
            let mut pages = Vec::with_capacity(rows.len());
            for row in &rows {
                pages.push(self.page_view(row).await?);
            }
            Ok(PageList { pages })
        })
        .await
    }

    /// One page the actor may see (404 otherwise).
    async fn visible_page(&self, actor: &Actor, id: &str) -> Result<PageRow> {
        let id = parse_or_404(PageId::parse, id, "page")?;
        let row = self
            .store
            .page_get(&id)
            .await?
            .ok_or_else(|| Error::not_found("page"))?;
        if actor.tenant_id.as_ref().is_some_and(|t| *t != row.tenant_id) {
            return Err(Error::not_found("page"));
        }
        Ok(row)
    }

    /// A page with its last inventory and authorisations.
    pub async fn page(&self, actor: &Actor, id: &str) -> Result<PageView> {
        self.audited(actor, EventKind::PageRead, async |event| {
            actor.require(Action::ReadPages)?;
            let row = self.visible_page(actor, id).await?;
            event.tenant(&row.tenant_id).resource(&row.id);
            self.page_view(&row).await
        })
        .await
    }

    /// Authorises a script on a page with a justification (operators).
    pub async fn authorise_script(&self, actor: &Actor, id: &str, auth: Authorisation) -> Result<PageView> {
        self.audited(actor, EventKind::PageScriptAuthorise, async |event| {
            actor.require(Action::ManagePages)?;
            let row = self.visible_page(actor, id).await?;
            event.tenant(&row.tenant_id).resource(&row.id);
            let key = auth.script.trim();
            let valid_key = (key.starts_with("src:http://")
                || key.starts_with("src:https://")
                || key.starts_with("inline:sha256-"))
                && key.len() <= 2_100;
            if !valid_key {
                return Err(Error::invalid(
                    "invalid_script",
                    "script must be a key from the page's inventory: src:<URL> or inline:sha256-<base64>",
                ));
            }
            let justification = auth.justification.trim();
            if !(3..=1000).contains(&justification.chars().count()) {
                return Err(Error::invalid(
                    "invalid_justification",
                    "justification must be 3 to 1000 characters",
                ));
            }
            self.record_now(actor, event).await?;
            self.store
                .page_script_authorise(ScriptAuthRow {
                    page_id: row.id.clone(),
                    script_key: key.to_owned(),
                    justification: justification.to_owned(),
                    authorised_by: actor.principal_id.clone(),
                    authorised_at: clock::now_ms(),
                })
                .await?;
            self.page_view(&row).await
        })
        .await
    }

    /// Checks a page now (operators), outside its schedule.
    pub async fn check_page_now(&self, actor: &Actor, id: &str) -> Result<CheckResult> {
        self.audited(actor, EventKind::PageCheck, async |event| {
            actor.require(Action::ManagePages)?;
            let row = self.visible_page(actor, id).await?;
            event.tenant(&row.tenant_id).resource(&row.id);
            self.check_page(&row).await
        })
        .await
    }

    /// Fetches the pages that are due, each claimed so one node fetches it;
    /// returns how many were checked.
    pub async fn check_due_pages(&self) -> Result<u32> {
        let now = clock::now_ms();
        let mut checked = 0;
        for row in self.store.pages_due(now, DUE_BATCH).await? {
            let next = now.saturating_add(row.interval_s.saturating_mul(1000));
            if !self.store.page_claim(&row.id, row.next_run_at, next).await? {
                continue;
            }
            let result = self.check_page(&row).await?;
            metrics::counter!("anshin_page_checks_total", "status" => result.status.clone()).increment(1);
            checked += 1;
        }
        Ok(checked)
    }

    /// Fetches and inventories one page, compares, raises alerts, records the run.
    async fn check_page(&self, row: &PageRow) -> Result<CheckResult> {
        let url = parse_page_url(&row.url)?;
        let fetched = self.inventory_page(&url, row.mode == "browser").await;
        let now = clock::now_ms();
        let inventory = match fetched {
            Ok(inventory) => inventory,
            Err(err) => {
                let hour = now / 3_600_000;
                self.raise(
                    AlertKind::PageFetchFailed,
                    Severity::Medium,
                    &row.tenant_id,
                    format!(
                        "page {} ({}) could not be checked: {} ({})",
                        row.id, row.url, err.code, err.detail
                    ),
                    format!("page:{}:fetch:{}:{hour}", row.id, err.code),
                )
                .await?;
                self.store
                    .page_record_run(
                        &row.id,
                        PageRun {
                            at: now,
                            status: err.code.to_owned(),
                            inventory: None,
                        },
                    )
                    .await?;
                return Ok(CheckResult {
                    status: err.code.to_owned(),
                    detail: Some(err.detail),
                    findings: Vec::new(),
                    inventory: None,
                });
            }
        };
        let previous: Option<Inventory> = row
            .last_inventory
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(Error::internal)?;
        let authorised: BTreeSet<String> = self
            .store
            .page_scripts(&row.id)
            .await?
            .into_iter()
            .map(|a| a.script_key)
            .collect();
        let form_hosts: BTreeSet<String> = serde_json::from_str(&row.form_hosts).map_err(Error::internal)?;
        let page_host = page::host_of(&url).unwrap_or_default();
        let findings = page::compare(
            &inventory,
            &Reference {
                previous: previous.as_ref(),
                authorised: &authorised,
                form_hosts: &form_hosts,
                page_host: &page_host,
            },
        );
        let mut out = Vec::with_capacity(findings.len());
        for finding in findings {
            let kind = alert_kind(finding.kind);
            let summary = format!(
                "page {} ({}): {}\n{}",
                row.id,
                row.url,
                kind.as_str(),
                finding.lines.join("\n")
            );
            let dedup = format!(
                "page:{}:{}:{}",
                row.id,
                kind.as_str(),
                short_hash(&finding.subject)
            );
            let alerted = self
                .raise(kind, finding.severity, &row.tenant_id, summary, dedup)
                .await?;
            out.push(CheckFinding {
                kind: kind.as_str().to_owned(),
                severity: finding.severity,
                lines: finding.lines,
                alerted,
            });
        }
        let body = serde_json::to_string(&inventory).map_err(Error::internal)?;
        self.store
            .page_record_run(
                &row.id,
                PageRun {
                    at: now,
                    status: "ok".to_owned(),
                    inventory: Some(body),
                },
            )
            .await?;
        Ok(CheckResult {
            status: "ok".to_owned(),
            detail: None,
            findings: out,
            inventory: Some(inventory),
        })
    }

    async fn inventory_page(&self, url: &Url, browser: bool) -> Result<Inventory, fetch::FetchError> {
        let policy = self.pages.network();
        let fetcher =
            fetch::Fetcher::new(fetch::FETCH_TIMEOUT, policy.clone()).map_err(|e| fetch::FetchError {
                code: "page_unreachable",
                detail: format!("no trusted root certificates: {e}"),
            })?;
        let mut inventory = fetcher.inventory(url).await?;
        if browser {
            fetch::add_runtime_scripts(&mut inventory, url, &self.pages.browser, policy).await?;
            fetcher.fetch_scripts(&mut inventory).await;
        }
        Ok(inventory)
    }

    async fn page_view(&self, row: &PageRow) -> Result<PageView> {
        let inventory: Option<Inventory> = row
            .last_inventory
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(Error::internal)?;
        let auths = self.store.page_scripts(&row.id).await?;
        let scripts = inventory
            .iter()
            .flat_map(|i| i.scripts.iter())
            .map(|s| {
                let auth = auths.iter().find(|a| a.script_key == s.key);
                ScriptView {
                    script: s.clone(),
                    authorised: auth.is_some(),
                    justification: auth.map(|a| a.justification.clone()),
                }
            })
            .collect();
        Ok(PageView {
            id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            name: row.name.clone(),
            url: row.url.clone(),
            mode: if row.mode == "browser" {
                Mode::Browser
            } else {
                Mode::Http
            },
            interval_s: u64::try_from(row.interval_s).unwrap_or(DEFAULT_INTERVAL_S),
            csp_report_path: format!("/v1/csp-reports/{}", row.report_key),
            form_hosts: serde_json::from_str(&row.form_hosts).map_err(Error::internal)?,
            next_run_at: clock::rfc3339_millis(row.next_run_at),
            last_run_at: row.last_run_at.map(clock::rfc3339_millis),
            last_status: row.last_status.clone(),
            scripts,
            inventory,
        })
    }

    /// Takes a browser's CSP violation report for the page with report key
    /// `key`, from `client`. New script or data destinations raise alerts.
    pub async fn csp_report(
        &self,
        key: &str,
        client: Option<IpAddr>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<()> {
        let now = clock::now_ms();
        let limited = || {
            Error::new(
                ErrorKind::TooManyRequests,
                "rate_limited",
                "too many CSP reports; retry later",
            )
            .with_retry_after(60)
        };
        let client_key = client.map_or_else(|| "unknown".to_owned(), |ip| format!("ip:{ip}"));
        if !self.pages.admit(client_key, REPORTS_PER_CLIENT, now) {
            metrics::counter!("anshin_csp_reports_total", "outcome" => "rate_limited").increment(1);
            return Err(limited());
        }
        let format = content_type
            .and_then(csp::Format::of_content_type)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UnsupportedMediaType,
                    "unsupported_media_type",
                    "send application/csp-report or application/reports+json",
                )
            })?;
        if key.len() > 100 {
            return Err(Error::not_found("page"));
        }
        let row = self
            .store
            .page_by_report_key(key)
            .await?
            .ok_or_else(|| Error::not_found("page"))?;
        if !self
            .pages
            .admit(format!("page:{}", row.id), REPORTS_PER_PAGE, now)
        {
            metrics::counter!("anshin_csp_reports_total", "outcome" => "rate_limited").increment(1);
            return Err(limited());
        }
        let violations = match csp::parse(format, body) {
            Ok(v) => v,
            Err(csp::ParseError::Empty) => return Ok(()),
            Err(csp::ParseError::Malformed) => {
                metrics::counter!("anshin_csp_reports_total", "outcome" => "malformed").increment(1);
                return Err(Error::new(
                    ErrorKind::BadRequest,
                    "invalid_csp_report",
                    "the body is not a CSP violation report",
                ));
            }
        };
        metrics::counter!("anshin_csp_reports_total", "outcome" => "accepted").increment(1);
        for v in violations {
            let new = self
                .store
                .csp_destination_seen(&row.id, &v.directive, &v.destination, now)
                .await?;
            let severity = match v.class() {
                csp::Class::Script => Severity::High,
                csp::Class::Data => Severity::Medium,
                csp::Class::Other => continue,
            };
            if new {
                self.raise(
                    AlertKind::CspNewDestination,
                    severity,
                    &row.tenant_id,
                    format!(
                        "page {} ({}): browsers report a {} violation for a new destination\n+ {} {} ({})",
                        row.id, row.url, v.directive, v.directive, v.destination, v.disposition
                    ),
                    format!("csp:{}:{}:{}", row.id, v.directive, short_hash(&v.destination)),
                )
                .await?;
            }
        }
        Ok(())
    }
}
