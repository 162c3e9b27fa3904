//! Comparing what is on disk with a baseline.
//!
//! A file is *changed* when its type, contents (either hash or the size),
//! permission bits, owner or link target differ. Times alone are not a change:
//! a file touched but rewritten with the same bytes is the same file (the
//! check still re-reads it, because its ctime moved). Directories are
//! compared by type, mode and owner only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::Severity;
use crate::facts::{self, FactChange};
use crate::record::{FileKind, Record};
use crate::rules::{Class, Rules};
use crate::scan::{Problem, ProblemKind, Scan};
use crate::signatures::{self, Finding, SkipReason};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// New since the baseline.
    Added,
    /// Gone since the baseline.
    Removed,
    /// Different from the baseline.
    Changed,
    /// Changed while it was being read: look again.
    ChangedDuringScan,
    /// Could not be read.
    Unreadable,
}

impl ChangeKind {
    /// Stable name (alert kinds are `file_` + this).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
            Self::ChangedDuringScan => "changed_during_scan",
            Self::Unreadable => "unreadable",
        }
    }
}

/// One difference from the baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// Root index.
    pub root: u16,
    /// Path below the root.
    pub path: String,
    /// How much it matters (the rules', raised by what changed inside).
    pub severity: Severity,
    /// Which attributes differ: `type`, `content`, `size`, `mode`, `owner`, `link_target`.
    pub attributes: Vec<&'static str>,
    /// What changed in a page's scripts and CSP.
    pub facts: Vec<FactChange>,
    /// Signature findings in the new contents.
    pub findings: Vec<Finding>,
    /// The recorded state, if any.
    pub before: Option<Record>,
    /// The state now, if any.
    pub after: Option<Record>,
    /// For `unreadable`: why.
    pub reason: Option<String>,
    /// A file in an upload folder that is reported only when the signatures
    /// find something in it.
    pub only_if_findings: bool,
}

fn attributes(before: &Record, after: &Record) -> Vec<&'static str> {
    let mut out = Vec::new();
    if before.kind != after.kind {
        out.push("type");
        return out;
    }
    if before.kind == FileKind::File {
        if before.sha256 != after.sha256 || before.blake3 != after.blake3 {
            out.push("content");
        }
        if before.size != after.size {
            out.push("size");
        }
    }
    if before.mode != after.mode {
        out.push("mode");
    }
    if before.uid != after.uid || before.gid != after.gid {
        out.push("owner");
    }
    if before.link_target != after.link_target {
        out.push("link_target");
    }
    out
}

/// The change (if any) between a path's recorded state and its state now.
pub fn compare_one(
    rules: &Rules,
    root: u16,
    path: &str,
    before: Option<&Record>,
    after: Option<&Record>,
    problem: Option<&Problem>,
) -> Option<Change> {
    let class = rules.classify(path);
    let mut severity = match class {
        Class::Watched(s) => s,
        Class::Upload => Severity::Critical,
        Class::Ignored => return None,
    };
    let (kind, attrs) = match (problem, before, after) {
        (Some(p), _, _) => match &p.kind {
            ProblemKind::ChangedDuringScan => (ChangeKind::ChangedDuringScan, Vec::new()),
            ProblemKind::Unreadable(_) => (ChangeKind::Unreadable, Vec::new()),
        },
        (None, None, Some(_)) => (ChangeKind::Added, Vec::new()),
        (None, Some(_), None) => (ChangeKind::Removed, Vec::new()),
        (None, Some(b), Some(a)) => {
            let attrs = attributes(b, a);
            if attrs.is_empty() {
                return None;
            }
            (ChangeKind::Changed, attrs)
        }
        (None, None, None) => return None,
    };
    let added_or_changed = matches!(kind, ChangeKind::Added | ChangeKind::Changed);
    let mut only_if_findings = false;
    if class == Class::Upload {
        // Uploads come and go: only a new or changed file the web server
        // would execute counts, or any new or changed file the signatures
        // find something in (PHP inside an image).
        let is_file = after.is_some_and(|a| a.kind == FileKind::File);
        if !(is_file && added_or_changed) {
            return None;
        }
        if !rules.is_upload_script(path) {
            only_if_findings = true;
            severity = Severity::Low;
        }
    }
    let facts = match kind {
        ChangeKind::Changed | ChangeKind::Added => facts::compare(
            before.and_then(|b| b.facts.as_ref()),
            after.and_then(|a| a.facts.as_ref()),
        ),
        _ => Vec::new(),
    };
    if !facts.is_empty() {
        severity = Severity::Critical;
    }
    Some(Change {
        kind,
        root,
        path: path.to_owned(),
        severity,
        attributes: attrs,
        facts,
        findings: Vec::new(),
        before: before.cloned(),
        after: after.cloned(),
        reason: problem.and_then(|p| match &p.kind {
            ProblemKind::Unreadable(r) => Some(r.clone()),
            ProblemKind::ChangedDuringScan => None,
        }),
        only_if_findings,
    })
}

/// Every change between `baseline` (sorted records) and `scan`.
pub fn compare(rules: &Rules, baseline: &[Record], scan: &Scan) -> Vec<Change> {
    let previous = crate::scan::Previous::new(baseline);
    let current = crate::scan::Previous::new(&scan.records);
    let problems: std::collections::HashMap<(u16, &str), &Problem> = scan
        .problems
        .iter()
        .map(|p| ((p.root, p.path.as_str()), p))
        .collect();
    let mut keys: BTreeSet<(u16, &str)> = BTreeSet::new();
    keys.extend(baseline.iter().map(|r| (r.root, r.path.as_str())));
    keys.extend(scan.records.iter().map(|r| (r.root, r.path.as_str())));
    keys.extend(scan.problems.iter().map(|p| (p.root, p.path.as_str())));
    let mut out = Vec::new();
    for (root, path) in keys {
        let before = previous.get(root, path);
        let after = current.get(root, path);
        let problem = problems.get(&(root, path)).copied();
        // An unreadable entry is not "removed": it is reported as unreadable.
        if let Some(change) = compare_one(rules, root, path, before, after, problem) {
            out.push(change);
        }
    }
    out
}

/// A file the signatures could not read.
#[derive(Debug)]
pub struct Unscanned {
    /// Root index.
    pub root: u16,
    /// Path below the root.
    pub path: String,
    /// Why.
    pub reason: SkipReason,
}

/// Runs the signatures over every added or changed regular file, adds the
/// findings to its change and raises its severity to theirs; then drops the
/// upload-folder changes in which nothing was found.
pub fn attach_findings(changes: &mut Vec<Change>, roots: &[PathBuf], rules: &Rules) -> Vec<Unscanned> {
    let mut unscanned = Vec::new();
    for change in changes.iter_mut() {
        let is_file = change.after.as_ref().is_some_and(|a| a.kind == FileKind::File);
        if !is_file || !matches!(change.kind, ChangeKind::Added | ChangeKind::Changed) {
            continue;
        }
        let Some(root) = roots.get(usize::from(change.root)) else {
            continue;
        };
        let fs_path = root.join(Path::new(&unescape(&change.path)));
        match signatures::scan_file(&fs_path, &change.path, rules) {
            Ok(Some((_, found))) => {
                if let Some(worst) = found.iter().map(|f| f.severity).max() {
                    change.severity = change.severity.max(worst);
                }
                change.findings = found;
            }
            Ok(None) => {}
            Err(reason) => unscanned.push(Unscanned {
                root: change.root,
                path: change.path.clone(),
                reason,
            }),
        }
    }
    changes.retain(|c| !c.only_if_findings || !c.findings.is_empty());
    unscanned
}

/// The file-system path of a [`crate::path_key`] string.
pub fn unescape(key: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt as _;
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'x')
                && let Some(hex) = bytes.get(i + 2..i + 4)
                && let Ok(text) = std::str::from_utf8(hex)
                && let Ok(b) = u8::from_str_radix(text, 16)
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    std::ffi::OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keys_unescape_to_the_same_bytes() {
        use std::os::unix::ffi::OsStrExt as _;
        for raw in [&b"a\xff.php"[..], b"a\\b", b"plain/path.twig", b"\\x41"] {
            let path = Path::new(std::ffi::OsStr::from_bytes(raw));
            assert_eq!(unescape(&crate::path_key(path)).as_bytes(), raw);
        }
    }
}
