#!/usr/bin/env bash
# VM test: two QEMU guests ping each other through vuswitchd.
#
#   guest A (QEMU connects to our server socket vm1.sock, --vhost-user)
#       <-> vuswitchd (PMD on core 1) <->
#   guest B (QEMU listens on vm2.sock, we connect: --vhost-user-client)
#
# Guest A pings B COUNT times (its /init does it, from the kernel command line) and
# prints a VUSW-PING-RESULT marker on its serial console. Pass: 0% loss, COUNT replies,
# and the switch saw the traffic on both ports (rx and tx >= COUNT each way) with zero
# drops and zero protocol errors.
#
# Exit: 0 pass, 1 fail, 77 skip (not root / QEMU cannot run a TCG guest here).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-20}
INTERVAL=${INTERVAL:-0.2}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}  # TCG, two guests on one core: ~20-40 s each
MAC_A=52:54:00:00:00:0a
MAC_B=52:54:00:00:00:0b
IP_A=10.10.0.1
IP_B=10.10.0.2

vm_init ping

vusw_start --vhost-user "$VM_TMP/vm1.sock" --vhost-user-client "$VM_TMP/vm2.sock"

# B first: its QEMU listens on vm2.sock and does not start the guest until the switch
# has connected (QEMU waits for the back-end of a server-mode vhost-user chardev).
vm_start B "$MAC_B" "$IP_B/24" "path=$VM_TMP/vm2.sock,server=on,wait=off"
vm_start A "$MAC_A" "$IP_A/24" "path=$VM_TMP/vm1.sock,reconnect=1" \
  "vusw_ping=$IP_B:$COUNT:$INTERVAL"
vm_ready B "$BOOT_TIMEOUT"
vm_ready A "$BOOT_TIMEOUT"
# Drops are counted from here: before a guest's eth0 is up it has posted no RX buffers,
# so frames flooded to it during boot are dropped (no_rx_buffer) legitimately.
base=$(vusw_snap booted)
log "ports after boot:"
vusw_summary "$base"

# A retries single pings until B answers (B may still be booting), then the measured run.
vm_wait_marker A 'VUSW-PING-START' 150
log "$(vm_marker A VUSW-PING-START)"
vm_wait_marker A 'VUSW-PING-RESULT' $((COUNT + 60))
result=$(vm_marker A VUSW-PING-RESULT)
log "$result"

fails=()
sent=$(marker_field "$result" sent)
received=$(marker_field "$result" received)
loss=$(marker_field "$result" loss)
[[ $sent == "$COUNT" && $received == "$COUNT" && $loss == 0 ]] \
  || fails+=("guest A: $received of $sent replies ($loss% loss), expected $COUNT of $COUNT")
if grep -aq 'DUP!' "${VM_SERIAL[A]}"; then fails+=("guest A saw duplicate replies"); fi

# Since boot the switch saw every ping on both ports, dropped nothing, and the sessions
# are up ("ready"; older daemons said "connected" once a front-end session existed).
snap=$(vusw_snap after-ping)
log "ports after ping:"
vusw_summary "$snap"
while IFS= read -r f; do [[ -n $f ]] && fails+=("switch: $f"); done < <(
  snap_check "$snap" vm1.rx_packets">="$COUNT vm1.tx_packets">="$COUNT vm2.rx_packets">="$COUNT \
    vm2.tx_packets">="$COUNT vm1.protocol_errors==0 vm2.protocol_errors==0 \
    vm1.broken_queues==0 vm2.broken_queues==0 "vm1.state=connected|ready" "vm2.state=connected|ready"
  snap_check "$snap" --since "$base" vm1.drops==0 vm2.drops==0)

log "stopping guests and switch"
vm_stop A
vm_stop B
vusw_stop

if ((${#fails[@]})); then
  for f in "${fails[@]}"; do log "FAIL: $f"; done
  exit 1
fi
log "PASS: $COUNT/$COUNT pings through vuswitchd, zero drops (total ${SECONDS}s)"
