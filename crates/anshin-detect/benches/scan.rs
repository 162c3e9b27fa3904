//! Throughput of the scanner over generated everyday text (mostly Japanese and
//! log lines, a planted value every few kilobytes) and over a CSV export.
//! Kept short on purpose: `cargo bench -p anshin-detect`.

use std::hint::black_box;
use std::time::Duration;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use anshin_detect::{Scanner, corpus};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn scanner() -> Scanner {
    let key = KeyBytes::from_slice(&[9u8; 32]).unwrap_or_else(|_| unreachable!("32 bytes"));
    Scanner::new(FingerprintKey::new(&key))
}

fn bench(c: &mut Criterion) {
    let scanner = scanner();
    let text = corpus::plain_text(1, 8 * 1024 * 1024, &scanner);
    let ascii_log: String = text
        .lines()
        .filter(|l| l.is_ascii())
        .collect::<Vec<_>>()
        .join("\n")
        .repeat(3);
    let csv = corpus::generate(7, 3, &scanner).documents.swap_remove(2).bytes;

    let mut group = c.benchmark_group("scan");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("plain_text_utf8", |b| {
        b.iter(|| black_box(scanner.scan(black_box(text.as_bytes()))))
    });
    group.throughput(Throughput::Bytes(ascii_log.len() as u64));
    group.bench_function("ascii_log", |b| {
        b.iter(|| black_box(scanner.scan(black_box(ascii_log.as_bytes()))))
    });
    group.throughput(Throughput::Bytes(csv.len() as u64));
    group.bench_function("csv_export", |b| {
        b.iter(|| black_box(scanner.scan_csv(black_box(&csv), None)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
