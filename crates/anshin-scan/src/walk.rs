//! Inputs: files, directories (walked in parallel) and standard input.
//!
//! The walk includes hidden and git-ignored files (a forgotten export is
//! exactly what discovery is for), never follows symbolic links (reported
//! `skipped`, so a link cannot lead the scan out of the tree it was given),
//! and applies include/exclude globs to the path relative to the root.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::{WalkBuilder, WalkState};

use crate::{Discovery, ObjectKind, ObjectReport, ScanError, display_path};

/// Something to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file or directory.
    Path(PathBuf),
    /// Standard input, reported as `-`.
    Stdin,
}

impl Input {
    /// `-` is standard input, anything else a path.
    pub fn parse(arg: &str) -> Self {
        if arg == "-" {
            Self::Stdin
        } else {
            Self::Path(PathBuf::from(arg))
        }
    }
}

/// How to walk directories.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WalkOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Only files matching one of these globs (matched against the path below
    /// the root, `*` crossing `/`), or every file when empty.
    pub include: Vec<String>,
    /// Files and directories matching one of these are left out.
    pub exclude: Vec<String>,
}

impl Default for WalkOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl WalkOptions {
    /// Sets [`WalkOptions::threads`].
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Sets [`WalkOptions::include`].
    pub fn include(mut self, globs: Vec<String>) -> Self {
        self.include = globs;
        self
    }

    /// Sets [`WalkOptions::exclude`].
    pub fn exclude(mut self, globs: Vec<String>) -> Self {
        self.exclude = globs;
        self
    }
}

fn globset(globs: &[String]) -> Result<Option<GlobSet>, ScanError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|e| ScanError::Glob {
            glob: g.clone(),
            message: e.kind().to_string(),
        })?;
        builder.add(glob);
    }
    builder.build().map(Some).map_err(|e| ScanError::Glob {
        glob: globs.join(" "),
        message: e.kind().to_string(),
    })
}

struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filter {
    /// Whether a path below `root` is wanted. Directories are only excluded,
    /// never filtered by the include globs (their files may match).
    fn wants(&self, root: &Path, path: &Path, is_dir: bool) -> bool {
        let rel = path.strip_prefix(root).unwrap_or(path);
        if rel.as_os_str().is_empty() {
            return true;
        }
        if let Some(ex) = &self.exclude
            && (ex.is_match(rel) || rel.file_name().is_some_and(|n| ex.is_match(n)))
        {
            return false;
        }
        if is_dir {
            return true;
        }
        match &self.include {
            None => true,
            Some(inc) => inc.is_match(rel) || rel.file_name().is_some_and(|n| inc.is_match(n)),
        }
    }
}

pub(crate) fn run(
    discovery: &Discovery,
    inputs: &[Input],
    options: &WalkOptions,
    emit: impl FnMut(ObjectReport) + Send,
) -> Result<(), ScanError> {
    let filter = Filter {
        include: globset(&options.include)?,
        exclude: globset(&options.exclude)?,
    };
    let threads = options.threads.max(1);
    // Each report is written by the thread that made it, before it reads
    // on: reports never queue up, so what a thread holds stays within its
    // input's memory budget (`Limits::max_memory`) however slow the writer.
    let emit = Mutex::new(emit);
    let send = |report: ObjectReport| (emit.lock().unwrap_or_else(PoisonError::into_inner))(report);
    for input in inputs {
        match input {
            Input::Stdin => {
                let stdin = std::io::stdin();
                let mut lock = stdin.lock();
                let reader: &mut dyn Read = &mut lock;
                discovery.scan_reader("-", reader, &mut |r| send(r));
            }
            Input::Path(root) => walk_root(discovery, root, &filter, threads, &send),
        }
    }
    Ok(())
}

fn walk_root(
    discovery: &Discovery,
    root: &Path,
    filter: &Filter,
    threads: usize,
    send: &(dyn Fn(ObjectReport) + Sync),
) {
    match std::fs::metadata(root) {
        Err(e) => {
            send(ObjectReport::skipped(
                display_path(root),
                ObjectKind::Other,
                format!("cannot read: {e}"),
            ));
            return;
        }
        Ok(meta) if meta.is_file() => {
            // A file named on the command line is scanned whatever the globs say.
            discovery.scan_file(root, &display_path(root), &mut |r| send(r));
            return;
        }
        Ok(_) => {}
    }
    let walker = WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .threads(threads)
        .build_parallel();
    walker.run(|| {
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = match &e {
                        ignore::Error::WithPath { path, .. } => display_path(path),
                        _ => display_path(root),
                    };
                    send(ObjectReport::skipped(
                        path,
                        ObjectKind::Other,
                        format!("cannot read: {}", io_message(&e)),
                    ));
                    return WalkState::Continue;
                }
            };
            let Some(file_type) = entry.file_type() else {
                return WalkState::Continue;
            };
            let path = entry.path();
            if !filter.wants(root, path, file_type.is_dir()) {
                return if file_type.is_dir() {
                    WalkState::Skip
                } else {
                    WalkState::Continue
                };
            }
            if file_type.is_dir() {
                return WalkState::Continue;
            }
            if file_type.is_symlink() {
                send(ObjectReport::skipped(
                    display_path(path),
                    ObjectKind::Other,
                    "symbolic link: not followed",
                ));
                return WalkState::Continue;
            }
            if !file_type.is_file() {
                send(ObjectReport::skipped(
                    display_path(path),
                    ObjectKind::Other,
                    "not a regular file",
                ));
                return WalkState::Continue;
            }
            discovery.scan_file(path, &display_path(path), &mut |r| send(r));
            WalkState::Continue
        })
    });
}

/// The I/O part of a walk error, without the path (printed separately).
fn io_message(e: &ignore::Error) -> String {
    match e {
        ignore::Error::WithPath { err, .. } => io_message(err),
        ignore::Error::WithDepth { err, .. } => io_message(err),
        ignore::Error::WithLineNumber { err, .. } => io_message(err),
        ignore::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_include_and_exclude() {
        let f = Filter {
            include: globset(&["*.csv".into()]).expect("glob"),
            exclude: globset(&["secret/**".into(), "*.bak".into()]).expect("glob"),
        };
        let root = Path::new("/r");
        assert!(f.wants(root, Path::new("/r/a/b/orders.csv"), false));
        assert!(!f.wants(root, Path::new("/r/a/notes.txt"), false));
        assert!(f.wants(root, Path::new("/r/a"), true));
        assert!(!f.wants(root, Path::new("/r/secret/x.csv"), false));
        assert!(!f.wants(root, Path::new("/r/old.csv.bak"), false));
    }

    #[test]
    fn bad_globs_are_errors() {
        assert!(matches!(globset(&["a[".into()]), Err(ScanError::Glob { .. })));
    }

    #[test]
    fn dash_is_stdin() {
        assert_eq!(Input::parse("-"), Input::Stdin);
        assert_eq!(Input::parse("x"), Input::Path("x".into()));
    }
}
