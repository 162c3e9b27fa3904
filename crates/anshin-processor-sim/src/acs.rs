//! The issuer's Access Control Server page for a 3-D Secure challenge.
//!
//! A plain HTML form, usable with a keyboard and a screen reader, in Japanese
//! and English, that loads nothing but its own stylesheet and runs no script.
//! Its Content-Security-Policy allows form posts only to itself and to the
//! origin of the payment's `return_url` (browsers apply `form-action` to the
//! redirect that follows the post). It may be framed (EMV 3-D Secure shows the
//! challenge in an iframe).
//!
//! The one-time code of every simulated cardholder is [`crate::CHALLENGE_CODE`]
//! (`123456`); three wrong codes fail the authentication.

use std::fmt::Write;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::api::return_origin;
use crate::ledger::{AuthStatus, Payment, Status};

/// What the cardholder did on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Submit,
    Cancel,
}

/// The stylesheet, served from `/acs/style.css`.
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#111}\
main{border:1px solid #999;border-radius:.5rem;padding:1rem 1.5rem}\
h1{font-size:1.25rem}label{display:block;font-weight:600;margin:.75rem 0 .25rem}\
input{font-size:1.25rem;padding:.4rem;width:10ch;letter-spacing:.2em}\
button{font-size:1rem;padding:.5rem 1rem;margin:.75rem .5rem 0 0}\
.error{color:#a00;font-weight:600}.note{font-size:.9rem;color:#444}";

/// Applies the cardholder's answer. Returns the page or redirect to send.
pub fn submit(payment: &mut Payment, action: Action, code: &str) -> Response<Body> {
    let mut error = None;
    if let Some(t) = payment
        .three_ds
        .as_mut()
        .filter(|t| t.status == AuthStatus::Pending)
        && payment.status == Status::ChallengeRequired
    {
        match action {
            Action::Cancel => t.status = AuthStatus::Failed,
            Action::Submit if bool::from(code.as_bytes().ct_eq(crate::CHALLENGE_CODE.as_bytes())) => {
                t.status = AuthStatus::Succeeded
            }
            Action::Submit => {
                t.attempts_left = t.attempts_left.saturating_sub(1);
                if t.attempts_left == 0 {
                    t.status = AuthStatus::Failed;
                } else {
                    error = Some(t.attempts_left);
                }
            }
        }
        tracing::info!(payment = %payment.id, three_ds = %t.id, status = t.status.as_str(), "3-D Secure challenge answered");
    }
    if error.is_some() {
        return page(payment, error);
    }
    finish(payment)
}

/// The page for a payment's challenge: the form while pending, else the end.
pub fn page(payment: &Payment, wrong_code_attempts_left: Option<u8>) -> Response<Body> {
    let Some(t) = &payment.three_ds else {
        return html(StatusCode::NOT_FOUND, None, &not_found_body());
    };
    if t.status != AuthStatus::Pending || payment.status != Status::ChallengeRequired {
        return finish(payment);
    }
    let return_origin = t.return_url.as_deref().and_then(return_origin);
    let card = payment
        .card
        .as_ref()
        .map(|c| format!("{} •••• {}", c.brand.as_str().to_uppercase(), c.last4))
        .unwrap_or_default();
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<h1>本人認証 / Cardholder authentication</h1>
<p>3-D Secure（テスト用カード発行会社）<br>3-D Secure (simulated card issuer)</p>
<dl><dt>金額 / Amount</dt><dd>{amount}</dd><dt>カード / Card</dt><dd>{card}</dd></dl>
<form method="post" action="/acs/{id}">
<label for="code">ワンタイムパスワード / One-time code</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="6" aria-describedby="hint{err_ref}" autofocus>
<p id="hint" class="note">テスト用のコードは {code} です。/ The test code is {code}.</p>
"#,
        amount = format_amount(payment),
        card = escape(&card),
        id = t.id,
        code = crate::CHALLENGE_CODE,
        err_ref = if wrong_code_attempts_left.is_some() {
            " error"
        } else {
            ""
        },
    );
    if let Some(left) = wrong_code_attempts_left {
        let _ = writeln!(
            body,
            r#"<p id="error" class="error" role="alert">コードが違います。あと {left} 回入力できます。/ Wrong code: {left} attempt(s) left.</p>"#
        );
    }
    body.push_str(
        r#"<button type="submit" name="action" value="submit">認証する / Verify</button>
<button type="submit" name="action" value="cancel">キャンセル / Cancel</button>
</form>"#,
    );
    html(StatusCode::OK, return_origin.as_deref(), &body)
}

/// After the challenge: back to the shop if it gave a `return_url`, else a closing page.
fn finish(payment: &Payment) -> Response<Body> {
    let Some(t) = &payment.three_ds else {
        return html(StatusCode::NOT_FOUND, None, &not_found_body());
    };
    if let Some(url) = &t.return_url {
        let sep = if url.contains('?') { '&' } else { '?' };
        let location = format!(
            "{url}{sep}payment_id={}&three_ds_id={}&three_ds_status={}",
            payment.id,
            t.id,
            t.status.as_str()
        );
        if let Ok(value) = HeaderValue::from_str(&location) {
            let mut response = html(StatusCode::SEE_OTHER, return_origin(url).as_deref(), "");
            response.headers_mut().insert(header::LOCATION, value);
            return response;
        }
    }
    let body = match t.status {
        AuthStatus::Succeeded => {
            "<h1>認証しました / Authenticated</h1><p>このページを閉じてお店に戻ってください。/ You may close this page and return to the shop.</p>"
        }
        AuthStatus::Failed => {
            "<h1>認証できませんでした / Authentication failed</h1><p>このページを閉じてお店に戻ってください。/ You may close this page and return to the shop.</p>"
        }
        AuthStatus::Pending => {
            "<h1>期限切れ / Expired</h1><p>この認証は期限が切れました。/ This authentication has expired.</p>"
        }
    };
    html(StatusCode::OK, None, body)
}

fn not_found_body() -> String {
    "<h1>見つかりません / Not found</h1><p>この認証はありません。/ No such authentication.</p>".to_owned()
}

/// The page for an unknown challenge id.
pub fn page_not_found() -> Response<Body> {
    html(StatusCode::NOT_FOUND, None, &not_found_body())
}

fn html(status: StatusCode, return_origin: Option<&str>, main: &str) -> Response<Body> {
    let document = format!(
        r#"<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>本人認証 / 3-D Secure</title><link rel="stylesheet" href="/acs/style.css"></head>
<body><main>
{main}
</main></body></html>
"#
    );
    let form_action = match return_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    // No frame-ancestors: EMV 3-D Secure shows the challenge in an iframe of
    // the requestor's page, which may itself sit in the shop's page, and the
    // issuer cannot know those origins.
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'none'; form-action {form_action}; base-uri 'none'"
    );
    let mut response = Response::new(Body::from(document));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The origin came through return_origin, which allows only URI characters.
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

fn format_amount(p: &Payment) -> String {
    let exponent = u32::from(p.money.currency.exponent());
    let unit = 10u64.pow(exponent);
    let major = group_thousands(p.money.amount / unit);
    if exponent == 0 {
        format!("{major} {}", p.money.currency.code())
    } else {
        let minor = p.money.amount % unit;
        format!(
            "{major}.{minor:0width$} {}",
            p.money.currency.code(),
            width = exponent as usize
        )
    }
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
