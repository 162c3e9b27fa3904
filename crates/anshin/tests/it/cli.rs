//! The command line, run as a user would: the built `anshin` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

fn anshin(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anshin"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ANSHIN_DATABASE_URL")
        .env("ANSHIN_LOG", "warn")
        .output()
        .expect("run anshin")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// A running `anshin serve`; killed on drop.
struct Server {
    child: Child,
    addr: String,
    stdout: Vec<String>,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_anshin"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("ANSHIN_DATABASE_URL")
            .env("ANSHIN_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
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

    fn request(&self, method: &str, path: &str, key: &str, body: Option<&str>) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
