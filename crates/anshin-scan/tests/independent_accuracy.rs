//! Accuracy on a corpus that shares no code with the detectors
//! (`independent/mod.rs`): card numbers, My Numbers and phone numbers planted
//! in Japanese and English text, in UTF-8 and Shift_JIS, scored by byte span
//! through the whole pipeline. The figures: recall ≥ 99.9 % and
//! precision ≥ 99 % for each. Prints counts and rates only.

mod independent;

use std::io::Cursor;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use anshin_scan::{Category, Discovery, Limits, Scanner};
use independent::{Kind, Output};

fn kind(category: Category) -> Option<Kind> {
    match category {
        Category::Card => Some(Kind::Card),
        Category::MyNumber => Some(Kind::MyNumber),
        Category::Phone => Some(Kind::Phone),
        _ => None,
    }
}

fn check(seed: u64, output: Output) {
    let corpus = independent::generate(seed, 1500, output);
    let key = KeyBytes::from_slice(&[7u8; 32]).expect("32 bytes");
    let discovery = Discovery::new(Scanner::new(FingerprintKey::new(&key)), Limits::default());
    let mut findings = Vec::new();
    discovery.scan_reader("independent.txt", &mut Cursor::new(&corpus.bytes), &mut |r| {
        for f in r.findings {
            if let Some(k) = kind(f.category) {
                findings.push((k, f.locator.byte_offset, f.locator.byte_len));
            }
        }
    });
    println!(
        "{output:?}: {} bytes, {} hard negatives",
        corpus.bytes.len(),
        corpus.negatives
    );
    for (kind, planted, reported, tp) in independent::score(&corpus, &findings) {
        let recall = tp as f64 / planted as f64;
        let precision = if reported == 0 {
            1.0
        } else {
            tp as f64 / reported as f64
        };
        println!(
            "{output:?} {:<10} planted {planted:>5} reported {reported:>5} recall {recall:.4} precision {precision:.4}",
            kind.name()
        );
        assert!(
            planted > 1000,
            "{}: too few planted to measure 99.9 %",
            kind.name()
        );
        assert!(recall >= 0.999, "{output:?} {}: recall {recall:.4}", kind.name());
        assert!(
            precision >= 0.99,
            "{output:?} {}: precision {precision:.4}",
            kind.name()
        );
    }
}

#[test]
fn independent_corpus_utf8_meets_the_figures() {
    check(0x5EED_0001, Output::Utf8);
}

#[test]
fn independent_corpus_shift_jis_meets_the_figures() {
    check(0x5EED_0002, Output::ShiftJis);
}

/// The generator's own check digits agree with published numbers, so a
/// wrong algorithm here cannot make the detectors look right.
#[test]
fn generator_check_digits_match_published_values() {
    // 4111 1111 1111 1111, the common Visa test number.
    assert_eq!(
        independent::luhn_digit(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
        1
    );
    // 1234 5678 9018, the commonly cited valid My Number.
    assert_eq!(
        independent::my_number_digit(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]),
        8
    );
    // 4901234567894, GS1 Japan's EAN-13 example.
    assert_eq!(independent::ean_digit(&[4, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), 4);
    // 7000012050002, the National Tax Agency's own corporate number.
    assert_eq!(
        independent::corporate_digit(&[0, 0, 0, 0, 1, 2, 0, 5, 0, 0, 0, 2]),
        7
    );
}
