#!/usr/bin/env bash
# System test: jumbo frames through a NIC port, and the MTU of NIC ports (include/vusw/mtu.h).
#
#   netns vusw-nic_jumbo-PID                     host namespace
#   [vsn0-PID] MTU 9000 ==veth== [vsh0-PID] <-- net_pcap0 "jumbo" (mtu=9000) ----+
#   [vsn1-PID] MTU 1500 ==veth== [vsh1-PID] <-- net_af_packet0 "small" (1500) ---+-- vuswitchd
#                                      vm1.sock (mtu=9000) --> testpmd (virtio-user, MTU 9000)
#
# DPDK 22.11's net_af_packet and net_tap report a longest frame of 1518/1522 bytes, so
# they cannot take MTU 9000; net_pcap on an interface has no such limit and reads large
# frames into chains of 2 KiB mbufs itself. So:
#   1. a NIC that cannot take its MTU (net_af_packet with mtu=9000) stops vuswitchd at
#      start-up (exit 1) with a message saying what to do;
#   2. namespace -> guest: a raw AF_PACKET sender sends 8000-byte frames on vsn0; each
#      arrives at the jumbo port as an mbuf chain and must reach testpmd (rxonly, verbose:
#      "length=8000"), every one. The guest has sent nothing yet, so its MAC is unknown
#      and they are flooded to "small" too, where each is an mtu_exceeded drop;
#   3. guest -> namespace: testpmd sends 8000-byte frames to vsn0's MAC ("start
#      tx_first"): vsn0 must receive exactly as many, the jumbo port count them sent,
#      and each was lent to the NIC zero copy (vm1 rx_zero_copy);
#   4. guest -> the 1500 NIC: once vsn1's MAC is learned, testpmd's 1514-byte frames to
#      it pass, its 1515- and 8000-byte frames are dropped on "small" as mtu_exceeded,
#      counted exactly, and vsn1 receives none of them.
# vuswitchctl must show jumbo 9000 (config), small 1500 (default), vm1 9000 (config).
# IPv6 is off in the namespace and on the host ends, so the kernel sends nothing of its
# own. Exit: 0 pass, 1 fail, 77 skip.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-4}
VM_MAC=02:00:00:00:0e:01
ETHERTYPE=88b5

sys_init nic_jumbo
sys_require_hugepages 800
sys_require_daemon
command -v "$PYTHON" >/dev/null || skip "python3 not installed"
ls /usr/lib/*/dpdk/pmds-*/librte_net_pcap.so* >/dev/null 2>&1 \
  || skip "DPDK's net_pcap PMD is not installed (Debian package librte-net-pcap23; deploy/setup.sh)"

sys_netns
sys_veth 9000
J_HOST=$VETH_HOST J_NS=$VETH_NS J_MAC=$VETH_NS_MAC
sys_veth
S_HOST=$VETH_HOST S_NS=$VETH_NS S_MAC=$VETH_NS_MAC


# ---- 1. a device that cannot take the MTU: a start-up error that says what to do
bad_log=$SYS_TMP/vuswitchd-bad.log
mkdir -p "$SYS_TMP/run-bad"
rc=0
timeout 60 "$SYS_VUSWITCHD" --file-prefix "$(sys_prefix bad)" --run-dir "$SYS_TMP/run-bad" \
  --control "$SYS_TMP/run-bad/ctl" --metrics off --lcores 0,1 \
  --nic "net_af_packet0,iface=$S_HOST|mtu=9000" </dev/null >"$bad_log" 2>&1 || rc=$?
log "vuswitchd with net_af_packet0 and mtu=9000: exit $rc: $(grep -m1 'MTU' "$bad_log" || true)"
expect "vuswitchd refuses to start (exit 1)" test "$rc" -eq 1
expect "it says the device's largest MTU and what to do" \
  grep -q "the device takes an MTU of at most 1500 (its longest frame is 1518 bytes), not 9000: give the port mtu=1500 or less" "$bad_log"

# ---- the switch
vusw_start jumbo --lcores 0,1 --log-level info \
  --nic "net_pcap0,iface=$J_HOST|name=jumbo|mtu=9000" --nic "net_af_packet0,iface=$S_HOST|name=small" \
  --vhost-user "$SYS_TMP/vm1.sock|mtu=9000"
# virtio-user 22.11 sends no NET_SET_MTU; --max-pkt-len 9030 is its MTU 9000 (see
# virtio_matrix.sh), and 9300-byte mbufs take a whole frame in one RX buffer.
tp_start vm --lcores 0@0,1@0 --main-lcore 0 --no-pci --single-file-segments \
  --iova-mode=va --file-prefix "$(sys_prefix vm)" -m 256 \
  --vdev "net_virtio_user0,path=$SYS_TMP/vm1.sock,mac=$VM_MAC" \
  -- --forward-mode=rxonly --eth-peer=0,"$J_MAC" --max-pkt-len=9030 --mbuf-size=9300 --total-num-mbufs=4096
tp_wait_ready vm
port_ready() { [[ $(vusw_port_json vm1 state 2>/dev/null) == ready ]]; }
WAIT_FOR_POLL_S=0.1 wait_for 10 "switch port vm1 ready" port_ready

# port_field PORT FIELD...: fields of a port in vuswitchctl's JSON, space-separated
# (dicts such as drops give one entry: drops.mtu_exceeded).
port_field() {
  vusw_ctl --json show ports | "$PYTHON" -c '
import json, sys
p = {p["name"]: p for p in json.load(sys.stdin)["ports"]}[sys.argv[1]]
out = []
for f in sys.argv[2:]:
    k, _, sub = f.partition(".")
    out.append(p[k].get(sub, 0) if sub else p[k])
print(*out)' "$@"
}
expect "vuswitchctl: jumbo MTU 9000 (config)" test "$(port_field jumbo mtu mtu_source)" == "9000 config"
expect "vuswitchctl: small MTU 1500 (default)" test "$(port_field small mtu mtu_source)" == "1500 default"
expect "vuswitchctl: vm1 MTU 9000 (config)" test "$(port_field vm1 mtu mtu_source)" == "9000 config"

# ---- 2. namespace -> guest: 8000-byte frames through the jumbo NIC
vm_got() { grep -c "type=0x$ETHERTYPE - length=$1 " "${TP_LOG[vm]}" || true; }
tp_cmd vm "set verbose 1"
tp_cmd vm "start"
sleep 0.5
ns_send "$S_NS" "$VM_MAC" "$ETHERTYPE" 1 60 0  # the switch learns vsn1's MAC on "small"
ns_sent=0
for ((r = 0; r < ROUNDS; r++)); do
  ns_send "$J_NS" "$VM_MAC" "$ETHERTYPE" 25 8000 "$ns_sent"
  ns_sent=$((ns_sent + 25))
  for ((i = 0; i < 50; i++)); do (($(vm_got 8000) >= ns_sent)) && break; sleep 0.2; done
done
sleep 0.5
tp_cmd vm "stop"
tp_cmd vm "set verbose 0"
sleep 0.5
log "namespace sent $ns_sent frames of 8000 B on $J_NS; the guest received $(vm_got 8000) of them"
expect "the guest received every 8000-byte frame ($ns_sent)" test "$(vm_got 8000)" -eq "$ns_sent"
expect "the guest received the frame from $S_NS" test "$(vm_got 60)" -eq 1
j_rx=$(port_field jumbo rx_packets)
flooded=$(port_field small drops.mtu_exceeded)
expect "switch: jumbo received >= $ns_sent frames ($j_rx)" test "$j_rx" -ge "$ns_sent"
expect "switch: small dropped the $ns_sent flooded ones as mtu_exceeded ($flooded)" test "$flooded" -eq "$ns_sent"

# ---- 3, 4. guest -> NICs: rounds of 32 frames ("start tx_first 1") of SIZE to PEER
# burst PEER SIZE: sends ROUNDS rounds; prints how many frames testpmd sent.
burst() {
  local tx0 tx
  tp_cmd vm "set eth-peer 0 $1"
  tp_cmd vm "set txpkts $2"
  tx0=$(tp_stat vm 1 0 3)
  for ((r = 0; r < ROUNDS; r++)); do
    tp_cmd vm "start tx_first 1"
    sleep 0.2
    tp_cmd vm "stop"
  done
  sleep 0.5
  tx=$(tp_stat vm 1 0 3)
  echo $((tx - tx0))
}
j_rx0=$(ns_rx_packets "$J_NS")
j_tx0=$(port_field jumbo tx_packets)
zc0=$(port_field vm1 rx_zero_copy)
sent=$(burst "$J_MAC" 8000)
for ((i = 0; i < 50; i++)); do (($(ns_rx_packets "$J_NS") - j_rx0 >= sent)) && break; sleep 0.2; done
j_got=$(($(ns_rx_packets "$J_NS") - j_rx0))
j_tx=$(($(port_field jumbo tx_packets) - j_tx0))
zc=$(($(port_field vm1 rx_zero_copy) - zc0))
log "guest sent $sent frames of 8000 B to $J_MAC; switch jumbo tx $j_tx; $J_NS received $j_got; lent zero copy: $zc"
expect "the guest sent $((ROUNDS * 32)) frames" test "$sent" -eq $((ROUNDS * 32))
expect "$J_NS received every one ($sent)" test "$j_got" -eq "$sent"
expect "switch jumbo tx == guest tx" test "$j_tx" -eq "$sent"
expect "the guest's frames went to the NIC zero copy (lent: $zc)" test "$zc" -eq "$sent"

s_rx0=$(ns_rx_packets "$S_NS")
ok=$(burst "$S_MAC" 1514)
for ((i = 0; i < 50; i++)); do (($(ns_rx_packets "$S_NS") - s_rx0 >= ok)) && break; sleep 0.2; done
over=$(burst "$S_MAC" 1515)
big=$(burst "$S_MAC" 8000)
for ((i = 0; i < 50; i++)); do (($(port_field small drops.mtu_exceeded) >= flooded + over + big)) && break; sleep 0.2; done
sleep 0.5
s_got=$(($(ns_rx_packets "$S_NS") - s_rx0))
dropped=$(($(port_field small drops.mtu_exceeded) - flooded))
log "guest sent $ok frames of 1514 B, $over of 1515 B, $big of 8000 B to $S_MAC; $S_NS received $s_got; small mtu_exceeded $dropped"
expect "$S_NS received the $ok frames of 1514 B and nothing else" test "$s_got" -eq "$ok"
expect "small dropped the $((over + big)) longer frames as mtu_exceeded" test "$dropped" -eq $((over + big))
expect "no other drops (jumbo, small, vm1)" test "$(port_field jumbo drops.mtu_exceeded) $(port_field vm1 drops.mtu_exceeded)" == "0 0"
table=$(vusw_ctl show ports) || fail "vuswitchctl show ports (table) failed"
printf '%s\n' "$table"
expect "show ports prints each port's MTU and its source" grep -qzE \
  'jumbo +access VLAN 0, MTU 9000 \(config\).*small +access VLAN 0, MTU 1500 \(default\).*vm1 +access VLAN 0, MTU 9000 \(config\)' <<<"$table"
totals=$(vusw_ctl --json show ports | "$PYTHON" -c '
import json, sys
print(*(sum(p["drops"].values()) for p in json.load(sys.stdin)["ports"]))')
expect "drops in all ports ($totals): only small's mtu_exceeded" test "$((${totals// /+}))" -eq $((flooded + dropped))

tp_quit vm
rc=0
vusw_stop || rc=$?
expect "vuswitchd exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: 8000-byte frames both ways through an MTU-9000 NIC; the MTU-1500 NIC drops longer frames, counted"
