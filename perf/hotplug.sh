#!/usr/bin/env bash
# Hotplug benchmark (issue 3): loopback traffic between two fake vhost-user guests
# through vuswitchd while one guest's memory is re-laid-out (ADD_MEM_REG a new
# region, buffers moved into it, REM_MEM_REG the old one) N times; throughput
# sampled every 10 ms. Builds build/ (or $VUSW_BUILD) if needed, then runs
# build/perf/hotplug_bench with the given options:
#
#   perf/hotplug.sh [--cycles 100] [--steady 2] [--warmup 0.5] [--size 64]
#                   [--pace-ms 0] [--verify] [--markdown FILE]
#
# Run it on an otherwise idle host: the benchmark's guests use core 0, the
# switch's PMD busy-polls core 1; anything else running skews the intervals.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${VUSW_BUILD:-build}
if [[ ! -f $BUILD/build.ninja ]]; then
  meson setup "$BUILD" --buildtype=debugoptimized
fi
ninja -C "$BUILD" perf/hotplug_bench control/vuswitchd >/dev/null
echo "# loadavg before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec env VUSWITCHD="${VUSWITCHD:-$PWD/$BUILD/control/vuswitchd}" "$BUILD/perf/hotplug_bench" "$@"
