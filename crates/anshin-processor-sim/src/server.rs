//! HTTPS: the accept loop (TLS through rustls, HTTP/1.1 through hyper) and the
//! routes. Handlers parse, call the processor and send its answer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Form, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroize;

use crate::acs::{self, Action};
use crate::api::{self, ApiError};
use crate::idempotency::{Answer, Begin};
use crate::ledger::{LedgerError, Payment};
use crate::processor::{Processor, Reply, new_id, processor_failed, unix_now};

type Shared = Arc<Processor>;

/// Request bodies are small JSON objects; anything larger is refused.
const BODY_LIMIT: usize = 16 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    processor: Shared,
    mut stop: oneshot::Receiver<()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(processor);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(app.clone());
                connections.spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        }
    }
    connections.shutdown().await;
}

fn router(processor: Shared) -> Router {
    let api = Router::new()
        .route("/v1/payments", post(authorize))
        .route("/v1/payments/{id}", get(get_payment))
        .route("/v1/payments/{id}/{action}", post(operation))
        .route("/v1/3ds/{id}", get(three_ds))
        .route("/_sim/received/{id}", get(received))
        .route("/_sim/fingerprint", post(fingerprint))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&processor),
            authenticate,
        ));
    Router::new()
        .merge(api)
        .route(
            "/v1/health",
            get(|| async {
                reply(&Reply {
                    status: 200,
                    body: serde_json::json!({"status": "ok"}),
                })
            }),
        )
        .route("/acs/style.css", get(style))
        .route("/acs/{id}", get(acs_page).post(acs_submit))
        .fallback(no_such_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(log))
        .with_state(processor)
}

/// One line per request: method, path, status, time. Never a body or a query.
async fn log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(%method, %path, status = response.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    response
}

async fn authenticate(State(p): State<Shared>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if p.api_key_ok(presented) {
        next.run(request).await
    } else {
        reply(
            &ApiError::new(
                401,
                "authentication_error",
                "unauthorized",
                "send Authorization: Bearer <the simulator's API key>",
            )
            .into(),
        )
    }
}

fn reply(r: &Reply) -> Response {
    let answer = answer_of(r);
    json_response(answer.status, answer.body, false)
}

fn json_response(status: u16, body: Vec<u8>, replayed: bool) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn answer_of(r: &Reply) -> Answer {
    Answer {
        status: r.status,
        body: serde_json::to_vec(&r.body).unwrap_or_default(),
    }
}

/// Overwrites a request body once it has been parsed, where it is ours alone.
fn wipe(body: Bytes) {
    if let Ok(mut bytes) = body.try_into_mut() {
        bytes.as_mut().zeroize();
    }
}

/// Runs a mutating request under its `Idempotency-Key`. The work runs in its
/// own task, so it completes (and its answer is stored for a retry) even if
/// the client gives up and disconnects, as a real processor's would.
async fn idempotent<F, Fut>(p: Shared, headers: &HeaderMap, path: String, body: Bytes, work: F) -> Response
where
    F: FnOnce(Shared, Bytes) -> Fut + Send + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let key = match headers.get("idempotency-key").map(HeaderValue::as_bytes) {
        Some(k) if (1..=255).contains(&k.len()) && k.iter().all(|b| (0x21..=0x7e).contains(b)) => {
            String::from_utf8_lossy(k).into_owned()
        }
        _ => {
            return reply(
                &ApiError::invalid(
                    "idempotency_key_missing",
                    None,
                    "send an Idempotency-Key header of 1 to 255 visible ASCII characters",
                )
                .into(),
            );
        }
    };
    let request = p.request_fingerprint(Method::POST.as_str(), &path, &body);
    match p.begin(&key, request, unix_now()) {
        Begin::Replay(answer) => return json_response(answer.status, answer.body, true),
        Begin::Mismatch => {
            return reply(
                &ApiError::new(
                    409,
                    "idempotency_error",
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request; use a new key",
                )
                .into(),
            );
        }
        Begin::InFlight => {
            return reply(
                &ApiError::new(
                    409,
                    "idempotency_error",
                    "idempotency_key_in_use",
                    "a request with this Idempotency-Key is still being processed; retry later",
                )
                .into(),
            );
        }
        Begin::New => {}
    }
    let task = {
        let (p, key) = (Arc::clone(&p), key.clone());
        tokio::spawn(async move {
            let answer = answer_of(&work(Arc::clone(&p), body).await);
            p.finish(&key, answer.clone());
            answer
        })
    };
    let answer = task.await.unwrap_or_else(|_| {
        // The work panicked: free the key so that a retry is processed again.
        let answer = answer_of(&processor_failed());
        p.finish(&key, answer.clone());
        answer
    });
    json_response(answer.status, answer.body, false)
}

async fn authorize(State(p): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    idempotent(
        p,
        &headers,
        "/v1/payments".to_owned(),
        body,
        |p, body| async move {
            let parsed = api::parse_authorize(&body);
            wipe(body);
            let req = match parsed {
                Ok(req) => req,
                Err(e) => return e.into(),
            };
            let decision = p.decide(&req, unix_now());
            if decision.is_slow() {
                tokio::time::sleep(p.config().slow_delay).await;
            }
            p.authorize(req, decision, unix_now())
        },
    )
    .await
}

async fn get_payment(State(p): State<Shared>, Path(id): Path<String>) -> Response {
    reply(&p.get(&id, unix_now()))
}

/// A state change of an existing payment: parse the body, apply the change.
async fn operate<T: Send + 'static>(
    (p, id, headers, body): (Shared, String, HeaderMap, Bytes),
    action: &'static str,
    parse: fn(&[u8]) -> Result<T, ApiError>,
    apply: fn(&mut Payment, T, i64) -> Result<(), LedgerError>,
) -> Response {
    let path = format!("/v1/payments/{id}/{action}");
    idempotent(p, &headers, path, body, move |p, body| async move {
        match parse(&body) {
            Ok(req) => p.update(&id, |pay| apply(pay, req, unix_now())),
            Err(e) => e.into(),
        }
    })
    .await
}

/// `POST /v1/payments/{id}/{capture|void|refunds|complete}`.
async fn operation(
    State(p): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = (p, id, headers, body);
    match action.as_str() {
        "capture" => {
            operate(request, "capture", api::parse_amount, |pay, req, now| {
                pay.capture(req.amount, now)
            })
            .await
        }
        "void" => operate(request, "void", api::parse_empty, |pay, (), now| pay.void(now)).await,
        "refunds" => {
            operate(request, "refunds", api::parse_amount, |pay, req, now| {
                pay.refund(req.amount, new_id("re"), now).map(|_| ())
            })
            .await
        }
        "complete" => {
            operate(request, "complete", api::parse_empty, |pay, (), now| {
                pay.complete(now)
            })
            .await
        }
        _ => no_such_route().await,
    }
}

async fn no_such_route() -> Response {
    reply(&ApiError::new(404, "invalid_request_error", "not_found", "no such route").into())
}

async fn three_ds(State(p): State<Shared>, Path(id): Path<String>) -> Response {
    reply(&p.three_ds(&id))
}

async fn received(State(p): State<Shared>, Path(id): Path<String>) -> Response {
    match p.received(&id) {
        Some(r) => reply(&Reply {
            status: 200,
            body: r.to_json(),
        }),
        None => reply(
            &ApiError::new(
                404,
                "invalid_request_error",
                "not_found",
                "nothing received for this payment",
            )
            .into(),
        ),
    }
}

/// For tests that run the binary: the fingerprints of values they sent, to
/// compare with `/_sim/received/{id}` (the key never leaves the process).
async fn fingerprint(State(p): State<Shared>, body: Bytes) -> Response {
    let parsed = api::parse_fingerprint(&body);
    wipe(body);
    match parsed {
        Ok(req) => reply(&Reply {
            status: 200,
            body: serde_json::json!({
                "pan_fingerprint": p.pan_fingerprint(req.card_number.expose()),
                "cvc_fingerprint": req.cvc.as_ref().map(|c| p.cvc_fingerprint(c.expose())),
            }),
        }),
        Err(e) => reply(&e.into()),
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        acs::STYLE,
    )
        .into_response()
}

fn no_such_challenge() -> Response {
    acs::page_not_found()
}

async fn acs_page(State(p): State<Shared>, Path(id): Path<String>) -> Response {
    p.with_challenge(&id, unix_now(), |pay| acs::page(pay, None))
        .unwrap_or_else(no_such_challenge)
}

#[derive(Deserialize)]
struct AcsForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    action: String,
}

async fn acs_submit(State(p): State<Shared>, Path(id): Path<String>, Form(form): Form<AcsForm>) -> Response {
    let action = if form.action == "cancel" {
        Action::Cancel
    } else {
        Action::Submit
    };
    p.with_challenge(&id, unix_now(), |pay| acs::submit(pay, action, form.code.trim()))
        .unwrap_or_else(no_such_challenge)
}
