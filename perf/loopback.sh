#!/usr/bin/env bash
# Loopback benchmark: a dpdk-testpmd virtio-user generator on core 0 (two ports, mac
# forwarding, each port aimed at the other) pushes frames around a loop through the
# switch under test on core 1:
#
#   gen port0 --vhost-user s0--> [switch on core 1] --s1--> gen port1 (mac fwd) --s1--> [switch] --s0--> gen port0 ...
#
# Switches measured in the same run:
#   vuswitch   build/control/vuswitchd --lcores 0,1 (control thread on 0, PMD on 1)
#   reference  dpdk-testpmd --vdev net_vhost0,iface=s0 --vdev net_vhost1,iface=s1, io forwarding on core 1
#
# Rate = the generator's own receive rate (testpmd "Rx-pps"), summed over both ports,
# over a fixed window after warm-up: every frame counted crossed the switch once.
# Frame sizes are Ethernet frame sizes including the 4-byte FCS that virtio does not
# carry, as in RFC 2544 and DPDK's vhost performance reports: "64" sends 60-byte
# buffers, "1518" sends 1514-byte buffers (testpmd "set txpkts SIZE-4").
#
# Usage (root): perf/loopback.sh [--sizes "64 1518"] [--duration 10] [--warmup 5]
#                                [--bursts 64] [--targets "reference vuswitch"]
#                                [--repeat 1] [--markdown FILE] [--no-setup]
#                                [--quiet-wait SECONDS] [--gen-devargs ",in_order=0"]
# --gen-devargs: appended to both generator virtio-user ports' devargs (e.g. to
# compare with and without VIRTIO_F_IN_ORDER).
# --quiet-wait: before each measurement wait (at most SECONDS) until the host has been
# idle (< 5 % of a core busy) for 3 s, for shared machines.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../tests/system/lib.sh
source tests/system/lib.sh
# shellcheck source=lib.sh
source perf/lib.sh

SIZES="64 1518"
DURATION=10
WARMUP=5
BURSTS=64
TARGETS="reference vuswitch"
REPEAT=1
MARKDOWN=
SETUP=1
QUIET_WAIT=0
GEN_DEVARGS=

while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) SIZES=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --bursts) BURSTS=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --markdown) MARKDOWN=$2; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    --quiet-wait) QUIET_WAIT=$2; shift 2 ;;
    --gen-devargs) GEN_DEVARGS=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done

sys_init perf
if [[ $SETUP == 1 ]]; then deploy/setup.sh; fi
sys_require_hugepages 1100
[[ " $TARGETS " == *" vuswitch "* ]] && sys_require_daemon

# ---------------------------------------------------------------- switches under test

# start_dut TARGET DIR: switch listening on DIR/s0.sock and DIR/s1.sock, PMD on DUT_CORE.
start_dut() {
  local target=$1 dir=$2
  case $target in
    reference)
      tp_start ref --lcores "0@$DUT_CORE,1@$DUT_CORE" --main-lcore 0 --no-pci \
        --file-prefix "$(sys_prefix ref)" -m 512 \
        --vdev "net_vhost0,iface=$dir/s0.sock" --vdev "net_vhost1,iface=$dir/s1.sock" \
        -- --forward-mode=io --auto-start
      tp_wait_ready ref
      ;;
    vuswitch)
      vusw_start perf --lcores "$GEN_CORE,$DUT_CORE" --log-level warn \
        --vhost-user "$dir/s0.sock" --vhost-user "$dir/s1.sock"
      ;;
  esac
  wait_for 10 "vhost-user sockets in $dir" test -S "$dir/s0.sock" -a -S "$dir/s1.sock"
}

stop_dut() {
  case $1 in
    reference) tp_quit ref ;;
    vuswitch)
      vusw_ctl show ports >>"$SYS_TMP/vuswitchctl.log" 2>&1 || true
      vusw_stop || log "WARNING: vuswitchd exited non-zero"
      ;;
  esac
}

# Disturbance check (cpu_busy_ticks, proc_ticks, wait_quiet), vuswitchd PMD counters
# (pmd_cycles), write syscalls (proc_syscw) and the generator (gen_start_loopback):
# perf/lib.sh, shared with perf/run.sh.

# ---------------------------------------------------------------- generator

# measure TARGET SIZE: sets MEAS="mpps port0_rx_mpps port1_rx_mpps crosscheck_mpps".
MEAS=
measure() {
  local target=$1 size=$2 dir
  dir=$SYS_TMP/$target-$size
  mkdir -p "$dir"
  ((QUIET_WAIT > 0)) && wait_quiet
  start_dut "$target" "$dir"
  gen_start_loopback "$dir/s0.sock" "$dir/s1.sock" "$GEN_DEVARGS"
  tp_cmd gen "set txpkts $((size - 4))"
  tp_cmd gen "start tx_first $BURSTS"
  sleep "$WARMUP"
  local before after t0 t1 dut_pid busy0 busy1 own0 own1 hz
  if [[ $target == reference ]]; then dut_pid=${TP_PID[ref]}; else dut_pid=$VUSW_PID; fi
  hz=$(getconf CLK_TCK)
  busy0=$(cpu_busy_ticks); own0=$(proc_ticks "${TP_PID[gen]}" "$dut_pid")
  local gw0 sw0 gw1 sw1
  gw0=$(proc_syscw "${TP_PID[gen]}"); sw0=$(proc_syscw "$dut_pid")
  local pmd0= pmd1=
  [[ $target == vuswitch ]] && pmd0=$(pmd_cycles)
  t0=$(date +%s.%N)
  before=$(tp_stats gen 2)
  sleep "$DURATION"
  after=$(tp_stats gen 2)
  t1=$(date +%s.%N)
  busy1=$(cpu_busy_ticks); own1=$(proc_ticks "${TP_PID[gen]}" "$dut_pid")
  gw1=$(proc_syscw "${TP_PID[gen]}"); sw1=$(proc_syscw "$dut_pid")
  PMD_BUSY=
  if [[ $target == vuswitch ]]; then
    pmd1=$(pmd_cycles)
    # Share of the PMD's cycles spent on bursts that moved frames, over the window:
    # near 100 % means the switch is the loop's bottleneck, lower means the generator.
    PMD_BUSY=$(awk -v a="$pmd0" -v b="$pmd1" 'BEGIN {
      split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2]
      pkts = y[3] - x[3]; turns = y[4] - x[4]
      if (busy + idle > 0) printf "%.0f%%", 100 * busy / (busy + idle); else printf "?"
      if (pkts > 0) printf ", %.0f cycles/frame, %.1f frames/turn", (busy + idle) / pkts, pkts / turns }')
  fi
  # write() syscalls per second: eventfd kicks (generator) and calls (switch), plus logs.
  WRITES=$(awk -v g=$((gw1 - gw0)) -v s=$((sw1 - sw0)) -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "generator %.0f/s, switch %.0f/s", g / (t1 - t0), s / (t1 - t0) }')
  # foreign CPU in % of one core over the window
  FOREIGN=$(awk -v b="$((busy1 - busy0 - own1 + own0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" \
    'BEGIN { f = 100 * b / hz / (t1 - t0); printf "%.0f", f < 0 ? 0 : f }')
  tp_quit gen
  stop_dut "$target"
  # Rates from testpmd's own timestamps (Rx-pps since the previous show); the
  # RX-packets delta over our wall clock is a cross-check in the log.
  printf '%s\n%s\n' "$before" "$after" >>"$SYS_TMP/stats-$target-$size.txt"
  MEAS=$(awk -v t0="$t0" -v t1="$t1" '
    NR <= 2 { rx0[$1] = $2; next }
    { pps[$1] = $4; delta[$1] = $2 - rx0[$1] }
    END {
      printf "%.3f %.3f %.3f %.3f\n", (pps[0] + pps[1]) / 1e6, pps[0] / 1e6, pps[1] / 1e6,
             (delta[0] + delta[1]) / (t1 - t0) / 1e6
    }' <<<"$before"$'\n'"$after")
}

# ---------------------------------------------------------------- run

log "sizes: $SIZES   window: ${WARMUP}s warm-up + ${DURATION}s   bursts: $BURSTS x 32 per port   repeat: $REPEAT"
log "generator: testpmd virtio-user, lcore on core $GEN_CORE; switch PMD on core $DUT_CORE"
log "host: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores, kernel $(uname -r), DPDK $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo '?')"
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A RESULT=() FOREIGN_OF=()
for size in $SIZES; do
  for target in $TARGETS; do
    best= best_foreign=
    for ((r = 1; r <= REPEAT; r++)); do
      measure "$target" "$size"
      read -r mpps d0 d1 check <<<"$MEAS"
      log "$(printf '%-9s %4s B  run %d: %7.3f Mpps  (port0 rx %.3f, port1 rx %.3f; counter cross-check %.3f; foreign CPU %s%% of a core)' \
        "$target" "$size" "$r" "$mpps" "$d0" "$d1" "$check" "$FOREIGN")"
      log "          write syscalls: $WRITES${PMD_BUSY:+; vuswitchd PMD busy $PMD_BUSY}"
      if (( FOREIGN > 10 )); then
        log "WARNING: other processes used ${FOREIGN}% of a core during this window; the number is disturbed"
      fi
      if [[ -z $best ]] || awk -v a="$mpps" -v b="$best" 'BEGIN { exit !(a > b) }'; then
        best=$mpps best_foreign=$FOREIGN
      fi
    done
    RESULT[$target/$size]=$best
    FOREIGN_OF[$target/$size]=$best_foreign
  done
done
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

table() {
  printf '| frame | reference (testpmd net_vhost, io) Mpps | vuswitch Mpps | vuswitch / reference |\n'
  printf '|------:|---------:|---------:|------:|\n'
  local size ref vus ratio
  for size in $SIZES; do
    ref=${RESULT[reference/$size]:-}
    vus=${RESULT[vuswitch/$size]:-}
    ratio=n/a
    if [[ -n $ref && -n $vus ]] && awk -v r="$ref" 'BEGIN { exit !(r > 0) }'; then
      ratio=$(awk -v v="$vus" -v r="$ref" 'BEGIN { printf "%.2f", v / r }')
    fi
    printf '| %s B | %s | %s | %s |\n' "$size" "${ref:-not run}" "${vus:-not run}" "$ratio"
  done
  printf '\nBest of %s run(s) of %ss after %ss warm-up, %s tx_first bursts; CPU used by other processes during the kept windows (%% of a core):' \
    "$REPEAT" "$DURATION" "$WARMUP" "$BURSTS"
  local key
  for size in $SIZES; do
    for key in reference vuswitch; do
      [[ -n ${FOREIGN_OF[$key/$size]:-} ]] && printf ' %s/%s B %s%%;' "$key" "$size" "${FOREIGN_OF[$key/$size]}"
    done
  done
  printf '\n'
}

echo
table
if [[ -n $MARKDOWN ]]; then
  table >"$MARKDOWN"
  log "table written to $MARKDOWN"
fi
