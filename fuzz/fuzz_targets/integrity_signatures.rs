//! The skimmer signatures and the page-facts extractor over hostile bytes,
//! as every kind of file they look at: never panic, every line inside the
//! input.
#![no_main]

use std::sync::LazyLock;

use anshin_integrity::facts::{self, PageFacts};
use anshin_integrity::rules::Rules;
use anshin_integrity::signatures::scan_bytes;
use libfuzzer_sys::fuzz_target;

/// Compiled once, as the file scanner does.
static RULES: LazyLock<Rules> = LazyLock::new(Rules::builtin);

// Built before the first input, so no input is timed with it.
fuzz_target!(init: LazyLock::force(&RULES), |input: &[u8]| {
    let rules = &*RULES;
    let lines = input.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for path in ["a.js", "a.php", "a.twig", "a.html", "a.gif", "upload/a", "a.phtml"] {
        for finding in scan_bytes(path, input, rules) {
            assert!(finding.line >= 1 && finding.line <= lines);
        }
    }
    let extracted = PageFacts::extract(input);
    let _ = facts::compare(extracted.as_ref(), None);
});
