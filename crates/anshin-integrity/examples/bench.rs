//! The issue's figures: a 20,000-file, ~450 MiB shop-shaped tree; baseline,
//! a no-change check (warm cache), a full re-hash check, watch detection
//! latency, and AIDE recording SHA-256 on the same tree when `aide` is
//! installed. One JSON line per scenario.
//!
//! ```sh
//! cargo run --release -p anshin-integrity --features test-support --example bench [FILES] [--threads N]
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anshin_integrity::baseline::Payload;
use anshin_integrity::key::BaselineKey;
use anshin_integrity::rules::Rules;
use anshin_integrity::scan::{self, Previous, Progress};
use anshin_integrity::{diff, fixture, watch};
use serde_json::json;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn tree_size(root: &Path) -> (u64, u64) {
    let found = scan::scan(
        &[root.to_path_buf()],
        &Rules::parse("").expect("rules"),
        &Previous::default(),
        scan::Options::default(),
        &Progress::default(),
    );
    let files = found.records.iter().filter(|r| r.sha256.is_some());
    files.fold((0, 0), |(n, b), r| (n + 1, b + r.size))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let files: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let threads: usize = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| scan::Options::default().threads);
    let work = tempfile::Builder::new()
        .prefix("anshin-integrity-bench")
        .tempdir()
        .expect("temp dir");
    let root = work.path().join("shop");
    let started = Instant::now();
    fixture::shop_tree(&root, files.saturating_sub(60));
    let root = std::fs::canonicalize(&root).expect("root");
    let (count, bytes) = tree_size(&root);
    println!(
        "{}",
        json!({"scenario": "tree", "files": count, "bytes": bytes, "mib": bytes as f64 / 1048576.0, "seconds_to_build": started.elapsed().as_secs_f64()})
    );
    // Every file is hashed in every scenario: the EC rules' ignore list
    // only drops var/, which the generator keeps tiny.
    let rules = Rules::parse(fixture::EC_RULES).expect("rules");
    let roots = vec![root.clone()];
    let key = BaselineKey::from_seed([1; 32]);
    let out = work.path().join("baseline");

    // Baseline (walk, hash everything with BLAKE3 and SHA-256, sign, write)
    // and AIDE's --init on the same tree, alternated so that both see the
    // same load; CPU seconds beside wall time, as the machine is shared.
    let aide = Aide::new(work.path(), &root, threads);
    let (mut anshin_runs, mut aide_runs) = (Vec::new(), Vec::new());
    let mut payload = None;
    for _ in 0..3 {
        let run = Run::measure(Who::Myself, || {
            let found = scan::scan(
                &roots,
                &rules,
                &Previous::default(),
                scan::Options { threads, full: true },
                &Progress::default(),
            );
            let p = Payload {
                created_at: anshin_integrity::now_rfc3339(),
                host: "bench".into(),
                roots: vec![anshin_integrity::path_key(&root)],
                rules: rules.source().to_owned(),
                records: found.records,
                history: vec![],
            };
            std::fs::write(&out, p.encode(&key)).expect("write baseline");
            payload = Some(p);
        });
        anshin_runs.push(run);
        if let Some(aide) = &aide {
            aide_runs.push(Run::measure(Who::Children, || aide.init()));
        }
    }
    let payload = payload.expect("a baseline");
    let anshin = Summary::of(&anshin_runs, bytes);
    println!(
        "{}",
        json!({"scenario": "anshin_baseline", "threads": threads, "seconds_median": anshin.wall, "seconds_runs": anshin.walls,
               "cpu_seconds_median": anshin.cpu, "mib_per_s": anshin.mib_per_s, "mib_per_cpu_s": anshin.mib_per_cpu_s,
               "baseline_bytes": std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0)})
    );
    match &aide {
        Some(aide) => {
            let summary = Summary::of(&aide_runs, bytes);
            println!(
                "{}",
                json!({"scenario": "aide_init_sha256", "version": aide.version, "workers": threads, "seconds_median": summary.wall,
                       "seconds_runs": summary.walls, "cpu_seconds_median": summary.cpu, "mib_per_s": summary.mib_per_s,
                       "mib_per_cpu_s": summary.mib_per_cpu_s, "anshin_baseline_speedup": summary.wall / anshin.wall,
                       "anshin_baseline_cpu_ratio": summary.cpu / anshin.cpu})
            );
        }
        None => println!(
            "{}",
            json!({"scenario": "aide_init_sha256", "skipped": "aide is not installed (apt-get install aide)"})
        ),
    }

    // No-change check: verify the signature, walk, trust unchanged metadata, compare.
    for (name, full) in [
        ("anshin_check_no_change", false),
        ("anshin_check_full_rehash", true),
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let bytes_in = std::fs::read(&out).expect("read baseline");
            let verified = Payload::decode(&bytes_in, &key.verifying_key()).expect("verifies");
            let found = scan::scan(
                &roots,
                &rules,
                &Previous::new(&verified.records),
                scan::Options { threads, full },
                &Progress::default(),
            );
            let mut changes = diff::compare(&rules, &verified.records, &found);
            diff::attach_findings(&mut changes, &roots, &rules);
            assert!(
                changes.is_empty(),
                "the unchanged tree reported {} changes",
                changes.len()
            );
            times.push(t.elapsed().as_secs_f64());
        }
        println!(
            "{}",
            json!({"scenario": name, "threads": threads, "seconds_median": median(times.clone()), "seconds_runs": times})
        );
    }

    watch_latency(&roots, &rules, &payload, threads);
}

/// Whose CPU time a run counts: this process's, or its waited-for children's.
#[derive(Clone, Copy)]
enum Who {
    Myself,
    Children,
}

/// CPU seconds (user + system) from /proc/self/stat, in clock ticks of
/// 1/100 s (Linux's USER_HZ): fields 14-15 are this process's, 16-17 its
/// waited-for children's.
fn cpu_seconds(who: Who) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name may hold spaces: fields are counted after its ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // `after` starts at field 3 (state), so field N is at index N - 3.
    let (a, b) = match who {
        Who::Myself => (fields[11], fields[12]),
        Who::Children => (fields[13], fields[14]),
    };
    (a + b) / 100.0
}

/// Wall and CPU seconds of one run.
struct Run {
    wall: f64,
    cpu: f64,
}

impl Run {
    fn measure(who: Who, work: impl FnOnce()) -> Self {
        let (t, cpu) = (Instant::now(), cpu_seconds(who));
        work();
        Self {
            wall: t.elapsed().as_secs_f64(),
            cpu: cpu_seconds(who) - cpu,
        }
    }
}

/// Medians of runs over a tree of `bytes`.
struct Summary {
    wall: f64,
    walls: Vec<f64>,
    cpu: f64,
    mib_per_s: f64,
    mib_per_cpu_s: f64,
}

impl Summary {
    fn of(runs: &[Run], bytes: u64) -> Self {
        let walls: Vec<f64> = runs.iter().map(|r| r.wall).collect();
        let wall = median(walls.clone());
        let cpu = median(runs.iter().map(|r| r.cpu).collect());
        let mib = bytes as f64 / 1048576.0;
        Self {
            wall,
            walls,
            cpu,
            mib_per_s: mib / wall,
            mib_per_cpu_s: mib / cpu,
        }
    }
}

/// Time from a write to the watcher's report of it, over ten writes.
fn watch_latency(roots: &[PathBuf], rules: &Rules, payload: &Payload, threads: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(Instant, Vec<String>)>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let flag = stop.clone();
        s.spawn(move || {
            let options = watch::Options {
                threads,
                ..watch::Options::default()
            };
            watch::run(
                roots,
                rules,
                &payload.records,
                options,
                &flag,
                |report| match report {
                    watch::Report::Changes(changes) => {
                        let _ = tx.send((Instant::now(), changes.iter().map(|c| c.path.clone()).collect()));
                    }
                    watch::Report::Rescanned("start") => {
                        let _ = ready_tx.send(());
                    }
                    _ => {}
                },
            )
            .expect("watch");
        });
        ready_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("watch started");
        let mut latencies = Vec::new();
        for i in 0..10 {
            let rel = format!("src/Eccube/Controller/Bench{i}.php");
            let written = Instant::now();
            std::fs::write(roots[0].join(&rel), b"<?php // a change\n").expect("write");
            loop {
                let (at, paths) = rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("the change was reported");
                if paths.contains(&rel) {
                    latencies.push(at.duration_since(written).as_secs_f64());
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::Relaxed);
        let max = latencies.iter().copied().fold(0.0, f64::max);
        println!(
            "{}",
            json!({"scenario": "anshin_watch_latency", "seconds_median": median(latencies.clone()), "seconds_max": max, "seconds_runs": latencies})
        );
    });
}

/// AIDE `--init` with the same attributes and SHA-256 (when installed).
struct Aide {
    version: String,
    config: PathBuf,
    db: PathBuf,
}

impl Aide {
    fn new(work: &Path, root: &Path, threads: usize) -> Option<Self> {
        let version = Command::new("aide").arg("--version").output().ok()?;
        let version = String::from_utf8_lossy(&version.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&version.stderr).lines())
            .find(|l| l.starts_with("AIDE"))
            .unwrap_or("")
            .trim()
            .to_owned();
        let db = work.join("aide.db");
        let config = work.join("aide.conf");
        std::fs::write(
            &config,
            format!(
                "database_out=file:{}\ngzip_dbout=no\nnum_workers={threads}\nreport_url=stdout\nShop = p+i+n+u+g+s+m+c+ftype+sha256\n{} Shop\n!{}/var\n",
                db.display(),
                root.display(),
                root.display()
            ),
        )
        .expect("aide config");
        Some(Self { version, config, db })
    }

    fn init(&self) {
        let _ = std::fs::remove_file(&self.db);
        let status = Command::new("aide")
            .arg("--init")
            .arg("--config")
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run aide");
        assert!(status.success(), "aide exited with {status}");
    }
}
