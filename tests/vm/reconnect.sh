#!/usr/bin/env bash
# VM test: traffic resumes by itself after either side of a vhost-user connection restarts.
#
#   guest A (vm1.sock: QEMU is the client, reconnect=1)  <->  vuswitchd  <->
#   guest B (vm2.sock: QEMU is the server, vuswitchd --vhost-user-client reconnects)
#
#   1. Both guests up, A has a hot-added DIMM (so a reconnect must replay two regions).
#   2. Restart vuswitchd while both VMs run: QEMU A reconnects within a second
#      (reconnect=1), the new vuswitchd connects to QEMU B. Both replay their state
#      (ADD_MEM_REG per region, rings with SET_VRING_BASE recovered from the guest).
#      Pings from A must come back by themselves, then a 20-ping run loses nothing.
#   3. Restart QEMU B (quit, start it again on the same socket): vuswitchd reconnects
#      with its backoff; once B has booted A's pings must come back, again loss-free.
# After each phase the switch's drop counters must not move during the loss-free run.
# (Frames that arrive while a port is still reconnecting may be dropped and counted:
# those are reported, not failed.)
#
# Exit: 0 pass, 1 fail, 77 skip (not root / QEMU cannot run a TCG guest here).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-20}
INTERVAL=${INTERVAL:-0.2}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
RESUME_TIMEOUT=${RESUME_TIMEOUT:-60}   # after the restart, until A's pings come back
MAC_A=52:54:00:00:00:0a
MAC_B=52:54:00:00:00:0b
IP_A=10.10.0.1
IP_B=10.10.0.2

vm_init reconnect

FAILS=()
failed() { log "FAIL: $*"; FAILS+=("$*"); }

ports_up() { # all vhost ports in state ready
  local s
  s=$(vusw_snap up)
  [[ -z $(snap_check "$s" vm1.state=ready vm2.state=ready) ]]
}

# wait_resume WHAT: A pings B once a second until a reply comes; print the seconds taken.
wait_resume() {
  local t0=$SECONDS
  vm_exec A -t $((RESUME_TIMEOUT + 10)) -- \
    'i=0; until ping -c 1 -W 1 '"$IP_B"' >/dev/null 2>&1; do i=$((i + 1)); [ $i -lt '"$RESUME_TIMEOUT"' ] || exit 1; done' \
    || { failed "$1: A's pings to B did not come back within ${RESUME_TIMEOUT}s"; return 1; }
  log "$1: pings from A answered again after $((SECONDS - t0))s of trying"
}

# clean_run WHAT: COUNT pings must all come back and the switch must drop nothing meanwhile.
clean_run() {
  local what=$1 before after out sent received
  before=$(vusw_snap "$what-before")
  out=$(vm_exec A -t $((COUNT + 30)) -- "ping -q -c $COUNT -i $INTERVAL -W 5 $IP_B" || true)
  after=$(vusw_snap "$what-after")
  sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' <<<"$out")
  received=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' <<<"$out")
  log "$what: $received of $sent pings answered"
  [[ $sent == "$COUNT" && $received == "$COUNT" ]] || failed "$what: $received of $sent pings answered (expected $COUNT)"
  local p d
  for p in vm1 vm2; do
    d=$(($(snap_get "$after" "$p.drops") - $(snap_get "$before" "$p.drops")))
    ((d == 0)) || failed "$what: switch port $p dropped $d frames during the clean run"
  done
}

# ---- 1. two guests, A with a hot-added DIMM
vusw_start --vhost-user "$VM_TMP/vm1.sock" --vhost-user-client "$VM_TMP/vm2.sock"
vm_start B "$MAC_B" "$IP_B/24" "path=$VM_TMP/vm2.sock,server=on,wait=off"
vm_start A "$MAC_A" "$IP_A/24" "path=$VM_TMP/vm1.sock,reconnect=1"
vm_ready B "$BOOT_TIMEOUT"
vm_ready A "$BOOT_TIMEOUT"
log "A: $("$PY" "$VMCTL" dimm-add "$VM_TMP/A.qmp" dk $((128 << 20)))"
log "A: $(vm_exec A -- vusw-online online_kernel 60 | tr '\n' ' ')"
wait_resume "boot"
clean_run "before restarts"

# ---- 2. restart vuswitchd under running guests
t0=$SECONDS
vusw_restart
log "vuswitchd restarted ($((SECONDS - t0))s); waiting for both front-ends"
wait_for 30 "both ports ready after the switch restart" ports_up
snap=$(vusw_snap after-switch-restart)
log "ports $((SECONDS - t0))s after the restart:"
vusw_summary "$snap"
while IFS= read -r f; do [[ -n $f ]] && failed "after switch restart: $f"; done < <(
  snap_check "$snap" vm1.mem_regions==2 vm2.mem_regions==1 vm1.messages.ADD_MEM_REG==2 \
    vm1.messages.SET_MEM_TABLE==0 vm2.messages.SET_MEM_TABLE==0 vm1.protocol_errors==0 vm2.protocol_errors==0)
wait_resume "switch restart" && clean_run "after switch restart"

# ---- 3. restart QEMU B (we are its client: the switch reconnects)
conn_before=$(snap_get "$(vusw_snap before-b-restart)" vm2.connections)
t0=$SECONDS
vm_stop B
log "QEMU B stopped; port vm2: $(snap_get "$(vusw_snap b-down)" vm2.state)"
: >"${VM_SERIAL[B]}"
vm_start B "$MAC_B" "$IP_B/24" "path=$VM_TMP/vm2.sock,server=on,wait=off"
vm_ready B "$BOOT_TIMEOUT"
wait_for 30 "port vm2 ready after QEMU B restarted" ports_up
wait_resume "QEMU B restart" && clean_run "after QEMU B restart"
snap=$(vusw_snap final)
log "ports at the end ($((SECONDS - t0))s after QEMU B was stopped):"
vusw_summary "$snap"
conn_after=$(snap_get "$snap" vm2.connections)
((conn_after > conn_before)) || failed "vm2 connections $conn_before -> $conn_after: the switch did not reconnect to QEMU B"
while IFS= read -r f; do [[ -n $f ]] && failed "at the end: $f"; done < <(
  snap_check "$snap" vm1.protocol_errors==0 vm2.protocol_errors==0 vm1.broken_queues==0 vm2.broken_queues==0)
log "drops counted while a port was reconnecting (not failures): vm1 $(snap_get "$snap" vm1.drops), vm2 $(snap_get "$snap" vm2.drops)"

log "stopping guests and switch"
vm_stop A
vm_stop B
vusw_stop

if ((${#FAILS[@]})); then
  log "FAILED (${#FAILS[@]} checks):"
  for f in "${FAILS[@]}"; do log "  $f"; done
  exit 1
fi
log "PASS: traffic resumed by itself after a vuswitchd restart and after a QEMU restart (total ${SECONDS}s)"
