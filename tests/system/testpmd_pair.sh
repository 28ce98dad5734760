#!/usr/bin/env bash
# System test: two DPDK virtio-user front-ends (dpdk-testpmd) exchange frames through
# vuswitchd; the counts must agree at every point of the path:
#
#   testpmd A (vm1.sock) --> vuswitchd --> testpmd B (vm2.sock)   and back
#   A TX-packets == switch vm1 rx_packets == switch vm2 tx_packets == B RX-packets
#
# vuswitchd runs with --lcores 0,1 (PMD on core 1). Both testpmds put their main and
# forwarding lcore on core 0 (testpmd needs one lcore besides the main one), so no
# busy-polling thread shares the switch's PMD core. Traffic is sent in rounds of
# "start tx_first 4" (4 bursts x 32 = 128 frames, half a 256-entry ring) while the
# receiver polls in rxonly mode, so a receiver that is descheduled for a while cannot
# overflow and every frame must arrive: the test expects exact equality, zero drops.
#
# Exit: 0 pass, 1 fail, 77 skip (not root / no hugepages / no testpmd).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-5}                 # per direction and frame size
SIZES=${SIZES:-"64 1514"}           # testpmd txpkts (frame length without FCS)
MAC_A=02:00:00:00:0a:01
MAC_B=02:00:00:00:0b:01

sys_init testpmd_pair
sys_require_hugepages 1100
sys_require_daemon

vusw_start pair --lcores 0,1 --log-level info \
  --vhost-user "$SYS_TMP/vm1.sock" --vhost-user "$SYS_TMP/vm2.sock"
[[ -S $SYS_TMP/vm1.sock && -S $SYS_TMP/vm2.sock ]] || fail "vhost-user sockets not created"

tp_start_virtio_user A "$SYS_TMP/vm1.sock" "$MAC_A" "$MAC_B"
tp_start_virtio_user B "$SYS_TMP/vm2.sock" "$MAC_B" "$MAC_A"

errors=0
port_state() { vusw_port_json "$1" state 2>/dev/null; }
both_ready() { [[ $(port_state vm1) == ready && $(port_state vm2) == ready ]]; }
for ((i = 0; i < 100; i++)); do both_ready && break; sleep 0.1; done
if both_ready; then
  log "ok: both virtio-user front-ends connected, ports ready"
else
  # Counted as a failure, but traffic is still tried: its result says more.
  log "MISMATCH: ports not \"ready\" 10 s after the front-ends started: vm1=$(port_state vm1) vm2=$(port_state vm2)"
  errors=$((errors + 1))
fi

# settled FROM FROM_PORT TO TO_PORT: the switch took every frame FROM queued, and TO
# received every frame the switch sent it. Waiting for this after each round keeps
# every ring at most half full even when a core is busy with something else (a
# descheduled PMD or receiver must not turn into drops at a full ring).
settled() {
  local from_tx sw_rx sw_tx to_rx
  from_tx=$(tp_stat "$1" 1 0 3) && sw_rx=$(vusw_port_json "$2" rx_packets) &&
    sw_tx=$(vusw_port_json "$4" tx_packets) && to_rx=$(tp_stat "$3" 1 0 2) &&
    [[ $from_tx == "$sw_rx" && $sw_tx == "$to_rx" ]]
}

# send FROM FROM_PORT TO TO_PORT SIZE: ROUNDS rounds of 128 frames FROM -> TO.
send() {
  local from=$1 from_port=$2 to=$3 to_port=$4 size=$5 r i
  tp_cmd "$from" "set txpkts $size"
  tp_cmd "$to" "start"
  for ((r = 0; r < ROUNDS; r++)); do
    tp_cmd "$from" "start tx_first 4"
    sleep 0.2
    tp_cmd "$from" "stop"
    for ((i = 0; i < 50; i++)); do settled "$from" "$from_port" "$to" "$to_port" && break; sleep 0.2; done
  done
  tp_cmd "$to" "stop"
}
expected=0
for size in $SIZES; do
  log "sending $ROUNDS x 128 frames of $size B A->B and B->A"
  send A vm1 B vm2 "$size"
  send B vm2 A vm1 "$size"
  expected=$((expected + ROUNDS * 128))
done
sleep 1

# port stats: port rx_packets tx_packets rx_pps tx_pps rx_bytes tx_bytes
stats_a=$(tp_stats A 1)
stats_b=$(tp_stats B 1)
read -r _ a_rx a_tx _ _ a_rxb a_txb <<<"$stats_a"
read -r _ b_rx b_tx _ _ b_rxb b_txb <<<"$stats_b"
json=$(vusw_ctl --json show ports) || fail "vuswitchctl --json show ports failed"
printf '%s\n' "$json" >"$SYS_TMP/show_ports.json"
vusw_ctl show ports || fail "vuswitchctl show ports (table) failed"
counts=$("$PYTHON" -c '
import json, sys
ports = {p["name"]: p for p in json.load(sys.stdin)["ports"]}
out = []
for n in ("vm1", "vm2"):
    p = ports[n]
    out += [p["rx_packets"], p["tx_packets"], p["rx_bytes"], p["tx_bytes"], sum(p["drops"].values())]
print(*out)' <<<"$json") || fail "cannot parse vuswitchctl --json output: $json"
read -r s1_rx s1_tx s1_rxb s1_txb s1_drops s2_rx s2_tx s2_rxb s2_txb s2_drops <<<"$counts"

log "testpmd A: tx $a_tx ($a_txb B)  rx $a_rx ($a_rxb B)"
log "testpmd B: tx $b_tx ($b_txb B)  rx $b_rx ($b_rxb B)"
log "switch vm1: rx $s1_rx ($s1_rxb B)  tx $s1_tx ($s1_txb B)  drops $s1_drops"
log "switch vm2: rx $s2_rx ($s2_rxb B)  tx $s2_tx ($s2_txb B)  drops $s2_drops"

check() { # DESCRIPTION LEFT RIGHT
  if [[ $2 == "$3" ]]; then log "ok: $1 ($2)"; else log "MISMATCH: $1: $2 != $3"; errors=$((errors + 1)); fi
}
check "A sent every frame" "$a_tx" "$expected"
check "B sent every frame" "$b_tx" "$expected"
check "A tx == switch vm1 rx" "$a_tx" "$s1_rx"
check "switch vm1 rx == switch vm2 tx" "$s1_rx" "$s2_tx"
check "switch vm2 tx == B rx" "$s2_tx" "$b_rx"
check "B tx == switch vm2 rx" "$b_tx" "$s2_rx"
check "switch vm2 rx == switch vm1 tx" "$s2_rx" "$s1_tx"
check "switch vm1 tx == A rx" "$s1_tx" "$a_rx"
check "A tx bytes == switch vm1 rx bytes" "$a_txb" "$s1_rxb"
check "switch vm2 tx bytes == B rx bytes" "$s2_txb" "$b_rxb"
check "B tx bytes == switch vm2 rx bytes" "$b_txb" "$s2_rxb"
check "switch vm1 tx bytes == A rx bytes" "$s1_txb" "$a_rxb"
check "switch drops" "$((s1_drops + s2_drops))" 0

tp_quit A
tp_quit B
rc=0
vusw_stop || rc=$?
check "vuswitchd exit code on SIGTERM" "$rc" 0
[[ ! -e $SYS_TMP/vm1.sock && ! -e $SYS_TMP/vm2.sock ]] || { log "MISMATCH: server sockets left behind"; errors=$((errors + 1)); }
[[ ! -e $VUSW_CTL ]] || { log "MISMATCH: control socket left behind"; errors=$((errors + 1)); }

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: $((expected * 2)) frames exchanged, counts agree at both ends and in vuswitchctl"
