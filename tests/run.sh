#!/usr/bin/env bash
# Set up the host, build, and run every test suite of vuswitch. Run as root from anywhere:
#
#   tests/run.sh
#
# Suites, in order (each counted once in the summary):
#   build             meson setup build (debugoptimized) + ninja of everything but the unit
#                     tests (they run under the sanitizers; `ninja -C build` builds them too)
#   build-asan        meson setup build-asan (clang 16, -Db_sanitize=address,undefined, -O1 with
#                     line tables: a third of GCC's compile time for the same checks; its
#                     libraries compiled for coverage too, -Dfuzz=true) + ninja of the daemon,
#                     vuswitchctl, vuswitch-cni, the unit and dataplane tests and the libFuzzer
#                     targets
#   meson test        meson test -C build dataplane (mbufs through GCC -O2's dataplane code)
#   asan tests        the unit and dataplane tests under ASan/UBSan, and build/'s
#                     integration suite against build-asan's vuswitchd (the integration
#                     suite runs once, against the sanitized daemon; the system tests, the
#                     soak and the VMs drive build/'s)
#   tsan              tests/tsan/run.sh (build-tsan: clang 16 -fsanitize=thread and
#                     -Wthread-safety; integration cases of control<->PMD paths, 15 s of soak)
#   soak              perf/soak.sh --minutes 1 (byte-checked traffic through memory
#                     re-layouts, queue moves, reconnections, port add/del; no loss, no leaks)
#   scale             perf/scale.sh (1,000 guest lives, 10,000 ADD/REM_MEM_REG cycles under
#                     traffic; fds, mappings, RSS, DPDK heap, mbufs back; nothing lost)
#   testpmd_pair      tests/system/testpmd_pair.sh (two DPDK virtio-user front-ends)
#   nic               tests/system/nic.sh (netns + veth + net_af_packet)
#   vxlan             tests/system/vxlan.sh (a VXLAN tunnel port to the Linux kernel's VTEP
#                     in a netns: ping and TCP both ways with a guest, MTU 1450, counts)
#   vxlan_vnis        tests/system/vxlan_vnis.sh (one tunnel, VNIs 5000/5001 mapped to VLANs
#                     10/20, two kernel VNI devices on one underlay IP: each pings only its own
#                     VLAN's guest; an unmapped VNI is dropped; per-VNI counts)
#   vxlan_routed      tests/system/vxlan_routed.sh (a tunnel with local=IP/24,gateway=: its
#                     remote kernel VTEP on another subnet behind a router netns; the router's
#                     MAC is the next hop; pings both ways with a guest)
#   vxlan_pair        tests/system/vxlan_pair.sh (two vuswitchd joined by VXLAN over a veth,
#                     a guest on each; a guest that moves between them is learned again)
#   vlan_nic          tests/system/vlan_nic.sh (a net_af_packet trunk port, 802.1Q-tagged
#                     pings from a netns to a guest in an access VLAN)
#   null_nic          tests/system/null_nic.sh (net_null NIC both ways)
#   nic_jumbo         tests/system/nic_jumbo.sh (8000-byte frames both ways through an MTU-9000
#                     net_pcap NIC; an MTU-1500 NIC drops longer frames as mtu_exceeded)
#   virtio_matrix     tests/system/virtio_matrix.sh (virtio-user variants: queues, packed,
#                     in_order, mrg_rxbuf, vectorized, MTU 9000, jumbo frames to an MTU-1500
#                     port dropped; counts and payload)
#   prometheus        tests/system/prometheus.sh (Debian's prometheus scrapes vuswitchd under
#                     steady testpmd traffic; rate() over a 20 s window agrees with the switch's and
#                     testpmd's counters within 10 %)
#   monitoring_config tests/system/monitoring_config.sh (promtool check config/rules, promtool
#                     test rules, the Grafana dashboard, every metric name they use on a
#                     running vuswitchd's /metrics, systemd-analyze verify of the unit)
#   service_notify    tests/system/service_notify.sh (sd_notify without systemd: READY=1 once
#                     the sockets serve, WATCHDOG=1 with WATCHDOG_USEC, STOPPING=1 at SIGTERM)
#   privileges        tests/system/privileges.sh (--user: every thread's uid/gid and no
#                     capabilities, socket modes/groups, EACCES for another user on the
#                     control socket, traffic and add-port after the drop, clean exit)
#   hugepages_missing tests/system/hugepages_missing.sh (no hugetlbfs at --huge-dir, too few
#                     free pages for --memory: exit 1 with the command that fixes it)
#   cni               tests/system/cni.sh (vuswitch-cni ADD/CHECK/DEL as kubelet calls them for
#                     two netns "pods" whose testpmds exchange frames, before and after a
#                     vuswitchd restart that restores their ports; CNI error codes)
#   k8s_manifests     tests/system/k8s_manifests.sh (deploy/k8s: YAML, required fields, the
#                     objects agree; vuswitch-cni accepts the NetworkAttachmentDefinition)
#   (the system tests run again against build-asan's daemon; virtio_matrix with
#    VIRTIO_MATRIX_ASAN_VARIANTS, a subset covering each switch code path once)
#   vm                tests/vm/run.sh (QEMU guests: ping, NIC, memory hotplug, reconnect,
#                     live migration precopy/postcopy, packed rings, multiqueue, jumbo
#                     frames, iperf3 throughput)
#   fuzz              tests/fuzz/run.sh (build-asan's libFuzzer targets, 10 s each; perf/fuzz.sh
#                     for long runs)
#   nic asan, vxlan asan, vxlan_pair asan, vlan_nic asan, null_nic asan, nic_jumbo asan, privileges asan, cni asan,
#   virtio_matrix asan   the same against build-asan's vuswitchd
# A suite whose build failed is counted as failed, not skipped. A system test that
# exits 77 (e.g. no hugepages possible) is counted as skipped, with its reason.
# The last line is "N passed, N failed, N skipped"; the exit status is non-zero if
# anything failed.
#
# Environment: VUSW_SKIP_SETUP=1 skips deploy/setup.sh (host already prepared).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

NAMES=()
RESULTS=()
TIMES=()
NOTES=()

banner() { printf '\n==================== %s ====================\n' "$*"; }

# record NAME RESULT SECONDS [NOTE]
record() {
  NAMES+=("$1"); RESULTS+=("$2"); TIMES+=("$3"); NOTES+=("${4:-}")
  printf -- '---- %s: %s (%ss)%s\n' "$1" "$2" "$3" "${4:+ - $4}"
}

# suite NAME COMMAND...: run, time and record one suite (exit 77 = skipped).
suite() {
  local name=$1 start rc=0 out
  shift
  banner "$name"
  start=$SECONDS
  out=$(mktemp)
  "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  local secs=$((SECONDS - start))
  case $rc in
    0) record "$name" PASS "$secs" ;;
    77) record "$name" SKIP "$secs" "$(grep -m1 -o 'SKIP: .*' "$out" | cut -c7-)" ;;
    *) record "$name" FAIL "$secs" "exit status $rc" ;;
  esac
  rm -f "$out"
  return "$rc"
}

not_run() { # NAME REASON
  banner "$1"
  record "$1" FAIL 0 "not run: $2"
}

build() { # DIR MESON-ARGS... [-- NINJA-TARGETS...]   (env CXX picks the compiler)
  local dir=$1 args=()
  shift
  while (($#)) && [[ $1 != -- ]]; do args+=("$1"); shift; done
  (($#)) && shift
  if [[ ! -f $dir/build.ninja ]]; then
    meson setup "$dir" "${args[@]}" || return 1
  else  # a tree set up by an older tests/run.sh gets today's options (e.g. -Dfuzz=true)
    meson configure "$dir" "${args[@]}" >/dev/null || return 1
  fi
  ninja -C "$dir" "$@"
}

# The sanitizer build compiles what runs under it: the daemon, vuswitchctl, vuswitch-cni and the
# in-process test binaries. The integration suite's front-end is test code; build/'s
# binary drives the sanitized daemon (it finds it through VUSWITCHD), which halves the
# sanitizer build.
ASAN_TARGETS="control/vuswitchd control/vuswitchctl control/vuswitch-cni tests/unit/unit_tests tests/dataplane/dataplane_tests"
SANITIZER_ENV=(ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_summary=1
               UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_summary=1:print_stacktrace=1)

asan_tests() { # the unit and dataplane tests of build-asan, then build/'s integration suite against its daemon
  env "${SANITIZER_ENV[@]}" build-asan/tests/unit/unit_tests &&
    env "${SANITIZER_ENV[@]}" build-asan/tests/dataplane/dataplane_tests &&
    env "${SANITIZER_ENV[@]}" VUSWITCHD="$ROOT/build-asan/control/vuswitchd" \
      VUSWITCHCTL="$ROOT/build-asan/control/vuswitchctl" VUSW_SOURCE_DIR="$ROOT" \
      build/tests/integration/integration_tests
}

if [[ $(id -u) -ne 0 ]]; then
  echo "tests/run.sh: must run as root (hugepages, vhost-user sockets, network namespaces)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

total_start=$SECONDS
if [[ ${VUSW_SKIP_SETUP:-0} != 1 ]]; then
  banner "setup (deploy/setup.sh)"
  if ! deploy/setup.sh; then
    echo "tests/run.sh: host setup failed; nothing was built or tested" >&2
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
  fi
fi

build_ok=0
asan_ok=0
# Every binary the suites run from build/ (the unit tests run once, in build-asan).
BUILD_TARGETS="control/vuswitchd control/vuswitchctl control/vuswitch-cni tests/dataplane/dataplane_tests"
BUILD_TARGETS+=" tests/integration/integration_tests perf/hotplug_bench perf/queue_bench"
suite "build" build build --buildtype=debugoptimized -- $BUILD_TARGETS && build_ok=1
# clang 16 (deploy/setup.sh installs it; GCC with -g1 if it is missing) at -O1 with line
# tables only: what the sanitizers need for exact reports, at a third of GCC's -O2 -g
# compile time. With clang the code is also compiled for coverage and the libFuzzer
# targets are linked here: the fuzz suite shares these objects instead of compiling them
# again (tests/fuzz/run.sh with FUZZ_BUILD).
if ASAN_CXX=$(command -v clang++-16); then
  ASAN_ARGS=(-Dcpp_args=-gline-tables-only -Dfuzz=true)
  ASAN_TARGETS+=" tests/fuzz/fuzz_dispatch tests/fuzz/fuzz_virtqueue tests/fuzz/fuzz_packed_queue tests/fuzz/fuzz_memtable"
  ASAN_TARGETS+=" tests/fuzz/fuzz_config tests/fuzz/fuzz_control"
  FUZZ_ENV=(FUZZ_BUILD="$ROOT/build-asan")
else
  ASAN_CXX=c++ ASAN_ARGS=(-Dcpp_args=-g1) FUZZ_ENV=()
fi
CXX=$ASAN_CXX suite "build-asan" build build-asan --buildtype=debugoptimized -Doptimization=1 -Ddebug=false \
  "${ASAN_ARGS[@]}" -Db_sanitize=address,undefined -Db_lundef=false -- $ASAN_TARGETS && asan_ok=1

if ((build_ok)); then
  suite "meson test" meson test -C build --no-rebuild --print-errorlogs dataplane
else
  not_run "meson test" "build failed"
fi
if ((asan_ok && build_ok)); then
  suite "asan tests" asan_tests
else
  not_run "asan tests" "build or build-asan failed"
fi

# ThreadSanitizer: vuswitchd built with clang 16 -fsanitize=thread, driven by build/'s
# integration cases where the control thread, PMD cores and metrics threads meet.
if ((build_ok)); then
  suite "tsan" timeout --kill-after=30 1200 tests/tsan/run.sh
else
  not_run "tsan" "build failed"
fi

# A minute of perf/soak.sh: traffic through memory re-layouts, queue moves, reconnections
# and port add/del; nothing lost, nothing leaked (each kind of event happens dozens of
# times a minute; perf/soak.sh alone runs 30 minutes, recorded in perf/RESULTS.md).
if ((build_ok)); then
  suite "soak" timeout --kill-after=30 400 perf/soak.sh --minutes 1
else
  not_run "soak" "build failed"
fi
# 1,000 guest lives and 10,000 ADD/REM_MEM_REG cycles under traffic: resources printed
# before and after, nothing lost, nothing leaked.
if ((build_ok)); then
  suite "scale" timeout --kill-after=30 400 perf/scale.sh
else
  not_run "scale" "build failed"
fi

# System tests: once against build/, once against the sanitizer build's daemon.
# A bound on each whole script; every step inside has its own timeout as well.
for t in testpmd_pair nic vxlan vxlan_vnis vxlan_routed vxlan_pair vlan_nic null_nic nic_jumbo virtio_matrix prometheus monitoring_config service_notify \
  privileges hugepages_missing cni k8s_manifests; do
  if ((build_ok)); then
    suite "$t" timeout --kill-after=30 600 env VUSW_BUILD="$ROOT/build" "tests/system/$t.sh"
  else
    not_run "$t" "build failed"
  fi
done
# Against build-asan: the NIC paths (the integration suite, already run against the
# sanitized daemon, has no NIC traffic) and the privilege drop; guest traffic through
# real DPDK front-ends is virtio_matrix asan's. (vxlan_vnis: the VNI map's datapath runs
# under ASan in the dataplane tests, vxlan_vni_test.cc, over a net_ring underlay.)
for t in nic vxlan vxlan_pair vlan_nic null_nic nic_jumbo privileges cni; do
  if ((asan_ok)); then
    suite "$t asan" timeout --kill-after=30 600 env VUSW_BUILD="$ROOT/build-asan" "tests/system/$t.sh"
  else
    not_run "$t asan" "build-asan failed"
  fi
done
# Under ASan each variant takes longer; one per ring layout / RX buffer scheme / queue
# count is enough to catch memory errors in those paths.
if ((asan_ok)); then
  suite "virtio_matrix asan" timeout --kill-after=30 600 env VUSW_BUILD="$ROOT/build-asan" \
    VARIANTS="${VIRTIO_MATRIX_ASAN_VARIANTS:-queues=4,pmds=2 packed_vq=1 in_order=0 mrg_rxbuf=0 mtu=9000 offload=tso-pass}" \
    tests/system/virtio_matrix.sh
else
  not_run "virtio_matrix asan" "build-asan failed"
fi

# Real QEMU guests (TCG) through the switch: ping, NIC, memory hotplug, reconnect,
# virtio features (packed, mq, jumbo, iperf3).
if ((build_ok)); then
  suite "vm" timeout --kill-after=30 1200 env VUSW_BUILD="$ROOT/build" tests/vm/run.sh
else
  not_run "vm" "build failed"
fi

# libFuzzer targets (clang 16), each for a bounded time; non-zero on a crash.
suite "fuzz" timeout --kill-after=30 900 env FUZZ_TIME=10 "${FUZZ_ENV[@]}" tests/fuzz/run.sh

banner "summary"
passed=0 failed=0 skipped=0
for i in "${!NAMES[@]}"; do
  printf '  %-18s %-4s %5ss  %s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${TIMES[$i]}" "${NOTES[$i]}"
  case ${RESULTS[$i]} in
    PASS) passed=$((passed + 1)) ;;
    FAIL) failed=$((failed + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
  esac
done
printf '  total time %ss\n' "$((SECONDS - total_start))"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
