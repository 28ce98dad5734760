# shellcheck shell=bash
# Helpers for the VM tests: build/locate the guest, run vuswitchd and QEMU guests in
# the background, talk to them (QMP, serial markers, the guest agent on ttyS1), read
# the switch's counters, and clean up every process (by PID) and temp file on exit.
#
# Source it, then call vm_init NAME once. Everything lives under $VM_TMP.
# Environment:
#   VUSW_BUILD        build directory (default ROOT/build): vuswitchd, vuswitchctl, vm-guest/
#   VUSW_GUEST_DIR    guest cache (default $VUSW_BUILD/vm-guest)
#   VM_GUEST_BUILT=1  the guest is known to be up to date (run.sh built it): do not re-check
#   VM_KEEP_LOGS=1    keep $VM_TMP (logs) after the test
#   VM_VERBOSE=1      full guest kernel log on the serial console (slower under TCG)
#   VM_LOG_LEVEL      vuswitchd --log-level (default debug: every vhost-user message is logged)

VM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/proc.sh
source "$VM_ROOT/tests/lib/proc.sh"
VM_DIR=$VM_ROOT/tests/vm
VM_BUILD=${VUSW_BUILD:-$VM_ROOT/build}
VM_GUEST_DIR=${VUSW_GUEST_DIR:-$VM_BUILD/vm-guest}
VUSWITCHD=${VUSWITCHD:-$VM_BUILD/control/vuswitchd}
VUSWITCHCTL=${VUSWITCHCTL:-$VM_BUILD/control/vuswitchctl}
QEMU=${QEMU:-qemu-system-x86_64}
VMCTL=$VM_DIR/vmctl.py
# The system python: a pyenv shim in PATH can cost seconds per call on a loaded host.
PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
# Cores: the switch's PMD polls core 1 at 100%; QEMU (TCG, one vCPU thread each) and the
# switch's control thread share core 0, so the PMD is never preempted by a guest.
VM_QEMU_CPUS=${VM_QEMU_CPUS:-0}
VM_LCORES=${VM_LCORES:-0,1}

VM_NAME=
VM_TMP=
VM_PIDS=()           # every background process we started; stopped by PID on exit
VM_CLEANUP_HOOKS=()  # extra commands run at exit after the processes stopped (netns, veth)
VM_START=$SECONDS
VM_T0=${EPOCHREALTIME/./}   # microseconds; log files are stamped relative to it
declare -A VM_PID=() VM_SERIAL=()

log()  { printf '[%s %3ds] %s\n' "$VM_NAME" "$((SECONDS - VM_START))" "$*"; }
fail() { printf '[%s %3ds] FAIL: %s\n' "$VM_NAME" "$((SECONDS - VM_START))" "$*" >&2; exit 1; }
skip() { printf '[%s] SKIP: %s\n' "$VM_NAME" "$*" >&2; exit 77; }

# vm_init NAME: preconditions, guest image, temp dir, exit trap.
vm_init() {
  VM_NAME=$1
  [[ $(id -u) -eq 0 ]] || skip "needs root (vhost-user sockets, DPDK)"
  [[ -n $PY ]] || skip "python3 not found"
  [[ -x $VUSWITCHD && -x $VUSWITCHCTL ]] || fail "vuswitchd/vuswitchctl not built in $VM_BUILD (meson setup build && ninja -C build)"
  VM_TMP=$(mktemp -d "/tmp/vusw-vm-$VM_NAME.XXXXXX")
  trap vm_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  vm_guest_setup
}

# vm_guest_setup: QEMU usable here (else skip), guest built (or up to date) and its
# KERNEL/INITRD known. vm_init calls it; a harness with its own temp dir and exit trap
# (perf/vm_iperf.sh) sets VM_TMP and calls it directly, then stops VM_PIDS itself.
vm_guest_setup() {
  vm_probe_qemu
  if [[ ${VM_GUEST_BUILT:-0} != 1 || ! -f $VM_GUEST_DIR/guest.env ]]; then
    "$VM_DIR/build-guest.sh" "$VM_GUEST_DIR" || fail "building the guest failed"
  fi
  # shellcheck disable=SC1091
  source "$VM_GUEST_DIR/guest.env"
}

# Skip (77) only if QEMU itself cannot run a TCG machine with shared memfd RAM here.
vm_probe_qemu() {
  command -v "$QEMU" >/dev/null || skip "$QEMU not found (Debian package qemu-system-x86)"
  local out
  if ! out=$(echo quit | timeout 30 "$QEMU" -accel tcg -machine pc -m 64M -display none -nodefaults \
      -object memory-backend-memfd,id=m,size=64M,share=on -numa node,memdev=m -S -monitor stdio 2>&1); then
    skip "$QEMU cannot start a TCG machine with memfd shared memory here: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
  fi
}

vm_cleanup() {
  local rc=$?
  trap - EXIT
  stop_pids "${VM_PIDS[@]}"
  run_hooks "${VM_CLEANUP_HOOKS[@]}"
  # EAL leaves its runtime directory behind (with --no-huge there are no hugepage files).
  rm -rf /var/run/dpdk/"vusw-vm-$VM_NAME-"*"-$$" 2>/dev/null || true
  if [[ $rc -ne 0 && $rc -ne 77 && -n $VM_TMP && -d $VM_TMP && ${VM_KEEP_LOGS:-0} != 1 ]]; then
    print_log_tails "$VM_TMP" 30
  fi
  if [[ ${VM_KEEP_LOGS:-0} == 1 ]]; then
    printf '[%s] logs kept in %s\n' "$VM_NAME" "$VM_TMP" >&2
  elif [[ -n $VM_TMP ]]; then
    rm -rf "$VM_TMP"
  fi
  exit "$rc"
}

# wait_for (tests/lib/proc.sh) polls every 0.2 s here: the VM tests' conditions run
# vuswitchctl and python, on a host already busy with TCG guests.
WAIT_FOR_POLL_S=0.2

# stamp_lines: prefix each line with seconds since the test started (ms resolution), so
# the daemon's debug log can be lined up with QMP actions and guest events.
stamp_lines() {
  local line t
  while IFS= read -r line; do
    t=$((${EPOCHREALTIME/./} - VM_T0))
    printf '%4d.%03d %s\n' $((t / 1000000)) $((t / 1000 % 1000)) "$line"
  done
}

# ---------------------------------------------------------------- vuswitchd

VUSW_PID=
VUSW_LOG=
VUSW_CTL=
VUSW_ARGS=()
VUSW_RUNS=0

# vusw_start ARGS...: start vuswitchd (unique file prefix, run dir, control socket, no
# hugepages, debug log) and wait for "vuswitchd: ready". Each start gets its own log
# (vuswitchd-N.log); VUSW_ARGS remembers the args for vusw_restart.
vusw_start() {
  VUSW_ARGS=("$@")
  VUSW_RUNS=$((VUSW_RUNS + 1))
  VUSW_LOG=$VM_TMP/vuswitchd-$VUSW_RUNS.log
  VUSW_CTL=$VM_TMP/run/vuswitchd.ctl
  mkdir -p "$VM_TMP/run"
  local prefix="vusw-vm-$VM_NAME-$VUSW_RUNS-$$"
  log "start vuswitchd #$VUSW_RUNS: $*"
  "$VUSWITCHD" --file-prefix "$prefix" --run-dir "$VM_TMP/run" --control "$VUSW_CTL" \
    --metrics off --no-huge --lcores "$VM_LCORES" --log-level "${VM_LOG_LEVEL:-debug}" "$@" \
    </dev/null > >(stamp_lines >"$VUSW_LOG") 2>&1 &
  VUSW_PID=$!
  VM_PIDS+=("$VUSW_PID")
  local end=$((SECONDS + 30))
  until grep -q 'vuswitchd: ready' "$VUSW_LOG" 2>/dev/null; do
    kill -0 "$VUSW_PID" 2>/dev/null || fail "vuswitchd exited during start-up (see ${VUSW_LOG##*/})"
    ((SECONDS < end)) || fail "vuswitchd not ready after 30 s"
    sleep 0.1
  done
}

# vusw_stop: SIGTERM, expect exit 0 within 10 s.
vusw_stop() {
  [[ -n $VUSW_PID ]] || return 0
  local pid=$VUSW_PID rc=0
  VUSW_PID=
  term_and_wait "$pid" vuswitchd || rc=$?
  ((rc == 0)) || fail "vuswitchd exited with status $rc on SIGTERM"
}

vusw_restart() { vusw_stop; vusw_start "${VUSW_ARGS[@]}"; }

vusw_json() { "$VUSWITCHCTL" --control "$VUSW_CTL" --json show ports; }

# vusw_fdb_port MAC: the port(s) the switch's FDB has learned MAC on (empty if none).
vusw_fdb_port() {
  local f=$VM_TMP/fdb.json
  "$VUSWITCHCTL" --control "$VUSW_CTL" --json show fdb >"$f" || fail "vuswitchctl show fdb failed"
  "$PY" "$VMCTL" fdb-port "$f" "$1"
}

# vusw_snap TAG: save `vuswitchctl --json show ports` as $VM_TMP/ports-TAG.json and
# print the path. Checks then read the file (one vuswitchctl call, not one per field).
vusw_snap() {
  local f=$VM_TMP/ports-$1.json
  vusw_json >"$f" || fail "vuswitchctl show ports failed"
  printf '%s\n' "$f"
}

# snap_get SNAP PORT.FIELD[.KEY]: one value (dicts summed unless .KEY; missing = 0).
snap_get() { "$PY" "$VMCTL" ports-get "$1" "$2"; }

# snap_check SNAP EXPR...: e.g. vm1.rx_packets>=20 vm1.drops==0 vm1.state=connected|ready;
# prints the failed expressions (empty output = all good).
snap_check() { "$PY" "$VMCTL" ports-check "$@" || true; }

# vusw_summary [SNAP]: two lines per port: counters, non-zero drops/errors, messages.
vusw_summary() {
  local snap=${1:-$(vusw_snap now)}
  "$PY" -c '
import json, sys
for p in json.load(open(sys.argv[1]))["ports"]:
    nz = lambda d: {k: v for k, v in (d or {}).items() if v}
    line = "  %-4s %-10s rx=%d tx=%d drops=%s" % (p["name"], p["state"], p["rx_packets"], p["tx_packets"], nz(p.get("drops")))
    if p.get("type") == "vhost-user":
        line += " errors=%s mem_regions=%s rem_mem_reg_fds=%s broken_queues=%s connections=%s grace_periods=%s (%.3fs)" % (
            nz(p.get("protocol_errors")), p.get("mem_regions"), p.get("rem_mem_reg_fds"), p.get("broken_queues"),
            p.get("connections"), p.get("grace_periods"), p.get("grace_seconds") or 0)
    print(line)
    if p.get("messages"):
        print("       messages: %s" % " ".join("%s=%d" % kv for kv in sorted(nz(p.get("messages")).items())))
' "$snap"
}

# ---------------------------------------------------------------- QEMU guests

# vm_start NAME MAC IP NETDEV-CHARDEV-OPTS [KERNEL-ARGS...]
#   NETDEV-CHARDEV-OPTS: the socket chardev options for the vhost-user netdev, e.g.
#   "path=/x/vm1.sock,reconnect=1" (QEMU connects to our server socket) or
#   "path=/x/vm2.sock,server=on,wait=off" (QEMU listens, vuswitchd --vhost-user-client).
# The guest gets 256 MiB boot RAM as a shared memfd (the switch maps it), room for 4
# DIMMs up to 1 GiB, a QMP socket NAME.qmp, its console in NAME.serial.log and the
# command agent on its second UART (socket NAME.agent).
#   VM_NETDEV_OPTS / VM_DEVICE_OPTS (e.g. set for one call: VM_DEVICE_OPTS=packed=on vm_start ..):
#   extra comma-separated options for -netdev vhost-user (queues=4) and -device
#   virtio-net-pci (packed=on, mq=on, host_mtu=9000, csum=off, ...). Without a vectors=
#   option the device gets vectors=0.
#   VM_INCOMING=defer: a migration destination (-incoming defer): same machine, guest RAM
#   filled by the migration (vm_migrate), not booted. VM_GUEST_NAME: the guest's name on
#   its kernel command line (default NAME); a destination takes its source's, so both
#   QEMUs get the same command line, the same fw_cfg blobs. VM_QEMU_ARGS: more QEMU
#   arguments, split on spaces (-S: a destination that stays paused after the migration).
vm_start() {
  local name=$1 mac=$2 ip=$3 chardev=$4
  shift 4
  local serial=$VM_TMP/$name.serial.log quiet=quiet incoming=()
  [[ -n ${VM_INCOMING:-} ]] && incoming=(-incoming "$VM_INCOMING")
  local extra=()
  read -r -a extra <<<"${VM_QEMU_ARGS:-}"
  [[ ${VM_VERBOSE:-0} == 1 ]] && quiet=
  VM_SERIAL[$name]=$serial
  : >"$serial"
  # vectors=0: QEMU 7.2 under TCG segfaults when a guest starts a vhost-user virtio-net
  # with MSI-X (vhost_net_start -> msix_set_vector_notifiers), also with mq=on; legacy
  # INTx avoids it.
  local netdev=vhost-user,id=n0,chardev=c0 device=virtio-net-pci,netdev=n0,mac=$mac
  [[ -n ${VM_NETDEV_OPTS:-} ]] && netdev+=,$VM_NETDEV_OPTS
  [[ -n ${VM_DEVICE_OPTS:-} ]] && device+=,$VM_DEVICE_OPTS
  [[ ,${VM_DEVICE_OPTS:-}, == *,vectors=* ]] || device+=,vectors=0
  log "start ${VM_INCOMING:+incoming }guest $name (mac $mac, ip $ip, chardev $chardev${VM_NETDEV_OPTS:+, netdev +$VM_NETDEV_OPTS}${VM_DEVICE_OPTS:+, device +$VM_DEVICE_OPTS})"
  taskset -c "$VM_QEMU_CPUS" "$QEMU" -name "$name" -accel tcg -machine pc -smp 1 \
    -m 256M,slots=4,maxmem=1G \
    -object memory-backend-memfd,id=mem0,size=256M,share=on -numa node,memdev=mem0 \
    -chardev "socket,id=c0,$chardev" \
    -netdev "$netdev" \
    -device "$device" \
    -display none -nodefaults -no-user-config -no-reboot \
    -serial "file:$serial" \
    -chardev "socket,id=agent,path=$VM_TMP/$name.agent,server=on,wait=off" -serial chardev:agent \
    -qmp "unix:$VM_TMP/$name.qmp,server=on,wait=off" \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "console=ttyS0 $quiet panic=1 mitigations=off vusw_name=${VM_GUEST_NAME:-$name} vusw_ip=$ip $*" \
    "${incoming[@]}" "${extra[@]}" </dev/null >"$VM_TMP/$name.qemu.log" 2>&1 &
  VM_PID[$name]=$!
  VM_PIDS+=("${VM_PID[$name]}")
}

vm_alive() { kill -0 "${VM_PID[$1]}" 2>/dev/null; }

# vm_marker NAME PATTERN: the last serial line matching PATTERN (empty if none).
vm_marker() { grep -a "$2" "${VM_SERIAL[$1]}" 2>/dev/null | tail -1 | tr -d '\r'; }

# vm_wait_marker NAME PATTERN TIMEOUT: wait for a serial marker; fail if QEMU dies.
vm_wait_marker() {
  local name=$1 pat=$2 t=$3 end=$((SECONDS + $3))
  until grep -aq "$pat" "${VM_SERIAL[$name]}" 2>/dev/null; do
    vm_alive "$name" || fail "QEMU $name exited while waiting for '$pat' (see $name.qemu.log)"
    ((SECONDS < end)) || fail "guest $name: no '$pat' on its console after ${t}s"
    sleep 0.5
  done
}

vm_ready() { vm_wait_marker "$1" 'VUSW-GUEST-READY' "${2:-120}"; log "guest $1 ready: $(vm_marker "$1" VUSW-GUEST-READY)"; }

# vm_exec NAME [-t SECS] -- COMMAND: run COMMAND in the guest through the agent.
vm_exec() { local name=$1; shift; "$PY" "$VMCTL" guest "$VM_TMP/$name.agent" "$@"; }

vm_qmp() { local name=$1; shift; "$PY" "$VMCTL" qmp "$VM_TMP/$name.qmp" "$@"; }

# vm_wait_qmp NAME [TIMEOUT]: wait until QEMU NAME's QMP socket exists (fail if it exited).
vm_wait_qmp() {
  local end=$((SECONDS + ${2:-30}))
  until [[ -S $VM_TMP/$1.qmp ]]; do
    vm_alive "$1" || fail "QEMU $1 exited during start-up: $(tail -n 3 "$VM_TMP/$1.qemu.log" | tr '\n' ' ')"
    ((SECONDS < end)) || fail "QEMU $1: no QMP socket after ${2:-30}s"
    sleep 0.1
  done
}

# vm_migrate SRC DST [--postcopy] [--paused] [--timeout SECS]: migrate the guest running in
# QEMU SRC to QEMU DST (started with VM_INCOMING=defer; with -S for --paused) over a unix
# socket; prints vmctl.py's JSON line (status, downtime_ms, total_ms, ram, ...) and returns
# its exit status (0 completed and DST running, or paused with --paused; 1 failed, 2
# refused by QEMU, 3 postcopy-ram refused).
vm_migrate() {
  local src=$1 dst=$2
  shift 2
  "$PY" "$VMCTL" migrate "$VM_TMP/$src.qmp" "$VM_TMP/$dst.qmp" "unix:$VM_TMP/$dst.migrate" "$@"
}

# vm_stop NAME: QMP quit (QEMU stops the rings: GET_VRING_BASE), then TERM/KILL.
vm_stop() {
  local name=$1 pid=${VM_PID[$1]}
  [[ -n $pid ]] || return 0
  vm_qmp "$name" quit >/dev/null 2>&1 || true
  wait_exit "$pid" 10 || log "QEMU $name still running 10 s after QMP quit; killing it"
  stop_pid "$pid" 5
  VM_PID[$name]=
}

# ping_result LINE FIELD: a field (sent, received, loss) of a VUSW-PING-RESULT marker.
marker_field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1" | tr -d '%'; }

# vm_features NAME: the virtio features the guest driver negotiated, one character per
# bit (sysfs), e.g. ${f:11:1} == 1 for VIRTIO_NET_F_HOST_TSO4.
vm_features() { vm_exec "$1" -- 'cat /sys/bus/virtio/devices/virtio0/features'; }

# ---------------------------------------------------------------- iperf3 in guests

# vm_ping_until NAME IP [TRIES]: single pings from guest NAME until IP answers (ARP
# resolved, the peer's eth0 up); false after TRIES (30) unanswered ones.
vm_ping_until() {
  vm_exec "$1" -t $((${3:-30} + 10)) -- "i=0; until ping -c 1 -W 1 $2 >/dev/null 2>&1; do i=\$((i + 1)); [ \$i -lt ${3:-30} ] || exit 1; done"
}

# vm_iperf_server NAME: iperf3 daemon in guest NAME; false if it did not start.
vm_iperf_server() {
  # shellcheck disable=SC2016 # expanded in the guest
  vm_exec "$1" -- 'iperf3 -s -D -I /tmp/iperf3.pid && sleep 0.3 && kill -0 $(cat /tmp/iperf3.pid)' >/dev/null
}

# vm_iperf NAME IP SECS ARGS...: iperf3 -c IP for SECS s from guest NAME (ARGS: -P 4,
# -R, -u ...); prints its sender/receiver summary lines (and any error line). False,
# with whatever iperf3 said printed, if there is no receiver line.
vm_iperf() {
  local name=$1 ip=$2 secs=$3 out
  shift 3
  out=$(vm_exec "$name" -t $((secs + 40)) -- "iperf3 -c $ip -t $secs -f m $* 2>&1 | grep -E 'sender|receiver|error'" || true)
  printf '%s\n' "$out"
  grep -q receiver <<<"$out"
}

# iperf_mbps OUT: the receiver's total Mbit/s in vm_iperf's output (the SUM line with
# -P, else the one stream).
iperf_mbps() {
  awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") v = $i; if ($1 == "[SUM]") { s = v } else if (s == "") { last = v } }
       END { print (s != "" ? s : last) + 0 }' <<<"$1"
}

# iperf_retransmits OUT: TCP retransmissions in vm_iperf's output (the sender's Retr
# column, SUM line with -P); empty if iperf3 printed none (UDP).
iperf_retransmits() {
  awk '/sender/ { for (i = 1; i < NF; i++) if ($i == "Mbits/sec" && $(i + 1) ~ /^[0-9]+$/) v = $(i + 1); if ($1 == "[SUM]") { s = v } else if (s == "") { last = v } }
       END { print (s != "" ? s : last) }' <<<"$1"
}
