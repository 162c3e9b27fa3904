#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS seconds each, one after the
# other, on the stable toolchain, and prints one line per target:
# executions, seconds, exec/s, coverage (cov/ft), peak RSS and the outcome.
# Not run by CI.
#
#   scripts/fuzz-all.sh [SECONDS] [TARGET...]     (default 60, every target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). RUSTC_BOOTSTRAP=1 lets the
# stable rustc take the -Z flags cargo-fuzz passes (sanitizer, coverage);
# SANITIZER=none builds without AddressSanitizer. An input slower than
# TIMEOUT seconds or allocating more than 200 MB at once is a failure
# (default 5 s: instrumented, on two shared cores, the scanner reads hostile
# text at about 1 MiB/s, and a gzip member expands 1 MiB before the ratio
# limit applies). Inputs the fuzzer finds go to WORK
# (default /tmp/anshin-fuzz/<target>), not to the seeds in fuzz/corpus;
# a failing input is saved in fuzz/artifacts/<target>/ and the script goes
# on with the next target, then exits 1.
set -uo pipefail

SECONDS_EACH=${1:-60}
shift $(($# > 0 ? 1 : 0))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/anshin-fuzz}
TIMEOUT=${TIMEOUT:-5}
SANITIZER=${SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/fuzz/target}
# A small quarantine keeps AddressSanitizer's own memory out of the RSS
# figures. The ODR check is off: the bundled SQLite (in every target that
# links the anshin crate) has two function-local arrays named `aiOff`, which
# it reports as one global defined twice before the first input runs.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16:detect_odr_violation=0}

cd "$ROOT/fuzz"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
mkdir -p "$WORK"
cargo fuzz build -s "$SANITIZER" >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log"; exit 1; }

failed=0
for t in "${targets[@]}"; do
  mkdir -p "$WORK/$t" "corpus/$t"
  log="$WORK/$t.log"
  cargo fuzz run -s "$SANITIZER" "$t" "$WORK/$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -malloc_limit_mb=200 \
    -rss_limit_mb=1024 -report_slow_units=1 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1)
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1 ft \2/p' <<<"$last")
  slow=$(sed -n 's/^Slowest unit: \([0-9]*\) s.*/, slowest input \1 s/p' "$log" | tail -n1)
  if [ $rc -eq 0 ]; then
    outcome="clean$slow"
  else
    outcome="FAILED (rc $rc, see $log and fuzz/artifacts/$t/)"
    failed=1
  fi
  printf '%s: %s runs in %s s (%s exec/s), %s, peak RSS %s MB: %s\n' "$t" "${runs:-?}" "${secs:-?}" \
    "$(( ${runs:-0} / (${secs:-1} > 0 ? ${secs:-1} : 1) ))" "${cov:-?}" "${rss:-?}" "$outcome"
done
exit $failed
