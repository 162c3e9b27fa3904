//! anshin's host-side tamper detection (issue 7): what changed in a shop's
//! payment application since a signed baseline, and what in it looks like a
//! skimmer.
//!
//! - [`scan`] walks one or more directory trees in parallel and records every
//!   entry ([`record::Record`]: type, size, mode, owner, times, inode, BLAKE3
//!   and SHA-256), never following a symbolic link or opening a special file;
//!   a file that changes while it is read is reported, not recorded wrongly.
//! - [`rules`] is the small TOML file saying how much each path matters.
//! - [`baseline`] is the signed (Ed25519) file format and [`key`] its key file.
//! - [`diff`] compares a scan with a baseline: added, removed, changed, with
//!   severity, the attributes that changed and what changed in web pages
//!   ([`facts`]: external scripts and Content-Security-Policy).
//! - [`signatures`] are the built-in skimmer and web-shell rules.
//! - [`release`] compares an installation with its vendor's release archive.
//! - [`alert`] is the alert object every change and finding becomes.
//! - [`watch`] reacts to inotify events and rescans on a schedule.
//! - [`yara`] runs the user's own YARA rules beside the signatures (`yara` feature).
//!
//! No network and no vault: the command line (`anshin integrity`) sends alerts.

pub mod alert;
pub mod baseline;
pub mod diff;
pub mod facts;
pub mod key;
pub mod record;
pub mod release;
pub mod rules;
pub mod scan;
pub mod signatures;
pub mod watch;
pub mod yara;

#[cfg(test)]
mod breaches;
#[cfg(any(test, feature = "test-support"))]
pub mod fixture;

use serde::{Deserialize, Serialize};

/// How much a change or finding matters. Ordered: `Low < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look at the next review.
    Low,
    /// Someone should look today.
    High,
    /// Possibly a skimmer or a back door now: look at once.
    Critical,
}

impl Severity {
    /// The lowercase name used in files, JSON and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Parses `low`, `high` or `critical`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "low" => Some(Self::Low),
            "high" => Some(Self::High),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hex of bytes, lower case.
pub(crate) fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// A path as a string that maps back to the same bytes: UTF-8 names as they
/// are, other bytes as `\xHH`, and a backslash doubled. Baselines compare
/// these strings, so two different names never collide (as lossy UTF-8 would).
pub fn path_key(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = path.as_os_str().as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Now as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keys_are_lossless() {
        use std::os::unix::ffi::OsStrExt as _;
        let a = std::path::Path::new(std::ffi::OsStr::from_bytes(b"a\xff.php"));
        let b = std::path::Path::new(std::ffi::OsStr::from_bytes(b"a\xfe.php"));
        assert_ne!(path_key(a), path_key(b));
        assert_eq!(path_key(a), "a\\xff.php");
        assert_eq!(path_key(std::path::Path::new("a\\xff.php")), "a\\\\xff.php");
        assert_eq!(path_key(std::path::Path::new("html/決済.twig")), "html/決済.twig");
    }

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Low < Severity::High && Severity::High < Severity::Critical);
        for s in [Severity::Low, Severity::High, Severity::Critical] {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert_eq!(Severity::parse("ignore"), None);
    }
}
