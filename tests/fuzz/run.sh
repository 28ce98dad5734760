#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/meson.build: a clang build with -Dfuzz=true,
# ASan and UBSan, its code compiled for coverage) and runs each for a bounded time. Exits
# non-zero if the build fails or a target finds a crash; crash inputs are kept in
# $OUT/<target>.crashes/.
#
#   tests/fuzz/run.sh                 # every target, FUZZ_TIME seconds each (default 20),
#                                     # FUZZ_JOBS at a time (default: one per core)
#   FUZZ_TIME=300 tests/fuzz/run.sh fuzz_virtqueue
#   tests/fuzz/run.sh --build-only
#
# FUZZ_OUT (default build-fuzz/) holds the working corpora, crashes and logs, and is the
# build directory unless FUZZ_BUILD names another one configured with the same options
# (tests/run.sh passes build-asan/, so the daemon's objects are compiled once for both).
# Needs clang >= 16 and its libFuzzer runtime (Debian 12: clang-16 libclang-rt-16-dev).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
BUILD=${FUZZ_BUILD:-$OUT}
TIME=${FUZZ_TIME:-20}
BUILD_ONLY=0
TARGETS=()
for arg in "$@"; do
  case $arg in
    --build-only) BUILD_ONLY=1 ;;
    *) TARGETS+=("$arg") ;;
  esac
done
ALL=(fuzz_dispatch fuzz_virtqueue fuzz_packed_queue fuzz_memtable fuzz_config fuzz_control)
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $t (targets: ${ALL[*]})" >&2; exit 2; }
done

find_clang() {
  local c v
  for c in ${CXX_FUZZ:-} clang++-19 clang++-18 clang++-17 clang++-16 clang++; do
    command -v "$c" >/dev/null 2>&1 || continue
    v=$("$c" -dumpversion 2>/dev/null | cut -d. -f1)
    if [ "${v:-0}" -ge 16 ]; then echo "$c"; return 0; fi
  done
  return 1
}

mkdir -p "$OUT"
if [ ! -f "$BUILD/build.ninja" ]; then
  CXX=$(find_clang) || {
    echo "fuzz: need clang >= 16 with libFuzzer (apt-get install clang-16 libclang-rt-16-dev);" >&2
    echo "fuzz: clang 14 cannot compile libstdc++ 12's std::expected" >&2
    exit 2
  }
  # -O1 with line tables, as build-asan: exact reports at a fraction of -O2 -g's compile time.
  CXX=$CXX meson setup "$BUILD" --buildtype=debugoptimized -Doptimization=1 -Ddebug=false \
    -Dcpp_args=-gline-tables-only -Db_sanitize=address,undefined -Db_lundef=false \
    -Dtests=disabled -Dfuzz=true >/dev/null || { echo "fuzz: meson setup of $BUILD failed" >&2; exit 1; }
fi
[ -f "$OUT/.gitignore" ] || echo "*" >"$OUT/.gitignore"  # build output, never committed
ninja -C "$BUILD" "${TARGETS[@]/#/tests/fuzz/}" || { echo "fuzz: building the targets failed" >&2; exit 1; }
[ $BUILD_ONLY = 1 ] && exit 0

# A UBSan report is a finding: abort, which libFuzzer catches and keeps the input of.
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
# run_one TARGET: fuzz it for TIME seconds and print its verdict; a finding leaves
# $OUT/TARGET.failed.
run_one() {
  local t=$1 corpus="$OUT/corpus/$1" seeds=()
  mkdir -p "$corpus" "$OUT/$t.crashes"
  [ -d "$ROOT/tests/fuzz/corpus/$t" ] && seeds=("$ROOT/tests/fuzz/corpus/$t")
  if ! "$BUILD/tests/fuzz/$t" -max_total_time="$TIME" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/$t.crashes/" "$corpus" "${seeds[@]}" >"$OUT/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; tail of $OUT/$t.log:" >&2
    tail -40 "$OUT/$t.log" >&2
    touch "$OUT/$t.failed"
    return
  fi
  echo "fuzz: $t ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$t.log" | grep -o '[0-9]*$') runs)"
}

# One target per core at a time (FUZZ_JOBS): each libFuzzer process is single-threaded.
JOBS=${FUZZ_JOBS:-$(nproc)}
echo "fuzz: ${#TARGETS[@]} target(s), ${TIME}s each, $JOBS at a time"
for t in "${TARGETS[@]}"; do
  rm -f "$OUT/$t.failed"
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_one "$t" &
done
wait
status=0
for t in "${TARGETS[@]}"; do
  [ ! -e "$OUT/$t.failed" ] || status=1
done
exit $status
