//! The CSP report parser over hostile bodies in both formats: never panics,
//! and no destination it keeps has a path or a query (where a skimmer's
//! beacon would carry card data).
#![no_main]

use anshin::integrity::csp::{self, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    for format in [Format::Legacy, Format::Reporting] {
        if let Ok(violations) = csp::parse(format, input) {
            assert!(violations.len() <= csp::MAX_REPORTS);
            for v in violations {
                assert!(!v.destination.contains('?'));
                let after_scheme = v.destination.split_once("://").map_or("", |(_, rest)| rest);
                assert!(!after_scheme.contains('/'), "{}", v.destination);
            }
        }
    }
});
