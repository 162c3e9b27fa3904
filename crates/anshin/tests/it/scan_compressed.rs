//! `anshin scan` of files compressed by the real tools (xz, bzip2, zstd,
//! lz4, and GNU tar with each): backups and rotated logs are read by their
//! magic bytes, a CSV keeps its row and header, a tarball its members' paths,
//! and no output format prints a planted raw value. Before, such files were
//! read as text and reported `complete` with nothing found.

use std::path::Path;
use std::process::{Command, Stdio};

use anshin_scan::test_support::luhn_complete;
use serde_json::Value;

use crate::scan::{anshin_scan, jsonl};
use crate::scan_support::assert_no_raw_values;

/// Runs `tool args…` in `dir`, failing the test if it cannot.
fn run(dir: &Path, tool: &str, args: &[&str]) {
    let status = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{tool} cannot run: {e}"));
    assert!(status.success(), "{tool} {args:?}");
}

/// Where each card finding is: path, row and column name.
fn card_places(lines: &[Value]) -> Vec<(String, u64, String)> {
    let mut out: Vec<_> = lines
        .iter()
        .filter(|v| v["type"] == "finding" && v["category"] == "card")
        .map(|v| {
            (
                v["path"].as_str().unwrap_or_default().to_owned(),
                v["row"].as_u64().unwrap_or(0),
                v["header"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Whether the compression tools are installed: a fresh machine may lack
/// zstd and lz4. Under CI their absence is a failure (`.ci/run` installs them).
fn tools_available() -> bool {
    let missing: Vec<&str> = ["xz", "bzip2", "zstd", "lz4"]
        .into_iter()
        .filter(|tool| Command::new(tool).arg("--version").output().is_err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {missing:?} are missing: apt-get install xz-utils bzip2 zstd lz4"
    );
    eprintln!("note: {missing:?} not installed; skipping (set CI to make this a failure)");
    false
}

#[test]
fn files_compressed_by_xz_bzip2_zstd_and_lz4_are_read() {
    if !tools_available() {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    let dir = tree.path();
    let card = luhn_complete("4539", 16);
    let csv = format!("注文番号,氏名,カード番号\nA-1001,山田 太郎,\nA-1002,佐藤 花子,{card}\n");
    for name in ["a.csv", "b.csv", "c.csv", "d.csv"] {
        std::fs::write(dir.join(name), &csv).expect("write");
    }
    // Compressed in place: a.csv.xz, b.csv.bz2, c.csv.zst, d.csv.lz4.
    run(dir, "xz", &["-9", "a.csv"]);
    run(dir, "bzip2", &["b.csv"]);
    run(dir, "zstd", &["-19", "-q", "--rm", "c.csv"]);
    // (lz4 1.9 writes to standard output unless given the file name.)
    run(dir, "lz4", &["-q", "--rm", "d.csv", "d.csv.lz4"]);
    std::fs::create_dir(dir.join("logs")).expect("mkdir");
    std::fs::write(dir.join("logs/app.csv"), &csv).expect("write");
    run(dir, "tar", &["-cJf", "logs.tar.xz", "logs"]);
    run(dir, "tar", &["--zstd", "-cf", "logs.tar.zst", "logs"]);
    run(dir, "tar", &["-cjf", "logs.tbz2", "logs"]);
    std::fs::remove_dir_all(dir.join("logs")).expect("rm");

    let root = dir.to_str().expect("path");
    let out = anshin_scan(data.path(), &[root, "--format", "jsonl"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    let at = |path: &str| (format!("{root}/{path}"), 3, "カード番号".to_owned());
    let mut expected = vec![
        at("a.csv.xz!a.csv"),
        at("b.csv.bz2!b.csv"),
        at("c.csv.zst!c.csv"),
        at("d.csv.lz4!d.csv"),
        at("logs.tar.xz!logs/app.csv"),
        at("logs.tar.zst!logs/app.csv"),
        at("logs.tbz2!logs/app.csv"),
    ];
    expected.sort();
    assert_eq!(card_places(&lines), expected);
    for v in lines.iter().filter(|v| v["type"] == "object") {
        assert_eq!(v["status"], "complete", "{v}");
    }
    let kinds: Vec<&str> = ["a.csv.xz", "b.csv.bz2", "c.csv.zst", "d.csv.lz4", "logs.tar.zst"]
        .iter()
        .map(|p| {
            let path = format!("{root}/{p}");
            lines
                .iter()
                .find(|v| v["type"] == "object" && v["path"] == path.as_str())
                .and_then(|v| v["kind"].as_str())
                .unwrap_or_else(|| panic!("{p} not reported"))
        })
        .collect();
    assert_eq!(kinds, ["xz", "bzip2", "zstd", "lz4", "tar"]);

    // `pg_dump … | zstd | anshin scan -`: standard input is sniffed too.
    let piped = Command::new("zstd")
        .args(["-q", "-c"])
        .arg(dir.join("c.csv.zst"))
        .output()
        .expect("zstd");
    assert!(piped.status.success());
    let out = anshin_scan(data.path(), &["-", "--format", "jsonl"], Some(&piped.stdout));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        card_places(&jsonl(&out)).len(),
        1,
        "a zstd stream in a zstd stream"
    );

    assert_no_raw_values(data.path(), &[root], &[card]);
}
