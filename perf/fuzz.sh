#!/usr/bin/env bash
# Long fuzzing runs of one libFuzzer target (tests/fuzz/run.sh runs each only briefly).
#
#   perf/fuzz.sh TARGET SECONDS      e.g. perf/fuzz.sh fuzz_control 300
#
# Builds the target with tests/fuzz/run.sh --build-only (clang >= 16), runs it for SECONDS
# on its working corpus ($FUZZ_OUT/corpus/TARGET, kept between runs) and the checked-in
# seeds (tests/fuzz/corpus/TARGET, only read), on one core, and prints one summary line:
#
#   fuzz_control: 300 s, 1234567 execs (4115/s), cov: 2101 ft: 6890, corpus 812, findings 0
#
# cov: is the code edges reached, ft: libFuzzer's finer features; both from its last status
# line. A finding (crash, leak, timeout, broken invariant) is kept in
# $FUZZ_OUT/TARGET.crashes/ and the exit status is 1: turn each into a regression test,
# then add the input to tests/fuzz/corpus/TARGET. The full log is $FUZZ_OUT/TARGET.long.log.
# On a shared machine wrap it: flock /tmp/vusw-heavy.lock nice perf/fuzz.sh TARGET SECONDS
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
BUILD=${FUZZ_BUILD:-$OUT}  # the meson build directory of the targets (tests/fuzz/run.sh)
if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: perf/fuzz.sh TARGET SECONDS (targets: the fuzz_*.cc of tests/fuzz)" >&2
  exit 2
fi
TARGET=$1
SECONDS_TO_RUN=$2

"$ROOT/tests/fuzz/run.sh" --build-only "$TARGET"

corpus="$OUT/corpus/$TARGET"
crashes="$OUT/$TARGET.crashes"
log="$OUT/$TARGET.long.log"
mkdir -p "$corpus" "$crashes"
seeds=()
[ -d "$ROOT/tests/fuzz/corpus/$TARGET" ] && seeds=("$ROOT/tests/fuzz/corpus/$TARGET")
before=$(find "$crashes" -type f | wc -l)
echo "fuzz: running $TARGET for ${SECONDS_TO_RUN}s (log: $log)"
status=0
UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
  "$BUILD/tests/fuzz/$TARGET" -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$crashes/" "$corpus" "${seeds[@]}" >"$log" 2>&1 || status=$?

execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
size=$(find "$corpus" -type f | wc -l)
findings=$(($(find "$crashes" -type f | wc -l) - before))
rate=$(( ${execs:-0} / (SECONDS_TO_RUN > 0 ? SECONDS_TO_RUN : 1) ))
echo "$TARGET: ${SECONDS_TO_RUN} s, ${execs:-?} execs (${rate}/s), cov: ${cov:-?} ft: ${ft:-?}, corpus $size, findings $findings"
if [ "$status" -ne 0 ] || [ "$findings" -gt 0 ]; then
  echo "fuzz: $TARGET found something (exit $status); inputs in $crashes; tail of $log:" >&2
  tail -30 "$log" >&2
  exit 1
fi
