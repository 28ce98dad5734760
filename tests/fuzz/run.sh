#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (no meson: the .cc files they need, compiled
# directly) and runs each for a bounded time. Exits non-zero if a build fails or a
# target finds a crash; crash inputs are kept in $OUT/<target>/.
#
#   tests/fuzz/run.sh                 # every target, FUZZ_TIME seconds each (default 20)
#   FUZZ_TIME=300 tests/fuzz/run.sh fuzz_virtqueue
#   tests/fuzz/run.sh --build-only
#
# Needs clang >= 16 and its libFuzzer runtime (Debian 12: clang-16 libclang-rt-16-dev).
# clang 14 cannot compile libstdc++ 12's std::expected: it lacks conditionally trivial
# special members (P0848), and libstdc++ hides <expected> unless __cpp_concepts >= 202002,
# which clang 16 still does not advertise although it implements it; hence the -D below.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
TIME=${FUZZ_TIME:-20}
BUILD_ONLY=0
TARGETS=()
for arg in "$@"; do
  case $arg in
    --build-only) BUILD_ONLY=1 ;;
    *) TARGETS+=("$arg") ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_dispatch fuzz_virtqueue fuzz_packed_queue fuzz_memtable fuzz_config fuzz_control)

find_clang() {
  local c v
  for c in ${CXX_FUZZ:-} clang++-19 clang++-18 clang++-17 clang++-16 clang++; do
    command -v "$c" >/dev/null 2>&1 || continue
    v=$("$c" -dumpversion 2>/dev/null | cut -d. -f1)
    if [ "${v:-0}" -ge 16 ]; then echo "$c"; return 0; fi
  done
  return 1
}
CXX=$(find_clang) || {
  echo "fuzz: need clang >= 16 with libFuzzer (apt-get install clang-16 libclang-rt-16-dev);" >&2
  echo "fuzz: clang 14 cannot compile libstdc++ 12's std::expected" >&2
  exit 2
}

DPDK_CFLAGS=$(pkg-config --cflags libdpdk | sed 's/-I/-isystem /g')  # no warnings from DPDK headers
CXXFLAGS=(-std=c++2b -D__cpp_concepts=202002L -Wno-macro-redefined -Wno-builtin-macro-redefined
          -gline-tables-only -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
          -fno-sanitize-recover=undefined -I"$ROOT/include" -I"$ROOT" -DVUSW_VERSION=\"fuzz\")

# Sources each target links (besides itself).
declare -A SOURCES=(
  [fuzz_dispatch]="control/vhost_user/connection.cc control/vhost_user/dispatch.cc control/vhost_user/session.cc
                   control/vhost_user/userfault.cc dataplane/dirty_log.cc
                   dataplane/log.cc ports/vhost_port.cc ports/vhost_guest_tx.cc ports/vhost_guest_rx.cc
                   ports/vhost_loans.cc dataplane/guest_memory.cc dataplane/virtqueue.cc dataplane/packed_queue.cc
                   dataplane/flow_hash.cc dataplane/offload.cc dataplane/rcu.cc dataplane/fdb.cc dataplane/port.cc
                   dataplane/vlan.cc dataplane/l2switch.cc dataplane/pmd.cc dataplane/mtu.cc"
  [fuzz_virtqueue]="dataplane/guest_memory.cc dataplane/virtqueue.cc dataplane/dirty_log.cc"
  [fuzz_packed_queue]="dataplane/guest_memory.cc dataplane/virtqueue.cc dataplane/packed_queue.cc dataplane/dirty_log.cc"
  [fuzz_memtable]="dataplane/guest_memory.cc"
  [fuzz_config]="control/config.cc control/vxlan_config.cc control/privileges.cc dataplane/log.cc dataplane/vlan.cc"
)
# fuzz_control: the management code and what it reports on (fuzz_dispatch's sources).
SOURCES[fuzz_control]="control/management.cc control/control_connections.cc control/fd_reserve.cc control/privileges.cc control/event_loop.cc control/config.cc
                       control/vxlan_config.cc control/scheduler.cc control/vhost_user/features.cc dataplane/rxq_assign.cc
                       ports/vxlan_port.cc ports/ethdev_port.cc dataplane/vxlan.cc ${SOURCES[fuzz_dispatch]}"
declare -A LIBS=(
  [fuzz_dispatch]="$(pkg-config --libs libdpdk) -lfmt -lpthread"
  [fuzz_virtqueue]="-lfmt"
  [fuzz_packed_queue]="-lfmt"
  [fuzz_memtable]="-lfmt"
  [fuzz_config]="$(pkg-config --libs libdpdk) -lboost_program_options -lfmt"
  [fuzz_control]="$(pkg-config --libs libdpdk) -lboost_program_options -lfmt -lpthread"
)

mkdir -p "$OUT/obj"
[ -f "$OUT/.gitignore" ] || echo "*" >"$OUT/.gitignore"  # build output, never committed
object() { local src=$1; echo "$OUT/obj/${src//\//_}.o"; }
compile() {  # compile SRC -> object, only when the source changed
  local src=$1 obj
  obj=$(object "$src")
  if [ ! -f "$obj" ] || [ "$ROOT/$src" -nt "$obj" ] || [ "$FUZZ_SCRIPT" -nt "$obj" ]; then
    # shellcheck disable=SC2086
    "$CXX" "${CXXFLAGS[@]}" $DPDK_CFLAGS -c "$ROOT/$src" -o "$obj"
  fi
}
export -f object compile
FUZZ_SCRIPT=$(realpath "$0")
export CXX OUT ROOT DPDK_CFLAGS FUZZ_SCRIPT
export CXXFLAGS_LIST="${CXXFLAGS[*]}"

# Every source once, compiled on all cores (the sanitized vhost loops take minutes each).
sources=()
for t in "${TARGETS[@]}"; do
  [ -n "${SOURCES[$t]+x}" ] || { echo "fuzz: unknown target $t" >&2; exit 2; }
  for src in tests/fuzz/$t.cc ${SOURCES[$t]}; do sources+=("$src"); done
done
echo "fuzz: compiling $(printf '%s\n' "${sources[@]}" | sort -u | wc -l) sources on $(nproc) cores"
# shellcheck disable=SC2016
printf '%s\n' "${sources[@]}" | sort -u |
  xargs -P "$(nproc)" -I{} bash -c 'read -ra CXXFLAGS <<<"$CXXFLAGS_LIST"; compile "$1"' _ {} ||
  { echo "fuzz: compiling failed" >&2; exit 1; }

status=0
for t in "${TARGETS[@]}"; do
  [ -n "${SOURCES[$t]+x}" ] || { echo "fuzz: unknown target $t" >&2; exit 2; }
  objs=()
  for src in tests/fuzz/$t.cc ${SOURCES[$t]}; do
    objs+=("$(object "$src")")
  done
  # shellcheck disable=SC2086
  "$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer "${objs[@]}" ${LIBS[$t]} -o "$OUT/$t"
  echo "fuzz: built $OUT/$t"
  [ $BUILD_ONLY = 1 ] && continue

  corpus="$OUT/corpus/$t"
  mkdir -p "$corpus" "$OUT/$t.crashes"
  seeds=()
  [ -d "$ROOT/tests/fuzz/corpus/$t" ] && seeds=("$ROOT/tests/fuzz/corpus/$t")
  echo "fuzz: running $t for ${TIME}s"
  if ! "$OUT/$t" -max_total_time="$TIME" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/$t.crashes/" "$corpus" "${seeds[@]}" >"$OUT/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; tail of $OUT/$t.log:" >&2
    tail -40 "$OUT/$t.log" >&2
    status=1
  else
    echo "fuzz: $t ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$t.log" | grep -o '[0-9]*$') runs)"
  fi
done
exit $status
