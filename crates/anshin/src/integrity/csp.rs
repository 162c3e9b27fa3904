//! Browsers' Content-Security-Policy violation reports, in both formats:
//! the legacy `application/csp-report` (`{"csp-report": {…}}`, `report-uri`)
//! and the Reporting API's `application/reports+json` (an array of reports of
//! type `csp-violation`, `report-to`).
//!
//! Reports come from anyone's browser, unauthenticated: the parser keeps only
//! what the alert needs (the directive and the blocked destination reduced to
//! its origin or keyword) and drops the rest, in particular paths and queries
//! (a skimmer's beacon URL can carry a card number) and script samples.

use serde::Deserialize;
use url::Url;

/// Most reports read from one body.
pub const MAX_REPORTS: usize = 32;
/// Longest directive or destination kept.
const MAX_FIELD: usize = 256;

/// The two media types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/csp-report`.
    Legacy,
    /// `application/reports+json`.
    Reporting,
}

impl Format {
    /// The format of a `Content-Type` value; `None` for anything else.
    /// `application/json` is read as legacy (some browsers sent that).
    pub fn of_content_type(value: &str) -> Option<Self> {
        let media = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/csp-report" | "application/json" => Some(Self::Legacy),
            "application/reports+json" => Some(Self::Reporting),
            _ => None,
        }
    }
}

/// What a destination was used for, which decides whether it alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Code: `script-src*`, `worker-src`, `default-src`, `object-src`.
    Script,
    /// Where data can go: `connect-src`, `form-action`, `img-src`, `frame-src`…
    Data,
    /// Styles, fonts, media: counted, no alert.
    Other,
}

/// One violation, reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The effective directive, lower case (`script-src-elem`).
    pub directive: String,
    /// The blocked origin (`https://evil.example`) or keyword (`inline`, `eval`, `data`).
    pub destination: String,
    /// `enforce` or `report`.
    pub disposition: String,
}

impl Violation {
    /// Whether this is about code or about where data goes.
    pub fn class(&self) -> Class {
        let d = self.directive.as_str();
        if d.starts_with("script-src")
            || matches!(
                d,
                "worker-src" | "default-src" | "object-src" | "trusted-types" | "require-trusted-types-for"
            )
        {
            Class::Script
        } else if matches!(
            d,
            "connect-src"
                | "form-action"
                | "img-src"
                | "frame-src"
                | "child-src"
                | "navigate-to"
                | "base-uri"
                | "prefetch-src"
                | "media-src"
        ) {
            Class::Data
        } else {
            Class::Other
        }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON of either shape.
    Malformed,
    /// Well-formed but no violation in it.
    Empty,
}

#[derive(Deserialize)]
struct Legacy {
    #[serde(rename = "csp-report")]
    report: LegacyBody,
}

#[derive(Deserialize)]
struct LegacyBody {
    #[serde(rename = "blocked-uri", default)]
    blocked: Option<String>,
    #[serde(rename = "effective-directive", default)]
    effective: Option<String>,
    #[serde(rename = "violated-directive", default)]
    violated: Option<String>,
    #[serde(default)]
    disposition: Option<String>,
}

#[derive(Deserialize)]
struct Report {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    body: Option<ReportBody>,
}

#[derive(Deserialize)]
struct ReportBody {
    #[serde(rename = "blockedURL", default)]
    blocked: Option<String>,
    #[serde(rename = "effectiveDirective", default)]
    effective: Option<String>,
    #[serde(default)]
    disposition: Option<String>,
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_FIELD);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The blocked URL reduced to what identifies the destination.
pub fn destination(blocked: &str) -> String {
    let blocked = blocked.trim();
    let lower = blocked.to_ascii_lowercase();
    match lower.as_str() {
        "" => return "unknown".to_owned(),
        "inline" | "eval" | "wasm-eval" | "self" | "trusted-types-policy" | "trusted-types-sink" => {
            return lower;
        }
        _ => {}
    }
    match Url::parse(blocked) {
        Ok(url) if url.host_str().is_some() => clip(&url.origin().ascii_serialization()),
        // data:, blob:, about: and the like: the scheme alone (never the data).
        Ok(url) => clip(url.scheme()),
        Err(_) => clip(lower.split([':', '/', '?', '#']).next().unwrap_or("unknown")),
    }
}

fn violation(
    blocked: Option<String>,
    directive: Option<String>,
    disposition: Option<String>,
) -> Option<Violation> {
    let directive = directive?;
    // violated-directive may carry the sources: the directive is its first word.
    let directive = directive.split_whitespace().next()?.to_ascii_lowercase();
    if directive.is_empty() {
        return None;
    }
    Some(Violation {
        directive: clip(&directive),
        destination: destination(blocked.as_deref().unwrap_or("")),
        disposition: match disposition.as_deref() {
            Some("report") => "report".to_owned(),
            _ => "enforce".to_owned(),
        },
    })
}

/// The violations in a body of the given format, at most [`MAX_REPORTS`].
pub fn parse(format: Format, body: &[u8]) -> Result<Vec<Violation>, ParseError> {
    let out: Vec<Violation> = match format {
        Format::Legacy => {
            let legacy: Legacy = serde_json::from_slice(body).map_err(|_| ParseError::Malformed)?;
            let r = legacy.report;
            violation(r.blocked, r.effective.or(r.violated), r.disposition)
                .into_iter()
                .collect()
        }
        Format::Reporting => {
            let reports: Vec<serde_json::Value> =
                serde_json::from_slice(body).map_err(|_| ParseError::Malformed)?;
            reports
                .into_iter()
                .take(MAX_REPORTS)
                .filter_map(|v| serde_json::from_value::<Report>(v).ok())
                .filter(|r| r.kind == "csp-violation")
                .filter_map(|r| r.body)
                .filter_map(|b| violation(b.blocked, b.effective, b.disposition))
                .collect()
        }
    };
    if out.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_reports_keep_the_origin_only() {
        let body = br#"{"csp-report":{"document-uri":"https://shop.example/checkout?email=a@b.example",
            "blocked-uri":"https://evil.example/c.gif?cc=4111111111111111","violated-directive":"img-src 'self'",
            "original-policy":"img-src 'self'","disposition":"enforce","script-sample":""}}"#;
        let v = parse(Format::Legacy, body).expect("parsed");
        assert_eq!(
            v,
            vec![Violation {
                directive: "img-src".into(),
                destination: "https://evil.example".into(),
                disposition: "enforce".into()
            }]
        );
        assert_eq!(v[0].class(), Class::Data);
    }

    #[test]
    fn reporting_api_arrays_keep_csp_violations_only() {
        let body = br#"[{"type":"csp-violation","age":10,"url":"https://shop.example/checkout","body":{
              "documentURL":"https://shop.example/checkout","blockedURL":"inline","effectiveDirective":"script-src-elem",
              "originalPolicy":"script-src 'self'","disposition":"report","statusCode":200}},
            {"type":"deprecation","body":{"id":"x"}},
            {"type":"csp-violation","body":{"blockedURL":"data:text/javascript,alert(1)","effectiveDirective":"script-src"}}]"#;
        let v = parse(Format::Reporting, body).expect("parsed");
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].destination.as_str(), v[0].disposition.as_str()),
            ("inline", "report")
        );
        assert_eq!(v[1].destination, "data");
        assert!(v.iter().all(|v| v.class() == Class::Script));
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert_eq!(parse(Format::Legacy, b"{"), Err(ParseError::Malformed));
        assert_eq!(
            parse(Format::Legacy, b"{\"csp-report\":{}}"),
            Err(ParseError::Empty)
        );
        assert_eq!(parse(Format::Reporting, b"[]"), Err(ParseError::Empty));
        assert_eq!(
            Format::of_content_type("application/reports+json; charset=utf-8"),
            Some(Format::Reporting)
        );
        assert_eq!(Format::of_content_type("text/plain"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(Format::Legacy, &body);
            let _ = parse(Format::Reporting, &body);
        }

        #[test]
        fn destinations_never_keep_a_path_or_query(host in "[a-z]{1,10}", rest in "[a-z0-9=&?/]{0,30}") {
            let d = destination(&format!("https://{host}.example/{rest}"));
            proptest::prop_assert_eq!(d, format!("https://{host}.example"));
        }
    }
}
