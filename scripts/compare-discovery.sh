#!/usr/bin/env bash
# anshin scan against PANhunt 2.2.0 (and ripgrep as a raw I/O and regex
# reference) on the same generated files: one JSON line per tool with bytes,
# seconds, MB/s and, for anshin and PANhunt, card-number recall and precision
# against the planted truth; anshin twice, looking for everything and for
# card data only (`--only card,cvc,expiry`, PANhunt's job). Not run by CI.
#
#   scripts/compare-discovery.sh [MIB]        (default 20)
#
# PANhunt is not a dependency of the repository; install it outside it:
#   python3 -m venv /tmp/panhunt/venv && /tmp/panhunt/venv/bin/pip install panhunt==2.2.0
# and point PANHUNT at its executable (default /tmp/panhunt/venv/bin/panhunt).
# ripgrep is optional (RG, default `rg` on PATH): apt-get install ripgrep.
#
# The files (MIB MiB of each) are anshin-detect's labelled corpus (scored)
# and its plain text (speed only); crates/anshin-scan/examples/compare_corpus.rs
# writes them and scores the reports. Reports hold masked
# values and keyed fingerprints only; this script prints counts and rates.
# Both scanners and rg use 2 threads. WORK (default /tmp/panhunt/compare) is
# removed and rewritten.
set -euo pipefail

MIB=${1:-20}
PANHUNT=${PANHUNT:-/tmp/panhunt/venv/bin/panhunt}
RG=${RG:-rg}
WORK=${WORK:-/tmp/panhunt/compare}
THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

if [ ! -x "$PANHUNT" ]; then
    echo "compare-discovery: PANhunt not found at $PANHUNT" >&2
    echo "  install: python3 -m venv /tmp/panhunt/venv && /tmp/panhunt/venv/bin/pip install panhunt==2.2.0" >&2
    echo "  or set PANHUNT=/path/to/panhunt" >&2
    exit 2
fi

# Two builds: with --example, cargo builds only the example, not anshin's binary.
(cd "$ROOT" && cargo build -q --release -p anshin --bin anshin && cargo build -q --release -p anshin-scan --example compare_corpus)
ANSHIN=$TARGET/release/anshin
COMPARE=$TARGET/release/examples/compare_corpus

rm -rf "$WORK"
mkdir -p "$WORK"
"$COMPARE" write "$WORK" "$MIB" >&2

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }

run() { # CORPUS: labelled (scored) or plain (speed only)
    local dir=$WORK/$1 t0 t1 report bytes s matches
    sync
    # anshin: every card finding at the default confidence (medium and up).
    t0=$(now)
    "$ANSHIN" scan "$dir/files" --format jsonl --threads "$THREADS" \
        --fingerprint-key "$WORK/key.hex" -o "$dir/anshin.jsonl" >/dev/null 2>&1 || true
    t1=$(now)
    "$COMPARE" score "$dir" anshin "$dir/anshin.jsonl" "$(secs "$t0" "$t1")"

    # anshin on PANhunt's job: card data only (`--only card,cvc,expiry`).
    t0=$(now)
    "$ANSHIN" scan "$dir/files" --format jsonl --threads "$THREADS" --only card,cvc,expiry \
        --fingerprint-key "$WORK/key.hex" -o "$dir/anshin-card-data.jsonl" >/dev/null 2>&1 || true
    t1=$(now)
    "$COMPARE" score "$dir" anshin-card-data "$dir/anshin-card-data.jsonl" "$(secs "$t0" "$t1")"

    # PANhunt: its JSON report lists masked PANs (first six, last four) per file.
    mkdir -p "$dir/panhunt"
    t0=$(now)
    (cd "$dir/panhunt" && "$PANHUNT" "$dir/files" -q -w "$THREADS" -o "$dir/panhunt" -j "$dir/panhunt" >/dev/null 2>&1) || true
    t1=$(now)
    report=$(ls "$dir"/panhunt/panhunt_*.json 2>/dev/null | head -n1 || true)
    if [ -z "$report" ]; then
        echo "compare-discovery: PANhunt wrote no JSON report" >&2
        exit 1
    fi
    "$COMPARE" score "$dir" panhunt "$report" "$(secs "$t0" "$t1")"

    # ripgrep: runs of 13-19 digits with optional single spaces or hyphens; a
    # count of matches only (speed reference, no validation, no scoring).
    if command -v "$RG" >/dev/null 2>&1; then
        bytes=$(find "$dir/files" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
        t0=$(now)
        matches=$("$RG" -j "$THREADS" --no-filename --count-matches -a \
            '[0-9](?:[ -]?[0-9]){12,18}' "$dir/files" | awk '{s+=$1} END {print s+0}')
        t1=$(now)
        s=$(secs "$t0" "$t1")
        printf '{"tool":"ripgrep","corpus":"%s","bytes":%s,"seconds":%.3f,"mb_per_s":%.3f,"matches":%s}\n' \
            "$1" "$bytes" "$s" "$(echo "$bytes / $s / 1000000" | bc -l)" "$matches"
    else
        echo "compare-discovery: rg not found, ripgrep line left out (apt-get install ripgrep)" >&2
    fi
}

run labelled
run plain
