//! `anshin scan` of real `pg_dump -Fd` (directory, gzip-compressed data
//! files; also tarred with `toc.dat` last) and `pg_dump -Ft` (tar; also
//! inside a .tar.gz and a zip) dumps:
//! each table's data file is read with the table of contents beside it, so
//! findings carry the table, row, field and column name as a `-Fc` archive's
//! do, and no output format prints a planted raw value.

use std::collections::BTreeMap;

use anshin_scan::test_support::{gzip_of, luhn_complete, zip_of};
use serde_json::Value;

use crate::scan::{anshin_scan, jsonl};
use crate::scan_support::{
    EUC_JP_ADDRESS, EUC_JP_NAME, assert_no_raw_values, euc_jp_customers, objects_by_path, pg_dump,
    scratch_database,
};

/// Where a finding is, its data file's dump id left out (pg_dump assigns it):
/// the path up to the data file, the data file's suffix, category, table,
/// row, field, column name, line, column and byte offset.
type Place = (String, String, String, String, u64, u64, String, u64, u64, u64);

fn places(lines: &[Value]) -> Vec<Place> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out: Vec<Place> = lines
        .iter()
        .filter(|v| v["type"] == "finding")
        .map(|v| {
            let path = text(&v["path"]);
            let (folder, file) = path.rsplit_once(['/', '!']).unwrap_or(("", &path));
            let suffix = file.trim_start_matches(|c: char| c.is_ascii_digit());
            (
                folder.to_owned(),
                suffix.to_owned(),
                text(&v["category"]),
                text(&v["table"]),
                v["row"].as_u64().unwrap_or(0),
                v["field"].as_u64().unwrap_or(0),
                text(&v["header"]),
                v["line"].as_u64().unwrap_or(0),
                v["column"].as_u64().unwrap_or(0),
                v["byte_offset"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    out.sort();
    out
}

/// The finding of `category` at `needle` in the COPY data `rows` (as
/// pg_restore prints it: line, column and byte offset in it) of `table`.
fn place(
    folder: &str,
    suffix: &str,
    category: &str,
    table: &str,
    header: &str,
    rows: &str,
    needle: &str,
) -> Place {
    let offset = rows.find(needle).expect("planted");
    let line_start = rows[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = rows[..offset].matches('\n').count() as u64 + 1;
    let field = rows[line_start..offset].matches('\t').count() as u64 + 1;
    (
        folder.to_owned(),
        suffix.to_owned(),
        category.to_owned(),
        table.to_owned(),
        line,
        field,
        header.to_owned(),
        line,
        rows[line_start..offset].chars().count() as u64 + 1,
        offset as u64,
    )
}

/// The objects of a scan whose path starts with `prefix`.
fn objects_under<'a>(objects: &'a BTreeMap<String, Value>, prefix: &str) -> Vec<(&'a str, &'a Value)> {
    objects
        .iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(p, v)| (p.as_str(), v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_directory_and_tar_formats_are_scanned_by_table_column_and_row() {
    if !crate::harness::postgres_available().await {
        return;
    }
    let db = scratch_database().await;
    let (card1, card2) = (luhn_complete("4532", 16), luhn_complete("5412", 16));
    let email = "taro@example.com";
    // Two tables, so that a data file read under the wrong entry shows.
    db.client
        .batch_execute(
            "CREATE SCHEMA sales;
             CREATE TABLE public.customers (id integer PRIMARY KEY, name text, email text, card_number text);
             CREATE TABLE sales.payments (customer_id integer, \"カード番号\" text);
             INSERT INTO public.customers VALUES (1, 'Hanako', NULL, NULL);",
        )
        .await
        .expect("schema");
    db.client
        .execute(
            "INSERT INTO public.customers VALUES (2, 'Taro', $1, $2)",
            &[&email, &card1],
        )
        .await
        .expect("insert");
    db.client
        .execute("INSERT INTO sales.payments VALUES (2, $1)", &[&card2])
        .await
        .expect("insert");

    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let directory = pg_dump(&db.url, &dir.path().join("shop.dir"), "-Fd", None);
    let tar = pg_dump(&db.url, &dir.path().join("shop.tar"), "-Ft", None);
    // The same tar shipped compressed, and inside a zip.
    let tar_bytes = std::fs::read(&tar).expect("read");
    let tar_gz = dir.path().join("shop.tar.gz");
    std::fs::write(&tar_gz, gzip_of(&tar_bytes)).expect("write");
    let zip = dir.path().join("backups.zip");
    std::fs::write(&zip, zip_of(&[("2026/shop.tar", &tar_bytes)])).expect("write");
    let (tar_gz, zip) = (
        tar_gz.to_str().expect("path").to_owned(),
        zip.to_str().expect("path").to_owned(),
    );
    // The directory dump tarred as people archive a folder: GNU tar's
    // `--sort=name` puts `toc.dat` after the data files (digits sort first).
    let tarred_dir = dir.path().join("shop-dir.tgz");
    let tarred = std::process::Command::new("tar")
        .args(["--sort=name", "-czf"])
        .arg(&tarred_dir)
        .arg("-C")
        .arg(dir.path())
        .arg("shop.dir")
        .status()
        .expect("tar");
    assert!(tarred.success());
    let listed = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&tarred_dir)
        .output()
        .expect("tar -t");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.lines().last() == Some("shop.dir/toc.dat"),
        "toc.dat comes last: {listed}"
    );
    let tarred_dir = tarred_dir.to_str().expect("path").to_owned();
    let data_files: Vec<String> = std::fs::read_dir(&directory)
        .expect("dump directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "toc.dat")
        .collect();
    assert!(
        data_files.len() == 2 && data_files.iter().all(|n| n.ends_with(".dat.gz")),
        "pg_dump -Fd compresses its data files with gzip: {data_files:?}"
    );

    let inputs = [
        directory.as_str(),
        tar.as_str(),
        tar_gz.as_str(),
        zip.as_str(),
        tarred_dir.as_str(),
    ];
    let mut args = inputs.to_vec();
    args.extend(["--format", "jsonl"]);
    let out = anshin_scan(data.path(), &args, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);

    let customers = format!("1\tHanako\t\\N\t\\N\n2\tTaro\t{email}\t{card1}\n");
    let payments = format!("2\t{card2}\n");
    let mut expected = Vec::new();
    for (folder, suffix) in [
        (directory.clone(), ".dat.gz"),
        (tar.clone(), ".dat"),
        (tar_gz.clone(), ".dat"),
        (format!("{zip}!2026/shop.tar"), ".dat"),
        (format!("{tarred_dir}!shop.dir"), ".dat.gz"),
    ] {
        let at = |category, table, header, rows: &str, needle: &str| {
            place(&folder, suffix, category, table, header, rows, needle)
        };
        expected.extend([
            at("card", "public.customers", "card_number", &customers, &card1),
            at("email", "public.customers", "email", &customers, email),
            at("card", "sales.payments", "カード番号", &payments, &card2),
        ]);
    }
    expected.sort();
    let got: Vec<Place> = places(&lines)
        .into_iter()
        .filter(|p| p.2 == "card" || p.2 == "email")
        .collect();
    assert_eq!(got, expected);

    // The table of contents and each data file: read as a pg_dump, complete.
    let objects = objects_by_path(&lines);
    for (prefix, tocs, data) in [
        (format!("{directory}/"), 1, 2),
        (format!("{tar}!"), 1, 2),
        (format!("{tar_gz}!"), 1, 2),
        (format!("{zip}!2026/shop.tar!"), 1, 2),
        (format!("{tarred_dir}!shop.dir/"), 1, 2),
    ] {
        let under = objects_under(&objects, &prefix);
        let kind = |v: &Value| v["kind"].as_str().unwrap_or_default().to_owned();
        let toc: Vec<_> = under.iter().filter(|(p, _)| p.ends_with("toc.dat")).collect();
        assert_eq!(toc.len(), tocs, "{prefix}");
        for (path, v) in &under {
            if path.ends_with(".dat") || path.ends_with(".dat.gz") {
                assert_eq!(
                    (kind(v).as_str(), v["status"].as_str()),
                    ("pg-dump", Some("complete")),
                    "{path}: {v}"
                );
            }
        }
        assert_eq!(
            under
                .iter()
                .filter(|(p, v)| !p.ends_with("toc.dat") && kind(v) == "pg-dump")
                .count(),
            data,
            "{prefix}"
        );
        assert_eq!(kind(toc[0].1), "pg-dump");
        assert_eq!(
            (toc[0].1["status"].as_str(), toc[0].1["findings"].as_u64()),
            (Some("complete"), Some(0))
        );
    }

    assert_no_raw_values(data.path(), &inputs, &[card1, card2, email.to_owned()]);
}

/// A directory-format dump of a database in EUC_JP: its data files are
/// decoded from it, so the Japanese column names (氏名, 住所) label the name
/// and the address as the `-Fc` archive's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_directory_format_of_an_euc_jp_database_is_decoded_from_it() {
    if !crate::harness::postgres_available().await {
        return;
    }
    let (db, card) = euc_jp_customers().await;
    let (name, address) = (EUC_JP_NAME, EUC_JP_ADDRESS);
    let (dir, data) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let directory = pg_dump(&db.url, &dir.path().join("shop-eucjp"), "-Fd", None);

    let out = anshin_scan(data.path(), &[&directory, "--format", "jsonl"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    let rows = format!("1\t\\N\t\\N\t\\N\n2\t{name}\t{address}\t{card}\n");
    let at = |category, header, needle: &str| {
        place(
            &directory,
            ".dat.gz",
            category,
            "public.顧客",
            header,
            &rows,
            needle,
        )
    };
    let mut expected = vec![
        at("card", "card_number", &card),
        at("name", "氏名", name),
        at("address", "住所", address),
    ];
    expected.sort();
    assert_eq!(places(&lines), expected);
    let objects = objects_by_path(&lines);
    let data_file = objects_under(&objects, &format!("{directory}/"))
        .into_iter()
        .find(|(p, _)| p.ends_with(".dat.gz"))
        .expect("data file");
    assert_eq!(data_file.1["encoding"], "euc-jp", "{}", data_file.1);
    assert_eq!(data_file.1["status"], "complete", "{}", data_file.1);
    assert_no_raw_values(
        data.path(),
        &[&directory],
        &[card, name.to_owned(), address.to_owned()],
    );
}
