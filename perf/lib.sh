# shellcheck shell=bash
# Shared helpers of the perf/ scripts. Source after tests/system/lib.sh (the measuring
# helpers use log, fail, tp_start, tp_wait_ready, vusw_ctl, sys_prefix, PYTHON); the
# command-line helpers need nothing.

# ---------------------------------------------------------------- command line

# usage [STATUS]: print the script's header comment (line 2 up to `set -euo`) and exit.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
# need_arg OPTION VALUE...: exit 2 unless OPTION has a non-empty value.
need_arg() { [[ $# -ge 2 && -n $2 ]] || { echo "option $1 needs a value (see --help)" >&2; exit 2; }; }

# ---------------------------------------------------------------- disturbance check

# CPU time (clock ticks) used by the whole machine, and by the given processes.
# Anything else running during a window (a compiler, another test) steals a core from
# the generator or the switch; the window's foreign share is reported per sample.
cpu_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
proc_ticks() {
  local pid sum=0 t
  for pid in "$@"; do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    sum=$((sum + t))
  done
  echo "$sum"
}

# wait_quiet: up to QUIET_WAIT seconds for 3 s with less than 5 % of a core busy.
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT)) a b hz
  hz=$(getconf CLK_TCK)
  while ((SECONDS < deadline)); do
    a=$(cpu_busy_ticks); sleep 3; b=$(cpu_busy_ticks)
    (( (b - a) * 100 < 5 * 3 * hz )) && return 0
  done
  log "host not idle after ${QUIET_WAIT}s of waiting; measuring anyway"
}

# CPU ticks of this shell plus its reaped children (the awk, grep and vuswitchctl calls
# the measurement itself makes).
# PID: the measuring shell's $BASHPID (taken outside any $(...), which is a subshell).
self_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat"; }

# window_begin PID...: start a measurement window over the given processes (the
# generator and the switch under test, all their threads) and this script; window_end
# sets W_SECONDS (wall clock) and FOREIGN (CPU used by every other process, % of one core).
W_PIDS=() W_SELF= W_T0= W_BUSY0= W_OWN0= W_SECONDS= FOREIGN=
window_begin() {
  W_PIDS=("$@") W_SELF=$BASHPID
  W_BUSY0=$(cpu_busy_ticks); W_OWN0=$(($(proc_ticks "${W_PIDS[@]}") + $(self_ticks "$W_SELF")))
  W_T0=$(date +%s.%N)
}
window_end() {
  local t1 busy1 own1
  t1=$(date +%s.%N)
  busy1=$(cpu_busy_ticks); own1=$(($(proc_ticks "${W_PIDS[@]}") + $(self_ticks "$W_SELF")))
  W_SECONDS=$(awk -v a="$W_T0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  FOREIGN=$(awk -v b="$((busy1 - W_BUSY0 - own1 + W_OWN0))" -v hz="$(getconf CLK_TCK)" -v s="$W_SECONDS" \
    'BEGIN { f = 100 * b / hz / s; printf "%.0f", f < 0 ? 0 : f }')
}

# vuswitchd PMD counters so far, summed over PMD cores: "busy idle packets turns".
pmd_cycles() {
  vusw_ctl --json show pmd 2>/dev/null | "$PYTHON" -c '
import json, sys
p = json.load(sys.stdin)["pmds"]
print(*(sum(x[k] for x in p) for k in ("busy_cycles", "idle_cycles", "packets", "iterations")))' 2>/dev/null ||
    echo "0 0 0 0"
}

# pmd_window BEFORE AFTER (two pmd_cycles lines): "busy_pct cycles_per_frame frames_per_turn"
# over the window ("-" where undefined). busy = PMD turns that moved frames.
pmd_window() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2]
    pkts = y[3] - x[3]; turns = y[4] - x[4]
    if (busy + idle > 0) printf "%.0f ", 100 * busy / (busy + idle); else printf "- "
    if (pkts > 0) printf "%.0f %.1f\n", (busy + idle) / pkts, pkts / turns; else printf "- -\n" }'
}

# write() syscalls made by a process so far (all threads).
proc_syscw() { awk '/^syscw:/ { print $2 }' "/proc/$1/io" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- generator

GEN_CORE=${GEN_CORE:-0}
DUT_CORE=${DUT_CORE:-1}
MAC0=02:00:00:00:00:01
MAC1=02:00:00:00:00:02
# Extra generator options (perf/run.sh --virtio, --queues, --multi-flow); empty by default.
GEN_VIRTIO_ARGS=   # appended to every net_virtio_user devargs, e.g. ",packed_vq=1,queues=2"
GEN_EAL=()     # extra EAL arguments, e.g. (--log-level=pmd.net.virtio.init:debug)
GEN_APP=()     # extra testpmd arguments, e.g. (--rxq=2 --txq=2 --txonly-multi-flow)

# gen_start_loopback SOCK0 SOCK1 [DEVARGS_SUFFIX]: the loopback generator "gen": testpmd
# with two virtio-user ports on GEN_CORE, each with its own MAC, mac forwarding with each
# port aimed at the other. Then: tp_cmd gen "set txpkts N"; tp_cmd gen "start tx_first B".
gen_start_loopback() {
  local s0=$1 s1=$2 extra=${3:-}$GEN_VIRTIO_ARGS
  tp_start gen --lcores "0@$GEN_CORE,1@$GEN_CORE" --main-lcore 0 --no-pci \
    --single-file-segments --iova-mode=va --file-prefix "$(sys_prefix gen)" -m 512 \
    ${GEN_EAL[@]+"${GEN_EAL[@]}"} \
    --vdev "net_virtio_user0,path=$s0,mac=$MAC0$extra" \
    --vdev "net_virtio_user1,path=$s1,mac=$MAC1$extra" \
    -- --forward-mode=mac --eth-peer=0,$MAC1 --eth-peer=1,$MAC0 ${GEN_APP[@]+"${GEN_APP[@]}"}
  tp_wait_ready gen
}

# gen_start_one SOCK MODE PEER: a one-port generator "gen" (virtio-user, MAC0) in
# forwarding mode MODE (txonly, rxonly), sending to PEER.
gen_start_one() {
  local s0=$1 mode=$2 peer=$3
  tp_start gen --lcores "0@$GEN_CORE,1@$GEN_CORE" --main-lcore 0 --no-pci \
    --single-file-segments --iova-mode=va --file-prefix "$(sys_prefix gen)" -m 512 \
    ${GEN_EAL[@]+"${GEN_EAL[@]}"} \
    --vdev "net_virtio_user0,path=$s0,mac=$MAC0$GEN_VIRTIO_ARGS" \
    -- --forward-mode="$mode" --eth-peer=0,"$peer" ${GEN_APP[@]+"${GEN_APP[@]}"}
  tp_wait_ready gen
}

# ---------------------------------------------------------------- NIC traffic source

# write_pcap FILE FRAME_BYTES DST_MAC SRC_MAC [FLOWS]: a pcap holding one IPv4/UDP frame of
# FRAME_BYTES bytes (without FCS), the shape testpmd's txonly engine sends, for net_pcap's
# infinite_rx; FLOWS > 1: that many frames from as many source addresses (perf/pcap.py).
write_pcap() { "$PYTHON" perf/pcap.py udp "$1" "$2" "$3" "$4" --flows "${5:-1}"; }
