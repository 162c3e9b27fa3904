//! Users' own YARA rules (`--yara-rules`), run with `yara-x` over the bytes
//! the built-in signatures already read (no second read of a file).
//!
//! A rule file or a directory of `.yar`/`.yara` files is compiled once; each
//! file gets its own namespace, so two files may reuse a rule name. A match
//! becomes a [`Finding`] named `yara.<file>.<rule>`, at the line and byte
//! offset of its first pattern match (never the matched bytes), with the
//! rule's `description` meta as why it matters and its `severity` meta
//! (`low`, `high`, `critical`; `high` when absent) as severity. Each file has
//! a time limit: a rule that is slow on it is stopped and the file reported
//! with `yara.timeout`, so a hostile rule or file cannot hang a scan.
//!
//! yara-x is only in builds with the `yara` feature (it compiles rules with
//! wasmtime, a long build); without it, loading rules is refused with the
//! stable code `integrity_yara_unavailable`.

use std::path::Path;
use std::time::Duration;

#[cfg(not(feature = "yara"))]
use crate::signatures::Finding;

/// The per-file time limit when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why YARA rules could not be loaded. `code` is stable.
#[derive(Debug)]
pub struct YaraError {
    /// `integrity_yara_unreadable`, `integrity_yara_invalid` or `integrity_yara_unavailable`.
    pub code: &'static str,
    /// What is wrong, naming the file.
    pub message: String,
}

impl std::fmt::Display for YaraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for YaraError {}

#[cfg(feature = "yara")]
pub use engine::YaraRules;

/// Compiled YARA rules (this build has no YARA engine: never constructed).
#[cfg(not(feature = "yara"))]
#[derive(Debug)]
pub enum YaraRules {}

#[cfg(not(feature = "yara"))]
impl YaraRules {
    /// Always refused: this build has no YARA engine.
    pub fn load(_path: &Path, _timeout: Duration) -> Result<Self, YaraError> {
        Err(YaraError {
            code: "integrity_yara_unavailable",
            message: "this anshin was built without YARA support (build it with --features yara)".to_owned(),
        })
    }

    /// Unreachable: there are no rules to run.
    pub fn scan(&self, _content: &[u8]) -> Vec<Finding> {
        match *self {}
    }
}

#[cfg(feature = "yara")]
/// The rule files a path names: the file itself, or the `.yar` and `.yara`
/// files directly in a directory, sorted.
fn rule_files(path: &Path) -> Result<Vec<std::path::PathBuf>, YaraError> {
    let unreadable = |e: std::io::Error| YaraError {
        code: "integrity_yara_unreadable",
        message: format!("cannot read the YARA rules {}: {e}", path.display()),
    };
    if !std::fs::metadata(path).map_err(unreadable)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(unreadable)? {
        let file = entry.map_err(unreadable)?.path();
        let is_rule = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yar") || e.eq_ignore_ascii_case("yara"));
        if is_rule && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(YaraError {
            code: "integrity_yara_invalid",
            message: format!("no .yar or .yara file in {}", path.display()),
        });
    }
    Ok(files)
}

#[cfg(feature = "yara")]
mod engine {
    use std::borrow::Cow;
    use std::path::Path;
    use std::time::Duration;

    use super::{YaraError, rule_files};
    use crate::Severity;
    use crate::signatures::Finding;

    /// Compiled YARA rules with their per-file time limit.
    pub struct YaraRules {
        rules: yara_x::Rules,
        timeout: Duration,
    }

    impl std::fmt::Debug for YaraRules {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("YaraRules")
                .field("rules", &self.rules.iter().len())
                .field("timeout", &self.timeout)
                .finish()
        }
    }

    const WHY_TIMEOUT_EN: &str = "the YARA rules did not finish on this file within the time limit: it was not fully checked (a slow rule, or a file made to stall scanners)";
    const WHY_TIMEOUT_JA: &str = "制限時間内に YARA ルールの検査が終わらず、このファイルは完全には検査されていません（遅いルール、またはスキャナーを止めるよう作られたファイル）";

    impl YaraRules {
        /// Compiles a rule file or every `.yar`/`.yara` file in a directory.
        pub fn load(path: &Path, timeout: Duration) -> Result<Self, YaraError> {
            let mut compiler = yara_x::Compiler::new();
            for file in rule_files(path)? {
                let text = std::fs::read_to_string(&file).map_err(|e| YaraError {
                    code: "integrity_yara_unreadable",
                    message: format!("cannot read the YARA rule file {}: {e}", file.display()),
                })?;
                let namespace = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                compiler.new_namespace(&namespace);
                let origin = file.display().to_string();
                compiler
                    .add_source(yara_x::SourceCode::from(text.as_str()).with_origin(origin))
                    .map_err(|e| YaraError {
                        code: "integrity_yara_invalid",
                        message: format!("the YARA rule file {} does not compile:\n{e}", file.display()),
                    })?;
            }
            let rules = compiler.build();
            // A severity that is misspelt would silently become the default:
            // refuse it while the user is there to fix it.
            for rule in rules.iter() {
                severity_of(&rule).map_err(|value| YaraError {
                    code: "integrity_yara_invalid",
                    message: format!(
                        "YARA rule {}.{}: severity {value:?} is not low, high or critical",
                        rule.namespace(),
                        rule.identifier()
                    ),
                })?;
            }
            Ok(Self { rules, timeout })
        }

        /// The findings of every rule that matches `content`.
        pub fn scan(&self, content: &[u8]) -> Vec<Finding> {
            let mut scanner = yara_x::Scanner::new(&self.rules);
            scanner.set_timeout(self.timeout);
            let results = match scanner.scan(content) {
                Ok(results) => results,
                Err(yara_x::ScanError::Timeout) => {
                    return vec![finding(
                        "yara.timeout".to_owned(),
                        None,
                        Severity::High,
                        Cow::Borrowed(WHY_TIMEOUT_EN),
                        Cow::Borrowed(WHY_TIMEOUT_JA),
                    )];
                }
                Err(e) => {
                    let why = format!("the YARA rules could not run on this file: {e}");
                    return vec![finding(
                        "yara.error".to_owned(),
                        None,
                        Severity::High,
                        Cow::Owned(why.clone()),
                        Cow::Owned(why),
                    )];
                }
            };
            results
                .matching_rules()
                .map(|rule| {
                    let offset = rule
                        .patterns()
                        .flat_map(|p| p.matches().map(|m| m.range().start).collect::<Vec<_>>())
                        .min();
                    let (en, ja) = descriptions(&rule);
                    finding(
                        format!("yara.{}.{}", rule.namespace(), rule.identifier()),
                        offset.map(|o| (o, crate::signatures::line_of(content, o))),
                        severity_of(&rule).unwrap_or(Severity::High),
                        Cow::Owned(en),
                        Cow::Owned(ja),
                    )
                })
                .collect()
        }
    }

    fn finding(
        rule: String,
        at: Option<(usize, u64)>,
        severity: Severity,
        why_en: Cow<'static, str>,
        why_ja: Cow<'static, str>,
    ) -> Finding {
        Finding {
            rule: Cow::Owned(rule),
            line: at.map_or(0, |(_, line)| line),
            offset: at.map(|(offset, _)| offset as u64),
            severity,
            why_en,
            why_ja,
            destination: None,
        }
    }

    fn meta_text<'r>(rule: &yara_x::Rule<'_, 'r>, name: &str) -> Option<String> {
        rule.metadata()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| match value {
                yara_x::MetaValue::String(s) => s.to_owned(),
                yara_x::MetaValue::Bytes(b) => b.to_string(),
                yara_x::MetaValue::Integer(i) => i.to_string(),
                yara_x::MetaValue::Float(f) => f.to_string(),
                yara_x::MetaValue::Bool(b) => b.to_string(),
            })
    }

    /// The `severity` meta, `high` when absent; `Err` with the value when it is not a severity.
    fn severity_of(rule: &yara_x::Rule<'_, '_>) -> Result<Severity, String> {
        match meta_text(rule, "severity") {
            None => Ok(Severity::High),
            Some(value) => Severity::parse(&value.to_ascii_lowercase()).ok_or(value),
        }
    }

    /// The `description` meta (and `description_ja` when given).
    fn descriptions(rule: &yara_x::Rule<'_, '_>) -> (String, String) {
        let en = meta_text(rule, "description")
            .unwrap_or_else(|| "matched a user YARA rule (it has no description meta)".to_owned());
        let ja = meta_text(rule, "description_ja").unwrap_or_else(|| en.clone());
        (en, ja)
    }
}

#[cfg(all(test, feature = "yara"))]
mod tests {
    use super::*;
    use crate::Severity;
    use crate::rules::Rules;

    fn rules_in(dir: &Path, files: &[(&str, &str)]) -> Result<YaraRules, YaraError> {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write rule");
        }
        YaraRules::load(dir, Duration::from_secs(2))
    }

    const SKIMMER_RULE: &str = r#"
rule shop_skimmer_drop {
  meta:
    description = "our incident team's drop host"
    severity = "critical"
  strings:
    $drop = "cdn-jquery-ui.example"
  condition:
    $drop
}
rule no_meta { strings: $a = "xyzzy-marker" condition: $a }
"#;

    #[test]
    fn a_planted_file_is_found_through_the_signature_read_with_rule_meta_and_offset() {
        let dir = tempfile::tempdir().expect("dir");
        let yara = rules_in(dir.path(), &[("team.yar", SKIMMER_RULE)]).expect("compiles");
        let rules = Rules::builtin().with_yara(yara);
        let file = dir.path().join("checkout.js");
        let js = "// checkout\nvar u = '//cdn-jquery-ui.example/c.js';\n// xyzzy-marker\n";
        std::fs::write(&file, js).expect("write");
        let (_, found) = crate::signatures::scan_file(&file, "html/js/checkout.js", &rules)
            .expect("read")
            .expect("not allow-listed");
        let drop = found
            .iter()
            .find(|f| f.rule == "yara.team.shop_skimmer_drop")
            .expect("the rule matched");
        assert_eq!(drop.severity, Severity::Critical);
        assert_eq!(drop.line, 2);
        assert_eq!(drop.offset, Some(js.find("cdn-jquery").expect("planted") as u64));
        assert_eq!(drop.why_en, "our incident team's drop host");
        let plain = found
            .iter()
            .find(|f| f.rule == "yara.team.no_meta")
            .expect("matched");
        assert_eq!((plain.severity, plain.line), (Severity::High, 3));
        // The alert never carries the matched bytes.
        let json = serde_json::to_string(&found).expect("json");
        assert!(
            !json.contains("cdn-jquery-ui") && !json.contains("xyzzy"),
            "{json}"
        );
        // A clean file raises nothing.
        std::fs::write(&file, "var ok = 1;\n").expect("write");
        let clean = crate::signatures::scan_file(&file, "html/js/checkout.js", &rules);
        assert!(clean.expect("read").expect("scanned").1.is_empty());
    }

    #[test]
    fn bad_rule_files_are_refused_with_stable_codes() {
        let dir = tempfile::tempdir().expect("dir");
        let broken = rules_in(dir.path(), &[("broken.yar", "rule x { condition: $missing }")]);
        let err = broken.expect_err("does not compile");
        assert_eq!(err.code, "integrity_yara_invalid");
        assert!(err.message.contains("broken.yar"), "{}", err.message);

        let dir = tempfile::tempdir().expect("dir");
        let bad_severity = "rule y { meta: severity = \"urgent\" condition: true }";
        let err = rules_in(dir.path(), &[("s.yara", bad_severity)]).expect_err("refused");
        assert_eq!(err.code, "integrity_yara_invalid");
        assert!(err.message.contains("urgent"), "{}", err.message);

        let empty = tempfile::tempdir().expect("dir");
        let err = YaraRules::load(empty.path(), DEFAULT_TIMEOUT).expect_err("no rules");
        assert_eq!(err.code, "integrity_yara_invalid");
        let err = YaraRules::load(&empty.path().join("none.yar"), DEFAULT_TIMEOUT).expect_err("missing");
        assert_eq!(err.code, "integrity_yara_unreadable");
    }

    #[test]
    fn a_slow_rule_is_stopped_at_the_time_limit_and_reported() {
        let dir = tempfile::tempdir().expect("dir");
        // Quadratic in the file's size: hours on a megabyte without a limit.
        let slow = r#"
rule slow {
  condition:
    for all i in (0..filesize) : (
      for all j in (0..filesize) : ( uint8(i) != 0x07 or uint8(j) != 0x08 )
    )
}"#;
        let yara = rules_in(dir.path(), &[("slow.yar", slow)]).expect("compiles");
        let started = std::time::Instant::now();
        let found = yara.scan(&vec![b'a'; 1 << 20]);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "yara.timeout");
        assert_eq!(found[0].severity, Severity::High);
    }
}
