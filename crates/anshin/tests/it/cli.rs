//! The command line, run as a user would: the built `anshin` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub(crate) fn anshin(data_dir: &Path, args: &[&str]) -> Output {
    anshin_with(data_dir, args, &[], None)
}

/// Runs anshin with `ANSHIN_API_KEY` set to `key` (or unset).
pub(crate) fn anshin_with_key(data_dir: &Path, key: Option<&str>, args: &[&str]) -> Output {
    match key {
        Some(key) => anshin_with(data_dir, args, &[("ANSHIN_API_KEY", key)], None),
        None => anshin_with(data_dir, args, &[], None),
    }
}

/// `anshin` with extra environment variables and, if given, standard input.
pub(crate) fn anshin_with(
    data_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_anshin"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ANSHIN_DATABASE_URL")
        .env_remove("ANSHIN_API_KEY")
        .env("ANSHIN_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run anshin");
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or("").as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("run anshin")
}

/// Initialises `data_dir` and returns the bootstrap operator's API key.
pub(crate) fn init_operator(data_dir: &Path) -> String {
    stdout_json(&anshin(data_dir, &["init", "--json"]))["operator_api_key"]
        .as_str()
        .expect("key")
        .to_owned()
}

pub(crate) fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// A running `anshin serve`; killed on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    stdout: Vec<String>,
}

impl Server {
    pub(crate) fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, None, &[])
    }

    /// A server on `database_url` (PostgreSQL) instead of the embedded SQLite.
    fn start_on(data_dir: &Path, database_url: Option<&str>) -> Self {
        Self::start_with(data_dir, database_url, &[])
    }

    /// A server with extra environment variables.
    pub(crate) fn start_with(data_dir: &Path, database_url: Option<&str>, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_anshin"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("ANSHIN_DATABASE_URL")
            .env("ANSHIN_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped());
        if let Some(url) = database_url {
            command.env("ANSHIN_DATABASE_URL", url);
        }
        let mut child = command.spawn().expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut stdout = Vec::new();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .expect("line");
            if let Some(rest) = line.strip_prefix("anshin listening on http://") {
                break rest.split_whitespace().next().expect("addr").to_owned();
            }
            stdout.push(line);
        };
        Self { child, addr, stdout }
    }

    pub(crate) fn request(&self, method: &str, path: &str, key: &str, body: Option<&str>) -> (u16, Value) {
        self.request_with(method, path, key, &[], body)
    }

    /// [`Server::request`] with extra headers.
    pub(crate) fn request_with(
        &self,
        method: &str,
        path: &str,
        key: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        let body = body.unwrap_or("");
        let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let json = response
            .split("\r\n\r\n")
            .nth(1)
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (status, json)
    }
}

impl Server {
    /// A request whose answer is text (a checkpoint).
    fn text(&self, method: &str, path: &str, key: &str) -> String {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("http");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `anshin backup` copies both SQLite files (vault, then audit log) of a
/// running server, owner-only, without the root key, and never overwrites.
#[test]
fn backup_copies_vault_and_log_of_a_running_server_without_the_root_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let operator = init_operator(&data);
    let server = Server::start(&data);
    let (status, tenant) = server.request("POST", "/v1/tenants", &operator, Some(r#"{"name":"backup"}"#));
    assert_eq!(status, 201, "{tenant}");
    let out = dir.path().join("backup");
    let summary = stdout_json(&anshin(
        &data,
        &["backup", "--out", out.to_str().expect("utf8"), "--json"],
    ));
    let names: Vec<&str> = summary["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["anshin.db", "anshin-audit.db"]);
    assert!(
        !out.join("root.key").exists(),
        "the root key stays out of backups"
    );
    assert_eq!(
        std::fs::metadata(&out).expect("dir").permissions().mode() & 0o077,
        0,
        "owner-only directory"
    );
    let count = |file: &Path, sql: &str| -> i64 {
        let conn = rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
        conn.query_row(sql, [], |r| r.get(0)).expect("count")
    };
    for name in names {
        assert_eq!(
            std::fs::metadata(out.join(name))
                .expect("file")
                .permissions()
                .mode()
                & 0o777,
            0o600,
            "{name}"
        );
    }
    assert_eq!(
        count(&out.join("anshin.db"), "SELECT count(*) FROM tenants"),
        count(&data.join("anshin.db"), "SELECT count(*) FROM tenants"),
    );
    let logged = count(&out.join("anshin-audit.db"), "SELECT count(*) FROM audit_entries");
    assert!(logged >= 1, "the tenant's creation is in the copied log");
    drop(server);
    // Never over an existing directory.
    let again = anshin(&data, &["backup", "--out", out.to_str().expect("utf8")]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("give a new directory"));
    // Not a data directory.
    let none = anshin(
        &dir.path().join("nowhere"),
        &["backup", "--out", "/tmp/unused-anshin-backup"],
    );
    assert_eq!(none.status.code(), Some(3));
}

/// A core dump of the server would write its keys and any card it was
/// handling to disk in clear: the server allows none, not even by raising its
/// own soft limit.
#[test]
fn the_server_forbids_core_dumps_of_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).expect("limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core limit line");
    let values: Vec<&str> = core
        .trim_start_matches("Max core file size")
        .split_whitespace()
        .collect();
    assert_eq!(&values[..2], ["0", "0"], "soft and hard limit: {core}");
}

#[test]
fn init_prints_the_key_once_and_keeps_the_root_key_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let first = stdout_json(&anshin(&data, &["init", "--json"]));
    let key = first["operator_api_key"].as_str().expect("key");
    assert!(key.starts_with("anshin_sk_"));
    let mode = std::fs::metadata(data.join("root.key"))
        .expect("root key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(&data).expect("dir").permissions().mode() & 0o077,
        0,
        "data directory is owner-only"
    );
    let again = anshin(&data, &["init", "--json"]);
    assert_eq!(again.status.code(), Some(3), "already initialised");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already initialised"));
}

/// A store URL `init` cannot use, from the flag, the environment or the data
/// directory's `anshin.toml`, is a configuration error (exit 2) that leaves
/// the data directory as it was: absent again, with the parents `init`
/// made, or untouched if it existed. `init` then works with a good URL.
#[test]
fn init_with_an_unusable_store_url_leaves_the_data_directory_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("new/nested/data");
    for (args, env, words) in [
        (
            &["init", "--json", "--database-url", "postgres://u@h:x/db"][..],
            &[][..],
            "not a valid PostgreSQL URL",
        ),
        (
            &["init", "--json"],
            &[("ANSHIN_DATABASE_URL", "sqlite://")],
            "SQLite path is empty",
        ),
    ] {
        let out = anshin_with(&data, args, env, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
        assert!(
            !dir.path().join("new").exists(),
            "{args:?}: a directory left behind"
        );
    }
    let good = format!("sqlite://{}", data.join("anshin.db").display());
    stdout_json(&anshin(&data, &["init", "--json", "--database-url", &good]));
    assert!(data.join("root.key").exists() && data.join("anshin.db").exists());

    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).expect("mkdir");
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let config = existing.join("anshin.toml");
    std::fs::write(&config, "database_url = \"postgres://u@h:x/db\"\n").expect("config");
    std::fs::write(existing.join("notes.txt"), "kept\n").expect("file");
    let before = directory_state(&existing);
    let out = anshin(&existing, &["init", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        directory_state(&existing),
        before,
        "the existing directory is untouched"
    );
    std::fs::write(&config, "").expect("config");
    stdout_json(&anshin(&existing, &["init", "--json"]));
    assert!(existing.join("root.key").exists() && existing.join("notes.txt").exists());
}

/// The mode of `dir` and the name, mode and content of each entry, sorted.
fn directory_state(dir: &Path) -> (u32, Vec<(std::ffi::OsString, u32, Vec<u8>)>) {
    let mode = |path: &Path| std::fs::metadata(path).expect("metadata").permissions().mode();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let content = std::fs::read(&path).expect("read");
            (path.file_name().expect("name").to_owned(), mode(&path), content)
        })
        .collect();
    entries.sort();
    (mode(dir), entries)
}

#[test]
fn serve_refuses_a_root_key_others_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    stdout_json(&anshin(&data, &["init", "--json"]));
    std::fs::set_permissions(data.join("root.key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = anshin(&data, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn principals_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    stdout_json(&anshin(&data, &["init", "--json"]));
    let created = stdout_json(&anshin(
        &data,
        &[
            "principal",
            "create",
            "--name",
            "auditor one",
            "--role",
            "auditor",
            "--json",
        ],
    ));
    let id = created["id"].as_str().expect("id");
    assert!(
        created["api_key"]
            .as_str()
            .expect("key")
            .starts_with("anshin_sk_")
    );
    let list = stdout_json(&anshin(&data, &["principal", "list", "--json"]));
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(2),
        "bootstrap operator and the auditor"
    );
    assert!(
        list.to_string().find("api_key").is_none(),
        "lists never show keys"
    );
    let disabled = anshin(&data, &["principal", "disable", id]);
    assert!(disabled.status.success());
    let list = stdout_json(&anshin(&data, &["principal", "list", "--json"]));
    let auditor = list
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == id)
        .expect("listed");
    assert!(auditor["disabled_at"].is_string());
    let bad = anshin(&data, &["principal", "create", "--name", "x", "--role", "admin"]);
    assert_eq!(bad.status.code(), Some(2), "usage error");
}

#[test]
fn serve_initialises_an_empty_directory_and_acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("fresh");
    let server = Server::start(&data);
    let key = server
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("anshin_sk_"))
        .map(|k| format!("anshin_sk_{k}"))
        .expect("bootstrap key printed");
    let (status, tenant) = server.request("POST", "/v1/tenants", &key, Some(r#"{"name":"t"}"#));
    assert_eq!(status, 201);
    let tenant_id = tenant["id"].as_str().expect("id").to_owned();
    let body = format!(r#"{{"name":"p","role":"processor","tenant_id":"{tenant_id}"}}"#);
    let (_, processor) = server.request("POST", "/v1/principals", &key, Some(&body));
    let processor = processor["api_key"].as_str().expect("key").to_owned();
    let mut tokens = Vec::new();
    for number in ["4111111111111111", "5555555555554444", "3530111333300000"] {
        let body = format!(
            r#"{{"number":"{number}","exp_month":1,"exp_year":2032,"holder_name":"K","tenant_id":"{tenant_id}"}}"#
        );
        let (status, masked) = server.request("POST", "/v1/cards", &key, Some(&body));
        assert_eq!(status, 201, "{masked}");
        tokens.push((number, masked["token"].as_str().expect("token").to_owned()));
    }
    let mut server = server;
    // SIGKILL: no shutdown hook runs; only what was committed before each 201 remains.
    server.child.kill().expect("kill -9");
    server.child.wait().expect("wait");
    drop(server);
    let server = Server::start(&data);
    for (number, token) in tokens {
        let (status, revealed) =
            server.request("POST", &format!("/v1/cards/{token}/reveal"), &processor, None);
        assert_eq!(status, 200);
        assert_eq!(revealed["number"], number);
    }
}

#[test]
fn help_shows_examples_and_exit_codes_and_completions_work() {
    let help = Command::new(env!("CARGO_BIN_EXE_anshin"))
        .arg("--help")
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Examples:") && text.contains("Exit codes:"),
        "{text}"
    );
    for sub in [
        &["serve", "--help"][..],
        &["init", "--help"],
        &["principal", "create", "--help"],
        &["bench", "--help"],
        &["demo", "--help"],
        &["unseal", "--help"],
        &["seal", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_anshin"))
            .args(sub)
            .output()
            .expect("help");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example"),
            "{sub:?}"
        );
    }
    let completions = Command::new(env!("CARGO_BIN_EXE_anshin"))
        .args(["completions", "bash"])
        .output()
        .expect("completions");
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("anshin"));
}

#[test]
fn config_shows_the_database_url_without_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_anshin"))
        .args(["config", "--json", "--data-dir"])
        .arg(dir.path())
        .env(
            "ANSHIN_DATABASE_URL",
            "postgres://anshin:hunter2@db.internal/anshin",
        )
        .output()
        .expect("config");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        text.contains("anshin:***@db.internal") && !text.contains("hunter2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_second_node_on_a_shared_database_is_told_to_copy_the_root_key() {
    let Some(first) = crate::harness::TestApp::new(crate::harness::Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let second = dir.path().join("node2");
    let output = Command::new(env!("CARGO_BIN_EXE_anshin"))
        .args(["init", "--data-dir"])
        .arg(&second)
        .env(
            "ANSHIN_DATABASE_URL",
            first.location.database_url.as_deref().expect("url"),
        )
        .output()
        .expect("init");
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("copy that root.key"));
    assert!(
        !second.join("root.key").exists(),
        "no stray root key is left behind"
    );
    // With the first node's root key copied over, the second node serves the same data.
    std::fs::copy(first.data_dir().join("root.key"), second.join("root.key")).expect("copy");
    std::fs::set_permissions(second.join("root.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let location = anshin::app::Location {
        data_dir: second,
        database_url: first.location.database_url.clone(),
    };
    let node2 = anshin::app::App::open(&location)
        .await
        .expect("second node opens");
    assert!(
        node2.authenticate(&first.operator_key).await.is_ok(),
        "keys made on node 1 work on node 2"
    );
}

/// Two `anshin serve` processes on one PostgreSQL, both taking requests and
/// both integrating: the audit log stays one total order, numbered 0..n with
/// no gap and no duplicate, every entry under the signed root, and each
/// checkpoint either node signs extends the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_keep_one_gapless_audit_log() {
    use anshin_crypto::merkle;
    use anshin_crypto::note::{Checkpoint, NoteVerifier};

    let Some(first) = crate::harness::TestApp::new(crate::harness::Backend::Postgres).await else {
        return;
    };
    let url = first.location.database_url.clone().expect("url");
    let vkey = first.app.audit.verifier_key();
    let origin = first.app.audit.origin().to_owned();
    let key = first.operator_key.clone();
    let (_, _, shop_key) = first.tenant_with_shop("two nodes").await;
    let nodes = [
        Server::start_on(&first.data_dir(), Some(&url)),
        Server::start_on(&first.data_dir(), Some(&url)),
    ];
    let numbers = [
        "4111111111111111",
        "5555555555554444",
        "378282246310005",
        "3530111333300000",
    ];
    let tokens: Vec<String> = numbers
        .iter()
        .enumerate()
        .map(|(i, number)| {
            let body = format!(
                r#"{{"number":"{number}","exp_month":12,"exp_year":2031,"holder_name":"TWO NODES"}}"#
            );
            let (status, card) = nodes[i % 2].request("POST", "/v1/cards", &shop_key, Some(&body));
            assert!(status == 201 || status == 200, "{card}");
            card["token"].as_str().expect("token").to_owned()
        })
        .collect();
    // Both nodes read concurrently, so their appends interleave.
    std::thread::scope(|scope| {
        for node in &nodes {
            let (tokens, shop_key) = (&tokens, &shop_key);
            scope.spawn(move || {
                for round in 0..40 {
                    let token = &tokens[round % tokens.len()];
                    let (status, _) = node.request("GET", &format!("/v1/cards/{token}"), shop_key, None);
                    assert_eq!(status, 200);
                }
            });
        }
    });
    // Each node signs a checkpoint on demand; the later one covers everything.
    let verifier = NoteVerifier::parse(&vkey).expect("vkey");
    let mut checkpoints = Vec::new();
    for node in &nodes {
        let note = node.text("POST", "/v1/audit/checkpoint", &key);
        checkpoints.push(
            Checkpoint::open(note.as_bytes(), &origin, std::slice::from_ref(&verifier)).expect("signed"),
        );
    }
    let (a, b) = (&checkpoints[0], &checkpoints[1]);
    assert!(
        b.size() >= a.size() && b.size() >= 88,
        "{} {}",
        a.size(),
        b.size()
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), count(idx), count(DISTINCT idx), coalesce(min(idx), 0), coalesce(max(idx), -1) FROM audit_entries",
            &[],
        )
        .await
        .expect("query");
    let (total, numbered, distinct, min, max): (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(
        (numbered, distinct, min, max + 1),
        (total, total, 0, total),
        "gapless and unique"
    );
    assert_eq!(u64::try_from(total).expect("count"), b.size());
    let entries: Vec<Vec<u8>> = client
        .query("SELECT entry FROM audit_entries ORDER BY idx", &[])
        .await
        .expect("entries")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let leaves: Vec<merkle::Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
    assert_eq!(&merkle::root(&leaves), b.root_hash());
    assert_eq!(
        &merkle::root(&leaves[..usize::try_from(a.size()).expect("size")]),
        a.root_hash(),
        "the first node's checkpoint is a prefix of the same log"
    );
}

/// The real server at its most verbose, on each backend: hyper, the pool and the
/// drivers log through the binary's own subscriber, and none of it may carry a
/// card number, personal data or a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_logging_at_trace_never_prints_secrets() {
    let postgres = crate::harness::TestApp::new(crate::harness::Backend::Postgres).await;
    let urls = [
        None,
        postgres.as_ref().and_then(|p| p.location.database_url.clone()),
    ];
    for (i, url) in urls.iter().enumerate() {
        if i == 1 && url.is_none() {
            continue; // PostgreSQL skipped (not under CI)
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let log_path = dir.path().join("stderr.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_anshin"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("ANSHIN_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path).expect("log file"));
        match url {
            // A node joining the PostgreSQL database of the harness app uses its root key.
            Some(url) => {
                std::fs::create_dir_all(&data).expect("dir");
                let root = postgres.as_ref().expect("pg").data_dir().join("root.key");
                std::fs::copy(root, data.join("root.key")).expect("copy root key");
                std::fs::set_permissions(data.join("root.key"), std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
                command.env("ANSHIN_DATABASE_URL", url);
            }
            None => {
                command.env_remove("ANSHIN_DATABASE_URL");
            }
        }
        let mut child = command.spawn().expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut stdout = Vec::new();
        let addr = loop {
            let line = lines.next().expect("listening").expect("line");
            if let Some(rest) = line.strip_prefix("anshin listening on http://") {
                break rest.split_whitespace().next().expect("addr").to_owned();
            }
            stdout.push(line);
        };
        let server = Server { child, addr, stdout };
        let key = match &postgres {
            Some(pg) if i == 1 => pg.operator_key.clone(),
            _ => server
                .stdout
                .iter()
                .find_map(|l| l.trim().strip_prefix("anshin_sk_"))
                .map(|k| format!("anshin_sk_{k}"))
                .expect("key"),
        };
        let (_, tenant) = server.request("POST", "/v1/tenants", &key, Some(r#"{"name":"t"}"#));
        let tenant_id = tenant["id"].as_str().expect("tenant").to_owned();
        let pan = "4111111111111111";
        let card = format!(
            r#"{{"number":"{pan}","exp_month":1,"exp_year":2032,"holder_name":"TRACE HOLDER","tenant_id":"{tenant_id}"}}"#
        );
        let (status, masked) = server.request("POST", "/v1/cards", &key, Some(&card));
        assert_eq!(status, 201, "{masked}");
        let bad = format!(
            r#"{{"number":"4111111111111112","exp_month":"{pan}","exp_year":2032,"holder_name":"TRACE HOLDER"}}"#
        );
        let _ = server.request("POST", "/v1/cards", &key, Some(&bad));
        let _ = server.request("GET", &format!("/v1/cards/{pan}"), &key, None);
        let _ = server.request("GET", &format!("/v1/orders?shop_id={pan}"), &key, None);
        let customer = format!(
            r#"{{"name":"トレース 花子","email":"trace.person@example.jp","phone":"090-5555-1212","tenant_id":"{tenant_id}"}}"#
        );
        let (status, _) = server.request("POST", "/v1/customers", &key, Some(&customer));
        assert_eq!(status, 201);
        drop(server);
        let log = std::fs::read_to_string(&log_path).expect("log");
        assert!(log.contains("TRACE"), "the server logged at trace");
        for secret in [
            pan,
            "TRACE HOLDER",
            "トレース",
            "trace.person@example.jp",
            "09055551212",
            key.as_str(),
        ] {
            let head: String = secret.chars().take(4).collect();
            assert!(
                !log.contains(secret),
                "server log (backend {i}) contains a secret starting {head}"
            );
        }
        assert!(
            !log.contains("executing statement"),
            "statement parameters reached the log"
        );
    }
}

/// Copies a directory tree (an exported log) so each tamper test starts clean.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Rewrites the entry bundle at `path` (relative to `dir`) with `change`.
fn rewrite_bundle(dir: &Path, path: &str, change: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let file = dir.join(path);
    let bytes = std::fs::read(&file).expect("bundle");
    let mut entries: Vec<Vec<u8>> = anshin_crypto::merkle::decode_entry_bundle(&bytes, None)
        .expect("decode")
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    change(&mut entries);
    std::fs::write(
        &file,
        anshin_crypto::merkle::encode_entry_bundle(&entries).expect("encode"),
    )
    .expect("write");
}

/// The whole audit log leaves the server as tlog tiles and is checked without
/// it: a clean export verifies; a flipped byte, a deleted entry, two swapped
/// entries and a cut-off tail are each caught at the exact entry, exit code 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_audit_log_verifies_offline_and_tampering_is_located() {
    let t = crate::harness::TestApp::new(crate::harness::Backend::Sqlite)
        .await
        .expect("sqlite");
    let (_, _, shop_key) = t.tenant_with_shop("export").await;
    let (_, card) = t.tokenize(&shop_key, "4111111111111111").await;
    let token = card["token"].as_str().expect("token").to_owned();
    for _ in 0..300 {
        let (status, _) = t
            .call(
                axum::http::Method::GET,
                &format!("/v1/cards/{token}"),
                Some(&shop_key),
                None,
            )
            .await;
        assert_eq!(status, axum::http::StatusCode::OK);
    }
    let early = t.app.audit.integrate(&t.app.store).await.expect("integrate");
    let work = tempfile::tempdir().expect("tempdir");
    let since = work.path().join("early-checkpoint");
    std::fs::write(&since, &early.checkpoint).expect("write");
    let (status, _) = t
        .call(
            axum::http::Method::GET,
            &format!("/v1/cards/{token}"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(status, axum::http::StatusCode::OK);

    let data = t.data_dir();
    let export = work.path().join("export");
    let exported = stdout_json(&anshin(
        &data,
        &[
            "audit",
            "export",
            "--json",
            "--out",
            export.to_str().expect("utf8"),
        ],
    ));
    let size = exported["tree_size"].as_u64().expect("size");
    assert!(size > 300, "{exported}");
    let vkey = String::from_utf8(anshin(&data, &["audit", "public-key"]).stdout).expect("utf8");
    let vkey = vkey.trim();
    // Verification needs no data directory: run it from an empty one.
    let nowhere = work.path().join("nowhere");
    let verify = |dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify",
            dir.to_str().expect("utf8"),
            "--public-key",
            vkey,
            "--json",
        ];
        args.extend_from_slice(extra);
        let output = anshin(&nowhere, &args);
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        (output.status.code(), report)
    };
    let (code, report) = verify(&export, &["--since", since.to_str().expect("utf8")]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["tree_size"].as_u64(), Some(size));
    assert!(!nowhere.join("anshin.db").exists(), "verify touched no database");

    let last_bundle = anshin_crypto::merkle::Tile::all_for_size(size)
        .filter(|tile| tile.level() == 0)
        .last()
        .and_then(|tile| tile.entries_path())
        .expect("bundle");
    type Tamper = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, u64, Tamper)> = vec![
        (
            "flipped byte",
            5,
            Box::new(|dir: &Path| {
                rewrite_bundle(dir, "tile/entries/000", |entries| entries[5][10] ^= 0x01);
            }),
        ),
        (
            "deleted entry",
            7,
            Box::new(|dir: &Path| {
                rewrite_bundle(dir, "tile/entries/000", |entries| {
                    entries.remove(7);
                });
            }),
        ),
        (
            "reordered entries",
            3,
            Box::new(|dir: &Path| rewrite_bundle(dir, "tile/entries/000", |entries| entries.swap(3, 4))),
        ),
        (
            "truncated tail",
            256,
            Box::new(move |dir: &Path| std::fs::remove_file(dir.join(&last_bundle)).expect("remove")),
        ),
    ];
    for (name, index, tamper) in cases {
        let copy = work.path().join(name.replace(' ', "-"));
        copy_tree(&export, &copy);
        tamper(&copy);
        let (code, report) = verify(&copy, &[]);
        assert_eq!(code, Some(5), "{name}: {report}");
        assert_eq!(report["ok"], false, "{name}");
        assert_eq!(
            report["first_bad_entry"].as_u64(),
            Some(index),
            "{name}: {report}"
        );
    }
    // A key from another log is refused outright.
    let other = crate::harness::TestApp::new(crate::harness::Backend::Sqlite)
        .await
        .expect("sqlite");
    let output = anshin(
        &nowhere,
        &[
            "audit",
            "verify",
            export.to_str().expect("utf8"),
            "--public-key",
            &other.app.audit.verifier_key(),
        ],
    );
    assert_eq!(output.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&output.stderr).contains("signature"));
}

/// `anshin scan --inventory FILE --server URL` against a real `anshin serve`:
/// the inventory arrives whole for the key's tenant, and the key never shows.
#[test]
fn scan_sends_its_inventory_to_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let bootstrap = stdout_json(&anshin(&data, &["init", "--json"]));
    let root_key = bootstrap["operator_api_key"].as_str().expect("key").to_owned();
    let server = Server::start(&data);
    let (status, tenant) = server.request("POST", "/v1/tenants", &root_key, Some(r#"{"name": "scanned"}"#));
    assert_eq!(status, 201, "{tenant}");
    let tenant_id = tenant["id"].as_str().expect("id");
    let body = format!(r#"{{"name": "scanner", "role": "operator", "tenant_id": "{tenant_id}"}}"#);
    let (status, principal) = server.request("POST", "/v1/principals", &root_key, Some(&body));
    assert_eq!(status, 201, "{principal}");
    let key = principal["api_key"].as_str().expect("key").to_owned();

    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    std::fs::write(tree.join("contacts.txt"), "連絡先 taro@example.com\n").expect("write");
    let inventory = dir.path().join("inventory.json");
    let scan = |key: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_anshin"));
        command
            .arg("scan")
            .arg(&tree)
            .arg("--inventory")
            .arg(&inventory)
            .args(["--server", &format!("http://{}", server.addr)])
            .arg("--data-dir")
            .arg(dir.path().join("scan-data"))
            .env_remove("ANSHIN_DATABASE_URL")
            .env_remove("ANSHIN_API_KEY")
            .env("ANSHIN_LOG", "warn");
        if let Some(key) = key {
            command.env("ANSHIN_API_KEY", key);
        }
        command.output().expect("run anshin scan")
    };
    let out = scan(Some(&key));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("inventory sent to http://"), "{stderr}");
    assert!(!stderr.contains(&key) && !String::from_utf8_lossy(&out.stdout).contains(&key));

    let (status, list) = server.request("GET", "/v1/inventory", &key, None);
    assert_eq!(status, 200, "{list}");
    let written: Value = serde_json::from_slice(&std::fs::read(&inventory).expect("file")).expect("JSON");
    assert_eq!(list["latest"], written, "the server holds what was written");
    assert_eq!(list["history"][0]["tenant_id"], tenant_id);
    assert_eq!(list["history"][0]["findings"], 1);
    assert!(stderr.contains(list["history"][0]["id"].as_str().expect("id")));

    // No key: a usage error before anything is scanned. A wrong key: refused
    // by the server (exit 1), the file still written.
    assert_eq!(scan(None).status.code(), Some(2));
    let wrong = "anshin_sk_notavalidkeyatall";
    let out = scan(Some(wrong));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(!stderr.contains(wrong));
    let (_, list) = server.request("GET", "/v1/inventory", &key, None);
    assert_eq!(list["history"].as_array().map(Vec::len), Some(1));
}
