//! The hosted card page: `GET /checkout/{id}` and its assets under
//! `GET /checkout/assets/{file}`, and the page the 3-D Secure challenge
//! returns to (rendered here, answered by the payments handler).
//!
//! The page is the one place a shopper types a card number, so it loads
//! nothing from anywhere but anshin: a Content-Security-Policy with
//! `default-src 'self'`, no inline script or style (the session's values are
//! rendered as escaped `data-` attributes), `frame-ancestors` set to the
//! session's allowed origin, and Subresource Integrity on its script and
//! stylesheet, computed from the bytes embedded in this binary. The card
//! inputs have no `name` and the form no action, so nothing can carry a card
//! number into a URL even with the script blocked.

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::extract::ClientIp;
use crate::error::{Error, ErrorKind};
use crate::text::{fill, html_escape};

/// One embedded file under `/checkout/assets/`.
pub struct Asset {
    /// The file name in the URL.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes, as built into the binary.
    pub bytes: &'static [u8],
    /// `sha384-…`, for the `integrity` attribute.
    pub integrity: String,
    /// A short hash of the bytes, put in the asset's URL so that a browser
    /// never pairs a cached old file with a new page's integrity value.
    pub version: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, bytes);
        Self {
            name,
            content_type,
            bytes,
            integrity: format!("sha384-{}", data_encoding::BASE64.encode(digest.as_ref())),
            version: data_encoding::HEXLOWER.encode(&digest.as_ref()[..8]),
        }
    }
}

/// The hosted page's script.
pub static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "checkout.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/checkout/checkout.js"),
    )
});

/// The script of the 3-D Secure return page.
pub static RETURN_SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "3ds-return.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/checkout/3ds-return.js"),
    )
});

/// The stylesheet of all these pages.
pub static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "checkout.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/checkout/checkout.css"),
    )
});

const PAGE: &str = include_str!("../../assets/checkout/page.html");
const RETURN_PAGE: &str = include_str!("../../assets/checkout/return.html");
const MESSAGE_PAGE: &str = include_str!("../../assets/checkout/message.html");

/// The assets by name.
pub fn asset(name: &str) -> Option<&'static Asset> {
    [&*SCRIPT, &*RETURN_SCRIPT, &*STYLE]
        .into_iter()
        .find(|a| a.name == name)
}

/// The language of the page: the session's locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    /// `ja` or `en`; anything else is Japanese, the shoppers' default.
    pub fn from_tag(tag: &str) -> Self {
        if tag.eq_ignore_ascii_case("en") || tag.to_ascii_lowercase().starts_with("en-") {
            Self::En
        } else {
            Self::Ja
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Ja => "ja",
            Self::En => "en",
        }
    }

    fn pick(self, ja: &'static str, en: &'static str) -> &'static str {
        match self {
            Self::Ja => ja,
            Self::En => en,
        }
    }
}

/// Texts of the page's HTML (`{{t_…}}` in the templates).
const PAGE_TEXT: &[(&str, &str, &str)] = &[
    ("title", "カード情報の入力", "Card details"),
    ("amount", "お支払い金額", "Amount"),
    (
        "noscript",
        "このページを使うには JavaScript を有効にしてください。",
        "Turn on JavaScript to use this page.",
    ),
    (
        "note",
        "カード情報はお店に渡らず、あんしんが直接お預かりします。",
        "Your card details go to anshin directly; the shop never sees them.",
    ),
    ("number", "カード番号", "Card number"),
    ("exp", "有効期限（月/年）", "Expiry date (MM/YY)"),
    ("exp_placeholder", "MM/YY", "MM/YY"),
    ("exp_hint", "例: 12/30", "For example 12/30"),
    ("cvc", "セキュリティコード", "Security code"),
    (
        "cvc_hint",
        "カード裏面の3桁（American Express は表面の4桁）",
        "3 digits on the back (American Express: 4 on the front)",
    ),
    ("name", "カード名義（ローマ字）", "Name on the card"),
    ("pay", "支払う", "Pay"),
    (
        "challenge",
        "カード発行会社による本人認証",
        "Authentication by your card issuer",
    ),
    (
        "return",
        "本人認証が終わりました。結果を確認しています…",
        "Authentication finished. Checking the result…",
    ),
];

/// Texts the script shows (`data-msg-…` attributes of the page's root);
/// `{n}`, `{card}` and `{code}` are filled in by the script.
const SCRIPT_TEXT: &[(&str, &str, &str)] = &[
    (
        "number_incomplete",
        "カード番号を最後まで入力してください。",
        "Enter the whole card number.",
    ),
    (
        "number_invalid",
        "カード番号が正しくありません。",
        "This card number is not valid.",
    ),
    (
        "brand_unsupported",
        "このブランドのカードはご利用いただけません。",
        "Cards of this brand are not accepted.",
    ),
    (
        "exp_invalid",
        "有効期限を「月/年」（例: 12/30）で入力してください。",
        "Enter the expiry date as MM/YY, for example 12/30.",
    ),
    (
        "exp_past",
        "このカードは有効期限が切れています。",
        "This card has expired.",
    ),
    (
        "cvc_invalid",
        "セキュリティコード（{n}桁）を入力してください。",
        "Enter the {n}-digit security code.",
    ),
    (
        "name_invalid",
        "カード名義を入力してください。",
        "Enter the name on the card.",
    ),
    (
        "fix_errors",
        "入力内容をご確認ください。",
        "Check the fields marked in red.",
    ),
    ("submitting", "送信しています…", "Sending…"),
    (
        "card_accepted",
        "カードを受け付けました（{card}）。お支払いを処理しています…",
        "Card accepted ({card}). Processing the payment…",
    ),
    (
        "challenge",
        "カード発行会社の本人認証（3-Dセキュア）を下の画面で行ってください。",
        "Complete your card issuer's authentication (3-D Secure) below.",
    ),
    ("checking", "結果を確認しています…", "Checking the result…"),
    ("paid", "お支払いが完了しました。", "Payment complete."),
    (
        "declined",
        "カード会社がお支払いを承認しませんでした（{code}）。別のカードをお試しください。",
        "Your card issuer declined the payment ({code}). Try another card.",
    ),
    (
        "failed",
        "お支払いを処理できませんでした。お店にお問い合わせください。",
        "The payment could not be processed. Contact the shop.",
    ),
    (
        "session_expired",
        "このお支払い画面は有効期限が切れました。お店のページからやり直してください。",
        "This payment page has expired. Start again from the shop's page.",
    ),
    (
        "session_used",
        "このお支払い画面はすでに使われました。お店のページからやり直してください。",
        "This payment page has already been used. Start again from the shop's page.",
    ),
    (
        "rate_limited",
        "試行回数が多すぎます。しばらく待ってからもう一度お試しください。",
        "Too many attempts. Wait a moment and try again.",
    ),
    (
        "network",
        "サーバーに接続できませんでした。もう一度お試しください。",
        "Could not reach the server. Try again.",
    ),
];

/// What the hosted page shows for one open session.
#[derive(Debug, Clone)]
pub struct HostedPage<'a> {
    pub session_id: &'a str,
    /// The shop page's origin: the only one that may frame the page or hear from it.
    pub allowed_origin: &'a str,
    pub lang: Lang,
    /// In the currency's minor unit.
    pub amount: i64,
    pub currency: &'a str,
    /// Origins of the processors' 3-D Secure pages (the challenge iframe).
    pub acs_origins: &'a [String],
}

/// The amount as people read it: `1,000 JPY`, `10.50 USD`.
pub fn amount_display(amount: i64, currency: &str) -> String {
    let exponent = iso_currency::Currency::from_code(currency)
        .and_then(|c| c.exponent())
        .unwrap_or(0) as u32;
    let scale = 10i64.pow(exponent);
    let (major, minor) = (
        amount.unsigned_abs() / scale as u64,
        amount.unsigned_abs() % scale as u64,
    );
    let digits = major.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if amount < 0 { "-" } else { "" };
    if exponent == 0 {
        format!("{sign}{grouped} {currency}")
    } else {
        format!(
            "{sign}{grouped}.{minor:0width$} {currency}",
            width = exponent as usize
        )
    }
}

fn text_values(lang: Lang, table: &[(&'static str, &'static str, &'static str)]) -> Vec<(String, String)> {
    table
        .iter()
        .map(|(key, ja, en)| ((*key).to_owned(), html_escape(lang.pick(ja, en))))
        .collect()
}

fn common_values(lang: Lang) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = text_values(lang, PAGE_TEXT)
        .into_iter()
        .map(|(k, v)| (format!("t_{k}"), v))
        .collect();
    values.push(("lang".into(), lang.tag().into()));
    for (key, asset) in [("css", &*STYLE), ("js", &*SCRIPT), ("return", &*RETURN_SCRIPT)] {
        values.push((format!("{key}_integrity"), asset.integrity.clone()));
        values.push((format!("{key}_version"), asset.version.clone()));
    }
    values
}

/// The hosted page's HTML.
pub fn render_page(page: &HostedPage<'_>) -> String {
    let mut values = common_values(page.lang);
    let messages: String = text_values(page.lang, SCRIPT_TEXT)
        .into_iter()
        .map(|(k, v)| format!(" data-msg-{k}=\"{v}\""))
        .collect();
    values.extend([
        ("session_id".into(), html_escape(page.session_id)),
        ("allowed_origin".into(), html_escape(page.allowed_origin)),
        ("amount".into(), page.amount.to_string()),
        ("currency".into(), html_escape(page.currency)),
        (
            "amount_display".into(),
            html_escape(&amount_display(page.amount, page.currency)),
        ),
        ("messages".into(), messages),
    ]);
    fill(PAGE, &values)
}

/// The Content-Security-Policy of the hosted pages: what the page may frame
/// (`frame_src`) and who may frame it (`frame_ancestors`), each a list of
/// origins or `'self'` (`'none'` when empty; anything else is left out).
pub fn content_security_policy(frame_src: &[&str], frame_ancestors: &[&str]) -> String {
    let list = |items: &[&str]| {
        let kept: Vec<&str> = items
            .iter()
            .copied()
            .filter(|o| *o == "'self'" || is_origin(o))
            .collect();
        if kept.is_empty() {
            "'none'".to_owned()
        } else {
            kept.join(" ")
        }
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         frame-src {}; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors {}",
        list(frame_src),
        list(frame_ancestors),
    )
}

/// `scheme://host[:port]` with nothing a policy could read as another
/// directive or source (no spaces, semicolons, commas, quotes, paths).
fn is_origin(origin: &str) -> bool {
    let Some((scheme, host)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Headers every hosted HTML page carries.
fn page_headers(csp: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    headers
}

/// The hosted page for an open session, with its headers. Its challenge
/// iframe shows the issuer's page, then anshin's own 3-D Secure return page
/// (`frame-src` applies to the redirect too), hence `'self'` beside the ACS
/// origins.
pub fn page_response(page: &HostedPage<'_>) -> Response {
    let mut frame_src = vec!["'self'"];
    frame_src.extend(page.acs_origins.iter().map(String::as_str));
    let csp = content_security_policy(&frame_src, &[page.allowed_origin]);
    (StatusCode::OK, page_headers(&csp), render_page(page)).into_response()
}

/// A page that only says something (session gone, no such session).
fn message_response(
    status: StatusCode,
    lang: Lang,
    heading: (&str, &str),
    body: (&str, &str),
    frame_ancestors: &[&str],
) -> Response {
    let mut values = common_values(lang);
    values.push((
        "t_heading".into(),
        html_escape(if lang == Lang::Ja { heading.0 } else { heading.1 }),
    ));
    values.push((
        "t_body".into(),
        html_escape(if lang == Lang::Ja { body.0 } else { body.1 }),
    ));
    let csp = content_security_policy(&[], frame_ancestors);
    (status, page_headers(&csp), fill(MESSAGE_PAGE, &values)).into_response()
}

/// 410: the session was used or has expired. The shop's page may still frame
/// it, so that the shopper reads why.
pub fn gone_response(lang: Lang, allowed_origin: &str) -> Response {
    message_response(
        StatusCode::GONE,
        lang,
        (
            "お支払い画面の有効期限切れ",
            "This payment page is no longer valid",
        ),
        (
            "このお支払い画面は使用済みか、有効期限が切れています。お店のページからやり直してください。",
            "It has been used or has expired. Start again from the shop's page.",
        ),
        &[allowed_origin],
    )
}

/// 404: no such session. Framed by nobody (an unknown id has no shop).
pub fn not_found_response() -> Response {
    message_response(
        StatusCode::NOT_FOUND,
        Lang::Ja,
        (
            "ページが見つかりません / Page not found",
            "ページが見つかりません / Page not found",
        ),
        (
            "お店のページからやり直してください。/ Start again from the shop's page.",
            "お店のページからやり直してください。/ Start again from the shop's page.",
        ),
        &[],
    )
}

/// The page `GET /checkout/{id}/3ds-return` answers after completing the
/// payment: inside the hosted page's challenge iframe, it tells the hosted
/// page (same origin) the challenge is over. Both anshin's own pages and the
/// shop's page are its ancestors.
pub fn three_ds_return_response(lang: Lang, allowed_origin: &str) -> Response {
    let csp = content_security_policy(&[], &["'self'", allowed_origin]);
    (
        StatusCode::OK,
        page_headers(&csp),
        fill(RETURN_PAGE, &common_values(lang)),
    )
        .into_response()
}

/// `GET /checkout/{id}`: the hosted page for an open session; 410 once it is
/// used or expired, 404 for an unknown id. Rate-limited per client address
/// like the other shopper-facing routes.
pub async fn page(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Path(id): Path<String>,
) -> Response {
    let checkout = state.app.checkout();
    if let Err(err) = checkout.allow_request(client) {
        return err.into_response();
    }
    match checkout.page_view(&id).await {
        Ok(view) if view.status == "open" => page_response(&HostedPage {
            session_id: &id,
            allowed_origin: &view.allowed_origin,
            lang: Lang::from_tag(&view.locale),
            amount: view.amount,
            currency: &view.currency,
            acs_origins: &view.acs_origins,
        }),
        Ok(view) => gone_response(Lang::from_tag(&view.locale), &view.allowed_origin),
        Err(err) if err.kind() == ErrorKind::NotFound => not_found_response(),
        Err(err) => err.into_response(),
    }
}

/// `GET /checkout/assets/{file}`: the embedded script and stylesheet. Only
/// anshin's own pages may use them (`Cross-Origin-Resource-Policy`).
pub async fn serve_asset(Path(file): Path<String>) -> Response {
    let Some(asset) = asset(&file) else {
        return Error::new(ErrorKind::NotFound, "not_found", "no such asset").into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // The URL carries the content's hash (?v=…), so a cached copy is never stale.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    (StatusCode::OK, headers, asset.bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page<'a>(acs: &'a [String]) -> HostedPage<'a> {
        HostedPage {
            session_id: "cs_abc",
            allowed_origin: "https://shop.example:8443",
            lang: Lang::Ja,
            amount: 1_234_500,
            currency: "JPY",
            acs_origins: acs,
        }
    }

    #[test]
    fn integrity_is_the_sha384_of_the_embedded_bytes() {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA384,
            include_bytes!("../../assets/checkout/checkout.js"),
        );
        assert_eq!(
            SCRIPT.integrity,
            format!("sha384-{}", data_encoding::BASE64.encode(digest.as_ref()))
        );
        let html = render_page(&page(&[]));
        assert!(html.contains(&format!(
            "src=\"/checkout/assets/checkout.js?v={}\" integrity=\"{}\"",
            SCRIPT.version, SCRIPT.integrity
        )));
        assert!(html.contains(&format!("integrity=\"{}\"", STYLE.integrity)));
    }

    #[test]
    fn every_placeholder_is_filled_in_both_languages() {
        let acs = vec!["https://acs.example".to_owned()];
        for lang in [Lang::Ja, Lang::En] {
            let html = render_page(&HostedPage { lang, ..page(&acs) });
            assert!(!html.contains("{{"), "{html}");
            assert!(html.contains(&format!("<html lang=\"{}\">", lang.tag())));
            for body in [
                fill(RETURN_PAGE, &common_values(lang)),
                message_body(gone_response(lang, "https://shop.example")),
                message_body(not_found_response()),
            ] {
                assert!(!body.contains("{{"), "{body}");
            }
        }
        let en = render_page(&HostedPage {
            lang: Lang::En,
            ..page(&acs)
        });
        assert!(
            en.contains("Card number")
                && en.contains("data-msg-cvc_invalid=\"Enter the {n}-digit security code.\"")
        );
        let ja = render_page(&page(&acs));
        assert!(ja.contains("カード番号"));
    }

    fn message_body(response: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        let bytes = rt
            .block_on(http_body_util::BodyExt::collect(response.into_body()))
            .expect("body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[test]
    fn accessible_inputs_without_names() {
        let html = render_page(&page(&[]));
        for (id, autocomplete) in [
            ("card-number", "cc-number"),
            ("card-exp", "cc-exp"),
            ("card-cvc", "cc-csc"),
            ("card-name", "cc-name"),
        ] {
            assert!(
                html.contains(&format!("<label for=\"{id}\">")),
                "{id} has a label"
            );
            let input = html
                .split("<input ")
                .find(|s| s.starts_with(&format!("id=\"{id}\"")))
                .and_then(|s| s.split('>').next())
                .expect("input");
            assert!(
                input.contains(&format!("autocomplete=\"{autocomplete}\"")),
                "{input}"
            );
            assert!(input.contains("aria-invalid=\"false\""), "{input}");
            assert!(input.contains(&format!("{id}-error")), "{input} names its error");
            assert!(html.contains(&format!("id=\"{id}-error\" class=\"error\" aria-live=\"polite\"")));
            // No name: a form submission could never carry the value.
            assert!(!input.contains("name="), "{input}");
            if id != "card-name" {
                assert!(input.contains("inputmode=\"numeric\""), "{input}");
            }
        }
        let form = html
            .split("<form ")
            .nth(1)
            .and_then(|s| s.split('>').next())
            .expect("form");
        assert!(
            !form.contains("action") && form.contains("method=\"post\""),
            "{form}"
        );
        assert!(html.contains("role=\"alert\""));
        // No inline script or style at all.
        assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains(" style="));
        assert_eq!(html.matches("<script ").count(), 1);
    }

    #[test]
    fn session_values_are_escaped_attributes() {
        let evil = "\"><script>alert(1)</script>";
        let html = render_page(&HostedPage {
            session_id: evil,
            allowed_origin: evil,
            currency: evil,
            ..page(&[])
        });
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("data-session-id=\"&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("data-amount=\"1234500\""));
        assert!(render_page(&page(&[])).contains("1,234,500 JPY"));
    }

    #[test]
    fn amounts_in_the_currency_minor_unit() {
        assert_eq!(amount_display(1000, "JPY"), "1,000 JPY");
        assert_eq!(amount_display(999, "JPY"), "999 JPY");
        assert_eq!(amount_display(1050, "USD"), "10.50 USD");
        assert_eq!(amount_display(123_456_789, "USD"), "1,234,567.89 USD");
        assert_eq!(amount_display(1000, "KWD"), "1.000 KWD");
        assert_eq!(amount_display(5, "EUR"), "0.05 EUR");
    }

    #[test]
    fn the_policy_allows_only_anshin_the_acs_and_the_shop() {
        let csp = content_security_policy(
            &["https://127.0.0.1:8443", "https://evil; script-src *"],
            &["https://shop.example"],
        );
        assert_eq!(
            csp,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             frame-src https://127.0.0.1:8443; form-action 'self'; base-uri 'none'; object-src 'none'; \
             frame-ancestors https://shop.example"
        );
        let none = content_security_policy(&[], &["*", "https://a b"]);
        assert!(none.contains("frame-src 'none'") && none.ends_with("frame-ancestors 'none'"));
        assert!(
            content_security_policy(&[], &["'self'", "http://127.0.0.1:3000"])
                .ends_with("frame-ancestors 'self' http://127.0.0.1:3000")
        );
    }

    #[test]
    fn headers_of_the_page() {
        let acs = vec!["https://acs.example".to_owned()];
        let response = page_response(&page(&acs));
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(
            csp.contains("frame-ancestors https://shop.example:8443")
                && csp.contains("frame-src 'self' https://acs.example")
        );
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let ret = three_ds_return_response(Lang::En, "https://shop.example");
        let csp = ret.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(
            csp.ends_with("frame-ancestors 'self' https://shop.example"),
            "{csp}"
        );
        assert_eq!(
            gone_response(Lang::Ja, "https://shop.example").status(),
            StatusCode::GONE
        );
        assert_eq!(not_found_response().status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_scripts_keep_card_data_to_themselves() {
        for asset in [&*SCRIPT, &*RETURN_SCRIPT] {
            let js = std::str::from_utf8(asset.bytes).expect("utf-8");
            for banned in [
                "console.",
                "localStorage",
                "sessionStorage",
                "document.cookie",
                "location.href =",
                "'*'",
                "\"*\"",
                "eval(",
                "innerHTML",
            ] {
                assert!(!js.contains(banned), "{} uses {banned}", asset.name);
            }
            // Every message goes to one named origin.
            for call in js.split("postMessage(").skip(1) {
                let target = call.split(')').next().unwrap_or_default();
                assert!(
                    target.ends_with(", allowedOrigin") || target.ends_with(", window.location.origin"),
                    "{}: postMessage({target})",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn assets_by_name() {
        assert_eq!(
            asset("checkout.js").map(|a| a.content_type),
            Some("text/javascript; charset=utf-8")
        );
        assert!(asset("3ds-return.js").is_some() && asset("checkout.css").is_some());
        assert!(asset("../Cargo.toml").is_none() && asset("page.html").is_none());
    }
}
