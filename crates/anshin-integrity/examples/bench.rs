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

    // Baseline: walk, hash everything (BLAKE3 and SHA-256), sign, write.
    let mut times = Vec::new();
    let mut payload = None;
    for _ in 0..3 {
        let t = Instant::now();
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
        times.push(t.elapsed().as_secs_f64());
        payload = Some(p);
    }
    let payload = payload.expect("a baseline");
    let baseline_s = median(times.clone());
    println!(
        "{}",
        json!({"scenario": "anshin_baseline", "threads": threads, "seconds_median": baseline_s, "seconds_runs": times,
               "mib_per_s": bytes as f64 / 1048576.0 / baseline_s, "baseline_bytes": std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0)})
    );

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
    aide(work.path(), &root, threads, baseline_s);
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

/// AIDE `--init` with the same attributes and SHA-256, when installed.
fn aide(work: &Path, root: &Path, threads: usize, anshin_baseline_s: f64) {
    let Ok(version) = Command::new("aide").arg("--version").output() else {
        println!(
            "{}",
            json!({"scenario": "aide_init_sha256", "skipped": "aide is not installed (apt-get install aide)"})
        );
        return;
    };
    let version_text = String::from_utf8_lossy(&version.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
        + String::from_utf8_lossy(&version.stderr)
            .lines()
            .next()
            .unwrap_or("");
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
    let mut times = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_file(&db);
        let t = Instant::now();
        let status = Command::new("aide")
            .arg("--init")
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run aide");
        times.push(t.elapsed().as_secs_f64());
        if !status.success() {
            println!(
                "{}",
                json!({"scenario": "aide_init_sha256", "error": format!("aide exited with {status}")})
            );
            return;
        }
    }
    let aide_s = median(times.clone());
    println!(
        "{}",
        json!({"scenario": "aide_init_sha256", "version": version_text.trim(), "workers": threads, "seconds_median": aide_s,
               "seconds_runs": times, "anshin_baseline_speedup": aide_s / anshin_baseline_s})
    );
}
