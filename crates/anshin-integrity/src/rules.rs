//! The rules file: which paths matter how much.
//!
//! ```toml
//! default = "high"                 # paths no rule names
//!
//! [[watch]]                        # later rules win over earlier ones
//! paths = ["app/**", "src/**", "html/**"]
//! severity = "critical"            # critical, high, low or ignore
//!
//! [[watch]]
//! paths = ["var/cache/**", "var/log/**"]
//! severity = "ignore"
//!
//! [uploads]                        # changes ignored, except new or changed
//! paths = ["html/upload/**"]       # scripts: those are critical
//! script_extensions = ["php", "phtml", "js"]   # default: a long list
//!
//! [customisations]                 # compare-release: differ from the vendor on purpose
//! paths = ["app/Customize/**", "app/config/eccube/packages/prod/*.yaml"]
//!
//! [signatures]
//! allowed_hosts = ["js.pay.example"]        # where card data and forms may go
//! card_inputs_allowed = ["app/template/*/Shopping/payment.twig"]
//! allow_sha256 = ["<64 hex>"]               # known-good files the signatures skip
//! ```
//!
//! Globs match the path below each root; `*` stays within one directory,
//! `**` crosses directories. Without a rules file, [`DEFAULT_RULES`] apply.

use std::collections::HashSet;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::Severity;

/// The rules used when none are given: code, templates and web server files
/// critical; caches, logs and sessions ignored; the usual upload folders of
/// EC-CUBE, WordPress and Magento watched for scripts only.
pub const DEFAULT_RULES: &str = r#"default = "high"

[[watch]]
paths = ["**/*.php", "**/*.phtml", "**/*.inc", "**/*.twig", "**/*.tpl", "**/*.html", "**/*.htm",
         "**/*.js", "**/*.mjs", "**/.htaccess", "**/.user.ini", "**/*.conf", "**/*.yaml", "**/*.yml"]
severity = "critical"

[[watch]]
paths = ["**/var/cache/**", "**/var/log/**", "**/var/sessions/**", "**/var/session/**",
         "**/var/page_cache/**", "**/wp-content/cache/**", "**/.git/**"]
severity = "ignore"

[uploads]
paths = ["**/upload/**", "**/uploads/**", "**/pub/media/**"]
"#;

/// Extensions that make a new file in an upload folder critical when the
/// rules name none.
const SCRIPT_EXTENSIONS: &[&str] = &[
    "php", "php3", "php4", "php5", "php7", "php8", "phtml", "pht", "phar", "phps", "inc", "js", "mjs",
    "html", "htm", "shtml", "twig", "tpl", "cgi", "pl", "py", "sh", "asp", "aspx", "jsp",
];

/// File names that make a new file in an upload folder critical whatever
/// the extensions (they turn script execution on for the folder).
const SCRIPT_NAMES: &[&str] = &[".htaccess", ".user.ini", "web.config"];

/// Why a rules file was refused.
#[derive(Debug)]
pub struct RulesError(String);

impl std::fmt::Display for RulesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RulesError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default = "default_level")]
    default: Level,
    #[serde(default)]
    watch: Vec<WatchRule>,
    #[serde(default)]
    uploads: Option<Uploads>,
    #[serde(default)]
    customisations: Option<PathList>,
    #[serde(default)]
    signatures: Option<SignatureSettings>,
}

fn default_level() -> Level {
    Level::High
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Critical,
    High,
    Low,
    Ignore,
}

impl Level {
    fn severity(self) -> Option<Severity> {
        match self {
            Self::Critical => Some(Severity::Critical),
            Self::High => Some(Severity::High),
            Self::Low => Some(Severity::Low),
            Self::Ignore => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchRule {
    paths: Vec<String>,
    severity: Level,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Uploads {
    paths: Vec<String>,
    #[serde(default)]
    script_extensions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathList {
    paths: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureSettings {
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    card_inputs_allowed: Vec<String>,
    #[serde(default)]
    allow_sha256: Vec<String>,
}

/// How a path is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Watched with this severity.
    Watched(Severity),
    /// Inside an upload folder: only new or changed scripts count.
    Upload,
    /// Not watched.
    Ignored,
}

/// Parsed rules, ready to classify paths.
#[derive(Debug)]
pub struct Rules {
    source: String,
    default: Option<Severity>,
    watch: Vec<(GlobSet, Option<Severity>)>,
    uploads: GlobSet,
    script_extensions: HashSet<String>,
    customisations: GlobSet,
    allowed_hosts: Vec<String>,
    card_inputs_allowed: GlobSet,
    allow_sha256: HashSet<String>,
    /// The user's YARA rules (`--yara-rules`), run beside the built-in signatures.
    yara: Option<std::sync::Arc<crate::yara::YaraRules>>,
}

fn globs(patterns: &[String]) -> Result<GlobSet, RulesError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern.trim_start_matches("./"))
            .literal_separator(true)
            .build()
            .map_err(|e| RulesError(format!("invalid glob {pattern:?}: {e}")))?;
        set.add(glob);
        // `dir/**` also names `dir` itself.
        if let Some(dir) = pattern.strip_suffix("/**") {
            set.add(
                GlobBuilder::new(dir.trim_start_matches("./"))
                    .literal_separator(true)
                    .build()
                    .map_err(|e| RulesError(format!("invalid glob {pattern:?}: {e}")))?,
            );
        }
    }
    set.build().map_err(|e| RulesError(format!("invalid globs: {e}")))
}

impl Rules {
    /// Parses a rules file's text.
    pub fn parse(source: &str) -> Result<Self, RulesError> {
        let file: RulesFile =
            toml::from_str(source).map_err(|e| RulesError(format!("the rules file is not valid: {e}")))?;
        let mut watch = Vec::new();
        for rule in &file.watch {
            watch.push((globs(&rule.paths)?, rule.severity.severity()));
        }
        let (uploads, script_extensions) = match &file.uploads {
            Some(u) => (
                globs(&u.paths)?,
                u.script_extensions
                    .clone()
                    .unwrap_or_else(|| SCRIPT_EXTENSIONS.iter().map(|s| (*s).to_owned()).collect()),
            ),
            None => (GlobSet::empty(), Vec::new()),
        };
        let signatures = file.signatures.unwrap_or_default();
        let mut allow_sha256 = HashSet::new();
        for hash in &signatures.allow_sha256 {
            let hash = hash.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RulesError(format!(
                    "allow_sha256 entries must be 64 hex digits (sha256sum output), not {hash:?}"
                )));
            }
            allow_sha256.insert(hash);
        }
        Ok(Self {
            source: source.to_owned(),
            default: file.default.severity(),
            watch,
            uploads,
            script_extensions: script_extensions
                .into_iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect(),
            customisations: globs(&file.customisations.map(|c| c.paths).unwrap_or_default())?,
            allowed_hosts: signatures
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            card_inputs_allowed: globs(&signatures.card_inputs_allowed)?,
            allow_sha256,
            yara: None,
        })
    }

    /// The built-in rules ([`DEFAULT_RULES`]).
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_RULES).expect("the built-in rules parse")
    }

    /// The text these rules were parsed from (kept in the signed baseline).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How `path` (below a root) is treated.
    pub fn classify(&self, path: &str) -> Class {
        if self.uploads.is_match(path) {
            return Class::Upload;
        }
        let mut severity = self.default;
        for (set, level) in &self.watch {
            if set.is_match(path) {
                severity = *level;
            }
        }
        severity.map_or(Class::Ignored, Class::Watched)
    }

    /// True when a rule explicitly ignores `path` (the last rule naming it
    /// says `ignore`): the walk does not go into such a directory.
    pub fn prune(&self, path: &str) -> bool {
        if self.uploads.is_match(path) {
            return false;
        }
        let mut last = None;
        for (set, level) in &self.watch {
            if set.is_match(path) {
                last = Some(*level);
            }
        }
        matches!(last, Some(None))
    }

    /// True for a file in an upload folder whose name makes it executable
    /// by the web server.
    pub fn is_upload_script(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        if SCRIPT_NAMES.contains(&name.as_str()) {
            return true;
        }
        // Every extension counts, not only the last: shell.php.jpg runs as
        // PHP on servers configured with AddHandler.
        name.split('.')
            .skip(1)
            .any(|ext| self.script_extensions.contains(ext))
    }

    /// True when a local customisation allows `path` to differ from the release.
    pub fn is_customisation(&self, path: &str) -> bool {
        self.customisations.is_match(path)
    }

    /// True when card data and forms may go to `host` (the shop's payment
    /// provider, its own domains).
    pub fn host_allowed(&self, host: &str) -> bool {
        self.allowed_hosts
            .iter()
            .any(|h| host == h || host.strip_suffix(h.as_str()).is_some_and(|p| p.ends_with('.')))
    }

    /// True when `path` may hold card-number inputs (the real payment template).
    pub fn card_inputs_allowed(&self, path: &str) -> bool {
        self.card_inputs_allowed.is_match(path)
    }

    /// True when a file with this SHA-256 (hex) is known good.
    pub fn allow_listed(&self, sha256: &str) -> bool {
        self.allow_sha256.contains(sha256)
    }

    /// Adds the user's YARA rules to the signatures.
    pub fn with_yara(mut self, yara: crate::yara::YaraRules) -> Self {
        self.yara = Some(std::sync::Arc::new(yara));
        self
    }

    /// The user's YARA rules, when given.
    pub fn yara(&self) -> Option<&crate::yara::YaraRules> {
        self.yara.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = r#"
default = "low"
[[watch]]
paths = ["app/**", "src/**", "html/**"]
severity = "critical"
[[watch]]
paths = ["var/cache/**", "html/user_data/*.txt"]
severity = "ignore"
[uploads]
paths = ["html/upload/**"]
[signatures]
allowed_hosts = ["pay.example"]
card_inputs_allowed = ["app/template/*/Shopping/payment.twig"]
allow_sha256 = ["E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"]
"#;

    #[test]
    fn later_rules_win_and_uploads_come_first() {
        let rules = Rules::parse(EC).expect("rules");
        assert_eq!(
            rules.classify("app/config/eccube/packages/framework.yaml"),
            Class::Watched(Severity::Critical)
        );
        assert_eq!(rules.classify("html/user_data/robots.txt"), Class::Ignored);
        assert_eq!(
            rules.classify("html/user_data/x/y.txt"),
            Class::Watched(Severity::Critical)
        );
        assert_eq!(rules.classify("var/cache/prod/a.php"), Class::Ignored);
        assert_eq!(rules.classify("var/cache"), Class::Ignored);
        assert_eq!(rules.classify("composer.json"), Class::Watched(Severity::Low));
        assert_eq!(rules.classify("html/upload/save_image/a.jpg"), Class::Upload);
        assert!(rules.is_upload_script("html/upload/save_image/x.php"));
        assert!(rules.is_upload_script("html/upload/save_image/logo.PHP.jpg"));
        assert!(rules.is_upload_script("html/upload/.htaccess"));
        assert!(!rules.is_upload_script("html/upload/save_image/a.jpg"));
    }

    #[test]
    fn signature_settings() {
        let rules = Rules::parse(EC).expect("rules");
        assert!(rules.host_allowed("pay.example") && rules.host_allowed("js.pay.example"));
        assert!(!rules.host_allowed("evilpay.example") && !rules.host_allowed("pay.example.evil"));
        assert!(rules.card_inputs_allowed("app/template/default/Shopping/payment.twig"));
        assert!(!rules.card_inputs_allowed("app/template/default/Shopping/index.twig"));
        assert!(rules.allow_listed("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, needle) in [
            ("default = \"severe\"", "not valid"),
            ("[[watch]]\npaths = [\"a/[\"]\nseverity = \"low\"", "invalid glob"),
            ("[signatures]\nallow_sha256 = [\"abc\"]", "64 hex"),
            ("unknown = 1", "not valid"),
        ] {
            let err = Rules::parse(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn the_builtin_rules_cover_the_usual_shops() {
        let rules = Rules::builtin();
        assert_eq!(
            rules.classify("html/template/default/Shopping/index.twig"),
            Class::Watched(Severity::Critical)
        );
        assert_eq!(rules.classify("wp-content/uploads/2025/01/a.png"), Class::Upload);
        assert_eq!(rules.classify("var/cache/prod/x.php"), Class::Ignored);
        assert_eq!(rules.classify("README.md"), Class::Watched(Severity::High));
    }
}
