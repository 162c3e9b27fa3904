//! Test harness: a fresh application per test on either backend, driven
//! in-process through the real router.
//!
//! PostgreSQL: `ANSHIN_TEST_POSTGRES_URL` (default the local server). Each test
//! gets its own schema, dropped afterwards. When PostgreSQL is unreachable the
//! test is skipped with a note, unless `CI` is set: then it fails.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anshin::app::{App, Location};
use anshin::http::router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn postgres_url() -> String {
    std::env::var("ANSHIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether PostgreSQL tests must run (CI) or may be skipped.
pub async fn postgres_available() -> bool {
    let url = postgres_url();
    let reachable = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client.simple_query("SELECT 1").await.is_ok()
        }
        Err(_) => false,
    };
    if !reachable {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but PostgreSQL at {url} is unreachable"
        );
        eprintln!("note: PostgreSQL at {url} is unreachable; skipping (set CI to make this a failure)");
    }
    reachable
}

/// A fresh application with its bootstrap operator key.
pub struct TestApp {
    pub app: Arc<App>,
    pub backend: Backend,
    pub operator_key: String,
    pub location: Location,
    _dir: tempfile::TempDir,
    schema: Option<String>,
}

fn unique_schema() -> String {
    let id = anshin::ids::TenantId::generate().expect("rng");
    format!("anshin_it_{}", &id.as_str()[4..])
}

impl TestApp {
    /// `None` when the backend is PostgreSQL and it may be skipped here.
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::create(Backend::Sqlite, None).await),
            Backend::Postgres => {
                if !postgres_available().await {
                    return None;
                }
                Some(Self::on_postgres(&postgres_url()).await)
            }
        }
    }

    /// A fresh application in a schema of its own on the PostgreSQL server
    /// reached by `url` (the test server, perhaps through another route:
    /// the schema is dropped through [`postgres_url`]).
    pub async fn on_postgres(url: &str) -> Self {
        let schema = unique_schema();
        let url = anshin::db::schema_url(url, &schema).await.expect("create schema");
        Self::create(Backend::Postgres, Some((url, schema))).await
    }

    async fn create(backend: Backend, postgres: Option<(String, String)>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (database_url, schema) = postgres.unzip();
        let location = Location {
            data_dir: dir.path().join("data"),
            database_url,
        };
        let (app, key) = App::init(&location).await.expect("init");
        // The tests' web servers are on loopback, which the page monitor refuses by default.
        app.allow_page_networks(vec![
            anshin::access::cidr::Cidr::parse("127.0.0.0/8").expect("loopback"),
        ]);
        Self {
            app: Arc::new(app),
            backend,
            operator_key: key.expose().to_owned(),
            location,
            _dir: dir,
            schema,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.location.data_dir.clone()
    }

    /// Sends a request through the router; returns status and JSON (or Null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, bytes) = self
            .raw(method, path, key, body.map(|b| b.to_string()), "application/json")
            .await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Sends a request as if from a client at `ip` (the server sees its
    /// address, as `anshin serve` does); returns status and JSON (or Null).
    pub async fn call_from(
        &self,
        ip: &str,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, json) = self
            .request_from(Some(ip.parse().expect("ip")), method, path, key, body)
            .await;
        (status, json)
    }

    /// Sends a request from `origin` (none: no client address, as in-process
    /// calls have); returns status, headers and JSON (or Null).
    pub async fn request_from(
        &self,
        origin: Option<IpAddr>,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, bytes) = self
            .send(
                origin,
                method,
                path,
                key,
                body.map(|b| b.to_string()),
                "application/json",
            )
            .await;
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Sends a raw body with a content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        content_type: &str,
    ) -> (StatusCode, Vec<u8>) {
        let (status, _, bytes) = self.send(None, method, path, key, body, content_type).await;
        (status, bytes)
    }

    /// POSTs a raw body with a content type and no API key from a client at
    /// `ip` (as browsers send CSP reports); returns status and JSON (or Null).
    pub async fn post_raw_from(
        &self,
        ip: &str,
        path: &str,
        body: &str,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let (status, _, bytes) = self
            .send(
                Some(ip.parse().expect("ip")),
                Method::POST,
                path,
                None,
                Some(body.to_owned()),
                content_type,
            )
            .await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A GET without a key: status, headers and the raw body (pages, assets).
    pub async fn get_raw(&self, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        self.send(None, Method::GET, path, None, None, "application/json")
            .await
    }

    /// Sends a bodiless request from `peer` with extra headers (such as a
    /// reverse proxy's `X-Forwarded-For`); returns status and JSON (or Null).
    pub async fn call_with_headers(
        &self,
        peer: &str,
        headers: &[(&str, &str)],
        method: Method,
        path: &str,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let (status, _, bytes) = self
            .send_with(
                Some(peer.parse().expect("ip")),
                headers,
                method,
                path,
                key,
                None,
                "application/json",
            )
            .await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn send(
        &self,
        origin: Option<IpAddr>,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        content_type: &str,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        self.send_with(origin, &[], method, path, key, body, content_type)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_with(
        &self,
        origin: Option<IpAddr>,
        headers: &[(&str, &str)],
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        content_type: &str,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if body.is_some() {
            request = request.header("content-type", content_type);
        }
        let mut request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("request");
        if let Some(ip) = origin {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
        }
        let response = router(self.app.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, headers, bytes)
    }

    /// Runs SQL on the backend directly, as an attacker with database access would.
    pub async fn raw_sql(&self, sql: &str) {
        self.raw_sql_on("anshin.db", sql).await;
    }

    /// Runs SQL on the audit log's storage: on SQLite its own file, on
    /// PostgreSQL the one database.
    pub async fn raw_audit_sql(&self, sql: &str) {
        self.raw_sql_on("anshin-audit.db", sql).await;
    }

    async fn raw_sql_on(&self, sqlite_file: &str, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(self.data_dir().join(sqlite_file)).expect("open");
                conn.execute_batch(sql).expect("sql");
            }
            Backend::Postgres => {
                let url = self.location.database_url.clone().expect("url");
                let (client, connection) = anshin::db::pg_connect::PgConnect::parse(&url)
                    .expect("url")
                    .connect()
                    .await
                    .expect("connect");
                tokio::spawn(connection);
                client.batch_execute(sql).await.expect("sql");
            }
        }
    }

    /// Sends a request and asserts the error answer: status and stable code.
    pub async fn expect_error(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        status: StatusCode,
        code: &str,
    ) {
        let (got, answer) = self.call(method.clone(), path, key, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {answer}"
        );
    }

    /// Tokenizes a test card with `key`: status and the masked card.
    pub async fn tokenize(&self, key: &str, number: &str) -> (StatusCode, Value) {
        self.call(Method::POST, "/v1/cards", Some(key), Some(card(number)))
            .await
    }

    /// Reveals a card with `key`: status and body.
    pub async fn reveal(&self, key: &str, token: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/cards/{token}/reveal"),
            Some(key),
            None,
        )
        .await
    }

    /// A tenant with one shop: (tenant id, shop id, shop key).
    pub async fn tenant_with_shop(&self, name: &str) -> (String, String, String) {
        let (status, tenant) = self
            .call(
                Method::POST,
                "/v1/tenants",
                Some(&self.operator_key),
                Some(serde_json::json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{tenant}");
        let tenant_id = tenant["id"].as_str().expect("id").to_owned();
        let shop_id = self.shop(&tenant_id, &format!("{name} shop")).await;
        let key = self.key("shop", &tenant_id, Some(&shop_id)).await;
        (tenant_id, shop_id, key)
    }

    pub async fn shop(&self, tenant_id: &str, name: &str) -> String {
        let (status, shop) = self
            .call(
                Method::POST,
                &format!("/v1/tenants/{tenant_id}/shops"),
                Some(&self.operator_key),
                Some(serde_json::json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{shop}");
        shop["id"].as_str().expect("id").to_owned()
    }

    /// A new global principal (bound to no tenant) of `role`: its API key.
    pub async fn global_key(&self, role: &str) -> String {
        let (status, created) = self
            .call(
                Method::POST,
                "/v1/principals",
                Some(&self.operator_key),
                Some(serde_json::json!({"name": format!("global {role}"), "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["api_key"].as_str().expect("key").to_owned()
    }

    /// A new principal's API key.
    pub async fn key(&self, role: &str, tenant_id: &str, shop_id: Option<&str>) -> String {
        let body = serde_json::json!({"name": format!("test {role}"), "role": role, "tenant_id": tenant_id, "shop_id": shop_id});
        let (status, created) = self
            .call(
                Method::POST,
                "/v1/principals",
                Some(&self.operator_key),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["api_key"].as_str().expect("key").to_owned()
    }
}

impl TestApp {
    /// Every audit entry, oldest first, as a global operator pages through
    /// `GET /v1/audit/events`.
    pub async fn audit_log(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after: Option<i64> = None;
        loop {
            let path = match after {
                Some(a) => format!("/v1/audit/events?limit=1000&after={a}"),
                None => "/v1/audit/events?limit=1000".to_owned(),
            };
            let (status, page) = self
                .call(Method::GET, &path, Some(&self.operator_key), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            out.extend(
                page["events"]
                    .as_array()
                    .expect("events")
                    .iter()
                    .map(|e| e["entry"].clone()),
            );
            match page["next_after"].as_i64() {
                Some(a) => after = Some(a),
                None => return out,
            }
        }
    }

    /// The audit entries of one event type, oldest first.
    pub async fn audit_log_of(&self, kind: &str) -> Vec<Value> {
        self.audit_log()
            .await
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(schema) = self.schema.take() {
            // Drop runs outside any async context we can borrow: use a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let _ = runtime.block_on(anshin::db::drop_schema(&postgres_url(), &schema));
            })
            .join();
        }
    }
}

/// The entries of one event type among `entries`.
pub fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["event"] == kind).collect()
}

/// A card body for tokenization.
pub fn card(number: &str) -> Value {
    serde_json::json!({"number": number, "exp_month": 12, "exp_year": 2031, "holder_name": "HANAKO SATO"})
}

/// Declares `sqlite` and `postgres` test modules that call each listed
/// `async fn name(app: TestApp)` of the enclosing module.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = crate::harness::TestApp::new(crate::harness::Backend::Sqlite).await.expect("sqlite");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = crate::harness::TestApp::new(crate::harness::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

pub(crate) use both_backends;
