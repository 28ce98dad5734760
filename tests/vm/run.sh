#!/usr/bin/env bash
# Run the VM test suite (real QEMU guests through vuswitchd) and print a summary:
#
#   tests/vm/run.sh [TEST...]        default: ping nic hotplug reconnect virtio_features migrate
#
#   ping       two guests ping each other (QEMU as client and as server of the socket)
#   nic        a guest and a netns interface ping each other through a net_af_packet port
#   hotplug    memory hot-add/remove under traffic: ADD_MEM_REG/REM_MEM_REG, zero drops
#   reconnect  restart vuswitchd, then a QEMU, under running guests: traffic resumes
#   virtio_features  packed rings, 4 queue pairs (ethtool -L, flows spread over RX
#              queues), jumbo frames (host_mtu=9000, ping -s 8000), iperf3 TCP throughput
#              with default offloads and with all offloads off (Gbps in the summary)
#   migrate    live migration of a guest between two ports of the switch (QEMU -incoming)
#              under a checksummed TCP stream, numbered UDP datagrams and 10 ms pings: 3
#              precopy rounds back and forth, 1 postcopy round (skipped while the switch
#              lacks PAGEFAULT), guest memory compared page by page between source and
#              destination (0 pages may differ), and a control run with
#              --debug-no-dirty-log where pages must differ (downtimes and lost pings in
#              the summary)
#
# The guest (kernel + initramfs) is built once first (tests/vm/build-guest.sh, cached in
# build/vm-guest). Guests run under TCG (-accel tcg): the whole suite takes ~9 minutes on
# a 2-core machine. Needs root, a built vuswitchd (ninja -C build), qemu-system-x86,
# busybox-static, cpio, python3. A test exiting 77 (QEMU cannot run here) is a skip.
# The last line is "N passed, N failed, N skipped"; the exit status is 1 if any test
# failed, 77 (with a "SKIP: reason" line) if every test was skipped, else 0.
set -uo pipefail
cd "$(dirname "$0")/../.."
TESTS=("$@")
((${#TESTS[@]})) || TESTS=(ping nic hotplug reconnect virtio_features migrate)

names=() results=() times=() notes=()
start_all=$SECONDS

printf '==================== vm: guest image ====================\n'
export VUSW_GUEST_DIR=${VUSW_GUEST_DIR:-${VUSW_BUILD:-$PWD/build}/vm-guest}
if ! tests/vm/build-guest.sh "$VUSW_GUEST_DIR"; then
  echo "tests/vm/run.sh: building the guest failed; no VM test run"
  echo "0 passed, ${#TESTS[@]} failed, 0 skipped"
  exit 1
fi

export VM_GUEST_BUILT=1   # the tests need not check the guest image again
for t in "${TESTS[@]}"; do
  printf '\n==================== vm: %s ====================\n' "$t"
  out=$(mktemp)
  t0=$SECONDS
  "tests/vm/$t.sh" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  names+=("$t")
  times+=("$((SECONDS - t0))")
  case $rc in
    0) results+=(PASS); notes+=("$(grep -a -m1 -o 'NOTE: .*' "$out" || true)") ;;
    77) results+=(SKIP); notes+=("$(grep -a -m1 -o 'SKIP: .*' "$out" | cut -c7-)") ;;
    *) results+=(FAIL); notes+=("exit status $rc; $(grep -a -m1 -o 'FAIL: .*' "$out" | cut -c7-)") ;;
  esac
  rm -f "$out"
done

printf '\n==================== vm: summary ====================\n'
passed=0 failed=0 skipped=0
for i in "${!names[@]}"; do
  printf '  %-15s %-4s %4ss  %s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}" "${notes[$i]}"
  case ${results[$i]} in
    PASS) passed=$((passed + 1)) ;;
    FAIL) failed=$((failed + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
  esac
done
printf '  total time %ss\n' "$((SECONDS - start_all))"
echo "$passed passed, $failed failed, $skipped skipped"
if ((failed)); then exit 1; fi
if ((passed == 0 && skipped > 0)); then
  echo "SKIP: ${notes[0]}"
  exit 77
fi
exit 0
