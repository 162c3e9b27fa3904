//! The breaches' tamperings, planted in a generated EC-site tree and found
//! through the library: baseline, check, signatures, approve.

use std::path::{Path, PathBuf};

use crate::alert::{Alert, Context};
use crate::baseline::Payload;
use crate::diff::{self, Change};
use crate::fixture::{self, EC_RULES};
use crate::key::BaselineKey;
use crate::rules::Rules;
use crate::scan::{self, Previous, Progress};
use crate::{Severity, signatures};

fn take(roots: &[PathBuf], rules: &Rules, previous: &[crate::record::Record]) -> scan::Scan {
    scan::scan(
        roots,
        rules,
        &Previous::new(previous),
        scan::Options::default(),
        &Progress::default(),
    )
}

fn check(roots: &[PathBuf], rules: &Rules, baseline: &Payload) -> Vec<Alert> {
    let now = take(roots, rules, &baseline.records);
    let mut changes = diff::compare(rules, &baseline.records, &now);
    diff::attach_findings(&mut changes, roots, rules);
    let ctx = Context {
        host: "test".into(),
        roots: baseline.roots.clone(),
        detected_at: crate::now_rfc3339(),
    };
    changes
        .iter()
        .flat_map(|c| Alert::from_change(c, &ctx, "file"))
        .collect()
}

fn baseline_of(roots: &[PathBuf], rules: &Rules) -> Payload {
    let found = take(roots, rules, &[]);
    assert!(found.problems.is_empty(), "{:?}", found.problems);
    Payload {
        created_at: crate::now_rfc3339(),
        host: "test".into(),
        roots: roots.iter().map(|r| crate::path_key(r)).collect(),
        rules: rules.source().to_owned(),
        records: found.records,
        history: vec![],
    }
}

fn shop() -> (tempfile::TempDir, Vec<PathBuf>, Rules) {
    let dir = tempfile::tempdir().expect("dir");
    fixture::shop_tree(dir.path(), 200);
    let roots = vec![dir.path().to_path_buf()];
    (dir, roots, Rules::parse(EC_RULES).expect("rules"))
}

fn alerts_for<'a>(alerts: &'a [Alert], path: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.path == path).collect()
}

fn all_signature_findings(root: &Path, rules: &Rules) -> Vec<(String, String)> {
    let found = take(&[root.to_path_buf()], rules, &[]);
    let mut out = Vec::new();
    for record in found
        .records
        .iter()
        .filter(|r| r.kind == crate::record::FileKind::File)
    {
        if let Ok(Some((_, findings))) = signatures::scan_file(&root.join(&record.path), &record.path, rules)
        {
            out.extend(
                findings
                    .into_iter()
                    .map(|f| (record.path.clone(), f.rule.into_owned())),
            );
        }
    }
    out
}

#[test]
fn the_clean_tree_has_no_findings_and_no_changes() {
    let (dir, roots, rules) = shop();
    assert_eq!(all_signature_findings(dir.path(), &rules), vec![]);
    // Also with the built-in rules (no allow-lists): the only hits are the
    // real payment template's card inputs, which the shop's rules allow.
    let builtin = all_signature_findings(dir.path(), &Rules::builtin());
    assert!(
        builtin
            .iter()
            .all(|(p, r)| p == "app/template/default/Shopping/payment.twig"
                && r == "skimmer.card-input-unexpected"),
        "{builtin:?}"
    );
    let baseline = baseline_of(&roots, &rules);
    assert_eq!(check(&roots, &rules, &baseline), vec![]);
    // Caches and logs are not recorded at all.
    assert!(baseline.records.iter().all(|r| !r.path.starts_with("var/")));
}

#[test]
fn every_planted_tampering_is_detected_with_its_severity() {
    let (dir, roots, rules) = shop();
    let baseline = baseline_of(&roots, &rules);
    let planted = fixture::plant_all(dir.path());
    let alerts = check(&roots, &rules, &baseline);
    for plant in &planted {
        let found = alerts_for(&alerts, plant.path);
        for kind in plant.kinds {
            assert!(
                found
                    .iter()
                    .any(|a| a.kind == *kind && a.severity == Severity::Critical),
                "{}: no critical {kind} alert in {found:#?}",
                plant.name
            );
        }
        for rule in plant.rules {
            assert!(
                found.iter().any(|a| a.rule.as_deref() == Some(*rule)),
                "{}: rule {rule} did not fire: {found:#?}",
                plant.name
            );
        }
    }
    // Nothing else was reported: every alert belongs to a planted file.
    for alert in &alerts {
        assert!(
            planted.iter().any(|p| p.path == alert.path),
            "unexpected alert {alert:#?}"
        );
    }
}

#[test]
fn iketei_online_2025_payment_app_tampering_is_detected() {
    let (dir, roots, rules) = shop();
    let baseline = baseline_of(&roots, &rules);
    let path = dir.path().join("app/template/default/Shopping/payment.twig");
    let text = std::fs::read_to_string(&path).expect("read");
    // The same length, one byte different, times put back: the content hash
    // (read because ctime moved) still tells.
    let before = std::fs::metadata(&path).expect("meta");
    std::fs::write(&path, text.replacen("お支払い", "お支払ぃ", 1)).expect("write");
    let times = std::fs::FileTimes::new().set_modified(before.modified().expect("mtime"));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open")
        .set_times(times)
        .expect("times");
    let alerts = check(&roots, &rules, &baseline);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].kind, "file_changed");
    assert_eq!(alerts[0].severity, Severity::Critical);
    assert_eq!(alerts[0].attributes, vec!["content"]);
}

#[test]
fn ec_cube_fake_payment_form_is_detected() {
    let dir = tempfile::tempdir().expect("dir");
    fixture::shop_tree(dir.path(), 0);
    fixture::plant_all(dir.path());
    let rules = Rules::parse(EC_RULES).expect("rules");
    let found = all_signature_findings(dir.path(), &rules);
    let confirm: Vec<_> = found
        .iter()
        .filter(|(p, _)| p == "app/template/default/Shopping/confirm.twig")
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(
        confirm,
        vec!["skimmer.fake-payment-form", "skimmer.card-input-unexpected"]
    );
}

#[test]
fn a_clean_deploy_approved_raises_nothing_and_is_recorded() {
    let (dir, roots, rules) = shop();
    let key = BaselineKey::from_seed([3; 32]);
    let first = baseline_of(&roots, &rules);
    fixture::clean_deploy(dir.path());
    let alerts = check(&roots, &rules, &first);
    // The deploy is visible before approval (a new controller, a changed template)…
    assert!(
        alerts
            .iter()
            .any(|a| a.path == "src/Eccube/Controller/ReviewController.php" && a.kind == "file_added")
    );
    // …and the replaced product image in uploads is not.
    assert!(
        alerts.iter().all(|a| !a.path.starts_with("html/upload/")),
        "{alerts:#?}"
    );
    let mut approved = baseline_of(&roots, &rules);
    approved.history = first.history.clone();
    approved.history.push(crate::baseline::HistoryEntry {
        at: crate::now_rfc3339(),
        action: "approve".into(),
        by: "tanaka".into(),
        reason: "release 4.3.1".into(),
        added: 1,
        removed: 0,
        changed: 1,
    });
    let stored = Payload::decode(&approved.encode(&key), &key.verifying_key()).expect("verifies");
    assert_eq!(check(&roots, &rules, &stored), vec![]);
    assert_eq!(stored.history.last().map(|h| h.by.as_str()), Some("tanaka"));
}

#[test]
fn special_files_links_and_unreadable_files_are_reported_never_followed() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("shop");
    std::fs::create_dir_all(root.join("html")).expect("mkdir");
    std::fs::write(root.join("html/index.php"), b"<?php echo 1;").expect("write");
    std::fs::write(dir.path().join("outside.php"), b"<?php secret();").expect("write");
    std::os::unix::fs::symlink("../../outside.php", root.join("html/link.php")).expect("symlink");
    std::os::unix::fs::symlink("/", root.join("html/rootlink")).expect("symlink");
    let fifo = root.join("html/pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let socket = std::os::unix::net::UnixListener::bind(root.join("html/sock")).expect("bind");
    let locked = root.join("html/locked.php");
    std::fs::write(&locked, b"<?php").expect("write");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let rules = Rules::builtin();
    let found = take(std::slice::from_ref(&root), &rules, &[]);
    drop(socket);
    let kind = |p: &str| found.records.iter().find(|r| r.path == p).map(|r| r.kind);
    use crate::record::FileKind;
    assert_eq!(kind("html/link.php"), Some(FileKind::Symlink));
    assert_eq!(kind("html/rootlink"), Some(FileKind::Symlink));
    assert_eq!(kind("html/pipe"), Some(FileKind::Fifo));
    assert_eq!(kind("html/sock"), Some(FileKind::Socket));
    let link = found
        .records
        .iter()
        .find(|r| r.path == "html/link.php")
        .expect("link");
    assert_eq!(link.link_target.as_deref(), Some("../../outside.php"));
    assert!(link.sha256.is_none());
    // Nothing outside the root was walked.
    assert!(
        found
            .records
            .iter()
            .all(|r| !r.path.contains("outside") || r.path == "html/link.php")
    );
    assert!(found.records.len() < 20);
    // Root reads everything, so the unreadable case only shows for others.
    let is_root = std::fs::read(&locked).is_ok();
    if !is_root {
        assert!(
            found
                .problems
                .iter()
                .any(|p| p.path == "html/locked.php" && matches!(p.kind, scan::ProblemKind::Unreadable(_)))
        );
    }
}

#[test]
fn a_file_changing_while_it_is_read_is_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().to_path_buf();
    let path = root.join("growing.log.php");
    std::fs::write(&path, vec![b'a'; 8 << 20]).expect("write");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(path).expect("open");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = f.write_all(b"x");
            }
        })
    };
    let rules = Rules::builtin();
    let mut seen = false;
    for _ in 0..50 {
        let found = take(std::slice::from_ref(&root), &rules, &[]);
        if found
            .problems
            .iter()
            .any(|p| p.kind == scan::ProblemKind::ChangedDuringScan)
        {
            seen = true;
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("join");
    assert!(seen, "a file appended to during every read was never reported");
}

#[test]
fn an_unchanged_tree_is_checked_without_reading_files() {
    let (_dir, roots, rules) = shop();
    let baseline = baseline_of(&roots, &rules);
    let progress = Progress::default();
    let again = scan::scan(
        &roots,
        &rules,
        &Previous::new(&baseline.records),
        scan::Options::default(),
        &progress,
    );
    assert_eq!(
        progress.bytes_hashed.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(again.records, baseline.records);
}

#[test]
fn compare_release_reports_what_differs_from_the_vendor() {
    let (dir, _roots, rules) = shop();
    // The "release": the clean tree as a tar.gz under one top directory.
    let archive_file = tempfile::Builder::new()
        .suffix(".tar.gz")
        .tempfile()
        .expect("temp");
    let archive = archive_file.path().to_path_buf();
    let status = std::process::Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("--exclude=var")
        .arg("--transform=s,^\\.,eccube-4.3.0,")
        .arg("-C")
        .arg(dir.path())
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success());
    let (clean, _) = crate::release::compare_release(&rules, dir.path(), &archive, 2).expect("compare");
    assert_eq!(clean, Vec::<Change>::new());
    let planted = fixture::plant_all(dir.path());
    std::fs::write(
        dir.path().join("app/Customize/Controller/Extra.php"),
        b"<?php // local",
    )
    .expect("write");
    let (changes, _) = crate::release::compare_release(&rules, dir.path(), &archive, 2).expect("compare");
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    for plant in planted.iter().filter(|p| p.kinds != ["signature"]) {
        assert!(
            paths.contains(&plant.path),
            "{} not reported: {paths:?}",
            plant.name
        );
    }
    // The local customisation is allowed.
    assert!(!paths.contains(&"app/Customize/Controller/Extra.php"));
}
