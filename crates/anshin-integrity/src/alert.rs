//! The alert object: one per change or signature finding, the same for
//! standard output, `--json` and the webhook. Its JSON schema is
//! `docs/schemas/integrity-alert.schema.json`; fields are only ever added.
//!
//! An alert names paths, hosts, rules and hashes, never file contents.

use serde::{Deserialize, Serialize};

use crate::Severity;
use crate::diff::{Change, ChangeKind};

/// The `schema` value of this version.
pub const SCHEMA: &str = "anshin-integrity-alert/1";

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Stable for the same situation (kind, place, rule, contents), so a
    /// receiver can drop repeats of a cron job's alerts.
    pub id: String,
    /// `file_added`, `file_removed`, `file_changed`, `file_changed_during_scan`,
    /// `file_unreadable`, `script_added`, `csp_weakened`, `signature`,
    /// `release_differs`, `release_added`, `release_missing`, and about the
    /// baseline itself when it is checked against the server's copy:
    /// `baseline_mismatch`, `baseline_not_stored`.
    pub kind: String,
    /// `low`, `high` or `critical`.
    pub severity: Severity,
    /// When it was detected (RFC 3339, UTC).
    pub detected_at: String,
    /// The host the files are on.
    pub host: String,
    /// The root directory.
    pub root: String,
    /// The path below the root.
    pub path: String,
    /// Attributes that differ (`content`, `size`, `mode`, `owner`, `type`, `link_target`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// What changed in scripts and Content-Security-Policy, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The signature rule, for `signature` alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The line the rule points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The byte offset a user's YARA rule matched at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Where data or a form goes, when the rule is about that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// SHA-256 of the contents now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// SHA-256 of the recorded (or the release's) contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_sha256: Option<String>,
    /// What happened and why it matters, in English.
    pub message_en: String,
    /// The same in Japanese.
    pub message_ja: String,
}

/// Where alerts are raised.
#[derive(Debug, Clone)]
pub struct Context {
    /// The host name.
    pub host: String,
    /// Root directories, by index.
    pub roots: Vec<String>,
    /// The detection time.
    pub detected_at: String,
}

fn id_of(parts: &[&str]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    format!("ial_{}", &crate::hex(hasher.finalize().as_bytes())[..24])
}

fn messages(kind: &str, path: &str, attributes: &[String]) -> (String, String) {
    let attrs = attributes.join(", ");
    match kind {
        "file_added" => (format!("new file {path}"), format!("新しいファイル {path}")),
        "file_removed" => (format!("{path} was removed"), format!("{path} が削除されました")),
        "file_changed" => (
            format!("{path} changed ({attrs})"),
            format!("{path} が変更されました（{attrs}）"),
        ),
        "file_changed_during_scan" => (
            format!("{path} changed while it was being read; check again"),
            format!("{path} は読み取り中に変更されました。再度チェックしてください"),
        ),
        "file_unreadable" => (
            format!("{path} could not be read"),
            format!("{path} を読み取れませんでした"),
        ),
        "script_added" => (
            format!("{path}: a new external script is loaded"),
            format!("{path}: 新しい外部スクリプトが読み込まれています"),
        ),
        "csp_weakened" => (
            format!("{path}: the Content-Security-Policy was weakened"),
            format!("{path}: Content-Security-Policy が弱められました"),
        ),
        "release_differs" => (
            format!("{path} differs from the vendor's release"),
            format!("{path} はベンダーのリリースと異なります"),
        ),
        "release_added" => (
            format!("{path} is not in the vendor's release"),
            format!("{path} はベンダーのリリースに含まれていません"),
        ),
        "release_missing" => (
            format!("{path} of the vendor's release is missing"),
            format!("ベンダーのリリースにある {path} がありません"),
        ),
        _ => (format!("{path}: {kind}"), format!("{path}: {kind}")),
    }
}

impl Alert {
    /// The alerts of one change: the change itself (its kind sharpened to
    /// `script_added` or `csp_weakened` when that is what changed), then one
    /// per signature finding.
    pub fn from_change(change: &Change, ctx: &Context, kind_prefix: &str) -> Vec<Alert> {
        let root = ctx
            .roots
            .get(usize::from(change.root))
            .cloned()
            .unwrap_or_default();
        let sha256 = change.after.as_ref().and_then(|a| a.sha256.clone());
        let previous = change.before.as_ref().and_then(|b| b.sha256.clone());
        let kind = match (change.facts.first(), kind_prefix) {
            (Some(fact), "file") => fact.kind().to_owned(),
            (_, "release") => match change.kind {
                ChangeKind::Added => "release_added".to_owned(),
                ChangeKind::Removed => "release_missing".to_owned(),
                _ => "release_differs".to_owned(),
            },
            _ => format!("{kind_prefix}_{}", change.kind.as_str()),
        };
        let attributes: Vec<String> = change.attributes.iter().map(|a| (*a).to_owned()).collect();
        let (mut message_en, mut message_ja) = messages(&kind, &change.path, &attributes);
        if let Some(reason) = &change.reason {
            message_en.push_str(&format!(": {reason}"));
            message_ja.push_str(&format!("（{reason}）"));
        }
        let mut out = Vec::new();
        // Findings alone carry an upload file that is otherwise not reported.
        if !change.only_if_findings {
            out.push(Alert {
                schema: SCHEMA.to_owned(),
                id: id_of(&[
                    &kind,
                    &ctx.host,
                    &root,
                    &change.path,
                    sha256.as_deref().unwrap_or(""),
                ]),
                kind,
                severity: change.severity,
                detected_at: ctx.detected_at.clone(),
                host: ctx.host.clone(),
                root: root.clone(),
                path: change.path.clone(),
                attributes,
                details: change.facts.iter().map(|f| f.describe()).collect(),
                rule: None,
                line: None,
                offset: None,
                destination: None,
                sha256: sha256.clone(),
                previous_sha256: previous,
                message_en,
                message_ja,
            });
        }
        for finding in &change.findings {
            out.push(Alert::signature(
                ctx,
                &root,
                &change.path,
                finding,
                sha256.as_deref(),
            ));
        }
        out
    }

    /// The alert of one signature finding.
    pub fn signature(
        ctx: &Context,
        root: &str,
        path: &str,
        finding: &crate::signatures::Finding,
        sha256: Option<&str>,
    ) -> Alert {
        let line = finding.line.to_string();
        Alert {
            schema: SCHEMA.to_owned(),
            id: id_of(&[
                "signature",
                &ctx.host,
                root,
                path,
                &finding.rule,
                &line,
                sha256.unwrap_or(""),
            ]),
            kind: "signature".to_owned(),
            severity: finding.severity,
            detected_at: ctx.detected_at.clone(),
            host: ctx.host.clone(),
            root: root.to_owned(),
            path: path.to_owned(),
            attributes: Vec::new(),
            details: Vec::new(),
            rule: Some(finding.rule.clone().into_owned()),
            // A YARA rule can match by its condition alone, at no line.
            line: (finding.line > 0).then_some(finding.line),
            offset: finding.offset,
            destination: finding.destination.clone(),
            sha256: sha256.map(str::to_owned),
            previous_sha256: None,
            message_en: format!("{path}:{}: {} — {}", finding.line, finding.rule, finding.why_en),
            message_ja: format!("{path}:{}: {} — {}", finding.line, finding.rule, finding.why_ja),
        }
    }

    /// An alert about the baseline itself (`baseline_mismatch`,
    /// `baseline_not_stored`): `path` is the local baseline file.
    pub fn baseline(
        ctx: &Context,
        kind: &str,
        severity: Severity,
        path: &str,
        details: Vec<String>,
        messages: (String, String),
    ) -> Alert {
        Alert {
            schema: SCHEMA.to_owned(),
            id: id_of(&[kind, &ctx.host, path, &details.join("\n")]),
            kind: kind.to_owned(),
            severity,
            detected_at: ctx.detected_at.clone(),
            host: ctx.host.clone(),
            root: String::new(),
            path: path.to_owned(),
            attributes: Vec::new(),
            details,
            rule: None,
            line: None,
            offset: None,
            destination: None,
            sha256: None,
            previous_sha256: None,
            message_en: messages.0,
            message_ja: messages.1,
        }
    }

    /// One line for people: severity, kind, place and message.
    pub fn human(&self) -> String {
        let mut line = format!(
            "{:<8} {:<24} {}",
            self.severity.as_str(),
            self.kind,
            self.message_en
        );
        for detail in &self.details {
            line.push_str(&format!("\n         - {detail}"));
        }
        line.push_str(&format!("\n         {}", self.message_ja));
        line
    }
}
