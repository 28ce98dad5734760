#!/usr/bin/env bash
# VM-to-VM TCP throughput (issue 9): iperf3 between two QEMU TCG guests, with the guests'
# virtio-net offloads on (QEMU's defaults) and off, through each back-end in turn:
#   vuswitch   this build's vuswitchd, 4 vhost-user server ports (control core 0, PMD core 1)
#   testpmd    dpdk-testpmd, 4 net_vhost ports (tso=1,legacy-ol-flags=1), io forwarding
#              (port 0 <-> 1, 2 <-> 3), all on core 1
#   ovs        OVS-DPDK, bridge br0 (netdev, NORMAL flow), 4 dpdkvhostuserclient ports
#              (QEMU listens), userspace-tso-enable=true, one PMD thread on core 1
# Each (round, back-end) session starts the back-end, boots four guests at once on core 0
# (pair A with default offloads on -device, pair B with csum=off,guest_csum=off,
# host_tso4=off,host_tso6=off,guest_tso4=off,guest_tso6=off), runs iperf3 A1 -> A2 and
# B1 -> B2 with 1 and 4 streams, and stops everything again. The back-ends' order rotates
# from round to round, and so does the order of the two configurations inside a session.
#
# Usage (root, after building build/): perf/vm_iperf.sh [options]
#   --targets "vuswitch testpmd ovs"
#   --rounds 2            sessions per back-end; median and min-max reported
#   --time 5              iperf3 -t, s (after --omit)
#   --omit 1              iperf3 -O: first seconds of each run not counted (slow start)
#   --streams "1 4"       iperf3 -P values
#   --quiet-wait S        before each session wait up to S s for 3 idle seconds on the host
#   --boot-timeout 240    s for the four guests to boot
#   --markdown FILE       tables (default perf/results/vm-iperf.md; "-" = stdout only);
#                         every run also goes to FILE with .csv instead of .md
#   -h, --help
# Environment: VUSW_BUILD / VUSWITCHD (another vuswitchd build), VUSW_GUEST_DIR (guest
# image, built by tests/vm/build-guest.sh if missing), SYS_KEEP_LOGS=1 (keep every log in
# /tmp/vusw-perf-vm-iperf.*), OVS_SOCKET_MEM (MB, default 512 here).
# Time: ~1.1 min per session (boot ~30 s) on a loaded 2-core host, i.e. ~7 min for the
# defaults (3 back-ends x 2 rounds), ~10 min with --rounds 3.
# Exit status: 0 all measured; 1 a session or an iperf3 run failed (the rest is still
# measured and reported); 2 bad command line. Method and caveats: perf/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# Guest helpers (vm_start, vm_exec, vm_iperf ...) first; tests/system/lib.sh then
# provides the process bookkeeping (SYS_PIDS, sys_cleanup), testpmd and vuswitchd helpers
# and log/fail, replacing tests/vm/lib.sh's versions of those.
# shellcheck source=../tests/vm/lib.sh
source tests/vm/lib.sh
# shellcheck source=../tests/system/lib.sh
source tests/system/lib.sh
# shellcheck source=lib.sh
source perf/lib.sh
OVS_SOCKET_MEM=${OVS_SOCKET_MEM:-512}
# shellcheck source=ovs.sh
source perf/ovs.sh

TARGETS="vuswitch testpmd ovs"
ROUNDS=2
TIME=5
OMIT=1
STREAMS="1 4"
QUIET_WAIT=0
BOOT_TIMEOUT=240
MARKDOWN=perf/results/vm-iperf.md
OFFLOADS_OFF=csum=off,guest_csum=off,host_tso4=off,host_tso6=off,guest_tso4=off,guest_tso6=off
# Guests: NAME port MAC IP config. Pair A (default offloads) and pair B (offloads off) share
# one L2 segment; each pair only talks to itself.
GUESTS=("A1 0 52:54:00:00:0a:01 10.50.0.1 on" "A2 1 52:54:00:00:0a:02 10.50.0.2 on"
  "B1 2 52:54:00:00:0b:01 10.50.0.3 off" "B2 3 52:54:00:00:0b:02 10.50.0.4 off")
# virtio-net feature bits reported per guest (virtio 1.2, 5.1.3).
OFFLOAD_BITS="0:CSUM 1:GUEST_CSUM 7:GUEST_TSO4 8:GUEST_TSO6 11:HOST_TSO4 12:HOST_TSO6"

ORIG_ARGS=("$@")
while [[ $# -gt 0 ]]; do
  case $1 in
    --targets) need_arg "$@"; TARGETS=$2; shift 2 ;;
    --rounds) need_arg "$@"; ROUNDS=$2; shift 2 ;;
    --time) need_arg "$@"; TIME=$2; shift 2 ;;
    --omit) need_arg "$@"; OMIT=$2; shift 2 ;;
    --streams) need_arg "$@"; STREAMS=$2; shift 2 ;;
    --quiet-wait) need_arg "$@"; QUIET_WAIT=$2; shift 2 ;;
    --boot-timeout) need_arg "$@"; BOOT_TIMEOUT=$2; shift 2 ;;
    --markdown) need_arg "$@"; MARKDOWN=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
bad() { echo "perf/vm_iperf.sh: $*" >&2; exit 2; }
for t in $TARGETS; do
  [[ $t == vuswitch || $t == testpmd || $t == ovs ]] || bad "--targets: $t is not one of vuswitch testpmd ovs"
done
for s in $STREAMS; do [[ $s =~ ^[1-9][0-9]?$ ]] || bad "--streams: $s is not in 1..99"; done
[[ -n $TARGETS && -n $STREAMS ]] || bad "--targets and --streams must not be empty"
for v in ROUNDS TIME OMIT QUIET_WAIT BOOT_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || bad "--${v,,}: ${!v} is not a whole number"
done
((ROUNDS >= 1 && TIME >= 1)) || bad "--rounds and --time must be at least 1"
CSV=
if [[ $MARKDOWN != - ]]; then
  CSV=${MARKDOWN%.md}.csv
  mkdir -p "$(dirname "$MARKDOWN")" || bad "cannot create the directory of $MARKDOWN"
fi

sys_init perf-vm-iperf
vm_guest_setup
if [[ " $TARGETS " == *" ovs "* ]]; then sys_require_hugepages $((OVS_SOCKET_MEM + 64)); else sys_require_hugepages 600; fi
[[ " $TARGETS " == *" vuswitch "* ]] && sys_require_daemon
OVS_SKIPPED=
if [[ " $TARGETS " == *" ovs "* ]] && ! why=$(ovs_check); then
  OVS_SKIPPED="OVS-DPDK not measured: $why"
  log "WARNING: $OVS_SKIPPED"
  TARGETS=$(tr ' ' '\n' <<<"$TARGETS" | grep -vx ovs | paste -sd' ')
  [[ -n $TARGETS ]] || fail "no back-end left to measure"
fi

# ---------------------------------------------------------------- back-ends

# backend_start TARGET DIR: the back-end with four vhost-user server sockets; sets
# SOCKS (port 0..3) and DUT_PIDS (its processes, for the CPU accounting).
SOCKS=() DUT_PIDS=() TP_NAME=
backend_start() {
  local target=$1 dir=$2 i
  SOCKS=()
  case $target in
    vuswitch)
      local ports=()
      for i in 0 1 2 3; do SOCKS+=("$dir/vm$i.sock"); ports+=(--vhost-user "$dir/vm$i.sock"); done
      vusw_start "dut-${dir##*/}" --lcores "$GEN_CORE,$DUT_CORE" --log-level warn "${ports[@]}"
      DUT_PIDS=("$VUSW_PID") ;;
    testpmd)
      # tso=1: net_vhost offers HOST_TSO4/6 (it withholds them by default). legacy-ol-flags=1:
      # the guest's offload requests become mbuf TX flags, which io forwarding hands
      # unchanged to the other port's enqueue (with the compliant flags they would arrive
      # as RX flags, which the enqueue side ignores: TSO and checksum requests lost).
      local vdevs=()
      for i in 0 1 2 3; do SOCKS+=("$dir/vm$i.sock"); vdevs+=(--vdev "net_vhost$i,iface=$dir/vm$i.sock,tso=1,legacy-ol-flags=1"); done
      # One testpmd name (so one log) per session: tp_wait_ready looks for a prompt
      # anywhere in the log.
      TP_NAME=ref-${dir##*/}
      tp_start "$TP_NAME" --lcores "0@$DUT_CORE,1@$DUT_CORE" --main-lcore 0 --no-pci \
        --file-prefix "$(sys_prefix ref)" -m 512 "${vdevs[@]}" -- --forward-mode=io --auto-start
      tp_wait_ready "$TP_NAME"
      DUT_PIDS=("${TP_PID[$TP_NAME]}") ;;
    ovs)
      # shellcheck disable=SC2034 # read by ovs_start (perf/ovs.sh)
      OVS_OTHER_CONFIG=(userspace-tso-enable=true)
      ovs_start "$dir/ovs" "$(printf '0x%x' $((1 << DUT_CORE)))" "$(printf '0x%x' $((1 << GEN_CORE)))"
      for i in 0 1 2 3; do ovs_add_vhost_client "vm$i" "$dir/vm$i.sock"; SOCKS+=("$dir/vm$i.sock"); done
      ovs_ready
      log "OVS userspace TSO: $(grep -m1 -o 'Userspace TCP Segmentation Offloading support enabled' "$dir/ovs/ovs-vswitchd.log" || echo 'not confirmed in its log')"
      DUT_PIDS=("$OVS_VSD_PID" "$OVS_DB_PID") ;;
  esac
  # OVS connects to the guests' sockets; the others listen on theirs.
  [[ $target == ovs ]] && return 0
  for i in 0 1 2 3; do wait_for 10 "vhost-user socket ${SOCKS[$i]}" test -S "${SOCKS[$i]}"; done
}

backend_stop() {
  case $1 in
    vuswitch) vusw_stop || log "WARNING: vuswitchd exited non-zero (log: $VUSW_LOG)" ;;
    testpmd) tp_quit "$TP_NAME" ;;
    ovs) ovs_stop ;;
  esac
}

# ---------------------------------------------------------------- guests

declare -A G_IP=() G_CFG=()
QEMU_PIDS=()

# boot_guests TARGET: all four guests, then wait for their ready markers.
boot_guests() {
  local g name port mac ip cfg end
  QEMU_PIDS=()
  # QEMU connects to the back-end's server socket, except with OVS: its
  # dpdkvhostuserclient ports connect to QEMU's.
  CHARDEV_MODE=reconnect=1
  [[ $1 == ovs ]] && CHARDEV_MODE=server=on,wait=off
  for g in "${GUESTS[@]}"; do
    read -r name port mac ip cfg <<<"$g"
    G_IP[$name]=$ip G_CFG[$name]=$cfg
    local dev=
    [[ $cfg == off ]] && dev=$OFFLOADS_OFF
    VM_NETDEV_OPTS='' VM_DEVICE_OPTS=$dev vm_start "$name" "$mac" "$ip/24" "path=${SOCKS[$port]},$CHARDEV_MODE"
    SYS_PIDS+=("${VM_PID[$name]}") QEMU_PIDS+=("${VM_PID[$name]}")
  done
  end=$((SECONDS + BOOT_TIMEOUT))
  for g in "${GUESTS[@]}"; do
    read -r name _ <<<"$g"
    vm_wait_marker "$name" VUSW-GUEST-READY $((end - SECONDS > 1 ? end - SECONDS : 1))
  done
  log "guests up: A1 A2 (offloads on) B1 B2 (offloads off)"
}

# offloads NAME: the offload features guest NAME negotiated, e.g. "CSUM GUEST_TSO4 ..."
# ("none" if none).
offloads() {
  local f bit out='' b
  f=$(vm_features "$1") || { echo "?"; return; }
  for b in $OFFLOAD_BITS; do
    bit=${b%%:*}
    [[ ${f:$bit:1} == 1 ]] && out+="${b#*:} "
  done
  out=${out% }
  echo "${out:-none}"
}

stop_guests() {
  local g name
  for g in "${GUESTS[@]}"; do
    read -r name _ <<<"$g"
    [[ -n ${VM_PID[$name]:-} ]] && vm_stop "$name"
  done
  return 0
}

# ---------------------------------------------------------------- one session

# measure_iperf CFG STREAMS: one iperf3 run of the pair of configuration CFG (on/off);
# one CSV line to fd 3 (columns after round,target: see RAW's header).
measure_iperf() {
  local cfg=$1 p=$2 from=A1 to=A2 out rc=0 l0 l1 mbps retr status=ok
  [[ $cfg == off ]] && from=B1 to=B2
  l0=$(cut -d' ' -f1 /proc/loadavg)
  window_begin "${DUT_PIDS[@]}" "${QEMU_PIDS[@]}"
  out=$(vm_iperf "$from" "${G_IP[$to]}" "$TIME" -O "$OMIT" -P "$p") || rc=$?
  window_end
  l1=$(cut -d' ' -f1 /proc/loadavg)
  mbps=$(iperf_mbps "$out") retr=$(iperf_retransmits "$out")
  if ((rc != 0)); then
    status=failed mbps=
    log "          iperf3 $from -> $to -P $p: no result: $(tr '\n' ' ' <<<"$out")"
  elif ((FOREIGN > 10)); then
    status=disturbed
  fi
  log "          offloads $cfg, $p stream(s): $(awk -v m="${mbps:-0}" 'BEGIN { printf "%.3f", m / 1000 }') Gbps, ${retr:-?} retransmits; foreign CPU $FOREIGN% of a core; load $l0 -> $l1$([[ $status == ok ]] || echo " ($status)")"
  echo "$cfg,$p,$(awk -v m="${mbps:-0}" 'BEGIN { printf "%.4f", m / 1000 }'),$retr,$FOREIGN,$l0,$l1,${G_OFF[$from]},${G_OFF[$to]},$status" >&3
}

# session TARGET ROUND ORDER: start TARGET, boot the guests, measure every (streams,
# configuration) with the configurations in ORDER, stop everything.
declare -A G_OFF=()
SESSION_DIR=
session() {
  local target=$1 round=$2 order=$3 dir=$SYS_TMP/r$2-$1 g name p cfg
  SESSION_DIR=$dir VM_TMP=$dir/guests
  mkdir -p "$VM_TMP"
  ((QUIET_WAIT > 0)) && wait_quiet
  log "          load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  backend_start "$target" "$dir"
  boot_guests "$target"
  for g in "${GUESTS[@]}"; do
    read -r name _ <<<"$g"
    G_OFF[$name]=$(offloads "$name")
    log "          $name (offloads ${G_CFG[$name]} on -device) negotiated: ${G_OFF[$name]}"
  done
  vm_ping_until A1 "${G_IP[A2]}" || fail "A1 gets no answer from A2 (${G_IP[A2]})"
  vm_ping_until B1 "${G_IP[B2]}" || fail "B1 gets no answer from B2 (${G_IP[B2]})"
  vm_iperf_server A2 || fail "iperf3 server did not start in A2"
  vm_iperf_server B2 || fail "iperf3 server did not start in B2"
  for p in $STREAMS; do
    for cfg in $order; do measure_iperf "$cfg" "$p"; done
  done
  [[ $target == vuswitch ]] && { vusw_ctl show ports >>"$SYS_TMP/vuswitchctl.log" 2>&1 || true; }
  stop_guests
  backend_stop "$target"
  log "          load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# run_session TARGET ROUND ORDER: session in a subshell, so that a failure (fail, a
# guest that does not boot) costs this session only; the subshell's trap stops whatever
# it started. Appends its lines to RAW, or a "failed" line; sets SESSION_ERR.
SESSION_ERR=
run_session() {
  local out=$SYS_TMP/session.out err=$SYS_TMP/session.err rc=0 line
  : >"$out"; : >"$err"
  (
    SYS_PIDS=()
    # shellcheck disable=SC2317  # invoked by the trap
    session_cleanup() {
      local rc=$? pid
      trap - EXIT
      set +e
      if ((rc != 0)); then
        print_log_tails "$VM_TMP" 6
        [[ -n $SESSION_DIR ]] && print_log_tails "$SESSION_DIR/ovs" 6
        [[ -n $TP_NAME ]] && print_log_tails "$SYS_TMP" 6
      fi
      for pid in "${SYS_PIDS[@]}"; do sys_stop_pid "$pid" 5; done
      exit "$rc"
    }
    fail() { printf '%s\n' "$*" >"$err"; printf '[%s] FAIL: %s\n' "$SYS_NAME" "$*" >&2; exit 1; }
    trap session_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    session "$@" 3>"$out"
  ) || rc=$?
  ((rc == 130 || rc == 143)) && exit "$rc"
  while IFS= read -r line; do echo "$2,$1,$line" >>"$RAW"; done <"$out"
  SESSION_ERR=
  if ((rc != 0)); then
    SESSION_ERR=$(<"$err")
    [[ -n $SESSION_ERR ]] || SESSION_ERR="session exited with status $rc"
    echo "$2,$1,,,,,,,,,,failed" >>"$RAW"
  fi
}

# ---------------------------------------------------------------- run

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
[[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]] && COMMIT="$COMMIT (uncommitted changes in the tree)"
[[ -x $SYS_VUSWITCHD ]] && COMMIT="$COMMIT, vuswitchd built $(date -u -r "$SYS_VUSWITCHD" '+%Y-%m-%d %H:%M UTC')"
HOST="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores, kernel $(uname -r), $("$QEMU" --version | head -1), DPDK $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo '?')"
OVS_VERSION=$("$OVS_VSWITCHD_DPDK" --version 2>/dev/null | head -1 | awk '{print $NF}' || true)
START=$(date -u '+%Y-%m-%d %H:%M UTC')
ntargets=$(wc -w <<<"$TARGETS")
log "back-ends: $TARGETS; rounds: $ROUNDS; iperf3 -t $TIME -O $OMIT, streams: $STREAMS"
log "$((ntargets * ROUNDS)) sessions (start back-end, boot 4 guests, $(($(wc -w <<<"$STREAMS") * 2)) iperf3 runs), about $((ntargets * ROUNDS * 3 / 2)) min"
log "host: $HOST; vuswitch $COMMIT${OVS_VERSION:+; OVS $OVS_VERSION}; guest kernel $(basename "$KERNEL")"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $LOAD_BEFORE"

RAW=$SYS_TMP/runs.csv
echo "round,target,config,streams,gbps,retransmits,foreign_pct,load1_before,load1_after,offloads_client,offloads_server,status" >"$RAW"
read -r -a TLIST <<<"$TARGETS"
FAILED=()
T_START=$SECONDS
i=0
for ((round = 1; round <= ROUNDS; round++)); do
  order="on off"
  ((round % 2 == 0)) && order="off on"
  for ((k = 0; k < ntargets; k++)); do   # rotated each round: no back-end always runs first
    target=${TLIST[$(((k + round - 1) % ntargets))]}
    i=$((i + 1))
    log "($i/$((ntargets * ROUNDS))) round $round, $target (configurations: $order)"
    run_session "$target" "$round" "$order"
    if [[ -n $SESSION_ERR ]]; then
      log "          FAILED: $SESSION_ERR"
      FAILED+=("round $round $target: $SESSION_ERR")
    fi
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average after: $LOAD_AFTER; took $(((SECONDS - T_START) / 60)) min $(((SECONDS - T_START) % 60)) s"

# ---------------------------------------------------------------- report

report() {
  printf '### VM to VM: iperf3 with and without offloads (perf/vm_iperf.sh)\n\n'
  printf '%s; commit %s; %s.\n' "$START" "$COMMIT" "$HOST"
  printf 'Load average (1/5/15 min) before %s, after %s. ' "$LOAD_BEFORE" "$LOAD_AFTER"
  printf 'Command: `perf/vm_iperf.sh%s`.\n\n' "${ARGS:+ $ARGS}"
  [[ -n $OVS_SKIPPED ]] && printf '**%s**\n\n' "$OVS_SKIPPED"
  local f
  for f in "${FAILED[@]}"; do printf '**Failed: %s**\n\n' "$f"; done
  "$PYTHON" - "$RAW" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
NAMES = {"vuswitch": "vuswitch", "testpmd": "testpmd net_vhost", "ovs": "OVS-DPDK"}
targets = [t for t in NAMES if any(r["target"] == t for r in rows)]
good = [r for r in rows if r["status"] in ("ok", "disturbed") and r["gbps"]]
def cell(t, c, p):
    return [r for r in good if r["target"] == t and r["config"] == c and r["streams"] == p]
def med(rs):
    return statistics.median(float(r["gbps"]) for r in rs) if rs else None
def fmt(rs):
    if not rs:
        return "-"
    v = sorted(float(r["gbps"]) for r in rs)
    d = sum(r["status"] == "disturbed" for r in rs)
    return "%.3f (%.3f-%.3f, n=%d)%s" % (med(rs), v[0], v[-1], len(v), " *%d dist.*" % d if d else "")
def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"
streams = sorted({r["streams"] for r in good}, key=int)
print("Gbps, iperf3 receiver, median (min-max, n runs):\n")
head = " | ".join(NAMES[t] for t in targets)
rat = [t for t in ("testpmd", "ovs") if t in targets and "vuswitch" in targets]
print("| guest offloads | streams | %s |%s" % (head, "".join(" vuswitch / %s |" % NAMES[t] for t in rat)))
print("|---|---:|" + "---:|" * (len(targets) + len(rat)))
for c, label in (("on", "on (QEMU default)"), ("off", "off")):
    for p in streams:
        cells = {t: cell(t, c, p) for t in targets}
        print("| %s | %s | %s |%s" % (label, p, " | ".join(fmt(cells[t]) for t in targets),
              "".join(" %s |" % ratio(med(cells["vuswitch"]), med(cells[t])) for t in rat)))
print()
print("Offloads on / off per back-end (median Gbps ratio): " + "; ".join(
    "%s %s" % (NAMES[t], ", ".join("%s stream(s) %s" % (p, ratio(med(cell(t, "on", p)), med(cell(t, "off", p)))) for p in streams))
    for t in targets) + ".\n")
print("Offload features the guests negotiated (client / server guest, from the guest's sysfs):\n")
print("| back-end | offloads on | offloads off |")
print("|---|---|---|")
for t in targets:
    f = {}
    for c in ("on", "off"):
        s = sorted({"%s / %s" % (r["offloads_client"], r["offloads_server"]) for r in rows if r["target"] == t and r["config"] == c and r["offloads_client"]})
        f[c] = "; ".join(s) or "-"
    print("| %s | %s | %s |" % (NAMES[t], f["on"], f["off"]))
print()
fp = sorted(float(r["foreign_pct"]) for r in rows if r["foreign_pct"])
ld = sorted(float(x) for r in rows for x in (r["load1_before"], r["load1_after"]) if x)
n, dist, fail = len(rows), sum(r["status"] == "disturbed" for r in rows), sum(r["status"] == "failed" for r in rows)
print("%d iperf3 runs: %d ok, %d disturbed (other processes > 10 %% of a core during the run), %d failed; "
      "foreign CPU per run median %s %%, max %s %% of a core; 1-min load average around the runs %s-%s (median %s)." % (
      n, n - dist - fail, dist, fail, "%.0f" % statistics.median(fp) if fp else "-", "%.0f" % fp[-1] if fp else "-",
      "%.2f" % ld[0] if ld else "-", "%.2f" % ld[-1] if ld else "-", "%.2f" % statistics.median(ld) if ld else "-"))
EOF
}
ARGS=
((${#ORIG_ARGS[@]} > 0)) && ARGS=$(printf ' %q' "${ORIG_ARGS[@]}" | sed 's/^ //')
echo
report | tee "$SYS_TMP/report.md"
if [[ -n $CSV ]]; then
  cp "$SYS_TMP/report.md" "$MARKDOWN"
  cp "$RAW" "$CSV"
  log "tables written to $MARKDOWN, every run to $CSV"
fi
if ((${#FAILED[@]} > 0)) || grep -q ',failed$' "$RAW"; then
  log "some sessions or runs failed (see above and the report); exit 1"
  exit 1
fi
exit 0
