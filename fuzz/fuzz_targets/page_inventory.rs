//! The page monitor's inventory parser over hostile HTML: never panics, keeps
//! at most MAX_ITEMS of each list, and every script key has one of the two
//! shapes authorisations are matched on.
#![no_main]

use anshin::integrity::page::{self, SecurityHeaders};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let base = url::Url::parse("https://shop.example/checkout/").expect("url");
    let inventory = page::inventory(&base, input, SecurityHeaders::default(), false);
    assert!(inventory.scripts.len() <= page::MAX_ITEMS);
    for script in &inventory.scripts {
        assert!(script.key.starts_with("src:") || script.key.starts_with("inline:sha256-"));
    }
    // Comparing with itself, everything authorised, finds nothing.
    let authorised = inventory.scripts.iter().map(|s| s.key.clone()).collect();
    let hosts = inventory.forms.iter().filter_map(|f| f.host.clone()).collect();
    let findings = page::compare(
        &inventory,
        &page::Reference {
            previous: Some(&inventory),
            authorised: &authorised,
            form_hosts: &hosts,
            page_host: "shop.example",
        },
    );
    assert!(findings.is_empty(), "{findings:?}");
});
