//! What the `anshin scan` tests of databases and dumps share: a scratch
//! PostgreSQL database, real `pg_dump`, the objects of a JSON Lines report and
//! the check that no output format prints a planted raw value.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anshin_scan::test_support::luhn_complete;
use serde_json::Value;

use crate::scan::anshin_scan;

/// Drops the test database (and its reader role) even when an assertion fails.
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let name = self.0.clone();
        // A fresh runtime on its own thread: Drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let url = crate::harness::postgres_url();
                    if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                        tokio::spawn(conn);
                        // Two statements: DROP DATABASE may not share a query string.
                        let _ = client
                            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .await;
                        let _ = client
                            .batch_execute(&format!("DROP ROLE IF EXISTS \"{name}_reader\""))
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// A database of its own (dropped with the guard), so that "every user
/// table" is exactly the test's: its name, a client, its server's
/// `host:port`, its URL (with the user, to connect) and its path in reports
/// (without).
pub(crate) struct ScratchDatabase {
    pub(crate) name: String,
    pub(crate) client: tokio_postgres::Client,
    pub(crate) address: String,
    pub(crate) url: String,
    pub(crate) shown: String,
    _guard: DropDatabase,
}

pub(crate) async fn scratch_database() -> ScratchDatabase {
    scratch_database_with("").await
}

/// [`scratch_database`] made with `CREATE DATABASE name {options}`.
async fn scratch_database_with(options: &str) -> ScratchDatabase {
    let id = anshin::ids::TenantId::generate().expect("rng");
    let name = format!("anshin_scan_it_{}", &id.as_str()[4..]).to_lowercase();
    let base = crate::harness::postgres_url();
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\" {options}"))
        .await
        .expect("create database");
    let guard = DropDatabase(name.clone());
    let mut config: tokio_postgres::Config = base.parse().expect("url");
    config.dbname(&name);
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let address = format!("{host}:{port}");
    ScratchDatabase {
        url: format!("postgres://{user}@{address}/{name}"),
        shown: format!("postgres://{address}/{name}"),
        address,
        name,
        client,
        _guard: guard,
    }
}

/// The name and address in [`euc_jp_customers`]' second row.
pub(crate) const EUC_JP_NAME: &str = "山田 太郎";
pub(crate) const EUC_JP_ADDRESS: &str = "東京都千代田区千代田1-1";

/// A scratch database in EUC_JP whose table `public.顧客` (id, 氏名, 住所,
/// card_number) holds an empty row, then [`EUC_JP_NAME`], [`EUC_JP_ADDRESS`]
/// and a card number, returned with it.
pub(crate) async fn euc_jp_customers() -> (ScratchDatabase, String) {
    let card = luhn_complete("3569", 16);
    // The C locale goes with any encoding.
    let db = scratch_database_with("ENCODING 'EUC_JP' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'").await;
    // The client speaks UTF-8; the server stores EUC_JP.
    db.client
        .batch_execute(
            "CREATE TABLE public.\"顧客\" (id integer PRIMARY KEY, \"氏名\" text, \"住所\" text, card_number text)",
        )
        .await
        .expect("schema");
    db.client
        .execute(
            "INSERT INTO public.\"顧客\" VALUES (1, NULL, NULL, NULL), (2, $1, $2, $3)",
            &[&EUC_JP_NAME, &EUC_JP_ADDRESS, &card],
        )
        .await
        .expect("insert");
    (db, card)
}

pub(crate) fn objects_by_path(lines: &[Value]) -> BTreeMap<String, Value> {
    lines
        .iter()
        .filter(|v| v["type"] == "object")
        .map(|v| (v["path"].as_str().unwrap_or_default().to_owned(), v.clone()))
        .collect()
}

/// Asserts that no output format of `args` prints any of `raw`, at the
/// default confidence and at `low`.
pub(crate) fn assert_no_raw_values(data: &Path, args: &[&str], raw: &[String]) {
    for (format, confidence) in ["human", "jsonl", "csv", "sarif"]
        .into_iter()
        .flat_map(|f| [(f, "medium"), (f, "low")])
    {
        let mut all = args.to_vec();
        all.extend(["--format", format, "--min-confidence", confidence]);
        let out = anshin_scan(data, &all, None);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{format}: empty output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for (i, value) in raw.iter().enumerate() {
            assert!(
                !stdout.contains(value.as_str()) && !stderr.contains(value.as_str()),
                "format {format}: planted value #{i} appears in the output"
            );
        }
    }
}

/// `pg_dump` in `format` (`-Fc`, `-Fd`, `-Ft`; with `extra`, say `-Z0`) of
/// the database at `url` into `path`, as PostgreSQL's own client writes it;
/// the path as a string.
pub(crate) fn pg_dump(url: &str, path: &Path, format: &str, extra: Option<&str>) -> String {
    let out = Command::new("pg_dump")
        .args([format, "-d", url, "-f"])
        .arg(path)
        .args(extra)
        .output()
        .expect("run pg_dump (the PostgreSQL client)");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.to_str().expect("path").to_owned()
}
