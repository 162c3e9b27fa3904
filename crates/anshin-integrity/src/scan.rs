//! The parallel walk: every entry under the roots, recorded and hashed.
//!
//! Symbolic links are recorded with their target and never followed, so a
//! link cannot take the walk out of its root. Fifos, sockets and devices are
//! recorded by type and never opened. Regular files are opened with
//! `O_NOFOLLOW | O_NONBLOCK` (a file swapped for a link or a fifo between the
//! walk and the open is not followed and cannot block), checked to be the
//! inode the walk saw, read once into BLAKE3 and SHA-256, and stat'ed again:
//! one whose size or times moved meanwhile is reported `changed-during-scan`.
//!
//! Given the previous records, a file whose inode, size, mtime and ctime are
//! unchanged keeps its hashes without being read (see [`Record::same_stat`]);
//! that is what makes a no-change check of a whole shop take well under a
//! second. `full` reads everything regardless.

use std::collections::HashMap;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use ignore::{WalkBuilder, WalkState};
use sha2::Digest as _;

use crate::facts::{self, PageFacts};
use crate::record::{FileKind, Record};
use crate::rules::{Class, Rules};

/// Why an entry could not be recorded as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// It could not be read (permissions, I/O error, vanished); the reason.
    Unreadable(String),
    /// Its size or times changed while it was read: its hashes are not trusted.
    ChangedDuringScan,
}

/// An entry that could not be recorded as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Root index.
    pub root: u16,
    /// Path below the root.
    pub path: String,
    /// What went wrong.
    pub kind: ProblemKind,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every recorded entry, sorted by root and path.
    pub records: Vec<Record>,
    /// Entries that could not be recorded as they are, sorted.
    pub problems: Vec<Problem>,
}

/// Counters a progress display reads while a walk runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Entries recorded.
    pub entries: AtomicU64,
    /// Bytes read and hashed.
    pub bytes_hashed: AtomicU64,
    /// Files whose hashes were kept because their metadata was unchanged.
    pub trusted: AtomicU64,
}

/// Earlier records, by root and path, for an incremental walk.
#[derive(Debug, Default)]
pub struct Previous<'a> {
    map: HashMap<(u16, &'a str), &'a Record>,
}

impl<'a> Previous<'a> {
    /// Indexes records.
    pub fn new(records: &'a [Record]) -> Self {
        Self {
            map: records.iter().map(|r| ((r.root, r.path.as_str()), r)).collect(),
        }
    }

    /// The earlier record of a path.
    pub fn get(&self, root: u16, path: &str) -> Option<&'a Record> {
        self.map.get(&(root, path)).copied()
    }
}

/// How to walk.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Read every file even when its metadata is unchanged.
    pub full: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            full: false,
        }
    }
}

enum Item {
    Record(Record),
    Problem(Problem),
    Both(Record, Problem),
}

/// Walks `roots` (directories) in parallel.
pub fn scan(
    roots: &[PathBuf],
    rules: &Rules,
    previous: &Previous<'_>,
    options: Options,
    progress: &Progress,
) -> Scan {
    let (tx, rx) = mpsc::channel::<Item>();
    for (index, root) in roots.iter().enumerate() {
        let root_index = u16::try_from(index).unwrap_or(u16::MAX);
        let walker = WalkBuilder::new(root)
            .standard_filters(false)
            .follow_links(false)
            .threads(options.threads.max(1))
            .build_parallel();
        walker.run(|| {
            let tx = tx.clone();
            let mut buffer = vec![0u8; 256 * 1024];
            Box::new(move |entry| {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(err) => {
                        let path = err_path(&err, root).unwrap_or_default();
                        let _ = tx.send(Item::Problem(Problem {
                            root: root_index,
                            path,
                            kind: ProblemKind::Unreadable(short_error(&err.to_string())),
                        }));
                        return WalkState::Continue;
                    }
                };
                let Some(rel) = relative(root, entry.path()) else {
                    return WalkState::Continue;
                };
                if rel.is_empty() {
                    return WalkState::Continue;
                }
                let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                if rules.prune(&rel) {
                    return if is_dir {
                        WalkState::Skip
                    } else {
                        WalkState::Continue
                    };
                }
                if rules.classify(&rel) == Class::Ignored && !is_dir {
                    return WalkState::Continue;
                }
                let item = record_entry(
                    root_index,
                    entry.path(),
                    rel,
                    previous,
                    options.full,
                    progress,
                    &mut buffer,
                );
                let _ = tx.send(item);
                WalkState::Continue
            })
        });
    }
    drop(tx);
    let mut out = Scan::default();
    for item in rx {
        match item {
            Item::Record(r) => out.records.push(r),
            Item::Problem(p) => out.problems.push(p),
            Item::Both(r, p) => {
                out.records.push(r);
                out.problems.push(p);
            }
        }
    }
    out.records
        .sort_by(|a, b| (a.root, &a.path).cmp(&(b.root, &b.path)));
    out.problems
        .sort_by(|a, b| (a.root, &a.path).cmp(&(b.root, &b.path)));
    out
}

/// Records one path below a root (for `watch`, which re-records what an
/// event names). `None` when the path no longer exists.
pub fn record_one(
    root_index: u16,
    root: &Path,
    rel: &str,
    previous: &Previous<'_>,
    progress: &Progress,
) -> Option<(Option<Record>, Option<Problem>)> {
    let path = root.join(rel);
    if std::fs::symlink_metadata(&path).is_err() {
        return None;
    }
    let mut buffer = vec![0u8; 256 * 1024];
    Some(
        match record_entry(
            root_index,
            &path,
            rel.to_owned(),
            previous,
            false,
            progress,
            &mut buffer,
        ) {
            Item::Record(r) => (Some(r), None),
            Item::Problem(p) => (None, Some(p)),
            Item::Both(r, p) => (Some(r), Some(p)),
        },
    )
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    Some(crate::path_key(rel))
}

fn err_path(err: &ignore::Error, root: &Path) -> Option<String> {
    match err {
        ignore::Error::WithPath { path, .. } => relative(root, path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            err_path(err, root)
        }
        _ => None,
    }
}

/// An error message without the path (paths are reported separately).
fn short_error(text: &str) -> String {
    text.rsplit(": ")
        .next()
        .unwrap_or(text)
        .chars()
        .take(200)
        .collect()
}

fn base_record(root: u16, rel: String, meta: &std::fs::Metadata) -> Record {
    Record {
        root,
        path: rel,
        kind: FileKind::of(meta.file_type()),
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        dev: meta.dev(),
        ino: meta.ino(),
        blake3: None,
        sha256: None,
        link_target: None,
        facts: None,
    }
}

fn record_entry(
    root: u16,
    path: &Path,
    rel: String,
    previous: &Previous<'_>,
    full: bool,
    progress: &Progress,
    buffer: &mut [u8],
) -> Item {
    let unreadable = |rel: String, e: &std::io::Error| {
        Item::Problem(Problem {
            root,
            path: rel,
            kind: ProblemKind::Unreadable(short_error(&e.to_string())),
        })
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return unreadable(rel, &e),
    };
    let mut record = base_record(root, rel, &meta);
    progress.entries.fetch_add(1, Ordering::Relaxed);
    match record.kind {
        FileKind::Symlink => match std::fs::read_link(path) {
            Ok(target) => record.link_target = Some(crate::path_key(&target)),
            Err(e) => return unreadable(record.path, &e),
        },
        FileKind::File => {
            if !full
                && let Some(before) = previous.get(root, &record.path)
                && before.same_stat(&record)
                && before.sha256.is_some()
            {
                record.blake3.clone_from(&before.blake3);
                record.sha256.clone_from(&before.sha256);
                record.facts.clone_from(&before.facts);
                progress.trusted.fetch_add(1, Ordering::Relaxed);
                return Item::Record(record);
            }
            return hash_file(path, record, progress, buffer);
        }
        _ => {}
    }
    Item::Record(record)
}

fn hash_file(path: &Path, mut record: Record, progress: &Progress, buffer: &mut [u8]) -> Item {
    let root = record.root;
    let problem = |record: Record, kind: ProblemKind| {
        Item::Problem(Problem {
            root,
            path: record.path,
            kind,
        })
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) => return problem(record, ProblemKind::Unreadable(short_error(&e.to_string()))),
    };
    match file.metadata() {
        Ok(m) if m.is_file() && m.ino() == record.ino && m.dev() == record.dev => {}
        Ok(_) => return problem(record, ProblemKind::ChangedDuringScan),
        Err(e) => return problem(record, ProblemKind::Unreadable(short_error(&e.to_string()))),
    }
    let keep = facts::applies_to(&record.path) && record.size <= facts::MAX_FACTS_BYTES;
    let mut content = Vec::new();
    let mut b3 = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut total = 0u64;
    loop {
        match file.read(buffer) {
            Ok(0) => break,
            Ok(n) => {
                b3.update(&buffer[..n]);
                sha.update(&buffer[..n]);
                total += n as u64;
                if keep && content.len() as u64 <= facts::MAX_FACTS_BYTES {
                    content.extend_from_slice(&buffer[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return problem(record, ProblemKind::Unreadable(short_error(&e.to_string()))),
        }
    }
    progress.bytes_hashed.fetch_add(total, Ordering::Relaxed);
    record.blake3 = Some(crate::hex(b3.finalize().as_bytes()));
    record.sha256 = Some(crate::hex(&sha.finalize()));
    if keep {
        record.facts = PageFacts::extract(&content);
    }
    let after = file.metadata();
    let moved = match &after {
        Ok(m) => {
            let now = base_record(record.root, String::new(), m);
            total != record.size
                || now.size != record.size
                || now.mtime_ns != record.mtime_ns
                || now.ctime_ns != record.ctime_ns
        }
        Err(_) => true,
    };
    if moved {
        let problem = Problem {
            root: record.root,
            path: record.path.clone(),
            kind: ProblemKind::ChangedDuringScan,
        };
        return Item::Both(record, problem);
    }
    Item::Record(record)
}
