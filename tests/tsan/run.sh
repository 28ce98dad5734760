#!/usr/bin/env bash
# ThreadSanitizer run: vuswitchd and vuswitchctl built with clang 16 and -fsanitize=thread
# (build-tsan/), driven by build/'s integration suite through the cases that make the
# control thread, the PMD cores and the metrics threads meet: memory tables published and
# reclaimed under traffic, loans returned from other cores, queues moved between PMD
# cores, GET_VRING_BASE under traffic, ports added and deleted, /metrics scraped while
# ports change, and 15 s of the soak (all of it at once, at random). Any report stops the daemon (halt_on_error) and fails the run; the
# reports are printed. The clang build also checks the control side's lock annotations
# (-Wthread-safety, include/vusw/mutex.h).
#
#   tests/tsan/run.sh                     # the default cases
#   tests/tsan/run.sh 'multicore*'        # doctest -tc patterns instead
#
# Needs clang 16 and its sanitizer runtime (Debian 12: clang-16 libclang-rt-16-dev, which
# deploy/setup.sh installs) and a built build/ (ninja -C build). Exits 0 clean, 1 on a
# report or a failed case, 77 (with "SKIP: reason") when clang 16 is missing.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${VUSW_BUILD:-$ROOT/build}
OUT=${TSAN_BUILD:-$ROOT/build-tsan}
CXX_TSAN=${CXX_TSAN:-clang++-16}

CASES=(
  "adding and removing regions under traffic loses nothing"
  "GET_VRING_BASE stops a ring; SET_VRING_* restarts it where it stopped"
  "two PMD cores*"
  "ports moved between PMD cores while traffic flows*"
  "pinning a multiqueue port moves all its pairs*"
  "multiqueue: flows to a 4-pair guest*"
  "dirty log: GET_VRING_BASE publishes*"
  "add_port*"
  "100 port add/del cycles*"
  "ctl JSON and /metrics describe the same ports"
  "frames cross the switch intact and are counted exactly"
  "packed rings: mixed frames cross the switch intact*"
  "hotplug proof traffic with the two guests on different PMD cores*"
  "soak*"
)
(($#)) && CASES=("$@")

command -v "$CXX_TSAN" >/dev/null || { echo "SKIP: $CXX_TSAN not found (apt-get install clang-16 libclang-rt-16-dev)"; exit 77; }
IT=$BUILD/tests/integration/integration_tests
[[ -x $IT ]] || { echo "tsan: $IT missing: build build/ first (ninja -C build)" >&2; exit 1; }

echo "tsan: building vuswitchd with $CXX_TSAN -fsanitize=thread in $OUT"
if [[ ! -f $OUT/build.ninja ]]; then
  # -O1 with line tables, as build-asan: exact reports, a fraction of -O2 -g's compile time.
  CXX=$CXX_TSAN meson setup "$OUT" --buildtype=debugoptimized -Doptimization=1 -Ddebug=false \
    -Dcpp_args=-gline-tables-only -Db_sanitize=thread -Db_lundef=false \
    -Dtests=disabled >/dev/null || { echo "tsan: meson setup failed" >&2; exit 1; }
fi
ninja -C "$OUT" control/vuswitchd control/vuswitchctl || { echo "tsan: build failed" >&2; exit 1; }

REPORTS=$(mktemp -d /tmp/vusw-tsan.XXXXXX)
trap 'rm -rf "$REPORTS"' EXIT
filter=$(IFS=,; echo "${CASES[*]}")
echo "tsan: ${#CASES[@]} case patterns against $OUT/control/vuswitchd"
env TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan/suppressions.txt log_path=$REPORTS/report" \
  VUSW_SOAK_SECONDS=${VUSW_SOAK_SECONDS:-15} VUSWITCHD="$OUT/control/vuswitchd" VUSWITCHCTL="$OUT/control/vuswitchctl" VUSW_SOURCE_DIR="$ROOT" \
  "$IT" --test-case="$filter"
rc=$?
shopt -s nullglob
reports=("$REPORTS"/report*)
if ((${#reports[@]})); then
  echo "tsan: ${#reports[@]} ThreadSanitizer report file(s):"
  cat "${reports[@]}"
  exit 1
fi
((rc == 0)) || { echo "tsan: integration cases failed (exit $rc), no ThreadSanitizer report" >&2; exit 1; }
echo "tsan: clean"
