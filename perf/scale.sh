#!/usr/bin/env bash
# Scale of cycles: tests/integration/scale_test.cc against build/'s vuswitchd (or
# VUSWITCHD=...): 1,000 guest lives (connect, negotiate, memory, rings, byte-checked
# frames both ways, disconnect) and 10,000 ADD_MEM_REG / REM_MEM_REG cycles on a guest
# whose two-way traffic keeps flowing. Prints fds, mappings, RSS, DPDK heap and mbufs in
# use before and after each, and fails if any is not back (RSS: by more than the packet
# pool's first-touched pages), a frame is lost or corrupted, or a counter is not exact.
#
#   perf/scale.sh [--lives N] [--mem-cycles N]     # defaults 1000 and 10000
#
# Exit status: 0 pass, 1 fail. Needs root and a built build/ (ninja -C build).
set -euo pipefail
cd "$(dirname "$0")/.."
lives=1000
mem_cycles=10000
while (($#)); do
  case $1 in
    --lives) lives=$2; shift 2 ;;
    --mem-cycles) mem_cycles=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf/scale.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$lives" "$mem_cycles"; do
  [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || { echo "perf/scale.sh: counts are whole numbers > 0" >&2; exit 2; }
done
BUILD=${VUSW_BUILD:-build}
IT=$BUILD/tests/integration/integration_tests
[[ -x $IT ]] || { echo "perf/scale.sh: $IT missing: run ninja -C $BUILD first" >&2; exit 1; }
echo "scale: $lives guest lives, $mem_cycles ADD/REM cycles against ${VUSWITCHD:-$BUILD/control/vuswitchd}"
exec env VUSW_SCALE=1 VUSW_SCALE_LIVES="$lives" VUSW_SCALE_MEM_CYCLES="$mem_cycles" VUSW_SOURCE_DIR="$PWD" \
  "$IT" --test-case='scale*'
