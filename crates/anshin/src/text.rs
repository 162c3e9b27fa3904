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

#[cfg(test)]
mod tests {
    use super::*;

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
