//! The inventory of one payment page (PCI DSS 6.4.3): every script (external
//! with its host and SRI attribute, inline with its SHA-256 and SHA-384), the
//! frames, the form targets and the security headers; and how two inventories
//! of the same page differ in ways that matter (11.6.1).
//!
//! Parsing is untrusted input: the page may be malformed, huge or hostile.
//! lol_html tokenizes as a browser does, a memory limit bounds it, and the
//! caller has already cut the body at [`MAX_PAGE_BYTES`]. Nothing here panics
//! on any input (the fuzz target `page_inventory` checks that).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use anshin_integrity::facts::{self, FactChange, PageFacts, Policy};
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::audit::detect::Severity;

/// Largest page body inventoried; a longer one is cut and reported.
pub const MAX_PAGE_BYTES: usize = 4 << 20;
/// Memory the parser may hold beyond the body (a tag split across chunks).
const PARSER_MEMORY: usize = 1 << 20;
/// Most items of each list kept from one page (a hostile page could hold millions).
pub const MAX_ITEMS: usize = 2_000;
/// Longest URL kept; longer ones are cut (a data: URL can be megabytes).
const MAX_URL: usize = 2_048;

/// One script of the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Script {
    /// Identity for authorisation: `src:<absolute URL>` or `inline:sha256-…`.
    pub key: String,
    /// The absolute URL of an external script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    /// Its host (lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its `integrity` attribute (Subresource Integrity), as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    /// An inline script's hash in CSP form (`sha256-<base64>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The script's hash in SRI form (`sha384-<base64>`): of an inline
    /// script's text, or of an external script's body as the monitor fetched
    /// it (PCI DSS 11.6.1: a changed third-party script at the same address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha384: Option<String>,
    /// Its length in bytes (inline text, or the fetched body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Why an external script's body could not be fetched (so it has no hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
    /// What the built-in skimmer signatures found in its text or body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureHit>,
    /// Seen only in the running page (inserted by another script), not in its HTML.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runtime: bool,
}

/// A skimmer signature's finding in a script (never the matched text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignatureHit {
    /// The rule's id (`skimmer.card-exfiltration`, …).
    pub rule: String,
    /// 1-based line of the giveaway.
    pub line: u64,
    /// `low`, `high` or `critical`.
    pub severity: String,
    /// Why it matters.
    pub why: String,
    /// Where the data goes, when the rule is about that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// A form (or a button's `formaction`) and where it posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FormTarget {
    /// The absolute action URL (the page itself when the form names none).
    pub action: String,
    /// Its host.
    pub host: Option<String>,
    /// `get` or `post`.
    pub method: String,
}

/// The security headers that guard the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecurityHeaders {
    /// Content-Security-Policy values (headers and `<meta http-equiv>`).
    #[serde(default)]
    pub csp: Vec<String>,
    /// Content-Security-Policy-Report-Only values.
    #[serde(default)]
    pub csp_report_only: Vec<String>,
    /// Integrity-Policy (SRI required for the listed destinations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_policy: Option<String>,
    /// Integrity-Policy-Report-Only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_policy_report_only: Option<String>,
}

/// Everything inventoried on one fetch of a page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Inventory {
    /// Scripts in document order.
    pub scripts: Vec<Script>,
    /// Absolute `src` of every frame.
    pub iframes: Vec<String>,
    /// Every form target.
    pub forms: Vec<FormTarget>,
    /// The security headers.
    pub headers: SecurityHeaders,
    /// What could not be inventoried fully (`truncated_body`, `too_many_items`,
    /// `parser_memory_limit`, `malformed_html`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Lower-case host of a URL.
pub fn host_of(url: &Url) -> Option<String> {
    url.host_str().map(str::to_ascii_lowercase)
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_URL {
        let mut end = MAX_URL;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn hash(algorithm: &'static digest::Algorithm, name: &str, data: &[u8]) -> String {
    format!(
        "{name}-{}",
        data_encoding::BASE64.encode(digest::digest(algorithm, data).as_ref())
    )
}

/// Whether a `<script type>` is executed (JSON-LD and templates are data).
fn executable(kind: Option<&str>) -> bool {
    let Some(kind) = kind.map(|k| k.trim().to_ascii_lowercase()) else {
        return true;
    };
    kind.is_empty() || kind == "module" || kind.contains("javascript") || kind.contains("ecmascript")
}

impl Script {
    /// An external script at `src` (already absolute).
    pub fn external(src: &Url, integrity: Option<String>) -> Self {
        let src_text = cut(src.to_string());
        Self {
            key: format!("src:{src_text}"),
            host: host_of(src),
            src: Some(src_text),
            integrity: integrity.map(|i| i.split_whitespace().collect::<Vec<_>>().join(" ")),
            sha256: None,
            sha384: None,
            length: None,
            fetch_error: None,
            signatures: Vec::new(),
            runtime: false,
        }
    }

    /// Records the external script's body as fetched: its hash, length and
    /// what the skimmer signatures find in it.
    pub fn record_body(&mut self, body: &[u8]) {
        self.sha384 = Some(hash(&digest::SHA384, "sha384", body));
        self.length = Some(body.len() as u64);
        self.signatures = signature_hits(body);
    }

    /// An inline script with this text.
    pub fn inline(text: &str) -> Self {
        let sha256 = hash(&digest::SHA256, "sha256", text.as_bytes());
        Self {
            key: format!("inline:{sha256}"),
            src: None,
            host: None,
            integrity: None,
            sha384: Some(hash(&digest::SHA384, "sha384", text.as_bytes())),
            sha256: Some(sha256),
            length: Some(text.len() as u64),
            fetch_error: None,
            signatures: signature_hits(text.as_bytes()),
            runtime: false,
        }
    }

    /// One line for an alert.
    pub fn describe(&self) -> String {
        match (&self.src, &self.sha256) {
            (Some(src), _) => {
                let sri = match &self.integrity {
                    Some(sri) => format!("integrity {sri}"),
                    None => "no integrity attribute".to_owned(),
                };
                match (&self.sha384, self.length) {
                    (Some(body), Some(length)) => format!("{src} ({sri}; body {body}, {length} bytes)"),
                    _ => format!("{src} ({sri})"),
                }
            }
            (None, Some(sha)) => format!("inline script {sha} ({} bytes)", self.length.unwrap_or_default()),
            (None, None) => self.key.clone(),
        }
    }
}

/// The built-in skimmer signatures over a script (as a `.js` file).
fn signature_hits(body: &[u8]) -> Vec<SignatureHit> {
    let rules = anshin_integrity::rules::Rules::builtin();
    anshin_integrity::signatures::scan_bytes("script.js", body, &rules)
        .into_iter()
        .map(|f| SignatureHit {
            rule: f.rule.into_owned(),
            line: f.line,
            severity: f.severity.as_str().to_owned(),
            why: f.why_en.into_owned(),
            destination: f.destination,
        })
        .collect()
}

#[derive(Default)]
struct Parse {
    base: Option<Url>,
    scripts: Vec<(Option<String>, Option<String>, bool, String)>,
    iframes: Vec<String>,
    forms: Vec<(Option<String>, String)>,
    meta_csp: Vec<(bool, String)>,
    too_many: bool,
}

impl Parse {
    fn room(&mut self, len: usize) -> bool {
        if len >= MAX_ITEMS {
            self.too_many = true;
        }
        len < MAX_ITEMS
    }
}

/// Inventories `body` (cut to [`MAX_PAGE_BYTES`] by the caller; `truncated`
/// says it was) fetched from `page`, with the response's header values.
pub fn inventory(page: &Url, body: &[u8], headers: SecurityHeaders, truncated: bool) -> Inventory {
    use lol_html::{HtmlRewriter, MemorySettings, Settings, element, text};

    let state = Rc::new(RefCell::new(Parse::default()));
    let (s1, s2, s3, s4, s5, s6, s7) = (
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
    );
    let settings = Settings {
        element_content_handlers: vec![
            element!("base[href]", move |el| {
                let mut st = s1.borrow_mut();
                if st.base.is_none() {
                    st.base = el.get_attribute("href").and_then(|h| page.join(h.trim()).ok());
                }
                Ok(())
            }),
            element!("script", move |el| {
                let mut st = s2.borrow_mut();
                let len = st.scripts.len();
                if st.room(len) {
                    let kind = el.get_attribute("type");
                    st.scripts.push((
                        el.get_attribute("src"),
                        el.get_attribute("integrity"),
                        executable(kind.as_deref()),
                        String::new(),
                    ));
                }
                Ok(())
            }),
            text!("script", move |chunk| {
                let mut st = s3.borrow_mut();
                if let Some(last) = st.scripts.last_mut()
                    && last.0.is_none()
                {
                    last.3.push_str(chunk.as_str());
                }
                Ok(())
            }),
            element!("iframe[src], frame[src]", move |el| {
                let mut st = s4.borrow_mut();
                let len = st.iframes.len();
                if st.room(len)
                    && let Some(src) = el.get_attribute("src")
                {
                    st.iframes.push(src);
                }
                Ok(())
            }),
            element!("form", move |el| {
                let mut st = s5.borrow_mut();
                let len = st.forms.len();
                if st.room(len) {
                    let method = el.get_attribute("method").unwrap_or_default();
                    st.forms.push((el.get_attribute("action"), method));
                }
                Ok(())
            }),
            element!("button[formaction], input[formaction]", move |el| {
                let mut st = s6.borrow_mut();
                let len = st.forms.len();
                if st.room(len) {
                    let method = el.get_attribute("formmethod").unwrap_or_else(|| "post".into());
                    st.forms.push((el.get_attribute("formaction"), method));
                }
                Ok(())
            }),
            element!("meta[http-equiv][content]", move |el| {
                let equiv = el
                    .get_attribute("http-equiv")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let report_only = match equiv.trim() {
                    "content-security-policy" => false,
                    "content-security-policy-report-only" => true,
                    _ => return Ok(()),
                };
                let mut st = s7.borrow_mut();
                let len = st.meta_csp.len();
                if st.room(len) {
                    st.meta_csp
                        .push((report_only, el.get_attribute("content").unwrap_or_default()));
                }
                Ok(())
            }),
        ],
        memory_settings: MemorySettings {
            max_allowed_memory_usage: PARSER_MEMORY,
            ..MemorySettings::new()
        },
        ..Settings::new()
    };
    let mut notes = Vec::new();
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    let written = rewriter.write(body).and_then(|()| rewriter.end());
    if let Err(err) = written {
        notes.push(match err {
            lol_html::errors::RewritingError::MemoryLimitExceeded(_) => "parser_memory_limit".to_owned(),
            _ => "malformed_html".to_owned(),
        });
    }
    if truncated {
        notes.push("truncated_body".to_owned());
    }
    let parse = std::mem::take(&mut *state.borrow_mut());
    if parse.too_many {
        notes.push("too_many_items".to_owned());
    }
    let base = parse.base.unwrap_or_else(|| page.clone());
    let resolve = |raw: &str| base.join(raw.trim()).ok();

    let mut scripts = Vec::new();
    for (src, integrity, executable, text) in parse.scripts {
        if !executable {
            continue;
        }
        match src {
            Some(src) => {
                if let Some(url) = resolve(&src) {
                    scripts.push(Script::external(&url, integrity));
                }
            }
            None if text.trim().is_empty() => {}
            None => scripts.push(Script::inline(&text)),
        }
    }
    let iframes = parse
        .iframes
        .iter()
        .filter_map(|s| resolve(s))
        .map(|u| cut(u.to_string()))
        .collect();
    let forms = parse
        .forms
        .iter()
        .map(|(action, method)| {
            let url = match action.as_deref().map(str::trim) {
                None | Some("") => Some(page.clone()),
                Some(a) => resolve(a),
            };
            FormTarget {
                host: url.as_ref().and_then(host_of),
                action: url.map(|u| cut(u.to_string())).unwrap_or_default(),
                method: if method.trim().eq_ignore_ascii_case("post") {
                    "post".to_owned()
                } else {
                    "get".to_owned()
                },
            }
        })
        .collect();
    let mut headers = headers;
    for (report_only, value) in parse.meta_csp {
        let list = if report_only {
            &mut headers.csp_report_only
        } else {
            &mut headers.csp
        };
        list.push(value);
    }
    Inventory {
        scripts,
        iframes,
        forms,
        headers,
        notes,
    }
}

impl SecurityHeaders {
    /// The policies as the host-side tool's facts, to compare them the same way.
    fn facts(&self) -> PageFacts {
        let policy = |report_only: bool, text: &String| Policy {
            report_only,
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        PageFacts {
            scripts: Vec::new(),
            csp: self
                .csp
                .iter()
                .map(|t| policy(false, t))
                .chain(self.csp_report_only.iter().map(|t| policy(true, t)))
                .collect(),
        }
    }
}

/// What kind of difference a finding is (the alert kind on the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// A script that was not there and is not authorised.
    ScriptAdded,
    /// A script whose content or SRI attribute changed.
    ScriptChanged,
    /// A script matches a skimmer signature.
    ScriptSignature,
    /// A script that has been there but nobody authorised.
    ScriptUnauthorised,
    /// A form posts to a host not known for this page.
    FormActionUnknown,
    /// A frame from a host not framed before.
    FrameAdded,
    /// CSP or Integrity-Policy weaker than before.
    HeaderWeakened,
}

/// One difference that matters between the last inventory and this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind.
    pub kind: FindingKind,
    /// How urgent.
    pub severity: Severity,
    /// Identifies the condition (dedup of repeated runs).
    pub subject: String,
    /// The difference, one line each (`+` now, `-` before).
    pub lines: Vec<String>,
}

/// What the page is compared against.
#[derive(Debug, Clone)]
pub struct Reference<'a> {
    /// The previous inventory; `None` on the first run (nothing is "new").
    pub previous: Option<&'a Inventory>,
    /// Script keys authorised with a justification.
    pub authorised: &'a BTreeSet<String>,
    /// Hosts forms may post to (the page's own host always may).
    pub form_hosts: &'a BTreeSet<String>,
    /// The page's own host.
    pub page_host: &'a str,
}

/// The differences that matter, worst first.
pub fn compare(now: &Inventory, reference: &Reference<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let empty = Inventory::default();
    let first_run = reference.previous.is_none();
    let before = reference.previous.unwrap_or(&empty);
    let before_keys: BTreeSet<&str> = before.scripts.iter().map(|s| s.key.as_str()).collect();
    let by_src: BTreeMap<&str, &Script> = before
        .scripts
        .iter()
        .filter_map(|s| s.src.as_deref().map(|src| (src, s)))
        .collect();
    let now_keys: BTreeSet<&str> = now.scripts.iter().map(|s| s.key.as_str()).collect();
    // Inline scripts gone since the last run, in order: a new inline script
    // in the place of one of them is a change of that script.
    let mut gone_inline = before
        .scripts
        .iter()
        .filter(|s| s.src.is_none() && !now_keys.contains(s.key.as_str()));
    for script in &now.scripts {
        let old = script.src.as_deref().and_then(|src| by_src.get(src));
        // Same address, other contents (both fetched): the file changed.
        let body_changed =
            old.is_some_and(|old| matches!((&old.sha384, &script.sha384), (Some(a), Some(b)) if a != b));
        if let Some(old) = old
            && (body_changed || old.integrity != script.integrity)
        {
            // Other contents, or other SRI: the file changed, or its check went.
            out.push(Finding {
                kind: FindingKind::ScriptChanged,
                severity: if body_changed || script.integrity.is_some() {
                    Severity::Critical
                } else {
                    Severity::High
                },
                subject: format!(
                    "{}|{}|{}",
                    script.key,
                    script.integrity.as_deref().unwrap_or(""),
                    script.sha384.as_deref().unwrap_or("")
                ),
                lines: vec![
                    format!("- {}", old.describe()),
                    format!("+ {}", script.describe()),
                ],
            });
        }
        // An authorised script is vouched for (a payment provider's own script
        // collects card fields by design) until its contents change.
        let vouched = reference.authorised.contains(&script.key) && !body_changed;
        for hit in script.signatures.iter().filter(|_| !vouched) {
            out.push(Finding {
                kind: FindingKind::ScriptSignature,
                severity: match hit.severity.as_str() {
                    "low" => Severity::Low,
                    "high" => Severity::High,
                    _ => Severity::Critical,
                },
                subject: format!(
                    "{}|{}|{}",
                    script.key,
                    script.sha384.as_deref().unwrap_or(""),
                    hit.rule
                ),
                lines: vec![
                    format!("  {}", script.describe()),
                    format!(
                        "  {} at line {}: {}{}",
                        hit.rule,
                        hit.line,
                        hit.why,
                        hit.destination
                            .as_deref()
                            .map(|d| format!(" (to {d})"))
                            .unwrap_or_default()
                    ),
                ],
            });
        }
        if reference.authorised.contains(&script.key) {
            continue;
        }
        if first_run || before_keys.contains(script.key.as_str()) {
            out.push(Finding {
                kind: FindingKind::ScriptUnauthorised,
                severity: Severity::Medium,
                subject: script.key.clone(),
                lines: vec![format!("  {}", script.describe())],
            });
            continue;
        }
        let replaced = if script.src.is_none() {
            gone_inline.next()
        } else {
            None
        };
        match replaced {
            Some(old) => out.push(Finding {
                kind: FindingKind::ScriptChanged,
                severity: Severity::Critical,
                subject: script.key.clone(),
                lines: vec![
                    format!("- {}", old.describe()),
                    format!("+ {}", script.describe()),
                ],
            }),
            None => out.push(Finding {
                kind: FindingKind::ScriptAdded,
                severity: Severity::Critical,
                subject: script.key.clone(),
                lines: vec![format!(
                    "+ {}{}",
                    script.describe(),
                    if script.runtime {
                        " (inserted at run time)"
                    } else {
                        ""
                    }
                )],
            }),
        }
    }
    let mut hosts_seen = BTreeSet::new();
    for form in &now.forms {
        let Some(host) = &form.host else { continue };
        if host == reference.page_host
            || reference.form_hosts.contains(host)
            || !hosts_seen.insert(host.clone())
        {
            continue;
        }
        out.push(Finding {
            kind: FindingKind::FormActionUnknown,
            severity: Severity::Critical,
            subject: host.clone(),
            lines: vec![format!("+ form {} {}", form.method, form.action)],
        });
    }
    if !first_run {
        let frame_hosts = |inv: &Inventory| -> BTreeSet<String> {
            inv.iframes
                .iter()
                .filter_map(|f| Url::parse(f).ok().as_ref().and_then(host_of))
                .collect()
        };
        let old_frames = frame_hosts(before);
        for frame in &now.iframes {
            let host = Url::parse(frame).ok().as_ref().and_then(host_of);
            if let Some(host) = host
                && host != reference.page_host
                && !old_frames.contains(&host)
                && hosts_seen.insert(format!("frame:{host}"))
            {
                out.push(Finding {
                    kind: FindingKind::FrameAdded,
                    severity: Severity::High,
                    subject: host,
                    lines: vec![format!("+ iframe {frame}")],
                });
            }
        }
        let mut lines: Vec<String> =
            facts::compare(Some(&before.headers.facts()), Some(&now.headers.facts()))
                .iter()
                .filter(|c| !matches!(c, FactChange::ScriptAdded(_)))
                .map(FactChange::describe)
                .collect();
        let enforced_sri = |h: &SecurityHeaders| {
            h.integrity_policy
                .as_deref()
                .is_some_and(|v| v.to_ascii_lowercase().contains("script"))
        };
        if enforced_sri(&before.headers) && !enforced_sri(&now.headers) {
            lines.push("Integrity-Policy no longer requires integrity for scripts".to_owned());
        }
        if !lines.is_empty() {
            let mut subject = now.headers.csp.join("|");
            subject.push('#');
            subject.push_str(now.headers.integrity_policy.as_deref().unwrap_or(""));
            out.push(Finding {
                kind: FindingKind::HeaderWeakened,
                severity: Severity::High,
                subject,
                lines,
            });
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("https://shop.example/checkout/").expect("url")
    }

    const CLEAN: &str = r#"<!doctype html><html><head>
        <base href="https://shop.example/">
        <meta http-equiv="Content-Security-Policy" content="script-src 'self' https://js.psp.example">
        <script src="/js/app.js" integrity="sha384-abc"></script>
        <script src="https://js.psp.example/v3/" ></script>
        <script type="application/ld+json">{"@type":"Product"}</script>
        <script>window.dataLayer = [];</script>
        </head><body>
        <form action="/order/confirm" method="POST"><input name="x"><button formaction="https://psp.example/pay">Pay</button></form>
        <iframe src="https://psp.example/frame"></iframe>
        </body></html>"#;

    fn inv(html: &str) -> Inventory {
        inventory(&page(), html.as_bytes(), SecurityHeaders::default(), false)
    }

    #[test]
    fn every_script_frame_form_and_meta_policy_is_inventoried() {
        let inv = inv(CLEAN);
        let keys: Vec<&str> = inv.scripts.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(keys[0], "src:https://shop.example/js/app.js");
        assert_eq!(inv.scripts[0].integrity.as_deref(), Some("sha384-abc"));
        assert_eq!(inv.scripts[1].host.as_deref(), Some("js.psp.example"));
        // The CSP hash a browser would compute for the same text.
        let expected = hash(&digest::SHA256, "sha256", b"window.dataLayer = [];");
        assert_eq!(keys[2], format!("inline:{expected}"));
        assert_eq!(inv.forms.len(), 2);
        assert_eq!(inv.forms[0].action, "https://shop.example/order/confirm");
        assert_eq!(inv.forms[0].method, "post");
        assert_eq!(inv.forms[1].host.as_deref(), Some("psp.example"));
        assert_eq!(inv.iframes, vec!["https://psp.example/frame"]);
        assert_eq!(inv.headers.csp, vec!["script-src 'self' https://js.psp.example"]);
        assert!(inv.notes.is_empty());
    }

    #[test]
    fn malformed_and_truncated_pages_are_inventoried_as_far_as_they_go() {
        let inv = inventory(
            &page(),
            b"<html><script src=//cdn.example/a.js><script>var a='</scr'+'ipt>'</script><form action=",
            SecurityHeaders::default(),
            true,
        );
        assert_eq!(inv.scripts[0].key, "src:https://cdn.example/a.js");
        assert!(inv.notes.contains(&"truncated_body".to_owned()));
    }

    fn authorise_all(inv: &Inventory) -> BTreeSet<String> {
        inv.scripts.iter().map(|s| s.key.clone()).collect()
    }

    fn findings(before: &Inventory, now: &Inventory) -> Vec<Finding> {
        let authorised = authorise_all(before);
        let form_hosts: BTreeSet<String> = ["psp.example".to_owned()].into();
        compare(
            now,
            &Reference {
                previous: Some(before),
                authorised: &authorised,
                form_hosts: &form_hosts,
                page_host: "shop.example",
            },
        )
    }

    #[test]
    fn the_same_page_raises_nothing_and_each_tampering_is_found() {
        let clean = inv(CLEAN);
        assert!(findings(&clean, &clean).is_empty());

        let added = inv(&CLEAN.replace(
            "</head>",
            "<script src=\"https://evil.example/s.js\"></script></head>",
        ));
        let f = findings(&clean, &added);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].kind, f[0].severity),
            (FindingKind::ScriptAdded, Severity::Critical)
        );
        assert!(f[0].lines[0].contains("evil.example"));

        let changed = inv(&CLEAN.replace("dataLayer = []", "dataLayer = [1]"));
        let f = findings(&clean, &changed);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].kind, f[0].severity),
            (FindingKind::ScriptChanged, Severity::Critical)
        );
        assert!(f[0].lines[0].starts_with("- inline script sha256-"));

        let sri_gone = inv(&CLEAN.replace(" integrity=\"sha384-abc\"", ""));
        let f = findings(&clean, &sri_gone);
        assert_eq!(
            (f[0].kind, f[0].severity),
            (FindingKind::ScriptChanged, Severity::High)
        );

        let form = inv(&CLEAN.replace("/order/confirm", "https://collect.evil.example/c"));
        let f = findings(&clean, &form);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].kind, f[0].severity),
            (FindingKind::FormActionUnknown, Severity::Critical)
        );

        let csp = inv(&CLEAN.replace("'self' https://js.psp.example", "'self' 'unsafe-inline' *"));
        let f = findings(&clean, &csp);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].kind, f[0].severity),
            (FindingKind::HeaderWeakened, Severity::High)
        );
        assert!(f[0].lines.iter().any(|l| l.contains("'unsafe-inline'")));
    }

    #[test]
    fn a_first_run_only_asks_for_authorisation() {
        let clean = inv(CLEAN);
        let none = BTreeSet::new();
        let f = compare(
            &clean,
            &Reference {
                previous: None,
                authorised: &none,
                form_hosts: &["psp.example".to_owned()].into(),
                page_host: "shop.example",
            },
        );
        assert_eq!(f.len(), 3);
        assert!(f.iter().all(|f| f.kind == FindingKind::ScriptUnauthorised));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_inventory_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let inv = inventory(&page(), &body, SecurityHeaders::default(), false);
            proptest::prop_assert!(inv.scripts.len() <= MAX_ITEMS);
        }

        #[test]
        fn html_like_text_inventories_without_panicking(body in "(<script( src=[a-z:/.]{0,12})?>[a-z<>/'\"]{0,20}(</script>)?|<form action=[a-z:/.]{0,10}>|<iframe src=x>|<base href=[a-z:/]{0,10}>|[ a-z<>=\"]{0,10}){0,20}") {
            let _ = inventory(&page(), body.as_bytes(), SecurityHeaders::default(), false);
        }
    }
}
