//! Comparing an installed application with its vendor's release archive
//! (EC-CUBE, WordPress/WooCommerce, Magento ship zip or tar.gz files with one
//! top-level directory, which is stripped).
//!
//! Every regular file of the archive is hashed while streaming (nothing is
//! extracted, so member names cannot write anywhere); members whose names
//! are absolute or climb with `..` are refused, as is an archive whose
//! members expand past [`MAX_EXPANDED`] or number more than [`MAX_MEMBERS`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::diff::{Change, ChangeKind};
use crate::record::{FileKind, Record};
use crate::rules::{Class, Rules};

/// Most members read from one archive.
pub const MAX_MEMBERS: usize = 500_000;
/// Most bytes expanded from one archive.
pub const MAX_EXPANDED: u64 = 16 << 30;

/// Why an archive could not be read.
#[derive(Debug)]
pub enum ReleaseError {
    /// Reading failed.
    Io(std::io::Error),
    /// Neither a zip nor a (gzip-compressed) tar file.
    UnknownFormat,
    /// The archive is corrupt (the reader's message).
    Corrupt(String),
    /// More members or bytes than the limits allow.
    TooLarge,
    /// A member's name is absolute or climbs out with `..`.
    UnsafeName(String),
}

impl std::fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::UnknownFormat => f.write_str("the archive is neither zip nor tar.gz"),
            Self::Corrupt(e) => write!(f, "the archive is corrupt: {e}"),
            Self::TooLarge => write!(
                f,
                "the archive has more than {MAX_MEMBERS} members or expands past {} GiB",
                MAX_EXPANDED >> 30
            ),
            Self::UnsafeName(n) => write!(f, "the archive has a member named {n:?} (absolute or with ..)"),
        }
    }
}

impl std::error::Error for ReleaseError {}

/// One regular file or link of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// File or symlink.
    pub kind: FileKind,
    /// SHA-256 of the contents (files).
    pub sha256: Option<String>,
    /// Where a link points.
    pub link_target: Option<String>,
}

impl Member {
    fn file(sha256: String) -> Self {
        Self {
            kind: FileKind::File,
            sha256: Some(sha256),
            link_target: None,
        }
    }

    fn link(target: String) -> Self {
        Self {
            kind: FileKind::Symlink,
            sha256: None,
            link_target: Some(target),
        }
    }
}

fn safe_name(name: &str) -> Result<Option<String>, ReleaseError> {
    let name = name.trim_start_matches("./");
    if name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(ReleaseError::UnsafeName(name.chars().take(200).collect()));
    }
    let name = name.trim_end_matches('/');
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

fn hash_reader(mut reader: impl Read, expanded: &mut u64) -> Result<String, ReleaseError> {
    let mut sha = sha2::Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| ReleaseError::Corrupt(e.to_string()))?;
        if n == 0 {
            break;
        }
        *expanded += n as u64;
        if *expanded > MAX_EXPANDED {
            return Err(ReleaseError::TooLarge);
        }
        sha.update(&buffer[..n]);
    }
    Ok(crate::hex(&sha.finalize()))
}

/// The members of a release archive by path, the common top-level directory
/// stripped.
pub fn read_archive(path: &Path) -> Result<BTreeMap<String, Member>, ReleaseError> {
    let mut file = std::fs::File::open(path).map_err(ReleaseError::Io)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(ReleaseError::Io)?;
    let file = std::fs::File::open(path).map_err(ReleaseError::Io)?;
    let members = match &magic[..n] {
        [b'P', b'K', 3, 4] | [b'P', b'K', 5, 6] => read_zip(file)?,
        [0x1f, 0x8b, ..] => read_tar(flate2::read::GzDecoder::new(file))?,
        _ if is_tar(path) => read_tar(file)?,
        _ => return Err(ReleaseError::UnknownFormat),
    };
    Ok(strip_top(members))
}

fn is_tar(path: &Path) -> bool {
    let mut header = [0u8; 512];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok()
        && &header[257..262] == b"ustar"
}

fn read_zip(file: std::fs::File) -> Result<Vec<(String, Member)>, ReleaseError> {
    let mut archive = zip::ZipArchive::new(file).map_err(|e| ReleaseError::Corrupt(e.to_string()))?;
    if archive.len() > MAX_MEMBERS {
        return Err(ReleaseError::TooLarge);
    }
    let mut out = Vec::new();
    let mut expanded = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| ReleaseError::Corrupt(e.to_string()))?;
        let raw = entry
            .name()
            .map_err(|e| ReleaseError::Corrupt(e.to_string()))?
            .into_owned();
        let Some(name) = safe_name(&raw)? else { continue };
        if entry.is_dir() {
            continue;
        }
        let is_link = entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000);
        if is_link {
            let mut target = String::new();
            entry
                .by_ref()
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|e| ReleaseError::Corrupt(e.to_string()))?;
            out.push((name, Member::link(target)));
        } else {
            let sha = hash_reader(&mut entry, &mut expanded)?;
            out.push((name, Member::file(sha)));
        }
    }
    Ok(out)
}

fn read_tar(reader: impl Read) -> Result<Vec<(String, Member)>, ReleaseError> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    let mut expanded = 0u64;
    for entry in archive
        .entries()
        .map_err(|e| ReleaseError::Corrupt(e.to_string()))?
    {
        let mut entry = entry.map_err(|e| ReleaseError::Corrupt(e.to_string()))?;
        if out.len() >= MAX_MEMBERS {
            return Err(ReleaseError::TooLarge);
        }
        let raw = entry.path_bytes().into_owned();
        let name = crate::path_key(Path::new(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&raw),
        ));
        let Some(name) = safe_name(&name)? else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let sha = hash_reader(&mut entry, &mut expanded)?;
            out.push((name, Member::file(sha)));
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| crate::path_key(&t))
                .unwrap_or_default();
            out.push((name, Member::link(target)));
        }
        // Directories, hard links, devices and PAX headers carry no contents to compare.
    }
    Ok(out)
}

/// Strips the one directory every member is under, if there is one.
fn strip_top(members: Vec<(String, Member)>) -> BTreeMap<String, Member> {
    let top = members
        .first()
        .and_then(|(n, _)| n.split_once('/'))
        .map(|(t, _)| t.to_owned());
    let strip = top.filter(|t| {
        members.iter().all(|(n, _)| {
            n.strip_prefix(t.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
    });
    members
        .into_iter()
        .map(|(name, m)| match &strip {
            Some(t) => (name[t.len() + 1..].to_owned(), m),
            None => (name, m),
        })
        .collect()
}

/// Every difference between the installed tree (its scan) and the release:
/// files that differ, files the release does not have and files of the
/// release that are missing, except those the rules ignore or list as local
/// customisations.
pub fn compare(rules: &Rules, installed: &[Record], release: &BTreeMap<String, Member>) -> Vec<Change> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let change = |kind,
                  record: Option<&Record>,
                  path: &str,
                  severity,
                  attributes: Vec<&'static str>,
                  release_sha: Option<String>| Change {
        kind,
        root: 0,
        path: path.to_owned(),
        severity,
        attributes,
        facts: Vec::new(),
        findings: Vec::new(),
        before: release_sha.map(|sha| Record {
            root: 0,
            path: path.to_owned(),
            kind: FileKind::File,
            size: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            dev: 0,
            ino: 0,
            blake3: None,
            sha256: Some(sha),
            link_target: None,
            facts: None,
        }),
        after: record.cloned(),
        reason: None,
        only_if_findings: false,
    };
    for record in installed
        .iter()
        .filter(|r| matches!(r.kind, FileKind::File | FileKind::Symlink))
    {
        seen.insert(record.path.as_str());
        if rules.is_customisation(&record.path) {
            continue;
        }
        let severity = match rules.classify(&record.path) {
            Class::Watched(s) => s,
            Class::Upload if rules.is_upload_script(&record.path) => crate::Severity::Critical,
            Class::Upload | Class::Ignored => continue,
        };
        match release.get(&record.path) {
            None => out.push(change(
                ChangeKind::Added,
                Some(record),
                &record.path,
                severity,
                vec![],
                None,
            )),
            Some(member) => {
                let differs = member.kind != record.kind
                    || (record.kind == FileKind::File && member.sha256 != record.sha256)
                    || (record.kind == FileKind::Symlink && member.link_target != record.link_target);
                if differs {
                    let attribute = if member.kind != record.kind {
                        "type"
                    } else {
                        "content"
                    };
                    out.push(change(
                        ChangeKind::Changed,
                        Some(record),
                        &record.path,
                        severity,
                        vec![attribute],
                        member.sha256.clone(),
                    ));
                }
            }
        }
    }
    for (path, member) in release {
        if seen.contains(path.as_str()) || rules.is_customisation(path) {
            continue;
        }
        if let Class::Watched(severity) = rules.classify(path) {
            out.push(change(
                ChangeKind::Removed,
                None,
                path,
                severity,
                vec![],
                member.sha256.clone(),
            ));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Reads the archive, scans `dir` and compares them.
pub fn compare_release(
    rules: &Rules,
    dir: &Path,
    archive: &Path,
    threads: usize,
) -> Result<(Vec<Change>, crate::scan::Scan), ReleaseError> {
    let release = read_archive(archive)?;
    let roots: Vec<PathBuf> = vec![dir.to_path_buf()];
    let scan = crate::scan::scan(
        &roots,
        rules,
        &crate::scan::Previous::default(),
        crate::scan::Options { threads, full: true },
        &crate::scan::Progress::default(),
    );
    Ok((compare(rules, &scan.records, &release), scan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_climb_are_refused_and_the_top_directory_is_stripped() {
        assert!(matches!(
            safe_name("../etc/passwd"),
            Err(ReleaseError::UnsafeName(_))
        ));
        assert!(matches!(
            safe_name("/etc/passwd"),
            Err(ReleaseError::UnsafeName(_))
        ));
        assert_eq!(safe_name("./a/b/").expect("ok").as_deref(), Some("a/b"));
        let member = Member {
            kind: FileKind::File,
            sha256: Some("00".into()),
            link_target: None,
        };
        let stripped = strip_top(vec![
            ("eccube-4.3.0/index.php".into(), member.clone()),
            ("eccube-4.3.0/src/Kernel.php".into(), member.clone()),
        ]);
        assert!(stripped.contains_key("index.php") && stripped.contains_key("src/Kernel.php"));
        let kept = strip_top(vec![("a/x".into(), member.clone()), ("b/y".into(), member)]);
        assert!(kept.contains_key("a/x") && kept.contains_key("b/y"));
    }
}
