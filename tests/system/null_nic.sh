#!/usr/bin/env bash
# System test: a net_null NIC (DPDK's sink/source device) next to a virtio-user front-end.
#
#   net_null0 <-- vuswitchd -- vm1.sock --> testpmd (virtio-user, rxonly)
#
#   vm -> nic: testpmd sends rounds of 128 frames ("start tx_first 4"); net_null0's
#              tx counter in vuswitchd must grow by exactly what the front-end sent
#              (unknown unicast is flooded to the only other port, the NIC).
#   nic -> vm: net_null receives endless frames; they must reach the switch (nic rx
#              grows) and be switched towards vm1 (delivered or counted as a drop).
# Exit: 0 pass, 1 fail, 77 skip.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-5}
VM_MAC=02:00:00:00:0d:01
PEER_MAC=02:00:00:00:0d:99

sys_init null_nic
sys_require_hugepages 600
sys_require_daemon

vusw_start null_nic --lcores 0,1 --log-level info --nic net_null0 --vhost-user "$SYS_TMP/vm1.sock"
tp_start vm --lcores 0@0,1@0 --main-lcore 0 --no-pci --single-file-segments \
  --iova-mode=va --file-prefix "$(sys_prefix vm)" -m 256 \
  --vdev "net_virtio_user0,path=$SYS_TMP/vm1.sock,mac=$VM_MAC" \
  -- --forward-mode=rxonly --eth-peer=0,"$PEER_MAC" --total-num-mbufs=16384
tp_wait_ready vm

counters() { # PORT -> "rx tx drops"
  vusw_ctl --json show ports | "$PYTHON" -c '
import json, sys
p = {p["name"]: p for p in json.load(sys.stdin)["ports"]}[sys.argv[1]]
print(p["rx_packets"], p["tx_packets"], sum(p["drops"].values()))' "$1"
}
ready=0
for ((i = 0; i < 100; i++)); do [[ $(vusw_port_json vm1 state 2>/dev/null) == ready ]] && ready=1 && break; sleep 0.1; done
((ready)) || fail "port vm1 not ready 10 s after the front-end started"


read -r _ nic_tx0 _ < <(counters net_null0)
vm_tx0=$(tp_stat vm 1 0 3)
for ((r = 0; r < ROUNDS; r++)); do
  tp_cmd vm "start tx_first 4"
  sleep 0.2
  tp_cmd vm "stop"
done
sleep 0.5
vm_sent=$(( $(tp_stat vm 1 0 3) - vm_tx0 ))
read -r nic_rx nic_tx _ < <(counters net_null0)
read -r vm_rx vm_tx vm_drops < <(counters vm1)
log "front-end sent $vm_sent; net_null0 rx $nic_rx tx $((nic_tx - nic_tx0)); vm1 rx $vm_rx tx $vm_tx drops $vm_drops"
expect "front-end sent $((ROUNDS * 128)) frames" test "$vm_sent" -eq $((ROUNDS * 128))
expect "net_null0 transmitted every frame the front-end sent" test "$((nic_tx - nic_tx0))" -eq "$vm_sent"
expect "vm1 rx ($vm_rx) == front-end tx ($vm_sent)" test "$vm_rx" -eq "$vm_sent"
expect "net_null0 received frames into the switch" test "$nic_rx" -gt 0
expect "frames from net_null0 were switched to vm1" test "$((vm_tx + vm_drops))" -gt 0

tp_quit vm
rc=0
vusw_stop || rc=$?
expect "vuswitchd exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: virtio-user <-> net_null through vuswitchd"
