#!/usr/bin/env bash
# The soak: tests/integration/soak_test.cc for N minutes against build/'s vuswitchd (or
# VUSWITCHD=...): two pairs of guests with byte-checked two-way traffic of mixed sizes on
# two PMD cores while one guest keeps moving its buffers to new memory regions
# (ADD_MEM_REG / REM_MEM_REG), ports are pinned to other cores and rebalanced, a guest
# reconnects and ports are added and deleted at random. At the end: no frame lost,
# duplicated, reordered or corrupted, exact counters, no drops, fds and mappings back at
# their baseline, DPDK heap and packet buffers in use back, RSS, heap and buffers printed.
#
#   perf/soak.sh [--minutes N] [--seed S]     # default 30 minutes, a random seed (printed)
#
# tests/run.sh runs it for 2 minutes. Progress is printed every minute. Exit status: 0
# pass, 1 fail. Needs root and a built build/ (ninja -C build).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=30
seed=
while (($#)); do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf/soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $minutes =~ ^[0-9]+$ && $minutes -gt 0 ]] || { echo "perf/soak.sh: --minutes takes a whole number > 0" >&2; exit 2; }
BUILD=${VUSW_BUILD:-build}
IT=$BUILD/tests/integration/integration_tests
[[ -x $IT ]] || { echo "perf/soak.sh: $IT missing: run ninja -C $BUILD first" >&2; exit 1; }
echo "soak: $minutes min against ${VUSWITCHD:-$BUILD/control/vuswitchd}"
exec env VUSW_SOAK_SECONDS=$((minutes * 60)) ${seed:+VUSW_SOAK_SEED=$seed} VUSW_SOURCE_DIR="$PWD" \
  "$IT" --test-case='soak*'
