//! `watch`: inotify events re-check the paths they name within a fraction of
//! a second; a full (incremental) rescan runs at start, on a schedule, when
//! the kernel's event queue overflowed, when a directory appears or goes
//! (inotify names only the directory, not what moved with it), and when the
//! watches could not all be placed (`fs.inotify.max_user_watches`).
//!
//! Each situation is reported once: a change already reported in the same
//! state is not reported again by later events or rescans, and a path that
//! goes back to its recorded state is forgotten, so a new change to it is
//! reported again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::diff::{self, Change};
use crate::record::{FileKind, Record};
use crate::rules::{Class, Rules};
use crate::scan::{self, Previous, Progress};

/// How to watch.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Time between full rescans.
    pub rescan_every: Duration,
    /// How long to wait for a burst of events to end before checking.
    pub settle: Duration,
    /// Walk threads for rescans.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rescan_every: Duration::from_secs(3600),
            settle: Duration::from_millis(100),
            threads: scan::Options::default().threads,
        }
    }
}

/// What the watcher tells its caller.
#[derive(Debug)]
pub enum Report {
    /// New changes (signatures already run on added and changed files).
    Changes(Vec<Change>),
    /// A full rescan finished; why it ran.
    Rescanned(&'static str),
    /// Something limits the watch (in English; the caller may translate).
    Warning(String),
}

/// The state of an entry a change was reported in.
fn state_of(change: &Change) -> String {
    match &change.after {
        Some(r) => format!(
            "{:?}|{}|{}|{}|{}|{}|{:?}",
            change.kind,
            r.kind.as_str(),
            r.sha256.as_deref().unwrap_or(""),
            r.mode,
            r.uid,
            r.gid,
            r.link_target
        ),
        None => format!("{:?}", change.kind),
    }
}

struct State<'a> {
    roots: &'a [PathBuf],
    rules: &'a Rules,
    baseline: Previous<'a>,
    records: &'a [Record],
    reported: HashMap<(u16, String), String>,
    threads: usize,
}

impl State<'_> {
    /// Keeps the changes not yet reported in this state.
    fn fresh(&mut self, changes: Vec<Change>, touched: &[(u16, String)]) -> Vec<Change> {
        for key in touched {
            if !changes
                .iter()
                .any(|c| (c.root, c.path.as_str()) == (key.0, key.1.as_str()))
            {
                self.reported.remove(key);
            }
        }
        changes
            .into_iter()
            .filter(|c| {
                let state = state_of(c);
                let key = (c.root, c.path.clone());
                if self.reported.get(&key) == Some(&state) {
                    return false;
                }
                self.reported.insert(key, state);
                true
            })
            .collect()
    }

    fn full(&mut self) -> Vec<Change> {
        let found = scan::scan(
            self.roots,
            self.rules,
            &self.baseline,
            scan::Options {
                threads: self.threads,
                full: false,
            },
            &Progress::default(),
        );
        let mut changes = diff::compare(self.rules, self.records, &found);
        diff::attach_findings(&mut changes, self.roots, self.rules);
        let current: Vec<(u16, String)> = changes.iter().map(|c| (c.root, c.path.clone())).collect();
        // Everything not changed now is back to its recorded state.
        self.reported.retain(|k, _| current.contains(k));
        self.fresh(changes, &[])
    }

    /// Re-checks the paths events named; `None` when a full rescan is needed.
    fn paths(&mut self, paths: &[PathBuf]) -> Option<Vec<Change>> {
        let mut changes = Vec::new();
        let mut touched = Vec::new();
        for path in paths {
            let Some((root, rel)) = self.locate(path) else {
                continue;
            };
            if rel.is_empty() || self.rules.classify(&rel) == Class::Ignored {
                continue;
            }
            let before = self.baseline.get(root, &rel);
            let now = scan::record_one(
                root,
                &self.roots[usize::from(root)],
                &rel,
                &self.baseline,
                &Progress::default(),
            );
            let (after, problem) = now.unwrap_or((None, None));
            let was_dir = before.is_some_and(|b| b.kind == FileKind::Dir);
            let is_dir = after.as_ref().is_some_and(|a| a.kind == FileKind::Dir);
            if was_dir != is_dir || (is_dir && before.is_none()) {
                return None;
            }
            if let Some(change) =
                diff::compare_one(self.rules, root, &rel, before, after.as_ref(), problem.as_ref())
            {
                changes.push(change);
            }
            touched.push((root, rel));
        }
        diff::attach_findings(&mut changes, self.roots, self.rules);
        Some(self.fresh(changes, &touched))
    }

    fn locate(&self, path: &Path) -> Option<(u16, String)> {
        self.roots.iter().enumerate().find_map(|(i, root)| {
            let rel = path.strip_prefix(root).ok()?;
            Some((u16::try_from(i).ok()?, crate::path_key(rel)))
        })
    }
}

/// Watches `roots` against `records` (the baseline's) until `stop` is set.
pub fn run(
    roots: &[PathBuf],
    rules: &Rules,
    records: &[Record],
    options: Options,
    stop: &AtomicBool,
    mut report: impl FnMut(Report),
) -> Result<(), notify::Error> {
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })?;
    for root in roots {
        if let Err(err) = watcher.watch(root, RecursiveMode::Recursive) {
            report(Report::Warning(format!(
                "cannot watch all of {} ({err}); changes there are found by the scheduled rescans only \
                 (raise fs.inotify.max_user_watches)",
                root.display()
            )));
        }
    }
    let mut state = State {
        roots,
        rules,
        baseline: Previous::new(records),
        records,
        reported: HashMap::new(),
        threads: options.threads,
    };
    let changes = state.full();
    if !changes.is_empty() {
        report(Report::Changes(changes));
    }
    report(Report::Rescanned("start"));
    let mut next_rescan = Instant::now() + options.rescan_every;
    while !stop.load(Ordering::Relaxed) {
        let mut pending: Vec<PathBuf> = Vec::new();
        let mut rescan: Option<&'static str> = None;
        let mut take = |event: notify::Result<notify::Event>, pending: &mut Vec<PathBuf>| match event {
            Ok(event) if event.need_rescan() => rescan = Some("event queue overflow"),
            Ok(event) => {
                let relevant =
                    !matches!(event.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write));
                if relevant {
                    pending.extend(event.paths);
                }
            }
            Err(_) => rescan = Some("watcher error"),
        };
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => {
                take(event, &mut pending);
                // Gather the rest of the burst (a deploy writes many files).
                let burst_end = Instant::now() + Duration::from_secs(1);
                while let Ok(event) = rx.recv_timeout(options.settle) {
                    take(event, &mut pending);
                    if Instant::now() > burst_end {
                        break;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_rescan {
            rescan = rescan.or(Some("schedule"));
        }
        pending.sort();
        pending.dedup();
        let changes = match rescan {
            None if pending.is_empty() => continue,
            None => match state.paths(&pending) {
                Some(changes) => changes,
                None => {
                    rescan = Some("directory created or removed");
                    state.full()
                }
            },
            Some(_) => state.full(),
        };
        if !changes.is_empty() {
            report(Report::Changes(changes));
        }
        if let Some(reason) = rescan {
            next_rescan = Instant::now() + options.rescan_every;
            report(Report::Rescanned(reason));
        }
    }
    Ok(())
}
