//! What a web page, template or server configuration says about the payment
//! page's scripts and headers: the external scripts it loads and the
//! Content-Security-Policy it sets. A baseline keeps these per file, so a
//! check can say "a new script from this host" or "the CSP now allows
//! 'unsafe-inline'" instead of only "the checkout template changed" (PCI DSS
//! 6.4.3 and 11.6.1, seen from the host).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Largest file whose facts are extracted; larger ones are hashed only.
pub const MAX_FACTS_BYTES: u64 = 2 << 20;

/// File names (lowercase extension, or whole name) that can load scripts or set headers.
pub fn applies_to(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    if matches!(name.as_str(), ".htaccess" | "nginx.conf" | "httpd.conf") {
        return true;
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    matches!(
        ext,
        "html" | "htm" | "twig" | "tpl" | "phtml" | "php" | "inc" | "conf" | "yaml" | "yml" | "xml"
    )
}

/// One Content-Security-Policy found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `Content-Security-Policy-Report-Only`: reported, not enforced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub report_only: bool,
    /// The policy text as written (whitespace collapsed).
    pub text: String,
}

/// External scripts and policies of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageFacts {
    /// `src` of every `<script>` loaded from an absolute URL, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<String>,
    /// Every Content-Security-Policy the file sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub csp: Vec<Policy>,
}

static SCRIPT_SRC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)<script\b[^>]*?\bsrc\s*=\s*["']?((?:https?:)?//[^"'\s>]+)"#).expect("valid regex")
});

// The header name, then `: value`, `" value"`, `content="value"` (meta
// tags) or a bare value (PHP header()); a quoted value runs to its closing
// quote, so `'self'` inside double quotes is kept.
static CSP: LazyLock<Regex> = LazyLock::new(|| {
    const DIRECTIVE: &str = "(?:default|script|connect|form|frame|img|object|base|style|child|worker|font|media|manifest|upgrade|block|report|require|sandbox)";
    Regex::new(&format!(
        r#"(?i)content-security-policy(-report-only)?["']?\s*(?::\s*|,\s*|\s+)?(?:content\s*=\s*)?(?:"({DIRECTIVE}[^"\r\n]*)|'({DIRECTIVE}[^'\r\n]*)|({DIRECTIVE}[^"\r\n<>]*))"#
    ))
    .expect("valid regex")
});

// <meta content="…" http-equiv="Content-Security-Policy">: content first.
static CSP_META_REVERSED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?is)<meta\b[^>]*?\bcontent\s*=\s*(?:"([^"]*)"|'([^']*)')[^>]*?http-equiv\s*=\s*["']?content-security-policy(-report-only)?"#,
    )
    .expect("valid regex")
});

impl PageFacts {
    /// The facts of a file's contents; `None` when it has none.
    pub fn extract(content: &[u8]) -> Option<Self> {
        // Most pages are valid UTF-8: std's validator is many times faster
        // than the lossy decoder, which walks the bytes chunk by chunk (it
        // was a tenth of a baseline's CPU on the shop tree's PHP).
        let text = match std::str::from_utf8(content) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(content),
        };
        let mut scripts: BTreeSet<String> = BTreeSet::new();
        for cap in SCRIPT_SRC.captures_iter(&text) {
            scripts.insert(cap[1].to_owned());
        }
        let mut csp = Vec::new();
        let mut push = |report_only: bool, raw: &str| {
            let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
            let text = text.trim_end_matches([';', ' ']).to_owned();
            let policy = Policy { report_only, text };
            if !policy.text.is_empty() && !csp.contains(&policy) {
                csp.push(policy);
            }
        };
        for cap in CSP.captures_iter(&text) {
            if let Some(value) = cap.get(2).or_else(|| cap.get(3)) {
                push(cap.get(1).is_some(), value.as_str());
            } else if let Some(value) = cap.get(4) {
                // A bare value from PHP's header('…') ends with the call's quote and parenthesis.
                push(
                    cap.get(1).is_some(),
                    value.as_str().trim_end_matches([';', ' ', '\'', ')']),
                );
            }
        }
        for cap in CSP_META_REVERSED.captures_iter(&text) {
            if let Some(value) = cap.get(1).or_else(|| cap.get(2)) {
                push(cap.get(3).is_some(), value.as_str());
            }
        }
        let facts = Self {
            scripts: scripts.into_iter().collect(),
            csp,
        };
        (!facts.scripts.is_empty() || !facts.csp.is_empty()).then_some(facts)
    }
}

/// Host of a script URL (`https://host:port/…` or `//host/…`), lower case.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .or_else(|| url.strip_prefix("//"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.split(':').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Directives whose widening lets a skimmer load, send or post: a new source
/// in any of them is a weakening.
const GUARDING: &[&str] = &[
    "default-src",
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "connect-src",
    "form-action",
    "frame-src",
    "child-src",
    "img-src",
    "object-src",
    "base-uri",
    "worker-src",
];

fn directives(policies: &[Policy]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for policy in policies.iter().filter(|p| !p.report_only) {
        for directive in policy.text.split(';') {
            let mut words = directive.split_whitespace();
            let Some(name) = words.next() else { continue };
            let name = name.to_ascii_lowercase();
            let sources = out.entry(name).or_default();
            sources.extend(words.map(|w| w.to_ascii_lowercase()));
        }
    }
    out
}

/// What changed between two versions of a file's facts, worst first: new
/// external scripts and every way the enforced CSP got weaker. Empty when
/// nothing that matters changed.
pub fn compare(old: Option<&PageFacts>, new: Option<&PageFacts>) -> Vec<FactChange> {
    let empty = PageFacts::default();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut out = Vec::new();
    for script in &new.scripts {
        if !old.scripts.contains(script) {
            out.push(FactChange::ScriptAdded(script.clone()));
        }
    }
    let (before, after) = (directives(&old.csp), directives(&new.csp));
    if !before.is_empty() && after.is_empty() {
        out.push(FactChange::CspRemoved);
        return out;
    }
    for (name, sources) in &before {
        if !GUARDING.contains(&name.as_str()) {
            continue;
        }
        match after.get(name) {
            None => out.push(FactChange::CspDirectiveRemoved(name.clone())),
            Some(now) => {
                // 'none' allows nothing, so adding it never widens; nor does
                // a source the old list already allowed (`*`, a scheme).
                for source in now
                    .difference(sources)
                    .filter(|s| *s != "'none'" && !covered(sources, s))
                {
                    out.push(FactChange::CspSourceAdded {
                        directive: name.clone(),
                        source: source.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Whether `source` allows nothing that `sources` did not: `*` allows every
/// host and 'self' (not `data:`, `blob:` or other keywords), `https:` every
/// https host.
fn covered(sources: &BTreeSet<String>, source: &str) -> bool {
    if source.starts_with('\'') {
        // The page's own origin is one of the hosts `*` allows.
        return source == "'self'" && sources.contains("*");
    }
    if let Some((scheme, rest)) = source.split_once("://") {
        return sources.contains("*") || (!rest.is_empty() && sources.contains(&format!("{scheme}:")));
    }
    let is_scheme = source.ends_with(':');
    !is_scheme && sources.contains("*")
}

/// One difference in facts that matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactChange {
    /// A `<script src>` from an absolute URL that was not there.
    ScriptAdded(String),
    /// The file no longer sets an enforced CSP.
    CspRemoved,
    /// A guarding directive is gone (its fallback is wider or none).
    CspDirectiveRemoved(String),
    /// A guarding directive allows a new source.
    CspSourceAdded {
        /// The directive.
        directive: String,
        /// The source it now allows.
        source: String,
    },
}

impl FactChange {
    /// Stable name for alerts.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ScriptAdded(_) => "script_added",
            Self::CspRemoved | Self::CspDirectiveRemoved(_) | Self::CspSourceAdded { .. } => "csp_weakened",
        }
    }

    /// One line in English.
    pub fn describe(&self) -> String {
        match self {
            Self::ScriptAdded(url) => format!("new external script {url}"),
            Self::CspRemoved => "Content-Security-Policy removed (or now report-only)".to_owned(),
            Self::CspDirectiveRemoved(d) => format!("Content-Security-Policy directive {d} removed"),
            Self::CspSourceAdded { directive, source } => {
                format!("Content-Security-Policy {directive} now allows {source}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_policies_are_found_in_templates_and_configs() {
        let page = br#"<html><head>
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self' https://js.pay.example">
<script src="https://js.pay.example/v1/token.js"></script>
<SCRIPT type="text/javascript" SRC='//cdn.example.net/jquery.min.js' defer></SCRIPT>
<script src="/html/user_data/app.js"></script>
</head></html>"#;
        let facts = PageFacts::extract(page).expect("facts");
        assert_eq!(
            facts.scripts,
            vec![
                "//cdn.example.net/jquery.min.js",
                "https://js.pay.example/v1/token.js"
            ]
        );
        assert_eq!(facts.csp.len(), 1);
        assert_eq!(
            facts.csp[0].text,
            "default-src 'self'; script-src 'self' https://js.pay.example"
        );

        let htaccess =
            b"Header always set Content-Security-Policy \"default-src 'self'; form-action 'self'\"\n";
        let facts = PageFacts::extract(htaccess).expect("facts");
        assert_eq!(facts.csp[0].text, "default-src 'self'; form-action 'self'");
        let php = b"header('Content-Security-Policy-Report-Only: script-src https:');";
        assert!(PageFacts::extract(php).expect("facts").csp[0].report_only);
        let reversed = br#"<meta content="script-src 'self'" http-equiv="Content-Security-Policy">"#;
        assert_eq!(
            PageFacts::extract(reversed).expect("facts").csp[0].text,
            "script-src 'self'"
        );
        assert_eq!(PageFacts::extract(b"<p>hello</p>"), None);
    }

    #[test]
    fn weakening_is_named_and_tightening_is_not() {
        let with = |csp: &str| PageFacts {
            scripts: vec![],
            csp: vec![Policy {
                report_only: false,
                text: csp.to_owned(),
            }],
        };
        let old = with("default-src 'self'; script-src 'self'; form-action 'self'");
        let wider = with("default-src 'self'; script-src 'self' 'unsafe-inline' https://evil.example");
        let changes = compare(Some(&old), Some(&wider));
        assert!(changes.contains(&FactChange::CspSourceAdded {
            directive: "script-src".into(),
            source: "'unsafe-inline'".into()
        }));
        assert!(changes.contains(&FactChange::CspDirectiveRemoved("form-action".into())));
        assert_eq!(changes.len(), 3);
        let tighter = with("default-src 'none'; script-src 'self'; form-action 'self'");
        assert!(compare(Some(&old), Some(&tighter)).is_empty());
        assert_eq!(compare(Some(&old), None), vec![FactChange::CspRemoved]);
        // Narrowing `*` or `https:` back to named hosts widens nothing.
        let wide = with("script-src 'self' https:; form-action *");
        let narrow = with("script-src 'self' https://js.psp.example; form-action 'self' psp.example");
        assert_eq!(compare(Some(&wide), Some(&narrow)), vec![]);
        assert_eq!(compare(Some(&narrow), Some(&wide)).len(), 2);
        let report_only = PageFacts {
            scripts: vec![],
            csp: vec![Policy {
                report_only: true,
                text: old.csp[0].text.clone(),
            }],
        };
        assert_eq!(
            compare(Some(&old), Some(&report_only)),
            vec![FactChange::CspRemoved]
        );
        assert!(compare(Some(&old), Some(&old)).is_empty());
    }

    #[test]
    fn hosts_of_script_urls() {
        assert_eq!(
            url_host("https://A.example:8443/x.js").as_deref(),
            Some("a.example")
        );
        assert_eq!(url_host("//cdn.example/x").as_deref(), Some("cdn.example"));
        assert_eq!(url_host("/local.js"), None);
    }
}
