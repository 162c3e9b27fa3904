//! Checks for free text that is not personal data (names of tenants, shops,
//! principals). Error messages never repeat the input.

use crate::error::{Error, Result};

/// A display name: trimmed, 1 to `max` characters, no control characters.
pub fn label(value: &str, max: usize, code: &'static str, field: &'static str) -> Result<String> {
    let trimmed = value.trim();
    let count = trimmed.chars().count();
    if count == 0 || count > max || trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(
            code,
            format!("{field} must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Text for an HTML element or a double- or single-quoted attribute value.
pub fn html_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills `{{name}}` placeholders; every value is given already escaped.
/// A placeholder without a value is a bug in the caller (its tests render
/// every template), so it is left visible rather than guessed.
pub fn fill<K: AsRef<str>, V: AsRef<str>>(template: &str, values: &[(K, V)]) -> String {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = &after[..end];
                match values.iter().find(|(k, _)| k.as_ref() == key) {
                    Some((_, v)) => out.push_str(v.as_ref()),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_leaves_unknown_placeholders_visible() {
        assert_eq!(fill("a{{x}}b{{y}}c{{", &[("x", "1")]), "a1b{{y}}c{{");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape(r#"<a href="x" title='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(html_escape("あんしん"), "あんしん");
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(
            label("  あんしん市場 ", 10, "invalid_name", "name").expect("ok"),
            "あんしん市場"
        );
        assert!(label("", 10, "invalid_name", "name").is_err());
        assert!(label("a\u{0}b", 10, "invalid_name", "name").is_err());
        assert!(label(&"x".repeat(11), 10, "invalid_name", "name").is_err());
    }
}
